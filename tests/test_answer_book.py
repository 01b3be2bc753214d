"""The answer book and the recording sink: record lifecycle, ordering of saves, and a failing or hanging store."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.answers.book import AnswerBook, LiveAnswer
from bot.answers.records import INTERRUPTED, AnswerKind, AnswerRecord, AnswerState, AskPrompt
from bot.answers.sink import RecordingSink
from bot.answers.store import MemoryAnswerStore
from bot.streaming.relay import Controls, ReplyGone

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class GatedStore(MemoryAnswerStore):
    """Saves wait for `gate`; every save that reaches the store is logged."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.saved: list[AnswerRecord] = []

    async def save_answer(self, record: AnswerRecord) -> None:
        self.entered.set()
        await self.gate.wait()
        self.saved.append(record)
        await super().save_answer(record)


class BrokenStore(MemoryAnswerStore):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def save_answer(self, record: AnswerRecord) -> None:
        self.attempts += 1
        raise OSError("disk I/O error")

    async def answer_by_key(self, key: int) -> AnswerRecord | None:
        raise OSError("disk I/O error")


class HangingStore(MemoryAnswerStore):
    async def save_answer(self, record: AnswerRecord) -> None:
        await asyncio.Event().wait()

    async def answer_by_message(self, message_id: int) -> AnswerRecord | None:
        await asyncio.Event().wait()
        return None


def start(book: AnswerBook, **changes: object) -> LiveAnswer:
    arguments: dict[str, object] = {
        "key": 1001,
        "kind": AnswerKind.MESSAGE,
        "guild_id": 400,
        "channel_id": 500,
        "requester_id": 200,
        "model": "llama3.2",
        "settings": {"model": "llama3.2", "temperature": 0.5},
    }
    arguments.update(changes)
    return book.start(**arguments)  # type: ignore[arg-type]


async def test_an_answer_is_recorded_from_start_to_finish() -> None:
    store, clock = MemoryAnswerStore(), Clock()
    book = AnswerBook(store, now=clock, instance="me")
    answer = start(book, kind=AnswerKind.ASK, prompt=AskPrompt(200, "Alice", "sky colour?"))
    assert await answer.saved()
    stored = await store.answer_by_key(1001)
    assert stored is not None and stored.state is AnswerState.STREAMING and stored.created_at == T0
    assert stored.instance == "me" and stored.generation == 0 and stored.settings["temperature"] == 0.5

    answer.posted(11)
    answer.posted(12)
    answer.posted(12)  # a repeat changes nothing
    answer.removed(11)
    clock.now = T0 + timedelta(seconds=3)
    assert await answer.finish(outcome="done", done_reason="stop", eval_count=42, prompt_eval_count=17)

    final = await store.answer_by_message(12)
    assert final is not None
    assert final.message_ids == (12,)
    assert (final.state, final.outcome, final.done_reason) == (AnswerState.FINISHED, "done", "stop")
    assert (final.eval_count, final.prompt_eval_count, final.finished_at) == (42, 17, clock.now)
    assert final.ask_record() is not None and final.ask_record().content == "sky colour?"  # type: ignore[union-attr]


async def test_regenerating_starts_the_next_generation_with_the_reused_messages() -> None:
    store = MemoryAnswerStore()
    book = AnswerBook(store)
    first = start(book, message_ids=[11, 12])
    await first.finish(outcome="done")
    again = start(book, message_ids=[11], previous=first.record)
    await again.saved()
    newest = await store.answer_by_key(1001)
    assert newest is not None and newest.generation == 1 and newest.message_ids == (11,)
    assert newest.answer_id != first.record.answer_id


async def test_saves_of_one_record_land_in_order_and_only_the_newest_waiting_one_is_written() -> None:
    store = GatedStore()
    book = AnswerBook(store)
    answer = start(book)
    await store.entered.wait()
    for message_id in range(11, 21):
        answer.posted(message_id)  # while the first save is still in progress
    finishing = asyncio.create_task(answer.finish(outcome="done"))
    store.gate.set()
    assert await finishing
    assert [len(r.message_ids) for r in store.saved] == [0, 10]
    assert store.saved[-1].state is AnswerState.FINISHED
    assert (await store.answer_by_key(1001) or answer.record).message_ids == tuple(range(11, 21))


async def test_a_failing_store_is_logged_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    store = BrokenStore()
    book = AnswerBook(store)
    with caplog.at_level(logging.DEBUG, logger="bot.answers.book"):
        answer = start(book)
        assert not await answer.saved()
        answer.posted(11)
        assert not await answer.finish(outcome="done")
        assert await book.find_by_key(1001) is None
    assert store.attempts >= 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "could not save" in r.getMessage()]
    assert len(warnings) == 1
    assert "disk I/O error" in warnings[0].getMessage()


