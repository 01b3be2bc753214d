"""What /knowledge shows: every sentence of the command's answers, and how lists, results and progress read."""

from __future__ import annotations

from bot.attachments import display_name
from bot.knowledge.base import KnowledgeBase
from bot.knowledge.records import DocumentKind, DocumentRecord, KnowledgePlace, KnowledgeTarget
from bot.knowledge.results import Excerpt, PinSyncResult, ReembedStatus, ScopeOverview

MESSAGE_LIMIT = 2000
EXCERPT_PREVIEW = 300

NEED_MANAGE_CHANNELS = "You need the **Manage Channels** permission in this channel to change its knowledge."
NEED_MANAGE_SERVER = "You need the **Manage Server** permission to change the server's knowledge."
NEED_HISTORY = (
    "I need the **Read Message History** permission in this channel to read its pinned messages "
    "(Discord returns none without it)."
)
DOWNLOAD_FAILED = "I couldn't download {name} from Discord. Try again in a moment."
PINS_FAILED = "Discord would not give me this channel's pinned messages (error {code}). Try again in a moment."
READING = "📥 Reading {name}…"
WAITING = "⏳ {name} is waiting for another document to finish indexing…"
INDEXING = "📥 Indexing {name} into {where}: {done:,}/{total:,} chunks ({percent}%)"
ADDED = "📚 Added {name} to {where}: {chunks:,} chunks. Questions {applies} now draw on it."
REPLACED = "📚 Replaced {name} in {where} with the new version: {chunks:,} chunks (was {before:,})."
PINS_ADDED = (
    "📌 {count} pinned message{s} of {channel} {are} now in {where}{skipped}. I keep them current as messages "
    "are pinned and unpinned."
)
PINS_SKIPPED = " ({count} left out: the chunk limit, KNOWLEDGE_MAX_CHUNKS, is reached)"
NOTHING_HERE = (
    "No knowledge applies here yet. Add a document with `/knowledge add`, or this channel's pinned messages "
    "with `/knowledge add-pins`."
)
UNKNOWN_DOCUMENT = "There is no document called {name} in the knowledge used here. `/knowledge list` shows them."
AMBIGUOUS_DOCUMENT = "Several documents here are called {name}; pick one from the list as you type."
REMOVED = "🗑️ Removed {name} from {where}."
PINS_REMOVED = "🗑️ {channel}'s pinned messages are no longer in {where} ({count} removed)."
BELOW_THRESHOLD = " (below {threshold:g}: answers don't use it)"
NO_MATCHES = (
    "Nothing in the knowledge used here is even close to that. "
    "Try other words, or `/knowledge list` to see what there is."
)
REINDEXING = "🔄 Re-indexing {where} with `{model}`: {done:,}/{total:,} chunks"
REINDEXED = "✅ {where} is now indexed with `{model}`."
REINDEX_FAILED = "⚠️ Re-indexing {where} with `{model}` failed: {error}"


def scope_words(target: KnowledgeTarget, here: int | None = None) -> str:
    """Whose knowledge `target` is, seen from channel `here`: this channel's, <#parent>'s, or the server's."""
    if target.server:
        return "the server's knowledge"
    if here is not None and target.scope.id != here:
        return f"<#{target.scope.id}>'s knowledge"
    return "this channel's knowledge"


def plural(count: int) -> str:
    """The plural ending for `count` things."""
    return "" if count == 1 else "s"


def render_search(excerpts: list[Excerpt], threshold: float) -> str:
    """/knowledge search: each excerpt with its source, similarity and a short preview."""
    lines = ["🔎 **Best matches**"]
    for number, excerpt in enumerate(excerpts, start=1):
        document = excerpt.document
        source = document_name(document)
        if excerpt.section and document.kind is DocumentKind.FILE:
            source += f" › {' '.join(excerpt.section.split())}"
        if document.link:
            source += f" ([jump](<{document.link}>))"
        preview = " ".join(excerpt.text.split())
        if len(preview) > EXCERPT_PREVIEW:
            preview = preview[: EXCERPT_PREVIEW - 1] + "…"
        miss = BELOW_THRESHOLD.format(threshold=threshold) if excerpt.score < threshold else ""
        lines.append(f"**[{number}]** {source} · {excerpt.score:.2f}{miss}\n> {preview}")
    return fit("\n".join(lines))


