"""How Regenerate remakes answers the chat cog does not build itself: summaries and message actions.

Their cogs register a `Rebuilder` for their answer kind with the chat cog, which keeps the checks every
Regenerate shares (who may, the per-user limit, a finished answer) and hands over the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord

from bot.answers.records import AnswerRecord
from bot.answers.request import AnswerRequest
from bot.streaming.relay import MessageSink

__all__ = ["Rebuilder", "Rebuilt"]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """The request to run again, where to show it, and the messages of the old answer to overwrite."""

    request: AnswerRequest
    sink: MessageSink
    reuse: Sequence[discord.Message]


# (the Regenerate click, already deferred; the answer's record; the answer's first message still there)
# -> what to run, or None when it can't be made again (the user has been told why).
Rebuilder = Callable[[discord.Interaction[Any], AnswerRecord, discord.Message], Awaitable[Rebuilt | None]]
