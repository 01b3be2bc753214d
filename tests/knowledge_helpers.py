"""Shared helpers for the team-knowledge tests: documents, PDFs, and driving /knowledge through the fakes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.knowledge.base import KnowledgeBase
from tests.conftest import Harness
from tests.fakes.fake_discord import FileSpec
from tests.fakes.fake_ollama import EMBEDDING_MODEL, ChatScript

EVERYTHING = "2251799813685247"
MEMBER = str(1024 | 2048 | 65536)  # view, send, read history: no management rights
CHANNEL_MANAGER = str(int(MEMBER) | 16)  # + Manage Channels
SERVER_MANAGER = str(int(MEMBER) | 32)  # + Manage Server

RUNBOOK = b"""# Payments runbook

## Deploy

Deploys go out on Tuesdays after the standup. Run the deploy pipeline from the main branch and watch the
dashboards for ten minutes.

## Rollback

The rollback code word for the payments service is PAPAYA-42. Say it in the ops channel before rolling back.
"""
HANDBOOK = b"""Office handbook

The office wifi password is TANGERINE-7. Guests use the guest network instead.
"""
IN_PROGRESS = ("\U0001f4e5", "\u23f3")  # the reading/indexing and waiting texts of /knowledge add


def install_embedder(harness: Harness) -> None:
    """Put the default embedding model on the fake Ollama (it is not there by default)."""
    harness.ollama.add_model(replace(EMBEDDING_MODEL))


async def start(harness: Harness, **env: str) -> None:
    """The bot with nomic-embed-text installed and short answers."""
    install_embedder(harness)
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(**env) if env else None)


def knowledge_base(harness: Harness) -> KnowledgeBase:
    """The running bot's knowledge base (for waiting until background work is done)."""
    kb = harness.running[-1].services.knowledge
    assert kb is not None
    return kb


async def knowledge(
    harness: Harness,
    sub: str,
    options: dict[str, Any] | None = None,
    *,
    files: dict[str, FileSpec] | None = None,
    timeout: float = 10.0,
    **kw: Any,
) -> str:
    """Run `/knowledge <sub>` and return its final (ephemeral) answer."""
    if files:
        token = await harness.discord.send_slash_command_with_files("knowledge", options, files, subcommand=sub, **kw)
    else:
        token = await harness.discord.send_slash_command("knowledge", options, subcommand=sub, **kw)

    def answered() -> bool:
        message = harness.discord.original_message(token)
        content = (message or {}).get("content") or ""
        return bool(content) and not content.startswith(IN_PROGRESS) and knowledge_base(harness).idle

    await harness.discord.wait_for(answered, timeout)
    message = harness.discord.original_message(token)
    assert message is not None and message["flags"] & 64, "knowledge commands answer ephemerally"
    content: str = message["content"]
    return content


async def add_file(harness: Harness, name: str, data: bytes, scope: str = "channel", **kw: Any) -> str:
    """`/knowledge add file:<name> scope:<scope>`; returns the final answer."""
    options = {"scope": scope} if scope != "channel" else None
    return await knowledge(harness, "add", options, files={"file": (name, data, None)}, **kw)


async def ask(harness: Harness, text: str, *, channel_id: int = 500) -> tuple[str, str]:
    """Mention the bot; return (the last user message Ollama got, the reply's final text)."""
    before = len(harness.ollama.chat_requests)
    prompt = await harness.discord.send_user_message(text, mention_bot=True, channel_id=channel_id)
    parts = await harness.wait_for_reply(int(prompt["id"]))
    assert len(harness.ollama.chat_requests) == before + 1
    sent: str = harness.ollama.chat_requests[-1].json["messages"][-1]["content"]
    return sent, "\n".join(parts)


def kb_idle(harness: Harness) -> Callable[[], Awaitable[bool]]:
    """A check for `eventually`: the running bot's knowledge base has no indexing or pin update under way."""

    async def idle() -> bool:
        return knowledge_base(harness).idle

    return idle


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll an async condition until it holds (AssertionError after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{getattr(check, '__qualname__', check)} did not hold within {timeout} s")
        await asyncio.sleep(0.01)


def text_pdf(*pages: str) -> bytes:
    """A small PDF with a real text layer (Helvetica text drawn on each page), written by hand."""
    objects: list[bytes] = []
    font = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for index, text in enumerate(pages):
        lines = []
        for number, line in enumerate(text.split("\n")):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"BT /F1 12 Tf 72 {720 - 16 * number} Td ({escaped}) Tj ET")
        stream = "\n".join(lines).encode("latin-1")
        content = 4 + 2 * index
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A PDF whose page has no text layer (what a scanner without OCR produces), written with pypdf."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