def document_name(document: DocumentRecord) -> str:
    """A document as answers name it: the file name in code, or the pinned message's author."""
    if document.kind is DocumentKind.PIN:
        return f"a pinned message by {display_name(document.name)}"
    return display_name(document.name)


def scope_label(target: KnowledgeTarget, place: KnowledgePlace) -> str:
    """The short scope label of autocomplete choices."""
    if target.server:
        return "server"
    return "this channel" if target.scope.id == place.channel_id else "parent channel"


def pins_added(result: PinSyncResult, channel: str) -> str:
    """/knowledge add-pins: how many pinned messages are in, and that they are kept current."""
    count = result.total
    skipped = PINS_SKIPPED.format(count=result.skipped) if result.skipped else ""
    are = "is" if count == 1 else "are"
    where = scope_words(result.target)
    return PINS_ADDED.format(count=count, s=plural(count), channel=channel, are=are, where=where, skipped=skipped)


def render_overview(overview: list[ScopeOverview], place: KnowledgePlace, knowledge: KnowledgeBase) -> str:
    """/knowledge list: each scope that applies here, with its model, limits, documents, pins and re-indexing."""
    if not any(o.documents or o.pin_sources for o in overview):
        return NOTHING_HERE
    limits = knowledge.limits
    lines = ["**Knowledge used here** (a question here draws on all of it)"]
    for scope in overview:
        target = scope.target
        if target.server:
            title = "**Server**"
        elif target.scope.id == place.channel_id:
            title = "**This channel**"
        else:
            title = f"**Parent channel** <#{target.scope.id}>"
        files = scope.files
        lines.append(
            f"{title} · `{scope.model}` · {len(files)}/{limits.max_files} files · "
            f"{scope.chunks:,}/{limits.max_chunks:,} chunks"
        )
        for document in files:
            lines.append(f"• {display_name(document.name)} · {document.chunk_count:,} chunks")
        for source in scope.pin_sources:
            count = sum(
                1 for d in scope.documents if d.kind is DocumentKind.PIN and d.pin_channel_id == source.channel_id
            )
            lines.append(f"• 📌 pinned messages of <#{source.channel_id}> · {count} message{plural(count)}")
        if not files and not scope.pin_sources:
            lines.append("• (nothing)")
        status = scope.reembedding
        if status is not None and not status.finished:
            where = scope_words(target, place.channel_id)
            lines.append(REINDEXING.format(where=where, model=status.model, done=status.done, total=status.total))
        elif status is not None and status.error:
            where = scope_words(target, place.channel_id)
            lines.append(REINDEX_FAILED.format(where=where, model=status.model, error=status.error))
    return fit("\n".join(lines))


def render_reindexing(statuses: list[ReembedStatus], here: int | None) -> str:
    """Progress (then outcome) of re-indexing after an embed_model change, one line per scope."""
    lines = []
    for status in statuses:
        where = scope_words(status.target, here)
        if status.error:
            lines.append(REINDEX_FAILED.format(where=where, model=status.model, error=status.error))
        elif status.finished:
            lines.append(REINDEXED.format(where=where[0].upper() + where[1:], model=status.model))
        else:
            lines.append(REINDEXING.format(where=where, model=status.model, done=status.done, total=status.total))
    return fit("\n".join(lines))


def fit(text: str) -> str:
    """Cut a long listing at a line end to fit one Discord message."""
    if len(text) <= MESSAGE_LIMIT:
        return text
    return text[: MESSAGE_LIMIT - 2].rsplit("\n", 1)[0] + "\n…"
