"""The streaming relay: Ollama chunks in, a Discord reply edited in place out.

Two tasks cooperate per reply. The reader drains Ollama as fast as it sends and only ever
appends to the answer text; it never waits on Discord. The editor publishes the latest text at
the reply's own cadence (latest wins: stale intermediate texts are simply never sent), rolls
over to a new message before Discord's 2000-character limit, and always makes one final edit
as soon as the stream ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.clock import Clock
from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaError, OllamaIncompleteStream
from bot.streaming import notes
from bot.streaming.pacing import ChannelWriteBudget, next_edit_at
from bot.streaming.splitter import MESSAGE_LIMIT, ReplyPart, split_reply

log = logging.getLogger(__name__)

STREAMING_MARKER = " ⏳"
# Fraction of a message after which a roll-over may come with the next tokens.
ROLL_OVER_ZONE = 0.8


class ReplyGone(Exception):
    """The reply message can no longer be edited (deleted, or access lost)."""


class MessageSink(Protocol):
    """Where a reply is shown. Handles are opaque to the relay."""

    @property
    def channel_key(self) -> int:
        """The id whose Discord write budget this reply uses (its channel)."""
        ...

    async def start_waiting(self) -> None:
        """Show that an answer is coming (typing indicator)."""
        ...

    async def stop_waiting(self) -> None:
        """Stop the waiting indicator."""
        ...

    async def send(self, content: str, *, after: object | None, streaming: bool) -> object:
        """Post a new message: replying to the prompt (`after` None) or continuing after `after`."""
        ...

    async def edit(self, handle: object, content: str, *, streaming: bool) -> None:
        """Replace a posted message's content. Raises ReplyGone if it no longer exists."""
        ...


class Outcome(enum.StrEnum):
    """How a reply ended."""

    DONE = "done"
    INCOMPLETE = "incomplete"
    ERROR = "error"
    DELETED = "deleted"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """Tunables for one reply."""

    edit_interval: float = 1.0
    # After this long without a token, replace the typing indicator with a visible status.
    placeholder_after: float = 5.0
    limit: int = MESSAGE_LIMIT
    cancel_note: str = notes.STOPPED


@dataclass(slots=True)
class RelayResult:
    """What happened, for logging, metrics and benchmarks."""

    outcome: Outcome = Outcome.DONE
    text: str = ""
    error: OllamaError | None = None
    done_reason: str | None = None
    tokens: int = 0
    message_count: int = 0
    edits: int = 0
    started_at: float = 0.0
    first_token_at: float | None = None
    first_visible_at: float | None = None
    last_token_at: float | None = None
    final_edit_at: float | None = None
    update_times: list[float] = field(default_factory=list)


async def relay_reply(
    chunks: AsyncIterator[ChatChunk],
    sink: MessageSink,
    *,
    clock: Clock,
    budget: ChannelWriteBudget,
    options: RelayOptions = RelayOptions(),
    extra_notes: Sequence[str] = (),
) -> RelayResult:
    """Stream `chunks` into `sink` until the stream ends; never leaves the reply half-finished."""
    return await _Relay(chunks, sink, clock, budget, options, extra_notes).run()


