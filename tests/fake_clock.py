"""A virtual clock for relay tests: time jumps to the next timer whenever every task is idle."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    """Implements bot.clock.Clock on virtual time; call `start()` inside the test's event loop."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._jumper: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.t + seconds, next(self._seq), future))
        await future

    async def wait_for(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return event.is_set()

    def start(self) -> None:
        self._jumper = asyncio.get_running_loop().create_task(self._autojump())

    def stop(self) -> None:
        if self._jumper is not None:
            self._jumper.cancel()

    async def _autojump(self) -> None:
        while True:
            # Let every runnable task settle before declaring the world idle.
            for _ in range(30):
                await asyncio.sleep(0)
            while self._timers and self._timers[0][2].done():
                heapq.heappop(self._timers)
            if not self._timers:
                continue
            deadline, _, future = heapq.heappop(self._timers)
            self.t = max(self.t, deadline)
            future.set_result(None)
