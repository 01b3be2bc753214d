"""One answer as a record: who asked what, where it is shown, with which model and settings, and how it ended.

Records outlive the process. Regenerate, replies to `/ask` answers and the clean-up of answers a dead
process left streaming all read them; usage figures and a pool of Ollama hosts will read them too
(hence the token counts and the host).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from bot.conversation import ChatRecord

SettingsSnapshot: TypeAlias = Mapping[str, str | int | float | bool]
# The outcome of an answer whose process died while it streamed (the relay's outcomes are the others).
INTERRUPTED = "interrupted"


def utc_now() -> datetime:
    """The wall-clock time records are stamped with."""
    return datetime.now(UTC)


class AnswerKind(enum.StrEnum):
    """What the answer answers: a Discord message (mention, reply, auto-reply, thread, DM) or an `/ask`.

    A summary (/summarize, "Summarize from here") and a message action ("Explain", "Ask about this") keep
    what they need to be made again in `prompt.text` (see bot/summaries/span.py and bot/message_actions.py).
    """

    MESSAGE = "message"
    ASK = "ask"
    SUMMARY = "summary"
    ACTION = "action"


class AnswerState(enum.StrEnum):
    """Whether the answer is still being written."""

    STREAMING = "streaming"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class AskPrompt:
    """The question of an `/ask`: it exists nowhere in Discord but here, so it is kept to continue from."""

    author_id: int
    author_name: str
    text: str


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One generation of one answer.

    `key` is what the answer is keyed by in Discord (its buttons carry it): the prompt message's id, or
    the interaction id of an `/ask`. Regenerate writes a new record with the same key and the next
    `generation`; the newest generation owns the messages.
    """

    answer_id: str
    key: int
    kind: AnswerKind
    guild_id: int | None
    channel_id: int
    requester_id: int
    model: str
    created_at: datetime
    instance: str  # the process that wrote it, so a new one can tell what a dead one left behind
    generation: int = 0
    prompt: AskPrompt | None = None
    message_ids: tuple[int, ...] = ()  # every message showing the answer, in order
    settings: SettingsSnapshot = field(default_factory=dict)  # the effective settings used (set values only)
    state: AnswerState = AnswerState.STREAMING
    outcome: str | None = None
    done_reason: str | None = None
    finished_at: datetime | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    host: str | None = None  # the Ollama host that answered (filled once there is a pool of hosts)
    # The model's answer as it was shown (no notes): the bot's turn when a reply chain is rebuilt.
    text: str | None = None

    @property
    def streaming(self) -> bool:
        """Whether the record says the answer is still being written."""
        return self.state is AnswerState.STREAMING

    def ask_record(self) -> ChatRecord | None:
        """The `/ask` question as the first turn of a conversation (None for answers to messages)."""
        if self.prompt is None or self.kind is not AnswerKind.ASK:
            return None
        return ChatRecord(
            id=self.key,
            author_id=self.prompt.author_id,
            author_name=self.prompt.author_name,
            content=self.prompt.text,
            from_bot=False,
        )

    def parts_before(self, message_id: int) -> tuple[int, ...]:
        """The answer's messages shown before `message_id` (all of them if it is not one of them)."""
        if message_id not in self.message_ids:
            return self.message_ids
        return self.message_ids[: self.message_ids.index(message_id)]
