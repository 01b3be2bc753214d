"""Edit pacing: how often one reply may be edited, and how many writes a channel can take.

Discord allows about 5 message creates/edits per 5 s per channel. Each streaming reply paces
its own edits (one busy channel never slows another), and all replies in one channel share that
channel's write budget so together they never earn a 429. Every channel's budget sits inside the
process-wide one (`shared`, see global_budget.py), which keeps all requests under Discord's global limit.
"""

from __future__ import annotations

from collections import deque

from bot.streaming.global_budget import GlobalBudget


class ChannelWriteBudget:
    """A sliding-window count of message writes per channel (pure; the caller passes the time)."""

    def __init__(
        self, max_writes: int = 5, window: float = 5.0, margin: float = 0.15, *, shared: GlobalBudget | None = None
    ) -> None:
        if max_writes < 3:
            raise ValueError("max_writes must be at least 3 (a split takes two, and one is kept for final edits)")
        self.max_writes = max_writes
        # Our clock and Discord's never agree exactly; a little slack keeps us on the safe side.
        self.window = window + margin
        self._writes: dict[int, deque[float]] = {}
        # The process-wide budget all channels share (None: no global limit is kept, e.g. in unit tests).
        self.shared = shared

    @property
    def steady_interval(self) -> float:
        """The edit spacing one reply can keep up forever while leaving a slot free for its final edit.

        Spacing edits evenly at this pace avoids the burst-then-stall rhythm of firing four edits
        one second apart and then waiting for the window to slide.
        """
        return self.window / (self.max_writes - 1)

    def delay(self, channel: int, now: float, *, needed: int = 1) -> float:
        """Seconds to wait until `channel` has `needed` free write slots (0 if it has them now).

        Streaming edits ask for one slot more than they use, so the final edit of a reply never
        has to queue behind them.
        """
        writes = self._prune(channel, now)
        needed = min(needed, self.max_writes)
        excess = len(writes) + needed - self.max_writes
        if excess <= 0:
            return 0.0
        return max(0.0, writes[excess - 1] + self.window - now)

    def record(self, channel: int, now: float) -> None:
        """Count one write made at `now`."""
        self._writes.setdefault(channel, deque()).append(now)

    def _prune(self, channel: int, now: float) -> deque[float]:
        writes = self._writes.get(channel)
        if writes is None:
            return deque()
        while writes and writes[0] <= now - self.window:
            writes.popleft()
        if not writes:
            del self._writes[channel]
        return writes


def next_edit_at(last_edit_at: float | None, interval: float) -> float:
    """When a reply last edited at `last_edit_at` may be edited again."""
    return float("-inf") if last_edit_at is None else last_edit_at + interval
