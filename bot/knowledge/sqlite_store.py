"""Team knowledge in the settings database: the same SQLite file, connection and worker thread.

The tables come from migration 4 in bot/channel_settings/store.py (one migration list per file).
Every call is one job on the settings store's worker thread and one transaction, so a document and
its chunks always change together, and a process killed mid-write leaves the last whole document.
Vectors are turned into a numpy matrix on that thread too, so loading a large scope never holds the
event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.channel_settings.store import Scope, ScopeKind, SqliteSettingsStore
from bot.knowledge.index import VectorRows
from bot.knowledge.records import ChunkRecord, DocumentKind, DocumentRecord, KnowledgeTarget, PinSource
from bot.knowledge.store import VectorRowsBuilder

_DOCUMENT_COLUMNS = (
    "document_id",
    "guild_id",
    "scope_kind",
    "scope_id",
    "parent_id",
    "kind",
    "name",
    "embed_model",
    "dimensions",
    "chunk_count",
    "chars",
    "content_hash",
    "added_at",
    "added_by",
    "link",
    "pin_channel_id",
    "pin_message_id",
)
# Built once from the constant column names above; every value is a bound parameter.
_SELECT_DOCUMENTS = f"SELECT {', '.join(_DOCUMENT_COLUMNS)} FROM knowledge_documents"  # noqa: S608
_UPSERT_DOCUMENT = (
    f"INSERT INTO knowledge_documents ({', '.join(_DOCUMENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _DOCUMENT_COLUMNS)}) "
    f"ON CONFLICT (document_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _DOCUMENT_COLUMNS[1:])}"
)
_BY_SCOPE = f"{_SELECT_DOCUMENTS} WHERE scope_kind = ? AND scope_id = ? ORDER BY added_at, rowid"
_BY_GUILD = f"{_SELECT_DOCUMENTS} WHERE guild_id = ? ORDER BY added_at, rowid"
_ALL = f"{_SELECT_DOCUMENTS} ORDER BY added_at, rowid"
_SOURCE_COLUMNS = "scope_kind, scope_id, channel_id, guild_id, parent_id, added_at, added_by"
_SELECT_SOURCES = f"SELECT {_SOURCE_COLUMNS} FROM knowledge_pin_sources"  # noqa: S608
# SQLite's default limit on bound parameters is 999 on old builds.
_BATCH = 500


def _time(value: datetime) -> str:
    # Fixed width and always UTC, so the text sorts in time order.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


class SqliteKnowledgeStore:
    """A KnowledgeStore in the knowledge tables of the settings database."""

    def __init__(self, database: SqliteSettingsStore) -> None:
        self._database = database

    async def save_knowledge_document(self, document: DocumentRecord, chunks: Sequence[ChunkRecord]) -> None:
        """Insert or replace the document and all its chunks in one transaction."""
        if any(c.document_id != document.document_id for c in chunks):
            raise ValueError("every chunk must belong to the document saved with it")
        row = _document_row(document)
        chunk_rows = [(c.document_id, c.position, c.section, c.text, c.vector) for c in chunks]

        def save(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ?", (document.document_id,))
            conn.execute(_UPSERT_DOCUMENT, row)
            conn.executemany(
                "INSERT INTO knowledge_chunks (document_id, position, section, text, vector) VALUES (?, ?, ?, ?, ?)",
                chunk_rows,
            )

        await self._database.run_job("save a knowledge document", save)

    async def knowledge_documents(
        self, *, scopes: Sequence[Scope] | None = None, guild_id: int | None = None
    ) -> list[DocumentRecord]:
        """The documents of these scopes, or of a server, oldest first."""
        wanted = list(scopes) if scopes is not None else None

        def read(conn: sqlite3.Connection) -> list[DocumentRecord]:
            if wanted is not None:
                if not wanted:
                    return []
                # Built from a constant clause per scope; every value is a bound parameter.
                where = " OR ".join("(scope_kind = ? AND scope_id = ?)" for _ in wanted)
                values = [v for s in wanted for v in (s.kind.value, s.id)]
                rows = conn.execute(f"{_SELECT_DOCUMENTS} WHERE {where} ORDER BY added_at, rowid", values).fetchall()
            elif guild_id is not None:
                rows = conn.execute(_BY_GUILD, (guild_id,)).fetchall()
            else:
                rows = conn.execute(_ALL).fetchall()
            found = [_document(row) for row in rows]
            if wanted is not None and guild_id is not None:
                found = [d for d in found if d.target.guild_id == guild_id]
            return found

        return await self._database.run_job("read knowledge documents", read, write=False)

    async def delete_knowledge_documents(self, document_ids: Sequence[str]) -> int:
        """Delete these documents; their chunks go with them (ON DELETE CASCADE)."""
        ids = list(dict.fromkeys(document_ids))

        def delete(conn: sqlite3.Connection) -> int:
            gone = 0
            for start in range(0, len(ids), _BATCH):
                part = ids[start : start + _BATCH]
                marks = ", ".join("?" for _ in part)
                gone += conn.execute(f"DELETE FROM knowledge_documents WHERE document_id IN ({marks})", part).rowcount  # noqa: S608
            return gone

        return await self._database.run_job("delete knowledge documents", delete)

    async def knowledge_vectors(self, scope: Scope, model: str) -> VectorRows:
        """The scope's vectors for `model`, read and assembled into a matrix on the database thread."""

        def read(conn: sqlite3.Connection) -> VectorRows:
            documents = [_document(row) for row in conn.execute(_BY_SCOPE, (scope.kind.value, scope.id))]
            builder = VectorRowsBuilder(documents, model)
            for number, document in enumerate(builder.documents):
                cursor = conn.execute(
                    "SELECT position, vector FROM knowledge_chunks WHERE document_id = ? ORDER BY position",
                    (document.document_id,),
                )
                for position, blob in cursor:
                    builder.add(number, position, blob)
            return builder.rows()

        return await self._database.run_job("read knowledge vectors", read, write=False)

    async def knowledge_chunks(self, keys: Sequence[tuple[str, int]]) -> list[ChunkRecord]:
        """The chunks asked for, in that order, without vectors."""
        wanted = list(keys)

        def read(conn: sqlite3.Connection) -> list[ChunkRecord]:
            found = []
            for document_id, position in wanted:
                row = conn.execute(
                    "SELECT section, text FROM knowledge_chunks WHERE document_id = ? AND position = ?",
                    (document_id, position),
                ).fetchone()
                if row is not None:
                    found.append(ChunkRecord(document_id, position, row[0], row[1]))
            return found

        return await self._database.run_job("read knowledge chunks", read, write=False)

    async def save_knowledge_pin_source(self, source: PinSource) -> None:
        """Track a channel's pins in a scope."""
        row = _source_row(source)

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO knowledge_pin_sources ({_SOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
                "ON CONFLICT (scope_kind, scope_id, channel_id) DO UPDATE SET guild_id = excluded.guild_id, "
                "parent_id = excluded.parent_id, added_at = excluded.added_at, added_by = excluded.added_by",
                row,
            )

        await self._database.run_job("save a pinned-messages source", save)

    async def knowledge_pin_sources(
        self, *, channel_id: int | None = None, scopes: Sequence[Scope] | None = None
    ) -> list[PinSource]:
        """Tracked pins of a channel, or of these scopes."""
        wanted = set(scopes) if scopes is not None else None

        def read(conn: sqlite3.Connection) -> list[PinSource]:
            if channel_id is not None:
                rows = conn.execute(f"{_SELECT_SOURCES} WHERE channel_id = ?", (channel_id,)).fetchall()
            else:
                rows = conn.execute(_SELECT_SOURCES).fetchall()
            found = [_source(row) for row in rows]
            if wanted is not None:
                found = [s for s in found if s.target.scope in wanted]
            return sorted(found, key=lambda s: s.added_at)

        return await self._database.run_job("read pinned-messages sources", read, write=False)

    async def delete_knowledge_pin_source(self, scope: Scope, channel_id: int) -> int:
        """Stop tracking and delete that channel's pinned-message documents in that scope, in one transaction."""

        def delete(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM knowledge_pin_sources WHERE scope_kind = ? AND scope_id = ? AND channel_id = ?",
                (scope.kind.value, scope.id, channel_id),
            )
            return conn.execute(
                "DELETE FROM knowledge_documents WHERE kind = 'pin' AND scope_kind = ? AND scope_id = ? "
                "AND pin_channel_id = ?",
                (scope.kind.value, scope.id, channel_id),
            ).rowcount

        return await self._database.run_job("stop tracking pinned messages", delete)


def _document_row(document: DocumentRecord) -> tuple[Any, ...]:
    target = document.target
    return (
        document.document_id,
        target.guild_id,
        target.scope.kind.value,
        target.scope.id,
        target.parent_id,
        document.kind.value,
        document.name,
        document.embed_model,
        document.dimensions,
        document.chunk_count,
        document.chars,
        document.content_hash,
        _time(document.added_at),
        document.added_by,
        document.link,
        document.pin_channel_id,
        document.pin_message_id,
    )


def _document(row: Sequence[Any]) -> DocumentRecord:
    values = dict(zip(_DOCUMENT_COLUMNS, row, strict=True))
    target = KnowledgeTarget(
        Scope(ScopeKind(values["scope_kind"]), values["scope_id"]), values["guild_id"], values["parent_id"]
    )
    return DocumentRecord(
        document_id=values["document_id"],
        target=target,
        kind=DocumentKind(values["kind"]),
        name=values["name"],
        embed_model=values["embed_model"],
        dimensions=values["dimensions"],
        chunk_count=values["chunk_count"],
        chars=values["chars"],
        content_hash=values["content_hash"],
        added_at=datetime.fromisoformat(values["added_at"]),
        added_by=values["added_by"],
        link=values["link"],
        pin_channel_id=values["pin_channel_id"],
        pin_message_id=values["pin_message_id"],
    )


def _source_row(source: PinSource) -> tuple[Any, ...]:
    target = source.target
    return (
        target.scope.kind.value,
        target.scope.id,
        source.channel_id,
        target.guild_id,
        target.parent_id,
        _time(source.added_at),
        source.added_by,
    )


def _source(row: Sequence[Any]) -> PinSource:
    scope_kind, scope_id, channel_id, guild_id, parent_id, added_at, added_by = row
    target = KnowledgeTarget(Scope(ScopeKind(scope_kind), scope_id), guild_id, parent_id)
    return PinSource(target=target, channel_id=channel_id, added_at=datetime.fromisoformat(added_at), added_by=added_by)
