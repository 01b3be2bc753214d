"""Embedding a scope's documents again when the embedding model in effect there changed, in the background.

A scope's documents are embedded with the `embed_model` in effect for it. When that changes (/set,
/reset, a new OLLAMA_EMBED_MODEL), the documents still on another model are embedded again, one
indexing job at a time with the others; until that is done, a question uses the documents already on
the new model. A document changed or removed meanwhile is left as it now is. A failed run (model
missing, Ollama down) is tried again on the next question after a minute, or at once on request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from bot.channel_settings.store import Scope
from bot.knowledge.chunking import Chunk, embedding_input
from bot.knowledge.embedder import Embedder
from bot.knowledge.index import vector_bytes
from bot.knowledge.library import KnowledgeLibrary
from bot.knowledge.records import DocumentKind, DocumentRecord, KnowledgeTarget, pin_title
from bot.knowledge.refusals import KnowledgeRefusal
from bot.knowledge.results import ReembedStatus

__all__ = ["REEMBED_RETRY_SECONDS", "Reindexer"]

log = logging.getLogger(__name__)

# A failed re-embedding (model missing, Ollama down) is tried again at most this often.
REEMBED_RETRY_SECONDS = 60.0


class Reindexer:
    """The background re-embedding of scopes, with its progress per scope."""

    def __init__(self, library: KnowledgeLibrary, embedder: Embedder, jobs: asyncio.Semaphore) -> None:
        self._library = library
        self._embedder = embedder
        self._jobs = jobs
        self._statuses: dict[Scope, ReembedStatus] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Whether a re-embedding is running."""
        return bool(self._tasks)

    async def close(self) -> None:
        """Cancel the running re-embeddings (they start again on next use)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def finished(self, scope: Scope, model: str) -> ReembedStatus | None:
        """The finished re-embedding of `scope` to `model`, if there was one (to show how it ended)."""
        status = self._statuses.get(scope)
        return status if status is not None and status.model == model and status.finished else None

    async def refresh(self, guild_id: int) -> list[ReembedStatus]:
        """Start embedding again every scope of the server whose documents are not on its model."""
        documents = await self._library.store.knowledge_documents(guild_id=guild_id)
        targets = list({d.target.scope: d.target for d in documents}.values())
        if not targets:
            return []
        models = await self._library.models(targets)
        started = []
        for target in targets:
            model = models[target.scope]
            if any(d.embed_model != model for d in documents if d.target.scope == target.scope):
                started.append(self.schedule(target, model, retry_now=True))
        return started

    def schedule(self, target: KnowledgeTarget, model: str, *, retry_now: bool = False) -> ReembedStatus:
        """The re-embedding of `target` to `model`, started unless it runs already (or failed a moment ago)."""
        scope = target.scope
        status = self._statuses.get(scope)
        if status is not None and status.model == model:
            if not status.finished:
                return status
            recent = status.failed_at is not None and time.monotonic() - status.failed_at < REEMBED_RETRY_SECONDS
            if status.error is not None and recent and not retry_now:
                return status
        status = ReembedStatus(target=target, model=model, total=0)
        self._statuses[scope] = status
        task = asyncio.create_task(self._run(status), name=f"reembed-{scope.kind}-{scope.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return status

    async def _run(self, status: ReembedStatus) -> None:
        target, model = status.target, status.model
        scope = target.scope
        try:
            documents = (await self._library.documents([scope]))[scope]
            stale = [d for d in documents if d.embed_model != model]
            status.total = sum(d.chunk_count for d in stale)
            log.info("embedding %d chunk(s) of scope=%s:%s again with %s", status.total, scope.kind, scope.id, model)
            async with self._jobs:
                for document in stale:
                    await self._document(document, status)
            status.finished = True
            log.info("scope=%s:%s now embedded with %s", scope.kind, scope.id, model)
        except asyncio.CancelledError:
            status.error = "interrupted"
            status.finished = True
            status.failed_at = time.monotonic() - REEMBED_RETRY_SECONDS  # may start again at once
            raise
        except KnowledgeRefusal as refusal:
            status.error = str(refusal)
            status.finished = True
            status.failed_at = time.monotonic()
            log.warning("could not embed scope=%s:%s again with %s: %s", scope.kind, scope.id, model, refusal)
        except Exception:
            status.error = "unexpected error (see the bot's log)"
            status.finished = True
            status.failed_at = time.monotonic()
            log.exception("embedding scope=%s:%s again with %s failed", scope.kind, scope.id, model)

    async def _document(self, document: DocumentRecord, status: ReembedStatus) -> None:
        keys = [(document.document_id, position) for position in range(document.chunk_count)]
        chunks = await self._library.store.knowledge_chunks(keys)
        title = pin_title(document.name) if document.kind is DocumentKind.PIN else document.name
        inputs = [embedding_input(title, Chunk(c.section, c.text)) for c in chunks]
        base = status.done
        vectors = await self._embedder.embed(status.model, inputs, progress=lambda n: setattr(status, "done", base + n))
        scope = document.target.scope
        async with self._library.lock(scope):
            current = (await self._library.documents([scope]))[scope]
            if document not in current:
                status.done = base + len(chunks)
                return  # removed, replaced or updated meanwhile: what is there now was embedded afresh
            updated = replace(
                document, embed_model=status.model, dimensions=int(vectors.shape[1]) if len(chunks) else 0
            )
            records = [replace(c, vector=vector_bytes(vectors[i])) for i, c in enumerate(chunks)]
            updated = replace(updated, chunk_count=len(records))
            await self._library.store.save_knowledge_document(updated, records)
            self._library.saved(updated, vectors)
        status.done = base + len(chunks)
