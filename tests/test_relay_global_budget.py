"""The relay inside Discord's global budget, on virtual time: pacing, priorities, and the HTTP-layer limiter."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import discord.http
import pytest

from bot.discord_budget import limit_requests
from bot.ollama.client import ChatChunk
from bot.streaming.global_budget import (
    GlobalBudget,
    Priority,
    Slot,
    current_priority,
    prepaid,
    request_priority,
    take_prepaid,
)
from bot.streaming.pacing import ChannelWriteBudget
from bot.streaming.relay import Controls, RelayOptions, relay_reply
from tests.fake_clock import FakeClock


@pytest.fixture
async def clock() -> AsyncIterator[FakeClock]:
    fake = FakeClock()
    fake.start()
    yield fake
    fake.stop()


@dataclass
class BudgetedSink:
    """A sink whose writes take a global slot the way the HTTP layer does, and take `rtt` seconds."""

    clock: FakeClock
    budget: GlobalBudget
    channel_key: int
    rtt: float = 0.05
    writes: list[tuple[float, int, str, Priority]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    async def start_waiting(self) -> None:
        pass

    async def stop_waiting(self) -> None:
        pass

    async def _request(self, index: int, content: str) -> None:
        priority = current_priority()
        slot = take_prepaid() or await self.budget.acquire(priority)
        try:
            await self.clock.sleep(self.rtt)
            self.writes.append((self.clock.now(), index, content, priority))
        finally:
            slot.release()

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        index = len(self.versions)
        self.versions.append(content)
        await self._request(index, content)
        return index

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        assert isinstance(handle, int)
        self.versions[handle] = content
        await self._request(handle, content)

    async def delete(self, handle: object) -> None:
        raise AssertionError("nothing is deleted here")


async def chunks(clock: FakeClock, tokens: list[str], delay: float) -> AsyncIterator[ChatChunk]:
    for i, token in enumerate(tokens):
        if i:
            await clock.sleep(delay)
        yield ChatChunk(content=token, thinking="", done=False)
    yield ChatChunk(content="", thinking="", done=True, done_reason="stop", eval_count=len(tokens))


async def test_many_replies_stay_within_the_global_budget_and_stretch_evenly(clock: FakeClock) -> None:
    budget = GlobalBudget(10, clock=clock, headroom=0.0)
    channels = ChannelWriteBudget(shared=budget)
    tokens = [f" w{i}" for i in range(200)]
    sinks = [BudgetedSink(clock, budget, channel_key=500 + i) for i in range(12)]
    results = await asyncio.gather(
        *(
            relay_reply(chunks(clock, tokens, 0.05), sink, clock=clock, budget=channels, options=RelayOptions())
            for sink in sinks
        )
    )

    every = sorted(at for sink in sinks for at, *_ in sink.writes)
    for at in every:  # each write arrived within its round trip: never more than ten in any second
        assert sum(1 for other in every if at <= other < at + 1.0) <= 10
    for sink, result in zip(sinks, results, strict=True):
        assert sink.versions == ["".join(tokens)] and result.final_edit_at is not None
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(sink.writes[:-1])]
        # Twelve replies share 70 % of ten requests a second: each edits about every 1.7 s, not every 1.3 s.
        assert gaps and min(gaps) >= 12 / (10 * 0.7) - 0.01
    # Streaming edits went as edits, the first text and the final edit ahead of them.
    assert {w[3] for sink in sinks for w in sink.writes} == {Priority.FIRST, Priority.EDIT, Priority.FINAL}


async def test_a_stream_that_ends_while_its_edit_waits_makes_its_final_edit_instead(clock: FakeClock) -> None:
    budget = GlobalBudget(10, clock=clock, headroom=0.0)
    sink = BudgetedSink(clock, budget, channel_key=500)
    tokens = [f" t{i}" for i in range(20)]
    relay = asyncio.create_task(
        relay_reply(chunks(clock, tokens, 0.1), sink, clock=clock, budget=ChannelWriteBudget(shared=budget))
    )
    while not sink.writes:
        await clock.sleep(0.01)
    held = [await budget.acquire(Priority.OTHER) for _ in range(10 - budget.used(clock.now()))]  # Discord is busy
    await clock.sleep(5.0)  # the stream ended long ago; its next edit has been waiting for a slot
    for slot in held:
        slot.release()
    await relay

    assert [(index, priority) for _, index, _, priority in sink.writes] == [(0, Priority.FIRST), (0, Priority.FINAL)]
    assert sink.writes[-1][2] == "".join(tokens)  # the final text at once; no stale edit first


async def test_a_slot_taken_for_a_write_that_does_not_happen_is_given_back(clock: FakeClock) -> None:
    budget = GlobalBudget(2, clock=clock, headroom=0.0)
    slot = await budget.acquire(Priority.EDIT)
    with prepaid(slot):
        pass  # e.g. an /ask answer: its route is not budgeted, nothing took the slot
    slot.refund()
    assert budget.used(clock.now()) == 0
    used = await budget.acquire(Priority.EDIT)
    with prepaid(used):
        assert take_prepaid() is used
        assert take_prepaid() is None  # one request per slot
    used.refund()  # too late: a request went out on it
    used.release()
    assert budget.used(clock.now()) == 1


class FakeHTTP:
    """What limit_requests wraps: discord.py's HTTPClient.request."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def request(self, route: discord.http.Route, **kwargs: Any) -> Any:
        self.sent.append(route.path)
        return {"ok": True}


async def test_the_http_layer_limits_bot_token_routes_only(clock: FakeClock) -> None:
    budget = GlobalBudget(10, clock=clock, headroom=0.0)
    http = FakeHTTP()
    limit_requests(http, budget)  # type: ignore[arg-type]
    typing = discord.http.Route("POST", "/channels/{channel_id}/typing", channel_id=1)
    message = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=1)
    callback = discord.http.Route(
        "POST", "/interactions/{interaction_id}/{interaction_token}/callback", interaction_id=1, interaction_token="t"
    )

    for _ in range(10):
        await http.request(message)
    assert budget.used(clock.now()) == 10
    await http.request(callback)  # interactions are not bound by the global limit
    assert budget.used(clock.now()) == 10
    with request_priority(Priority.TYPING):
        assert await http.request(typing) is None  # no room: left out, not delayed
    assert budget.dropped == 1 and http.sent.count("/channels/{channel_id}/typing") == 0

    await clock.sleep(1.1)
    budget.first_text_due()  # a reply just started: its first text will need room
    with request_priority(Priority.TYPING):
        assert await http.request(typing) is not None  # room for both (typing gets 40 %: 4 of 10)
        budget.first_text_due()
        budget.first_text_due()
        # One typing indicator sent and three first texts to come: the typing share is spoken for.
        assert await http.request(typing) is None


async def test_a_prepaid_slot_is_used_instead_of_waiting(clock: FakeClock) -> None:
    budget = GlobalBudget(1, clock=clock, headroom=0.0)
    http = FakeHTTP()
    limit_requests(http, budget)  # type: ignore[arg-type]
    message = discord.http.Route("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=1, message_id=2)
    slot: Slot = await budget.acquire(Priority.EDIT)
    with prepaid(slot):
        await http.request(message)  # would wait a whole window if it asked for a slot of its own
    assert slot.used and budget.used(clock.now()) == 1
