"""A knowledge change the database does not take is a refusal the user sees, and the caches stay true to the store.

PostgreSQL makes this likely (a restart, a network cut); the end-to-end run is in
tests/test_e2e_knowledge_postgres.py. Here a memory store fails chosen writes, to stop half-way exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from bot.channel_settings.store import MemorySettingsStore, StoreError
from bot.knowledge.base import KnowledgeBase, PinnedMessage
from bot.knowledge.embedder import Embedder
from bot.knowledge.records import ChunkRecord, DocumentRecord, KnowledgePlace
from bot.knowledge.refusals import KnowledgeNotSaved
from bot.knowledge.store import MemoryKnowledgeStore
from bot.ollama.client import OllamaClient
from tests.fakes.fake_ollama import EMBEDDING_MODEL, FakeOllama
from tests.knowledge_helpers import RUNBOOK

PLACE = KnowledgePlace(guild_id=400, channel_id=500)
PINS = [PinnedMessage(i, 500, "Alice", f"pinned fact number {i}", f"https://x/{i}") for i in range(1, 4)]


class FailingStore(MemoryKnowledgeStore):
    """Saves documents until `saves_left` runs out, then fails each save as a lost database would."""

    def __init__(self) -> None:
        super().__init__()
        self.saves_left: int | None = None

    async def save_knowledge_document(self, document: DocumentRecord, chunks: Sequence[ChunkRecord]) -> None:
        if self.saves_left is not None:
            if self.saves_left == 0:
                raise StoreError("database postgresql://db: could not save a knowledge document (connection lost)")
            self.saves_left -= 1
        await super().save_knowledge_document(document, chunks)


@pytest.fixture
def store() -> FailingStore:
    return FailingStore()


@pytest.fixture
def kb(fake: FakeOllama, client: OllamaClient, store: FailingStore) -> KnowledgeBase:
    fake.add_model(replace(EMBEDDING_MODEL))
    return KnowledgeBase(store, MemorySettingsStore(), Embedder(client), default_model="nomic-embed-text")


async def pin_documents(store: FailingStore) -> list[int]:
    """The pinned messages the store holds a document of (a message twice if it holds two)."""
    documents = await store.knowledge_documents(guild_id=400)
    return sorted(d.pin_message_id for d in documents if d.pin_message_id is not None)


async def test_a_file_the_database_refuses_is_a_refusal_saying_nothing_was_added(
    kb: KnowledgeBase, store: FailingStore
) -> None:
    store.saves_left = 0
    with pytest.raises(KnowledgeNotSaved, match=r"Couldn't add `runbook.md`.*nothing was added"):
        await kb.add_file(PLACE.channel_target(), "runbook.md", None, RUNBOOK, added_by=200)
    assert await kb.documents_here(PLACE) == [] and kb.idle

    store.saves_left = None
    await kb.add_file(PLACE.channel_target(), "runbook.md", None, RUNBOOK, added_by=200)
    assert "PAPAYA-42" in (await kb.search(PLACE, "what is the rollback code word?"))[0].text


async def test_pins_saved_before_the_database_failed_are_not_added_twice(
    kb: KnowledgeBase, store: FailingStore
) -> None:
    store.saves_left = 1  # the first pinned message is saved, then the database goes away
    with pytest.raises(KnowledgeNotSaved, match="/knowledge add-pins"):
        await kb.add_pin_source(PLACE.channel_target(), 500, PINS, added_by=200)
    assert await pin_documents(store) == [1]

    store.saves_left = None
    (result,) = await kb.sync_pins(500, PINS)
    assert (result.added, result.kept) == (2, 1)
    assert await pin_documents(store) == [1, 2, 3]  # one document per pinned message, none twice
    assert [d.pin_message_id for d in await kb.documents_here(PLACE)] == [1, 2, 3]
