"""Team knowledge: adding documents and pinned messages, removing them, and finding excerpts for a question.

Discord-free. The cog hands over file bytes and pinned messages as plain records; questions come
through bot/prompt_preparation.py. Documents are read and chunked in a worker thread and embedded
through Ollama's /api/embed in batches, one indexing job at a time (a semaphore), outside the chat
queue: indexing a large file never holds up answers. Searching is one matrix-vector product per
scope, also in a worker thread.

A scope's documents are embedded with the `embed_model` in effect for it. When that changes, the
documents still on another model are embedded again in the background; until they are done, a
question uses the ones already on the new model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from bot.channel_settings.store import SettingsStore, StoreError
from bot.knowledge.chunking import Chunk, chunk_document, chunk_text, embedding_input
from bot.knowledge.documents import DocumentFormat, extract_document
from bot.knowledge.embedder import Embedder
from bot.knowledge.index import Hit, Matrix, vector_bytes
from bot.knowledge.library import KnowledgeLibrary
from bot.knowledge.records import (
    ChunkRecord,
    DocumentKind,
    DocumentRecord,
    KnowledgePlace,
    KnowledgeTarget,
    PinSource,
    pin_title,
)
from bot.knowledge.refusals import (
    KNOWLEDGE_STORE_FAILED,
    DocumentTooLarge,
    KnowledgeNotSaved,
    KnowledgeRefusal,
    ScopeFull,
    UnreadableDocument,
)
from bot.knowledge.reindex import Reindexer
from bot.knowledge.results import (
    Excerpt,
    IndexProgress,
    KnowledgeLimits,
    PinnedMessage,
    PinSyncResult,
    ReembedStatus,
    Retrieval,
    ScopeOverview,
)
from bot.knowledge.store import KnowledgeStore
from bot.streaming import notes

__all__ = [
    "Excerpt",
    "IndexProgress",
    "KnowledgeBase",
    "KnowledgeLimits",
    "PinSyncResult",
    "PinnedMessage",
    "ReembedStatus",
    "Retrieval",
    "ScopeOverview",
]

log = logging.getLogger(__name__)

# The question is what gets embedded; a pasted log beyond this says nothing more about what is asked.
MAX_QUERY_CHARS = 2000


def content_hash(text: str) -> str:
    """A short fingerprint of a document's text (a pinned message edited since it was indexed differs)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _now() -> datetime:
    return datetime.now(UTC)


