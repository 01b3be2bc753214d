"""Where team knowledge is kept: the interface every backend implements, and the in-memory twin.

The SQLite backend (bot/knowledge/sqlite_store.py) keeps documents, chunks and vectors in the
settings database; the PostgreSQL backend (bot/knowledge/postgres_store.py) implements the same
protocol on the same tables (vectors as float32 bytes in a BYTEA column), and
tests/test_knowledge_store.py runs one contract suite on every backend. Method names carry
"knowledge" so one store class can implement this protocol next to the settings and answer-record
ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

import numpy as np

from bot.channel_settings.store import Scope
from bot.knowledge.index import VECTOR_DTYPE, VectorRows, from_vector_bytes
from bot.knowledge.records import ChunkRecord, DocumentKind, DocumentRecord, PinSource

__all__ = ["KnowledgeStore", "MemoryKnowledgeStore", "VectorRowsBuilder", "vector_rows"]


@runtime_checkable
class KnowledgeStore(Protocol):
    """Persistent knowledge: documents with their chunks and vectors, and the channels whose pins are tracked."""

    async def save_knowledge_document(self, document: DocumentRecord, chunks: Sequence[ChunkRecord]) -> None:
        """Insert the document with all its chunks, or replace the one with the same id (chunks included), at once."""
        ...

    async def knowledge_documents(
        self, *, scopes: Sequence[Scope] | None = None, guild_id: int | None = None
    ) -> list[DocumentRecord]:
        """The documents of these scopes, or of every scope of a server, oldest first (no chunks).

        Documents added at the same time come in one fixed order, which saving one again keeps: the order
        they were first saved in memory and SQLite (its rowid); on PostgreSQL, which keeps no row order,
        that of their ids.
        """
        ...

    async def delete_knowledge_documents(self, document_ids: Sequence[str]) -> int:
        """Delete these documents with their chunks; return how many existed."""
        ...

    async def knowledge_vectors(self, scope: Scope, model: str) -> VectorRows:
        """Every chunk vector of the scope's documents embedded with `model`, and how many documents were not."""
        ...

    async def knowledge_chunks(self, keys: Sequence[tuple[str, int]]) -> list[ChunkRecord]:
        """The chunks (document id, position) asked for, in that order, without vectors; missing ones left out."""
        ...

    async def save_knowledge_pin_source(self, source: PinSource) -> None:
        """Start tracking a channel's pins in a scope (replacing the same scope and channel)."""
        ...

    async def knowledge_pin_sources(
        self, *, channel_id: int | None = None, scopes: Sequence[Scope] | None = None
    ) -> list[PinSource]:
        """The tracked pins of one channel (in every scope), or of these scopes."""
        ...

    async def delete_knowledge_pin_source(self, scope: Scope, channel_id: int) -> int:
        """Stop tracking a channel's pins in a scope and delete its pinned-message documents; return documents gone."""
        ...


def vector_rows(documents: Sequence[DocumentRecord], chunks: Sequence[ChunkRecord], model: str) -> VectorRows:
    """Assemble what knowledge_vectors returns from a scope's documents and their chunks (any order).

    Documents of `model` whose vector length differs from the first one's are left out: they cannot be
    compared with the rest (a model re-pulled with another size is embedded again).
    """
    wanted = [d for d in documents if d.embed_model == model]
    others = len(documents) - len(wanted)
    if not wanted:
        return VectorRows.empty(others)
    dimensions = wanted[0].dimensions
    wanted = [d for d in wanted if d.dimensions == dimensions]
    number = {d.document_id: i for i, d in enumerate(wanted)}
    mine = sorted((c for c in chunks if c.document_id in number), key=lambda c: (number[c.document_id], c.position))
    return VectorRows(
        documents=list(wanted),
        doc_rows=np.array([number[c.document_id] for c in mine], dtype=np.int32),
        positions=np.array([c.position for c in mine], dtype=np.int32),
        matrix=from_vector_bytes([c.vector for c in mine], dimensions),
        other_models=others,
    )


