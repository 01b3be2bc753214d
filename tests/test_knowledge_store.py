"""The knowledge stores: one contract run on every backend, then restart, atomicity and damage on the databases."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import SCHEMA_VERSION, Scope, SettingsStore, SqliteSettingsStore, StoreError
from bot.knowledge.index import normalize_rows, vector_bytes
from bot.knowledge.postgres_store import PostgresKnowledgeStore
from bot.knowledge.records import ChunkRecord, DocumentKind, DocumentRecord, KnowledgeTarget, PinSource
from bot.knowledge.sqlite_store import SqliteKnowledgeStore
from bot.knowledge.store import KnowledgeStore, MemoryKnowledgeStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 125000, tzinfo=UTC)
BIG = 2**63 - 1
CHANNEL = KnowledgeTarget(Scope.channel(500), 400)
THREAD = KnowledgeTarget(Scope.channel(700), 400, parent_id=500)
SERVER = KnowledgeTarget.of_guild(400)
OTHER_SERVER = KnowledgeTarget.of_guild(401)


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ollacord.sqlite3"


def vectors(count: int, dimensions: int = 8, seed: int = 0) -> np.ndarray:
    return normalize_rows(np.random.default_rng(seed).normal(size=(count, dimensions)))


def document(document_id: str = "d1", target: KnowledgeTarget = CHANNEL, **changes: object) -> DocumentRecord:
    record = DocumentRecord(
        document_id=document_id,
        target=target,
        kind=DocumentKind.FILE,
        name=f"{document_id}.md",
        embed_model="nomic-embed-text",
        dimensions=8,
        chunk_count=3,
        chars=300,
        content_hash="abc",
        added_at=T0,
        added_by=200,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def chunks(record: DocumentRecord, seed: int = 0) -> list[ChunkRecord]:
    rows = vectors(record.chunk_count, record.dimensions, seed)
    return [
        ChunkRecord(record.document_id, i, f"Section {i}" if i else None, f"text {i} of {record.name}", vector_bytes(v))
        for i, v in enumerate(rows)
    ]


@dataclass(frozen=True)
class Database:
    """The test's database (the same one each time it is opened) on one backend."""

    open: Callable[[], Awaitable[tuple[SettingsStore, KnowledgeStore]]]
    # Runs one statement on a connection of its own (for what the stores never do).
    execute: Callable[[str], Awaitable[None]]


