"""The knowledge base on its own (memory stores, the fake Ollama): replacing, limits, races and failures."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from bot.channel_settings.store import MemorySettingsStore, Scope, StoreError
from bot.knowledge.base import IndexProgress, KnowledgeBase, KnowledgeLimits, PinnedMessage
from bot.knowledge.embedder import Embedder
from bot.knowledge.records import KnowledgePlace
from bot.knowledge.refusals import ScopeFull
from bot.knowledge.store import MemoryKnowledgeStore
from bot.ollama.client import OllamaClient
from tests.fakes.fake_ollama import EMBEDDING_MODEL, FakeOllama
from tests.knowledge_helpers import RUNBOOK

PLACE = KnowledgePlace(guild_id=400, channel_id=500)


@pytest.fixture
def settings() -> MemorySettingsStore:
    return MemorySettingsStore()


@pytest.fixture
def kb(fake: FakeOllama, client: OllamaClient, settings: MemorySettingsStore) -> KnowledgeBase:
    fake.add_model(replace(EMBEDDING_MODEL))
    fake.add_model(replace(EMBEDDING_MODEL, name="mxbai-embed-large:latest"))
    return KnowledgeBase(
        MemoryKnowledgeStore(),
        settings,
        Embedder(client, batch_size=4),
        default_model="nomic-embed-text",
        limits=KnowledgeLimits(max_files=2, max_chunks=50),
    )


async def add(kb: KnowledgeBase, name: str, text: bytes, **kw: Any) -> None:
    await kb.add_file(PLACE.channel_target(), name, None, text, added_by=200, **kw)


async def test_a_file_of_the_same_name_is_replaced_in_place(kb: KnowledgeBase) -> None:
    steps: list[IndexProgress] = []
    await add(kb, "runbook.md", RUNBOOK, progress=steps.append)
    assert steps[0] == IndexProgress(0, 2) and steps[-1] == IndexProgress(2, 2)
    (first,) = await kb.documents_here(PLACE)
    await add(kb, "runbook.md", b"# Runbook\n\nThe rollback code word is now KIWI-9.\n")
    (second,) = await kb.documents_here(PLACE)
    assert second.document_id == first.document_id and second.chunk_count == 1
    (hit,) = await kb.search(PLACE, "what is the rollback code word?")
    assert "KIWI-9" in hit.text


async def test_limits_count_what_would_be_there_after_the_change(kb: KnowledgeBase) -> None:
    await add(kb, "a.md", b"alpha")
    await add(kb, "b.md", b"beta")
    with pytest.raises(ScopeFull, match="KNOWLEDGE_MAX_FILES"):
        await add(kb, "c.md", b"gamma")
    await add(kb, "b.md", b"beta again")  # a replacement is not a third file
    long = "\n\n".join(f"Paragraph {i} " + "text " * 200 for i in range(60)).encode()
    with pytest.raises(ScopeFull, match="KNOWLEDGE_MAX_CHUNKS"):
        await add(kb, "b.md", long)


async def test_pins_over_the_chunk_limit_are_skipped_and_counted(kb: KnowledgeBase) -> None:
    pins = [PinnedMessage(i, 500, "Alice", f"pinned fact number {i}", f"https://x/{i}") for i in range(1, 60)]
    result = await kb.add_pin_source(PLACE.channel_target(), 500, pins, added_by=200)
    assert result.added == 50 and result.skipped == 9
    again = await kb.sync_pins(500, pins[:10])
    assert [(r.kept, r.removed) for r in again] == [(10, 40)]


async def test_excerpts_zero_turns_answers_off_without_embedding(
    kb: KnowledgeBase, fake: FakeOllama, client: OllamaClient, settings: MemorySettingsStore
) -> None:
    await add(kb, "runbook.md", RUNBOOK)
    limits = KnowledgeLimits(excerpts=0)
    off = KnowledgeBase(kb.library.store, settings, Embedder(client), default_model="nomic-embed-text", limits=limits)
    requests = len(fake.embed_requests)
    assert (await off.retrieve(PLACE, "what is the rollback code word?")).excerpts == []
    assert len(fake.embed_requests) == requests


async def test_a_database_failure_leaves_the_answer_with_a_note(kb: KnowledgeBase) -> None:
    await add(kb, "runbook.md", RUNBOOK)

    async def broken(*args: object, **kwargs: object) -> list[object]:
        raise StoreError("settings database x: could not read knowledge chunks (disk I/O error)")

    kb.library.store.knowledge_chunks = broken  # type: ignore[method-assign]
    found = await kb.retrieve(PLACE, "what is the rollback code word?")
    assert found.excerpts == [] and "knowledge database could not be read" in found.notes[0]


async def test_a_pin_edited_while_it_is_embedded_again_keeps_its_new_text(
    kb: KnowledgeBase, fake: FakeOllama, settings: MemorySettingsStore
) -> None:
    old = PinnedMessage(1, 500, "Alice", "The rollback code word is PAPAYA-42.", "https://x/1")
    await kb.add_pin_source(PLACE.channel_target(), 500, [old], added_by=200)
    await settings.set_many(Scope.channel(500), {"embed_model": "mxbai-embed-large"})
    fake.hold_embed = lambda body: body["model"] == "mxbai-embed-large" and "PAPAYA" in str(body["input"])
    (status,) = await kb.refresh_models(400)
    await fake.wait_for_requests(2, path="/api/embed")  # the re-embedding batch is held
    # Pin updates do not wait for indexing jobs: the edited pin is saved while the old text is embedded.
    await kb.sync_pins(500, [replace(old, content="The rollback code word is now KIWI-9.")])
    fake.release_embeds()
    while not status.finished:
        await asyncio.sleep(0.01)
    assert status.error is None
    (document,) = await kb.documents_here(PLACE)
    assert document.embed_model == "mxbai-embed-large"
    (hit,) = await kb.search(PLACE, "what is the rollback code word?")
    assert "KIWI-9" in hit.text


async def test_a_document_removed_while_it_is_embedded_again_stays_removed(
    kb: KnowledgeBase, fake: FakeOllama, settings: MemorySettingsStore
) -> None:
    await add(kb, "runbook.md", RUNBOOK)
    await settings.set_many(Scope.guild(400), {"embed_model": "mxbai-embed-large"})
    fake.hold_embed = lambda body: body["model"] == "mxbai-embed-large"
    (status,) = await kb.refresh_models(400)
    await fake.wait_for_requests(2, path="/api/embed")
    (document,) = await kb.documents_here(PLACE)
    assert await kb.remove_document(document)
    fake.release_embeds()
    while not status.finished:
        await asyncio.sleep(0.01)
    assert await kb.documents_here(PLACE) == []
    assert await kb.library.store.knowledge_documents(guild_id=400) == []
