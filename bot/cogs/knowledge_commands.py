"""/knowledge add, add-pins, list, remove and search; pinned messages kept current; re-indexing on a model change.

A thin adapter: it turns attachments, pinned messages and interactions into plain records for
bot/knowledge/ and shows what comes back. Changing knowledge takes the same permissions as changing
settings (Manage Channels for a channel, Manage Server for the server, or the admin lists); everyone
may list and search what applies to them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import display_name
from bot.channel_settings.store import Scope
from bot.cogs.access import listed_admin
from bot.cogs.knowledge_view import (
    ADDED,
    AMBIGUOUS_DOCUMENT,
    DOWNLOAD_FAILED,
    INDEXING,
    NEED_HISTORY,
    NEED_MANAGE_CHANNELS,
    NEED_MANAGE_SERVER,
    NO_MATCHES,
    NOTHING_HERE,
    PINS_FAILED,
    PINS_REMOVED,
    READING,
    REMOVED,
    REPLACED,
    UNKNOWN_DOCUMENT,
    WAITING,
    document_name,
    pins_added,
    render_overview,
    render_reindexing,
    render_search,
    scope_label,
    scope_words,
)
from bot.cogs.live_status import PROGRESS_MIN_SECONDS, LiveStatus
from bot.discord_io import NO_PINGS
from bot.knowledge.base import (
    IndexProgress,
    KnowledgeBase,
    PinnedMessage,
)
from bot.knowledge.records import DocumentKind, KnowledgePlace
from bot.knowledge.refusals import KnowledgeRefusal

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

ScopeChoice = Literal["channel", "server"]
MAX_CHOICES = 25
CHOICE_LIMIT = 100
SEARCH_RESULTS = 5
# /knowledge search also shows near misses (marked), so people can see what answers would not use and why.
SEARCH_MIN_SCORE = 0.05


def _place(interaction: discord.Interaction[Any]) -> KnowledgePlace:
    assert interaction.guild_id is not None and interaction.channel_id is not None
    channel = interaction.channel
    parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
    return KnowledgePlace(guild_id=interaction.guild_id, channel_id=interaction.channel_id, parent_id=parent_id)


@app_commands.guild_only()
class KnowledgeCommands(commands.GroupCog, group_name="knowledge", group_description="Team knowledge for answers"):
    """Documents and pinned messages that answers in a channel or the whole server draw on."""

    def __init__(self, bot: OllacordBot, services: Services, knowledge: KnowledgeBase) -> None:
        self.bot = bot
        self.services = services
        self.knowledge = knowledge
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resynced = False
        # One read-and-update of a channel's pins at a time, so an older read never lands after a newer one.
        self._pin_reads: dict[int, asyncio.Lock] = {}
        super().__init__()

    def _pins_lock(self, channel_id: int) -> asyncio.Lock:
        return self._pin_reads.setdefault(channel_id, asyncio.Lock())

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
        if listed_admin(interaction, self.services.settings):
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
        where = scope_words(target)
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
            async with self._pins_lock(interaction.channel_id):
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
        await interaction.followup.send(pins_added(result, f"<#{interaction.channel_id}>"), ephemeral=True)

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
            async with self._pins_lock(channel_id):
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
        text = render_overview(overview, place, self.knowledge)
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
        where = scope_words(found.target, interaction.channel_id)
        await interaction.response.send_message(
            REMOVED.format(name=document_name(found), where=where), ephemeral=True, allowed_mentions=NO_PINGS
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
        where = scope_words(found.target, interaction.channel_id)
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
                label = f"{document.name} ({scope_label(document.target, place)})"
                choices.append(app_commands.Choice(name=label[:CHOICE_LIMIT], value=f"doc:{document.document_id}"))
        for source in await self.knowledge.pin_sources_here(place):
            channel = self.bot.get_channel(source.channel_id)
            channel_name = f"#{getattr(channel, 'name', source.channel_id)}"
            label = f"📌 pinned messages of {channel_name} ({scope_label(source.target, place)})"
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
        text = render_search(excerpts, self.knowledge.limits.min_similarity)
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)

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
            render_reindexing(statuses, interaction.channel_id), ephemeral=True, wait=True
        )

        async def edit(text: str) -> None:
            await message.edit(content=text, allowed_mentions=NO_PINGS)

        status = LiveStatus(edit, interval=self._interval)
        while not all(s.finished for s in statuses):
            status.show(render_reindexing(statuses, interaction.channel_id))
            await asyncio.sleep(PROGRESS_MIN_SECONDS)
        await status.finish(render_reindexing(statuses, interaction.channel_id))


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


def _pins_value(scope: Scope, channel_id: int) -> str:
    return f"pins:{scope.kind.value}:{scope.id}:{channel_id}"
