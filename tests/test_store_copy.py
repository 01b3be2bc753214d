"""`python -m bot store copy`: an installation moves between SQLite and PostgreSQL with everything in it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.__main__ import answer_store_for, run_store_copy
from bot.answers.records import AnswerKind, AnswerRecord, AskPrompt
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import Scope, SettingsStore, SqliteSettingsStore
from bot.storage.copy import schema_tables
from tests.postgres_server import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 1, 12, 0, 0, 125000, tzinfo=UTC)
SNOWFLAKE = 2**63 - 1


def record(answer_id: str, key: int, **changes: object) -> AnswerRecord:
    values: dict[str, object] = {
        "answer_id": answer_id,
        "key": key,
        "kind": AnswerKind.MESSAGE,
        "guild_id": 400,
        "channel_id": 500,
        "requester_id": 200,
        "model": "llama3.2",
        "created_at": T0,
        "instance": "old-box/1",
        "message_ids": (key + 1, key + 2),
        "settings": {"temperature": 0.5, "think": "high"},
        **changes,
    }
    return AnswerRecord(**values)  # type: ignore[arg-type]


RECORDS = [
    record("a1", 1001),
    record("a2", SNOWFLAKE - 5, kind=AnswerKind.ASK, prompt=AskPrompt(200, "Alice", "why?"), message_ids=()),
    record("a3", 1003, generation=1, host="http://gpu:11434", eval_count=12),
]
SETTINGS = {
    Scope.channel(500): {"model": "qwen3:8b", "system": "Be brief.\nAlways.", "temperature": 0.7},
    Scope.guild(400): {"auto_reply": True, "seed": 2**31 - 1},
    Scope.channel(SNOWFLAKE): {"history": 10},
}


async def fill(store: SettingsStore) -> None:
    for scope, values in SETTINGS.items():
        await store.set_many(scope, values, updated_by=SNOWFLAKE)
    answers = answer_store_for(store)
    for answer in RECORDS:
        await answers.save_answer(answer)


async def contents(store: SettingsStore) -> tuple[object, ...]:
    answers = answer_store_for(store)
    return (
        await store.get_many(list(SETTINGS)),
        [await answers.answer_by_key(answer.key) for answer in RECORDS],
        await answers.answer_by_message(1002),
    )


def test_the_tables_come_from_the_migrations_parents_first() -> None:
    names = [table.name for table in schema_tables()]
    assert set(names) >= {"settings", "answers", "answer_messages"}
    assert names.index("answers") < names.index("answer_messages")
    assert schema_tables()[names.index("settings")].columns[:3] == ("scope_kind", "scope_id", "key")


async def test_sqlite_to_postgres_and_back_keeps_everything(tmp_path: Path, postgres_url: str) -> None:
    source = tmp_path / "old" / "ollacord.sqlite3"
    old = await SqliteSettingsStore.open(source)
    await fill(old)
    expected = await contents(old)
    await old.close()

    out = io.StringIO()
    assert await run_store_copy(f"sqlite:///{source}", postgres_url, out) == 0
    for count in ("6 settings", "3 answers", "4 answer_messages"):  # rows, not scopes or records
        assert count in out.getvalue()
    assert PASSWORD not in out.getvalue()
    postgres = await PostgresSettingsStore.open(postgres_url)
    try:
        assert await contents(postgres) == expected
    finally:
        await postgres.close()

    back = tmp_path / "back" / "ollacord.sqlite3"
    assert await run_store_copy(postgres_url, f"sqlite:///{back}", io.StringIO()) == 0
    again = await SqliteSettingsStore.open(back)
    try:
        assert await contents(again) == expected
    finally:
        await again.close()


async def test_a_target_with_data_is_refused_and_left_alone(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "ollacord.sqlite3"
    old = await SqliteSettingsStore.open(source)
    await fill(old)
    await old.close()
    target = await PostgresSettingsStore.open(postgres_url)
    await target.set_many(Scope.channel(1), {"seed": 9})
    await target.close()

    assert await run_store_copy(f"sqlite:///{source}", postgres_url) == 1
    assert "already holds ollacord data (1 rows in settings)" in capsys.readouterr().err
    target = await PostgresSettingsStore.open(postgres_url)
    try:
        assert await target.get(Scope.channel(500)) == {}
        assert await target.get(Scope.channel(1)) == {"seed": 9}
    finally:
        await target.close()


@pytest.mark.parametrize(
    ("source", "target", "code", "said"),
    [
        ("sqlite:///{tmp}/missing.sqlite3", "sqlite:///{tmp}/new.sqlite3", 1, "no SQLite database at"),
        ("mysql://x/y", "sqlite:///{tmp}/new.sqlite3", 2, "unknown database kind"),
        ("sqlite:///{tmp}/a.sqlite3", "sqlite:///{tmp}/a.sqlite3", 1, "the same database"),
        ("sqlite:///{tmp}/a.sqlite3", "postgresql://u:secret@127.0.0.1:1/x", 2, "can't reach PostgreSQL"),
    ],
)
async def test_bad_arguments_are_one_line(
    tmp_path: Path, source: str, target: str, code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = await SqliteSettingsStore.open(tmp_path / "a.sqlite3")
    await store.close()
    assert await run_store_copy(source.format(tmp=tmp_path), target.format(tmp=tmp_path)) == code
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1 and "secret" not in err


def test_the_command_line_needs_no_token(tmp_path: Path) -> None:
    source = tmp_path / "a.sqlite3"
    env = {"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "store",
            "copy",
            "--from",
            f"sqlite:///{source}",
            "--to",
            f"sqlite:///{tmp_path}/b.sqlite3",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr  # no source file yet: refused, but it got that far
    assert "no SQLite database at" in result.stderr and "DISCORD_TOKEN" not in result.stderr
