"""Chat triggers: @mentions, replies to the bot, auto-reply channels, and the /ask slash command."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.channel_settings.effective import effective_settings
from bot.channel_settings.resolve import EffectiveSettings
from bot.conversation import ChatRecord, build_conversation
from bot.discord_io import NO_PINGS, ChannelReplySink, InteractionReplySink, to_record
from bot.streaming import notes
from bot.streaming.relay import MessageSink, RelayOptions, RelayResult, relay_reply

if TYPE_CHECKING:
    from bot.app import OllacordBot, Services

log = logging.getLogger(__name__)

HISTORY_TRIMMED = notes.note("Earlier messages were left out of the conversation to fit the history limit.")
EMPTY_PROMPT = "Ask me something after the mention, e.g. `@me how do I reverse a list in Python?`"
# /ask answers carry no reference to a user message, so their prompts are remembered for replies.
ASK_MEMORY = 2048


class ChatCog(commands.Cog):
    """Answers mentions, replies to its own messages, and /ask."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._ask_prompts: OrderedDict[int, ChatRecord] = OrderedDict()
        self.active_replies = 0

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Answer a guild message that mentions the bot, replies to it, or is in an auto-reply channel."""
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None:
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        try:
            if await self._is_for_me(message, me.id):
                effective = await self._effective(message.guild.id, message.channel)
                await self._answer_chain(message, me.id, effective)
                return
            effective = await self._effective(message.guild.id, message.channel)
            if effective.auto_reply:
                await self._answer_in_channel(message, me.id, effective)
        except Exception:
            log.exception("failed to answer message %s in channel %s", message.id, message.channel.id)

    async def _effective(self, guild_id: int | None, channel: object) -> EffectiveSettings:
        """The settings in effect in `channel` (a thread inherits from its parent channel)."""
        assert isinstance(channel, discord.abc.Snowflake)
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        return await effective_settings(
            self.services.store, self.services.settings, guild_id=guild_id, channel_id=channel.id, parent_id=parent_id
        )

    async def _is_for_me(self, message: discord.Message, my_id: int) -> bool:
        if any(user.id == my_id for user in message.mentions):
            return True
        reference = message.reference
        if reference is None or reference.message_id is None:
            return False
        parent = await self._referenced(message)
        return parent is not None and parent.author.id == my_id

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

    async def _collect_chain(self, message: discord.Message, my_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
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

    async def _answer_chain(self, message: discord.Message, my_id: int, effective: EffectiveSettings) -> None:
        limit = effective.history or self.services.settings.history_max_messages
        chain, cut = await self._collect_chain(message, my_id, limit)
        if not chain[-1].content.strip() and len(chain) == 1:
            await message.reply(EMPTY_PROMPT, mention_author=False, allowed_mentions=NO_PINGS)
            return
        await self._relay(
            chain,
            cut,
            ChannelReplySink(message),
            effective,
            guild_id=message.guild.id if message.guild else None,
            channel_id=message.channel.id,
        )

    async def _answer_in_channel(self, message: discord.Message, my_id: int, effective: EffectiveSettings) -> None:
        """Auto-reply: the channel's recent messages are the history."""
        limit = effective.history or self.services.settings.history_max_messages
        earlier = [m async for m in message.channel.history(limit=limit, before=message)]
        cut = len(earlier) == limit
        records = [
            to_record(m, bot_id=my_id)
            for m in reversed(earlier)
            if m.type in (discord.MessageType.default, discord.MessageType.reply)
            and (m.content or m.author.id == my_id)
        ]
        records.append(to_record(message, bot_id=my_id))
        if not records[-1].content.strip():
            return
        await self._relay(
            records,
            cut,
            ChannelReplySink(message),
            effective,
            guild_id=message.guild.id if message.guild else None,
            channel_id=message.channel.id,
        )

    @app_commands.command(name="ask", description="Ask the model a question")
    @app_commands.describe(prompt="What you want to ask")
    @app_commands.guild_only()
    async def ask(self, interaction: discord.Interaction[Any], prompt: app_commands.Range[str, 1, 4000]) -> None:
        """Stream an answer to `prompt` into the command's response."""
        await interaction.response.defer(thinking=True)
        record = ChatRecord(
            id=interaction.id,
            author_id=interaction.user.id,
            author_name=interaction.user.display_name,
            content=prompt,
            from_bot=False,
        )
        sink = InteractionReplySink(interaction)
        effective = await self._effective(interaction.guild_id, interaction.channel)
        await self._relay(
            [record], False, sink, effective, guild_id=interaction.guild_id, channel_id=interaction.channel_id
        )
        if sink.first_message_id is not None:
            self._ask_prompts[sink.first_message_id] = record
            while len(self._ask_prompts) > ASK_MEMORY:
                self._ask_prompts.popitem(last=False)

    async def _relay(
        self,
        chain: list[ChatRecord],
        cut: bool,
        sink: MessageSink,
        effective: EffectiveSettings,
        *,
        guild_id: int | None,
        channel_id: int | None,
    ) -> RelayResult:
        settings = self.services.settings
        conversation = build_conversation(
            chain,
            max_messages=effective.history or settings.history_max_messages,
            max_chars=settings.history_max_chars,
            system=effective.system,
            chain_cut=cut,
        )
        model = effective.model
        stream = self.services.ollama.chat_stream(
            model,
            conversation.messages,
            options=effective.options or None,
            think=effective.think,
            keep_alive=effective.keep_alive,
        )
        self.active_replies += 1
        try:
            result = await relay_reply(
                stream,
                sink,
                clock=self.services.clock,
                budget=self.services.budget,
                options=RelayOptions(edit_interval=settings.edit_interval),
                extra_notes=[HISTORY_TRIMMED] if conversation.trimmed else [],
            )
        finally:
            self.active_replies -= 1
        _log_reply(result, guild_id=guild_id, channel_id=channel_id, model=model)
        return result


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
