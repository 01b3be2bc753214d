"""The answer-record stores: one contract run on every backend, then SQLite's file, migration and restart."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.answers.postgres_store import PostgresAnswerStore
from bot.answers.records import INTERRUPTED, AnswerKind, AnswerRecord, AnswerState, AskPrompt
from bot.answers.sqlite_store import SqliteAnswerStore
from bot.answers.store import AnswerStore, MemoryAnswerStore
from bot.channel_settings import store as settings_store_module
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import APPLICATION_ID, SCHEMA_VERSION, Scope, SqliteSettingsStore, StoreError

# Stored times keep milliseconds, so test times are whole milliseconds.
T0 = datetime(2026, 3, 1, 12, 0, 0, 125000, tzinfo=UTC)
BIG = 2**63 - 1  # the largest snowflake a column must hold


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ollacord.sqlite3"


def make_record(**changes: object) -> AnswerRecord:
    record = AnswerRecord(
        answer_id="a1",
        key=1001,
        kind=AnswerKind.MESSAGE,
        guild_id=400,
        channel_id=500,
        requester_id=200,
        model="llama3.2",
        created_at=T0,
        instance="process-1",
    )
    return replace(record, **changes)  # type: ignore[arg-type]


@contextlib.contextmanager
def raw_connect(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnswerStore]:
    if request.param == "memory":
        yield MemoryAnswerStore()
        return
    if request.param == "postgres":
        postgres = await PostgresSettingsStore.open(request.getfixturevalue("postgres_url"))
        try:
            yield PostgresAnswerStore(postgres)
        finally:
            await postgres.close()
        return
    database = await SqliteSettingsStore.open(db_path(tmp_path))
    try:
        yield SqliteAnswerStore(database)
    finally:
        await database.close()


# -- every backend ---------------------------------------------------------------------------------------------


async def test_implements_the_protocol(store: AnswerStore) -> None:
    assert isinstance(store, AnswerStore)


async def test_unknown_answers_are_none(store: AnswerStore) -> None:
    assert await store.answer_by_key(1) is None
    assert await store.answer_by_message(1) is None
    assert await store.unfinished_answers() == []


async def test_every_field_round_trips(store: AnswerStore) -> None:
    asked = make_record(
        answer_id="ask-1",
        key=BIG,
        kind=AnswerKind.ASK,
        guild_id=BIG,
        channel_id=BIG - 1,
        requester_id=BIG - 2,
        generation=3,
        prompt=AskPrompt(author_id=BIG - 3, author_name="Ålice 🦊", text="why?\n'quotes' \"and\" ```code```"),
        message_ids=(BIG - 4, 7, BIG - 5),
        settings={"model": "qwen3:8b", "temperature": 0.7, "num_ctx": 8192, "auto_reply": True, "think": "high"},
        state=AnswerState.FINISHED,
        outcome="done",
        done_reason="length",
        finished_at=T0 + timedelta(seconds=12, milliseconds=500),
        eval_count=321,
        prompt_eval_count=4096,
        host="http://gpu-box:11434",
        text="The answer, with ```code``` and ünïcode 🦊",
    )
    plain = make_record(answer_id="plain-1", key=2002, guild_id=None, channel_id=9200)
    await store.save_answer(asked)
    await store.save_answer(plain)

    assert await store.answer_by_key(BIG) == asked
    assert await store.answer_by_key(2002) == plain
    assert await store.answer_by_message(7) == asked


async def test_a_save_replaces_the_record_and_its_messages(store: AnswerStore) -> None:
    await store.save_answer(make_record(message_ids=(11, 12, 13)))
    finished = make_record(
        message_ids=(13, 11), state=AnswerState.FINISHED, outcome="cancelled", finished_at=T0, eval_count=5
    )
    await store.save_answer(finished)

    assert await store.answer_by_key(1001) == finished
    assert await store.answer_by_message(12) is None
    assert (await store.answer_by_message(13) or make_record()).message_ids == (13, 11)


async def test_the_newest_generation_wins(store: AnswerStore) -> None:
    first = make_record(answer_id="g0", message_ids=(11, 12), state=AnswerState.FINISHED, outcome="done")
    # Regenerated: the first part is rewritten in place, the second deleted.
    second = make_record(answer_id="g1", generation=1, created_at=T0 + timedelta(minutes=1), message_ids=(11,))
    await store.save_answer(second)
    await store.save_answer(first)

    assert (await store.answer_by_key(1001) or first).answer_id == "g1"
    assert (await store.answer_by_message(11) or first).answer_id == "g1"
    assert (await store.answer_by_message(12) or second).answer_id == "g0"  # only the old generation had it


async def test_unfinished_answers_oldest_first(store: AnswerStore) -> None:
    await store.save_answer(make_record(answer_id="late", key=3, created_at=T0 + timedelta(seconds=2)))
    await store.save_answer(make_record(answer_id="done", key=2, state=AnswerState.FINISHED, outcome="done"))
    await store.save_answer(make_record(answer_id="early", key=1, created_at=T0, instance="process-0"))

    assert [r.answer_id for r in await store.unfinished_answers()] == ["early", "late"]
    await store.save_answer(make_record(answer_id="early", key=1, state=AnswerState.FINISHED, outcome=INTERRUPTED))
    assert [r.answer_id for r in await store.unfinished_answers()] == ["late"]


async def test_prune_deletes_records_created_before_the_cutoff(store: AnswerStore) -> None:
    await store.save_answer(make_record(answer_id="old", key=1, message_ids=(11,), created_at=T0 - timedelta(days=31)))
    await store.save_answer(make_record(answer_id="edge", key=2, message_ids=(12,), created_at=T0 - timedelta(days=30)))
    await store.save_answer(make_record(answer_id="new", key=3, message_ids=(13,), created_at=T0))

    assert await store.prune_answers(T0 - timedelta(days=30)) == 1
    assert await store.answer_by_key(1) is None
    assert await store.answer_by_message(11) is None
    assert await store.answer_by_key(2) is not None and await store.answer_by_key(3) is not None
    assert await store.prune_answers(T0 - timedelta(days=30)) == 0


async def test_returned_records_are_copies(store: AnswerStore) -> None:
    await store.save_answer(make_record(settings={"temperature": 0.5}))
    found = await store.answer_by_key(1001)
    assert found is not None
    found.settings["temperature"] = 2.0  # type: ignore[index]
    assert (await store.answer_by_key(1001) or found).settings == {"temperature": 0.5}


# -- SQLite ----------------------------------------------------------------------------------------------------


async def test_records_survive_a_restart_in_the_settings_file(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    database = await SqliteSettingsStore.open(path)
    record = make_record(prompt=AskPrompt(200, "Alice", "sky colour?"), kind=AnswerKind.ASK, message_ids=(11, 12))
    await SqliteAnswerStore(database).save_answer(record)
    await database.set_many(Scope.channel(500), {"temperature": 0.3})
    await database.close()

    database = await SqliteSettingsStore.open(path)
    try:
        assert await SqliteAnswerStore(database).answer_by_message(12) == record
        assert await database.get(Scope.channel(500)) == {"temperature": 0.3}
    finally:
        await database.close()
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [path.name]


async def test_a_version_1_file_is_migrated_and_keeps_its_settings(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    with raw_connect(path) as conn:  # exactly what ollacord before the answer records left behind
        conn.execute("BEGIN")
        for statement in settings_store_module.MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO settings VALUES ('channel', 500, 'model', '\"qwen3:8b\"', '2026-01-01', 200)")
        conn.execute("INSERT INTO settings VALUES ('guild', 400, 'temperature', '0.25', '2026-01-01', NULL)")
        conn.execute("PRAGMA user_version = 1")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")

    database = await SqliteSettingsStore.open(path)
    try:
        assert await database.get(Scope.channel(500)) == {"model": "qwen3:8b"}
        assert await database.get(Scope.guild(400)) == {"temperature": 0.25}
        answers = SqliteAnswerStore(database)
        await answers.save_answer(make_record(message_ids=(11,)))
        assert (await answers.answer_by_message(11) or make_record()).key == 1001
    finally:
        await database.close()
    with raw_connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"settings", "answers", "answer_messages"} <= tables


async def test_a_closed_database_refuses_answer_operations(tmp_path: Path) -> None:
    database = await SqliteSettingsStore.open(db_path(tmp_path))
    answers = SqliteAnswerStore(database)
    await database.close()
    with pytest.raises(StoreError):
        await answers.save_answer(make_record())
    with pytest.raises(StoreError):
        await answers.answer_by_key(1001)


async def test_a_failing_save_changes_nothing(tmp_path: Path) -> None:
    """A record and its message ids change together: a save that fails halfway leaves the old record whole."""
    database = await SqliteSettingsStore.open(db_path(tmp_path))
    answers = SqliteAnswerStore(database)
    try:
        before = make_record(message_ids=(11, 12))
        await answers.save_answer(before)
        # A missing message id breaks NOT NULL after the record row was written.
        broken = make_record(message_ids=(13, None), state=AnswerState.FINISHED, outcome="done")
        with pytest.raises(StoreError, match="could not save an answer record"):
            await answers.save_answer(broken)
        assert await answers.answer_by_key(1001) == before
    finally:
        await database.close()
