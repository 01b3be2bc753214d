"""Reply-chain history with as few Discord round trips as possible (discord-free).

A conversation started by a mention or a reply is a chain: each message replies to the one before,
and a reply to an older answer starts a branch, so the chain follows parent links, never channel
order. Walking it one GET per message costs a round trip (50-150 ms on real Discord) per link before
the model is asked anything. Each parent is therefore looked up in this order:

1. what is already known without any request: links seen so far (every message payload Discord sends
   embeds the message it replies to), the library's message cache, and the bot's own answer records
   (its answers and /ask questions);
2. one bulk read of the channel's recent messages, which brings whole chains at once;
3. a single GET, only for a parent older than that window (each also brings its own parent).

A chain that reaches the top of a thread started from a message continues into that starter message
in the parent channel, so "explain more" in a thread opened on an answer still sees the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from bot.conversation import ChatRecord

__all__ = ["ChainLink", "ChainReader", "ReplyChain", "walk_reply_chain"]


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One message of a chain and how to find the one before it."""

    record: ChatRecord
    channel_id: int
    # The message this one replies to (None: it starts the chain).
    parent_id: int | None = None
    parent_channel_id: int | None = None
    # Discord said the parent was deleted: the chain ends here without asking again.
    parent_deleted: bool = False
    # For an answer to /ask: the question, which has no message of its own. The chain ends with it.
    question: ChatRecord | None = None
    # A copy Discord embedded in a child's payload: it names its own parent but cannot say whether that one
    # was deleted, so a full payload of the same message replaces it.
    embedded: bool = False


class ChainReader(Protocol):
    """Where links come from; only `read_window` and `fetch` make requests to Discord."""

    def known(self, message_id: int) -> ChainLink | None:
        """A link available without a request (the library's cache), or None."""
        ...

    async def recorded(self, message_id: int) -> ChainLink | None:
        """A link from the bot's answer records (no Discord request), or None."""
        ...

    async def read_window(self) -> Iterable[ChainLink]:
        """The channel's recent messages before the prompt, in one request (with the parents they embed)."""
        ...

    async def fetch(self, channel_id: int, message_id: int) -> Iterable[ChainLink]:
        """One message in one request (with the parent it embeds); empty when it is gone."""
        ...

    def thread_starter(self, top: ChainLink) -> tuple[int, int] | None:
        """Where the message a thread was started from would be, (channel id, message id), when `top` (a
        chain's first message) sits in a thread that may have one; None otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class ReplyChain:
    """A chain ready for conversation building, oldest first, the prompt last."""

    records: list[ChatRecord]
    # Older messages existed beyond `limit` and were left out.
    cut: bool
    # Discord requests made to build it (for the log and the benchmark).
    requests: int


async def walk_reply_chain(
    prompt: ChainLink, reader: ChainReader, *, limit: int, seen: Iterable[ChainLink] = ()
) -> ReplyChain:
    """Follow parent links back from `prompt` until the chain starts, breaks or passes `limit` messages.

    `seen` are links already at hand (e.g. the parent embedded in the prompt's own payload).
    """
    links: dict[int, ChainLink] = {}

    def learn(found: Iterable[ChainLink]) -> None:
        for link in found:
            if link.embedded:
                links.setdefault(link.record.id, link)
            else:
                links[link.record.id] = link

    learn(seen)
    window_read = False
    requests = 0
    chain: list[ChatRecord] = [prompt.record]
    current = prompt
    starter_tried = False
    while len(chain) <= limit:
        if current.question is None and current.parent_id is None and current.record.from_bot:
            # An /ask answer replies to no message: its record knows the question (and the whole answer).
            recorded = await reader.recorded(current.record.id)
            if recorded is not None and recorded.question is not None:
                if recorded.record.content:
                    chain[-1] = recorded.record
                current = recorded
        if current.question is not None:
            chain.append(current.question)
            break
        parent_id, parent_channel = current.parent_id, current.parent_channel_id or current.channel_id
        if parent_id is None:
            starter = None if starter_tried else reader.thread_starter(current)
            starter_tried = True
            if starter is None:
                break
            parent_channel, parent_id = starter
        elif current.parent_deleted:
            break
        link = links.get(parent_id) or reader.known(parent_id) or await reader.recorded(parent_id)
        if link is None and not window_read and parent_channel == prompt.channel_id:
            window_read = True
            requests += 1
            learn(await reader.read_window())
            link = links.get(parent_id)
        if link is None:
            requests += 1
            learn(await reader.fetch(parent_channel, parent_id))
            link = links.get(parent_id)
        if link is None:
            break  # deleted, or no longer readable: the conversation starts after the gap
        chain.append(link.record)
        current = link
    chain.reverse()
    return ReplyChain(records=chain[-limit:], cut=len(chain) > limit, requests=requests)
