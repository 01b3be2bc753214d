"""The answer book: the lifecycle of answer records, kept so that a failing store never holds up an answer.

Every change to a record is a whole-record save handed to one writer task. Saves of one record land
in order; when several wait, only the newest is written (latest wins, like the relay's edits). Callers
that need a save to have landed (the first message of an answer, the final state) wait for it at most
`write_timeout` seconds; every other change is not waited for. A failed or slow store is logged, and
the answer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from bot.answers.records import (
    INTERRUPTED,
    AnswerKind,
    AnswerRecord,
    AnswerState,
    AskPrompt,
    SettingsSnapshot,
    utc_now,
)
from bot.answers.store import AnswerStore

log = logging.getLogger(__name__)

T = TypeVar("T")

# Records older than this are deleted at start-up and once a day. Long enough to regenerate or continue
# any answer people still scroll back to, and for monthly usage figures; short enough that a busy bot's
# table stays small: 1,000 answers a day keep ~30,000 rows, well under 1 KB each unless the settings
# used carry a long system prompt (a few tens of MB at worst).
RETENTION = timedelta(days=30)
# How long an answer waits for a save it needs before it goes on without it.
WRITE_TIMEOUT = 5.0


class AnswerBook:
    """Starts, updates and finishes answer records; finds them by key or by any of their messages."""

    def __init__(
        self,
        store: AnswerStore,
        *,
        now: Callable[[], datetime] = utc_now,
        instance: str | None = None,
        write_timeout: float = WRITE_TIMEOUT,
        retention: timedelta = RETENTION,
        live_instances: Callable[[], Awaitable[Collection[str]]] | None = None,
    ) -> None:
        """`live_instances`: where several instances share the store, which of them may still be writing answers."""
        self.store = store
        self.live_instances = live_instances
        self.instance = instance or uuid.uuid4().hex
        self.now = now
        self.write_timeout = write_timeout
        self.retention = retention
        self._writer = _LatestWinsWriter(store.save_answer)

    def start(
        self,
        *,
        key: int,
        kind: AnswerKind,
        guild_id: int | None,
        channel_id: int,
        requester_id: int,
        model: str,
        settings: SettingsSnapshot,
        prompt: AskPrompt | None = None,
        message_ids: Iterable[int] = (),
        previous: AnswerRecord | None = None,
    ) -> LiveAnswer:
        """A new record in state streaming, being saved; `previous` is the generation it regenerates."""
        record = AnswerRecord(
            answer_id=uuid.uuid4().hex,
            key=key,
            generation=previous.generation + 1 if previous is not None else 0,
            kind=kind,
            guild_id=guild_id,
            channel_id=channel_id,
            requester_id=requester_id,
            prompt=prompt,
            model=model,
            settings=dict(settings),
            message_ids=tuple(message_ids),
            created_at=self.now(),
            instance=self.instance,
        )
        return LiveAnswer(self, record)

    async def find_by_key(self, key: int) -> AnswerRecord | None:
        """The newest generation of the answer keyed by `key` (None if unknown or the store fails)."""
        return await self._read(self.store.answer_by_key(key), f"answer {key}")

    async def find_by_message(self, message_id: int) -> AnswerRecord | None:
        """The newest answer showing `message_id` (None if unknown or the store fails)."""
        return await self._read(self.store.answer_by_message(message_id), f"the answer of message {message_id}")

    async def left_behind(self) -> list[AnswerRecord]:
        """Answers other processes left in state streaming (they died, or were killed, while writing)."""
        found = await self._read(self.store.unfinished_answers(), "unfinished answers")
        others = [record for record in found or [] if record.instance != self.instance]
        if others and self.live_instances is not None:
            # Another active instance (another group of shards, or one still within its lease) is writing
            # its own answers: only what a dead one left is ours to finish. Unknown means touch nothing.
            live = await self._read(self.live_instances(), "which instances are alive")
            if live is None:
                return []
            others = [record for record in others if record.instance not in live]
        return others

    async def finish_left_behind(self, close_out: Callable[[AnswerRecord], Awaitable[Sequence[int]]]) -> int:
        """Give every answer a dead process left streaming its final state; return how many were finished.

        `close_out` puts the answer's messages in their final state and returns the message ids the
        answer ends up with. If it raises, the record stays unfinished and the next start tries again.
        """
        finished = 0
        for record in await self.left_behind():
            try:
                message_ids = tuple(await close_out(record))
            except Exception as exc:
                log.warning(
                    "could not finish answer %s left streaming (%s); trying again at the next start",
                    record.key,
                    str(exc) or type(exc).__name__,
                )
                log.debug("finishing answer %s failed", record.key, exc_info=True)
                continue
            interrupted = replace(
                record,
                state=AnswerState.FINISHED,
                outcome=INTERRUPTED,
                finished_at=self.now(),
                message_ids=message_ids,
            )
            if await self.save_and_wait(interrupted):
                finished += 1
        if finished:
            log.info("finished %d answer(s) an earlier run left streaming", finished)
        return finished

    async def prune(self) -> int:
        """Delete records older than the retention period; return how many went (0 if the store fails)."""
        removed = await self._read(self.store.prune_answers(self.now() - self.retention), "old answer records")
        if removed:
            log.info("pruned %d answer record(s) older than %d days", removed, self.retention.days)
        return removed or 0

    def save(self, record: AnswerRecord) -> asyncio.Future[bool]:
        """Queue a save of `record`; the future says whether it landed."""
        return self._writer.submit(record)

    async def save_and_wait(self, record: AnswerRecord) -> bool:
        """Save `record` and wait (at most write_timeout) until it lands; False if it did not."""
        return await self.wait_for(self.save(record), record)

    async def wait_for(self, saved: asyncio.Future[bool], record: AnswerRecord) -> bool:
        """Wait at most write_timeout for a queued save; the save goes on in the background after that."""
        try:
            return await asyncio.wait_for(asyncio.shield(saved), self.write_timeout)
        except TimeoutError:
            log.warning(
                "answer record %s (answer %s) not saved within %.0f s; going on without it",
                record.answer_id,
                record.key,
                self.write_timeout,
            )
            return False

    async def flush(self) -> None:
        """Wait (at most write_timeout) until every queued save has been tried."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writer.idle(), self.write_timeout)

    async def _read(self, lookup: Awaitable[T], what: str) -> T | None:
        try:
            return await asyncio.wait_for(lookup, self.write_timeout)
        except Exception as exc:
            log.warning("could not read %s from the answer records: %s", what, str(exc) or type(exc).__name__)
            return None


