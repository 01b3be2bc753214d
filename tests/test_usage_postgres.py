"""Usage figures in PostgreSQL beyond the shared contract (tests/test_usage.py): instances adding to one row at
once, an add whose connection is lost around its COMMIT, and `store copy` carrying the figures both ways."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import asyncpg.transaction
import pytest

from bot.__main__ import run_store_copy, usage_store_for
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import SettingsStore, SqliteSettingsStore
from bot.usage.postgres_store import PostgresUsageStore
from bot.usage.store import Dimension, UsageAmounts, UsageKey, UsageQuery, UsageTotal

DAY = date(2026, 3, 2)
SNOWFLAKE = 2**63 - 1
KEY = UsageKey(day=DAY, guild_id=400, channel_id=500, user_id=200, model="llama3.2", host="http://gpu:11434")
ONE = UsageAmounts(answers=1, prompt_tokens=100, answer_tokens=10, seconds=2.5)


def by_user(guild: int = 400, since: date = DAY, until: date = DAY) -> UsageQuery:
    return UsageQuery(guild_id=guild, since=since, until=until, by=Dimension.USER)


@pytest.fixture
async def instances(postgres_url: str) -> AsyncIterator[tuple[PostgresSettingsStore, PostgresSettingsStore]]:
    """Two instances' connections to one database: each its own pool, as two bot processes have."""
    first = await PostgresSettingsStore.open(postgres_url)
    second = await PostgresSettingsStore.open(postgres_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_instances_adding_to_one_row_at_once_all_count(
    instances: tuple[PostgresSettingsStore, PostgresSettingsStore],
) -> None:
    stores = [PostgresUsageStore(database) for database in instances]
    rounds = 20
    # The row does not exist yet: the first adds of both instances race to create it, the rest to update it.
    await asyncio.gather(*(store.add_usage(KEY, ONE) for _ in range(rounds) for store in stores))
    expected = UsageAmounts(
        answers=2 * rounds, prompt_tokens=200 * rounds, answer_tokens=20 * rounds, seconds=5.0 * rounds
    )
    for store in stores:
        assert await store.usage_totals(by_user()) == [UsageTotal(200, expected)]


# -- a connection lost around the COMMIT ----------------------------------------------------------------------
#
# The database runs a job once more when its connection is lost (bot/storage/postgres.py). For an add, that
# second run must not count the answer twice when the first one did commit, nor drop it when it did not.

Commit = Callable[[asyncpg.transaction.Transaction], Awaitable[None]]


def lose_the_connection_at_the_next_commit(monkeypatch: pytest.MonkeyPatch, *, committed: bool) -> list[bool]:
    """The next COMMIT is sent (or not) and then the connection dies before its answer is read; return a marker
    list that gets one entry when that happened."""
    original: Commit = asyncpg.transaction.Transaction._Transaction__commit  # type: ignore[attr-defined]
    happened: list[bool] = []

    async def commit(transaction: asyncpg.transaction.Transaction) -> None:
        if happened:
            await original(transaction)
            return
        happened.append(True)
        if committed:
            await original(transaction)
        connection: Any = transaction._connection  # type: ignore[attr-defined]
        connection.terminate()
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(asyncpg.transaction.Transaction, "_Transaction__commit", commit)
    return happened


@pytest.mark.parametrize("committed", [True, False], ids=["commit-landed", "commit-never-sent"])
async def test_an_add_whose_connection_is_lost_at_commit_counts_once(
    instances: tuple[PostgresSettingsStore, PostgresSettingsStore], monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    store = PostgresUsageStore(instances[0])
    await store.add_usage(KEY, ONE)
    happened = lose_the_connection_at_the_next_commit(monkeypatch, committed=committed)
    await store.add_usage(KEY, ONE)
    assert happened, "the connection was not lost: the test did not test anything"
    monkeypatch.undo()

    [total] = await PostgresUsageStore(instances[1]).usage_totals(by_user())
    assert total.amounts == ONE + ONE


class FirstAttemptLeftOpen:
    """Runs a job as the database does when the connection is lost after the job, while its COMMIT is on the way:
    the first attempt's transaction stays open on `first` (the server has not seen the end of it yet), and the
    job runs once more in a transaction on `second`."""

    shown = "the test database"

    def __init__(self, first: asyncpg.Connection[Any], second: asyncpg.Connection[Any]) -> None:
        self.first = first
        self.second = second

    async def run_job(self, action: str, job: Callable[[Any], Awaitable[None]], *, write: bool = True) -> None:
        await self.first.execute("BEGIN")
        await job(self.first)
        async with self.second.transaction():
            await job(self.second)


@pytest.mark.parametrize("row", ["new-row", "existing-row"])
@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
async def test_a_retry_waits_for_the_lost_attempt_to_end_and_counts_once(
    instances: tuple[PostgresSettingsStore, PostgresSettingsStore], postgres_url: str, row: str, end: str
) -> None:
    reader = PostgresUsageStore(instances[0])
    if row == "existing-row":
        await reader.add_usage(KEY, ONE)
    first, second = await asyncpg.connect(postgres_url), await asyncpg.connect(postgres_url)
    try:
        adding = asyncio.create_task(PostgresUsageStore(FirstAttemptLeftOpen(first, second)).add_usage(KEY, ONE))  # type: ignore[arg-type]

        async def retry_waits_for_a_lock(conn: Any) -> bool:
            state = await conn.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", second.get_server_pid()
            )
            return bool(state == "Lock")

        async with asyncio.timeout(10):
            while not await instances[1].run_job("look", retry_waits_for_a_lock, write=False):
                if adding.done():
                    await adding  # it decided without waiting: raise what it raised
                    pytest.fail("the retry did not wait for the lost attempt's transaction to end")
                await asyncio.sleep(0.005)
        # The lost attempt ends now: its late COMMIT arrives, or the server rolls it back.
        await first.execute(end)
        await adding
    finally:
        await first.close()
        await second.close()

    [total] = await reader.usage_totals(by_user())
    assert total.amounts == (ONE + ONE if row == "existing-row" else ONE)


# -- store copy -------------------------------------------------------------------------------------------------

FIGURES = [
    (KEY, ONE),
    (KEY, UsageAmounts(answers=2, prompt_tokens=7, answer_tokens=3, seconds=0.5)),  # the same row: 3.0 s in all
    (UsageKey(DAY - timedelta(days=1), 0, 510, SNOWFLAKE, "qwen3:8b", "http://127.0.0.1:11434"), ONE),  # a DM
    (UsageKey(DAY, SNOWFLAKE, SNOWFLAKE, 201, "llama3.2", ""), UsageAmounts(1, 2**40, 5, 12.25)),
]


async def fill(store: SettingsStore) -> None:
    usage = usage_store_for(store)
    for key, amounts in FIGURES:
        await usage.add_usage(key, amounts)


async def figures(store: SettingsStore) -> list[list[UsageTotal]]:
    """Every server's week, by each dimension."""
    usage = usage_store_for(store)
    return [
        await usage.usage_totals(UsageQuery(guild_id=guild, since=DAY - timedelta(days=6), until=DAY, by=by))
        for guild in (400, 0, SNOWFLAKE)
        for by in Dimension
    ]


async def test_store_copy_carries_the_usage_figures_both_ways(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "old" / "ollacord.sqlite3"
    old = await SqliteSettingsStore.open(source)
    await fill(old)
    expected = await figures(old)
    await old.close()
    assert all(expected), "every query should find figures, or the comparison proves little"

    out = io.StringIO()
    assert await run_store_copy(f"sqlite:///{source}", postgres_url, out) == 0
    assert "3 usage_daily" in out.getvalue()  # rows: the two adds to KEY are one row
    postgres = await PostgresSettingsStore.open(postgres_url)
    try:
        assert await figures(postgres) == expected
    finally:
        await postgres.close()

    back = tmp_path / "back" / "ollacord.sqlite3"
    assert await run_store_copy(postgres_url, f"sqlite:///{back}", io.StringIO()) == 0
    again = await SqliteSettingsStore.open(back)
    try:
        assert await figures(again) == expected
        await usage_store_for(again).add_usage(KEY, ONE)  # a copied row takes further adds
        assert (await usage_store_for(again).usage_totals(by_user()))[0].amounts.answers == 4
    finally:
        await again.close()
