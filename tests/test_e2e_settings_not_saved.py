"""End to end in this process: a settings change the database does not take is reported, on either backend.

The real outage is in tests/test_e2e_postgres.py (PostgreSQL stopped under a running bot). Here the
SQLite file fails its write as a full or broken disk makes it (SQLITE_FULL / SQLITE_IOERR), which the
store turns into a StoreError, so the same reporting is checked without PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from bot.channel_settings.store import Scope, _SqliteFile
from bot.cogs.settings_commands import NOT_RESET, NOT_SAVED
from tests.conftest import Harness


async def answer_of(harness: Harness, name: str, options: dict[str, Any] | None = None) -> str:
    token = await harness.discord.send_slash_command(name, options)

    def answered() -> bool:
        message = harness.discord.original_message(token)
        return message is not None and bool(message.get("content"))

    await harness.discord.wait_for(answered)
    message = harness.discord.original_message(token)
    assert message is not None and message["flags"] & 64  # only the person who asked sees it
    return str(message["content"])


def failing_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: _SqliteFile, *args: object) -> None:
        raise self._failed("save settings", sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(_SqliteFile, "write", full)
    monkeypatch.setattr(_SqliteFile, "delete", full)


async def test_a_change_the_database_refuses_is_reported_and_nothing_changes(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await harness.start_bot()
    assert "is now 0.5" in await answer_of(harness, "set", {"option": "temperature", "value": "0.5"})

    failing_disk(monkeypatch)
    assert await answer_of(harness, "set", {"option": "temperature", "value": "1.5"}) == NOT_SAVED
    assert await answer_of(harness, "reset", {"option": "temperature"}) == NOT_RESET
    monkeypatch.undo()

    assert await running.services.store.get(Scope.channel(500)) == {"temperature": 0.5}
