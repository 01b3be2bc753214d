"""What the knowledge base keeps in memory: each scope's documents and its vector index, loaded lazily.

Both caches are filled on first use and changed in place by every mutation, so a question in a
channel with knowledge costs no database read after the first one, and a channel without any costs
one small read ever. A load that raced with a change is thrown away (a version count per scope), so
the cache never goes back to an older state. The embedding model of a scope is resolved like every
other setting: thread, parent channel, server, then the global default.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from bot.channel_settings.store import Scope, ScopeKind, SettingsStore
from bot.knowledge.index import Matrix, ScopeIndex
from bot.knowledge.records import DocumentRecord, KnowledgeTarget
from bot.knowledge.store import KnowledgeStore

__all__ = ["EMBED_MODEL_KEY", "KnowledgeLibrary"]

log = logging.getLogger(__name__)

EMBED_MODEL_KEY = "embed_model"


class KnowledgeLibrary:
    """The per-scope caches of documents and vector indexes, and the per-scope write locks."""

    def __init__(self, store: KnowledgeStore, settings: SettingsStore, *, default_model: str) -> None:
        self.store = store
        self.settings = settings
        self.default_model = default_model
        self._documents: dict[Scope, list[DocumentRecord]] = {}
        self._indexes: dict[Scope, ScopeIndex] = {}
        self._versions: dict[Scope, int] = {}
        self._locks: dict[Scope, asyncio.Lock] = {}

    # ---- locks and versions

    def lock(self, scope: Scope) -> asyncio.Lock:
        """The lock every change to `scope` holds, so limits are checked against what is really there."""
        return self._locks.setdefault(scope, asyncio.Lock())

    def _version(self, scope: Scope) -> int:
        return self._versions.get(scope, 0)

    def _bump(self, scope: Scope) -> None:
        self._versions[scope] = self._version(scope) + 1

    # ---- documents

    async def documents(self, scopes: Sequence[Scope]) -> dict[Scope, list[DocumentRecord]]:
        """The documents of each scope (one read for those not cached yet)."""
        missing = [s for s in dict.fromkeys(scopes) if s not in self._documents]
        if missing:
            versions = {s: self._version(s) for s in missing}
            found = await self.store.knowledge_documents(scopes=missing)
            for scope in missing:
                if self._version(scope) == versions[scope] and scope not in self._documents:
                    self._documents[scope] = [d for d in found if d.target.scope == scope]
        result = {}
        for scope in scopes:
            cached = self._documents.get(scope)
            if cached is None:  # changed while we read: ask again, now that it is settled
                cached = await self.store.knowledge_documents(scopes=[scope])
            result[scope] = list(cached)
        return result

    def saved(self, document: DocumentRecord, vectors: Matrix | None = None) -> None:
        """Record a document just saved (new, replaced or embedded again); `vectors` are its rows, if known."""
        self.saved_many(document.target.scope, [(document, vectors)])

    def saved_many(self, scope: Scope, saved: Sequence[tuple[DocumentRecord, Matrix | None]]) -> None:
        """Record documents of `scope` just saved, updating a loaded index with one copy of its matrix."""
        if not saved:
            return
        self._bump(scope)
        ids = {document.document_id for document, _ in saved}
        cached = self._documents.get(scope)
        if cached is not None:
            self._documents[scope] = [d for d in cached if d.document_id not in ids] + [d for d, _ in saved]
        index = self._indexes.get(scope)
        if index is None:
            return
        index = index.without_documents(ids)
        fitting = [(d, v) for d, v in saved if v is not None and d.embed_model == index.model]
        try:
            index = index.with_documents(fitting)
        except ValueError:
            del self._indexes[scope]  # vectors of another length: rebuilt from the store when next needed
            return
        self._indexes[scope] = index
        self._recount_index(scope)

    def removed(self, scope: Scope, document_ids: Iterable[str]) -> None:
        """Record documents just deleted from `scope`."""
        gone = set(document_ids)
        self._bump(scope)
        cached = self._documents.get(scope)
        if cached is not None:
            self._documents[scope] = [d for d in cached if d.document_id not in gone]
        index = self._indexes.get(scope)
        if index is not None:
            self._indexes[scope] = index.without_documents(gone)
            self._recount_index(scope)

    def forget(self, scope: Scope) -> None:
        """Drop what is cached of `scope` after a change that may or may not have reached the store.

        It is read again on next use, so the cache matches what the database really kept (a pin update
        that failed half-way has saved some of its documents; a commit whose reply was lost may be in).
        """
        self._bump(scope)
        self._documents.pop(scope, None)
        self._indexes.pop(scope, None)

    def _recount_index(self, scope: Scope) -> None:
        index = self._indexes.get(scope)
        cached = self._documents.get(scope)
        if index is not None and cached is not None:
            others = sum(1 for d in cached if d.embed_model != index.model)
            self._indexes[scope] = index.with_other_models(others)

    # ---- indexes

    def cached_index(self, scope: Scope) -> ScopeIndex | None:
        """The loaded index of `scope`, if any."""
        return self._indexes.get(scope)

    async def index(self, scope: Scope, model: str) -> ScopeIndex:
        """The vector index of `scope` for `model`, loaded from the store on first use (or after a model change)."""
        cached = self._indexes.get(scope)
        if cached is not None and cached.model == model:
            return cached
        version = self._version(scope)
        rows = await self.store.knowledge_vectors(scope, model)
        index = ScopeIndex(model, rows)
        if self._version(scope) == version:
            self._indexes[scope] = index
            log.debug("loaded the knowledge index of %s %s: %d chunks (%s)", scope.kind, scope.id, index.size, model)
        return index

    @property
    def memory_bytes(self) -> int:
        """Memory held by the loaded indexes' arrays."""
        return sum(index.nbytes for index in self._indexes.values())

    # ---- embedding models

    async def models(self, targets: Sequence[KnowledgeTarget]) -> dict[Scope, str]:
        """The embedding model in effect for each target, from one read of the settings layers."""
        chains = {target.scope: _layers(target) for target in targets}
        needed = list(dict.fromkeys(scope for chain in chains.values() for scope in chain))
        layers = await self.settings.get_many(needed) if needed else {}
        models = {}
        for scope, chain in chains.items():
            models[scope] = self.default_model
            for layer in chain:
                value = layers.get(layer, {}).get(EMBED_MODEL_KEY)
                if isinstance(value, str) and value:
                    models[scope] = value
                    break
        return models


def _layers(target: KnowledgeTarget) -> list[Scope]:
    """Where a scope's settings come from, nearest first: itself, its parent channel (threads), its server."""
    if target.scope.kind is ScopeKind.GUILD:
        return [target.scope]
    chain = [target.scope]
    if target.parent_id is not None:
        chain.append(Scope.channel(target.parent_id))
    chain.append(Scope.guild(target.guild_id))
    return chain
