"""Usage figures: the store contract on every backend, the ledger, and the /usage table."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.answers.records import AnswerKind, AnswerRecord
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import SqliteSettingsStore
from bot.usage.ledger import Period, UsageLedger, UsageReport
from bot.usage.postgres_store import PostgresUsageStore
from bot.usage.report import MAX_ROWS, NAME_WIDTH, render_usage
from bot.usage.spend import Spend
from bot.usage.sqlite_store import SqliteUsageStore
from bot.usage.store import (
    DM_GUILD,
    Dimension,
    MemoryUsageStore,
    UsageAmounts,
    UsageKey,
    UsageQuery,
    UsageStore,
    UsageTotal,
)

DAY = date(2026, 3, 2)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UsageStore]:
    if request.param == "memory":
        yield MemoryUsageStore()
        return
    if request.param == "postgres":
        postgres = await PostgresSettingsStore.open(request.getfixturevalue("postgres_url"))
        try:
            yield PostgresUsageStore(postgres)
        finally:
            await postgres.close()
        return
    database = await SqliteSettingsStore.open(tmp_path / "ollacord.sqlite3")
    try:
        yield SqliteUsageStore(database)
    finally:
        await database.close()


def key(day: date = DAY, *, guild: int = 400, channel: int = 500, user: int = 200, model: str = "llama3.2") -> UsageKey:
    return UsageKey(day=day, guild_id=guild, channel_id=channel, user_id=user, model=model, host="http://gpu:11434")


def amounts(answers: int = 1, prompt: int = 100, answer: int = 10, seconds: float = 2.5) -> UsageAmounts:
    return UsageAmounts(answers=answers, prompt_tokens=prompt, answer_tokens=answer, seconds=seconds)


def query(
    by: Dimension, *, since: date = DAY, until: date = DAY, user: int | None = None, guild: int = 400
) -> UsageQuery:
    return UsageQuery(guild_id=guild, since=since, until=until, by=by, user_id=user)


# -- the store contract (every backend) ---------------------------------------------------------------------


async def test_implements_the_protocol(store: UsageStore) -> None:
    assert isinstance(store, UsageStore)


async def test_adding_to_the_same_row_adds_up(store: UsageStore) -> None:
    await store.add_usage(key(), amounts())
    await store.add_usage(key(), amounts(prompt=50, answer=5, seconds=0.5))
    assert await store.usage_totals(query(Dimension.USER)) == [UsageTotal(200, amounts(2, 150, 15, 3.0))]


async def test_totals_group_by_each_dimension_heaviest_first(store: UsageStore) -> None:
    await store.add_usage(key(user=200, channel=500, model="llama3.2"), amounts(prompt=100))
    await store.add_usage(key(user=201, channel=501, model="qwen3:8b"), amounts(prompt=300))
    await store.add_usage(key(user=201, channel=500, model="llama3.2"), amounts(prompt=50))

    assert [(t.key, t.amounts.prompt_tokens) for t in await store.usage_totals(query(Dimension.USER))] == [
        (201, 350),
        (200, 100),
    ]
    assert [(t.key, t.amounts.answers) for t in await store.usage_totals(query(Dimension.CHANNEL))] == [
        (501, 1),
        (500, 2),
    ]
    assert [t.key for t in await store.usage_totals(query(Dimension.MODEL))] == ["qwen3:8b", "llama3.2"]
    assert [t.key for t in await store.usage_totals(query(Dimension.HOST))] == ["http://gpu:11434"]


async def test_totals_keep_to_the_server_the_days_and_the_user(store: UsageStore) -> None:
    await store.add_usage(key(DAY), amounts())
    await store.add_usage(key(DAY - timedelta(days=1)), amounts())
    await store.add_usage(key(DAY - timedelta(days=7)), amounts())
    await store.add_usage(key(DAY, guild=999), amounts())
    await store.add_usage(key(DAY, user=201), amounts())

    week = query(Dimension.USER, since=DAY - timedelta(days=6))
    assert [(t.key, t.amounts.answers) for t in await store.usage_totals(week)] == [(200, 2), (201, 1)]
    assert (await store.usage_totals(query(Dimension.MODEL, user=201)))[0].amounts.answers == 1
    assert await store.usage_totals(query(Dimension.USER, guild=123)) == []


async def test_prune_drops_whole_old_days(store: UsageStore) -> None:
    for back in range(5):
        await store.add_usage(key(DAY - timedelta(days=back)), amounts())
    assert await store.prune_usage(DAY - timedelta(days=2)) == 2
    month = query(Dimension.USER, since=DAY - timedelta(days=30))
    assert (await store.usage_totals(month))[0].amounts.answers == 3


# -- the ledger ---------------------------------------------------------------------------------------------


def record(*, guild: int | None = 400, finished: datetime | None = None, host: str | None = None) -> AnswerRecord:
    return AnswerRecord(
        answer_id="a1",
        key=1,
        kind=AnswerKind.MESSAGE,
        guild_id=guild,
        channel_id=500,
        requester_id=200,
        model="llama3.2",
        created_at=datetime(2026, 3, 2, 23, 59, tzinfo=UTC),
        instance="test",
        finished_at=finished or datetime(2026, 3, 3, 0, 1, tzinfo=UTC),
        host=host,
    )


def ledger_at(store: UsageStore, now: datetime, **options: object) -> UsageLedger:
    return UsageLedger(store, now=lambda: now, default_host="http://127.0.0.1:11434", **options)  # type: ignore[arg-type]


async def test_an_answer_counts_on_the_day_it_finished_with_its_host_and_server() -> None:
    store = MemoryUsageStore()
    ledger = ledger_at(store, datetime(2026, 3, 3, 12, tzinfo=UTC))
    assert await ledger.add_answer(record(), prompt_tokens=120, answer_tokens=30, seconds=4.0)
    assert await ledger.add_answer(record(guild=None), prompt_tokens=1, answer_tokens=1, seconds=1.0)
    assert await ledger.add_answer(record(host="http://gpu-2:11434"), prompt_tokens=1, answer_tokens=1, seconds=1)

    today = await ledger.report(guild_id=400, period=Period.DAY, by=Dimension.HOST)
    assert (today.since, today.until) == (date(2026, 3, 3), date(2026, 3, 3))
    assert {t.key: t.amounts.answers for t in today.totals} == {"http://127.0.0.1:11434": 1, "http://gpu-2:11434": 1}
    assert today.overall == UsageAmounts(answers=2, prompt_tokens=121, answer_tokens=31, seconds=5.0)
    dms = await ledger.report(guild_id=DM_GUILD, period=Period.DAY, by=Dimension.USER)
    assert dms.totals[0].amounts.answers == 1


@pytest.mark.parametrize(("period", "days"), [(Period.DAY, 1), (Period.WEEK, 7), (Period.MONTH, 30)])
async def test_periods_are_whole_utc_days_ending_today(period: Period, days: int) -> None:
    ledger = ledger_at(MemoryUsageStore(), datetime(2026, 3, 31, 8, tzinfo=UTC))
    report = await ledger.report(guild_id=400, period=period, by=Dimension.USER)
    assert report.until == date(2026, 3, 31) and (report.until - report.since).days == days - 1


async def test_prune_keeps_the_retention_period() -> None:
    store = MemoryUsageStore()
    for back in range(10):
        await store.add_usage(key(DAY - timedelta(days=back)), amounts())
    ledger = ledger_at(store, datetime(2026, 3, 2, 12, tzinfo=UTC), retention_days=7)
    assert await ledger.prune() == 3
    assert await ledger.prune() == 0


class BrokenStore(MemoryUsageStore):
    async def add_usage(self, key: UsageKey, amounts: UsageAmounts) -> None:
        raise OSError("disk I/O error")


async def test_a_failing_store_never_breaks_an_answer(caplog: pytest.LogCaptureFixture) -> None:
    ledger = ledger_at(BrokenStore(), datetime(2026, 3, 3, tzinfo=UTC))
    with caplog.at_level(logging.DEBUG, logger="bot.usage.ledger"):
        assert not await ledger.add_answer(record(), prompt_tokens=1, answer_tokens=1, seconds=1)
        assert not await ledger.add_answer(record(), prompt_tokens=1, answer_tokens=1, seconds=1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk I/O error" in warnings[0].getMessage()  # once per outage


def test_spend_adds_up_requests_and_measures_the_turn() -> None:
    spend = Spend()
    assert spend.seconds_until(5.0) == 0.0
    spend.add(prompt_tokens=100, answer_tokens=None)
    spend.add(prompt_tokens=20, answer_tokens=7)
    spend.turn_started_at = 2.0
    assert (spend.prompt_tokens, spend.answer_tokens, spend.seconds_until(5.5)) == (120, 7, 3.5)


# -- the table ----------------------------------------------------------------------------------------------


def report(totals: list[UsageTotal], by: Dimension = Dimension.USER) -> UsageReport:
    return UsageReport(since=date(2026, 2, 24), until=DAY, by=by, totals=totals)


def named(by: Dimension, key: int | str) -> str:
    return {200: "Alice", 201: "Bob"}.get(key, f"user {key}") if isinstance(key, int) else str(key)


def test_the_table_has_a_row_per_group_and_a_total() -> None:
    text = render_usage(
        report([UsageTotal(200, amounts(3, 1204, 310, 42)), UsageTotal(201, amounts(1, 200, 20, 3725))]),
        whose="Test Guild",
        period=Period.WEEK,
        name_of=named,
    )
    lines = text.splitlines()
    assert lines[0] == "📊 **Test Guild** · the last 7 days (2026-02-24 – 2026-03-02, UTC) · by user"
    assert lines[3].split() == ["Alice", "3", "1,204", "310", "42s"]
    assert lines[4].split() == ["Bob", "1", "200", "20", "1h", "02m"]
    assert lines[5].split() == ["total", "4", "1,404", "330", "1h", "02m"]


def test_many_rows_and_long_names_stay_within_discords_limit() -> None:
    totals = [UsageTotal(f"model-with-a-very-long-name-{i:03d}", amounts(prompt=10_000 - i)) for i in range(40)]
    text = render_usage(report(totals, Dimension.MODEL), whose="G", period=Period.MONTH, name_of=named)
    assert len(text) <= 2000
    assert f"… and {40 - MAX_ROWS} more" in text
    assert "model-with-a-very-lon…" in text and len("model-with-a-very-lon…") == NAME_WIDTH


def test_an_empty_period_says_so() -> None:
    assert render_usage(report([]), whose="Your usage", period=Period.DAY, name_of=named).endswith(
        "No answers in that time."
    )
