"""How excerpts reach the model (numbered, with their source) and how the answer names them (the sources line)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.knowledge.chunking import SECTION_SEPARATOR
from bot.knowledge.records import DocumentKind, pin_title
from bot.knowledge.results import Excerpt
from bot.streaming import notes

__all__ = ["KNOWLEDGE_HEADER", "excerpt_entry", "knowledge_block", "sources_note"]

# Model-facing: the numbers match the sources line under the answer.
KNOWLEDGE_HEADER = (
    "Excerpts from this team's own documents and pinned messages, found for the message above. "
    "Use them when they answer it, citing them by number like [1]; ignore them when they do not."
)


def _title(excerpt: Excerpt) -> str:
    document = excerpt.document
    if document.kind is DocumentKind.PIN:
        return pin_title(document.name)
    return f"{document.name}{SECTION_SEPARATOR}{excerpt.section}" if excerpt.section else document.name


def excerpt_entry(number: int, excerpt: Excerpt) -> str:
    """One excerpt as the model sees it: its number and source, then its text."""
    return f"[{number}] {_title(excerpt)}\n{excerpt.text}"


def knowledge_block(excerpts: Sequence[Excerpt]) -> str:
    """The excerpts, numbered from 1, under a short instruction ("" when there are none)."""
    if not excerpts:
        return ""
    entries = [excerpt_entry(number, excerpt) for number, excerpt in enumerate(excerpts, start=1)]
    return "\n\n".join([KNOWLEDGE_HEADER, *entries])


def sources_note(excerpts: Sequence[Excerpt]) -> str | None:
    """The sources line for the excerpts the model saw (None when it saw none)."""
    if not excerpts:
        return None
    labels = [
        notes.knowledge_source(
            e.document.name, e.section, link=e.document.link, pinned=e.document.kind is DocumentKind.PIN
        )
        for e in excerpts
    ]
    return notes.knowledge_sources(labels)
