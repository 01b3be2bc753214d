"""End to end: live indexing progress, answers elsewhere not held up, and re-indexing when the model changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.conftest import Harness
from tests.fakes.fake_ollama import EMBEDDING_MODEL
from tests.knowledge_helpers import (
    IN_PROGRESS,
    RUNBOOK,
    add_file,
    ask,
    eventually,
    kb_idle,
    knowledge,
    start,
)

MXBAI = replace(EMBEDDING_MODEL, name="mxbai-embed-large:latest", size=669_615_493, parameter_size="334M")


def big_document(paragraphs: int) -> bytes:
    """A Markdown file of `paragraphs` sections, one chunk each."""
    parts = [f"## Topic {i}\n\n" + f"Topic {i} notes: " + "lorem ipsum dolor sit amet " * 40 for i in range(paragraphs)]
    return "\n\n".join(parts).encode()


async def test_indexing_a_large_file_shows_live_progress_and_never_blocks_other_answers(harness: Harness) -> None:
    await start(harness)
    requests: list[dict[str, Any]] = []

    def hold_after_first_batch(body: dict[str, Any]) -> bool:
        requests.append(body)
        return len(requests) >= 2

    harness.ollama.hold_embed = hold_after_first_batch
    token = await harness.discord.send_slash_command_with_files(
        "knowledge", None, {"file": ("handbook.md", big_document(70), None)}, subcommand="add"
    )

    def progress_shown() -> bool:
        message = harness.discord.original_message(token) or {}
        expected = "📥 Indexing `handbook.md` into this channel's knowledge: 32/70 chunks (45%)"
        return expected in message.get("content", "")

    await harness.discord.wait_for(progress_shown)
    # Indexing is stuck on Ollama; questions in other channels (and in this one) are answered meanwhile.
    assert (await ask(harness, "hello there", channel_id=501))[1] == "ok"
    assert (await ask(harness, "hello again", channel_id=500))[1] == "ok"

    harness.ollama.release_embeds()

    def finished() -> bool:
        content = (harness.discord.original_message(token) or {}).get("content", "")
        return bool(content) and not content.startswith(IN_PROGRESS)

    await harness.discord.wait_for(finished)
    final = (harness.discord.original_message(token) or {})["content"]
    assert final.startswith("📚 Added `handbook.md` to this channel's knowledge: 70 chunks.")
    # Batches of at most 32 inputs, in order.
    assert [len(r.json["input"]) for r in harness.ollama.embed_requests if isinstance(r.json["input"], list)] == [
        32,
        32,
        6,
    ]


async def test_changing_the_embedding_model_reindexes_in_the_background_with_progress(harness: Harness) -> None:
    await start(harness)
    harness.ollama.add_model(replace(MXBAI))
    await add_file(harness, "runbook.md", RUNBOOK)
    await add_file(harness, "handbook.md", big_document(3), scope="server")

    token = await harness.discord.send_slash_command(
        "set", {"option": "embed_model", "value": "mxbai-embed-large", "scope": "server"}
    )

    def reindexed() -> bool:
        followups = harness.discord.followup_messages(token)
        return bool(followups) and followups[0]["content"].count("✅") == 2

    await harness.discord.wait_for(reindexed)
    report = harness.discord.followup_messages(token)[0]["content"]
    assert "✅ This channel's knowledge is now indexed with `mxbai-embed-large`." in report
    assert "✅ The server's knowledge is now indexed with `mxbai-embed-large`." in report
    shown = harness.discord.message_history[int(harness.discord.followup_messages(token)[0]["id"])]
    assert any("🔄 Re-indexing" in text for text in shown)

    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent and "`runbook.md`" in reply
    assert harness.ollama.embed_requests[-1].json["model"] == "mxbai-embed-large"
    assert "`mxbai-embed-large`" in await knowledge(harness, "list")


async def test_a_failed_reindex_says_what_to_pull_and_answers_go_on_without_knowledge(harness: Harness) -> None:
    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK)
    token = await harness.discord.send_slash_command("set", {"option": "embed_model", "value": "bge-m3"})

    def failed() -> bool:
        followups = harness.discord.followup_messages(token)
        return bool(followups) and followups[0]["content"].startswith("⚠️ Re-indexing")

    await harness.discord.wait_for(failed)
    assert "`ollama pull bge-m3`" in harness.discord.followup_messages(token)[0]["content"]
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" not in sent
    assert "re-indexing it with `bge-m3` failed" in reply and "`ollama pull bge-m3`" in reply

    # Back to the default model: its vectors are still there, nothing to embed again.
    embeds = len(harness.ollama.embed_requests)
    token = await harness.discord.send_slash_command("reset", {"option": "embed_model"})
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    await eventually(kb_idle(harness))
    sent, _ = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent
    assert len(harness.ollama.embed_requests) == embeds + 1  # only the question


async def test_a_new_default_model_after_a_restart_is_picked_up_on_the_next_question(harness: Harness) -> None:
    await start(harness)
    harness.ollama.add_model(replace(MXBAI))
    await add_file(harness, "runbook.md", RUNBOOK)
    await harness.stop_all()

    await harness.start_bot(harness.settings(OLLAMA_EMBED_MODEL="mxbai-embed-large"))
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" not in sent
    assert "being re-indexed with `mxbai-embed-large`" in reply
    await eventually(kb_idle(harness))
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent and "`runbook.md`" in reply
