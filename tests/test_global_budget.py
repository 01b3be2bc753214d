"""The process-wide Discord budget on a virtual clock: the limit per window, in-flight requests, priorities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.streaming.global_budget import GlobalBudget, Priority, Slot, current_priority, request_priority
from tests.fake_clock import FakeClock


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    fake = FakeClock()
    fake.start()
    yield fake
    fake.stop()


def test_the_limit_keeps_headroom_below_discords_figure() -> None:
    assert GlobalBudget(50, clock=FakeClock()).limit == 48
    assert GlobalBudget(25, clock=FakeClock()).limit == 24  # a share of the limit (several instances, one token)
    assert GlobalBudget(50, clock=FakeClock(), headroom=0.0).limit == 50
    with pytest.raises(ValueError):
        GlobalBudget(0, clock=FakeClock())


async def test_at_most_the_limit_counts_in_any_window(clock: FakeClock) -> None:
    budget = GlobalBudget(10, clock=clock, headroom=0.0)
    granted: list[float] = []

    async def request() -> None:
        slot = await budget.acquire(Priority.OTHER)
        granted.append(clock.now())
        await clock.sleep(0.05)  # the request travels to Discord and back
        slot.release()

    await asyncio.gather(*(request() for _ in range(25)))

    start = granted[0]
    assert granted[:10] == [start] * 10
    # A finished request counts for one window after its response: the next ten go 1.05 s later, and so on.
    assert granted[10:20] == [pytest.approx(start + 1.05)] * 10
    assert granted[20:] == [pytest.approx(start + 2.10)] * 5
    for at in granted:  # whatever window one looks at, never more than ten
        assert sum(1 for other in granted if at <= other < at + 1.0) <= 10


async def test_a_request_in_flight_holds_its_slot_until_it_ends(clock: FakeClock) -> None:
    budget = GlobalBudget(2, clock=clock, headroom=0.0)
    long = await budget.acquire(Priority.OTHER)
    short = await budget.acquire(Priority.OTHER)
    short.release()
    started = clock.now()

    async def release_long_later() -> None:
        await clock.sleep(3.0)
        long.release()

    releaser = asyncio.create_task(release_long_later())
    third = await budget.acquire(Priority.OTHER)  # the short one's slot frees a window after it ended
    assert clock.now() == pytest.approx(started + 1.0)
    fourth_task = asyncio.create_task(budget.acquire(Priority.OTHER))
    # The long one is still in flight: its slot frees only one window after it ends (Discord may have
    # received it at any moment until then).
    fourth = await fourth_task
    assert clock.now() == pytest.approx(started + 4.0)
    for slot in (third, fourth):
        slot.release()
    await releaser


async def test_final_edits_and_first_texts_go_before_waiting_edits(clock: FakeClock) -> None:
    budget = GlobalBudget(1, clock=clock, headroom=0.0)
    held = await budget.acquire(Priority.OTHER)
    order: list[Priority] = []

    async def request(priority: Priority, after: float) -> None:
        await clock.sleep(after)
        slot = await budget.acquire(priority)
        order.append(priority)
        slot.release()

    tasks = [
        asyncio.create_task(request(Priority.EDIT, 0.1)),
        asyncio.create_task(request(Priority.STATUS, 0.2)),
        asyncio.create_task(request(Priority.FIRST, 0.3)),
        asyncio.create_task(request(Priority.FINAL, 0.4)),
        asyncio.create_task(request(Priority.EDIT, 0.5)),
    ]
    await clock.sleep(1.0)
    held.release()
    await asyncio.gather(*tasks)
    assert order == [Priority.FINAL, Priority.FIRST, Priority.EDIT, Priority.EDIT, Priority.STATUS]


async def test_typing_and_status_get_only_part_of_the_budget(clock: FakeClock) -> None:
    budget = GlobalBudget(10, clock=clock, headroom=0.0)
    slots: list[Slot] = []
    for _ in range(4):
        slot = budget.try_acquire(Priority.TYPING)
        assert slot is not None
        slots.append(slot)
    assert budget.try_acquire(Priority.TYPING) is None  # 40 % used: typing indicators are left out
    assert budget.has_room(Priority.STATUS)
    slots += [await budget.acquire(Priority.STATUS) for _ in range(2)]
    assert not budget.has_room(Priority.STATUS)  # 60 %: status refreshes wait
    assert budget.has_room(Priority.EDIT) and budget.has_room(Priority.FINAL)  # the text always finds room
    slots += [await budget.acquire(Priority.EDIT) for _ in range(3)]
    assert not budget.has_room(Priority.EDIT)  # 90 %: edits leave the rest for first texts and final edits
    assert budget.has_room(Priority.FINAL) and budget.has_room(Priority.FIRST)
    for slot in slots:
        slot.release()


async def test_nothing_jumps_a_waiting_request_of_higher_priority(clock: FakeClock) -> None:
    budget = GlobalBudget(1, clock=clock, headroom=0.0)
    held = await budget.acquire(Priority.OTHER)
    waiting = asyncio.create_task(budget.acquire(Priority.FINAL))
    await asyncio.sleep(0)
    held.release()
    await clock.sleep(1.0)  # room again, but the final edit is first in line
    assert budget.try_acquire(Priority.TYPING) is None and not budget.has_room(Priority.EDIT)
    (await waiting).release()


async def test_a_cancelled_waiter_passes_its_turn_on(clock: FakeClock) -> None:
    budget = GlobalBudget(1, clock=clock, headroom=0.0)
    held = await budget.acquire(Priority.OTHER)
    first = asyncio.create_task(budget.acquire(Priority.FINAL))
    second = asyncio.create_task(budget.acquire(Priority.EDIT))
    await asyncio.sleep(0)
    first.cancel()
    held.release()
    slot = await second
    slot.release()
    assert first.cancelled()


def test_each_reply_edits_less_often_as_more_stream() -> None:
    budget = GlobalBudget(50, clock=FakeClock())
    assert budget.stream_interval() == 0
    for _ in range(20):
        budget.stream_started()
    few = budget.stream_interval()
    for _ in range(44):
        budget.stream_started()
    many = budget.stream_interval()
    # 64 replies share 70 % of 48 requests/s: each edits about every 1.9 s, below Discord's global limit.
    assert few < 1.0 < many == pytest.approx(64 / (48 * 0.7))
    for _ in range(70):
        budget.stream_ended()
    assert budget.streams == 0


async def test_the_priority_follows_the_code_that_makes_the_request() -> None:
    assert current_priority() is Priority.OTHER
    with request_priority(Priority.FINAL):
        assert current_priority() is Priority.FINAL

        async def inner() -> Priority:
            return current_priority()

        # Tasks started inside the block (discord.py's typing loop) carry it too.
        assert await asyncio.create_task(inner()) is Priority.FINAL
    assert current_priority() is Priority.OTHER