# Makes every deletion of a pinned-message document fail, as a database refusing a write half-way would.
_REFUSE_PIN_DELETES = {
    "sqlite": (
        "CREATE TRIGGER refuse BEFORE DELETE ON knowledge_documents WHEN old.kind = 'pin' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ),
    "postgres": (
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$; "
        "CREATE TRIGGER refuse BEFORE DELETE ON knowledge_documents FOR EACH ROW WHEN (old.kind = 'pin') "
        "EXECUTE FUNCTION refuse()"
    ),
}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """SQLite or PostgreSQL, opened as the bot opens them."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

        async def open_postgres() -> tuple[SettingsStore, KnowledgeStore]:
            opened = await PostgresSettingsStore.open(url)
            return opened, PostgresKnowledgeStore(opened)

        async def execute_postgres(statement: str) -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        return Database(open_postgres, execute_postgres)

    async def open_sqlite() -> tuple[SettingsStore, KnowledgeStore]:
        opened = await SqliteSettingsStore.open(db_path(tmp_path))
        return opened, SqliteKnowledgeStore(opened)

    async def execute_sqlite(statement: str) -> None:
        conn = sqlite3.connect(db_path(tmp_path))
        try:
            conn.execute(statement)
            conn.commit()
        finally:
            conn.close()

    return Database(open_sqlite, execute_sqlite)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeStore]:
    if request.param == "memory":
        yield MemoryKnowledgeStore()
        return
    if request.param == "postgres":
        postgres = await PostgresSettingsStore.open(request.getfixturevalue("postgres_url"))
        try:
            yield PostgresKnowledgeStore(postgres)
        finally:
            await postgres.close()
        return
    database = await SqliteSettingsStore.open(db_path(tmp_path))
    try:
        yield SqliteKnowledgeStore(database)
    finally:
        await database.close()


# -- every backend ---------------------------------------------------------------------------------------------


async def test_implements_the_protocol(store: KnowledgeStore) -> None:
    assert isinstance(store, KnowledgeStore)


async def test_empty_store(store: KnowledgeStore) -> None:
    assert await store.knowledge_documents(scopes=[CHANNEL.scope]) == []
    assert await store.knowledge_documents(guild_id=400) == []
    rows = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
    assert rows.matrix.shape[0] == 0 and rows.other_models == 0
    assert await store.knowledge_chunks([("nope", 0)]) == []
    assert await store.knowledge_pin_sources() == []
    assert await store.delete_knowledge_documents(["nope"]) == 0
    assert await store.knowledge_documents(scopes=[]) == []
    assert await store.knowledge_chunks([]) == []
    assert await store.delete_knowledge_documents([]) == 0
    assert await store.delete_knowledge_pin_source(SERVER.scope, 500) == 0


async def test_a_document_round_trips_with_its_chunks_and_vectors(store: KnowledgeStore) -> None:
    pinned = document(
        "p1",
        THREAD,
        kind=DocumentKind.PIN,
        name="Alice",
        link="https://discord.com/channels/400/700/123",
        pin_channel_id=700,
        pin_message_id=BIG,
        added_by=None,
        chunk_count=1,
    )
    record = document("d1", target=KnowledgeTarget(Scope.channel(BIG), BIG, parent_id=BIG))
    for item in (pinned, record):
        await store.save_knowledge_document(item, chunks(item))
    assert await store.knowledge_documents(scopes=[THREAD.scope]) == [pinned]
    assert await store.knowledge_documents(scopes=[Scope.channel(BIG)]) == [record]
    assert await store.knowledge_documents(guild_id=BIG) == [record]
    rows = await store.knowledge_vectors(Scope.channel(BIG), "nomic-embed-text")
    assert rows.documents == [record]
    assert rows.matrix.dtype == np.float32
    assert np.array_equal(rows.matrix, vectors(3))
    assert rows.positions.tolist() == [0, 1, 2] and rows.doc_rows.tolist() == [0, 0, 0]
    texts = await store.knowledge_chunks([("d1", 2), ("d1", 0), ("p1", 0), ("d1", 9)])
    assert [(c.document_id, c.position, c.section, c.vector) for c in texts] == [
        ("d1", 2, "Section 2", b""),
        ("d1", 0, None, b""),
        ("p1", 0, None, b""),
    ]
    assert texts[0].text == "text 2 of d1.md"


async def test_saving_again_replaces_the_document_and_all_its_chunks(store: KnowledgeStore) -> None:
    first = document("d1", chunk_count=3)
    await store.save_knowledge_document(first, chunks(first))
    second = document("d1", chunk_count=2, name="renamed.md", embed_model="mxbai-embed-large", dimensions=4)
    await store.save_knowledge_document(second, chunks(second, seed=1))
    assert await store.knowledge_documents(scopes=[CHANNEL.scope]) == [second]
    assert await store.knowledge_chunks([("d1", 2)]) == []
    rows = await store.knowledge_vectors(CHANNEL.scope, "mxbai-embed-large")
    assert rows.matrix.shape == (2, 4)
    old = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
    assert old.matrix.shape[0] == 0 and old.other_models == 1


async def test_vectors_come_per_model_and_count_the_others(store: KnowledgeStore) -> None:
    a = document("a", chunk_count=2)
    b = document("b", chunk_count=1, added_at=T0 + timedelta(seconds=1))
    c = document("c", embed_model="other", added_at=T0 + timedelta(seconds=2))
    d = document("d", target=SERVER)
    for record in (a, b, c, d):
        await store.save_knowledge_document(record, chunks(record, seed=hash(record.document_id) % 100))
    rows = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
    assert [r.document_id for r in rows.documents] == ["a", "b"]
    assert rows.doc_rows.tolist() == [0, 0, 1] and rows.positions.tolist() == [0, 1, 0]
    assert rows.other_models == 1
    assert [r.document_id for r in await store.knowledge_documents(guild_id=400)] == ["a", "d", "b", "c"]


async def test_documents_are_listed_per_scope_oldest_first(store: KnowledgeStore) -> None:
    late = document("late", added_at=T0 + timedelta(hours=1))
    early = document("early", added_at=T0)
    server = document("server", target=SERVER)
    elsewhere = document("elsewhere", target=OTHER_SERVER)
    for record in (late, early, server, elsewhere):
        await store.save_knowledge_document(record, chunks(record))
    assert [d.document_id for d in await store.knowledge_documents(scopes=[CHANNEL.scope])] == ["early", "late"]
    found = await store.knowledge_documents(scopes=[SERVER.scope, CHANNEL.scope])
    assert [d.document_id for d in found] == ["early", "server", "late"]
    assert [d.document_id for d in await store.knowledge_documents(guild_id=401)] == ["elsewhere"]


async def test_scopes_and_server_together_and_a_scope_asked_twice(store: KnowledgeStore) -> None:
    here, server, elsewhere = document("here"), document("server", target=SERVER), document("x", target=OTHER_SERVER)
    for record in (here, server, elsewhere):
        await store.save_knowledge_document(record, chunks(record))
    assert await store.knowledge_documents(scopes=[CHANNEL.scope, CHANNEL.scope]) == [here]
    both = await store.knowledge_documents(scopes=[SERVER.scope, OTHER_SERVER.scope], guild_id=401)
    assert both == [elsewhere]
    assert [c.position for c in await store.knowledge_chunks([("here", 1), ("here", 1)])] == [1, 1]


async def test_documents_added_at_the_same_time_keep_one_order(store: KnowledgeStore) -> None:
    """Saving one of them again (a pinned message edited) does not move it; vectors come in the same order."""
    for name in ("b", "c", "a"):
        record = document(name, chunk_count=1)
        await store.save_knowledge_document(record, chunks(record))
    listed = [d.document_id for d in await store.knowledge_documents(scopes=[CHANNEL.scope])]
    assert sorted(listed) == ["a", "b", "c"]
    edited = document("c", chunk_count=2, content_hash="edited")
    await store.save_knowledge_document(edited, chunks(edited, seed=3))
    assert [d.document_id for d in await store.knowledge_documents(scopes=[CHANNEL.scope])] == listed
    assert [d.document_id for d in await store.knowledge_documents(guild_id=400)] == listed
    rows = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
    assert [d.document_id for d in rows.documents] == listed
    counts = {"a": 1, "b": 1, "c": 2}
    assert [listed[n] for n in rows.doc_rows.tolist()] == [d for d in listed for _ in range(counts[d])]


async def test_deleting_takes_the_chunks_along(store: KnowledgeStore) -> None:
    a, b = document("a"), document("b")
    for record in (a, b):
        await store.save_knowledge_document(record, chunks(record))
    assert await store.delete_knowledge_documents(["a", "a", "missing"]) == 1
    assert await store.knowledge_chunks([("a", 0), ("b", 0)]) == [
        ChunkRecord("b", 0, None, "text 0 of b.md"),
    ]
    assert [d.document_id for d in await store.knowledge_documents(scopes=[CHANNEL.scope])] == ["b"]


async def test_chunks_must_belong_to_their_document(store: KnowledgeStore) -> None:
    record = document("a")
    with pytest.raises(ValueError, match="belong"):
        await store.save_knowledge_document(record, [replace(c, document_id="b") for c in chunks(record)])


async def test_pin_sources_are_tracked_per_scope_and_channel(store: KnowledgeStore) -> None:
    channel = PinSource(CHANNEL, 500, T0, 200)
    server = PinSource(SERVER, 500, T0 + timedelta(seconds=1), None)
    thread = PinSource(THREAD, 700, T0 + timedelta(seconds=2), 201)
    for source in (channel, server, thread):
        await store.save_knowledge_pin_source(source)
    await store.save_knowledge_pin_source(channel)  # again: still one
    assert await store.knowledge_pin_sources(channel_id=500) == [channel, server]
    assert await store.knowledge_pin_sources(scopes=[THREAD.scope]) == [thread]
    assert await store.knowledge_pin_sources() == [channel, server, thread]

    pins = [
        document(f"pin{i}", SERVER, kind=DocumentKind.PIN, pin_channel_id=500, pin_message_id=i, chunk_count=1)
        for i in range(2)
    ]
    kept = document("other", SERVER, kind=DocumentKind.PIN, pin_channel_id=501, pin_message_id=9, chunk_count=1)
    file = document("file", SERVER)
    for record in (*pins, kept, file):
        await store.save_knowledge_document(record, chunks(record))
    assert await store.delete_knowledge_pin_source(SERVER.scope, 500) == 2
    assert await store.knowledge_pin_sources(channel_id=500) == [channel]
    remaining = await store.knowledge_documents(scopes=[SERVER.scope])
    assert sorted(d.document_id for d in remaining) == ["file", "other"]


# -- on a database (SQLite and PostgreSQL) -------------------------------------------------------------------


async def test_knowledge_survives_a_restart(database: Database) -> None:
    record = document("a", chunk_count=4)
    opened, store = await database.open()
    await store.save_knowledge_document(record, chunks(record))
    await store.save_knowledge_pin_source(PinSource(SERVER, 500, T0))
    await opened.close()

    opened, store = await database.open()
    try:
        assert await store.knowledge_documents(guild_id=400) == [record]
        rows = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
        assert np.array_equal(rows.matrix, vectors(4))
        assert await store.knowledge_pin_sources() == [PinSource(SERVER, 500, T0)]
    finally:
        await opened.close()


async def test_a_failed_save_leaves_the_previous_document_whole(database: Database) -> None:
    opened, store = await database.open()
    try:
        first = document("a", chunk_count=3)
        await store.save_knowledge_document(first, chunks(first))
        broken = document("a", chunk_count=2)
        duplicate = chunks(broken)
        duplicate[1] = replace(duplicate[1], position=0)  # violates the primary key half-way
        with pytest.raises(StoreError, match="save a knowledge document"):
            await store.save_knowledge_document(broken, duplicate)
        assert await store.knowledge_documents(scopes=[CHANNEL.scope]) == [first]
        assert len(await store.knowledge_chunks([("a", i) for i in range(3)])) == 3
        rows = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
        assert np.array_equal(rows.matrix, vectors(3))
    finally:
        await opened.close()


async def test_a_failed_pin_source_removal_keeps_the_source_and_its_documents(
    database: Database, request: pytest.FixtureRequest
) -> None:
    opened, store = await database.open()
    try:
        await store.save_knowledge_pin_source(PinSource(SERVER, 500, T0))
        pin = document("pin", SERVER, kind=DocumentKind.PIN, pin_channel_id=500, pin_message_id=1, chunk_count=1)
        await store.save_knowledge_document(pin, chunks(pin))
        await database.execute(_REFUSE_PIN_DELETES[request.node.callspec.params["database"]])
        with pytest.raises(StoreError, match="stop tracking pinned messages"):
            await store.delete_knowledge_pin_source(SERVER.scope, 500)
        assert await store.knowledge_pin_sources() == [PinSource(SERVER, 500, T0)]
        assert await store.knowledge_documents(scopes=[SERVER.scope]) == [pin]
    finally:
        await opened.close()


async def test_a_vector_of_the_wrong_length_is_left_out(database: Database) -> None:
    opened, store = await database.open()
    try:
        record = document("a", chunk_count=2)
        rows = chunks(record)
        rows[1] = replace(rows[1], vector=b"\x00" * 5)
        await store.save_knowledge_document(record, rows)
        found = await store.knowledge_vectors(CHANNEL.scope, "nomic-embed-text")
        assert found.matrix.shape == (1, 8) and found.positions.tolist() == [0]
    finally:
        await opened.close()


# -- SQLite ----------------------------------------------------------------------------------------------------


async def test_sqlite_migration_4_creates_the_knowledge_tables(tmp_path: Path) -> None:
    database = await SqliteSettingsStore.open(db_path(tmp_path))
    await database.close()
    conn = sqlite3.connect(db_path(tmp_path))
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"knowledge_documents", "knowledge_chunks", "knowledge_pin_sources"} <= tables
    finally:
        conn.close()


# -- PostgreSQL ------------------------------------------------------------------------------------------------


async def test_postgres_keeps_vectors_as_little_endian_float32_bytes(postgres_url: str) -> None:
    database = await PostgresSettingsStore.open(postgres_url)
    try:
        record = document("a", chunk_count=2)
        await PostgresKnowledgeStore(database).save_knowledge_document(record, chunks(record))
    finally:
        await database.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        kind = await conn.fetchval(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'knowledge_chunks' AND column_name = 'vector'"
        )
        stored = [row["vector"] for row in await conn.fetch("SELECT vector FROM knowledge_chunks ORDER BY position")]
    finally:
        await conn.close()
    assert kind == "bytea"
    assert stored == [np.asarray(v, dtype="<f4").tobytes() for v in vectors(2)]


async def test_postgres_lists_documents_of_the_same_moment_by_id(postgres_url: str) -> None:
    """PostgreSQL keeps no insertion order: ties go by id (SQLite and memory keep the order first saved)."""
    database = await PostgresSettingsStore.open(postgres_url)
    try:
        store = PostgresKnowledgeStore(database)
        for name in ("b", "c", "a"):
            record = document(name, chunk_count=1)
            await store.save_knowledge_document(record, chunks(record))
        assert [d.document_id for d in await store.knowledge_documents(scopes=[CHANNEL.scope])] == ["a", "b", "c"]
    finally:
        await database.close()
