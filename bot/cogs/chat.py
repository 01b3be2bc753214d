"""Conversations: @mentions, replies, auto-reply channels, bot threads, DMs, /ask and /chat, Stop and Regenerate."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers.records import AnswerKind, AnswerRecord, AskPrompt
from bot.answers.request import AnswerRequest
from bot.attachments import AttachmentPlan
from bot.channel_settings.effective import effective_settings
from bot.channel_settings.resolve import EffectiveSettings
from bot.channel_settings.store import StoreError
from bot.cogs.access import listed_admin
from bot.cogs.rebuilders import Rebuilder
from bot.conversation import ChatRecord
from bot.discord_history import ThreadStarters, read_reply_chain
from bot.discord_io import (
    NO_PINGS,
    ChannelReplySink,
    InteractionReplySink,
    download_attachment,
    message_id,
    plan_message_attachments,
    to_record,
)
from bot.knowledge.records import KnowledgePlace
from bot.places import (
    ChannelResolver,
    Place,
    ReplyAccess,
    bold_list,
    missing_permissions,
    place_of,
    reply_access,
)
from bot.streaming import notes
from bot.streaming.relay import MessageSink

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

EMPTY_PROMPT = "Ask me something after the mention, e.g. `@me how do I reverse a list in Python?`"
DMS_OFF = "I only answer in servers: direct messages are turned off for this bot."
THREAD_WELCOME = "Ask me anything here: I answer every message in this thread (no mention needed)."
STOP_REFUSED = "Only the person who asked, or someone who can manage this channel, can stop this answer."
REGENERATE_REFUSED = "Only the person who asked, or someone who can manage this channel, can regenerate this answer."
STOP_EXPIRED = "This answer is no longer being generated (it finished, or the bot restarted)."
REGENERATE_EXPIRED = "This answer can't be regenerated any more: its question was deleted, or is too old."
STILL_ANSWERING = "This answer is still being written; stop it first."
RESTARTING = "The bot is restarting; please ask again in a moment."
DATABASE_TROUBLE = "I can't read my settings database right now, so I can't answer. Please ask again in a moment."
# Channel kinds and permissions (see bot/places.py).
CHAT_IN_THREAD = (
    "This is already a thread, and a thread can't hold another one. Mention me here to ask something, "
    "or use /chat in {parent} to open a new chat thread."
)
CHAT_IN_VOICE = (
    "A voice channel's text chat can't have threads, so /chat can't open one here. "
    "Mention me here to ask something, or use /chat in a text channel."
)
CHAT_ELSEWHERE = "/chat opens a thread in a text, announcement or forum channel; it can't do that here."
CHAT_NEEDS_TAG = (
    "This forum requires a tag on every post, and I won't pick one for you. "
    "Create a post with the right tag and mention me in it."
)
CHAT_FAILED = "Discord refused to open the thread (error {code}). Try again, or ask an admin to check my permissions."
CHAT_OPENED_POST = "🧵 {thread}: I answer every message in this post."
NEED_PERMISSIONS = "I need the {permissions} permission{s} here to {action}."
NO_HISTORY = (
    "I can't read earlier messages here (I lack the {permissions} permission{s}), so I answered this message alone."
)
# Shown on a question the bot can't answer because it may not post in that channel (the log names the permission).
CANNOT_POST_REACTION = "🔇"
CHATTY_TYPES = (discord.MessageType.default, discord.MessageType.reply)
RATE_WINDOW = 60.0


class ChatCog(commands.Cog):
    """Answers people wherever they talk to the bot, one fair queue in front of Ollama."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.answering = services.answering
        self.places = ChannelResolver(bot)
        self.thread_starters = ThreadStarters()
        self._busy = 0
        # Regenerate for the answers other cogs build (summaries, message actions), by record kind.
        self.rebuilders: dict[AnswerKind, Rebuilder] = {}

    @property
    def active_replies(self) -> int:
        """Replies being prepared or streamed right now."""
        return self._busy

    # ---- message triggers

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a message meant for the bot (see the README for when that is)."""
        me = self.bot.user
        if me is None or message.author.bot or message.type not in CHATTY_TYPES or not self.answering.accepting:
            return
        self._busy += 1
        try:
            await self._handle_message(message, me.id)
        except StoreError as exc:
            # Settings could not be read (the database is down or restarting): say so to whoever asked.
            log.warning("could not answer message %s in channel %s: %s", message.id, message.channel.id, exc)
            if message.guild is None or any(user.id == me.id for user in message.mentions):
                with contextlib.suppress(discord.HTTPException):
                    await message.reply(DATABASE_TROUBLE, mention_author=False, allowed_mentions=NO_PINGS)
        except Exception:
            log.exception("failed to answer message %s in channel %s", message.id, message.channel.id)
        finally:
            self._busy -= 1

    async def _handle_message(self, message: discord.Message, my_id: int) -> None:
        await self._use_real_channel(message)
        mentioned = False
        asked = True  # False when only auto_reply makes the bot answer
        if message.guild is None:
            if not self.services.settings.allow_dms:
                await message.reply(DMS_OFF, mention_author=False, allowed_mentions=NO_PINGS)
                return
            request = await self._request_for(message, my_id, history_from_channel=True)
        elif self._in_my_thread(message, my_id):
            # In a thread the bot started, the thread is the conversation, replies and mentions included.
            request = await self._request_for(message, my_id, history_from_channel=True)
        elif await self._is_for_me(message, my_id):
            mentioned = True
            request = await self._request_for(message, my_id, history_from_channel=False)
        else:
            effective = await self._effective(message.guild.id, message.channel)
            if not effective.auto_reply:
                return
            asked = False
            request = await self._request_for(message, my_id, history_from_channel=True, effective=effective)
        access = reply_access(message.channel, message.guild.me if message.guild else None)
        if not access.can_post:
            await self._cannot_post(message, access)
            return
        if request is None:
            if mentioned:
                await self._say(message, EMPTY_PROMPT, access)
            return
        if not access.reads_history:
            request = _without_history(request, access)
        sink = ChannelReplySink(
            message,
            key=message.id,
            reply=access.reads_history,
            ping_author=request.effective.reply_ping(asked=asked),
        )
        await self._generate(request, sink, reply_to=message)

    async def _use_real_channel(self, message: discord.Message) -> None:
        """Put the real channel on a message from a channel discord.py has not cached (a thread it never saw).

        Whether it is the bot's own /chat thread, which settings apply (a thread inherits from its parent) and
        what the bot may post there all depend on the channel's kind, parent and owner.
        """
        if message.guild is None or not isinstance(message.channel, discord.PartialMessageable):
            return
        channel = await self.places.resolve(message.channel.id)
        if isinstance(channel, discord.Thread | discord.TextChannel | discord.VoiceChannel | discord.StageChannel):
            message.channel = channel

    async def _cannot_post(self, message: discord.Message, access: ReplyAccess) -> None:
        """The bot may not post here: react if it may (that still reaches the person), and say why in the log."""
        channel = message.channel
        log.warning(
            "can't answer message %s in channel %s (%s): the bot lacks the %s permission there",
            message.id,
            channel.id,
            getattr(channel, "name", "?"),
            " and ".join(access.missing_to_post),
        )
        if access.may_react:
            try:
                await message.add_reaction(CANNOT_POST_REACTION)
            except discord.HTTPException as exc:
                log.warning("could not react either (HTTP %s, code %s)", exc.status, exc.code)

    @staticmethod
    async def _say(message: discord.Message, text: str, access: ReplyAccess) -> None:
        """A short answer; a reply when the bot may reply (that needs Read Message History), else a message."""
        if access.reads_history:
            await message.reply(text, mention_author=False, allowed_mentions=NO_PINGS)
        else:
            await message.channel.send(text, allowed_mentions=NO_PINGS)

    @staticmethod
    def _in_my_thread(message: discord.Message, my_id: int) -> bool:
        channel = message.channel
        return isinstance(channel, discord.Thread) and channel.owner_id == my_id

    async def _is_for_me(self, message: discord.Message, my_id: int) -> bool:
        if any(user.id == my_id for user in message.mentions):
            return True
        parent = await self._referenced(message)
        return parent is not None and parent.author.id == my_id

    async def _effective(self, guild_id: int | None, channel: object) -> EffectiveSettings:
        """The settings in effect in `channel` (a thread inherits from its parent channel)."""
        assert isinstance(channel, discord.abc.Snowflake)
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        return await effective_settings(
            self.services.store, self.services.settings, guild_id=guild_id, channel_id=channel.id, parent_id=parent_id
        )

    async def _referenced(self, message: discord.Message) -> discord.Message | None:
        """The message `message` replies to, fetched when Discord did not include it."""
        reference = message.reference
        if reference is None or reference.message_id is None:
            return None
        resolved = reference.resolved
        if isinstance(resolved, discord.Message):
            return resolved
        if isinstance(resolved, discord.DeletedReferencedMessage):
            return None
        if reference.cached_message is not None:
            return reference.cached_message
        if reference.channel_id != message.channel.id:
            return None
        try:
            return await message.channel.fetch_message(reference.message_id)
        except discord.HTTPException:
            return None

    # ---- building the conversation

    async def _request_for(
        self,
        message: discord.Message,
        my_id: int,
        *,
        history_from_channel: bool,
        effective: EffectiveSettings | None = None,
    ) -> AnswerRequest | None:
        """The conversation ending in `message` (None if there is nothing to answer)."""
        guild_id = message.guild.id if message.guild else None
        effective = effective or await self._effective(guild_id, message.channel)
        limit = effective.history or self.services.settings.history_max_messages
        if history_from_channel:
            records, cut = await self._channel_history(message, my_id, limit)
        else:
            records, cut = await self._reply_chain(message, my_id, limit)
        plan, attachment_notes = await self._with_attachments(message, effective.model)
        if not records[-1].content.strip() and plan is None:
            return None
        return AnswerRequest(
            records=records,
            cut=cut,
            effective=effective,
            requester_id=message.author.id,
            key=message.id,
            guild_id=guild_id,
            channel_id=message.channel.id,
            notes=tuple(attachment_notes),
            attachments=plan,
            download=download_attachment,
        )

    async def _reply_chain(self, message: discord.Message, my_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
        """The reply chain ending in `message`, oldest first; True if it went on past the limit."""
        chain = await read_reply_chain(
            self.bot, message, my_id=my_id, answers=self.services.answers, starters=self.thread_starters, limit=limit
        )
        return chain.records, chain.cut

    async def _channel_history(self, message: discord.Message, my_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
        """The channel's (thread's, DM's) recent messages before `message`, oldest first."""
        earlier: list[discord.Message] = []
        with contextlib.suppress(discord.HTTPException):
            earlier = [m async for m in message.channel.history(limit=limit, before=message)]
        records = [
            to_record(m, bot_id=my_id)
            for m in reversed(earlier)
            if m.type in CHATTY_TYPES and (m.content or m.author.id == my_id) and not _is_welcome(m, my_id)
        ]
        records.append(to_record(message, bot_id=my_id))
        # The welcome opens a /chat thread: when it is the oldest message read, nothing lies before it.
        return records, len(earlier) == limit and not _is_welcome(earlier[-1], my_id)

    async def _with_attachments(self, message: discord.Message, model: str) -> tuple[AttachmentPlan | None, list[str]]:
        """Which attachments of the prompt message to use (None: none), and notes for the rest."""
        return await plan_message_attachments(
            message, model, catalog=self.services.catalog, limits=self.answering.attachment_limits
        )

    async def _knowledge_place(self, request: AnswerRequest) -> KnowledgePlace | None:
        """Where the question was asked, for team knowledge: its server, channel and (in a thread) parent."""
        if request.guild_id is None or request.channel_id is None or self.services.knowledge is None:
            return None
        channel = await self.places.resolve(request.channel_id)
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        return KnowledgePlace(guild_id=request.guild_id, channel_id=request.channel_id, parent_id=parent_id)

    # ---- slash commands

    @app_commands.command(name="ask", description="Ask the model a question")
    @app_commands.describe(prompt="What you want to ask")
    @app_commands.guild_only()
    async def ask(self, interaction: discord.Interaction[Any], prompt: app_commands.Range[str, 1, 4000]) -> None:
        """Stream an answer to `prompt` into the command's response."""
        arrived_at = self.services.clock.now()  # the interaction token's 15 minutes run from here
        if not self.answering.accepting:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        self._busy += 1
        try:
            retry = self._rate_limited(interaction.user.id)
            if retry:
                await interaction.response.send_message(_slow_down(retry), ephemeral=True)
                return
            await interaction.response.defer(thinking=True)
            record = ChatRecord(
                id=interaction.id,
                author_id=interaction.user.id,
                author_name=interaction.user.display_name,
                content=prompt,
                from_bot=False,
            )
            effective = await self._effective(interaction.guild_id, interaction.channel)
            request = AnswerRequest(
                records=[record],
                cut=False,
                effective=effective,
                requester_id=interaction.user.id,
                key=interaction.id,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                ask=AskPrompt(author_id=record.author_id, author_name=record.author_name, text=prompt),
            )
            sink = InteractionReplySink(
                interaction,
                key=interaction.id,
                clock=self.services.clock,
                arrived_at=arrived_at,
                token_lifetime=self.bot.interaction_token_lifetime,
            )
            await self._generate(request, sink, rate_checked=True)
        finally:
            self._busy -= 1

    @app_commands.command(name="chat", description="Open a thread where the bot answers every message")
    @app_commands.describe(topic="The thread's name")
    @app_commands.guild_only()
    async def chat(
        self, interaction: discord.Interaction[Any], topic: app_commands.Range[str, 1, 90] | None = None
    ) -> None:
        """Start a thread (a post, in a forum) from this channel; the bot answers everything said in it."""
        channel: object = interaction.channel
        if interaction.channel_id is not None and not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            channel = await self.places.resolve(interaction.channel_id)
        place = place_of(channel)
        explanation = _chat_refusal(place, channel)
        if explanation:
            await interaction.response.send_message(explanation, ephemeral=True)
            return
        # Where the thread opens: this channel, or the forum of this post.
        home = channel.parent if isinstance(channel, discord.Thread) else channel
        # A forum post needs only Send Messages (Discord ignores Create Public Threads for forums).
        in_forum = isinstance(home, discord.ForumChannel)
        needed = ["send_messages" if in_forum else "create_public_threads", "send_messages_in_threads"]
        missing = missing_permissions(interaction.app_permissions, needed)
        if missing:
            await interaction.response.send_message(_need(missing, "start a chat thread"), ephemeral=True)
            return
        name = topic or f"Chat with {interaction.user.display_name}"
        try:
            if isinstance(home, discord.ForumChannel):
                # The post's first message is the welcome, so the bot's own post holds the whole conversation.
                created = await home.create_thread(
                    name=name, content=THREAD_WELCOME, allowed_mentions=NO_PINGS, auto_archive_duration=1440
                )
                thread = created.thread
            else:
                assert isinstance(home, discord.TextChannel)
                # An announcement channel's threads are announcement threads; it has no other kind.
                kind = discord.ChannelType.news_thread if home.is_news() else discord.ChannelType.public_thread
                thread = await home.create_thread(name=name, type=kind, auto_archive_duration=1440)
        except discord.Forbidden:
            await interaction.response.send_message(_need(needed, "start a chat thread"), ephemeral=True)
            return
        except discord.HTTPException as exc:
            where = interaction.channel_id
            log.warning("could not open a /chat thread from channel %s (HTTP %s, code %s)", where, exc.status, exc.code)
            await interaction.response.send_message(CHAT_FAILED.format(code=exc.code or exc.status), ephemeral=True)
            return
        if place is Place.FORUM:  # a forum shows no messages, so the link goes to the person only
            await interaction.response.send_message(CHAT_OPENED_POST.format(thread=thread.mention), ephemeral=True)
            return
        await interaction.response.send_message(f"🧵 {thread.mention}: {THREAD_WELCOME}", allowed_mentions=NO_PINGS)
        if not in_forum:
            await thread.send(THREAD_WELCOME, allowed_mentions=NO_PINGS)

    # ---- buttons

    async def stop_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """The Stop button: cancel generation, keep the partial answer."""
        requester_id = self.answering.requester_of(key)
        if requester_id is None:
            await interaction.response.edit_message(view=None)
            await interaction.followup.send(STOP_EXPIRED, ephemeral=True)
            return
        if not self._may_control(interaction, requester_id):
            await interaction.response.send_message(STOP_REFUSED, ephemeral=True)
            return
        await interaction.response.defer()
        log.info("reply %s stopped by user %s", key, interaction.user.id)
        self.answering.stop(key)

    async def regenerate_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """The Regenerate button: run the same conversation again and replace the answer in place."""
        if self.answering.is_streaming(key):
            await interaction.response.send_message(STILL_ANSWERING, ephemeral=True)
            return
        me = self.bot.user
        clicked = interaction.message
        if me is None or clicked is None:
            return
        self._busy += 1
        try:
            record = await self.services.answers.find_by_key(key)
            if record is not None and (rebuild := self.rebuilders.get(record.kind)) is not None:
                await self._regenerate_rebuilt(interaction, clicked, me.id, record, rebuild)
                return
            prompt = await self._prompt_for(interaction, key, record)
            if prompt is None:
                await interaction.response.send_message(REGENERATE_EXPIRED, ephemeral=True)
                return
            requester_id = prompt.author.id if isinstance(prompt, discord.Message) else prompt.author_id
            if not self._may_control(interaction, requester_id):
                await interaction.response.send_message(REGENERATE_REFUSED, ephemeral=True)
                return
            if retry := self._rate_limited(interaction.user.id):
                await interaction.response.send_message(_slow_down(retry), ephemeral=True)
                return
            await interaction.response.defer()
            first, extras = await self._answer_parts(clicked, me.id, record)
            for extra in extras:
                with contextlib.suppress(discord.HTTPException):
                    await extra.delete()
            if isinstance(prompt, discord.Message):
                request = await self._request_for(
                    prompt,
                    me.id,
                    history_from_channel=prompt.guild is None
                    or self._in_my_thread(prompt, me.id)
                    or not await self._is_for_me(prompt, me.id),
                )
                sink = ChannelReplySink(prompt, key=key)
            else:
                effective = await self._effective(interaction.guild_id, interaction.channel)
                request = AnswerRequest(
                    records=[prompt],
                    cut=False,
                    effective=effective,
                    requester_id=prompt.author_id,
                    key=key,
                    guild_id=interaction.guild_id,
                    channel_id=interaction.channel_id,
                    ask=record.prompt if record is not None else None,
                )
                sink = ChannelReplySink(first, key=key)
            if request is None:
                return
            log.info("reply %s regenerated by user %s", key, interaction.user.id)
            await self._generate(
                request, sink, reuse=[first], rate_checked=True, status=notes.REGENERATING, previous=record
            )
        finally:
            self._busy -= 1

    async def _regenerate_rebuilt(
        self,
        interaction: discord.Interaction[Any],
        clicked: discord.Message,
        my_id: int,
        record: AnswerRecord,
        rebuild: Rebuilder,
    ) -> None:
        """Regenerate an answer another cog builds: the shared checks here, the request from its rebuilder."""
        if not self._may_control(interaction, record.requester_id):
            await interaction.response.send_message(REGENERATE_REFUSED, ephemeral=True)
            return
        if retry := self._rate_limited(interaction.user.id):
            await interaction.response.send_message(_slow_down(retry), ephemeral=True)
            return
        await interaction.response.defer()
        first, extras = await self._answer_parts(clicked, my_id, record)
        rebuilt = await rebuild(interaction, record, first)
        if rebuilt is None:
            return
        for extra in extras:
            with contextlib.suppress(discord.HTTPException):
                await extra.delete()
        log.info("reply %s regenerated by user %s", record.key, interaction.user.id)
        await self._generate(
            rebuilt.request,
            rebuilt.sink,
            reuse=list(rebuilt.reuse),
            rate_checked=True,
            status=notes.REGENERATING,
            previous=record,
        )

    async def _prompt_for(
        self, interaction: discord.Interaction[Any], key: int, record: AnswerRecord | None
    ) -> discord.Message | ChatRecord | None:
        """The question an answer answers: an /ask's from its record, else the prompt message (None if gone)."""
        asked = record.ask_record() if record is not None else None
        if asked is not None:
            return asked
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return None
        try:
            return await channel.fetch_message(key)
        except discord.HTTPException:
            return None

    async def _answer_parts(
        self, clicked: discord.Message, my_id: int, record: AnswerRecord | None
    ) -> tuple[discord.Message, list[discord.Message | discord.PartialMessage]]:
        """The first message of the answer `clicked` belongs to that still exists, and all its others.

        The record lists every part (/ask follow-ups reply to nothing, so only the record can tell); an
        answer without a record (older than the records, or the store failed) is found by walking the
        chain of continuations, which reply to the previous part.
        """
        if record is None or clicked.id not in record.message_ids:
            parts = await self._walk_answer_parts(clicked, my_id)
            return parts[0], list(parts[1:])
        later = list(record.message_ids)
        unreadable: list[int] = []
        first = clicked
        while later and (message_id := later.pop(0)) != clicked.id:
            try:
                first = await clicked.channel.fetch_message(message_id)
                break
            except (discord.NotFound, discord.Forbidden):
                continue  # deleted: the next part becomes the first
            except discord.HTTPException:
                unreadable.append(message_id)  # Discord trouble: at least try to delete it with the others
        # The others are only deleted, which needs no fetch.
        channel = self.bot.get_partial_messageable(clicked.channel.id)
        extras = [clicked if mid == clicked.id else channel.get_partial_message(mid) for mid in unreadable + later]
        return first, extras

    async def _walk_answer_parts(self, last: discord.Message, my_id: int) -> list[discord.Message]:
        """All messages of one answer, first to `last` (continuations reply to the previous part)."""
        parts = [last]
        while True:
            parent = await self._referenced(parts[-1])
            if parent is None or parent.author.id != my_id:
                break
            parts.append(parent)
        parts.reverse()
        return parts

    def _may_control(self, interaction: discord.Interaction[Any], requester_id: int) -> bool:
        if interaction.user.id == requester_id or listed_admin(interaction, self.services.settings):
            return True
        return interaction.guild_id is not None and interaction.permissions.manage_channels

    # ---- generation

    def _rate_limited(self, user_id: int) -> float:
        """Seconds until `user_id` may ask again (0: now; the request is counted)."""
        return self.answering.rate_limited(user_id)

    async def _generate(
        self,
        request: AnswerRequest,
        sink: MessageSink,
        *,
        reply_to: discord.Message | None = None,
        reuse: list[discord.Message] | None = None,
        rate_checked: bool = False,
        status: str | None = None,
        previous: AnswerRecord | None = None,
    ) -> None:
        """Admit `request` (telling the asker when they ask too fast), then hand it to the answer service."""
        if not self.answering.accepting:
            return  # shutting down: the question arrived after the drain began
        if not rate_checked and (retry := self._rate_limited(request.requester_id)):
            if reply_to is not None:
                await reply_to.reply(_slow_down(retry), mention_author=False, allowed_mentions=NO_PINGS)
            return
        request = replace(request, place=await self._knowledge_place(request))
        await self.answering.answer(
            request, sink, message_id=message_id, reuse=reuse or (), status=status, previous=previous
        )


