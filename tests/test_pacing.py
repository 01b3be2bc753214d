"""Edit pacing: per-reply cadence and the per-channel write budget, on explicit timestamps."""

import pytest

from bot.streaming.pacing import ChannelWriteBudget, next_edit_at


@pytest.mark.parametrize(
    ("writes", "now", "needed", "expected"),
    [
        ([], 0.0, 2, 0.0),
        ([0.0, 1.0, 2.0], 3.0, 2, 0.0),
        # Four writes in the window: a streaming edit (one write + one kept free) waits for the oldest...
        ([0.0, 1.0, 2.0, 3.0], 3.5, 2, 5.15 - 3.5),
        # ...but a final edit may use the slot kept for it.
        ([0.0, 1.0, 2.0, 3.0], 3.5, 1, 0.0),
        # A roll-over (two writes + one kept free) needs three free slots.
        ([0.0, 1.0, 2.0], 2.5, 3, 5.15 - 2.5),
        ([0.0, 1.0], 2.5, 3, 0.0),
        ([0.0, 1.0, 2.0, 3.0, 4.0], 4.5, 1, 5.15 - 4.5),
        ([0.0, 1.0, 2.0, 3.0, 4.0], 4.5, 2, 6.15 - 4.5),
        # Writes older than the window no longer count.
        ([0.0, 1.0, 2.0, 3.0, 4.0], 9.5, 2, 0.0),
    ],
)
def test_budget_delay(writes: list[float], now: float, needed: int, expected: float) -> None:
    budget = ChannelWriteBudget(max_writes=5, window=5.0, margin=0.15)
    for at in writes:
        budget.record(500, at)
    assert budget.delay(500, now, needed=needed) == pytest.approx(expected)


def test_budget_is_per_channel() -> None:
    budget = ChannelWriteBudget()
    for at in (0.0, 0.1, 0.2, 0.3, 0.4):
        budget.record(500, at)
    assert budget.delay(500, 0.5) > 0
    assert budget.delay(501, 0.5, needed=2) == 0.0


def test_budget_never_allows_more_than_max_in_any_window() -> None:
    budget = ChannelWriteBudget(max_writes=5, window=5.0, margin=0.0)
    now, sent = 0.0, []
    for i in range(200):
        now += budget.delay(500, now, needed=1 + i % 3)
        budget.record(500, now)
        sent.append(now)
        now += 0.05
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 5.0 - 1e-9


@pytest.mark.parametrize(
    ("last", "interval", "expected"),
    [(None, 1.0, float("-inf")), (10.0, 1.0, 11.0), (10.0, 0.25, 10.25)],
)
def test_next_edit_at(last: float | None, interval: float, expected: float) -> None:
    assert next_edit_at(last, interval) == expected


def test_steady_interval_keeps_one_slot_free() -> None:
    assert ChannelWriteBudget(max_writes=5, window=5.0, margin=0.0).steady_interval == pytest.approx(1.25)
