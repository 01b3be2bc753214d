"""The request queue, per-user rate limits and 503 retries, on virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaHTTPError, OllamaServerBusy, OllamaStreamError, OllamaUnreachable
from bot.ollama.fair_share import QueuePosition, RequestQueue, UserRateLimiter, stream_with_busy_retry
from tests.fake_clock import FakeClock

T0 = 1000.0
T = TypeVar("T")


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock(start=T0)
    yield fake
    fake.stop()


@dataclass
class Recorder:
    """Collects which request entered when, and every position each waiter was told."""

    clock: FakeClock
    queue: RequestQueue
    entered: list[tuple[str, float]] = field(default_factory=list)
    seen: dict[str, list[QueuePosition]] = field(default_factory=dict)
    peak: int = 0
    inside: int = 0

    async def request(self, name: str, hold: float) -> None:
        self.seen[name] = []

        async def on_wait(position: QueuePosition) -> None:
            self.seen[name].append(position)

        async with self.queue.slot(on_wait):
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.entered.append((name, self.clock.now() - T0))
            try:
                await self.clock.sleep(hold)
            finally:
                self.inside -= 1

    def spawn(self, name: str, hold: float) -> asyncio.Task[None]:
        return asyncio.create_task(self.request(name, hold), name=name)


def qp(position: int, waiting: int) -> QueuePosition:
    return QueuePosition(position, waiting)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def within(clock: FakeClock, seconds: float, awaitable: Awaitable[T]) -> T:
    """Await on virtual time, failing instead of hanging forever if a leaked slot blocks everyone."""
    task = asyncio.ensure_future(awaitable)
    deadline = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, deadline}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        deadline.cancel()
    if not task.done():
        task.cancel()
        pytest.fail(f"still blocked after {seconds:g} virtual seconds")
    return task.result()


async def assert_drained(clock: FakeClock, queue: RequestQueue) -> None:
    """Nothing held, nobody waiting, and a fresh request enters at once."""
    assert (queue.active, queue.waiting) == (0, 0)
    told: list[QueuePosition] = []

    async def record(position: QueuePosition) -> None:
        told.append(position)

    async def enter() -> None:
        async with queue.slot(record):
            assert queue.active == 1

    before = clock.now()
    await within(clock, 1, enter())
    assert (told, clock.now()) == ([], before)
    assert (queue.active, queue.waiting) == (0, 0)


# --- RequestQueue -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_queue_rejects_bad_limits(limit: object) -> None:
    with pytest.raises(ValueError):
        RequestQueue(limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "holds", "expected"),
    [
        (1, [1, 1, 1, 1], [("r0", 0), ("r1", 1), ("r2", 2), ("r3", 3)]),
        (1, [3, 1, 2], [("r0", 0), ("r1", 3), ("r2", 4)]),
        (2, [3, 1, 1, 1, 1], [("r0", 0), ("r1", 0), ("r2", 1), ("r3", 2), ("r4", 3)]),
        (2, [1, 5, 1, 1, 1], [("r0", 0), ("r1", 0), ("r2", 1), ("r3", 2), ("r4", 3)]),
        (3, [1, 1, 1, 1], [("r0", 0), ("r1", 0), ("r2", 0), ("r3", 1)]),
    ],
)
async def test_requests_enter_in_arrival_order(
    clock: FakeClock, limit: int, holds: list[float], expected: list[tuple[str, float]]
) -> None:
    clock.start()
    rec = Recorder(clock, RequestQueue(limit))
    await within(clock, 100, asyncio.gather(*(rec.spawn(f"r{i}", hold) for i, hold in enumerate(holds))))
    assert rec.entered == expected
    assert rec.peak == min(limit, len(holds))
    await assert_drained(clock, rec.queue)


async def test_waiters_hear_their_position_as_the_queue_drains(clock: FakeClock) -> None:
    clock.start()
    queue = RequestQueue(1)
    rec = Recorder(clock, queue)
    tasks = [rec.spawn(name, 1) for name in "ABCD"]
    await settle()
    assert (queue.active, queue.waiting) == (1, 3)
    await within(clock, 100, asyncio.gather(*tasks))
    # `waiting` is a snapshot taken when the position is reported: B queued before C and D arrived.
    assert rec.seen == {
        "A": [],
        "B": [qp(1, 1)],
        "C": [qp(2, 2), qp(1, 2)],
        "D": [qp(3, 3), qp(2, 2), qp(1, 1)],
    }
    assert rec.entered == [("A", 0), ("B", 1), ("C", 2), ("D", 3)]


async def test_positions_with_two_slots(clock: FakeClock) -> None:
    clock.start()
    rec = Recorder(clock, RequestQueue(2))
    await within(clock, 100, asyncio.gather(rec.spawn("A", 2), rec.spawn("B", 3), rec.spawn("C", 2), rec.spawn("D", 1)))
    # A leaves at 2 (C enters), B at 3 (D enters).
    assert rec.seen == {"A": [], "B": [], "C": [qp(1, 1)], "D": [qp(2, 2), qp(1, 1)]}
    assert rec.entered == [("A", 0), ("B", 0), ("C", 2), ("D", 3)]


@pytest.mark.parametrize(
    ("cancelled", "expected_seen", "expected_order"),
    [
        (
            "B",
            {"B": [qp(1, 1)], "C": [qp(2, 2), qp(1, 2)], "D": [qp(3, 3), qp(2, 2), qp(1, 1)]},
            ["A", "C", "D"],
        ),
        (
            "C",
            {"B": [qp(1, 1)], "C": [qp(2, 2)], "D": [qp(3, 3), qp(2, 2), qp(1, 1)]},
            ["A", "B", "D"],
        ),
        (
            "D",
            {"B": [qp(1, 1)], "C": [qp(2, 2), qp(1, 1)], "D": [qp(3, 3)]},
            ["A", "B", "C"],
        ),
    ],
)
async def test_a_cancelled_waiter_leaves_and_those_behind_move_up(
    clock: FakeClock, cancelled: str, expected_seen: dict[str, list[QueuePosition]], expected_order: list[str]
) -> None:
    clock.start()
    queue = RequestQueue(1)
    rec = Recorder(clock, queue)
    tasks = {name: rec.spawn(name, 10) for name in "ABCD"}
    await clock.sleep(5)
    tasks[cancelled].cancel()
    await settle()
    assert (queue.active, queue.waiting) == (1, 2)
    results = await within(clock, 100, asyncio.gather(*tasks.values(), return_exceptions=True))
    assert [name for name, r in zip(tasks, results, strict=True) if isinstance(r, asyncio.CancelledError)] == [
        cancelled
    ]
    assert {name: rec.seen[name] for name in "BCD"} == expected_seen
    assert [name for name, _ in rec.entered] == expected_order
    await assert_drained(clock, queue)


async def test_a_newcomer_does_not_overtake_waiters(clock: FakeClock) -> None:
    clock.start()
    queue = RequestQueue(1)
    order: list[str] = []

    async def greedy() -> None:
        async with queue.slot():
            order.append("A")
            await clock.sleep(1)
        # Released and re-requested without yielding to the loop: B has not run yet, but it is first in line.
        assert (queue.active, queue.waiting) == (1, 0)
        seen: list[QueuePosition] = []

        async def on_wait(position: QueuePosition) -> None:
            seen.append(position)

        async with queue.slot(on_wait):
            order.append("A again")
        assert seen == [qp(1, 1)]

    async def patient() -> None:
        async with queue.slot():
            order.append("B")
            await clock.sleep(1)

    await within(clock, 100, asyncio.gather(greedy(), patient()))
    assert order == ["A", "B", "A again"]


async def test_cancelled_right_after_being_granted_passes_the_slot_on(clock: FakeClock) -> None:
    clock.start()
    queue = RequestQueue(1)
    rec = Recorder(clock, queue)
    b_task: asyncio.Task[None] | None = None

    async def holder() -> None:
        async with queue.slot():
            await clock.sleep(1)
        # The slot is now B's, but B has not resumed yet.
        assert b_task is not None
        b_task.cancel()

    a_task = asyncio.create_task(holder())
    await settle()
    b_task = rec.spawn("B", 1)
    c_task = rec.spawn("C", 1)
    await within(clock, 100, asyncio.gather(a_task, c_task))
    with pytest.raises(asyncio.CancelledError):
        await b_task
    assert rec.entered == [("C", 1)]
    # C was handed the slot before it ran again, so it never heard a stale "you are next".
    assert rec.seen["C"] == [qp(2, 2)]
    await assert_drained(clock, queue)


async def test_cancelled_inside_its_position_callback(clock: FakeClock) -> None:
    clock.start()
    queue = RequestQueue(1)
    rec = Recorder(clock, queue)
    started = asyncio.Event()

    async def slow_on_wait(position: QueuePosition) -> None:
        started.set()
        await clock.sleep(100)

    async def slow() -> None:
        async with queue.slot(slow_on_wait):
            raise AssertionError("never entered")

    a = rec.spawn("A", 5)
    await settle()
    b = asyncio.create_task(slow())
    c = rec.spawn("C", 1)
    await started.wait()
    b.cancel()
    await within(clock, 100, asyncio.gather(a, c))
    assert b.cancelled()
    assert rec.entered == [("A", 0), ("C", 5)]
    assert rec.seen["C"] == [qp(2, 2), qp(1, 1)]
    await assert_drained(clock, queue)


@pytest.mark.parametrize("seed", range(12))
async def test_no_slot_leaks_under_random_cancellation(clock: FakeClock, seed: int) -> None:
    clock.start()
    rng = random.Random(seed)
    limit = rng.randint(1, 3)
    queue = RequestQueue(limit)
    inside = 0
    peak = 0

    async def on_wait(position: QueuePosition) -> None:
        if rng.random() < 0.3:
            await clock.sleep(rng.choice([0.5, 1.5]))
        if rng.random() < 0.2:
            raise RuntimeError("edit failed")

    async def request(arrive: float, hold: float) -> None:
        nonlocal inside, peak
        await clock.sleep(arrive)
        async with queue.slot(on_wait):
            inside += 1
            peak = max(peak, inside)
            try:
                await clock.sleep(hold)
            finally:
                inside -= 1
        if rng.random() < 0.5:
            # Right after a release, before anyone else has run: hits "granted, then cancelled" waiters.
            rng.choice(tasks).cancel()

    tasks: list[asyncio.Task[None]] = []
    tasks += [asyncio.create_task(request(rng.choice([0, 1, 2, 3]), rng.choice([1, 2, 3]))) for _ in range(20)]

    async def canceller() -> None:
        for _ in range(10):
            await clock.sleep(rng.choice([0.5, 1, 2]))
            rng.choice(tasks).cancel()

    await within(clock, 100, asyncio.gather(canceller(), *tasks, return_exceptions=True))
    assert peak <= limit
    await assert_drained(clock, queue)


async def test_a_failing_position_callback_is_logged_and_ignored(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.start()
    queue = RequestQueue(1)
    rec = Recorder(clock, queue)
    calls: list[QueuePosition] = []

    async def broken(position: QueuePosition) -> None:
        calls.append(position)
        raise RuntimeError("Discord said no")

    async def fragile() -> None:
        async with queue.slot(broken):
            rec.entered.append(("B", clock.now() - T0))
            await clock.sleep(1)

    with caplog.at_level(logging.WARNING, logger="bot.ollama.fair_share"):
        tasks = [rec.spawn("A", 1), asyncio.create_task(fragile()), rec.spawn("C", 1), rec.spawn("D", 1)]
        await within(clock, 100, asyncio.gather(*tasks))
    assert rec.entered == [("A", 0), ("B", 1), ("C", 2), ("D", 3)]
    assert calls == [qp(1, 1)]
    assert rec.seen["D"] == [qp(3, 3), qp(2, 2), qp(1, 1)]
    assert "Discord said no" in caplog.text
    await assert_drained(clock, queue)


async def test_an_error_in_the_body_releases_the_slot(clock: FakeClock) -> None:
    clock.start()
    queue = RequestQueue(1)
    with pytest.raises(OllamaStreamError):
        async with queue.slot():
            raise OllamaStreamError("boom")
    await assert_drained(clock, queue)


# --- UserRateLimiter ----------------------------------------------------------------------------------------------

# Steps: ("record", user, now) or ("check", user, now, expected retry_after).
Step = tuple[str, int, float] | tuple[str, int, float, float]


@pytest.mark.parametrize(
    ("max_requests", "window", "steps"),
    [
        pytest.param(
            2,
            10.0,
            [
                ("check", 1, 0, 0.0),
                ("record", 1, 0),
                ("check", 1, 1, 0.0),
                ("record", 1, 3),
                ("check", 1, 4, 6.0),
                ("check", 1, 9.5, 0.5),
                ("check", 1, 10, 0.0),  # the request at 0 leaves the window exactly at 10
                ("record", 1, 10),
                ("check", 1, 11, 2.0),  # now the one at 3 is the oldest
                ("check", 1, 13, 0.0),
            ],
            id="sliding window",
        ),
        pytest.param(
            1,
            60.0,
            [
                ("record", 1, 0),
                ("check", 1, 1, 59.0),
                ("check", 2, 1, 0.0),
                ("record", 2, 30),
                ("check", 2, 31, 59.0),
                ("check", 1, 31, 29.0),
                ("check", 1, 60, 0.0),
            ],
            id="users are independent",
        ),
        pytest.param(
            0,
            60.0,
            [("record", 1, 0), ("record", 1, 0), ("record", 1, 0), ("check", 1, 0, 0.0)],
            id="zero means unlimited",
        ),
        pytest.param(
            0,
            0.0,
            [("record", 1, 0), ("check", 1, 0, 0.0)],
            id="unlimited ignores the window",
        ),
        pytest.param(
            2,
            10.0,
            [
                # Recorded past the limit anyway (e.g. an admin bypass): wait until enough have expired.
                ("record", 1, 0),
                ("record", 1, 1),
                ("record", 1, 2),
                ("record", 1, 3),
                ("check", 1, 5, 7.0),
                ("check", 1, 12, 0.0),
            ],
            id="over the limit",
        ),
    ],
)
def test_rate_limiter(max_requests: int, window: float, steps: list[Step]) -> None:
    limiter = UserRateLimiter(max_requests, window)
    for step in steps:
        if step[0] == "record":
            limiter.record(step[1], step[2])
        else:
            assert len(step) == 4
            assert limiter.retry_after(step[1], step[2]) == pytest.approx(step[3]), step


@pytest.mark.parametrize(("max_requests", "window"), [(-1, 10.0), (1, 0.0), (1, -5.0), (1, float("nan")), (1.5, 1.0)])
def test_rate_limiter_rejects_bad_settings(max_requests: int, window: float) -> None:
    with pytest.raises(ValueError):
        UserRateLimiter(max_requests, window)


def test_rate_limiter_forgets_idle_users() -> None:
    limiter = UserRateLimiter(3, 10.0)
    for user in range(1000):
        limiter.record(user, user / 100)  # 1000 users within 10 s
    assert limiter.tracked_users == 1000
    limiter.record(5000, 25.0)
    assert limiter.tracked_users == 1
    assert limiter.retry_after(7, 25.0) == 0.0


def test_rate_limiter_memory_stays_bounded_by_active_users() -> None:
    limiter = UserRateLimiter(2, 10.0)
    # A stream of one-off users over a long time: only those from the last two windows may be remembered.
    for i in range(10_000):
        limiter.record(i, i * 0.1)
        assert limiter.tracked_users <= 200
    limiter.prune(10_000.0)
    assert limiter.tracked_users == 0


def test_rate_limiter_checking_prunes_the_user() -> None:
    limiter = UserRateLimiter(1, 10.0)
    limiter.record(1, 0)
    assert limiter.tracked_users == 1
    assert limiter.retry_after(1, 10) == 0.0
    assert limiter.tracked_users == 0


def test_unlimited_rate_limiter_keeps_nothing() -> None:
    limiter = UserRateLimiter(0, 60.0)
    for user in range(100):
        limiter.record(user, 0)
    assert limiter.tracked_users == 0


# --- stream_with_busy_retry ---------------------------------------------------------------------------------------


def chunk(text: str, done: bool = False) -> ChatChunk:
    return ChatChunk(content=text, thinking="", done=done, done_reason="stop" if done else None)


ANSWER = [chunk("Hel"), chunk("lo"), chunk("", done=True)]


@dataclass
class Opener:
    """Fakes OllamaClient.chat_stream: busy `busy` times, then the chunks, then optionally an error."""

    clock: FakeClock
    busy: int = 0
    chunks: list[ChatChunk] = field(default_factory=lambda: list(ANSWER))
    error_after_chunks: BaseException | None = None
    hang_after_chunks: bool = False
    opened_at: list[float] = field(default_factory=list)
    finished: int = 0
    closed_early: int = 0

    def __call__(self) -> AsyncGenerator[ChatChunk, None]:
        return self._stream()

    async def _stream(self) -> AsyncGenerator[ChatChunk, None]:
        self.opened_at.append(self.clock.now() - T0)
        try:
            if len(self.opened_at) <= self.busy:
                raise OllamaServerBusy(503, "server busy, please try again.  maximum pending requests exceeded")
            for c in self.chunks:
                yield c
            if self.error_after_chunks is not None:
                raise self.error_after_chunks
            if self.hang_after_chunks:
                await asyncio.Event().wait()
        except (GeneratorExit, asyncio.CancelledError):
            self.closed_early += 1
            raise
        finally:
            self.finished += 1


@dataclass
class Retries:
    """Records on_retry calls as (attempt, delay, virtual time of the call)."""

    clock: FakeClock
    calls: list[tuple[int, float, float]] = field(default_factory=list)

    async def __call__(self, attempt: int, delay: float) -> None:
        self.calls.append((attempt, delay, self.clock.now() - T0))


async def collect(stream: AsyncGenerator[ChatChunk, None]) -> list[ChatChunk]:
    return [c async for c in stream]


@pytest.mark.parametrize(
    ("busy", "attempts", "first_delay", "max_delay", "opened_at", "retries"),
    [
        (0, 4, 1.0, 8.0, [0], []),
        (1, 4, 1.0, 8.0, [0, 1], [(2, 1.0, 0)]),
        (3, 4, 1.0, 8.0, [0, 1, 3, 7], [(2, 1.0, 0), (3, 2.0, 1), (4, 4.0, 3)]),
        (5, 6, 1.0, 3.0, [0, 1, 3, 6, 9, 12], [(2, 1, 0), (3, 2, 1), (4, 3, 3), (5, 3, 6), (6, 3, 9)]),
        (2, 3, 0.5, 8.0, [0, 0.5, 1.5], [(2, 0.5, 0), (3, 1.0, 0.5)]),
    ],
)
async def test_busy_server_is_retried_with_backoff(
    clock: FakeClock,
    busy: int,
    attempts: int,
    first_delay: float,
    max_delay: float,
    opened_at: list[float],
    retries: list[tuple[int, float, float]],
) -> None:
    clock.start()
    opener = Opener(clock, busy=busy)
    on_retry = Retries(clock)
    stream = stream_with_busy_retry(
        opener, clock=clock, attempts=attempts, first_delay=first_delay, max_delay=max_delay, on_retry=on_retry
    )
    assert await collect(stream) == ANSWER
    assert opener.opened_at == opened_at
    assert on_retry.calls == retries
    assert clock.now() - T0 == opened_at[-1]
    assert opener.finished == len(opened_at)
    assert opener.closed_early == 0


@pytest.mark.parametrize(("attempts", "opened_at"), [(1, [0]), (2, [0, 1]), (4, [0, 1, 3, 7])])
async def test_gives_up_after_the_last_attempt(clock: FakeClock, attempts: int, opened_at: list[float]) -> None:
    clock.start()
    opener = Opener(clock, busy=100)
    on_retry = Retries(clock)
    with pytest.raises(OllamaServerBusy):
        await collect(stream_with_busy_retry(opener, clock=clock, attempts=attempts, on_retry=on_retry))
    assert opener.opened_at == opened_at
    assert len(on_retry.calls) == attempts - 1
    assert clock.now() - T0 == opened_at[-1]  # no pointless wait after the last failure


async def test_busy_after_the_first_chunk_is_not_retried(clock: FakeClock) -> None:
    clock.start()
    busy = OllamaServerBusy(503, "server busy")
    opener = Opener(clock, chunks=[chunk("Hel")], error_after_chunks=busy)
    received: list[ChatChunk] = []
    with pytest.raises(OllamaServerBusy) as caught:
        async for c in stream_with_busy_retry(opener, clock=clock):
            received.append(c)
    assert caught.value is busy
    assert received == [chunk("Hel")]
    assert opener.opened_at == [0]


@pytest.mark.parametrize(
    "error",
    [
        OllamaHTTPError(500, "llama runner process has terminated"),
        OllamaHTTPError(429, "too many requests"),
        OllamaUnreachable("http://127.0.0.1:11434", "connection refused"),
        OllamaStreamError("out of memory"),
        RuntimeError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_other_errors_are_not_retried(clock: FakeClock, error: Exception) -> None:
    clock.start()
    opener = Opener(clock, chunks=[], error_after_chunks=error)
    on_retry = Retries(clock)
    with pytest.raises(type(error)) as caught:
        await collect(stream_with_busy_retry(opener, clock=clock, on_retry=on_retry))
    assert caught.value is error
    assert opener.opened_at == [0]
    assert on_retry.calls == []
    assert clock.now() == T0


async def test_an_empty_stream_ends_quietly(clock: FakeClock) -> None:
    clock.start()
    opener = Opener(clock, chunks=[])
    assert await collect(stream_with_busy_retry(opener, clock=clock)) == []
    assert opener.opened_at == [0]


async def test_closing_early_closes_the_inner_stream(clock: FakeClock) -> None:
    clock.start()
    opener = Opener(clock, busy=1)
    stream = stream_with_busy_retry(opener, clock=clock)
    assert await anext(stream) == chunk("Hel")
    await stream.aclose()
    assert opener.opened_at == [0, 1]
    assert opener.closed_early == 1
    assert opener.finished == 2


async def test_cancelling_the_consumer_closes_the_inner_stream(clock: FakeClock) -> None:
    clock.start()
    opener = Opener(clock, chunks=[chunk("Hel")], hang_after_chunks=True)
    received: list[ChatChunk] = []

    async def consume() -> None:
        async with contextlib.aclosing(stream_with_busy_retry(opener, clock=clock)) as stream:
            async for c in stream:
                received.append(c)

    task = asyncio.create_task(consume())
    await settle()
    assert received == [chunk("Hel")]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert opener.closed_early == 1
    assert opener.finished == 1


async def test_cancelling_during_the_backoff_opens_nothing_more(clock: FakeClock) -> None:
    clock.start()
    opener = Opener(clock, busy=100)
    task = asyncio.create_task(collect(stream_with_busy_retry(opener, clock=clock)))
    await clock.sleep(2)  # attempts at 0 and 1; now waiting 2 s for the third
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.sleep(10)
    assert opener.opened_at == [0, 1]
    assert opener.finished == 2


async def test_a_failing_retry_callback_does_not_stop_the_retry(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.start()
    opener = Opener(clock, busy=2)

    async def broken(attempt: int, delay: float) -> None:
        raise RuntimeError("Discord said no")

    with caplog.at_level(logging.WARNING, logger="bot.ollama.fair_share"):
        assert await collect(stream_with_busy_retry(opener, clock=clock, on_retry=broken)) == ANSWER
    assert opener.opened_at == [0, 1, 3]
    assert [r.getMessage() for r in caplog.records] == [
        "busy-retry callback failed before attempt 2",
        "busy-retry callback failed before attempt 3",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": 2.5},
        {"first_delay": -1.0},
        {"first_delay": 10.0, "max_delay": 5.0},
        {"max_delay": float("inf")},
    ],
)
async def test_busy_retry_rejects_bad_settings(clock: FakeClock, kwargs: dict[str, float]) -> None:
    opener = Opener(clock)
    with pytest.raises(ValueError):
        await anext(stream_with_busy_retry(opener, clock=clock, **kwargs))  # type: ignore[arg-type]
    assert opener.opened_at == []
