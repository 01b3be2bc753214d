"""Usage in the settings database: the table `usage_daily` (migration 5 in bot/channel_settings/store.py).

Every call is one job on the settings store's worker thread and one transaction, like the answer records.
"""

from __future__ import annotations

import sqlite3
from datetime import date

from bot.channel_settings.store import SqliteSettingsStore
from bot.usage.store import Dimension, UsageAmounts, UsageKey, UsageQuery, UsageTotal, sorted_totals

__all__ = ["SqliteUsageStore"]

_ADD = (
    "INSERT INTO usage_daily (day, guild_id, channel_id, user_id, model, host, answers, prompt_tokens, "
    "answer_tokens, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (day, guild_id, channel_id, user_id, model, host) DO UPDATE SET "
    "answers = answers + excluded.answers, prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
    "answer_tokens = answer_tokens + excluded.answer_tokens, seconds = seconds + excluded.seconds"
)
# The column each dimension groups on; a fixed mapping, so the query text never holds user input.
_COLUMNS = {
    Dimension.USER: "user_id",
    Dimension.CHANNEL: "channel_id",
    Dimension.MODEL: "model",
    Dimension.HOST: "host",
}


class SqliteUsageStore:
    """A UsageStore in the table `usage_daily` of the settings database."""

    def __init__(self, database: SqliteSettingsStore) -> None:
        self._database = database

    async def add_usage(self, key: UsageKey, amounts: UsageAmounts) -> None:
        """Add `amounts` to the row `key` (creating it) in one transaction."""
        row = (
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

        def add(conn: sqlite3.Connection) -> None:
            conn.execute(_ADD, row)

        await self._database.run_job("add usage", add)

    async def usage_totals(self, query: UsageQuery) -> list[UsageTotal]:
        """The totals per group for `query`, heaviest first."""
        column = _COLUMNS[query.by]
        sql = (
            f"SELECT {column}, SUM(answers), SUM(prompt_tokens), SUM(answer_tokens), SUM(seconds) "  # noqa: S608
            "FROM usage_daily WHERE guild_id = ? AND day >= ? AND day <= ?"
        )
        values: list[int | str] = [query.guild_id, query.since.isoformat(), query.until.isoformat()]
        if query.user_id is not None:
            sql += " AND user_id = ?"
            values.append(query.user_id)
        sql += f" GROUP BY {column}"

        def read(conn: sqlite3.Connection) -> list[UsageTotal]:
            return [
                UsageTotal(
                    key=group,
                    amounts=UsageAmounts(
                        answers=int(answers),
                        prompt_tokens=int(prompt_tokens),
                        answer_tokens=int(answer_tokens),
                        seconds=float(seconds),
                    ),
                )
                for group, answers, prompt_tokens, answer_tokens, seconds in conn.execute(sql, values)
            ]

        return sorted_totals(await self._database.run_job("read usage", read, write=False))

    async def prune_usage(self, before: date) -> int:
        """Delete the rows of days before `before`."""

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM usage_daily WHERE day < ?", (before.isoformat(),)).rowcount

        return await self._database.run_job("prune usage", prune)