async def test_a_hanging_store_never_holds_an_answer_up(caplog: pytest.LogCaptureFixture) -> None:
    book = AnswerBook(HangingStore(), write_timeout=0.01)
    answer = start(book)
    with caplog.at_level(logging.WARNING, logger="bot.answers.book"):
        assert not await asyncio.wait_for(answer.saved(), 5)
        assert not await asyncio.wait_for(answer.finish(outcome="done"), 5)
        assert await asyncio.wait_for(book.find_by_message(11), 5) is None
    assert any("going on without it" in r.getMessage() for r in caplog.records)


async def test_left_behind_is_what_other_processes_left_streaming() -> None:
    store = MemoryAnswerStore()
    dead = AnswerBook(store, instance="dead")
    start(dead, key=1, message_ids=[11])
    done = start(dead, key=2)
    await done.finish(outcome="done")
    await dead.flush()
    alive = AnswerBook(store, instance="alive")
    mine = start(alive, key=3)
    await mine.saved()

    assert [r.key for r in await alive.left_behind()] == [1]


async def test_finish_left_behind_marks_them_interrupted_or_tries_again_later() -> None:
    store, clock = MemoryAnswerStore(), Clock()
    dead = AnswerBook(store, instance="dead")
    for key in (1, 2):
        await start(dead, key=key, message_ids=[key * 10, key * 10 + 1]).saved()
    book = AnswerBook(store, now=clock, instance="new")
    clock.now = T0 + timedelta(hours=1)

    async def close_out(record: AnswerRecord) -> list[int]:
        if record.key == 2:
            raise ConnectionError("Discord is unreachable")
        return [10, 12]  # the part 11 was gone, a note 12 was added

    assert await book.finish_left_behind(close_out) == 1
    first = await store.answer_by_key(1)
    assert first is not None
    assert (first.state, first.outcome, first.finished_at, first.message_ids) == (
        AnswerState.FINISHED,
        INTERRUPTED,
        clock.now,
        (10, 12),
    )
    assert [r.key for r in await book.left_behind()] == [2]


async def test_prune_keeps_the_retention_period() -> None:
    store, clock = MemoryAnswerStore(), Clock()
    book = AnswerBook(store, now=clock, retention=timedelta(days=30))
    await start(book, key=1).saved()
    clock.now = T0 + timedelta(days=10)
    await start(book, key=2).saved()
    clock.now = T0 + timedelta(days=31)
    assert await book.prune() == 1
    assert await store.answer_by_key(1) is None and await store.answer_by_key(2) is not None


class ListSink:
    """A MessageSink keeping messages as ids; `gone` ids raise ReplyGone on delete."""

    def __init__(self, store: GatedStore | None = None) -> None:
        self.calls: list[str] = []
        self.next_id = 100
        self.gone: set[int] = set()
        self.store = store

    @property
    def channel_key(self) -> int:
        return 500

    async def start_waiting(self) -> None:
        self.calls.append("typing")

    async def stop_waiting(self) -> None:
        self.calls.append("stop typing")

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        if self.store is not None:
            self.calls.append(f"saved {len(self.store.saved)}")
        self.next_id += 1
        self.calls.append(f"send {self.next_id}")
        return self.next_id

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        self.calls.append(f"edit {handle}")

    async def delete(self, handle: object) -> None:
        if handle in self.gone:
            raise ReplyGone("Unknown Message")
        self.calls.append(f"delete {handle}")


def int_id(handle: object) -> int | None:
    return handle if isinstance(handle, int) else None


async def test_the_recording_sink_saves_the_record_before_the_first_post() -> None:
    store = GatedStore()
    answer = start(AnswerBook(store))
    inner = ListSink(store)
    sink = RecordingSink(inner, answer, int_id)
    await sink.start_waiting()
    posting = asyncio.create_task(sink.send("hello", after=None, controls=Controls.STOP))
    await asyncio.sleep(0)
    assert inner.calls == ["typing"]  # the post waits for the record
    store.gate.set()
    first = await posting
    assert inner.calls == ["typing", "saved 1", f"send {first}"]


async def test_the_recording_sink_follows_posts_and_deletes() -> None:
    store = MemoryAnswerStore()
    book = AnswerBook(store)
    answer = start(book, message_ids=[50])  # a regenerated answer reusing message 50
    inner = ListSink()
    inner.gone.add(102)
    sink = RecordingSink(inner, answer, int_id)
    await sink.edit(50, "again", controls=Controls.STOP)
    first = await sink.send("one", after=50, controls=Controls.NONE)
    second = await sink.send("two", after=first, controls=Controls.NONE)
    await sink.delete(50)
    with pytest.raises(ReplyGone):
        await sink.delete(second)  # deleted by someone else: no longer part of the answer either
    assert sink.channel_key == 500
    await answer.finish(outcome="done")
    assert (await store.answer_by_key(1001) or answer.record).message_ids == (first,)
    assert inner.calls == ["edit 50", f"send {first}", f"send {second}", "delete 50"]
