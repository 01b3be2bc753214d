"""Catching up: /summarize and the message action "Summarize from here".

Discord translation only: the channel's messages are read here (in bulk, 100 a request, only what the bot
may read) and handed to the answer service as a summary request; bot/summaries/ does the rest.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers.records import AnswerKind, AnswerRecord, AskPrompt
from bot.answers.request import AnswerRequest
from bot.channel_settings.effective import effective_settings
from bot.cogs.rebuilders import Rebuilt
from bot.discord_io import NO_PINGS, ChannelReplySink, InteractionReplySink, message_id
from bot.places import ChannelResolver, ChatChannel, bold_list, missing_permissions
from bot.streaming.relay import MessageSink
from bot.summaries.engine import SummaryJob
from bot.summaries.span import (
    DEFAULT_MESSAGES,
    MAX_MESSAGES,
    BadSince,
    SinceDuration,
    SpanRequest,
    jump_link,
    parse_since,
    span_header,
)
from bot.summaries.transcript import SpokenLine, spoken_text

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

SUMMARIZE_FROM_HERE = "Summarize from here"
# Messages that are part of a discussion; joins, pins, "started a thread" and the like are not.
SPOKEN_TYPES = (
    discord.MessageType.default,
    discord.MessageType.reply,
    discord.MessageType.chat_input_command,
    discord.MessageType.context_menu_command,
)
RESTARTING = "The bot is restarting; please ask again in a moment."
CANNOT_READ = "I can't read the messages here: I need the {permissions} permission{s} in this channel."
YOU_CANNOT_READ = (
    "You can't read this channel's earlier messages (you lack **Read Message History** here), "
    "so I won't summarize them for you."
)
READ_FAILED = "Discord wouldn't let me read this channel's messages (error {code}); I can't summarize it."
NOTHING_TO_SUMMARIZE = "There's nothing to summarize: I found no messages from people in that span."
REGENERATE_GONE = "I can't summarize that span again: its messages are gone, or I can no longer read them."
SLOW_DOWN = "You're asking quickly; please wait {seconds} s before the next question."
# Where messages can be read from: the chat channels, and a channel discord.py knows only by id.
Readable = ChatChannel | discord.PartialMessageable
READABLE = (discord.TextChannel, discord.VoiceChannel, discord.StageChannel, discord.Thread, discord.PartialMessageable)


class SummaryCommands(commands.Cog):
    """/summarize and "Summarize from here": the channel's recent discussion, in the channel's model."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.answering = services.answering
        self.places = ChannelResolver(bot)
        self._busy = 0
        self.from_here = app_commands.ContextMenu(name=SUMMARIZE_FROM_HERE, callback=self.summarize_from_here)
        app_commands.guild_only(self.from_here)

    @property
    def active_replies(self) -> int:
        """Summaries being read or streamed right now."""
        return self._busy

    async def cog_load(self) -> None:
        """Add the message action, and teach Regenerate to remake summaries."""
        self.bot.tree.add_command(self.from_here)
        chat = self.bot.get_cog("ChatCog")
        if chat is not None:
            chat.rebuilders[AnswerKind.SUMMARY] = self.rebuild  # type: ignore[attr-defined]

    async def cog_unload(self) -> None:
        """Remove the message action."""
        self.bot.tree.remove_command(self.from_here.name, type=self.from_here.type)

    # ---- the commands

    @app_commands.command(name="summarize", description="Summarize the recent discussion in this channel")
    @app_commands.describe(
        messages=f"How many recent messages to read (1-{MAX_MESSAGES}, default {DEFAULT_MESSAGES})",
        since="Start at a message (paste its link) or go back a time, e.g. 30m, 2h, 1d",
        private="Only you see the summary",
    )
    @app_commands.guild_only()
    async def summarize(
        self,
        interaction: discord.Interaction[Any],
        messages: app_commands.Range[int, 1, MAX_MESSAGES] = DEFAULT_MESSAGES,
        since: app_commands.Range[str, 1, 200] | None = None,
        private: bool = False,
    ) -> None:
        """Stream a summary of the channel's recent messages into the command's response."""
        arrived_at = self.services.clock.now()
        span = SpanRequest(limit=messages, private=private)
        if since is not None:
            try:
                start = parse_since(since, channel_id=interaction.channel_id or 0)
            except BadSince as bad:
                await interaction.response.send_message(str(bad), ephemeral=True)
                return
            if isinstance(start, SinceDuration):
                cutoff = discord.utils.utcnow() - start.duration
                span = SpanRequest(
                    limit=messages, after_id=discord.utils.time_snowflake(cutoff, high=True), private=private
                )
            else:
                span = SpanRequest(limit=messages, after_id=start.message_id - 1, private=private)
        await self._start(interaction, span, arrived_at)

    async def summarize_from_here(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """The message action: summarize from the selected message to now."""
        arrived_at = self.services.clock.now()
        await self._start(interaction, SpanRequest(limit=MAX_MESSAGES, after_id=message.id - 1), arrived_at)

    async def _start(self, interaction: discord.Interaction[Any], span: SpanRequest, arrived_at: float) -> None:
        if not self.answering.accepting:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        refusal = self._unreadable(interaction)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        if retry := self.answering.rate_limited(interaction.user.id):
            await interaction.response.send_message(SLOW_DOWN.format(seconds=max(1, round(retry))), ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=span.private)
        self._busy += 1
        try:
            sink = InteractionReplySink(
                interaction,
                key=interaction.id,
                clock=self.services.clock,
                arrived_at=arrived_at,
                token_lifetime=self.bot.interaction_token_lifetime,
                ephemeral=span.private,
            )
            request = await self._request(interaction, span, key=interaction.id)
            if request is not None and await self.answering.answer(request, sink, message_id=message_id) is None:
                await self._tell(interaction, RESTARTING)  # the bot began shutting down while the span was read
        finally:
            self._busy -= 1

    # ---- Regenerate

    async def rebuild(
        self, interaction: discord.Interaction[Any], record: AnswerRecord, first: discord.Message
    ) -> Rebuilt | None:
        """Summarize the same span again, in place (a private summary through the click's token)."""
        span = SpanRequest.from_text(record.prompt.text) if record.prompt is not None else None
        if span is None:
            await interaction.followup.send(REGENERATE_GONE, ephemeral=True)
            return None
        request = await self._request(interaction, span, key=record.key, requester=record)
        if request is None:
            return None
        sink: MessageSink
        reuse: list[discord.Message] = [first]
        if span.private:
            # An ephemeral message is out of the channel routes' reach; the click's token edits it.
            sink = InteractionReplySink(
                interaction,
                key=record.key,
                clock=self.services.clock,
                token_lifetime=self.bot.interaction_token_lifetime,
                ephemeral=True,
            )
            try:
                reuse = [await interaction.original_response()]
            except discord.HTTPException as exc:
                log.warning("could not reach private summary %s to regenerate it (HTTP %s)", record.key, exc.status)
                await self._tell(interaction, REGENERATE_GONE)
                return None
        else:
            sink = ChannelReplySink(first, key=record.key)
        return Rebuilt(request=request, sink=sink, reuse=reuse)

    # ---- reading the channel

    def _unreadable(self, interaction: discord.Interaction[Any]) -> str | None:
        """Why the span can't be read for this person here (None: it can)."""
        needed = ["view_channel", "read_message_history"]
        if isinstance(interaction.channel, discord.VoiceChannel | discord.StageChannel):
            needed.append("connect")  # a voice channel's text chat is read only with Connect
        missing = missing_permissions(interaction.app_permissions, needed)
        if missing:
            return CANNOT_READ.format(permissions=bold_list(missing), s="s" if len(missing) > 1 else "")
        if not interaction.permissions.read_message_history:
            return YOU_CANNOT_READ
        return None

    async def _request(
        self,
        interaction: discord.Interaction[Any],
        span: SpanRequest,
        *,
        key: int,
        requester: AnswerRecord | None = None,
    ) -> AnswerRequest | None:
        """Read the span and build the summary request; None (the user told why) if there is nothing to do."""
        channel = await self._channel(interaction)
        me = self.bot.user
        if channel is None or me is None:
            await self._tell(interaction, READ_FAILED.format(code="unknown channel"))
            return None
        try:
            read = await self._read(channel, span, answering=key)
        except discord.HTTPException as exc:
            log.warning("could not read channel %s for a summary (HTTP %s, code %s)", channel.id, exc.status, exc.code)
            await self._tell(interaction, READ_FAILED.format(code=exc.code or exc.status))
            return None
        capped = len(read) > span.limit
        messages = read[-span.limit :]
        lines = [line for message in messages if (line := _spoken(message, me.id)) is not None]
        if not lines:
            await self._tell(interaction, REGENERATE_GONE if requester else NOTHING_TO_SUMMARIZE)
            return None
        guild_id = interaction.guild_id
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        effective = await effective_settings(
            self.services.store, self.services.settings, guild_id=guild_id, channel_id=channel.id, parent_id=parent_id
        )
        header = span_header(
            count=len(lines),
            start=lines[0].created_at,
            end=lines[-1].created_at,
            link=jump_link(guild_id, channel.id, lines[0].message_id),
            capped_at=span.limit if capped else None,
        )
        asker_id = requester.requester_id if requester is not None else interaction.user.id
        asker_name = interaction.user.display_name
        if requester is not None and requester.prompt is not None:
            asker_name = requester.prompt.author_name
        kept = span.covering(lines[0].message_id, lines[-1].message_id)
        return AnswerRequest(
            records=[],
            cut=False,
            effective=effective,
            requester_id=asker_id,
            key=key,
            guild_id=guild_id,
            channel_id=channel.id,
            ask=AskPrompt(author_id=asker_id, author_name=asker_name, text=kept.to_text()),
            kind=AnswerKind.SUMMARY,
            summary=SummaryJob(lines=tuple(lines), place=f"#{getattr(channel, 'name', channel.id)}"),
            header=header,
        )

    async def _channel(self, interaction: discord.Interaction[Any]) -> Readable | None:
        """The channel the command was used in (fetched when discord.py has not cached it, e.g. a thread)."""
        channel = interaction.channel
        if isinstance(channel, READABLE):
            return channel
        if interaction.channel_id is None:
            return None
        resolved = await self.places.resolve(interaction.channel_id)
        if isinstance(resolved, READABLE):
            return resolved
        return self.bot.get_partial_messageable(interaction.channel_id, guild_id=interaction.guild_id)

    @staticmethod
    async def _read(channel: Readable, span: SpanRequest, *, answering: int) -> list[discord.Message]:
        """The span's newest messages, oldest first, and one more than the limit if there are: then it cut the span.

        The command's own response (the deferred "thinking…" the summary will replace) is not part of it.
        """
        after = discord.Object(span.after_id) if span.after_id is not None else None
        before = discord.Object(span.before_id) if span.before_id is not None else None
        history = channel.history(limit=span.limit + 2, after=after, before=before, oldest_first=False)
        newest_first = [message async for message in history if not _answers(message, answering)]
        newest_first.reverse()
        return newest_first[-(span.limit + 1) :]

    @staticmethod
    async def _tell(interaction: discord.Interaction[Any], text: str) -> None:
        """Say why there is no summary: in the deferred response, or privately after a Regenerate click."""
        with contextlib.suppress(discord.HTTPException):
            if interaction.type is discord.InteractionType.component:
                await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            else:
                await interaction.edit_original_response(content=text, allowed_mentions=NO_PINGS)


def _spoken(message: discord.Message, my_id: int) -> SpokenLine | None:
    """A message as a transcript line (None for system messages and the bot's own status notes)."""
    if message.type not in SPOKEN_TYPES:
        return None
    text = spoken_text(
        message.clean_content,
        from_bot=message.author.id == my_id,
        attachments=tuple(attachment.filename for attachment in message.attachments),
    )
    if not text:
        return None
    return SpokenLine(
        message_id=message.id, author_name=message.author.display_name, created_at=message.created_at, text=text
    )


def _answers(message: discord.Message, interaction_id: int) -> bool:
    """Whether `message` is the response to the interaction `interaction_id`."""
    metadata = message.interaction_metadata
    return metadata is not None and metadata.id == interaction_id