def _chat_refusal(place: Place, channel: object) -> str | None:
    """Why /chat can't open a thread in this kind of channel (None: it can)."""
    if place is Place.THREAD:
        assert isinstance(channel, discord.Thread)
        return CHAT_IN_THREAD.format(parent=f"<#{channel.parent_id}>")
    if place is Place.VOICE:
        return CHAT_IN_VOICE
    if place is Place.OTHER:
        return CHAT_ELSEWHERE
    forum = channel.parent if isinstance(channel, discord.Thread) else channel
    if isinstance(forum, discord.ForumChannel) and forum.flags.require_tag:
        return CHAT_NEEDS_TAG
    return None


def _need(permissions: list[str], action: str) -> str:
    plural = "s" if len(permissions) > 1 else ""
    return NEED_PERMISSIONS.format(permissions=bold_list(permissions), s=plural, action=action)


def _without_history(request: AnswerRequest, access: ReplyAccess) -> AnswerRequest:
    """The request cut to the question alone, with a note naming the permission that would give it history."""
    missing = list(access.missing_for_history)
    note = notes.note(NO_HISTORY.format(permissions=bold_list(missing), s="s" if len(missing) > 1 else ""))
    return replace(request, records=request.records[-1:], cut=False, notes=(*request.notes, note))


def _is_welcome(message: discord.Message, my_id: int) -> bool:
    """The bot's opening message of a /chat thread: an invitation, not a turn of the conversation."""
    return message.author.id == my_id and message.content == THREAD_WELCOME


def _slow_down(retry: float) -> str:
    return f"You're asking quickly; please wait {max(1, round(retry))} s before the next question."