class LiveAnswer:
    """The record of an answer this process is writing, kept up to date as it goes."""

    def __init__(self, book: AnswerBook, record: AnswerRecord) -> None:
        self.book = book
        self.record = record
        self._first_save = book.save(record)

    async def saved(self) -> bool:
        """Wait until the record's first save landed (at most write_timeout); False if it did not."""
        return await self.book.wait_for(self._first_save, self.record)

    def posted(self, message_id: int) -> None:
        """A message of the answer was posted."""
        if message_id not in self.record.message_ids:
            self._update(replace(self.record, message_ids=(*self.record.message_ids, message_id)))

    def removed(self, message_id: int) -> None:
        """A message of the answer was deleted."""
        if message_id in self.record.message_ids:
            kept = tuple(mid for mid in self.record.message_ids if mid != message_id)
            self._update(replace(self.record, message_ids=kept))

    async def finish(
        self,
        *,
        outcome: str,
        done_reason: str | None = None,
        eval_count: int | None = None,
        prompt_eval_count: int | None = None,
        text: str | None = None,
        host: str | None = None,
    ) -> bool:
        """The answer ended: record how (and which Ollama host answered), and wait until that is saved."""
        self.record = replace(
            self.record,
            state=AnswerState.FINISHED,
            outcome=outcome,
            done_reason=done_reason,
            eval_count=eval_count,
            prompt_eval_count=prompt_eval_count,
            text=text,
            finished_at=self.book.now(),
            host=host if host is not None else self.record.host,
        )
        return await self.book.save_and_wait(self.record)

    def _update(self, record: AnswerRecord) -> None:
        self.record = record
        self.book.save(record)


class _LatestWinsWriter:
    """Writes records one at a time on one task; a record's newest snapshot replaces an older one still waiting."""

    def __init__(self, save: Callable[[AnswerRecord], Awaitable[None]]) -> None:
        self._save = save
        self._waiting: dict[str, tuple[AnswerRecord, list[asyncio.Future[bool]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def submit(self, record: AnswerRecord) -> asyncio.Future[bool]:
        saved: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        _, futures = self._waiting.get(record.answer_id, (record, []))
        self._waiting[record.answer_id] = (record, [*futures, saved])
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="answer-records-writer")
        return saved

    async def idle(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._waiting:
            answer_id = next(iter(self._waiting))
            record, futures = self._waiting.pop(answer_id)
            ok = await self._write(record)
            for future in futures:
                if not future.done():
                    future.set_result(ok)

    async def _write(self, record: AnswerRecord) -> bool:
        try:
            await self._save(record)
        except Exception as exc:
            # Once per outage at WARNING: a broken disk must not flood the log with one line per message.
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "could not save answer record %s (answer %s): %s", record.answer_id, record.key, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("answer records are being saved again")
            self._failing = False
        return True
