"""Upkeep of the answer records: finish what a dead process left streaming, and prune old records.

Runs once the bot is ready, in the background, so it never delays answering new questions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.answers.records import AnswerRecord
from bot.cogs.reply_buttons import RegenerateButton
from bot.cogs.upkeep import Upkeep
from bot.discord_io import NO_PINGS
from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from bot.streaming.splitter import MESSAGE_LIMIT

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

PRUNE_EVERY = 24 * 3600.0  # seconds
STOP_ID_PREFIX = "ollacord:stop:"


class AnswerRecords(commands.Cog):
    """Keeps the answer records true to Discord across restarts."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._upkeep = Upkeep("answer-records-upkeep", self._keep_up)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Start the upkeep (once)."""
        self._upkeep.start()

    async def cog_unload(self) -> None:
        """Stop the upkeep with the bot."""
        await self._upkeep.stop()

    async def _keep_up(self) -> None:
        book = self.services.answers
        try:
            await book.finish_left_behind(self.close_out)
        except Exception:
            log.exception("could not finish the answers an earlier run left streaming")
        while True:
            await book.prune()
            await asyncio.sleep(PRUNE_EVERY)

    async def close_out(self, record: AnswerRecord) -> Sequence[int]:
        """Put the messages of an answer whose process died in a final state; return the answer's message ids.

        Each part loses the streaming marker and the Stop button; the last one says the answer was cut
        short and offers Regenerate. Messages that are gone (or out of reach) are skipped; other Discord
        errors propagate, so the next start tries again.
        """
        channel = self.bot.get_partial_messageable(record.channel_id, guild_id=record.guild_id)
        found: list[discord.Message] = []
        for message_id in record.message_ids:
            try:
                found.append(await channel.fetch_message(message_id))
            except (discord.NotFound, discord.Forbidden):
                continue
        message_ids = [message.id for message in found]
        if not any(_still_streaming(message) for message in found):
            return message_ids  # nothing shows it unfinished (e.g. it ended but the record was not saved)
        last = found[-1]
        for message in found[:-1]:
            if _still_streaming(message):
                await self._edit(message, message.content.removesuffix(STREAMING_MARKER), None)
        regenerate = discord.ui.View(timeout=None)
        regenerate.add_item(RegenerateButton(record.key))
        text = _cut_short(last.content)
        if len(text) <= MESSAGE_LIMIT:
            await self._edit(last, text, regenerate)
        else:
            await self._edit(last, last.content.removesuffix(STREAMING_MARKER), None)
            await self._paced(last.channel.id)
            note = await last.reply(
                notes.note(notes.INTERRUPTED), mention_author=False, allowed_mentions=NO_PINGS, view=regenerate
            )
            message_ids.append(note.id)
        log.info("answer %s: marked as cut short by the restart", record.key)
        return message_ids

    async def _edit(self, message: discord.Message, content: str, view: discord.ui.View | None) -> None:
        await self._paced(message.channel.id)
        try:
            await message.edit(content=content, view=view, allowed_mentions=NO_PINGS)
        except (discord.NotFound, discord.Forbidden):
            log.info("message %s of an unfinished answer is gone; skipped", message.id)

    async def _paced(self, channel_id: int) -> None:
        """Wait for a free write in the channel's budget, shared with the answers streaming there."""
        budget, clock = self.services.budget, self.services.clock
        while (delay := budget.delay(channel_id, clock.now())) > 0:
            await clock.sleep(delay)
        budget.record(channel_id, clock.now())


def _still_streaming(message: discord.Message) -> bool:
    """Whether the message still shows the streaming marker or a Stop button."""
    if message.content.endswith(STREAMING_MARKER):
        return True
    return any(
        str(getattr(child, "custom_id", "") or "").startswith(STOP_ID_PREFIX)
        for row in message.components
        for child in getattr(row, "children", ())
    )


def _cut_short(content: str) -> str:
    """The final text of the last part: what it showed, without the marker, and the note."""
    text = content.removesuffix(STREAMING_MARKER)
    note = notes.note(notes.INTERRUPTED)
    if all(line.startswith(notes.NOTE_PREFIX) for line in text.splitlines()):
        return note  # it only showed a status (queued, loading, thinking, regenerating): no answer yet
    return f"{text}\n{note}"
