"""Plain records of team knowledge: where it applies, its documents, their chunks and the tracked pins."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from bot.channel_settings.store import Scope, ScopeKind

__all__ = [
    "ChunkRecord",
    "DocumentKind",
    "DocumentRecord",
    "KnowledgePlace",
    "KnowledgeTarget",
    "PinSource",
    "pin_title",
]


@dataclass(frozen=True, slots=True)
class KnowledgeTarget:
    """A scope that holds knowledge, with what its embedding model is inherited from.

    A channel scope may be a thread: `parent_id` is then the channel it inherits settings from, so that
    the `embed_model` in effect for its documents resolves like every other setting.
    """

    scope: Scope
    guild_id: int
    parent_id: int | None = None

    @property
    def server(self) -> bool:
        """Whether this is the server-wide knowledge."""
        return self.scope.kind is ScopeKind.GUILD

    @classmethod
    def of_guild(cls, guild_id: int) -> KnowledgeTarget:
        """The server-wide knowledge of `guild_id`."""
        return cls(Scope.guild(guild_id), guild_id)


@dataclass(frozen=True, slots=True)
class KnowledgePlace:
    """Where a question or command happens: the server, the channel (or thread) and, in a thread, its parent."""

    guild_id: int
    channel_id: int
    parent_id: int | None = None

    def channel_target(self) -> KnowledgeTarget:
        """This channel's (or thread's) own knowledge."""
        return KnowledgeTarget(Scope.channel(self.channel_id), self.guild_id, self.parent_id)

    def targets(self) -> list[KnowledgeTarget]:
        """Every knowledge scope a question here draws on: its own, its parent channel's (threads), the server's."""
        found = [self.channel_target()]
        if self.parent_id is not None:
            found.append(KnowledgeTarget(Scope.channel(self.parent_id), self.guild_id))
        found.append(KnowledgeTarget.of_guild(self.guild_id))
        return found

    def target(self, *, server: bool) -> KnowledgeTarget:
        """Where `/knowledge add` with this scope puts a document."""
        return KnowledgeTarget.of_guild(self.guild_id) if server else self.channel_target()


class DocumentKind(enum.StrEnum):
    """What a document came from."""

    FILE = "file"
    PIN = "pin"  # one pinned message, kept in step with the channel's pins


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """One document of a scope's knowledge (its chunks are stored apart)."""

    document_id: str
    target: KnowledgeTarget
    kind: DocumentKind
    name: str
    embed_model: str
    dimensions: int
    chunk_count: int
    chars: int
    content_hash: str
    added_at: datetime
    added_by: int | None = None
    # A pinned message: its jump link, channel and id.
    link: str | None = None
    pin_channel_id: int | None = None
    pin_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk of a document: the section it belongs to, its text and its embedding.

    `vector` is the embedding as little-endian float32 bytes, L2-normalised; empty when only the text
    was asked for.
    """

    document_id: str
    position: int
    section: str | None
    text: str
    vector: bytes = b""


@dataclass(frozen=True, slots=True)
class PinSource:
    """A channel whose pinned messages are kept in a scope's knowledge."""

    target: KnowledgeTarget
    channel_id: int
    added_at: datetime
    added_by: int | None = None


def pin_title(author_name: str) -> str:
    """How a pinned message is named to the model (in its excerpt) and in its embedding."""
    return f"pinned message by {author_name}"
