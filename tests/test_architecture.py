"""Layering guard: the pure core never imports discord."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"
CORE = [
    *sorted((BOT / "ollama").glob("*.py")),
    *sorted((BOT / "streaming").glob("*.py")),
    *sorted((BOT / "channel_settings").glob("*.py")),
    *sorted((BOT / "answers").glob("*.py")),
    *sorted((BOT / "knowledge").glob("*.py")),
    *sorted((BOT / "summaries").glob("*.py")),
    *sorted((BOT / "usage").glob("*.py")),
    BOT / "message_actions.py",
    *sorted((BOT / "storage").glob("*.py")),
    BOT / "leadership.py",
    BOT / "shards.py",
    BOT / "conversation.py",
    BOT / "context_budget.py",
    BOT / "prompt_preparation.py",
    BOT / "attachments.py",
    BOT / "config.py",
    BOT / "clock.py",
    BOT / "backoff.py",
]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(BOT)))
def test_core_module_does_not_import_discord(path: Path) -> None:
    offenders = {name for name in imported_modules(path) if name == "discord" or name.startswith("discord.")}
    assert not offenders, f"{path.name} imports {offenders}; keep Discord in the adapters (cogs, discord_io, app)"


@pytest.mark.parametrize("path", sorted(BOT.rglob("*.py")), ids=lambda p: str(p.relative_to(BOT)))
def test_only_the_composition_root_reads_the_environment(path: Path) -> None:
    if path.name == "__main__.py":
        return
    source = path.read_text(encoding="utf-8")
    assert "os.environ" not in source and "getenv" not in source
