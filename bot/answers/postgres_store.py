"""Answer records in PostgreSQL: the same tables (migration 2) and columns as in SQLite, on the settings pool.

The columns, the row a record becomes and the record a row becomes are shared with the SQLite store
(bot/answers/sqlite_store.py), so a column added there is stored here too once its migration has run.
Each save is one transaction: a record and its message ids always change together.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from bot.answers.records import AnswerRecord
from bot.answers.sqlite_store import _COLUMNS, _row, record_from_row
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.storage.postgres import Connection

__all__ = ["PostgresAnswerStore"]

# Built once from the constant column names; every value is a bound parameter.
_MESSAGE_IDS = "ARRAY(SELECT m.message_id FROM answer_messages m WHERE m.answer_id = a.answer_id ORDER BY m.position)"
_SELECT = f"SELECT {', '.join(f'a.{c}' for c in _COLUMNS)}, {_MESSAGE_IDS} FROM answers a"  # noqa: S608
_NEWEST_FIRST = "ORDER BY a.generation DESC, a.created_at DESC LIMIT 1"
_BY_KEY = f"{_SELECT} WHERE a.answer_key = $1 {_NEWEST_FIRST}"
_BY_MESSAGE = (
    f"{_SELECT} WHERE a.answer_id IN (SELECT answer_id FROM answer_messages WHERE message_id = $1) {_NEWEST_FIRST}"  # noqa: S608
)
_UNFINISHED = f"{_SELECT} WHERE a.state = 'streaming' ORDER BY a.created_at"
_UPSERT = (
    f"INSERT INTO answers ({', '.join(_COLUMNS)}) VALUES ({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 1))}) "  # noqa: S608
    f"ON CONFLICT (answer_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
)


def _time(value: datetime) -> str:
    # The same fixed-width UTC text as the SQLite store, so rows copy across unchanged and sort in time order.
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


class PostgresAnswerStore:
    """An AnswerStore in the tables `answers` and `answer_messages` of the PostgreSQL database."""

    def __init__(self, database: PostgresSettingsStore) -> None:
        self._database = database

    async def save_answer(self, record: AnswerRecord) -> None:
        """Insert or replace the record and its message ids in one transaction."""
        row = _row(record)
        messages = [(record.answer_id, position, mid) for position, mid in enumerate(record.message_ids)]

        async def save(conn: Connection) -> None:
            await conn.execute(_UPSERT, *row)
            await conn.execute("DELETE FROM answer_messages WHERE answer_id = $1", record.answer_id)
            if messages:
                await conn.executemany(
                    "INSERT INTO answer_messages (answer_id, position, message_id) VALUES ($1, $2, $3)", messages
                )

        await self._database.run_job("save an answer record", save)

    async def answer_by_key(self, key: int) -> AnswerRecord | None:
        """The newest generation of the answer keyed by `key`."""

        async def find(conn: Connection) -> AnswerRecord | None:
            row = await conn.fetchrow(_BY_KEY, key)
            return None if row is None else _record(row)

        return await self._database.run_job("read an answer record", find, write=False)

    async def answer_by_message(self, message_id: int) -> AnswerRecord | None:
        """The newest generation whose messages include `message_id`."""

        async def find(conn: Connection) -> AnswerRecord | None:
            row = await conn.fetchrow(_BY_MESSAGE, message_id)
            return None if row is None else _record(row)

        return await self._database.run_job("read an answer record", find, write=False)

    async def unfinished_answers(self) -> list[AnswerRecord]:
        """Every record still streaming, oldest first."""

        async def find(conn: Connection) -> list[AnswerRecord]:
            return [_record(row) for row in await conn.fetch(_UNFINISHED)]

        return await self._database.run_job("read unfinished answer records", find, write=False)

    async def prune_answers(self, created_before: datetime) -> int:
        """Delete the records created before `created_before`, with their message ids."""
        cutoff = _time(created_before)

        async def prune(conn: Connection) -> int:
            await conn.execute(
                "DELETE FROM answer_messages WHERE answer_id IN (SELECT answer_id FROM answers WHERE created_at < $1)",
                cutoff,
            )
            status = await conn.execute("DELETE FROM answers WHERE created_at < $1", cutoff)
            return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

        return await self._database.run_job("prune answer records", prune)


def _record(row: asyncpg.Record) -> AnswerRecord:
    values = tuple(row)
    return record_from_row(values[:-1], tuple(values[-1]))
