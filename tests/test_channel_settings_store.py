"""The settings stores: behaviour shared by both backends, and SQLite durability, migrations and failure modes."""

from __future__ import annotations

import asyncio
import contextlib
import graphlib
import hashlib
import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.channel_settings import store as store_module
from bot.channel_settings.keys import InvalidSetting, SettingValue
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    MemorySettingsStore,
    Scope,
    ScopeKind,
    SettingsStore,
    SqliteSettingsStore,
    StoreError,
)

CHANNEL = Scope.channel(1001)
THREAD = Scope.channel(1002)
GUILD = Scope.guild(1001)  # same id as CHANNEL on purpose: the kind keeps them apart


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ollacord.sqlite3"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SettingsStore]:
    backend: SettingsStore
    if request.param == "memory":
        backend = MemorySettingsStore()
    elif request.param == "postgres":
        backend = await PostgresSettingsStore.open(request.getfixturevalue("postgres_url"))
    else:
        backend = await SqliteSettingsStore.open(db_path(tmp_path))
    try:
        yield backend
    finally:
        await backend.close()


@contextlib.contextmanager
def raw_connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection in autocommit mode, closed on exit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- both backends ---------------------------------------------------------------------------------------------


async def test_implements_the_protocol(store: SettingsStore) -> None:
    assert isinstance(store, SettingsStore)


async def test_empty_scope_reads_empty(store: SettingsStore) -> None:
    assert await store.get(CHANNEL) == {}


async def test_set_then_get_round_trips_every_type(store: SettingsStore) -> None:
    values: dict[str, SettingValue] = {
        "model": "qwen3:8b",
        "system": "Answer like a pirate.\nAlways.",
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 40,
        "num_ctx": 8192,
        "num_predict": -1,
        "seed": 2**31 - 1,
        "repeat_penalty": 1.1,
        "think": "high",
        "keep_alive": "1h30m",
        "history": 50,
        "auto_reply": True,
    }
    await store.set_many(CHANNEL, values, updated_by=42)
    got = await store.get(CHANNEL)
    assert got == values
    assert {key: type(value) for key, value in got.items()} == {key: type(value) for key, value in values.items()}


async def test_set_many_merges_and_overwrites(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"temperature": 0.5, "seed": 1})
    await store.set_many(CHANNEL, {"seed": 2, "history": 10})
    assert await store.get(CHANNEL) == {"temperature": 0.5, "seed": 2, "history": 10}


async def test_set_many_normalises_typed_values(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"temperature": 1, "think": True, "keep_alive": 300.0, "top_k": 40.0})
    got = await store.get(CHANNEL)
    assert got == {"temperature": 1.0, "think": "on", "keep_alive": 300, "top_k": 40}
    assert type(got["temperature"]) is float
    assert type(got["keep_alive"]) is int


async def test_scopes_are_independent(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"model": "a"})
    await store.set_many(GUILD, {"model": "b"})
    await store.set_many(THREAD, {"model": "c"})
    assert await store.get(CHANNEL) == {"model": "a"}
    assert await store.get(GUILD) == {"model": "b"}
    assert await store.get(THREAD) == {"model": "c"}


async def test_get_many_returns_every_requested_scope(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"temperature": 0.1})
    await store.set_many(GUILD, {"temperature": 0.2, "history": 5})
    result = await store.get_many([THREAD, CHANNEL, GUILD])
    assert result == {THREAD: {}, CHANNEL: {"temperature": 0.1}, GUILD: {"temperature": 0.2, "history": 5}}
    assert await store.get_many([]) == {}


async def test_returned_dicts_are_copies(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"seed": 1})
    got = await store.get(CHANNEL)
    got["seed"] = 99
    assert await store.get(CHANNEL) == {"seed": 1}


@pytest.mark.parametrize(
    ("key", "expected_removed", "left"),
    [
        ("seed", 1, {"temperature": 0.5, "history": 3}),
        ("top_k", 0, {"temperature": 0.5, "seed": 1, "history": 3}),
        (None, 3, {}),
    ],
)
async def test_unset(
    store: SettingsStore, key: str | None, expected_removed: int, left: dict[str, SettingValue]
) -> None:
    await store.set_many(CHANNEL, {"temperature": 0.5, "seed": 1, "history": 3})
    await store.set_many(GUILD, {"seed": 5})
    assert await store.unset(CHANNEL, key) == expected_removed
    assert await store.get(CHANNEL) == left
    assert await store.get(GUILD) == {"seed": 5}


