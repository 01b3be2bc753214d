"""Usage in the settings database: the table `usage_daily` (migration 5 in bot/channel_settings/store.py).

Every call is one job on the settings store's worker thread and one transaction, like the answer records.
The statements, the row a key and its amounts become and the total a result row becomes are shared with
the PostgreSQL store (bot/usage/postgres_store.py), so both backends keep and read the same columns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from bot.channel_settings.store import SqliteSettingsStore
from bot.usage.store import Dimension, UsageAmounts, UsageKey, UsageQuery, UsageTotal, sorted_totals

__all__ = ["SqliteUsageStore"]

# The primary key of usage_daily, then the amounts added to it: the order of `_row`.
_KEY_COLUMNS = ("day", "guild_id", "channel_id", "user_id", "model", "host")
_AMOUNT_COLUMNS = ("answers", "prompt_tokens", "answer_tokens", "seconds")
# Insert the row, or add the amounts to the stored ones: one statement, so two writers of the same row both count.
_ADD_CONFLICT = f"ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET " + ", ".join(
    f"{column} = usage_daily.{column} + excluded.{column}" for column in _AMOUNT_COLUMNS
)
# Built once from the constant column names; every value is a bound parameter.
_ADD = (
    f"INSERT INTO usage_daily ({', '.join(_KEY_COLUMNS + _AMOUNT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _KEY_COLUMNS + _AMOUNT_COLUMNS)}) {_ADD_CONFLICT}"
)
# The column each dimension groups on; a fixed mapping, so the query text never holds user input.
_COLUMNS = {
    Dimension.USER: "user_id",
    Dimension.CHANNEL: "channel_id",
    Dimension.MODEL: "model",
    Dimension.HOST: "host",
}


def _row(key: UsageKey, amounts: UsageAmounts) -> tuple[str | int | float, ...]:
    """The values of `_KEY_COLUMNS` and `_AMOUNT_COLUMNS` (the day as ISO text, which sorts in time order)."""
    return (
        key.day.isoformat(),
        key.guild_id,
        key.channel_id,
        key.user_id,
        key.model,
        key.host,
        amounts.answers,
        amounts.prompt_tokens,
        amounts.answer_tokens,
        amounts.seconds,
    )


def _totals_sql(query: UsageQuery, mark: Callable[[int], str]) -> tuple[str, list[int | str]]:
    """The statement reading `query`'s totals and its values; `mark(n)` is the n-th (1-based) placeholder."""
    column = _COLUMNS[query.by]
    sql = (
        f"SELECT {column}, SUM(answers), SUM(prompt_tokens), SUM(answer_tokens), SUM(seconds) "  # noqa: S608
        f"FROM usage_daily WHERE guild_id = {mark(1)} AND day >= {mark(2)} AND day <= {mark(3)}"
    )
    values: list[int | str] = [query.guild_id, query.since.isoformat(), query.until.isoformat()]
    if query.user_id is not None:
        values.append(query.user_id)
        sql += f" AND user_id = {mark(len(values))}"
    return f"{sql} GROUP BY {column}", values


def _total(row: Sequence[Any]) -> UsageTotal:
    """The total of one result row of `_totals_sql` (PostgreSQL sums integers as numeric: made int again)."""
    group, answers, prompt_tokens, answer_tokens, seconds = row
    return UsageTotal(
        key=group,
        amounts=UsageAmounts(
            answers=int(answers),
            prompt_tokens=int(prompt_tokens),
            answer_tokens=int(answer_tokens),
            seconds=float(seconds),
        ),
    )


class SqliteUsageStore:
    """A UsageStore in the table `usage_daily` of the settings database."""

    def __init__(self, database: SqliteSettingsStore) -> None:
        self._database = database

    async def add_usage(self, key: UsageKey, amounts: UsageAmounts) -> None:
        """Add `amounts` to the row `key` (creating it) in one transaction."""
        row = _row(key, amounts)

        def add(conn: sqlite3.Connection) -> None:
            conn.execute(_ADD, row)

        await self._database.run_job("add usage", add)

    async def usage_totals(self, query: UsageQuery) -> list[UsageTotal]:
        """The totals per group for `query`, heaviest first."""
        sql, values = _totals_sql(query, lambda _: "?")

        def read(conn: sqlite3.Connection) -> list[UsageTotal]:
            return [_total(row) for row in conn.execute(sql, values)]

        return sorted_totals(await self._database.run_job("read usage", read, write=False))

    async def prune_usage(self, before: date) -> int:
        """Delete the rows of days before `before`."""

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM usage_daily WHERE day < ?", (before.isoformat(),)).rowcount

        return await self._database.run_job("prune usage", prune)
