"""/knowledge add, add-pins, list, remove and search; pinned messages kept current; re-indexing on a model change.

A thin adapter: it turns attachments, pinned messages and interactions into plain records for
bot/knowledge/ and shows what comes back. Changing knowledge takes the same permissions as changing
settings (Manage Channels for a channel, Manage Server for the server, or the admin lists); everyone
may list and search what applies to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import display_name
from bot.channel_settings.store import Scope
from bot.discord_io import NO_PINGS
from bot.knowledge.base import (
    IndexProgress,
    KnowledgeBase,
    PinnedMessage,
    PinSyncResult,
    ReembedStatus,
    ScopeOverview,
)
from bot.knowledge.records import DocumentKind, DocumentRecord, KnowledgePlace, KnowledgeTarget
from bot.knowledge.refusals import KnowledgeRefusal

if TYPE_CHECKING:
    from bot.app import OllacordBot, Services

log = logging.getLogger(__name__)

ScopeChoice = Literal["channel", "server"]
MESSAGE_LIMIT = 2000
MAX_CHOICES = 25
CHOICE_LIMIT = 100
SEARCH_RESULTS = 5
# /knowledge search also shows near misses (marked), so people can see what answers would not use and why.
SEARCH_MIN_SCORE = 0.05
EXCERPT_PREVIEW = 300
# At most every this many seconds of progress edits, whatever EDIT_INTERVAL says (interaction webhooks
# are rate limited too).
PROGRESS_MIN_SECONDS = 0.2

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


def _where(target: KnowledgeTarget, here: int | None = None) -> str:
    if target.server:
        return "the server's knowledge"
    if here is not None and target.scope.id != here:
        return f"<#{target.scope.id}>'s knowledge"
    return "this channel's knowledge"


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _place(interaction: discord.Interaction[Any]) -> KnowledgePlace:
    assert interaction.guild_id is not None and interaction.channel_id is not None
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return KnowledgePlace(guild_id=interaction.guild_id, channel_id=interaction.channel_id, parent_id=parent_id)


class LiveStatus:
    """One message kept up to date from a background loop while work runs (the latest text wins).

    The work never waits on Discord: it only sets the text. When an edit fails (e.g. the interaction
    token expired after 15 minutes) the loop stops editing, and the final text goes to the channel.
    """

    def __init__(
        self,
        edit: Callable[[str], Awaitable[object]],
        *,
        interval: float,
        fallback: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._edit = edit
        self._fallback = fallback
        self._interval = max(interval, PROGRESS_MIN_SECONDS)
        self._text: str | None = None
        self._shown: str | None = None
        self._broken = False
        self._task: asyncio.Task[None] | None = None

    def show(self, text: str) -> None:
        """Show `text` at the next edit."""
        self._text = text
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="knowledge-progress")

    async def _loop(self) -> None:
        while not self._broken:
            await asyncio.sleep(self._interval)
            await self._push()

    async def _push(self) -> bool:
        text = self._text
        if text is None or text == self._shown or self._broken:
            return not self._broken
        try:
            await self._edit(text)
        except discord.HTTPException as exc:
            self._broken = True
            log.warning("could not update a progress message (HTTP %s, code %s)", exc.status, exc.code)
            return False
        self._shown = text
        return True

    async def finish(self, text: str) -> None:
        """Stop the loop and show the outcome: in the message, or in the channel if the message can't be edited."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._text = text
        if await self._push() or self._fallback is None:
            return
        try:
            await self._fallback(text)
        except discord.HTTPException as exc:
            log.warning("could not show an outcome anywhere (HTTP %s, code %s)", exc.status, exc.code)