class VectorRowsBuilder:
    """What knowledge_vectors returns, filled one chunk at a time as a database backend reads them.

    The matrix is allocated once from the documents' chunk counts, so a large scope is never held twice
    (as stored bytes and as a matrix). Documents of `model` whose vector length differs from the first
    one's are left out, as in `vector_rows`; so is a vector of the wrong length, or a chunk beyond the
    documents' chunk counts (damaged or half-written elsewhere): left out rather than misread.
    """

    def __init__(self, documents: Sequence[DocumentRecord], model: str) -> None:
        """`documents`: every document of the scope, in the order knowledge_documents lists them."""
        wanted = [d for d in documents if d.embed_model == model]
        self.dimensions = wanted[0].dimensions if wanted else 0
        self.documents = [d for d in wanted if d.dimensions == self.dimensions]
        self._other_models = len(documents) - len(self.documents)
        total = sum(d.chunk_count for d in self.documents)
        self._matrix = np.empty((total, self.dimensions), dtype=np.float32)
        self._doc_rows = np.empty(total, dtype=np.int32)
        self._positions = np.empty(total, dtype=np.int32)
        self._filled = 0
        self._vector_size = self.dimensions * VECTOR_DTYPE.itemsize

    def add(self, number: int, position: int, vector: bytes) -> None:
        """Chunk `position` of `documents[number]`; chunks come in document order, then in position order."""
        row = self._filled
        if row >= len(self._matrix) or len(vector) != self._vector_size:
            return
        self._matrix[row] = np.frombuffer(vector, dtype=VECTOR_DTYPE)
        self._doc_rows[row] = number
        self._positions[row] = position
        self._filled += 1

    def rows(self) -> VectorRows:
        """Everything added so far."""
        if not self.documents:
            return VectorRows.empty(self._other_models)
        n = self._filled
        return VectorRows(self.documents, self._doc_rows[:n], self._positions[:n], self._matrix[:n], self._other_models)


class MemoryKnowledgeStore:
    """A KnowledgeStore in dicts: for tests, and to keep the interface honest about backends."""

    def __init__(self) -> None:
        self._documents: dict[str, DocumentRecord] = {}
        self._chunks: dict[str, list[ChunkRecord]] = {}
        self._sources: dict[tuple[Scope, int], PinSource] = {}

    async def save_knowledge_document(self, document: DocumentRecord, chunks: Sequence[ChunkRecord]) -> None:
        """Insert or replace the document and its chunks."""
        if any(c.document_id != document.document_id for c in chunks):
            raise ValueError("every chunk must belong to the document saved with it")
        self._documents[document.document_id] = document  # a replaced one keeps its place, like an UPDATE
        self._chunks[document.document_id] = sorted(chunks, key=lambda c: c.position)

    async def knowledge_documents(
        self, *, scopes: Sequence[Scope] | None = None, guild_id: int | None = None
    ) -> list[DocumentRecord]:
        """The documents of these scopes, or of a server, oldest first."""
        found = list(self._documents.values())
        if scopes is not None:
            wanted = set(scopes)
            found = [d for d in found if d.target.scope in wanted]
        if guild_id is not None:
            found = [d for d in found if d.target.guild_id == guild_id]
        return sorted(found, key=lambda d: d.added_at)

    async def delete_knowledge_documents(self, document_ids: Sequence[str]) -> int:
        """Delete these documents and their chunks."""
        gone = 0
        for document_id in dict.fromkeys(document_ids):
            if self._documents.pop(document_id, None) is not None:
                gone += 1
            self._chunks.pop(document_id, None)
        return gone

    async def knowledge_vectors(self, scope: Scope, model: str) -> VectorRows:
        """The scope's vectors for `model`."""
        documents = await self.knowledge_documents(scopes=[scope])
        chunks = [c for d in documents if d.embed_model == model for c in self._chunks.get(d.document_id, [])]
        return vector_rows(documents, chunks, model)

    async def knowledge_chunks(self, keys: Sequence[tuple[str, int]]) -> list[ChunkRecord]:
        """The chunks asked for, without vectors."""
        found = []
        for document_id, position in keys:
            for chunk in self._chunks.get(document_id, []):
                if chunk.position == position:
                    found.append(replace(chunk, vector=b""))
                    break
        return found

    async def save_knowledge_pin_source(self, source: PinSource) -> None:
        """Track a channel's pins in a scope."""
        self._sources[(source.target.scope, source.channel_id)] = source

    async def knowledge_pin_sources(
        self, *, channel_id: int | None = None, scopes: Sequence[Scope] | None = None
    ) -> list[PinSource]:
        """Tracked pins of a channel, or of these scopes."""
        found = list(self._sources.values())
        if channel_id is not None:
            found = [s for s in found if s.channel_id == channel_id]
        if scopes is not None:
            wanted = set(scopes)
            found = [s for s in found if s.target.scope in wanted]
        return sorted(found, key=lambda s: s.added_at)

    async def delete_knowledge_pin_source(self, scope: Scope, channel_id: int) -> int:
        """Stop tracking and delete the pinned-message documents of that channel in that scope."""
        self._sources.pop((scope, channel_id), None)
        doomed = [
            d.document_id
            for d in self._documents.values()
            if d.kind is DocumentKind.PIN and d.target.scope == scope and d.pin_channel_id == channel_id
        ]
        return await self.delete_knowledge_documents(doomed)
