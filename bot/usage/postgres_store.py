"""Usage in PostgreSQL: the table `usage_daily` (migration 5, translated) on the settings pool.

The statements, the row a key and its amounts become and the total a result row becomes are shared with
the SQLite store (bot/usage/sqlite_store.py): the same columns, the day as the same ISO text (fixed width,
so it compares in time order under any collation: only digits differ, the hyphens sit alike). Each call is
one transaction.

Adding is one `INSERT … ON CONFLICT DO UPDATE` that adds to the stored amounts, so instances writing the
same row at once each count: PostgreSQL either inserts the row or locks it and updates its latest version,
never losing one of the two. Unlike the other stores' upserts, this write must not run twice, and the
database runs a job once more when its connection is lost (bot/storage/postgres.py). When the connection is
lost after the statement went through, the first attempt may have counted or not; the retry waits for that
transaction to end, asks the server what became of it (pg_xact_status, made for this) and adds only if it
did not commit.
"""

from __future__ import annotations

from datetime import date

from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import StoreError
from bot.storage.postgres import Connection
from bot.usage.sqlite_store import _ADD_CONFLICT, _AMOUNT_COLUMNS, _KEY_COLUMNS, _row, _total, _totals_sql
from bot.usage.store import UsageAmounts, UsageKey, UsageQuery, UsageTotal, sorted_totals

__all__ = ["PostgresUsageStore"]

_ALL_COLUMNS = _KEY_COLUMNS + _AMOUNT_COLUMNS
# Returns the id of the transaction that wrote, so a retry can tell whether it committed.
_ADD = (
    f"INSERT INTO usage_daily ({', '.join(_ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_ALL_COLUMNS) + 1))}) {_ADD_CONFLICT} "
    "RETURNING pg_current_xact_id()"
)
_STATUS = "SELECT pg_xact_status($1)"


class PostgresUsageStore:
    """A UsageStore in the table `usage_daily` of the PostgreSQL database."""

    def __init__(self, database: PostgresSettingsStore) -> None:
        self._database = database

    async def add_usage(self, key: UsageKey, amounts: UsageAmounts) -> None:
        """Add `amounts` to the row `key` (creating it) in one transaction, once even if the connection drops."""
        row = _row(key, amounts)
        nothing = _row(key, UsageAmounts())
        # The transaction of the attempt whose statement went through (its COMMIT may not have).
        written: list[int] = []

        async def add(conn: Connection) -> None:
            if written:
                # Adding nothing to the row waits until the lost attempt's transaction, which wrote it, has ended.
                await conn.fetchval(_ADD, *nothing)
                status = await conn.fetchval(_STATUS, written[-1])
                if status == "committed":
                    return
                if status != "aborted":
                    raise StoreError(
                        f"database {self._database.shown}: could not tell whether the usage was added (the "
                        f"connection was lost while it was saved, and PostgreSQL says its transaction is {status})"
                    )
            written.append(int(await conn.fetchval(_ADD, *row)))

        await self._database.run_job("add usage", add)

    async def usage_totals(self, query: UsageQuery) -> list[UsageTotal]:
        """The totals per group for `query`, heaviest first."""
        sql, values = _totals_sql(query, lambda n: f"${n}")

        async def read(conn: Connection) -> list[UsageTotal]:
            return [_total(tuple(row)) for row in await conn.fetch(sql, *values)]

        return sorted_totals(await self._database.run_job("read usage", read, write=False))

    async def prune_usage(self, before: date) -> int:
        """Delete the rows of days before `before`."""

        async def prune(conn: Connection) -> int:
            status = await conn.execute("DELETE FROM usage_daily WHERE day < $1", before.isoformat())
            return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

        return await self._database.run_job("prune usage", prune)