@app_commands.guild_only()
class KnowledgeCommands(commands.GroupCog, group_name="knowledge", group_description="Team knowledge for answers"):
    """Documents and pinned messages that answers in a channel or the whole server draw on."""

    def __init__(self, bot: OllacordBot, services: Services, knowledge: KnowledgeBase) -> None:
        self.bot = bot
        self.services = services
        self.knowledge = knowledge
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resynced = False
        super().__init__()

    async def cog_unload(self) -> None:
        """Stop pin updates and background re-indexing (both resume after a restart)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.knowledge.close()

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", name)

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _interval(self) -> float:
        return self.services.settings.edit_interval * 1.5

    # ---- permissions

    def _refusal(self, interaction: discord.Interaction[Any], server: bool) -> str | None:
        """Why this user may not change that knowledge here (None: they may), as for settings."""
        settings = self.services.settings
        user = interaction.user
        if user.id in settings.admin_user_ids:
            return None
        if any(role.id in settings.admin_role_ids for role in getattr(user, "roles", [])):
            return None
        permissions = interaction.permissions
        if server:
            return None if permissions.manage_guild else NEED_MANAGE_SERVER
        return None if permissions.manage_channels else NEED_MANAGE_CHANNELS

    # ---- /knowledge add

    @app_commands.command(name="add", description="Add a document (text, Markdown, reST, code, HTML, PDF)")
    @app_commands.describe(file="The document", scope="This channel (and its threads) or the whole server")
    async def add(
        self, interaction: discord.Interaction[Any], file: discord.Attachment, scope: ScopeChoice = "channel"
    ) -> None:
        """Index a file into this channel's or the server's knowledge, with live progress."""
        server = scope == "server"
        refusal = self._refusal(interaction, server)
        name = display_name(file.filename)
        if refusal is None:
            try:
                self.knowledge.check_size(file.filename, file.size)
            except KnowledgeRefusal as exc:
                refusal = str(exc)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        target = _place(interaction).target(server=server)
        where = _where(target)
        await interaction.response.send_message(READING.format(name=name), ephemeral=True)
        status = LiveStatus(self._edit_response(interaction), interval=self._interval, fallback=self._post(interaction))
        try:
            data = await file.read()
        except discord.HTTPException as exc:
            log.warning("could not download knowledge file (HTTP %s, code %s)", exc.status, exc.code)
            await status.finish(DOWNLOAD_FAILED.format(name=name))
            return

        def progress(step: IndexProgress) -> None:
            if step.waiting:
                status.show(WAITING.format(name=name))
            else:
                percent = 100 * step.done // max(step.total, 1)
                status.show(INDEXING.format(name=name, where=where, done=step.done, total=step.total, percent=percent))

        try:
            document, replaced = await self.knowledge.add_file(
                target, file.filename, file.content_type, data, added_by=interaction.user.id, progress=progress
            )
        except KnowledgeRefusal as exc:
            await status.finish(str(exc))
            return
        if replaced is not None:
            text = REPLACED.format(name=name, where=where, chunks=document.chunk_count, before=replaced.chunk_count)
        else:
            applies = "in the whole server" if server else "here and in this channel's threads"
            text = ADDED.format(name=name, where=where, chunks=document.chunk_count, applies=applies)
        await status.finish(text)

    def _edit_response(self, interaction: discord.Interaction[Any]) -> Callable[[str], Awaitable[object]]:
        async def edit(text: str) -> None:
            await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)

        return edit

    def _post(self, interaction: discord.Interaction[Any]) -> Callable[[str], Awaitable[object]] | None:
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return None

        async def post(text: str) -> None:
            await channel.send(text, allowed_mentions=NO_PINGS)

        return post

    # ---- /knowledge add-pins

    @app_commands.command(name="add-pins", description="Add this channel's pinned messages and keep them current")
    @app_commands.describe(scope="This channel (and its threads) or the whole server")
    async def add_pins(self, interaction: discord.Interaction[Any], scope: ScopeChoice = "channel") -> None:
        """Index this channel's pins now, and again whenever they change."""
        server = scope == "server"
        refusal = self._refusal(interaction, server)
        channel = interaction.channel
        if refusal is None and not self._may_read_pins(channel):
            refusal = NEED_HISTORY
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        assert isinstance(channel, discord.abc.Messageable) and interaction.channel_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        target = _place(interaction).target(server=server)
        try:
            pins = await _read_pins(channel)
            result = await self.knowledge.add_pin_source(
                target, interaction.channel_id, pins, added_by=interaction.user.id
            )
        except discord.HTTPException as exc:
            await interaction.followup.send(PINS_FAILED.format(code=exc.code or exc.status), ephemeral=True)
            return
        except KnowledgeRefusal as exc:
            await interaction.followup.send(str(exc), ephemeral=True)
            return
        await interaction.followup.send(_pins_added(result, f"<#{interaction.channel_id}>"), ephemeral=True)

    def _may_read_pins(self, channel: object) -> bool:
        guild = getattr(channel, "guild", None)
        me = guild.me if isinstance(guild, discord.Guild) else None
        if me is None or not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            return True  # can't tell: Discord will say
        try:
            permissions = channel.permissions_for(me)
        except discord.ClientException:
            return True
        return permissions.view_channel and permissions.read_message_history

    @commands.Cog.listener()
    async def on_guild_channel_pins_update(self, channel: object, last_pin: object) -> None:
        """A message was pinned or unpinned: bring the knowledge that keeps this channel's pins in step."""
        channel_id = getattr(channel, "id", None)
        if isinstance(channel_id, int) and await self.knowledge.tracks_pins(channel_id):
            self._spawn(self._sync_pins(channel), f"pins-{channel_id}")

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Catch up with pins changed while the bot was away (once per process)."""
        if self._resynced:
            return
        self._resynced = True
        for channel_id in await self.knowledge.tracked_channels():
            channel = self.bot.get_channel(channel_id)
            if channel is not None:
                self._spawn(self._sync_pins(channel), f"pins-{channel_id}")

    async def _sync_pins(self, channel: object) -> None:
        if not isinstance(channel, discord.abc.Messageable) or not self._may_read_pins(channel):
            # Without Read Message History Discord lists no pins at all: that must not erase the knowledge.
            log.warning("can't read the pins of channel %s (no Read Message History); left as they were", channel)
            return
        channel_id = getattr(channel, "id", 0)
        try:
            pins = await _read_pins(channel)
            await self.knowledge.sync_pins(channel_id, pins)
        except discord.HTTPException as exc:
            log.warning("could not read the pins of channel %s (HTTP %s, code %s)", channel_id, exc.status, exc.code)
        except KnowledgeRefusal as exc:
            log.warning("could not index the pins of channel %s: %s", channel_id, exc)

    # ---- /knowledge list

    @app_commands.command(name="list", description="The documents and pinned messages answers here draw on")
    async def list_knowledge(self, interaction: discord.Interaction[Any]) -> None:
        """Every scope that applies here, with its documents, tracked pins and limits."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        place = _place(interaction)
        overview = await self.knowledge.overview(place)
        text = _render_overview(overview, place, self.knowledge)
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)

    # ---- /knowledge remove

    @app_commands.command(name="remove", description="Remove a document, or a channel's pinned messages")
    @app_commands.describe(document="Pick from the list as you type")
    async def remove(self, interaction: discord.Interaction[Any], document: app_commands.Range[str, 1, 200]) -> None:
        """Remove one document (or stop keeping a channel's pins) from the knowledge used here."""
        place = _place(interaction)
        if document.startswith("pins:"):
            await self._remove_pins(interaction, place, document)
            return
        documents = await self.knowledge.documents_here(place)
        if document.startswith("doc:"):
            matches = [d for d in documents if d.document_id == document.removeprefix("doc:")]
        else:
            matches = [d for d in documents if d.kind is DocumentKind.FILE and d.name.lower() == document.lower()]
        if len(matches) != 1:
            template = AMBIGUOUS_DOCUMENT if matches else UNKNOWN_DOCUMENT
            await interaction.response.send_message(template.format(name=display_name(document)), ephemeral=True)
            return
        found = matches[0]
        refusal = self._refusal(interaction, found.target.server)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        await self.knowledge.remove_document(found)
        where = _where(found.target, interaction.channel_id)
        await interaction.response.send_message(
            REMOVED.format(name=_document_name(found), where=where), ephemeral=True, allowed_mentions=NO_PINGS
        )

    async def _remove_pins(self, interaction: discord.Interaction[Any], place: KnowledgePlace, value: str) -> None:
        sources = await self.knowledge.pin_sources_here(place)
        found = next((s for s in sources if _pins_value(s.target.scope, s.channel_id) == value), None)
        if found is None:
            await interaction.response.send_message(UNKNOWN_DOCUMENT.format(name="those pins"), ephemeral=True)
            return
        refusal = self._refusal(interaction, found.target.server)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        count = await self.knowledge.remove_pin_source(found.target, found.channel_id)
        where = _where(found.target, interaction.channel_id)
        text = PINS_REMOVED.format(channel=f"<#{found.channel_id}>", where=where, count=count)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)

    @remove.autocomplete("document")
    async def remove_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """The files and tracked pins used here whose name matches what was typed."""
        place = _place(interaction)
        typed = current.lower()
        choices: list[app_commands.Choice[str]] = []
        for document in await self.knowledge.documents_here(place):
            if document.kind is DocumentKind.FILE and typed in document.name.lower():
                label = f"{document.name} ({_scope_label(document.target, place)})"
                choices.append(app_commands.Choice(name=label[:CHOICE_LIMIT], value=f"doc:{document.document_id}"))
        for source in await self.knowledge.pin_sources_here(place):
            channel = self.bot.get_channel(source.channel_id)
            channel_name = f"#{getattr(channel, 'name', source.channel_id)}"
            label = f"📌 pinned messages of {channel_name} ({_scope_label(source.target, place)})"
            if typed in label.lower():
                value = _pins_value(source.target.scope, source.channel_id)
                choices.append(app_commands.Choice(name=label[:CHOICE_LIMIT], value=value))
        return choices[:MAX_CHOICES]

    # ---- /knowledge search

    @app_commands.command(name="search", description="Show the best excerpts for a query, with their sources")
    @app_commands.describe(query="What to look for")
    async def search(self, interaction: discord.Interaction[Any], query: app_commands.Range[str, 1, 500]) -> None:
        """The excerpts a question like this would get."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            excerpts = await self.knowledge.search(
                _place(interaction), query, limit=SEARCH_RESULTS, min_score=SEARCH_MIN_SCORE
            )
        except KnowledgeRefusal as exc:
            await interaction.followup.send(str(exc), ephemeral=True)
            return
        if not excerpts:
            documents = await self.knowledge.documents_here(_place(interaction))
            text = NO_MATCHES if documents else NOTHING_HERE
            await interaction.followup.send(text, ephemeral=True)
            return
        lines = ["🔎 **Best matches**"]
        for number, excerpt in enumerate(excerpts, start=1):
            document = excerpt.document
            source = _document_name(document)
            if excerpt.section and document.kind is DocumentKind.FILE:
                source += f" › {' '.join(excerpt.section.split())}"
            if document.link:
                source += f" ([jump](<{document.link}>))"
            preview = " ".join(excerpt.text.split())
            if len(preview) > EXCERPT_PREVIEW:
                preview = preview[: EXCERPT_PREVIEW - 1] + "…"
            threshold = self.knowledge.limits.min_similarity
            miss = BELOW_THRESHOLD.format(threshold=threshold) if excerpt.score < threshold else ""
            lines.append(f"**[{number}]** {source} · {excerpt.score:.2f}{miss}\n> {preview}")
        await interaction.followup.send(_fit("\n".join(lines)), ephemeral=True, allowed_mentions=NO_PINGS)

    # ---- the embedding model changed (/set or /reset embed_model)

    @commands.Cog.listener()
    async def on_embed_model_changed(self, interaction: discord.Interaction[Any], scope: str) -> None:
        """Embed the server's knowledge again where the model in effect changed, showing progress."""
        if interaction.guild_id is not None:
            self._spawn(self._reindex(interaction, interaction.guild_id), f"reindex-{interaction.guild_id}")

    async def _reindex(self, interaction: discord.Interaction[Any], guild_id: int) -> None:
        statuses = await self.knowledge.refresh_models(guild_id)
        if not statuses:
            return
        message = await interaction.followup.send(
            _render_reindexing(statuses, interaction.channel_id), ephemeral=True, wait=True
        )

        async def edit(text: str) -> None:
            await message.edit(content=text, allowed_mentions=NO_PINGS)

        status = LiveStatus(edit, interval=self._interval)
        while not all(s.finished for s in statuses):
            status.show(_render_reindexing(statuses, interaction.channel_id))
            await asyncio.sleep(PROGRESS_MIN_SECONDS)
        await status.finish(_render_reindexing(statuses, interaction.channel_id))


