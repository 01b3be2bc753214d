"""The active/standby lock on a real PostgreSQL: hand-over, a vanished holder, a split network.

The property every test checks where it matters: when a standby becomes active, the previous holder
may no longer write to Discord (`may_write()` is False), whatever happened to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.answers.book import AnswerBook
from bot.answers.records import AnswerKind, AnswerRecord
from bot.answers.store import MemoryAnswerStore
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.leadership import Leadership, live_instances, lock_key_for
from tests.fakes.tcp_proxy import TcpProxy

# Long enough that a loaded 2-core machine does not miss renewals by accident, short for the suite.
LEASE = 3.0
GROUP = "auto"
KEY = lock_key_for("fake-token", GROUP)


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[PostgresSettingsStore]:
    store = await PostgresSettingsStore.open(postgres_url)  # creates ollacord_leaders
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def instances(database: PostgresSettingsStore) -> AsyncIterator[Callable[..., Leadership]]:
    made: list[Leadership] = []

    def make(name: str, dsn: str | None = None) -> Leadership:
        leadership = Leadership(
            dsn or database.database.dsn,
            lock_key=KEY,
            shard_group=GROUP,
            instance=f"{name}/run",
            name=name,
            lease=LEASE,
        )
        made.append(leadership)
        return leadership

    yield make
    for leadership in made:
        await leadership.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_one_is_active_the_other_waits_and_takes_over_at_once_on_hand_over(
    instances: Callable[..., Leadership], database: PostgresSettingsStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.leadership")
    first, second = instances("bot-a"), instances("bot-b")
    await first.acquire()
    assert first.status().active and first.may_write()
    waiting = asyncio.create_task(second.acquire())
    await wait_until(lambda: second.status().active_instance == "bot-a")
    assert not second.status().active and not waiting.done()
    assert await live_instances(database, LEASE) == {"bot-a/run"}

    await first.release()
    await asyncio.wait_for(waiting, 20)
    assert second.status().active and second.may_write() and not first.may_write()
    assert "did not hand over" not in caplog.text  # a graceful hand-over is taken without waiting
    assert await live_instances(database, LEASE) == {"bot-b/run"}


def through(proxy: TcpProxy, dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))


async def proxy_to(dsn: str) -> TcpProxy:
    parts = urlsplit(dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    return proxy


async def terminate_holder(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        pid = int(await conn.fetchval("SELECT backend_pid FROM ollacord_leaders WHERE lock_key = $1", KEY))
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
        return pid
    finally:
        await conn.close()


async def holder_pid(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT backend_pid FROM ollacord_leaders WHERE lock_key = $1", KEY))
    finally:
        await conn.close()


async def test_a_holder_whose_session_ends_gets_the_lock_back_when_nobody_took_it(
    instances: Callable[..., Leadership], database: PostgresSettingsStore
) -> None:
    """A database restart or an administrator ends the session: the instance stays active, on a new session."""
    first = instances("bot-a")
    await first.acquire()
    old_pid = await terminate_holder(database.database.dsn)
    async with asyncio.timeout(20):
        while await holder_pid(database.database.dsn) == old_pid:
            await asyncio.sleep(0.05)
    assert not first.lost.is_set() and first.may_write()
    assert await live_instances(database, LEASE) == {"bot-a/run"}


async def test_a_holder_cut_off_whose_session_ends_has_stopped_before_the_standby_is_active(
    instances: Callable[..., Leadership], database: PostgresSettingsStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The server frees the lock at once, while the holder, cut off, cannot learn it: the standby waits it out."""
    caplog.set_level(logging.INFO, logger="bot.leadership")
    dsn = database.database.dsn
    proxy = await proxy_to(dsn)
    first, second = instances("bot-a", through(proxy, dsn)), instances("bot-b")
    try:
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        await wait_until(lambda: second.status().active_instance == "bot-a")
        proxy.freeze()
        await terminate_holder(dsn)
        await asyncio.wait_for(waiting, 20)

        assert not first.may_write(), "the old holder could still write when the new one became active"
        assert first.lost.is_set() and second.may_write()
        assert "did not hand over" in caplog.text
    finally:
        await proxy.close()


async def test_a_split_network_never_leaves_two_writers(
    instances: Callable[..., Leadership], database: PostgresSettingsStore
) -> None:
    """The active instance's packets stop arriving and nothing errors: it stops itself; the server frees the lock."""
    dsn = database.database.dsn
    proxy = await proxy_to(dsn)
    first, second = instances("bot-a", through(proxy, dsn)), instances("bot-b")
    try:
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        await wait_until(lambda: second.status().active_instance == "bot-a")
        moments: list[tuple[bool, bool]] = []  # (first may write, second active), sampled throughout

        def sample() -> bool:
            moments.append((first.may_write(), second.status().active))
            return waiting.done()

        proxy.freeze()
        await wait_until(sample, 30)
        await waiting
        assert first.lost.is_set() and "could not be confirmed" in first.lost_reason
        assert not any(old and new for old, new in moments), "both could write at once"
        assert not first.may_write() and second.may_write()
    finally:
        await proxy.close()


async def test_live_instances_are_the_holders_and_those_within_their_lease(
    instances: Callable[..., Leadership], database: PostgresSettingsStore
) -> None:
    dsn = database.database.dsn
    proxy = await proxy_to(dsn)
    first = instances("bot-a", through(proxy, dsn))
    await first.acquire()
    assert await live_instances(database, LEASE) == {"bot-a/run"}
    conn = await asyncpg.connect(dsn)
    try:
        proxy.freeze()
        await terminate_holder(dsn)
        # No longer holding, but its lease may still run: still counted as alive, its answers left alone.
        assert await live_instances(database, LEASE) == {"bot-a/run"}
        await conn.execute("UPDATE ollacord_leaders SET renewed_at = renewed_at - interval '1 minute'")
        assert await live_instances(database, LEASE) == set()
    finally:
        await conn.close()
        await proxy.close()


def streaming(answer_id: str, instance: str) -> AnswerRecord:
    return AnswerRecord(
        answer_id=answer_id,
        key=hash(answer_id) % 10_000,
        kind=AnswerKind.MESSAGE,
        guild_id=400,
        channel_id=500,
        requester_id=200,
        model="m",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        instance=instance,
    )


async def test_only_answers_of_dead_instances_are_finished() -> None:
    store = MemoryAnswerStore()
    for answer_id, instance in (("mine", "me/1"), ("live", "other-group/2"), ("dead", "crashed/3")):
        await store.save_answer(streaming(answer_id, instance))

    async def alive() -> set[str]:
        return {"me/1", "other-group/2"}

    book = AnswerBook(store, instance="me/1", live_instances=alive)
    assert [record.answer_id for record in await book.left_behind()] == ["dead"]

    async def unknown() -> set[str]:
        raise ConnectionError("database down")

    cautious = AnswerBook(store, instance="me/1", live_instances=unknown)
    assert await cautious.left_behind() == []  # can't tell who is alive: touch nothing
