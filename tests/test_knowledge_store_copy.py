"""`python -m bot store copy` carries team knowledge (documents, chunks with their vectors, tracked pins) both ways."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bot.__main__ import knowledge_store_for, run_store_copy
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import Scope, SettingsStore, SqliteSettingsStore
from bot.knowledge.index import normalize_rows, vector_bytes
from bot.knowledge.records import ChunkRecord, DocumentKind, DocumentRecord, KnowledgeTarget, PinSource
from tests.postgres_server import PASSWORD

T0 = datetime(2026, 3, 1, 12, 0, 0, 125000, tzinfo=UTC)
SNOWFLAKE = 2**63 - 1
CHANNEL = KnowledgeTarget(Scope.channel(500), 400)
THREAD = KnowledgeTarget(Scope.channel(SNOWFLAKE), 400, parent_id=500)
SERVER = KnowledgeTarget.of_guild(400)
MODEL = "nomic-embed-text"


def document(document_id: str, target: KnowledgeTarget, minutes: int, **changes: object) -> DocumentRecord:
    values: dict[str, object] = {
        "document_id": document_id,
        "target": target,
        "kind": DocumentKind.FILE,
        "name": f"{document_id}.md",
        "embed_model": MODEL,
        "dimensions": 6,
        "chunk_count": 3,
        "chars": 900,
        "content_hash": f"hash-{document_id}",
        "added_at": T0 + timedelta(minutes=minutes),
        "added_by": 200,
        **changes,
    }
    return DocumentRecord(**values)  # type: ignore[arg-type]


DOCUMENTS = [
    document("runbook", CHANNEL, 0),
    document("handbook", SERVER, 1, chunk_count=2, added_by=None),
    document("old-model", CHANNEL, 2, embed_model="all-minilm", dimensions=4, chunk_count=1),
    document(
        "pin",
        THREAD,
        3,
        kind=DocumentKind.PIN,
        name="Alice",
        chunk_count=1,
        link=f"https://discord.com/channels/400/{SNOWFLAKE}/{SNOWFLAKE - 1}",
        pin_channel_id=SNOWFLAKE,
        pin_message_id=SNOWFLAKE - 1,
    ),
]
SOURCES = [PinSource(THREAD, SNOWFLAKE, T0, 201), PinSource(SERVER, 500, T0 + timedelta(seconds=1), None)]


def chunks(record: DocumentRecord) -> list[ChunkRecord]:
    rng = np.random.default_rng(len(record.document_id))
    rows = normalize_rows(rng.normal(size=(record.chunk_count, record.dimensions)))
    text = f"text of {record.name} ✓"
    return [
        ChunkRecord(record.document_id, i, f"Section {i}" if i else None, f"{text} {i}", vector_bytes(v))
        for i, v in enumerate(rows)
    ]


def stored(record: DocumentRecord) -> bytes:
    """The document's vectors one after the other, as the matrix of its scope holds them."""
    return b"".join(c.vector for c in chunks(record))


async def fill(store: SettingsStore) -> None:
    knowledge = knowledge_store_for(store)
    for record in DOCUMENTS:
        await knowledge.save_knowledge_document(record, chunks(record))
    for source in SOURCES:
        await knowledge.save_knowledge_pin_source(source)


async def contents(store: SettingsStore) -> tuple[object, ...]:
    knowledge = knowledge_store_for(store)
    vectors = {}
    for scope in (CHANNEL.scope, THREAD.scope, SERVER.scope):
        rows = await knowledge.knowledge_vectors(scope, MODEL)
        vectors[scope] = (
            [d.document_id for d in rows.documents],
            rows.doc_rows.tolist(),
            rows.positions.tolist(),
            rows.matrix.tobytes(),
            rows.other_models,
        )
    keys = [(c.document_id, c.position) for record in DOCUMENTS for c in chunks(record)]
    return (
        await knowledge.knowledge_documents(guild_id=400),
        vectors,
        await knowledge.knowledge_chunks(keys),
        await knowledge.knowledge_pin_sources(),
    )


async def test_knowledge_goes_from_sqlite_to_postgres_and_back(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "old" / "ollacord.sqlite3"
    old = await SqliteSettingsStore.open(source)
    await fill(old)
    expected = await contents(old)
    await old.close()
    documents, vectors, texts, sources = expected
    # What is compared below is all there: every document, chunk and source, and the vectors of each scope.
    assert documents == DOCUMENTS and sources == SOURCES
    assert isinstance(texts, list) and len(texts) == 7
    runbook, handbook, _, pin = DOCUMENTS
    assert vectors == {
        CHANNEL.scope: (["runbook"], [0, 0, 0], [0, 1, 2], stored(runbook), 1),
        THREAD.scope: (["pin"], [0], [0], stored(pin), 0),
        SERVER.scope: (["handbook"], [0, 0], [0, 1], stored(handbook), 0),
    }

    out = io.StringIO()
    assert await run_store_copy(f"sqlite:///{source}", postgres_url, out) == 0
    for count in ("4 knowledge_documents", "7 knowledge_chunks", "2 knowledge_pin_sources"):
        assert count in out.getvalue()
    assert PASSWORD not in out.getvalue()
    postgres = await PostgresSettingsStore.open(postgres_url)
    try:
        assert await contents(postgres) == expected
    finally:
        await postgres.close()

    back = tmp_path / "back" / "ollacord.sqlite3"
    assert await run_store_copy(postgres_url, f"sqlite:///{back}", io.StringIO()) == 0
    again = await SqliteSettingsStore.open(back)
    try:
        assert await contents(again) == expected
    finally:
        await again.close()