# ---- reading pins


async def _read_pins(channel: discord.abc.Messageable) -> list[PinnedMessage]:
    """The channel's pinned messages (one REST call per 50)."""
    pins = []
    async for message in channel.pins(limit=None):
        pins.append(
            PinnedMessage(
                message_id=message.id,
                channel_id=message.channel.id,
                author_name=message.author.display_name,
                content=message.clean_content,
                link=message.jump_url,
            )
        )
    return pins


# ---- rendering


def _document_name(document: DocumentRecord) -> str:
    if document.kind is DocumentKind.PIN:
        return f"a pinned message by {display_name(document.name)}"
    return display_name(document.name)


def _pins_value(scope: Scope, channel_id: int) -> str:
    return f"pins:{scope.kind.value}:{scope.id}:{channel_id}"


def _scope_label(target: KnowledgeTarget, place: KnowledgePlace) -> str:
    if target.server:
        return "server"
    return "this channel" if target.scope.id == place.channel_id else "parent channel"


def _pins_added(result: PinSyncResult, channel: str) -> str:
    count = result.total
    skipped = PINS_SKIPPED.format(count=result.skipped) if result.skipped else ""
    are = "is" if count == 1 else "are"
    where = _where(result.target)
    return PINS_ADDED.format(count=count, s=_plural(count), channel=channel, are=are, where=where, skipped=skipped)


