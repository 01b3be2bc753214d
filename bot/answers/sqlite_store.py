"""Answer records in the settings database: the same SQLite file, connection and worker thread.

The tables come from migration 2 in bot/channel_settings/store.py (one migration list per file).
Every call here is one job on the settings store's worker thread and one transaction, so a record
and its message ids always change together, and a process killed mid-write leaves the last whole
record.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.answers.records import AnswerKind, AnswerRecord, AnswerState, AskPrompt, SettingsSnapshot
from bot.channel_settings.store import SqliteSettingsStore

_COLUMNS = (
    "answer_id",
    "answer_key",
    "generation",
    "kind",
    "guild_id",
    "channel_id",
    "requester_id",
    "prompt_author_id",
    "prompt_author_name",
    "prompt_text",
    "model",
    "settings",
    "state",
    "outcome",
    "done_reason",
    "created_at",
    "finished_at",
    "eval_count",
    "prompt_eval_count",
    "host",
    "instance",
    "answer_text",
)
# Built once from the constant column names above; every value is a bound parameter.
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM answers"  # noqa: S608
_NEWEST_FIRST = "ORDER BY generation DESC, created_at DESC LIMIT 1"
_BY_KEY = f"{_SELECT} WHERE answer_key = ? {_NEWEST_FIRST}"
_BY_MESSAGE = (
    f"{_SELECT} WHERE answer_id IN (SELECT answer_id FROM answer_messages WHERE message_id = ?) {_NEWEST_FIRST}"  # noqa: S608
)
_UNFINISHED = f"{_SELECT} WHERE state = 'streaming' ORDER BY created_at"
_UPSERT = (
    f"INSERT INTO answers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "  # noqa: S608
    f"ON CONFLICT (answer_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
)


def _time(value: datetime | None) -> str | None:
    # Fixed width and always UTC, so the text sorts in time order.
    return None if value is None else value.astimezone(UTC).isoformat(timespec="milliseconds")


class SqliteAnswerStore:
    """An AnswerStore in the tables `answers` and `answer_messages` of the settings database."""

    def __init__(self, database: SqliteSettingsStore) -> None:
        self._database = database

    async def save_answer(self, record: AnswerRecord) -> None:
        """Insert or replace the record and its message ids in one transaction."""
        row = _row(record)
        messages = [(record.answer_id, position, mid) for position, mid in enumerate(record.message_ids)]

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, row)
            conn.execute("DELETE FROM answer_messages WHERE answer_id = ?", (record.answer_id,))
            conn.executemany("INSERT INTO answer_messages (answer_id, position, message_id) VALUES (?, ?, ?)", messages)

        await self._database.run_job("save an answer record", save)

    async def answer_by_key(self, key: int) -> AnswerRecord | None:
        """The newest generation of the answer keyed by `key`."""

        def find(conn: sqlite3.Connection) -> AnswerRecord | None:
            row = conn.execute(_BY_KEY, (key,)).fetchone()
            return None if row is None else _record(conn, row)

        return await self._database.run_job("read an answer record", find, write=False)

    async def answer_by_message(self, message_id: int) -> AnswerRecord | None:
        """The newest generation whose messages include `message_id`."""

        def find(conn: sqlite3.Connection) -> AnswerRecord | None:
            row = conn.execute(_BY_MESSAGE, (message_id,)).fetchone()
            return None if row is None else _record(conn, row)

        return await self._database.run_job("read an answer record", find, write=False)

    async def unfinished_answers(self) -> list[AnswerRecord]:
        """Every record still streaming, oldest first."""

        def find(conn: sqlite3.Connection) -> list[AnswerRecord]:
            rows = conn.execute(_UNFINISHED).fetchall()
            return [_record(conn, row) for row in rows]

        return await self._database.run_job("read unfinished answer records", find, write=False)

    async def prune_answers(self, created_before: datetime) -> int:
        """Delete the records created before `created_before`, with their message ids."""
        cutoff = _time(created_before)

        def prune(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM answer_messages WHERE answer_id IN (SELECT answer_id FROM answers WHERE created_at < ?)",
                (cutoff,),
            )
            return conn.execute("DELETE FROM answers WHERE created_at < ?", (cutoff,)).rowcount

        return await self._database.run_job("prune answer records", prune)


def _row(record: AnswerRecord) -> tuple[Any, ...]:
    prompt = record.prompt
    return (
        record.answer_id,
        record.key,
        record.generation,
        record.kind.value,
        record.guild_id,
        record.channel_id,
        record.requester_id,
        prompt.author_id if prompt else None,
        prompt.author_name if prompt else None,
        prompt.text if prompt else None,
        record.model,
        json.dumps(dict(record.settings), allow_nan=False, sort_keys=True),
        record.state.value,
        record.outcome,
        record.done_reason,
        _time(record.created_at),
        _time(record.finished_at),
        record.eval_count,
        record.prompt_eval_count,
        record.host,
        record.instance,
        record.text,
    )


def _record(conn: sqlite3.Connection, row: Sequence[Any]) -> AnswerRecord:
    message_ids = tuple(
        mid
        for (mid,) in conn.execute(
            "SELECT message_id FROM answer_messages WHERE answer_id = ? ORDER BY position",
            (row[_COLUMNS.index("answer_id")],),
        )
    )
    return record_from_row(row, message_ids)


def record_from_row(row: Sequence[Any], message_ids: tuple[int, ...]) -> AnswerRecord:
    """The record from a row of `_COLUMNS` and its message ids (the PostgreSQL store reads the same columns)."""
    values = dict(zip(_COLUMNS, row, strict=True))
    prompt = None
    if values["prompt_text"] is not None:
        prompt = AskPrompt(
            author_id=values["prompt_author_id"], author_name=values["prompt_author_name"], text=values["prompt_text"]
        )
    settings: SettingsSnapshot = json.loads(values["settings"])
    finished_at = values["finished_at"]
    return AnswerRecord(
        answer_id=values["answer_id"],
        key=values["answer_key"],
        generation=values["generation"],
        kind=AnswerKind(values["kind"]),
        guild_id=values["guild_id"],
        channel_id=values["channel_id"],
        requester_id=values["requester_id"],
        prompt=prompt,
        model=values["model"],
        settings=settings,
        state=AnswerState(values["state"]),
        outcome=values["outcome"],
        done_reason=values["done_reason"],
        created_at=datetime.fromisoformat(values["created_at"]),
        finished_at=datetime.fromisoformat(finished_at) if finished_at is not None else None,
        eval_count=values["eval_count"],
        prompt_eval_count=values["prompt_eval_count"],
        host=values["host"],
        instance=values["instance"],
        text=values["answer_text"],
        message_ids=message_ids,
    )
