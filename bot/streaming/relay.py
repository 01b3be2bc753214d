"""The streaming relay: Ollama chunks in, a Discord reply edited in place out.

Two tasks cooperate per reply. The reader drains Ollama as fast as it sends and only ever
appends to the answer (and reasoning) text; it never waits on Discord. The editor publishes the
latest state at the reply's own cadence (latest wins: stale intermediate texts are simply never
sent), rolls over to a new message before Discord's 2000-character limit, and always makes one
final edit as soon as the stream ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.clock import Clock
from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaError, OllamaIncompleteStream
from bot.streaming import notes
from bot.streaming.global_budget import Priority, Slot, current_prepaid, prepaid, request_priority
from bot.streaming.pacing import ChannelWriteBudget, next_edit_at
from bot.streaming.splitter import MESSAGE_LIMIT, split_reply
from bot.streaming.thinking import Filtered, ThinkTagFilter

log = logging.getLogger(__name__)

STREAMING_MARKER = " ⏳"
# Pass as the message of Task.cancel() when the bot shuts down, so the reply says so.
SHUTDOWN_CANCEL = "ollacord-shutdown"
# Fraction of a message after which a roll-over may come with the next tokens.
ROLL_OVER_ZONE = 0.8
# Seconds between further attempts at the final edit when Discord fails for a passing reason (5xx, network):
# it is the edit that takes the in-progress marker and the Stop button away, so it is worth waiting for.
FINAL_EDIT_RETRIES = (1.0, 2.0, 4.0, 8.0)
# While Discord's global budget is too tight for status refreshes, a changed status is looked at again after this.
STATUS_RETRY = 1.0


class ReplyGone(Exception):
    """The reply can no longer be written: deleted, access lost, or a thread the bot may not reopen.

    `reason` (a clause, see notes) says why when the user should be told some other way; None when the
    message was simply deleted.
    """

    def __init__(self, detail: str = "", *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class ReplyRefused(Exception):
    """Discord refused a write for good (a 4xx that retrying cannot fix): the answer stops, saying `reason`."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ReplyWriteFailed(Exception):
    """A write failed for a reason that passes (Discord 5xx, rate limit exhausted, network): try again later."""


class Controls(enum.Enum):
    """Buttons a reply message carries."""

    NONE = "none"
    STOP = "stop"
    REGENERATE = "regenerate"


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

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        """Post a new message: replying to the prompt (`after` None) or continuing after `after`."""
        ...

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Replace a posted message's content and buttons. Raises ReplyGone if it no longer exists."""
        ...

    async def delete(self, handle: object) -> None:
        """Remove a message that is no longer part of the reply."""
        ...


@runtime_checkable
class FailureReporter(Protocol):
    """A sink that can tell the user about a failure some other way than through the reply itself."""

    async def report_failure(self, reason: str, *, posted: bool) -> None:
        """Tell the user the answer failed for `reason` (a clause); `posted`: whether part of it is shown."""
        ...


