"""Sharing one Ollama server fairly: a FIFO request queue, per-user rate limits and retries on HTTP 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaServerBusy

__all__ = ["QueuePosition", "RequestQueue", "UserRateLimiter", "stream_with_busy_retry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """Where a waiting request stands when told: `position` 1 is next in line, `waiting` counts all waiters."""

    position: int
    waiting: int


@dataclass(eq=False, slots=True)
class _Waiter:
    # A flag plus an event rather than a future: a cancelled task cancels the future it awaits, which would
    # make "granted, then cancelled before resuming" indistinguishable from "cancelled while waiting".
    granted: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class RequestQueue:
    """A global FIFO limit on concurrent Ollama requests."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
        self._limit = limit
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def limit(self) -> int:
        """How many requests may run at once."""
        return self._limit

    @property
    def active(self) -> int:
        """How many slots are held right now."""
        return self._active

    @property
    def waiting(self) -> int:
        """How many requests are queued for a slot."""
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def slot(self, on_wait: Callable[[QueuePosition], Awaitable[None]] | None = None) -> AsyncIterator[None]:
        """Hold one slot for the body; on_wait hears the queue position while waiting and whenever it changes."""
        if self._active < self._limit and not self._waiters:
            self._active += 1
        else:
            waiter = _Waiter()
            self._waiters.append(waiter)
            try:
                await self._wait_turn(waiter, on_wait)
            except BaseException:
                self._abandon(waiter)
                raise
        try:
            yield
        finally:
            self._release()

    async def _wait_turn(self, waiter: _Waiter, on_wait: Callable[[QueuePosition], Awaitable[None]] | None) -> None:
        reported = 0
        while not waiter.granted:
            if on_wait is not None:
                position = self._waiters.index(waiter) + 1
                if position != reported:
                    reported = position
                    await _notify(on_wait, QueuePosition(position, len(self._waiters)))
                    # The queue may have moved (or served us) during the callback: look again before sleeping.
                    continue
            waiter.wake.clear()
            await waiter.wake.wait()

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.granted:
            # The slot was handed over but the task was cancelled before it could use it: pass it on.
            self._release()
            return
        index = self._waiters.index(waiter)
        del self._waiters[index]
        self._wake_from(index)

    def _release(self) -> None:
        if self._waiters:
            # Hand the slot over directly (active stays the same) so that no newcomer can slip in between.
            served = self._waiters.popleft()
            served.granted = True
            served.wake.set()
            self._wake_from(0)
        else:
            self._active -= 1

    def _wake_from(self, index: int) -> None:
        for i in range(index, len(self._waiters)):
            self._waiters[i].wake.set()


async def _notify(on_wait: Callable[[QueuePosition], Awaitable[None]], position: QueuePosition) -> None:
    try:
        await on_wait(position)
    except Exception:
        # A failed "you are #3 in line" edit must not cost the user their place.
        log.warning("queue position callback failed for %s", position, exc_info=True)


class UserRateLimiter:
    """At most `max_requests` per `window` seconds per user (sliding window; pure, the caller passes the time)."""

    def __init__(self, max_requests: int, window: float) -> None:
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 0:
            raise ValueError(f"max_requests must be an integer >= 0, got {max_requests!r}")
        if max_requests > 0 and not (window > 0 and math.isfinite(window)):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self._max = max_requests
        self._window = float(window)
        self._history: dict[int, deque[float]] = {}
        self._last_sweep = -math.inf

    @property
    def max_requests(self) -> int:
        """Requests allowed per window per user; 0 means unlimited."""
        return self._max

    @property
    def window(self) -> float:
        """The sliding window's length in seconds."""
        return self._window

    @property
    def tracked_users(self) -> int:
        """How many users currently have requests on record."""
        return len(self._history)

    def retry_after(self, user_id: int, now: float) -> float:
        """Seconds until `user_id` may send another request; 0.0 if allowed now."""
        if self._max == 0:
            return 0.0
        stamps = self._history.get(user_id)
        if stamps is None:
            return 0.0
        self._expire(user_id, stamps, now)
        excess = len(stamps) - self._max
        if excess < 0:
            return 0.0
        # Once `excess + 1` of the oldest requests have left the window, the user is under the limit again.
        return max(0.0, stamps[excess] + self._window - now)

    def record(self, user_id: int, now: float) -> None:
        """Count a request by `user_id` at `now`."""
        if self._max == 0:
            return
        stamps = self._history.setdefault(user_id, deque())
        stamps.append(now)
        self._expire(user_id, stamps, now)
        if now - self._last_sweep >= self._window:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget every request older than the window, and users with none left."""
        self._last_sweep = now
        for user_id, stamps in list(self._history.items()):
            self._expire(user_id, stamps, now)

    def _expire(self, user_id: int, stamps: deque[float], now: float) -> None:
        horizon = now - self._window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._history[user_id]


async def stream_with_busy_retry(
    open_stream: Callable[[], AsyncGenerator[ChatChunk, None]],
    *,
    clock: Clock,
    attempts: int = 4,
    first_delay: float = 1.0,
    max_delay: float = 8.0,
    on_retry: Callable[[int, float], Awaitable[None]] | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """Stream `open_stream()`, reopening it with backoff on 503 before any chunk; on_retry(next attempt, delay)."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an integer >= 1, got {attempts!r}")
    if not (0 <= first_delay <= max_delay and math.isfinite(max_delay)):
        raise ValueError(f"need 0 <= first_delay <= max_delay < inf, got {first_delay!r} and {max_delay!r}")
    delay = first_delay
    attempt = 1
    while True:
        # aclosing: closing or cancelling us must close the inner stream, which is what stops Ollama generating.
        async with contextlib.aclosing(open_stream()) as stream:
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except OllamaServerBusy:
                if attempt >= attempts:
                    raise
            else:
                yield first
                async for chunk in stream:
                    yield chunk
                return
        attempt += 1
        if on_retry is not None:
            try:
                await on_retry(attempt, delay)
            except Exception:
                log.warning("busy-retry callback failed before attempt %d", attempt, exc_info=True)
        await clock.sleep(delay)
        delay = min(delay * 2, max_delay)
