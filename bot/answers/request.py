"""What one answer needs, as plain data: the request an adapter hands to the answer service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.answers.records import AnswerKind, AskPrompt
from bot.attachments import AttachmentPlan, AttachmentRecord
from bot.channel_settings.resolve import EffectiveSettings
from bot.conversation import ChatRecord
from bot.knowledge.records import KnowledgePlace
from bot.summaries.engine import SummaryJob

# Fetches a planned attachment's bytes from wherever the adapter found it (None: it could not be had).
Download = Callable[[AttachmentRecord], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """Everything needed to (re)generate one answer."""

    records: list[ChatRecord]
    # Older messages of the conversation were left out before the request was built.
    cut: bool
    effective: EffectiveSettings
    requester_id: int
    # What the answer is keyed by in Discord (its buttons carry it): the prompt message or the /ask interaction.
    key: int
    guild_id: int | None
    channel_id: int | None
    notes: tuple[str, ...] = ()
    ask: AskPrompt | None = None  # the question of an /ask (it exists only in the answer's record)
    # The prompt's attachments to use, downloaded only once the request has its turn on Ollama.
    attachments: AttachmentPlan | None = None
    download: Download | None = None
    # Where it was asked, for team knowledge (server, channel, a thread's parent); None outside servers.
    place: KnowledgePlace | None = None
    # What to search the team knowledge for, when the last turn is not the question itself (a message action's
    # turn wraps the selected message in instructions); None: the last turn's text.
    knowledge_query: str | None = None
    # The record's kind when it is neither a message's nor an /ask's answer (then `ask` holds what to redo).
    kind: AnswerKind | None = None
    # A summary is made from these messages (map-reduce in the request's turn) instead of from `records`.
    summary: SummaryJob | None = None
    # Shown at the top of the answer, before the model's text (the span a summary covers, the question asked).
    header: str | None = None