class KnowledgeBase:
    """Every scope's team knowledge: documents, pinned messages, embeddings and search."""

    def __init__(
        self,
        store: KnowledgeStore,
        settings: SettingsStore,
        embedder: Embedder,
        *,
        default_model: str,
        limits: KnowledgeLimits | None = None,
    ) -> None:
        self.limits = limits or KnowledgeLimits()
        self.library = KnowledgeLibrary(store, settings, default_model=default_model)
        self._store = store
        self._embedder = embedder
        # One indexing job (a file, or embedding a scope again) at a time: Ollama works through them anyway,
        # and this keeps the batches of a question's own embedding from queueing behind several jobs.
        self._jobs = asyncio.Semaphore(1)
        self._pin_locks: dict[int, asyncio.Lock] = {}
        self._tracked_channels: set[int] | None = None
        self._reindexer = Reindexer(self.library, embedder, self._jobs)
        self._busy = 0

    @property
    def idle(self) -> bool:
        """No indexing, pin update or re-embedding is running."""
        return self._busy == 0 and not self._reindexer.busy

    async def close(self) -> None:
        """Cancel background re-embedding (it resumes on next use)."""
        await self._reindexer.close()

    # ---- files

    def check_size(self, name: str, size: int) -> None:
        """Refuse a file over the size limit before it is downloaded."""
        if size > self.limits.max_file_bytes:
            raise DocumentTooLarge(name, size, self.limits.max_file_bytes)

    async def add_file(
        self,
        target: KnowledgeTarget,
        name: str,
        content_type: str | None,
        data: bytes,
        *,
        added_by: int | None,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> tuple[DocumentRecord, DocumentRecord | None]:
        """Read, chunk, embed and store a file; a file of the same name in the scope is replaced.

        Returns the new document and the one it replaced. Raises a KnowledgeRefusal saying why not.
        """
        report = progress or (lambda _: None)
        self._busy += 1
        try:
            self.check_size(name, len(data))
            extracted = await asyncio.to_thread(extract_document, name, content_type, data)
            chunks = await asyncio.to_thread(chunk_document, extracted)
            if not chunks:
                raise UnreadableDocument.empty(name)
            await self._check_room(target, name, len(chunks))
            model = (await self.library.models([target]))[target.scope]
            total = len(chunks)
            if self._jobs.locked():
                report(IndexProgress(0, total, waiting=True))
            async with self._jobs:
                report(IndexProgress(0, total))
                inputs = [embedding_input(name, c) for c in chunks]
                vectors = await self._embedder.embed(model, inputs, progress=lambda n: report(IndexProgress(n, total)))
            async with self.library.lock(target.scope):
                await self._check_room(target, name, total)
                replaced = await self._file_named(target, name)
                document = DocumentRecord(
                    document_id=replaced.document_id if replaced else uuid.uuid4().hex,
                    target=target,
                    kind=DocumentKind.FILE,
                    name=name,
                    embed_model=model,
                    dimensions=int(vectors.shape[1]),
                    chunk_count=total,
                    chars=extracted.chars,
                    content_hash=content_hash("\n".join(p.text for p in extracted.parts)),
                    added_at=_now(),
                    added_by=added_by,
                )
                await self._store.save_knowledge_document(document, _chunk_records(document, chunks, vectors))
                self.library.saved(document, vectors)
            log.info(
                "knowledge file added scope=%s:%s chunks=%d chars=%d model=%s replaced=%s",
                target.scope.kind,
                target.scope.id,
                total,
                extracted.chars,
                model,
                replaced is not None,
            )
            return document, replaced
        except StoreError as exc:
            # Reported to whoever added the file (a KnowledgeRefusal), not left to the generic command failure.
            log.warning("knowledge file not saved in scope=%s:%s: %s", target.scope.kind, target.scope.id, exc)
            self.library.forget(target.scope)
            raise KnowledgeNotSaved.file(name) from exc
        finally:
            self._busy -= 1

    async def _file_named(self, target: KnowledgeTarget, name: str) -> DocumentRecord | None:
        documents = (await self.library.documents([target.scope]))[target.scope]
        return next((d for d in documents if d.kind is DocumentKind.FILE and d.name == name), None)

    async def _check_room(self, target: KnowledgeTarget, name: str, chunks: int) -> None:
        """Refuse a file that would pass the scope's files or chunks limit (a same-named file is replaced)."""
        documents = (await self.library.documents([target.scope]))[target.scope]
        others = [d for d in documents if not (d.kind is DocumentKind.FILE and d.name == name)]
        files = sum(1 for d in others if d.kind is DocumentKind.FILE)
        if files >= self.limits.max_files:
            raise ScopeFull.files(server=target.server, limit=self.limits.max_files)
        used = sum(d.chunk_count for d in others)
        if used + chunks > self.limits.max_chunks:
            raise ScopeFull.chunks(name, chunks, server=target.server, used=used, limit=self.limits.max_chunks)

    # ---- removing

    async def documents_here(self, place: KnowledgePlace) -> list[DocumentRecord]:
        """Every document a question here draws on (this channel's, its parent's, the server's)."""
        scopes = [t.scope for t in place.targets()]
        found = await self.library.documents(scopes)
        return [d for scope in scopes for d in found[scope]]

    async def remove_document(self, document: DocumentRecord) -> bool:
        """Delete a document with its chunks; False if it was already gone."""
        scope = document.target.scope
        async with self.library.lock(scope):
            gone = await self._store.delete_knowledge_documents([document.document_id])
            self.library.removed(scope, [document.document_id])
        log.info("knowledge document removed scope=%s:%s kind=%s", scope.kind, scope.id, document.kind)
        return gone > 0

    async def remove_pin_source(self, target: KnowledgeTarget, channel_id: int) -> int:
        """Stop keeping a channel's pins in a scope and delete them from it; return how many documents went."""
        scope = target.scope
        async with self._pin_lock(channel_id), self.library.lock(scope):
            documents = (await self.library.documents([scope]))[scope]
            doomed = [d.document_id for d in documents if d.kind is DocumentKind.PIN and d.pin_channel_id == channel_id]
            gone = await self._store.delete_knowledge_pin_source(scope, channel_id)
            self.library.removed(scope, doomed)
        self._tracked_channels = None
        log.info("pinned messages of channel %s removed from scope=%s:%s (%d)", channel_id, scope.kind, scope.id, gone)
        return gone

    # ---- pinned messages

    async def pin_sources_here(self, place: KnowledgePlace) -> list[PinSource]:
        """The channels whose pins are kept in the scopes a question here draws on."""
        return await self._store.knowledge_pin_sources(scopes=[t.scope for t in place.targets()])

    async def tracks_pins(self, channel_id: int) -> bool:
        """Whether any scope keeps this channel's pins (cheap: the tracked channels are cached)."""
        if self._tracked_channels is None:
            sources = await self._store.knowledge_pin_sources()
            self._tracked_channels = {s.channel_id for s in sources}
        return channel_id in self._tracked_channels

    async def tracked_channels(self) -> set[int]:
        """Every channel whose pins some scope keeps."""
        await self.tracks_pins(0)
        return set(self._tracked_channels or ())

    async def add_pin_source(
        self, target: KnowledgeTarget, channel_id: int, pins: Sequence[PinnedMessage], *, added_by: int | None
    ) -> PinSyncResult:
        """Keep `channel_id`'s pinned messages in the scope from now on, starting with `pins`."""
        source = PinSource(target=target, channel_id=channel_id, added_at=_now(), added_by=added_by)
        try:
            await self._store.save_knowledge_pin_source(source)
        except StoreError as exc:
            log.warning("pinned messages of channel %s not tracked: %s", channel_id, exc)
            raise KnowledgeNotSaved.pins() from exc
        self._tracked_channels = None
        return await self._sync_source(source, pins)

    async def sync_pins(self, channel_id: int, pins: Sequence[PinnedMessage]) -> list[PinSyncResult]:
        """Bring every scope that keeps this channel's pins in step with `pins` (the channel's pins now)."""
        try:
            sources = await self._store.knowledge_pin_sources(channel_id=channel_id)
        except StoreError as exc:
            log.warning("pins of channel %s not synced: %s", channel_id, exc)
            raise KnowledgeNotSaved.pins() from exc
        return [await self._sync_source(source, pins) for source in sources]

    def _pin_lock(self, channel_id: int) -> asyncio.Lock:
        return self._pin_locks.setdefault(channel_id, asyncio.Lock())

    async def _sync_source(self, source: PinSource, pins: Sequence[PinnedMessage]) -> PinSyncResult:
        target, channel_id = source.target, source.channel_id
        scope = target.scope
        self._busy += 1
        try:
            async with self._pin_lock(channel_id):
                documents = (await self.library.documents([scope]))[scope]
                mine = {d.pin_message_id: d for d in documents if d.kind is DocumentKind.PIN}
                mine = {mid: d for mid, d in mine.items() if d.pin_channel_id == channel_id}
                current = {p.message_id: p for p in pins if p.channel_id == channel_id and p.content.strip()}
                gone = [d.document_id for mid, d in mine.items() if mid not in current]
                fresh = [p for mid, p in current.items() if mid not in mine or mine[mid].content_hash != _pin_hash(p)]
                kept = len(current) - len(fresh)
                model = (await self.library.models([target]))[scope]
                chunked = [(p, chunk_text(p.content, DocumentFormat.TEXT)) for p in fresh]
                used = sum(d.chunk_count for d in documents if d.document_id not in gone)
                room = (
                    self.limits.max_chunks
                    - used
                    + sum(mine[p.message_id].chunk_count for p, _ in chunked if p.message_id in mine)
                )
                fitting, skipped = [], 0
                for pin, chunks in chunked:
                    if len(chunks) <= room:
                        fitting.append((pin, chunks))
                        room -= len(chunks)
                    else:
                        skipped += 1
                inputs = [embedding_input(pin_title(p.author_name), c) for p, chunks in fitting for c in chunks]
                vectors = await self._embedder.embed(model, inputs) if inputs else np.zeros((0, 0), np.float32)
                async with self.library.lock(scope):
                    added = updated = 0
                    row = 0
                    saved: list[tuple[DocumentRecord, Matrix | None]] = []
                    for pin, chunks in fitting:
                        previous = mine.get(pin.message_id)
                        own = vectors[row : row + len(chunks)]
                        row += len(chunks)
                        document = DocumentRecord(
                            document_id=previous.document_id if previous else uuid.uuid4().hex,
                            target=target,
                            kind=DocumentKind.PIN,
                            name=pin.author_name,
                            embed_model=model,
                            dimensions=int(own.shape[1]),
                            chunk_count=len(chunks),
                            chars=len(pin.content),
                            content_hash=_pin_hash(pin),
                            added_at=previous.added_at if previous else _now(),
                            added_by=source.added_by,
                            link=pin.link,
                            pin_channel_id=channel_id,
                            pin_message_id=pin.message_id,
                        )
                        await self._store.save_knowledge_document(document, _chunk_records(document, chunks, own))
                        saved.append((document, own))
                        updated += previous is not None
                        added += previous is None
                    self.library.saved_many(scope, saved)
                    if gone:
                        await self._store.delete_knowledge_documents(gone)
                        self.library.removed(scope, gone)
            result = PinSyncResult(target, added, updated, len(gone), kept, skipped)
            log.info(
                "pins of channel %s synced into scope=%s:%s added=%d updated=%d removed=%d kept=%d skipped=%d",
                channel_id,
                scope.kind,
                scope.id,
                added,
                updated,
                len(gone),
                kept,
                skipped,
            )
            return result
        except StoreError as exc:
            log.warning("pins of channel %s not synced into scope=%s:%s: %s", channel_id, scope.kind, scope.id, exc)
            self.library.forget(scope)
            raise KnowledgeNotSaved.pins() from exc
        finally:
            self._busy -= 1

    # ---- questions

    async def retrieve(self, place: KnowledgePlace, question: str) -> Retrieval:
        """The excerpts for a question asked here; never raises for Ollama trouble (it becomes a note)."""
        if not question.strip() or self.limits.excerpts <= 0:
            return Retrieval()
        try:
            return await self._search(place, question, limit=self.limits.excerpts)
        except KnowledgeRefusal as refusal:
            log.info("knowledge not used in channel %s: %s", place.channel_id, type(refusal).__name__)
            return Retrieval(notes=[notes.knowledge_not_used(str(refusal))])
        except StoreError as exc:
            # The answer matters more than its excerpts: go on without them, and say so.
            log.warning("knowledge not used in channel %s: %s", place.channel_id, exc)
            return Retrieval(notes=[notes.knowledge_not_used(KNOWLEDGE_STORE_FAILED)])

    async def search(
        self, place: KnowledgePlace, query: str, *, limit: int | None = None, min_score: float | None = None
    ) -> list[Excerpt]:
        """The best excerpts for `query` here (for /knowledge search); raises a KnowledgeRefusal if it can't.

        `min_score` defaults to the threshold answers use; a lower one shows near misses too.
        """
        found = await self._search(place, query, limit=limit or self.limits.excerpts, min_score=min_score)
        return found.excerpts

    async def _search(
        self, place: KnowledgePlace, query: str, *, limit: int, min_score: float | None = None
    ) -> Retrieval:
        targets = place.targets()
        documents = await self.library.documents([t.scope for t in targets])
        targets = [t for t in targets if documents[t.scope]]
        if not targets:
            return Retrieval()  # no knowledge here: no embedding call, nothing to wait for
        models = await self.library.models(targets)
        indexes = [(t, await self.library.index(t.scope, models[t.scope])) for t in targets]
        retrieval = Retrieval()
        for target, index in indexes:
            if index.other_models:
                status = self._reindexer.schedule(target, models[target.scope])
                if not index.size and status is not None:
                    retrieval.notes.append(_reembed_note(status))
        live = [(t, index) for t, index in indexes if index.size]
        if not live:
            return retrieval
        queries: dict[str, Matrix] = {}
        for model in dict.fromkeys(index.model for _, index in live):
            queries[model] = await self._embedder.embed(model, [query[:MAX_QUERY_CHARS]])
        hits: list[Hit] = []
        for _, index in live:
            threshold = self.limits.min_similarity if min_score is None else min_score
            hits += await asyncio.to_thread(index.search, queries[index.model][0], limit=limit, min_score=threshold)
        hits.sort(key=lambda h: -h.score)
        best = hits[:limit]
        chunks = await self._store.knowledge_chunks([(h.document.document_id, h.position) for h in best])
        texts = {(c.document_id, c.position): c for c in chunks}
        for hit in best:
            chunk = texts.get((hit.document.document_id, hit.position))
            if chunk is not None:
                retrieval.excerpts.append(Excerpt(hit.document, chunk.section, chunk.text, hit.score))
        return retrieval

    # ---- overview and models

    async def overview(self, place: KnowledgePlace) -> list[ScopeOverview]:
        """Each scope a question here draws on, with its documents, tracked pins and re-embedding progress."""
        targets = place.targets()
        documents = await self.library.documents([t.scope for t in targets])
        sources = await self._store.knowledge_pin_sources(scopes=[t.scope for t in targets])
        models = await self.library.models(targets)
        found = []
        for target in targets:
            model = models[target.scope]
            status = None
            if any(d.embed_model != model for d in documents[target.scope]):
                status = self._reindexer.schedule(target, model)
            found.append(
                ScopeOverview(
                    target=target,
                    model=model,
                    documents=documents[target.scope],
                    pin_sources=[s for s in sources if s.target.scope == target.scope],
                    reembedding=status or self._reindexer.finished(target.scope, model),
                )
            )
        return found

    async def refresh_models(self, guild_id: int) -> list[ReembedStatus]:
        """Start embedding again, in the background, every scope of the server whose model changed."""
        return await self._reindexer.refresh(guild_id)


def _chunk_records(document: DocumentRecord, chunks: Sequence[Chunk], vectors: Matrix) -> list[ChunkRecord]:
    return [
        ChunkRecord(document.document_id, position, chunk.section, chunk.text, vector_bytes(vectors[position]))
        for position, chunk in enumerate(chunks)
    ]


def _pin_hash(pin: PinnedMessage) -> str:
    return content_hash(f"{pin.author_name}\n{pin.content}")


def _reembed_note(status: ReembedStatus) -> str:
    if status.error is not None:
        return notes.knowledge_reembed_failed(status.model, status.error)
    return notes.knowledge_reembedding(status.model, status.done, status.total)
