"""Time as a dependency, so pacing logic can be tested without sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What pacing code needs from time: read it, sleep, or wait for an event with a deadline."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds`."""
        ...

    async def wait_for(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until `event` is set or `seconds` pass; True if the event is set."""
        ...


class MonotonicClock:
    """The real clock: time.monotonic and the event loop's timers."""

    def now(self) -> float:
        """Seconds on time.monotonic's scale."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`."""
        if event.is_set():
            return True
        if seconds <= 0:
            return False
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True
