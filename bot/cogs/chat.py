"""Conversations: @mentions, replies, auto-reply channels, bot threads, DMs, /ask and /chat, Stop and Regenerate."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.attachments import AttachmentLimits, AttachmentRecord, encode_image, inline_text, plan_attachments
from bot.channel_settings.effective import effective_settings
from bot.channel_settings.resolve import EffectiveSettings
from bot.conversation import ChatRecord, build_conversation
from bot.discord_io import NO_PINGS, ChannelReplySink, InteractionReplySink, to_record
from bot.metrics import error_kind
from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaError
from bot.ollama.fair_share import QueuePosition, RequestQueue, UserRateLimiter, stream_with_busy_retry
from bot.streaming import notes
from bot.streaming.relay import SHUTDOWN_CANCEL, MessageSink, RelayOptions, RelayResult, StatusLine, relay_reply

if TYPE_CHECKING:
    from bot.app import OllacordBot, Services

log = logging.getLogger(__name__)

HISTORY_TRIMMED = notes.note("Earlier messages were left out of the conversation to fit the history limit.")
EMPTY_PROMPT = "Ask me something after the mention, e.g. `@me how do I reverse a list in Python?`"
DMS_OFF = "I only answer in servers: direct messages are turned off for this bot."
THREAD_WELCOME = "Ask me anything here: I answer every message in this thread (no mention needed)."
STOP_REFUSED = "Only the person who asked, or someone who can manage this channel, can stop this answer."
REGENERATE_REFUSED = "Only the person who asked, or someone who can manage this channel, can regenerate this answer."
STOP_EXPIRED = "This answer is no longer being generated (it finished, or the bot restarted)."
REGENERATE_EXPIRED = "This answer can't be regenerated any more: its question is gone (deleted, or the bot restarted)."
STILL_ANSWERING = "This answer is still being written; stop it first."
RESTARTING = "The bot is restarting; please ask again in a moment."
CHATTY_TYPES = (discord.MessageType.default, discord.MessageType.reply)
# /ask answers carry no reference to a user message, so their prompts are remembered for replies.
ASK_MEMORY = 2048
RATE_WINDOW = 60.0


@dataclass
class ActiveReply:
    """A reply being streamed, so the Stop button can find it."""

    task: asyncio.Task[RelayResult]
    requester_id: int


@dataclass(frozen=True, slots=True)
class Request:
    """Everything needed to (re)generate one answer."""

    records: list[ChatRecord]
    cut: bool
    effective: EffectiveSettings
    requester_id: int
    key: int
    guild_id: int | None
    channel_id: int | None
    notes: tuple[str, ...] = ()


class ChatCog(commands.Cog):
    """Answers people wherever they talk to the bot, one fair queue in front of Ollama."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        settings = services.settings
        self.queue = RequestQueue(settings.max_concurrent_requests)
        self.rate_limiter = UserRateLimiter(settings.user_requests_per_minute, RATE_WINDOW)
        self.attachment_limits = AttachmentLimits(
            max_image_bytes=int(settings.max_image_mb * 1024 * 1024),
            max_text_bytes=settings.max_text_file_kb * 1024,
        )
        self._ask_prompts: OrderedDict[int, ChatRecord] = OrderedDict()
        self._active: dict[int, ActiveReply] = {}
        self._busy = 0
        self.accepting = True

    @property
    def active_replies(self) -> int:
        """Replies being prepared or streamed right now."""
        return self._busy

    @property
    def streaming(self) -> int:
        """Replies registered as streaming (or queued for Ollama)."""
        return len(self._active)

    async def drain(self, grace: float) -> None:
        """Stop taking new work, give replies `grace` seconds to finish, then cut the rest short."""
        self.accepting = False
        tasks = [active.task for active in self._active.values()]
        if not tasks:
            return
        log.info("waiting up to %.0f s for %d reply(ies) to finish", grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel(SHUTDOWN_CANCEL)
        if pending:
            log.info("cut %d reply(ies) short for shutdown", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    # ---- message triggers

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a message meant for the bot (see the README for when that is)."""
        me = self.bot.user
        if me is None or message.author.bot or message.type not in CHATTY_TYPES or not self.accepting:
            return
        self._busy += 1
        try:
            await self._handle_message(message, me.id)
        except Exception:
            log.exception("failed to answer message %s in channel %s", message.id, message.channel.id)
        finally:
            self._busy -= 1

    async def _handle_message(self, message: discord.Message, my_id: int) -> None:
        mentioned = False
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
            request = await self._request_for(message, my_id, history_from_channel=True, effective=effective)
        if request is None:
            if mentioned:
                await message.reply(EMPTY_PROMPT, mention_author=False, allowed_mentions=NO_PINGS)
            return
        await self._generate(request, ChannelReplySink(message, key=message.id), reply_to=message)

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
    ) -> Request | None:
        """The conversation ending in `message` (None if there is nothing to answer)."""
        guild_id = message.guild.id if message.guild else None
        effective = effective or await self._effective(guild_id, message.channel)
        limit = effective.history or self.services.settings.history_max_messages
        if history_from_channel:
            records, cut = await self._channel_history(message, my_id, limit)
        else:
            records, cut = await self._reply_chain(message, my_id, limit)
        prompt, attachment_notes = await self._with_attachments(records[-1], message, effective.model)
        records[-1] = prompt
        if not prompt.content.strip() and not prompt.images:
            return None
        return Request(
            records=records,
            cut=cut,
            effective=effective,
            requester_id=message.author.id,
            key=message.id,
            guild_id=guild_id,
            channel_id=message.channel.id,
            notes=tuple(attachment_notes),
        )

    async def _reply_chain(self, message: discord.Message, my_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
        """Walk the reply chain back from `message`; True if it went on past the limit."""
        chain = [to_record(message, bot_id=my_id)]
        current = message
        while len(chain) < limit + 1:
            parent = await self._referenced(current)
            if parent is None:
                break
            chain.append(to_record(parent, bot_id=my_id))
            remembered = self._ask_prompts.get(parent.id)
            if remembered is not None:
                chain.append(remembered)
                break
            current = parent
        chain.reverse()
        return chain[-limit:], len(chain) > limit

    async def _channel_history(self, message: discord.Message, my_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
        """The channel's (thread's, DM's) recent messages before `message`, oldest first."""
        earlier: list[discord.Message] = []
        with contextlib.suppress(discord.HTTPException):
            earlier = [m async for m in message.channel.history(limit=limit, before=message)]
        records = [
            to_record(m, bot_id=my_id)
            for m in reversed(earlier)
            if m.type in CHATTY_TYPES and (m.content or m.author.id == my_id)
        ]
        records.append(to_record(message, bot_id=my_id))
        return records, len(earlier) == limit

    async def _with_attachments(
        self, record: ChatRecord, message: discord.Message, model: str
    ) -> tuple[ChatRecord, list[str]]:
        """Inline text files and attach images of the prompt message; notes for what was left out."""
        if not message.attachments:
            return record, []
        files = [
            AttachmentRecord(filename=a.filename, size=a.size, content_type=a.content_type, ref=a)
            for a in message.attachments
        ]
        try:
            vision = "vision" in await self.services.catalog.capabilities(model)
        except OllamaError:
            vision = False  # the request itself will explain what is wrong with the model
        plan = plan_attachments(files, model=model, vision=vision, limits=self.attachment_limits)
        found_notes = [notes.note(n) for n in plan.notes]
        images: list[str] = []
        blocks: list[str] = []
        for file in plan.images + plan.texts:
            attachment = file.ref
            assert isinstance(attachment, discord.Attachment)
            try:
                data = await attachment.read()
            except discord.HTTPException:
                found_notes.append(notes.note(f"`{file.filename}` could not be downloaded from Discord."))
                continue
            if file in plan.images:
                images.append(encode_image(data))
                continue
            block, problem = inline_text(file.filename, data, max_chars=self.attachment_limits.max_text_chars)
            if block:
                blocks.append(block)
            if problem:
                found_notes.append(notes.note(problem))
        content = "\n\n".join([record.content, *blocks]) if blocks else record.content
        return replace(record, content=content, images=tuple(images)), found_notes

    # ---- slash commands

    @app_commands.command(name="ask", description="Ask the model a question")
    @app_commands.describe(prompt="What you want to ask")
    @app_commands.guild_only()
    async def ask(self, interaction: discord.Interaction[Any], prompt: app_commands.Range[str, 1, 4000]) -> None:
        """Stream an answer to `prompt` into the command's response."""
        arrived_at = self.services.clock.now()  # the interaction token's 15 minutes run from here
        if not self.accepting:
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
            request = Request(
                records=[record],
                cut=False,
                effective=effective,
                requester_id=interaction.user.id,
                key=interaction.id,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
            )
            sink = InteractionReplySink(
                interaction,
                key=interaction.id,
                clock=self.services.clock,
                arrived_at=arrived_at,
                token_lifetime=self.bot.interaction_token_lifetime,
            )
            self._remember_ask(interaction.id, record)
            await self._generate(request, sink, rate_checked=True)
            if sink.first_message_id is not None:
                self._remember_ask(sink.first_message_id, record)
        finally:
            self._busy -= 1

    def _remember_ask(self, message_id: int, record: ChatRecord) -> None:
        self._ask_prompts[message_id] = record
        while len(self._ask_prompts) > ASK_MEMORY:
            self._ask_prompts.popitem(last=False)

    @app_commands.command(name="chat", description="Open a thread where the bot answers every message")
    @app_commands.describe(topic="The thread's name")
    @app_commands.guild_only()
    async def chat(
        self, interaction: discord.Interaction[Any], topic: app_commands.Range[str, 1, 90] | None = None
    ) -> None:
        """Start a public thread from this channel; the bot answers everything said in it."""
        channel = interaction.channel
        if not isinstance(channel, discord.TextChannel):
            await interaction.response.send_message("Use /chat in a text channel (not in a thread).", ephemeral=True)
            return
        name = topic or f"Chat with {interaction.user.display_name}"
        try:
            thread = await channel.create_thread(
                name=name, type=discord.ChannelType.public_thread, auto_archive_duration=1440
            )
        except discord.Forbidden:
            await interaction.response.send_message(
                "I need the **Create Public Threads** permission here to start a chat thread.", ephemeral=True
            )
            return
        await interaction.response.send_message(f"🧵 {thread.mention}: {THREAD_WELCOME}", allowed_mentions=NO_PINGS)
        await thread.send(THREAD_WELCOME, allowed_mentions=NO_PINGS)

    # ---- buttons

    async def stop_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """The Stop button: cancel generation, keep the partial answer."""
        active = self._active.get(key)
        if active is None:
            await interaction.response.edit_message(view=None)
            await interaction.followup.send(STOP_EXPIRED, ephemeral=True)
            return
        if not self._may_control(interaction, active.requester_id):
            await interaction.response.send_message(STOP_REFUSED, ephemeral=True)
            return
        await interaction.response.defer()
        log.info("reply %s stopped by user %s", key, interaction.user.id)
        active.task.cancel()

    async def regenerate_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """The Regenerate button: run the same conversation again and replace the answer in place."""
        if key in self._active:
            await interaction.response.send_message(STILL_ANSWERING, ephemeral=True)
            return
        me = self.bot.user
        clicked = interaction.message
        if me is None or clicked is None:
            return
        self._busy += 1
        try:
            prompt = await self._prompt_for(interaction, key)
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
            parts = await self._answer_parts(clicked, me.id)
            for extra in parts[1:]:
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
                request = Request(
                    records=[prompt],
                    cut=False,
                    effective=effective,
                    requester_id=prompt.author_id,
                    key=key,
                    guild_id=interaction.guild_id,
                    channel_id=interaction.channel_id,
                )
                sink = ChannelReplySink(parts[0], key=key)
            if request is None:
                return
            log.info("reply %s regenerated by user %s", key, interaction.user.id)
            await self._generate(request, sink, reuse=[parts[0]], rate_checked=True, status=notes.REGENERATING)
        finally:
            self._busy -= 1

    async def _prompt_for(self, interaction: discord.Interaction[Any], key: int) -> discord.Message | ChatRecord | None:
        remembered = self._ask_prompts.get(key)
        if remembered is not None:
            return remembered
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            return None
        try:
            return await channel.fetch_message(key)
        except discord.HTTPException:
            return None

    async def _answer_parts(self, last: discord.Message, my_id: int) -> list[discord.Message]:
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
        user = interaction.user
        settings = self.services.settings
        if user.id == requester_id or user.id in settings.admin_user_ids:
            return True
        if any(role.id in settings.admin_role_ids for role in getattr(user, "roles", [])):
            return True
        return interaction.guild_id is not None and interaction.permissions.manage_channels

    # ---- generation

    def _rate_limited(self, user_id: int) -> float:
        """Seconds until `user_id` may ask again (0: now; the request is counted)."""
        now = self.services.clock.now()
        retry = self.rate_limiter.retry_after(user_id, now)
        if retry <= 0:
            self.rate_limiter.record(user_id, now)
        return retry

    async def _generate(
        self,
        request: Request,
        sink: MessageSink,
        *,
        reply_to: discord.Message | None = None,
        reuse: list[discord.Message] | None = None,
        rate_checked: bool = False,
        status: str | None = None,
    ) -> None:
        if not self.accepting:
            return  # shutting down: the question arrived after the drain began
        if not rate_checked and (retry := self._rate_limited(request.requester_id)):
            if reply_to is not None:
                await reply_to.reply(_slow_down(retry), mention_author=False, allowed_mentions=NO_PINGS)
            return
        settings = self.services.settings
        effective = request.effective
        conversation = build_conversation(
            request.records,
            max_messages=effective.history or settings.history_max_messages,
            max_chars=settings.history_max_chars,
            system=effective.system,
            chain_cut=request.cut,
        )
        status_line = StatusLine()
        status_line.set(status)
        result = RelayResult()
        options = RelayOptions(
            edit_interval=settings.edit_interval,
            show_thinking=effective.show_thinking,
            stop_button=True,
            regenerate_button=True,
        )
        chunks = self._queued_stream(effective, conversation.messages, status_line)
        extra = [*request.notes, *([HISTORY_TRIMMED] if conversation.trimmed else [])]
        task = asyncio.create_task(
            relay_reply(
                chunks,
                sink,
                clock=self.services.clock,
                budget=self.services.budget,
                options=options,
                extra_notes=extra,
                status=status_line,
                reuse=reuse or (),
                result=result,
            ),
            name=f"reply-{request.key}",
        )
        self._active[request.key] = ActiveReply(task=task, requester_id=request.requester_id)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves (shutdown), not just this reply
        finally:
            self._active.pop(request.key, None)
            _log_reply(result, guild_id=request.guild_id, channel_id=request.channel_id, model=effective.model)
            self._record_metrics(result)

    def _record_metrics(self, result: RelayResult) -> None:
        metrics = self.services.metrics
        metrics.replies.inc(outcome=result.outcome.value)
        metrics.tokens.inc(result.tokens)
        if result.first_token_at is not None:
            metrics.time_to_first_token.observe(result.first_token_at - result.started_at)
        if result.final_edit_at is not None:
            metrics.reply_duration.observe(result.final_edit_at - result.started_at)
        if result.error is not None:
            metrics.ollama_errors.inc(kind=error_kind(result.error))

    async def _queued_stream(
        self, effective: EffectiveSettings, messages: list[dict[str, object]], status: StatusLine
    ) -> AsyncIterator[ChatChunk]:
        """Wait for a turn on Ollama (showing the queue position), then stream, retrying 'server busy'."""

        initial = status.text

        async def on_wait(position: QueuePosition) -> None:
            status.set(notes.queue_status(position.position, position.waiting))

        async def on_retry(attempt: int, delay: float) -> None:
            status.set(notes.busy_retry_status(delay))

        def open_stream() -> AsyncGenerator[ChatChunk, None]:
            return self.services.ollama.chat_stream(
                effective.model,
                messages,
                options=effective.options or None,
                think=effective.think,
                keep_alive=effective.keep_alive,
            )

        async with self.queue.slot(on_wait):
            status.set(initial)  # the queue position is no longer news
            retrying = stream_with_busy_retry(open_stream, clock=self.services.clock, on_retry=on_retry)
            async with contextlib.aclosing(retrying) as stream:
                async for chunk in stream:
                    yield chunk


def _slow_down(retry: float) -> str:
    return f"You're asking quickly; please wait {max(1, round(retry))} s before the next question."


def _log_reply(result: RelayResult, *, guild_id: int | None, channel_id: int | None, model: str) -> None:
    """The one INFO line per finished reply (never its text)."""
    ttft = (result.first_token_at - result.started_at) if result.first_token_at is not None else None
    end = result.final_edit_at if result.final_edit_at is not None else result.started_at
    log.info(
        "reply finished guild=%s channel=%s model=%s outcome=%s tokens=%d chars=%d messages=%d ttft=%s "
        "duration=%.2fs%s",
        guild_id or "-",
        channel_id,
        model,
        result.outcome.value,
        result.tokens,
        len(result.text),
        result.message_count,
        f"{ttft:.2f}s" if ttft is not None else "-",
        end - result.started_at,
        f" error={type(result.error).__name__}" if result.error else "",
    )