async def test_unset_twice_removes_nothing_the_second_time(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {"seed": 1})
    assert await store.unset(CHANNEL, "seed") == 1
    assert await store.unset(CHANNEL, "seed") == 0
    assert await store.unset(CHANNEL) == 0


async def test_unset_unknown_key(store: SettingsStore) -> None:
    with pytest.raises(InvalidSetting, match="valid settings"):
        await store.unset(CHANNEL, "colour")


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": 0.2, "top_k": 0, "seed": 3},
        {"temperature": 0.2, "colour": "red"},
        {"temperature": 0.2, "model": "two words"},
        {"temperature": 0.2, "history": True},
    ],
)
async def test_set_many_with_an_invalid_value_changes_nothing(
    store: SettingsStore, bad: dict[str, SettingValue]
) -> None:
    await store.set_many(CHANNEL, {"temperature": 1.5, "seed": 1})
    with pytest.raises(InvalidSetting):
        await store.set_many(CHANNEL, bad)
    assert await store.get(CHANNEL) == {"temperature": 1.5, "seed": 1}


async def test_set_many_with_nothing_is_a_no_op(store: SettingsStore) -> None:
    await store.set_many(CHANNEL, {})
    assert await store.get(CHANNEL) == {}


async def test_closed_store_refuses_calls(store: SettingsStore) -> None:
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.get(CHANNEL)
    with pytest.raises(StoreError, match="closed"):
        await store.set_many(CHANNEL, {"seed": 1})


# Each key's value encodes which call wrote it, so the final state tells which call won each key.
ENCODERS: dict[str, Callable[[int], SettingValue]] = {
    "temperature": lambda i: i / 100,
    "top_p": lambda i: i / 100,
    "top_k": lambda i: i + 1,
    "num_ctx": lambda i: 256 + i,
    "num_predict": lambda i: i + 1,
    "seed": lambda i: i,
    "repeat_penalty": lambda i: i / 100,
    "history": lambda i: i + 1,
}


def concurrent_calls(count: int, seed: int) -> list[dict[str, SettingValue]]:
    rng = random.Random(seed)
    keys = sorted(ENCODERS)
    return [{key: ENCODERS[key](i) for key in rng.sample(keys, rng.randint(1, 4))} for i in range(count)]


def assert_some_serial_order(calls: list[dict[str, SettingValue]], final: dict[str, SettingValue]) -> None:
    """Final state equals applying `calls` one after another in some order (no lost or torn update)."""
    touched = {key for call in calls for key in call}
    assert set(final) == touched
    order: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for key in touched:
        writers = [i for i, call in enumerate(calls) if key in call]
        winners = [i for i in writers if calls[i][key] == final[key]]
        assert len(winners) == 1, f"{key}={final[key]!r} was not written by exactly one call"
        for i in writers:
            if i != winners[0]:
                order.add(winners[0], i)  # the winner of a key ran after every other writer of that key
    order.prepare()  # raises CycleError when no serial order explains the final state


async def test_concurrent_set_many_lose_no_update(store: SettingsStore) -> None:
    calls = concurrent_calls(100, seed=7)
    assert {key for call in calls for key in call} == set(ENCODERS)
    await asyncio.gather(*(store.set_many(CHANNEL, call, updated_by=i) for i, call in enumerate(calls)))
    assert_some_serial_order(calls, await store.get(CHANNEL))


def test_serial_order_check_catches_a_torn_update() -> None:
    calls: list[dict[str, SettingValue]] = [{"seed": 0, "history": 1}, {"seed": 1, "history": 2}]
    assert_some_serial_order(calls, {"seed": 1, "history": 2})
    with pytest.raises(graphlib.CycleError):
        assert_some_serial_order(calls, {"seed": 0, "history": 2})


def test_scope_validation() -> None:
    assert Scope.channel(5) == Scope(ScopeKind.CHANNEL, 5)
    assert Scope.guild(5) != Scope.channel(5)
    assert Scope("guild", 5).kind is ScopeKind.GUILD  # type: ignore[arg-type]
    for bad in (-1, 2**63, True, "5"):
        with pytest.raises(ValueError, match="snowflake"):
            Scope.channel(bad)  # type: ignore[arg-type]


# -- SQLite: durability ----------------------------------------------------------------------------------------


