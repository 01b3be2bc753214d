"""Where answer records are kept: the interface every backend implements, and the in-memory twin.

The SQLite backend (bot/answers/sqlite_store.py) keeps them in the settings database; a PostgreSQL
backend can implement the same protocol, and tests/test_answer_store.py runs one contract suite on
every backend. Method names carry "answer" so one store class can implement this protocol next to
the settings one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.answers.records import AnswerRecord


@runtime_checkable
class AnswerStore(Protocol):
    """Persistent answer records."""

    async def save_answer(self, record: AnswerRecord) -> None:
        """Insert the record, or replace the one with the same answer_id, message ids included, at once."""
        ...

    async def answer_by_key(self, key: int) -> AnswerRecord | None:
        """The newest generation of the answer keyed by `key`."""
        ...

    async def answer_by_message(self, message_id: int) -> AnswerRecord | None:
        """The newest generation whose messages include `message_id`."""
        ...

    async def unfinished_answers(self) -> list[AnswerRecord]:
        """Every record still in state streaming, oldest first."""
        ...

    async def prune_answers(self, created_before: datetime) -> int:
        """Delete the records created before `created_before`; return how many went."""
        ...


def _newest(records: list[AnswerRecord]) -> AnswerRecord | None:
    return max(records, key=lambda r: (r.generation, r.created_at), default=None)


class MemoryAnswerStore:
    """An AnswerStore in a dict: for tests, and to keep the interface honest about backends."""

    def __init__(self) -> None:
        self._records: dict[str, AnswerRecord] = {}

    async def save_answer(self, record: AnswerRecord) -> None:
        """Insert or replace the record."""
        # Copies in and out, like a database: nobody edits a stored record underneath.
        self._records[record.answer_id] = replace(record, settings=dict(record.settings))

    async def answer_by_key(self, key: int) -> AnswerRecord | None:
        """The newest generation of the answer keyed by `key`."""
        return self._copy(_newest([r for r in self._records.values() if r.key == key]))

    async def answer_by_message(self, message_id: int) -> AnswerRecord | None:
        """The newest generation whose messages include `message_id`."""
        return self._copy(_newest([r for r in self._records.values() if message_id in r.message_ids]))

    async def unfinished_answers(self) -> list[AnswerRecord]:
        """Every record still streaming, oldest first."""
        found = sorted((r for r in self._records.values() if r.streaming), key=lambda r: r.created_at)
        return [replace(r, settings=dict(r.settings)) for r in found]

    async def prune_answers(self, created_before: datetime) -> int:
        """Delete the records created before `created_before`."""
        old = [answer_id for answer_id, r in self._records.items() if r.created_at < created_before]
        for answer_id in old:
            del self._records[answer_id]
        return len(old)

    @staticmethod
    def _copy(record: AnswerRecord | None) -> AnswerRecord | None:
        return None if record is None else replace(record, settings=dict(record.settings))
