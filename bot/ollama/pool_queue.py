"""One first-come queue in front of every host of the pool, without head-of-line blocking.

Requests are served in the order they arrived, but a request only waits for hosts that can serve
it: when a slot frees on a host, it goes to the first waiting request that host can serve, and a
request whose model has a free host starts at once, whatever waits for other hosts. The position a
waiting request is shown counts only the requests ahead of it that compete for the same hosts.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.ollama.fair_share import QueuePosition
from bot.ollama.pool_host import PoolHost

__all__ = ["HostQueue", "Waiter"]

log = logging.getLogger(__name__)

Candidates = Callable[[str, frozenset[str]], list[PoolHost]]


@dataclass(eq=False, slots=True)
class Waiter:
    """A request waiting for a host: its model, the hosts it must not use, and (once served) its host."""

    seq: int
    model: str
    exclude: frozenset[str]
    sticky: str | None  # the host that answered the conversation's last turn
    done: bool = False
    host: PoolHost | None = None  # None when done: no host could serve it
    hosts: frozenset[str] = frozenset()  # the candidates at the last dispatch, for positions
    # A flag plus an event rather than a future, as in fair_share.RequestQueue: "granted, then cancelled
    # before resuming" must stay distinguishable from "cancelled while waiting".
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class HostQueue:
    """Hands out host slots first come, first served, each request to the best free host that can serve it."""

    def __init__(self, hosts: list[PoolHost], candidates: Candidates) -> None:
        self._hosts = hosts
        self._candidates = candidates
        self._waiters: list[Waiter] = []
        self._seq = itertools.count()

    @property
    def limit(self) -> int:
        """How many requests all hosts serve at once."""
        return sum(h.capacity for h in self._hosts)

    @property
    def active(self) -> int:
        """Slots held right now."""
        return sum(h.active for h in self._hosts)

    @property
    def waiting(self) -> int:
        """Requests waiting for a host."""
        return len(self._waiters)

    def waiting_for(self, host: PoolHost) -> int:
        """Waiting requests this host could serve."""
        return sum(1 for w in self._waiters if host.url in w.hosts)

    def next_seq(self) -> int:
        """A place in line (a request that moves to another host keeps its first one)."""
        return next(self._seq)

    async def acquire(
        self,
        model: str,
        *,
        seq: int,
        exclude: frozenset[str] = frozenset(),
        sticky: str | None = None,
        on_wait: Callable[[QueuePosition], Awaitable[None]] | None = None,
    ) -> PoolHost | None:
        """A slot on the best host that can serve `model` (not in `exclude`); None if no host can."""
        waiter = Waiter(seq=seq, model=model, exclude=exclude, sticky=sticky)
        bisect.insort(self._waiters, waiter, key=lambda w: w.seq)
        self.dispatch()
        try:
            await self._wait_turn(waiter, on_wait)
        except BaseException:
            self._abandon(waiter)
            raise
        return waiter.host

    def release(self, host: PoolHost) -> None:
        """Give a slot back; the next request that host can serve gets it."""
        host.active -= 1
        self.dispatch()

    def dispatch(self) -> None:
        """Serve every waiting request that has a free host now, in order; refresh everyone's candidates."""
        served = False
        for waiter in list(self._waiters):
            candidates = self._candidates(waiter.model, waiter.exclude)
            waiter.hosts = frozenset(h.url for h in candidates)
            if not candidates:
                self._grant(waiter, None)
                served = True
                continue
            free = [h for h in candidates if h.free]
            if free:
                host = min(free, key=lambda h, w=waiter: _preference(h, w))  # type: ignore[misc]
                host.active += 1
                self._grant(waiter, host)
                served = True
        if served:
            # Positions moved: everyone still waiting looks again.
            for waiter in self._waiters:
                waiter.wake.set()

    def position(self, waiter: Waiter) -> QueuePosition:
        """Where `waiter` stands among the requests competing for the same hosts."""
        ahead = 0
        competing = 0
        for other in self._waiters:
            if other is waiter:
                ahead = competing
            if other is waiter or other.hosts & waiter.hosts:
                competing += 1
        return QueuePosition(ahead + 1, competing)

    def _grant(self, waiter: Waiter, host: PoolHost | None) -> None:
        waiter.done = True
        waiter.host = host
        self._waiters.remove(waiter)
        waiter.wake.set()

    async def _wait_turn(self, waiter: Waiter, on_wait: Callable[[QueuePosition], Awaitable[None]] | None) -> None:
        reported: QueuePosition | None = None
        while not waiter.done:
            if on_wait is not None:
                position = self.position(waiter)
                if position != reported:
                    reported = position
                    await _notify(on_wait, position)
                    # The queue may have moved (or served us) during the callback: look again before sleeping.
                    continue
            waiter.wake.clear()
            await waiter.wake.wait()

    def _abandon(self, waiter: Waiter) -> None:
        if waiter.done:
            if waiter.host is not None:
                # The slot was handed over but the task was cancelled before it could use it: pass it on.
                self.release(waiter.host)
            return
        self._waiters.remove(waiter)
        for other in self._waiters:
            other.wake.set()


def _preference(host: PoolHost, waiter: Waiter) -> tuple[bool, bool, float, int]:
    """Sort key of a free host for a request (smallest first).

    The conversation's last host while it still has the model loaded (Ollama reuses its prompt cache), then
    a host with the model loaded (a cold load can take minutes), then the least busy for its capacity.
    """
    loaded = host.has_loaded(waiter.model)
    sticky = loaded and waiter.sticky == host.url
    return (not sticky, not loaded, host.busy_ratio, host.index)


async def _notify(on_wait: Callable[[QueuePosition], Awaitable[None]], position: QueuePosition) -> None:
    try:
        await on_wait(position)
    except Exception:
        # A failed "you are #3 in line" edit must not cost the user their place.
        log.warning("queue position callback failed for %s", position, exc_info=True)