class StatusLine:
    """A short status shown until the answer starts (queue position, retries); set by whoever waits."""

    def __init__(self) -> None:
        self.text: str | None = None
        self._listeners: list[Callable[[], None]] = []

    def set(self, text: str | None) -> None:
        """Show `text` (None hides it)."""
        self.text = text
        for listener in self._listeners:
            listener()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` on every change."""
        self._listeners.append(listener)


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
    show_thinking: bool = False
    stop_button: bool = False
    regenerate_button: bool = False


@dataclass(slots=True)
class RelayResult:
    """What happened, for logging, metrics and benchmarks."""

    outcome: Outcome = Outcome.DONE
    text: str = ""
    reasoning: str = ""
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
    # Notes learned after the relay started (e.g. what was left out to fit the model's context);
    # the caller may append while the reply streams, and the final edit shows them.
    notes: list[str] = field(default_factory=list)


async def relay_reply(
    chunks: AsyncIterator[ChatChunk],
    sink: MessageSink,
    *,
    clock: Clock,
    budget: ChannelWriteBudget,
    options: RelayOptions = RelayOptions(),
    extra_notes: Sequence[str] = (),
    status: StatusLine | None = None,
    reuse: Sequence[object] = (),
    result: RelayResult | None = None,
) -> RelayResult:
    """Stream `chunks` into `sink` until the stream ends; never leaves the reply half-finished.

    `reuse` are messages of an earlier answer to overwrite in place (regenerate); any of them
    the new answer does not need are deleted at the end. Pass `result` to read what happened
    even when the relay is cancelled (it re-raises the cancellation after its final edit).
    """
    result = result or RelayResult()
    result.started_at = clock.now()
    relay = _Relay(chunks, sink, clock, budget, options, extra_notes, status or StatusLine(), reuse, result)
    return await relay.run()


Shown = tuple[str, Controls]


class _Relay:
    def __init__(
        self,
        chunks: AsyncIterator[ChatChunk],
        sink: MessageSink,
        clock: Clock,
        budget: ChannelWriteBudget,
        options: RelayOptions,
        extra_notes: Sequence[str],
        status: StatusLine,
        reuse: Sequence[object],
        result: RelayResult,
    ) -> None:
        self.chunks = chunks
        self.sink = sink
        self.clock = clock
        self.budget = budget
        self.options = options
        self.extra_notes = list(extra_notes)
        self.status = status
        self.result = result
        self.changed = asyncio.Event()
        self.finished = asyncio.Event()
        self.handles: list[object] = list(reuse)
        self.shown: list[Shown | None] = [None] * len(reuse)
        self.last_edit_at: float | None = None
        self.placeholder_due = False
        self.showing_status = bool(reuse)
        self.reasoning_started_at: float | None = None
        self.think_filter = ThinkTagFilter()
        self.counted_as_stream = False  # registered with the global budget as a reply showing text
        self.first_text_due = False  # the global budget counts on this reply to need a request for its first text
        # What the messages should show depends only on the texts and the status: kept until they change,
        # since pacing looks at it several times between two edits and splitting a long answer is not free.
        self.version = 0
        self._desired_for: tuple[int, str | None] | None = None
        self._desired_now: list[Shown] = []
        status.subscribe(self._status_changed)
        if status.text:
            self.changed.set()  # show a status given up front (e.g. "regenerating") at once

    async def run(self) -> RelayResult:
        reader = asyncio.create_task(self._read(), name="ollama-reader")
        if self.budget.shared is not None:
            self.budget.shared.first_text_due()
            self.first_text_due = True
        try:
            await self._start_waiting()
            await self._stream()
            await self._publish_final()
        except ReplyGone as gone:
            await self._stop_reader(reader)
            await self._gone(gone)
        except ReplyRefused as refused:
            log.warning("Discord refused an update of the reply (%s); stopping generation", refused)
            self.result.outcome = Outcome.ERROR
            await self._stop_reader(reader)
            self.extra_notes.append(notes.note(notes.cut_short(refused.reason)))
            await self._final_edit_after_failure(refused.reason)
        except ReplyWriteFailed as failed:  # the final edit, even after FINAL_EDIT_RETRIES
            self.result.outcome = Outcome.ERROR
            self.extra_notes.append(notes.note(notes.cut_short(notes.DISCORD_KEPT_FAILING)))
            if not await self._finish_shown():
                await self._unfinished(failed, notes.DISCORD_KEPT_FAILING)
        except asyncio.CancelledError as cancel:
            self.result.outcome = Outcome.CANCELLED
            await self._stop_reader(reader)
            shutting_down = SHUTDOWN_CANCEL in cancel.args
            self.extra_notes.append(notes.note(notes.SHUTDOWN if shutting_down else self.options.cancel_note))
            # At shutdown the process is about to end: one attempt, no waiting out a failing Discord.
            await self._final_edit_after_failure(retries=() if shutting_down else FINAL_EDIT_RETRIES)
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
            if self.counted_as_stream and self.budget.shared is not None:
                self.budget.shared.stream_ended()
            self._first_text_shown()
        return self.result

    # ---- reading Ollama

    async def _read(self) -> None:
        result = self.result
        try:
            async for chunk in self.chunks:
                now = self.clock.now()
                if result.first_token_at is None:
                    result.first_token_at = now
                if chunk.thinking:
                    self._add_reasoning(chunk.thinking, now)
                if chunk.content:
                    result.tokens += chunk.deltas
                    result.last_token_at = now
                    self._apply(self.think_filter.feed(chunk.content), now)
                if chunk.done:
                    result.done_reason = chunk.done_reason
                    if chunk.eval_count:
                        result.tokens = chunk.eval_count
        except OllamaError as exc:
            result.error = exc
            result.outcome = Outcome.INCOMPLETE if isinstance(exc, OllamaIncompleteStream) else Outcome.ERROR
        finally:
            self._apply(self.think_filter.finish(), self.clock.now())
            # Closing the generator closes the HTTP response, which makes Ollama stop generating.
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            self.finished.set()
            self.changed.set()

    def _status_changed(self) -> None:
        self.version += 1
        self.changed.set()

    def _add_reasoning(self, text: str, now: float) -> None:
        if self.reasoning_started_at is None:
            self.reasoning_started_at = now
        self.result.reasoning += text
        self.version += 1
        self.changed.set()

    def _apply(self, filtered: Filtered, now: float) -> None:
        if filtered.retract:
            # What looked like the answer was reasoning whose opening tag was in the prompt.
            self._add_reasoning(self.result.text, now)
            self.result.text = ""
            self.version += 1
        if filtered.reasoning:
            self._add_reasoning(filtered.reasoning, now)
        if filtered.content:
            self.result.text += filtered.content
            self.version += 1
            self.changed.set()

    # ---- publishing to Discord

    async def _stream(self) -> None:
        """Publish intermediate states until the reader finishes."""
        while not self.finished.is_set():
            if not self.handles and not self.placeholder_due:
                waited = self.clock.now() - self.result.started_at
                if not await self.clock.wait_for(self.changed, self.options.placeholder_after - waited):
                    self.placeholder_due = True
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
            if not self.result.text and not self._status_has_room():
                # Status refreshes are the first thing to go when Discord's global budget is tight: look again
                # in a moment, or as soon as something else changes (the first text goes out at once).
                await self.clock.wait_for(self.changed, STATUS_RETRY)
                self.changed.set()
                continue
            slot = await self._global_slot_unless_finished()
            if self.finished.is_set() and slot is None:
                return
            try:
                with prepaid(slot):
                    await self._publish(final=False)
            except ReplyWriteFailed as failed:
                # Generation goes on: what was not shown now is in the next edit (latest text wins).
                self.last_edit_at = self.clock.now()
                log.warning("could not update the reply (%s); trying again with the next edit", failed)
            finally:
                if slot is not None:
                    slot.refund()  # nothing needed writing after all, or the sink's route is not budgeted

    async def _global_slot_unless_finished(self) -> Slot | None:
        """Wait for this edit's slot in Discord's global budget, unless the stream ends first.

        Waiting here rather than inside the HTTP call keeps two things true under load: the edit shows the
        text as it is when it can go out (latest wins), and a reply whose stream ends meanwhile makes its
        final edit at once instead of first sending an edit that waits behind everyone else's final edits.
        """
        shared = self.budget.shared
        priority = self._priority(final=False)
        if shared is None or priority is not Priority.EDIT:
            # No global budget; or a status, which is dropped rather than waited for; or the first text, whose
            # write first waits for the answer's record to be saved (a slot must not be held meanwhile).
            return None
        slot = shared.try_acquire(priority)
        if slot is not None or self.finished.is_set():
            return slot
        acquiring = asyncio.ensure_future(shared.acquire(priority))
        ending = asyncio.ensure_future(self.finished.wait())
        try:
            await asyncio.wait({acquiring, ending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not acquiring.done():
                acquiring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            slot = await acquiring
        if slot is not None and self.finished.is_set():
            slot.refund()
            return None
        return slot

    def _edit_delay(self) -> float:
        now = self.clock.now()
        paced = self._paced_delay(now)
        if paced > 0:
            return paced  # not yet: what to write, and the channel's budget, are looked at when the time comes
        desired = self._desired(final=False)
        writes = sum(1 for i, want in enumerate(desired) if i >= len(self.shown) or self.shown[i] != want)
        if writes == 0:
            return 0.0
        # Near the end of a message the final publish may have to roll over too (two writes), so
        # keep a second slot free there, on top of the one always kept for the final edit.
        nearly_full = bool(desired) and len(desired[-1][0]) > self.options.limit * ROLL_OVER_ZONE
        needed = writes + 1 + int(nearly_full)
        return self.budget.delay(self.sink.channel_key, now, needed=needed)

    def _paced_delay(self, now: float) -> float:
        """Seconds until this reply's own cadence allows its next edit."""
        paced = 0.0
        if not (self.showing_status and self.result.text):
            # The first answer text replaces a status at once; after that, keep the reply's cadence, which
            # stretches when so many replies stream that together they would exceed Discord's global limit.
            shared = self.budget.shared
            interval = max(
                self.options.edit_interval,
                self.budget.steady_interval,
                shared.stream_interval() if shared is not None else 0.0,
            )
            paced = next_edit_at(self.last_edit_at, interval) - now
        return paced

    def _status_has_room(self) -> bool:
        shared = self.budget.shared
        return shared is None or shared.has_room(Priority.STATUS)

    def _status_text(self) -> str | None:
        if self.result.reasoning:
            started = self.reasoning_started_at or self.clock.now()
            return notes.thinking_status(self.clock.now() - started)
        if self.status.text:
            return self.status.text
        if self.placeholder_due:
            return notes.WAITING_STATUS
        return None

    def _desired(self, *, final: bool) -> list[Shown]:
        """What every message of the reply should show now."""
        if final:
            return self._compute_desired(final=True)
        key = (self.version, None if self.result.text else self._status_text())
        if key != self._desired_for:
            self._desired_now = self._compute_desired(final=False)
            self._desired_for = key
        return self._desired_now

    def _compute_desired(self, *, final: bool) -> list[Shown]:
        answer = self.result.text
        stop = Controls.STOP if self.options.stop_button else Controls.NONE
        if not final and not answer:
            status = self._status_text()
            return [(status, stop)] if status else []
        desired: list[Shown] = []
        if self.options.show_thinking and self.result.reasoning.strip():
            desired.append((notes.reasoning_block(self.result.reasoning, self.options.limit), Controls.NONE))
        parts = split_reply(answer, limit=self.options.limit, reserve=len(STREAMING_MARKER))
        trailing: list[Shown] = []
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if not last:
                desired.append((part.render(), Controls.NONE))
            elif not final:
                desired.append((part.render(STREAMING_MARKER), stop))
            else:
                content = part.render()
                footer = self._footer()
                if footer and len(content) + len(footer) + 1 <= self.options.limit:
                    content = f"{content}\n{footer}" if content.strip() else footer
                elif footer:
                    trailing.append((footer[: self.options.limit], Controls.NONE))
                if not content.strip():
                    content = notes.EMPTY_ANSWER
                desired.append((content, Controls.NONE))
        desired.extend(trailing)
        if final and self.options.regenerate_button and self.result.outcome is not Outcome.DELETED:
            desired[-1] = (desired[-1][0], Controls.REGENERATE)
        return desired

    async def _publish(self, *, final: bool) -> None:
        """Bring Discord up to date; on `final`, finish every message and drop unused ones."""
        desired = self._desired(final=final)
        for index, (content, controls) in enumerate(desired):
            await self._write(index, content, controls, final=final)
        self.showing_status = not self.result.text and bool(desired)
        if final:
            while len(self.handles) > len(desired):
                # A passing failure is tried again.
                with contextlib.suppress(ReplyGone, ReplyRefused), request_priority(Priority.FINAL):
                    await self.sink.delete(self.handles[-1])
                self.handles.pop()
                self.shown.pop()
            self.result.final_edit_at = self.clock.now()

    async def _publish_final(self, retries: Sequence[float] = FINAL_EDIT_RETRIES) -> None:
        """The final publish; tried again after a passing failure, since it is what removes the marker."""
        for delay in retries:
            try:
                await self._publish(final=True)
                return
            except ReplyWriteFailed as failed:
                log.warning("the final edit of the reply failed (%s); trying again in %g s", failed, delay)
                await self.clock.sleep(delay)
        await self._publish(final=True)

    def _footer(self) -> str:
        lines = [*self.result.notes, *self.extra_notes]
        if self.result.done_reason == "length":
            lines.append(notes.note(notes.LENGTH_LIMIT))
        if self.result.error is not None:
            lines.append(notes.note(notes.describe_error(self.result.error)))
        return "\n".join(lines)

    async def _write(self, index: int, content: str, controls: Controls, *, final: bool = False) -> None:
        """Create or edit message `index` so it shows `content` (skipped if it already does)."""
        if index < len(self.shown) and self.shown[index] == (content, controls):
            return
        priority = self._priority(final)
        slot = await self._write_slots(priority)
        try:
            with request_priority(priority), prepaid(slot):
                await self._send_or_edit(index, content, controls)
        finally:
            if slot is not None:
                slot.refund()  # only if the sink's route was not budgeted (an interaction's); else it counts
        now = self.clock.now()
        self.last_edit_at = now
        self.result.update_times.append(now)
        if self.result.first_visible_at is None and self.result.text:
            self.result.first_visible_at = now
            self._first_text_shown()
            if self.budget.shared is not None and not final:
                self.budget.shared.stream_started()
                self.counted_as_stream = True

    async def _write_slots(self, priority: Priority) -> Slot | None:
        """Wait until both the channel's budget and Discord's global one let one write through.

        The global slot is in hand before the channel write is counted: a write counted in the channel and
        then held back by the global budget would reach Discord later than the channel budget assumed,
        which is how a burst of global waits turns into the per-channel 429s the channel budget exists to
        prevent.
        """
        channel = self.sink.channel_key
        shared = self.budget.shared
        slot = current_prepaid()  # taken in _stream for a streaming edit
        while True:
            while (delay := self.budget.delay(channel, self.clock.now())) > 0:
                await self.clock.sleep(delay)
            if shared is None or slot is not None:
                break
            slot = await shared.acquire(priority)
            if self.budget.delay(channel, self.clock.now()) <= 0:
                break
            slot.refund()  # another reply in this channel wrote meanwhile: its budget first, again
            slot = None
        self.budget.record(channel, self.clock.now())
        return slot

    async def _send_or_edit(self, index: int, content: str, controls: Controls) -> None:
        if index >= len(self.handles):
            after = self.handles[index - 1] if index else None
            handle = await self.sink.send(content, after=after, controls=controls)
            self.handles.append(handle)
            self.shown.append((content, controls))
            if index == 0:
                await self._stop_waiting()
        else:
            await self.sink.edit(self.handles[index], content, controls=controls)
            self.shown[index] = (content, controls)
            self.result.edits += 1

    def _first_text_shown(self) -> None:
        if self.first_text_due and self.budget.shared is not None:
            self.first_text_due = False
            self.budget.shared.first_text_done()

    def _priority(self, final: bool) -> Priority:
        """How a write ranks in Discord's global budget."""
        if final:
            return Priority.FINAL
        if not self.result.text:
            return Priority.STATUS
        if self.result.first_visible_at is None:
            return Priority.FIRST
        return Priority.EDIT

    async def _final_edit_after_failure(
        self, reason: str | None = None, *, retries: Sequence[float] = FINAL_EDIT_RETRIES
    ) -> None:
        """Best effort: leave the reply in a finished state even after a failure."""
        failure: Exception
        try:
            await self._publish_final(retries)
            return
        except ReplyGone as gone:
            await self._gone(gone)
            return
        except (ReplyRefused, ReplyWriteFailed) as exc:
            failure = exc
            reason = exc.reason if isinstance(exc, ReplyRefused) else reason or notes.DISCORD_KEPT_FAILING
        except Exception as exc:
            log.exception("the final edit of the reply failed")
            failure = exc
        if not await self._finish_shown():
            await self._unfinished(failure, reason or notes.DISCORD_KEPT_FAILING)

    async def _finish_shown(self) -> bool:
        """Last resort after a failed final edit: take the marker and Stop off what is already shown.

        The text Discord accepted once is the most likely to be accepted again; the notes go under the last
        message. False if nothing is shown or an edit failed.
        """
        if not self.handles:
            return False
        footer = self._footer()
        last = len(self.handles) - 1
        for index, handle in enumerate(self.handles):
            shown = self.shown[index]
            if shown is None:
                continue
            content, controls = shown
            streaming = content.endswith(STREAMING_MARKER) or controls is Controls.STOP
            if not streaming and (index != last or not footer or content.endswith(footer)):
                continue
            # A message with Stop but no marker shows a status (queue, thinking), not answer text.
            is_status = streaming and not content.endswith(STREAMING_MARKER)
            text = "" if is_status else content.removesuffix(STREAMING_MARKER)
            if index == last and footer:
                footer = footer[: self.options.limit // 2]
                room = self.options.limit - len(footer) - 2
                # Saying the answer stops here matters more than its last few characters.
                text = text if len(text) <= room + 1 else text[:room] + "…"
                content = f"{text}\n{footer}" if text.strip() else footer
            else:
                content = text
            try:
                with request_priority(Priority.FINAL):
                    await self.sink.edit(handle, content or notes.EMPTY_ANSWER, controls=Controls.NONE)
            except Exception as exc:
                log.warning("could not take the in-progress marker off the reply either (%s)", exc)
                return False
            self.shown[index] = (content, Controls.NONE)
        self.result.final_edit_at = self.clock.now()
        return True

    async def _unfinished(self, failure: Exception, reason: str) -> None:
        """Log what really happened to a reply that could not be finished, and tell the user if nothing shows."""
        if not self.handles:
            log.error("could not post the reply at all (%s)", failure)
            await self._report(reason, posted=False)
        else:
            log.error("could not finish the reply (%s); it may still show its in-progress marker", failure)

    async def _gone(self, gone: ReplyGone) -> None:
        if gone.reason is None:
            self.result.outcome = Outcome.DELETED
            log.info("reply was deleted while streaming; stopping generation")
            return
        self.result.outcome = Outcome.ERROR
        log.warning("the reply can no longer be updated (%s); stopping generation", gone)
        await self._report(gone.reason, posted=bool(self.handles))

    async def _report(self, reason: str, *, posted: bool) -> None:
        if not isinstance(self.sink, FailureReporter):
            return
        try:
            await self.sink.report_failure(reason, posted=posted)
        except Exception:
            log.warning("could not tell the user about the failure either", exc_info=True)

    async def _start_waiting(self) -> None:
        try:
            # The typing indicator (and the task that repeats it) is the first thing dropped when Discord's
            # global budget is tight.
            with request_priority(Priority.TYPING):
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
