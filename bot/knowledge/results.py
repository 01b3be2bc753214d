"""What the knowledge base hands back: limits, excerpts, progress, pins, re-indexing status, a scope's overview."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.knowledge.records import DocumentKind, DocumentRecord, KnowledgeTarget, PinSource

__all__ = [
    "Excerpt",
    "IndexProgress",
    "KnowledgeLimits",
    "PinSyncResult",
    "PinnedMessage",
    "ReembedStatus",
    "Retrieval",
    "ScopeOverview",
]


@dataclass(frozen=True, slots=True)
class KnowledgeLimits:
    """What a scope may hold and what a question gets (all from the configuration)."""

    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 100
    max_chunks: int = 20_000
    min_similarity: float = 0.5
    excerpts: int = 4


@dataclass(frozen=True, slots=True)
class Excerpt:
    """A chunk chosen for a question: its text, where it comes from, and how similar it was."""

    document: DocumentRecord
    section: str | None
    text: str
    score: float


@dataclass(slots=True)
class Retrieval:
    """The excerpts for a question, and plain notes when knowledge could not be used."""

    excerpts: list[Excerpt] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """How far indexing a document has come: `done` of `total` chunks embedded; `waiting` for another job."""

    done: int
    total: int
    waiting: bool = False


@dataclass(frozen=True, slots=True)
class PinnedMessage:
    """A pinned message as the knowledge base needs it."""

    message_id: int
    channel_id: int
    author_name: str
    content: str
    link: str


@dataclass(frozen=True, slots=True)
class PinSyncResult:
    """What a pins update changed in one scope."""

    target: KnowledgeTarget
    added: int = 0
    updated: int = 0
    removed: int = 0
    kept: int = 0
    skipped: int = 0  # over the scope's chunk limit

    @property
    def total(self) -> int:
        """Pinned messages now in the scope's knowledge from this channel."""
        return self.added + self.updated + self.kept


@dataclass(slots=True)
class ReembedStatus:
    """Progress of embedding a scope's documents again with a new model."""

    target: KnowledgeTarget
    model: str
    total: int
    done: int = 0
    error: str | None = None
    finished: bool = False
    failed_at: float | None = None


@dataclass(frozen=True, slots=True)
class ScopeOverview:
    """One scope's knowledge, as /knowledge list shows it."""

    target: KnowledgeTarget
    model: str
    documents: list[DocumentRecord]
    pin_sources: list[PinSource]
    reembedding: ReembedStatus | None

    @property
    def chunks(self) -> int:
        """Chunks held by the scope."""
        return sum(d.chunk_count for d in self.documents)

    @property
    def files(self) -> list[DocumentRecord]:
        """The scope's file documents."""
        return [d for d in self.documents if d.kind is DocumentKind.FILE]
