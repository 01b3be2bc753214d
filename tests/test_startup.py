"""Start-up failures explain themselves: refused intents and rejected tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.__main__ import INTENT_HELP, LOGIN_REFUSED_HELP, run_bot
from bot.channel_settings.store import DATABASE_FILENAME
from bot.config import Settings
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_ollama import FakeOllama


async def run_against(fake: FakeDiscord, ollama: FakeOllama, token: str, data_dir: Path) -> int:
    await fake.start()
    fake.patch_discord_py()
    try:
        settings = Settings.from_env({"DISCORD_TOKEN": token, "OLLAMA_HOST": ollama.url, "DATA_DIR": str(data_dir)})
        return await run_bot(settings)
    finally:
        fake.restore_discord_py()
        await fake.close()


async def test_refused_message_content_intent_names_the_portal_switch(
    ollama_server: FakeOllama, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake = FakeDiscord(token="tok", allowed_intents=1 | 512)  # no message content (1 << 15)
    assert await run_against(fake, ollama_server, "tok", tmp_path) == 1
    err = capsys.readouterr().err
    assert err.strip() == INTENT_HELP
    assert "MESSAGE CONTENT INTENT" in err


async def test_rejected_token_is_reported_without_traceback(
    ollama_server: FakeOllama, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake = FakeDiscord(token="right")
    assert await run_against(fake, ollama_server, "wrong", tmp_path) == 1
    err = capsys.readouterr().err
    assert err.strip() == LOGIN_REFUSED_HELP
    assert "Traceback" not in err


async def test_corrupt_settings_database_stops_start_up_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    database = data / DATABASE_FILENAME
    database.write_bytes(b"this is not a database" * 100)
    settings = Settings.from_env({"DISCORD_TOKEN": "tok", "DATA_DIR": str(data)})

    assert await run_bot(settings) == 1
    err = capsys.readouterr().err
    assert str(database) in err
    assert "Traceback" not in err
    assert database.read_bytes() == b"this is not a database" * 100  # never silently reset
