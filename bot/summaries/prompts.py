"""What the model is asked at each step of a summary, and how a transcript is cut into parts that fit.

Every prompt is measured with the same token estimate and calibration the answer service uses for
conversations (bot/context_budget.py), so no step sends Ollama more than the model's context holds
(Ollama would cut it silently, with 200 OK).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.context_budget import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, ContextBudget, estimate_tokens

__all__ = [
    "MIN_ROOM",
    "Prompt",
    "combine_prompt",
    "cost",
    "cut_to_tokens",
    "merge_prompt",
    "pack",
    "part_prompt",
    "room_for",
    "single_prompt",
]

# Below this many tokens of transcript per request, a summary would take more calls than it is worth.
MIN_ROOM = 64.0
ELLIPSIS = "…"

_GOAL = (
    "Say who said what, using the speakers' names. Call out the decisions that were made and the questions "
    "that are still open. Be concise: short bullet points, grouped by topic. Write in the language the "
    "conversation is in."
)
SINGLE = (
    "Summarize this Discord conversation{place} for someone who missed it. " + _GOAL + "\n\n"
    "The conversation (times in UTC, oldest first):\n"
)
PART = (
    "This is part {part} of {parts} of a Discord conversation{place} (times in UTC, oldest first). "
    "Write short notes on this part: who said what (use the names), decisions made, questions left open. "
    "Your notes will be combined with the notes on the other parts.\n\n"
    "Part {part} of {parts}:\n"
)
MERGE = (
    "Below are notes on consecutive parts of a Discord conversation{place}, oldest first. Merge them into one "
    "set of short notes, keeping the names, the decisions and the open questions.\n\n"
)
COMBINE = (
    "Below are notes on {parts} consecutive parts of a Discord conversation{place}, oldest first. Combine them "
    "into one summary for someone who missed the conversation. " + _GOAL + "\n\n"
)
# Measured with the largest numbers a summary can reach, so a part packed under it always fits.
_WIDEST = 9999


@dataclass(frozen=True, slots=True)
class Prompt:
    """The instructions that go before the text of one request."""

    instructions: str

    def messages(self, system: str | None, body: str) -> list[dict[str, object]]:
        """The /api/chat messages: the channel's system prompt, then instructions and text as one user turn."""
        messages: list[dict[str, object]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": self.instructions + body})
        return messages


def _place(place: str) -> str:
    return f" in {place}" if place else ""


def single_prompt(place: str) -> Prompt:
    """The whole transcript in one request."""
    return Prompt(SINGLE.format(place=_place(place)))


def part_prompt(place: str, part: int, parts: int) -> Prompt:
    """Notes on one part of a transcript too long for one request."""
    return Prompt(PART.format(place=_place(place), part=part, parts=parts))


def widest_part_prompt(place: str) -> Prompt:
    """A part prompt at its longest, for packing the parts before their number is known."""
    return part_prompt(place, _WIDEST, _WIDEST)


def merge_prompt(place: str) -> Prompt:
    """Notes on several parts merged into fewer (when they do not fit one combine)."""
    return Prompt(MERGE.format(place=_place(place)))


def combine_prompt(place: str, parts: int) -> Prompt:
    """The final request: every part's notes into one summary."""
    return Prompt(COMBINE.format(place=_place(place), parts=parts))


def cost(text: str, budget: ContextBudget) -> float:
    """Calibrated tokens of `text` inside a message."""
    return estimate_tokens(text) * budget.factor


def room_for(prompt: Prompt, system: str | None, budget: ContextBudget) -> float:
    """Tokens left for the text of a request with `prompt` (and the system prompt) in the model's context."""
    used = PROMPT_OVERHEAD + MESSAGE_OVERHEAD + cost(prompt.instructions, budget)
    if system:
        used += budget.cost(system)
    return budget.limit - used


def cut_to_tokens(text: str, tokens: float, budget: ContextBudget) -> str:
    """The longest start of `text` (with an ellipsis when cut) that fits in `tokens`."""
    if cost(text, budget) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if cost(text[:middle] + ELLIPSIS, budget) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS if low else ""


def pack(items: Sequence[str], room: float, budget: ContextBudget, *, separator: str) -> list[list[str]]:
    """`items` in order, in as few groups as fit `room` tokens each (an item too long on its own is cut)."""
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0.0
    for item in items:
        size = cost(item + separator, budget)
        if size > room:
            item = cut_to_tokens(item, room - cost(separator, budget), budget)
            size = cost(item + separator, budget)
        if current and used + size > room:
            groups.append(current)
            current, used = [], 0.0
        current.append(item)
        used += size
    if current:
        groups.append(current)
    return groups


def fits(items: Sequence[str], room: float, budget: ContextBudget, *, separator: str) -> bool:
    """Whether all `items` fit one request's `room`."""
    return sum(cost(item + separator, budget) for item in items) <= room
