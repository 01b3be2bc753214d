"""Team knowledge in PostgreSQL: the same tables (migration 4) and columns as in SQLite, on the settings pool.

The columns, the row a document becomes and the record a row becomes are shared with the SQLite store
(bot/knowledge/sqlite_store.py), so `python -m bot store copy` moves rows between backends as they are
(vectors are the same little-endian float32 bytes: BLOB there, BYTEA here). Each write is one
transaction: a document and its chunks always change together. A read of several statements runs in
one read-only snapshot, so it never sees half of a document being replaced.

PostgreSQL keeps no row order like SQLite's rowid, so documents added in the same millisecond are
listed in the order of their ids rather than the order they were first saved. Text columns are
compared byte by byte (COLLATE "C"), as SQLite does, whatever the database's locale.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import Scope
from bot.knowledge.index import VectorRows
from bot.knowledge.records import ChunkRecord, DocumentRecord, PinSource
from bot.knowledge.sqlite_store import (
    _DOCUMENT_COLUMNS,
    _SOURCE_COLUMNS,
    _document,
    _document_row,
    _source,
    _source_row,
)
from bot.knowledge.store import VectorRowsBuilder
from bot.storage.postgres import Connection

__all__ = ["PostgresKnowledgeStore"]

# Built once from the constant column names; every value is a bound parameter.
_SELECT_DOCUMENTS = f"SELECT {', '.join(_DOCUMENT_COLUMNS)} FROM knowledge_documents"  # noqa: S608
_OLDEST_FIRST = 'ORDER BY added_at COLLATE "C", document_id COLLATE "C"'
_UPSERT_DOCUMENT = (
    f"INSERT INTO knowledge_documents ({', '.join(_DOCUMENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_DOCUMENT_COLUMNS) + 1))}) "
    f"ON CONFLICT (document_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _DOCUMENT_COLUMNS[1:])}"
)
# A semi-join, so a scope asked for twice still lists each document once.
_BY_SCOPES = (
    f"{_SELECT_DOCUMENTS} WHERE (scope_kind, scope_id) IN (SELECT * FROM unnest($1::text[], $2::bigint[])) "  # noqa: S608
    f"{_OLDEST_FIRST}"
)
_BY_SCOPE = f"{_SELECT_DOCUMENTS} WHERE scope_kind = $1 AND scope_id = $2 {_OLDEST_FIRST}"
_BY_GUILD = f"{_SELECT_DOCUMENTS} WHERE guild_id = $1 {_OLDEST_FIRST}"
_ALL = f"{_SELECT_DOCUMENTS} {_OLDEST_FIRST}"
# The chunks of the documents numbered 1, 2, … in $1, in that order and then by position.
_VECTORS = (
    "SELECT wanted.number, c.position, c.vector "
    "FROM unnest($1::text[]) WITH ORDINALITY AS wanted (document_id, number) "
    "JOIN knowledge_chunks c ON c.document_id = wanted.document_id "
    "ORDER BY wanted.number, c.position"
)
# The chunks asked for, in the order asked (a key asked twice comes twice, as with one query per key).
_CHUNKS = (
    "SELECT c.document_id, c.position, c.section, c.text "
    "FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS wanted (document_id, position, number) "
    "JOIN knowledge_chunks c ON c.document_id = wanted.document_id AND c.position = wanted.position "
    "ORDER BY wanted.number"
)
_INSERT_CHUNK = (
    "INSERT INTO knowledge_chunks (document_id, position, section, text, vector) VALUES ($1, $2, $3, $4, $5)"
)
_DELETE_DOCUMENTS = "DELETE FROM knowledge_documents WHERE document_id = ANY($1::text[])"
_SELECT_SOURCES = f"SELECT {_SOURCE_COLUMNS} FROM knowledge_pin_sources"  # noqa: S608
# Oldest first; ties in primary-key order, the order SQLite's table (WITHOUT ROWID) lists them in.
_SOURCES_ORDER = 'ORDER BY added_at COLLATE "C", scope_kind COLLATE "C", scope_id, channel_id'
_ALL_SOURCES = f"{_SELECT_SOURCES} {_SOURCES_ORDER}"
_SOURCES_OF_CHANNEL = f"{_SELECT_SOURCES} WHERE channel_id = $1 {_SOURCES_ORDER}"
_UPSERT_SOURCE = (
    f"INSERT INTO knowledge_pin_sources ({_SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "  # noqa: S608
    "ON CONFLICT (scope_kind, scope_id, channel_id) DO UPDATE SET guild_id = excluded.guild_id, "
    "parent_id = excluded.parent_id, added_at = excluded.added_at, added_by = excluded.added_by"
)
# Rows fetched per round trip while a scope's vectors are read (about 3 MB of 768-dimension vectors).
_VECTOR_BATCH = 1000


def _count(status: str) -> int:
    """The row count of a command tag such as "DELETE 3"."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresKnowledgeStore:
    """A KnowledgeStore in the knowledge tables of the PostgreSQL database."""

    def __init__(self, database: PostgresSettingsStore) -> None:
        self._database = database

    async def save_knowledge_document(self, document: DocumentRecord, chunks: Sequence[ChunkRecord]) -> None:
        """Insert or replace the document and all its chunks in one transaction."""
        if any(c.document_id != document.document_id for c in chunks):
            raise ValueError("every chunk must belong to the document saved with it")
        row = _document_row(document)
        chunk_rows = [(c.document_id, c.position, c.section, c.text, c.vector) for c in chunks]

        async def save(conn: Connection) -> None:
            await conn.execute("DELETE FROM knowledge_chunks WHERE document_id = $1", document.document_id)
            await conn.execute(_UPSERT_DOCUMENT, *row)
            if chunk_rows:
                await conn.executemany(_INSERT_CHUNK, chunk_rows)

        await self._database.run_job("save a knowledge document", save)

    async def knowledge_documents(
        self, *, scopes: Sequence[Scope] | None = None, guild_id: int | None = None
    ) -> list[DocumentRecord]:
        """The documents of these scopes, or of a server, oldest first."""
        wanted = list(scopes) if scopes is not None else None
        if wanted is not None and not wanted:
            return []

        async def read(conn: Connection) -> list[DocumentRecord]:
            if wanted is not None:
                rows = await conn.fetch(_BY_SCOPES, [s.kind.value for s in wanted], [s.id for s in wanted])
            elif guild_id is not None:
                rows = await conn.fetch(_BY_GUILD, guild_id)
            else:
                rows = await conn.fetch(_ALL)
            return [_document(tuple(row)) for row in rows]

        found = await self._database.run_job("read knowledge documents", read, write=False)
        if wanted is not None and guild_id is not None:
            found = [d for d in found if d.target.guild_id == guild_id]
        return found

    async def delete_knowledge_documents(self, document_ids: Sequence[str]) -> int:
        """Delete these documents; their chunks go with them (ON DELETE CASCADE)."""
        ids = list(dict.fromkeys(document_ids))
        if not ids:
            return 0

        async def delete(conn: Connection) -> int:
            return _count(await conn.execute(_DELETE_DOCUMENTS, ids))

        return await self._database.run_job("delete knowledge documents", delete)

    async def knowledge_vectors(self, scope: Scope, model: str) -> VectorRows:
        """The scope's vectors for `model`, streamed into the matrix in batches (the event loop is never held long)."""

        async def read(conn: Connection) -> VectorRows:
            # One snapshot for both statements: a document replaced meanwhile is seen before or after, never half.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                documents = [_document(tuple(row)) for row in await conn.fetch(_BY_SCOPE, scope.kind.value, scope.id)]
                builder = VectorRowsBuilder(documents, model)
                if builder.documents:
                    ids = [d.document_id for d in builder.documents]
                    async for number, position, vector in conn.cursor(_VECTORS, ids, prefetch=_VECTOR_BATCH):
                        builder.add(number - 1, position, vector)
                return builder.rows()

        return await self._database.run_job("read knowledge vectors", read, write=False)

    async def knowledge_chunks(self, keys: Sequence[tuple[str, int]]) -> list[ChunkRecord]:
        """The chunks asked for, in that order, without vectors."""
        wanted = list(keys)
        if not wanted:
            return []

        async def read(conn: Connection) -> list[ChunkRecord]:
            rows = await conn.fetch(_CHUNKS, [k[0] for k in wanted], [k[1] for k in wanted])
            return [ChunkRecord(document_id, position, section, text) for document_id, position, section, text in rows]

        return await self._database.run_job("read knowledge chunks", read, write=False)

    async def save_knowledge_pin_source(self, source: PinSource) -> None:
        """Track a channel's pins in a scope."""
        row = _source_row(source)

        async def save(conn: Connection) -> None:
            await conn.execute(_UPSERT_SOURCE, *row)

        await self._database.run_job("save a pinned-messages source", save)

    async def knowledge_pin_sources(
        self, *, channel_id: int | None = None, scopes: Sequence[Scope] | None = None
    ) -> list[PinSource]:
        """Tracked pins of a channel, or of these scopes."""
        wanted = set(scopes) if scopes is not None else None

        async def read(conn: Connection) -> list[PinSource]:
            if channel_id is not None:
                rows = await conn.fetch(_SOURCES_OF_CHANNEL, channel_id)
            else:
                rows = await conn.fetch(_ALL_SOURCES)
            return [_source(tuple(row)) for row in rows]

        found = await self._database.run_job("read pinned-messages sources", read, write=False)
        return found if wanted is None else [s for s in found if s.target.scope in wanted]

    async def delete_knowledge_pin_source(self, scope: Scope, channel_id: int) -> int:
        """Stop tracking and delete that channel's pinned-message documents in that scope, in one transaction."""

        async def delete(conn: Connection) -> int:
            await conn.execute(
                "DELETE FROM knowledge_pin_sources WHERE scope_kind = $1 AND scope_id = $2 AND channel_id = $3",
                scope.kind.value,
                scope.id,
                channel_id,
            )
            status = await conn.execute(
                "DELETE FROM knowledge_documents WHERE kind = 'pin' AND scope_kind = $1 AND scope_id = $2 "
                "AND pin_channel_id = $3",
                scope.kind.value,
                scope.id,
                channel_id,
            )
            return _count(status)

        return await self._database.run_job("stop tracking pinned messages", delete)
