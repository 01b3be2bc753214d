"""The process-wide Discord budget: every bot-token request under Discord's global limit, by priority.

Discord allows a bot token 50 requests per second across all routes (interaction callbacks and the
interaction webhook routes excepted), and answers a request over it with a global 429 that stalls
every channel at once and counts toward the invalid-request ban (discord-protocol.md §8 and §12).

A request holds a slot from when it is let through until its response has arrived, and a finished
request still counts for one window after that. So however long a request travels, the requests
Discord can have received in any window never exceed the limit. The limit itself keeps some headroom
below Discord's figure.

When requests have to wait, they go by priority: a reply's final edit and its first visible text,
then anything untagged (commands, history reads), then streaming edits, then status refreshes (queue
positions, the thinking timer) and typing indicators, which get only part of the budget and are
dropped rather than delayed when it is tight. Streaming replies also space their edits by
:meth:`GlobalBudget.stream_interval`, so that under load each reply's cadence stretches evenly instead
of bursting into a wall of waiting edits.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import enum
import itertools
import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.clock import Clock

__all__ = [
    "DISCORD_GLOBAL_RATE",
    "GlobalBudget",
    "Priority",
    "Slot",
    "current_prepaid",
    "current_priority",
    "prepaid",
    "request_priority",
    "take_prepaid",
]

log = logging.getLogger(__name__)

# Discord's global limit per bot token: 50 requests per second.
DISCORD_GLOBAL_RATE = 50.0
# Kept free below the limit, for what the bot cannot count (discord.py retrying a request inside one call).
DEFAULT_HEADROOM = 0.04


class Priority(enum.IntEnum):
    """Which requests go first when the budget is tight (smaller first)."""

    FINAL = 0  # a reply's final edit: it removes the in-progress marker and the Stop button
    FIRST = 1  # a reply's first visible text
    OTHER = 2  # anything not tagged: commands, history reads, thread creation, reactions
    EDIT = 3  # streaming edits and continuation parts
    STATUS = 4  # status refreshes: queue position, thinking timer, "waiting for the model"
    TYPING = 5  # typing indicators: dropped, never delayed


# The share of the budget each priority may use (a request waits, or is dropped, above it): whatever
# happens to status lines and typing indicators, a reply's text always finds room.
_CEILING = {
    Priority.FINAL: 1.0,
    Priority.FIRST: 1.0,
    Priority.OTHER: 1.0,
    Priority.EDIT: 0.9,
    Priority.STATUS: 0.6,
    Priority.TYPING: 0.4,
}
# The share of the budget streaming edits are paced to, leaving the rest for first texts, final edits,
# continuation parts and everything else.
EDIT_SHARE = 0.7

_CURRENT: contextvars.ContextVar[Priority] = contextvars.ContextVar("discord_request_priority", default=Priority.OTHER)
_PREPAID: contextvars.ContextVar[Slot | None] = contextvars.ContextVar("discord_prepaid_slot", default=None)


def current_priority() -> Priority:
    """The priority of requests made from here (set with :func:`request_priority`)."""
    return _CURRENT.get()


@contextlib.contextmanager
def request_priority(priority: Priority) -> Iterator[None]:
    """Requests made inside the block (and tasks it starts) carry `priority`."""
    token = _CURRENT.set(priority)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def prepaid(slot: Slot | None) -> Iterator[None]:
    """The next request made inside the block uses `slot`, taken beforehand, instead of waiting for one."""
    token = _PREPAID.set(slot)
    try:
        yield
    finally:
        _PREPAID.reset(token)


def current_prepaid() -> Slot | None:
    """The slot taken for the next request made from here (see :func:`prepaid`), if it is still unused."""
    slot = _PREPAID.get()
    return None if slot is None or slot.used else slot


def take_prepaid() -> Slot | None:
    """The slot taken for the request being made now (see :func:`prepaid`), if there is one left."""
    slot = _PREPAID.get()
    if slot is None or slot.used:
        return None
    slot.used = True
    return slot


class Slot:
    """One request let through; release it when its response has arrived (or refund it, unused)."""

    __slots__ = ("_budget", "_released", "used")

    def __init__(self, budget: GlobalBudget) -> None:
        self._budget = budget
        self._released = False
        self.used = False  # a request went out on it

    def release(self) -> None:
        """The request is over: from now it counts for one more window, then not at all."""
        if not self._released:
            self._released = True
            self._budget._release()

    def refund(self) -> None:
        """Give back a slot no request went out on (it then never counted)."""
        if not self._released and not self.used:
            self._released = True
            self._budget._refund()


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: Priority
    seq: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class GlobalBudget:
    """At most `rate` requests per `window` (less the headroom) for the whole process, by priority."""

    def __init__(
        self,
        rate: float = DISCORD_GLOBAL_RATE,
        *,
        clock: Clock,
        window: float = 1.0,
        headroom: float = DEFAULT_HEADROOM,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)) or not window > 0 or not 0 <= headroom < 1:
            raise ValueError(f"need rate > 0, window > 0 and 0 <= headroom < 1, got {rate!r}, {window!r}, {headroom!r}")
        self.rate = rate
        self.window = window
        self.limit = max(1, math.floor(rate * window * (1 - headroom)))
        self._clock = clock
        self._in_flight = 0
        self._ended: deque[float] = deque()  # when finished requests ended, oldest first
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._streams = 0
        self._first_texts_due = 0  # replies started that have not shown text yet (each will need a request)
        self.dropped = 0  # typing indicators left out because the budget was tight
        self.waited = 0  # requests that had to wait for a slot

    # ---- streaming replies

    def stream_started(self) -> None:
        """A reply started showing text; it will edit until :meth:`stream_ended`."""
        self._streams += 1

    def stream_ended(self) -> None:
        """A reply that was showing text finished."""
        self._streams = max(0, self._streams - 1)

    def first_text_due(self) -> None:
        """A reply started: it will need a request for its first text soon."""
        self._first_texts_due += 1

    def first_text_done(self) -> None:
        """That reply showed its first text (or ended without)."""
        self._first_texts_due = max(0, self._first_texts_due - 1)

    @property
    def streams(self) -> int:
        """Replies showing text and still streaming."""
        return self._streams

    def stream_interval(self) -> float:
        """The spacing of one reply's edits at which all streaming replies together stay within their share."""
        return self._streams * self.window / (self.limit * EDIT_SHARE)

    # ---- slots

    def used(self, now: float) -> int:
        """Requests that count against the budget at `now`."""
        horizon = now - self.window
        while self._ended and self._ended[0] <= horizon:
            self._ended.popleft()
        return self._in_flight + len(self._ended)

    def has_room(self, priority: Priority) -> bool:
        """Whether a request of `priority` would be let through right now, without waiting.

        Status refreshes and typing indicators also leave room for the first texts of the replies that
        have just started: a burst of questions must not spend the budget on "typing…" before the answers.
        """
        if any(w.priority <= priority for w in self._waiters):
            return False
        used = self.used(self._clock.now())
        if priority >= Priority.STATUS:
            used += self._first_texts_due
        return used < self._ceiling(priority)

    def try_acquire(self, priority: Priority) -> Slot | None:
        """A slot now, or None (nothing is queued) if the request would have to wait."""
        if not self.has_room(priority):
            return None
        return self._take()

    async def acquire(self, priority: Priority) -> Slot:
        """Wait for a slot: higher priorities first, first come first served within one."""
        if self.has_room(priority):
            return self._take()
        self.waited += 1
        waiter = _Waiter(priority, next(self._seq))
        bisect.insort(self._waiters, waiter, key=lambda w: (w.priority, w.seq))
        try:
            while True:
                if self._waiters[0] is waiter:
                    now = self._clock.now()
                    ceiling = self._ceiling(priority)
                    if self.used(now) < ceiling:
                        self._waiters.pop(0)
                        self._wake_head()
                        return self._take()
                    delay = self._room_in(ceiling, now)
                else:
                    delay = math.inf
                waiter.wake.clear()
                if math.isinf(delay):
                    await waiter.wake.wait()
                else:
                    await self._clock.wait_for(waiter.wake, delay)
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._wake_head()
            raise

    def _ceiling(self, priority: Priority) -> int:
        return max(1, math.floor(self.limit * _CEILING[priority]))

    def _room_in(self, ceiling: int, now: float) -> float:
        """Seconds until fewer than `ceiling` requests count (inf: only a request ending can make room)."""
        if self._in_flight >= ceiling:
            return math.inf
        excess = self._in_flight + len(self._ended) - ceiling  # >= 0, or there would be room
        return max(0.0, self._ended[excess] + self.window - now)

    def _take(self) -> Slot:
        self._in_flight += 1
        return Slot(self)

    def _release(self) -> None:
        self._in_flight -= 1
        self._ended.append(self._clock.now())
        self._wake_head()

    def _refund(self) -> None:
        self._in_flight -= 1
        self._wake_head()

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].wake.set()