def _render_overview(overview: list[ScopeOverview], place: KnowledgePlace, knowledge: KnowledgeBase) -> str:
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
            lines.append(f"• 📌 pinned messages of <#{source.channel_id}> · {count} message{_plural(count)}")
        if not files and not scope.pin_sources:
            lines.append("• (nothing)")
        status = scope.reembedding
        if status is not None and not status.finished:
            where = _where(target, place.channel_id)
            lines.append(REINDEXING.format(where=where, model=status.model, done=status.done, total=status.total))
        elif status is not None and status.error:
            where = _where(target, place.channel_id)
            lines.append(REINDEX_FAILED.format(where=where, model=status.model, error=status.error))
    return _fit("\n".join(lines))


def _render_reindexing(statuses: list[ReembedStatus], here: int | None) -> str:
    lines = []
    for status in statuses:
        where = _where(status.target, here)
        if status.error:
            lines.append(REINDEX_FAILED.format(where=where, model=status.model, error=status.error))
        elif status.finished:
            lines.append(REINDEXED.format(where=where[0].upper() + where[1:], model=status.model))
        else:
            lines.append(REINDEXING.format(where=where, model=status.model, done=status.done, total=status.total))
    return _fit("\n".join(lines))


def _fit(text: str) -> str:
    if len(text) <= MESSAGE_LIMIT:
        return text
    return text[: MESSAGE_LIMIT - 2].rsplit("\n", 1)[0] + "\n…"
