"""Reply chains read from Discord for the pure walker (bot/answers/reply_chain.py) with few round trips.

The walker asks for links; this adapter answers from what costs nothing first (the parents Discord
embeds in every message payload, discord.py's message cache, the bot's answer records), then from one
bulk read of the channel's recent messages, and only then from single GETs.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable

import discord

from bot.answers.book import AnswerBook
from bot.answers.records import AnswerKind
from bot.answers.reply_chain import ChainLink, ReplyChain, walk_reply_chain
from bot.conversation import ChatRecord
from bot.discord_io import to_record

__all__ = ["BULK_WINDOW", "ThreadStarters", "read_reply_chain"]

log = logging.getLogger(__name__)

# One history request returns at most 100 messages (Discord's limit for GET /channels/{id}/messages).
BULK_WINDOW = 100
# Threads known to have no starter message (created on their own, not from a message), so a chain that reaches
# the top of one does not ask Discord again.
STARTER_MEMORY = 4096


class ThreadStarters:
    """Remembers which threads were not started from a message (bounded)."""

    def __init__(self) -> None:
        self._without: OrderedDict[int, None] = OrderedDict()

    def lacks(self, thread_id: int) -> bool:
        """Whether the thread is known to have no starter message."""
        return thread_id in self._without

    def mark_without(self, thread_id: int) -> None:
        """The thread has no starter message."""
        self._without[thread_id] = None
        while len(self._without) > STARTER_MEMORY:
            self._without.popitem(last=False)


def _link(message: discord.Message, my_id: int, *, embedded: bool = False) -> ChainLink:
    reference = message.reference
    parent_id = reference.message_id if reference is not None and message.type == discord.MessageType.reply else None
    return ChainLink(
        record=to_record(message, bot_id=my_id),
        channel_id=message.channel.id,
        parent_id=parent_id,
        parent_channel_id=reference.channel_id if reference is not None and parent_id is not None else None,
        # Discord sends `referenced_message: null` for a parent that was deleted.
        parent_deleted=parent_id is not None
        and isinstance(reference and reference.resolved, discord.DeletedReferencedMessage),
    )


def _links(message: discord.Message, my_id: int) -> list[ChainLink]:
    """The message's link, and its parent's when the payload embedded it."""
    found = [_link(message, my_id)]
    resolved = message.reference.resolved if message.reference is not None else None
    if isinstance(resolved, discord.Message):
        found.append(_link(resolved, my_id, embedded=True))
    return found


class _DiscordChainReader:
    def __init__(
        self, client: discord.Client, prompt: discord.Message, my_id: int, answers: AnswerBook, starters: ThreadStarters
    ) -> None:
        self._client = client
        self._prompt = prompt
        self._my_id = my_id
        self._answers = answers
        self._starters = starters
        self._cache: dict[int, discord.Message] | None = None

    def known(self, message_id: int) -> ChainLink | None:
        if self._cache is None:
            self._cache = {m.id: m for m in self._client.cached_messages}
        cached = self._cache.get(message_id)
        return _link(cached, self._my_id) if cached is not None else None

    async def recorded(self, message_id: int) -> ChainLink | None:
        record = await self._answers.find_by_message(message_id)
        if record is None:
            return None
        question = record.ask_record()
        if question is None and record.kind is not AnswerKind.MESSAGE:
            return None
        answer = ChatRecord(
            id=message_id, author_id=self._my_id, author_name="", content=record.text or "", from_bot=True
        )
        if record.text is None:
            # Written before answers kept their text (or still streaming): the part itself is all there is.
            cached = self.known(message_id)
            answer = cached.record if cached is not None else answer
        return ChainLink(
            record=answer,
            channel_id=record.channel_id,
            parent_id=record.key if question is None else None,
            parent_channel_id=record.channel_id,
            question=question,
        )

    async def read_window(self) -> Iterable[ChainLink]:
        found: list[ChainLink] = []
        with contextlib.suppress(discord.HTTPException):
            async for message in self._prompt.channel.history(limit=BULK_WINDOW, before=self._prompt):
                found += _links(message, self._my_id)
        return found

    async def fetch(self, channel_id: int, message_id: int) -> Iterable[ChainLink]:
        channel: discord.abc.Messageable
        if channel_id == self._prompt.channel.id:
            channel = self._prompt.channel
        else:
            known = self._client.get_channel(channel_id)
            channel = (
                known
                if isinstance(known, discord.abc.Messageable)
                else self._client.get_partial_messageable(channel_id)
            )
        try:
            message = await channel.fetch_message(message_id)
        except discord.HTTPException:
            if self._starter_of_prompt_thread() == (channel_id, message_id):
                self._starters.mark_without(message_id)
            return []
        return _links(message, self._my_id)

    def thread_starter(self, top: ChainLink) -> tuple[int, int] | None:
        starter = self._starter_of_prompt_thread()
        if starter is None or top.channel_id != self._prompt.channel.id or self._starters.lacks(starter[1]):
            return None
        return starter

    def _starter_of_prompt_thread(self) -> tuple[int, int] | None:
        """Where the prompt's thread was started from, if it is a thread with a parent: (parent id, thread id)."""
        channel = self._prompt.channel
        if not isinstance(channel, discord.Thread) or channel.parent_id is None:
            return None
        return channel.parent_id, channel.id  # a thread started from a message has that message's id


async def read_reply_chain(
    client: discord.Client,
    prompt: discord.Message,
    *,
    my_id: int,
    answers: AnswerBook,
    starters: ThreadStarters,
    limit: int,
) -> ReplyChain:
    """The reply chain ending in `prompt` (oldest first), read with as few Discord requests as possible."""
    reader = _DiscordChainReader(client, prompt, my_id, answers, starters)
    links = _links(prompt, my_id)
    chain = await walk_reply_chain(links[0], reader, limit=limit, seen=links[1:])
    log.debug(
        "reply chain of message %s: %d message(s), %d Discord request(s)", prompt.id, len(chain.records), chain.requests
    )
    return chain