async def test_values_survive_a_restart(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    first = await SqliteSettingsStore.open(path)
    await first.set_many(CHANNEL, {"model": "qwen3:8b", "temperature": 0.25, "auto_reply": True}, updated_by=77)
    await first.set_many(GUILD, {"history": 12})
    await first.unset(CHANNEL, "auto_reply")
    await first.close()

    second = await SqliteSettingsStore.open(path)
    try:
        assert await second.get_many([CHANNEL, GUILD]) == {
            CHANNEL: {"model": "qwen3:8b", "temperature": 0.25},
            GUILD: {"history": 12},
        }
    finally:
        await second.close()

    with raw_connect(path) as conn:
        rows = conn.execute("SELECT key, value, updated_by, updated_at FROM settings WHERE scope_id = ?", (1001,))
        by_key = {key: (value, updated_by, updated_at) for key, value, updated_by, updated_at in rows}
    assert by_key["temperature"][:2] == ("0.25", 77)
    assert by_key["model"][0] == '"qwen3:8b"'
    assert by_key["history"][1] is None
    assert by_key["temperature"][2].endswith("+00:00")


async def test_open_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "settings.sqlite3"
    store = await SqliteSettingsStore.open(path)
    await store.close()
    assert path.is_file()
    assert store.path == path


CRASHING_WRITER = r"""
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 2")  # tiny cache: uncommitted pages spill to the WAL file on disk
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE settings SET value = '1.9' WHERE key = 'temperature'")
conn.execute("DELETE FROM settings WHERE key = 'system'")
conn.execute("INSERT INTO settings VALUES ('channel', 1001, 'seed', '123', 'now', NULL)")
for i in range(3000):
    conn.execute("INSERT INTO settings VALUES ('channel', ?, 'history', '5', 'now', NULL)", (5000 + i,))
print("written", flush=True)
os._exit(9)
"""


@pytest.mark.parametrize("store_open_meanwhile", [False, True])
async def test_interrupted_write_leaves_the_last_committed_state(tmp_path: Path, store_open_meanwhile: bool) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    committed: dict[str, SettingValue] = {"temperature": 0.3, "system": "Be brief.", "model": "llama3.2"}
    await store.set_many(CHANNEL, committed)
    if not store_open_meanwhile:
        await store.close()

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 9, child.stderr
    assert child.stdout.strip() == "written"
    wal = path.with_name(path.name + "-wal")
    assert wal.exists()
    assert wal.stat().st_size > 0  # the uncommitted transaction really reached the disk

    if store_open_meanwhile:
        assert await store.get(CHANNEL) == committed
        assert await store.get(Scope.channel(5000)) == {}
        await store.close()
    reopened = await SqliteSettingsStore.open(path)
    try:
        assert await reopened.get(CHANNEL) == committed
        assert await reopened.get(Scope.channel(5000)) == {}
        await reopened.set_many(CHANNEL, {"seed": 4})  # and the file is still writable
        assert await reopened.get(CHANNEL) == {**committed, "seed": 4}
    finally:
        await reopened.close()


async def test_a_write_failing_halfway_is_rolled_back(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    await store.set_many(CHANNEL, {"temperature": 0.3})
    # A trigger makes SQLite fail on the second row of the transaction, after the first row was written.
    with raw_connect(path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse_seed BEFORE INSERT ON settings WHEN NEW.key = 'seed' "
            "BEGIN SELECT RAISE(ABORT, 'seed refused'); END"
        )
    with pytest.raises(StoreError) as caught:
        await store.set_many(CHANNEL, {"temperature": 1.2, "seed": 9})
    assert str(path) in str(caught.value)
    assert "seed refused" in str(caught.value)
    assert await store.get(CHANNEL) == {"temperature": 0.3}
    await store.set_many(CHANNEL, {"history": 4})  # the connection is usable afterwards
    assert await store.get(CHANNEL) == {"temperature": 0.3, "history": 4}
    await store.close()


async def test_two_stores_on_one_file_lose_no_update(tmp_path: Path) -> None:
    """Like two processes sharing DATA_DIR: BEGIN IMMEDIATE plus busy_timeout serialise the writers."""
    path = db_path(tmp_path)
    first = await SqliteSettingsStore.open(path)
    second = await SqliteSettingsStore.open(path)
    calls = concurrent_calls(60, seed=11)
    try:
        await asyncio.gather(*((first if i % 2 else second).set_many(CHANNEL, call) for i, call in enumerate(calls)))
        assert_some_serial_order(calls, await first.get(CHANNEL))
        assert await first.get(CHANNEL) == await second.get(CHANNEL)
    finally:
        await first.close()
        await second.close()


async def test_bad_stored_values_are_skipped_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    await store.set_many(CHANNEL, {"top_k": 40})
    await store.close()
    with raw_connect(path) as conn:
        conn.executemany(
            "INSERT INTO settings VALUES ('channel', 1001, ?, ?, 'now', NULL)",
            [("temperature", '"hot"'), ("colour", '"red"'), ("seed", "not json"), ("history", "500")],
        )

    store = await SqliteSettingsStore.open(path)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.channel_settings.store"):
            assert await store.get(CHANNEL) == {"top_k": 40}
            assert await store.get_many([CHANNEL]) == {CHANNEL: {"top_k": 40}}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 4  # once per bad row, not once per read
        assert all(str(path) in r.getMessage() for r in warnings)
        assert any("temperature" in r.getMessage() for r in warnings)
    finally:
        await store.close()


# -- SQLite: schema and migrations -----------------------------------------------------------------------------


async def test_fresh_file_gets_the_current_schema(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    await store.close()
    with raw_connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(settings)")]
        primary_key = [
            row[1] for row in sorted(conn.execute("PRAGMA table_info(settings)"), key=lambda r: r[5]) if row[5]
        ]
    assert columns == ["scope_kind", "scope_id", "key", "value", "updated_at", "updated_by"]
    assert primary_key == ["scope_kind", "scope_id", "key"]


async def test_empty_existing_file_is_a_fresh_database(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.touch()
    store = await SqliteSettingsStore.open(path)
    await store.set_many(CHANNEL, {"seed": 1})
    assert await store.get(CHANNEL) == {"seed": 1}
    await store.close()


async def test_reopening_does_not_migrate_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = db_path(tmp_path)
    with caplog.at_level(logging.INFO, logger="bot.channel_settings.store"):
        await (await SqliteSettingsStore.open(path)).close()
        await (await SqliteSettingsStore.open(path)).close()
    upgrades = [r for r in caplog.records if "schema upgraded" in r.getMessage()]
    assert len(upgrades) == 1


async def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    await (await SqliteSettingsStore.open(path)).close()
    with raw_connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.execute("PRAGMA journal_mode = DELETE")
    before = file_digest(path)
    with pytest.raises(StoreError) as caught:
        await SqliteSettingsStore.open(path)
    message = str(caught.value)
    assert "was written by a newer ollacord" in message
    assert str(path) in message
    assert caught.value.path == path
    assert file_digest(path) == before


async def test_migrations_are_applied_in_order_from_the_files_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    await store.set_many(CHANNEL, {"seed": 3})
    await store.close()

    first_new = ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)", "INSERT INTO notes (text) VALUES ('v2')")
    second_new = ("INSERT INTO notes (text) VALUES ('v3')",)
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, first_new, second_new))
    store = await SqliteSettingsStore.open(path)
    assert await store.get(CHANNEL) == {"seed": 3}
    await store.close()
    with raw_connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 2
        assert [row[0] for row in conn.execute("SELECT text FROM notes ORDER BY id")] == ["v2", "v3"]


async def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = db_path(tmp_path)
    await (await SqliteSettingsStore.open(path)).close()
    broken = ("CREATE TABLE notes (id INTEGER PRIMARY KEY)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_module, "MIGRATIONS", (*store_module.MIGRATIONS, broken))
    with pytest.raises(StoreError) as caught:
        await SqliteSettingsStore.open(path)
    assert str(path) in str(caught.value)
    with raw_connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'notes'").fetchone()[0] == 0


# -- SQLite: unusable files ------------------------------------------------------------------------------------


def make_real_database(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with raw_connect(path) as conn:
        conn.execute("BEGIN")
        conn.execute(store_module.MIGRATIONS[0][0])
        conn.executemany(
            "INSERT INTO settings VALUES ('channel', ?, 'system', ?, 'now', NULL)",
            [(i, '"' + "x" * 200 + '"') for i in range(rows)],
        )
        conn.execute("PRAGMA user_version = 1")  # a file from before the answer records
        conn.execute("COMMIT")


def random_bytes(path: Path) -> Path:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not sqlite" + random.Random(3).randbytes(8192))
    return path


def truncated_database(path: Path) -> Path:
    make_real_database(path, 2000)
    size = path.stat().st_size
    assert size > 100_000
    os.truncate(path, size // 2)
    return path


def truncated_to_header(path: Path) -> Path:
    make_real_database(path, 10)
    os.truncate(path, 50)
    return path


def directory_in_place(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def folder_is_a_file(path: Path) -> Path:
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("I am a file, not a folder")
    return path


def symlink_loop(path: Path) -> Path:
    # Unopenable even for root (ELOOP), standing in for chmod 000 when the tests run as root.
    path.parent.mkdir(parents=True)
    path.symlink_to(path.name)
    return path


def other_programs_database(path: Path) -> Path:
    path.parent.mkdir(parents=True)
    with raw_connect(path) as conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.execute("CREATE TABLE photos (id INTEGER)")
    return path


def unreadable_file(path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 file; symlink_loop covers an unopenable file")
    make_real_database(path, 1)
    path.chmod(0)
    return path


def read_only_file(path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root can write a read-only file")
    make_real_database(path, 1)
    path.chmod(0o444)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (random_bytes, "not an SQLite database"),
        (truncated_database, "damaged"),
        (truncated_to_header, "damaged"),
        (directory_in_place, "is a directory"),
        (folder_is_a_file, "cannot create the folder"),
        (symlink_loop, "cannot read"),
        (other_programs_database, "another program"),
        (unreadable_file, "cannot read"),
        (read_only_file, "for writing"),
    ],
)
async def test_unusable_file_is_refused_never_reset(tmp_path: Path, make: Callable[[Path], Path], reason: str) -> None:
    path = make(db_path(tmp_path))
    before = file_digest(path) if path.is_file() and os.access(path, os.R_OK) else None
    with pytest.raises(StoreError) as caught:
        await SqliteSettingsStore.open(path)
    message = str(caught.value)
    assert str(path) in message
    assert reason in message
    assert caught.value.path == path
    assert "\n" not in message
    if before is not None:
        assert file_digest(path) == before


# -- SQLite: threading -----------------------------------------------------------------------------------------


async def test_every_operation_runs_on_one_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, threading.Thread]] = []

    def recording(name: str) -> Callable[..., Any]:
        original = getattr(store_module._SqliteFile, name)

        def wrapper(self: Any, *args: Any) -> Any:
            seen.append((name, threading.current_thread()))
            return original(self, *args)

        return wrapper

    for name in ("open", "read", "write", "delete", "close"):
        monkeypatch.setattr(store_module._SqliteFile, name, recording(name))

    store = await SqliteSettingsStore.open(db_path(tmp_path))
    await store.set_many(CHANNEL, {"seed": 1})
    await store.get_many([CHANNEL, GUILD])
    await store.unset(CHANNEL)
    await store.close()

    assert [name for name, _ in seen] == ["open", "write", "read", "delete", "close"]
    threads = {thread for _, thread in seen}
    assert len(threads) == 1
    (worker,) = threads
    assert worker is not threading.current_thread()
    assert worker.name.startswith("ollacord-settings")


async def test_a_slow_disk_does_not_block_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await SqliteSettingsStore.open(db_path(tmp_path))
    release = threading.Event()
    original = store_module._SqliteFile.read

    def parked_read(self: Any, scopes: Any) -> Any:
        # Only the event loop can release this; if the read ran on the loop, it would never be released.
        assert release.wait(5), "the event loop was blocked while the store read"
        return original(self, scopes)

    monkeypatch.setattr(store_module._SqliteFile, "read", parked_read)
    reading = asyncio.create_task(store.get(CHANNEL))
    ticks = 0
    while ticks < 20:
        await asyncio.sleep(0)
        ticks += 1
    assert not reading.done()
    release.set()
    assert await reading == {}
    await store.close()


async def test_close_waits_for_queued_operations(tmp_path: Path) -> None:
    path = db_path(tmp_path)
    store = await SqliteSettingsStore.open(path)
    pending = [asyncio.ensure_future(store.set_many(Scope.channel(i), {"seed": i})) for i in range(20)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*pending)
    reopened = await SqliteSettingsStore.open(path)
    try:
        assert (await reopened.get_many([Scope.channel(19)]))[Scope.channel(19)] == {"seed": 19}
    finally:
        await reopened.close()
