"""Configuration parsing: defaults, Ollama host forms, and every problem reported at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings


def test_defaults_with_only_a_token() -> None:
    settings = Settings.from_env({"DISCORD_TOKEN": "abc"})
    assert settings.discord_token == "abc"
    assert settings.ollama_host == "http://127.0.0.1:11434"
    assert settings.ollama_model == "llama3.2"
    assert settings.data_dir == Path("data")
    assert settings.log_level == "INFO"
    # Grace plus final edits fits under the 10 s after which a plain `docker stop` kills the container.
    assert settings.shutdown_grace_seconds == 7.0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("ollama:11434", "http://ollama:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("ollama", "http://ollama:11434"),
    ],
)
def test_ollama_host_forms(raw: str, expected: str) -> None:
    assert Settings.from_env({"DISCORD_TOKEN": "t", "OLLAMA_HOST": raw}).ollama_host == expected


def test_all_problems_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"OLLAMA_HOST": "ftp://x", "LOG_LEVEL": "LOUD", "EDIT_INTERVAL": "fast", "HISTORY_MAX_MESSAGES": "0"}
        )
    problems = caught.value.problems
    assert len(problems) == 5
    joined = "\n".join(problems)
    for key in ("DISCORD_TOKEN", "OLLAMA_HOST", "LOG_LEVEL", "EDIT_INTERVAL", "HISTORY_MAX_MESSAGES"):
        assert key in joined
    assert "between 1 and 500" in joined


def test_bot_prefix_on_token_is_tolerated() -> None:
    assert Settings.from_env({"DISCORD_TOKEN": "Bot abc"}).discord_token == "abc"


def test_missing_token_exits_non_zero_without_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "DISCORD_TOKEN is not set" in proc.stderr
    assert "Traceback" not in proc.stderr
