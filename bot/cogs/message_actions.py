"""Message actions (right-click a message > Apps): "Explain" and "Ask about this".

The answer replies to the selected message and streams like a mention: the channel's settings, the queue,
the per-user limit, Stop and Regenerate. The command's own response is only a private "thinking…" that
goes away once the answer starts (or says why there is none). "Summarize from here" lives with /summarize.
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
from bot.attachments import AttachmentPlan
from bot.channel_settings.effective import effective_settings
from bot.cogs.rebuilders import Rebuilt
from bot.conversation import ChatRecord
from bot.discord_io import ChannelReplySink, download_attachment, message_id, plan_message_attachments
from bot.knowledge.records import KnowledgePlace
from bot.message_actions import QUESTION_MAX_CHARS, Action, ActionSpec, action_header, action_prompt
from bot.places import ChannelResolver, bold_list, reply_access

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

EXPLAIN = "Explain"
ASK_ABOUT = "Ask about this"
RESTARTING = "The bot is restarting; please ask again in a moment."
CANNOT_POST = "I can't answer here: I need the {permissions} permission{s} in this channel."
SLOW_DOWN = "You're asking quickly; please wait {seconds} s before the next question."
TARGET_GONE = "I can't regenerate this answer: the message it was about was deleted, or I can no longer read it."
MODAL_TITLE = "Ask about this message"
QUESTION_LABEL = "Your question"
QUESTION_PLACEHOLDER = "What does this error mean? How would I fix it?"
MODAL_FAILED = "Sorry, something went wrong with your question. The details are in the bot's log."


class AskModal(discord.ui.Modal):
    """The question for "Ask about this"; the answer replies to the selected message."""

    question: discord.ui.TextInput[AskModal] = discord.ui.TextInput(
        label=QUESTION_LABEL,
        style=discord.TextStyle.paragraph,
        placeholder=QUESTION_PLACEHOLDER,
        max_length=QUESTION_MAX_CHARS,
    )

    def __init__(self, actions: MessageActions, target: discord.Message) -> None:
        super().__init__(title=MODAL_TITLE)
        self.actions = actions
        self.target = target

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        """Answer the question about the selected message."""
        spec = ActionSpec(Action.ASK, self.target.id, question=self.question.value)
        await self.actions.act(interaction, self.target, spec)

    # Modal's own on_error already drops BaseView's `item` argument; mypy compares with BaseView.
    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:  # type: ignore[override]
        """Log it; tell the user briefly, never with a traceback."""
        log.error("answering a question about message %s failed", self.target.id, exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(MODAL_FAILED, ephemeral=True)
            else:
                await interaction.response.send_message(MODAL_FAILED, ephemeral=True)


class MessageActions(commands.Cog):
    """Explain a message, or answer a question about it, in a reply to it."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.answering = services.answering
        self.places = ChannelResolver(bot)
        self._busy = 0
        self.menus = [
            app_commands.ContextMenu(name=EXPLAIN, callback=self.explain),
            app_commands.ContextMenu(name=ASK_ABOUT, callback=self.ask_about),
        ]
        for menu in self.menus:
            app_commands.guild_only(menu)

    @property
    def active_replies(self) -> int:
        """Answers being prepared or streamed right now."""
        return self._busy

    async def cog_load(self) -> None:
        """Add the message actions, and teach Regenerate to remake their answers."""
        for menu in self.menus:
            self.bot.tree.add_command(menu)
        chat = self.bot.get_cog("ChatCog")
        if chat is not None:
            chat.rebuilders[AnswerKind.ACTION] = self.rebuild  # type: ignore[attr-defined]

    async def cog_unload(self) -> None:
        """Remove the message actions."""
        for menu in self.menus:
            self.bot.tree.remove_command(menu.name, type=menu.type)

    # ---- the actions

    async def explain(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """Explain the selected message: code, an error message, a term."""
        if await self._refused(interaction, message, rate_check=True):
            return
        await self.act(interaction, message, ActionSpec(Action.EXPLAIN, message.id), rate_checked=True)

    async def ask_about(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """Ask for a question about the selected message (a modal); the answer follows its submission."""
        if await self._refused(interaction, message, rate_check=False):
            return
        await interaction.response.send_modal(AskModal(self, message))

    async def act(
        self,
        interaction: discord.Interaction[Any],
        target: discord.Message,
        spec: ActionSpec,
        *,
        rate_checked: bool = False,
    ) -> None:
        """Answer `spec` about `target` in a reply to it; the interaction's response is only a passing notice."""
        if not rate_checked and await self._refused(interaction, target, rate_check=True):
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        self._busy += 1
        try:
            request = await self._request(interaction, target, spec, key=interaction.id, requester=None)
            access = reply_access(target.channel, target.guild.me if target.guild else None)
            sink = ChannelReplySink(target, key=interaction.id, reply=access.reads_history)
            with contextlib.suppress(discord.HTTPException):
                if not self.answering.accepting:  # the bot began shutting down meanwhile
                    await interaction.edit_original_response(content=RESTARTING)
                    return
                # The answer shows in the channel; the private "thinking…" has done its job.
                await interaction.delete_original_response()
            await self.answering.answer(request, sink, message_id=message_id)
        finally:
            self._busy -= 1

    async def _refused(
        self, interaction: discord.Interaction[Any], target: discord.Message, *, rate_check: bool
    ) -> bool:
        """Tell the user (privately) why the bot can't answer here now; True if it can't."""
        text: str | None = None
        access = reply_access(target.channel, target.guild.me if target.guild else None)
        if not self.answering.accepting:
            text = RESTARTING
        elif not access.can_post:
            missing = list(access.missing_to_post)
            text = CANNOT_POST.format(permissions=bold_list(missing), s="s" if len(missing) > 1 else "")
        elif rate_check and (retry := self.answering.rate_limited(interaction.user.id)):
            text = SLOW_DOWN.format(seconds=max(1, round(retry)))
        if text is None:
            return False
        await interaction.response.send_message(text, ephemeral=True)
        return True

    # ---- Regenerate

    async def rebuild(
        self, interaction: discord.Interaction[Any], record: AnswerRecord, first: discord.Message
    ) -> Rebuilt | None:
        """Ask the same about the same message again, in place."""
        spec = ActionSpec.from_text(record.prompt.text) if record.prompt is not None else None
        target: discord.Message | None = None
        if spec is not None:
            with contextlib.suppress(discord.HTTPException):
                target = await first.channel.fetch_message(spec.target_id)
        if spec is None or target is None:
            await interaction.followup.send(TARGET_GONE, ephemeral=True)
            return None
        request = await self._request(interaction, target, spec, key=record.key, requester=record)
        access = reply_access(target.channel, target.guild.me if target.guild else None)
        sink = ChannelReplySink(target, key=record.key, reply=access.reads_history)
        return Rebuilt(request=request, sink=sink, reuse=[first])

    # ---- building the request

    async def _request(
        self,
        interaction: discord.Interaction[Any],
        target: discord.Message,
        spec: ActionSpec,
        *,
        key: int,
        requester: AnswerRecord | None,
    ) -> AnswerRequest:
        channel = target.channel
        guild_id = target.guild.id if target.guild else interaction.guild_id
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        effective = await effective_settings(
            self.services.store, self.services.settings, guild_id=guild_id, channel_id=channel.id, parent_id=parent_id
        )
        asker_id = interaction.user.id
        asker_name = interaction.user.display_name
        if requester is not None:
            asker_id = requester.requester_id
            if requester.prompt is not None:
                asker_name = requester.prompt.author_name
        plan, attachment_notes = await self._attachments(target, effective.model)
        turn = ChatRecord(
            id=target.id,
            author_id=asker_id,
            author_name=asker_name,
            content=action_prompt(
                spec,
                author=target.author.display_name,
                content=target.clean_content,
                attachments=tuple(a.filename for a in target.attachments),
            ),
            from_bot=False,
        )
        return AnswerRequest(
            records=[turn],
            cut=False,
            effective=effective,
            requester_id=asker_id,
            key=key,
            guild_id=guild_id,
            channel_id=channel.id,
            notes=tuple(attachment_notes),
            ask=AskPrompt(author_id=asker_id, author_name=asker_name, text=spec.to_text()),
            attachments=plan,
            download=download_attachment,
            kind=AnswerKind.ACTION,
            header=action_header(spec, asker=asker_name),
            # Team knowledge applies as to any question asked in this channel (a thread draws on its parent's too).
            place=(
                KnowledgePlace(guild_id=guild_id, channel_id=channel.id, parent_id=parent_id)
                if guild_id is not None and self.services.knowledge is not None
                else None
            ),
            knowledge_query=" ".join(part for part in (spec.question, target.clean_content) if part),
        )

    async def _attachments(self, message: discord.Message, model: str) -> tuple[AttachmentPlan | None, list[str]]:
        """The selected message's attachments to send (downloaded only in the request's turn), and notes."""
        return await plan_message_attachments(
            message, model, catalog=self.services.catalog, limits=self.answering.attachment_limits
        )
