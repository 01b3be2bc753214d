"""Chat triggers: @mentions, replies to the bot, and the /ask slash command."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

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
        """Answer a guild message that mentions the bot or replies to one of its messages."""
        me = self.bot.user
        if me is None or message.author.bot or message.guild is None:
            return
        if not await self._is_for_me(message, me.id):
            return
        try:
            await self._answer_message(message, me.id)
        except Exception:
            log.exception("failed to answer message %s in channel %s", message.id, message.channel.id)

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

    async def _collect_chain(self, message: discord.Message, my_id: int) -> tuple[list[ChatRecord], bool]:
        """Walk the reply chain back from `message`; True if it went on past the limit."""
        limit = self.services.settings.history_max_messages
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
        cut = len(chain) > limit
        return chain[-limit:], cut

    async def _answer_message(self, message: discord.Message, my_id: int) -> None:
        chain, cut = await self._collect_chain(message, my_id)
        if not chain[-1].content.strip() and len(chain) == 1:
            await message.reply(EMPTY_PROMPT, mention_author=False, allowed_mentions=NO_PINGS)
            return
        await self._relay(chain, cut, ChannelReplySink(message), guild=message.guild, channel_id=message.channel.id)

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
        await self._relay([record], False, sink, guild=interaction.guild, channel_id=interaction.channel_id)
        if sink.first_message_id is not None:
            self._ask_prompts[sink.first_message_id] = record
            while len(self._ask_prompts) > ASK_MEMORY:
                self._ask_prompts.popitem(last=False)

    async def _relay(
        self,
        chain: list[ChatRecord],
        cut: bool,
        sink: MessageSink,
        *,
        guild: discord.Guild | None,
        channel_id: int | None,
    ) -> RelayResult:
        settings = self.services.settings
        conversation = build_conversation(
            chain,
            max_messages=settings.history_max_messages,
            max_chars=settings.history_max_chars,
            chain_cut=cut,
        )
        model = settings.ollama_model
        stream = self.services.ollama.chat_stream(model, conversation.messages)
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
        _log_reply(result, guild=guild, channel_id=channel_id, model=model)
        return result


def _log_reply(result: RelayResult, *, guild: discord.Guild | None, channel_id: int | None, model: str) -> None:
    """The one INFO line per finished reply (never its text)."""
    ttft = (result.first_token_at - result.started_at) if result.first_token_at is not None else None
    end = result.final_edit_at if result.final_edit_at is not None else result.started_at
    log.info(
        "reply finished guild=%s channel=%s model=%s outcome=%s tokens=%d chars=%d messages=%d ttft=%s "
        "duration=%.2fs%s",
        guild.id if guild else "-",
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
