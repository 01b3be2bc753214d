"""Batched chat streams: one chunk per network read, the socket left unread between reads, deadlines kept."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.ollama.client import ChatChunk, OllamaClient
from bot.ollama.errors import OllamaStalled, OllamaStreamError
from tests.fakes.fake_ollama import ChatScript, FakeOllama

MESSAGES = [{"role": "user", "content": "hi"}]


async def collect(client: OllamaClient, **kwargs: object) -> list[ChatChunk]:
    return [chunk async for chunk in client.chat_stream("llama3.2", MESSAGES, batch=True, **kwargs)]  # type: ignore[arg-type]


async def test_the_lines_of_one_read_come_as_one_chunk(client: OllamaClient, fake: FakeOllama) -> None:
    tokens = [f" t{i}" for i in range(21)]
    fake.scripts.append(ChatScript(tokens=tokens, lines_per_write=7, final_content="!"))
    chunks = await collect(client)
    # Three writes of seven lines: at most three reads (two writes may arrive together), never a chunk per line.
    assert 1 <= len(chunks[:-1]) <= 3
    assert "".join(c.content for c in chunks[:-1]) == "".join(tokens)
    assert sum(c.deltas for c in chunks[:-1]) == 21
    assert chunks[-1].done and chunks[-1].content == "!" and chunks[-1].eval_count == 21


async def test_thinking_and_content_of_one_read_stay_apart(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(thinking=["Let", " me", " see."], tokens=["Yes", "."], lines_per_write=10))
    chunks = [c async for c in client.chat_stream("qwen3:8b", MESSAGES, think=True, batch=True)]
    assert "".join(c.thinking for c in chunks) == "Let me see."
    assert "".join(c.content for c in chunks) == "Yes."
    assert sum(c.deltas for c in chunks if not c.done) == 2  # the lines that carried answer text


async def test_text_before_an_error_line_is_handed_on_first(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["Part", "ial", " answer", " lost"], error_after=3, lines_per_write=10))
    received: list[str] = []
    with pytest.raises(OllamaStreamError, match="unexpected EOF"):
        async for chunk in client.chat_stream("llama3.2", MESSAGES, batch=True):
            received.append(chunk.content)
    assert "".join(received) == "Partial answer"


async def test_many_streams_read_many_lines_at_a_time(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    client = OllamaClient(session, fake.url, first_token_timeout=10.0, inactivity_timeout=10.0)
    tokens = [f" w{i}" for i in range(60)]
    fake.default_script = ChatScript(tokens=tokens, token_delay=0.01)

    async def one() -> list[ChatChunk]:
        return [chunk async for chunk in client.chat_stream("llama3.2", MESSAGES, batch=True)]

    results = await asyncio.gather(*(one() for _ in range(12)))
    for chunks in results:
        assert "".join(c.content for c in chunks) == "".join(tokens)
        # Each line is its own write (one TCP segment) at 100 per second; with twelve streams each read waits
        # about 0.12 s, so it finds several lines.
        assert len(chunks) < len(tokens) / 2


async def test_a_stall_is_still_noticed_in_a_batched_stream(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    client = OllamaClient(session, fake.url, first_token_timeout=10.0, inactivity_timeout=1.0)
    fake.scripts.append(ChatScript(tokens=["Still", " going", " on"], stall_after=2))
    received: list[str] = []
    with pytest.raises(OllamaStalled):
        async for chunk in client.chat_stream("llama3.2", MESSAGES, batch=True):
            received.append(chunk.content)
    assert "".join(received) == "Still going"
    assert (await fake.wait_for_disconnect()).disconnected