class _Relay:
    def __init__(
        self,
        chunks: AsyncIterator[ChatChunk],
        sink: MessageSink,
        clock: Clock,
        budget: ChannelWriteBudget,
        options: RelayOptions,
        extra_notes: Sequence[str],
    ) -> None:
        self.chunks = chunks
        self.sink = sink
        self.clock = clock
        self.budget = budget
        self.options = options
        self.extra_notes = list(extra_notes)
        self.result = RelayResult(started_at=clock.now())
        self.changed = asyncio.Event()
        self.finished = asyncio.Event()
        self.handles: list[object] = []
        self.shown: list[str] = []
        self.last_edit_at: float | None = None
        self.placeholder_shown = False

    async def run(self) -> RelayResult:
        reader = asyncio.create_task(self._read(), name="ollama-reader")
        try:
            await self._start_waiting()
            await self._stream()
            await self._publish(final=True)
        except ReplyGone:
            self.result.outcome = Outcome.DELETED
            log.info("reply was deleted while streaming; stopping generation")
        except asyncio.CancelledError:
            self.result.outcome = Outcome.CANCELLED
            await self._stop_reader(reader)
            self.extra_notes.append(notes.note(self.options.cancel_note))
            await self._final_edit_after_failure()
            raise
        except Exception:
            log.exception("could not update the reply in Discord")
            self.result.outcome = Outcome.ERROR
            await self._stop_reader(reader)
            await self._final_edit_after_failure()
        finally:
            await self._stop_reader(reader)
            await self._stop_waiting()
            self.result.message_count = len(self.handles)
        return self.result

    async def _read(self) -> None:
        result = self.result
        try:
            async for chunk in self.chunks:
                now = self.clock.now()
                if result.first_token_at is None:
                    result.first_token_at = now
                if chunk.content:
                    result.text += chunk.content
                    result.tokens += 1
                    result.last_token_at = now
                    self.changed.set()
                if chunk.done:
                    result.done_reason = chunk.done_reason
                    if chunk.eval_count:
                        result.tokens = chunk.eval_count
        except OllamaError as exc:
            result.error = exc
            result.outcome = Outcome.INCOMPLETE if isinstance(exc, OllamaIncompleteStream) else Outcome.ERROR
        finally:
            # Closing the generator closes the HTTP response, which makes Ollama stop generating.
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self.finished.set()
            self.changed.set()

    async def _stream(self) -> None:
        """Publish intermediate text until the reader finishes."""
        while not self.finished.is_set():
            if not self.handles:
                wait = self.options.placeholder_after if not self.placeholder_shown else 3600.0
                got_text = await self.clock.wait_for(self.changed, wait)
                if not got_text:
                    await self._show_placeholder()
                    continue
            else:
                await self.changed.wait()
            self.changed.clear()
            if self.finished.is_set():
                return
            if self.handles:
                # Pace this reply's edits; wake early if the stream ends so the final edit is immediate.
                delay = self._edit_delay()
                while delay > 0 and not self.finished.is_set():
                    await self.clock.wait_for(self.finished, delay)
                    delay = self._edit_delay()
                if self.finished.is_set():
                    return
            await self._publish(final=False)

    def _edit_delay(self) -> float:
        now = self.clock.now()
        interval = max(self.options.edit_interval, self.budget.steady_interval)
        paced = next_edit_at(self.last_edit_at, interval) - now
        # A publish that rolls over to new messages writes more than once; it must still leave a
        # slot free so the final edit can go out the moment the stream ends.
        parts = self._parts()
        writes = 1 + max(0, len(parts) - len(self.handles))
        # Near the end of a message the final publish may have to roll over too (two writes), so
        # keep a second slot free there.
        nearly_full = len(parts[-1].render(STREAMING_MARKER)) > self.options.limit * ROLL_OVER_ZONE
        needed = writes + 1 + int(nearly_full)
        return max(paced, self.budget.delay(self.sink.channel_key, now, needed=needed))

    def _parts(self) -> list[ReplyPart]:
        return split_reply(self.result.text, limit=self.options.limit, reserve=len(STREAMING_MARKER))

    async def _show_placeholder(self) -> None:
        self.placeholder_shown = True
        if self.result.text or self.handles:
            return
        await self._write(0, notes.WAITING_STATUS, streaming=True)

    async def _publish(self, *, final: bool) -> None:
        """Bring Discord up to date with the current text; on `final`, finish every message."""
        parts = self._parts()
        trailing: list[str] = []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last and final:
                content = part.render()
                footer = self._footer()
                if footer and len(content) + len(footer) + 1 <= self.options.limit:
                    content = f"{content}\n{footer}" if content.strip() else footer
                elif footer:
                    trailing.append(footer[: self.options.limit])
                if not content.strip():
                    content = notes.EMPTY_ANSWER
            elif last:
                content = part.render(STREAMING_MARKER)
            else:
                content = part.render()
            await self._write(index, content, streaming=last and not final)
        for index, content in enumerate(trailing, start=len(parts)):
            await self._write(index, content, streaming=False)
        if final:
            self.result.final_edit_at = self.clock.now()

    def _footer(self) -> str:
        lines = list(self.extra_notes)
        if self.result.error is not None:
            lines.append(notes.note(notes.describe_error(self.result.error)))
        return "\n".join(lines)

    async def _write(self, index: int, content: str, *, streaming: bool) -> None:
        """Create or edit message `index` so it shows `content` (skipped if it already does)."""
        if index < len(self.shown) and self.shown[index] == content:
            return
        creating = index >= len(self.handles)
        while (delay := self.budget.delay(self.sink.channel_key, self.clock.now())) > 0:
            await self.clock.sleep(delay)
        self.budget.record(self.sink.channel_key, self.clock.now())
        if creating:
            after = self.handles[index - 1] if index else None
            handle = await self.sink.send(content, after=after, streaming=streaming)
            self.handles.append(handle)
            self.shown.append(content)
            if index == 0:
                await self._stop_waiting()
        else:
            await self.sink.edit(self.handles[index], content, streaming=streaming)
            self.shown[index] = content
            self.result.edits += 1
        now = self.clock.now()
        self.last_edit_at = now
        self.result.update_times.append(now)
        if self.result.first_visible_at is None and self.result.text:
            self.result.first_visible_at = now

    async def _final_edit_after_failure(self) -> None:
        """Best effort: leave the reply in a finished state even after a failure."""
        try:
            await self._publish(final=True)
        except ReplyGone:
            self.result.outcome = Outcome.DELETED
        except Exception:
            log.exception("final edit failed; the reply may still show its in-progress marker")

    async def _start_waiting(self) -> None:
        try:
            await self.sink.start_waiting()
        except Exception:
            log.warning("could not show the typing indicator", exc_info=True)

    async def _stop_waiting(self) -> None:
        with contextlib.suppress(Exception):
            await self.sink.stop_waiting()

    @staticmethod
    async def _stop_reader(reader: asyncio.Task[None]) -> None:
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
