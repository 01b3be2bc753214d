"""Map-reduce within the model's context: a span too long for one request is summarized in parts, then combined.

Runs inside the answer's one turn on Ollama (bot/answers/service.py), so a summary waits in the queue
once, like any answer, and Stop cancels whichever request is running. Each part is one non-shown
Ollama request whose notes are collected; the user sees the progress ("part 2 of 4") as the reply's
status. Notes too many for one combine are merged in groups first (each round at least halves them),
and the final combine streams into the reply.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from bot.context_budget import ContextBudget
from bot.ollama.client import ChatChunk
from bot.streaming import notes
from bot.streaming.thinking import ThinkTagFilter
from bot.summaries.prompts import (
    MIN_ROOM,
    combine_prompt,
    cost,
    cut_to_tokens,
    fits,
    merge_prompt,
    pack,
    part_prompt,
    room_for,
    single_prompt,
    widest_part_prompt,
)
from bot.summaries.transcript import SpokenLine, render_lines, time_range
from bot.usage.spend import Spend

__all__ = ["OpenChat", "SummaryJob", "summarize"]

log = logging.getLogger(__name__)

# Streams one /api/chat request for the given messages (with the channel's model, options and think).
OpenChat = Callable[[list[dict[str, object]]], AsyncGenerator[ChatChunk, None]]
LINE_SEPARATOR = "\n"
NOTES_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class SummaryJob:
    """What to summarize: the span's messages, oldest first, and where they were said ("#general")."""

    lines: tuple[SpokenLine, ...]
    place: str = ""


async def summarize(
    job: SummaryJob,
    *,
    budget: ContextBudget,
    system: str | None,
    open_chat: OpenChat,
    progress: Callable[[str | None], None],
    spend: Spend,
) -> AsyncGenerator[ChatChunk, None]:
    """Stream the summary of `job`; `progress` gets the status to show while parts are summarized."""
    transcript = render_lines(job.lines)
    single = single_prompt(job.place)
    room = room_for(single, system, budget)
    if room < MIN_ROOM:
        yield ChatChunk(content=notes.summary_context_too_small(budget.window), thinking="", done=True)
        return
    if fits(transcript, room, budget, separator=LINE_SEPARATOR):
        async for chunk in _relayed(open_chat(single.messages(system, LINE_SEPARATOR.join(transcript)))):
            yield chunk
        return

    part_room = room_for(widest_part_prompt(job.place), system, budget)
    parts = pack(transcript, part_room, budget, separator=LINE_SEPARATOR)
    ranges = _time_ranges(job.lines, [len(part) for part in parts])
    log.debug("summary of %d messages in %d parts (%.0f tokens each at most)", len(transcript), len(parts), part_room)
    part_notes: list[str] = []
    for index, part in enumerate(parts, 1):
        progress(notes.summary_part_status(index, len(parts)))
        prompt = part_prompt(job.place, index, len(parts))
        text = await _collect(open_chat(prompt.messages(system, LINE_SEPARATOR.join(part))), spend)
        part_notes.append(f"Part {index} ({ranges[index - 1]} UTC):\n{text.strip() or '(nothing of note)'}")

    merged = await _merge_until_they_fit(part_notes, job.place, system, budget, open_chat, progress, spend)
    progress(notes.summary_combining_status(len(parts)))
    final = combine_prompt(job.place, len(merged))
    async for chunk in _relayed(open_chat(final.messages(system, NOTES_SEPARATOR.join(merged)))):
        yield chunk


async def _merge_until_they_fit(
    part_notes: list[str],
    place: str,
    system: str | None,
    budget: ContextBudget,
    open_chat: OpenChat,
    progress: Callable[[str | None], None],
    spend: Spend,
) -> list[str]:
    """Merge notes in groups until they all fit the final combine."""
    current = part_notes
    round_number = 0
    while not _fit_one_combine(current, place, system, budget):
        round_number += 1
        merge = merge_prompt(place)
        room = room_for(merge, system, budget)
        # Two notes always fit one merge, so every round at least halves them and the loop ends.
        half = room / 2 - cost(NOTES_SEPARATOR, budget) - 1
        capped = [cut_to_tokens(note, half, budget) for note in current]
        groups = pack(capped, room, budget, separator=NOTES_SEPARATOR)
        if len(groups) >= len(current):  # estimates at the edge: pair them up, which is known to fit
            groups = [capped[i : i + 2] for i in range(0, len(capped), 2)]
        merged: list[str] = []
        for index, group in enumerate(groups, 1):
            progress(notes.summary_merge_status(index, len(groups)))
            text = await _collect(open_chat(merge.messages(system, NOTES_SEPARATOR.join(group))), spend)
            merged.append(text.strip() or "(nothing of note)")
        log.debug("summary merge round %d: %d notes into %d", round_number, len(current), len(merged))
        current = merged
        if len(current) == 1:
            break
    if not _fit_one_combine(current, place, system, budget):
        # One merged note longer than the room (the model wrote more than asked): cut, rather than overflow.
        room = room_for(combine_prompt(place, len(current)), system, budget)
        share = room / len(current) - cost(NOTES_SEPARATOR, budget) - 1
        current = [cut_to_tokens(note, share, budget) for note in current]
    return current


def _fit_one_combine(part_notes: list[str], place: str, system: str | None, budget: ContextBudget) -> bool:
    room = room_for(combine_prompt(place, len(part_notes)), system, budget)
    return fits(part_notes, room, budget, separator=NOTES_SEPARATOR)


def _time_ranges(lines: Sequence[SpokenLine], sizes: Sequence[int]) -> list[str]:
    """The UTC time range each part covers, for the notes that name it."""
    ranges: list[str] = []
    start = 0
    for size in sizes:
        ranges.append(time_range(lines[start : start + size]))
        start += size
    return ranges


async def _collect(stream: AsyncGenerator[ChatChunk, None], spend: Spend) -> str:
    """The answer text of a request nobody sees (reasoning left out), counting what it cost."""
    answer = ""
    think_filter = ThinkTagFilter()
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            filtered = think_filter.feed(chunk.content)
            if filtered.retract:
                answer = ""
            answer += filtered.content
            if chunk.done:
                spend.add(prompt_tokens=chunk.prompt_eval_count, answer_tokens=chunk.eval_count)
    return answer + think_filter.finish().content


async def _relayed(stream: AsyncGenerator[ChatChunk, None]) -> AsyncIterator[ChatChunk]:
    """The final request's chunks, closed (so Ollama stops) when the reply stops reading."""
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            yield chunk
