"""End to end: /usage on PostgreSQL (DATABASE_URL=postgresql://…), through real discord.py and the fakes.

Before the PostgreSQL usage store, such an installation kept its figures in memory: /usage forgot every
answer at each restart, and instances sharing the database each showed only their own.
"""

from __future__ import annotations

from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript
from tests.test_e2e_usage import ALICE, BOB, answered_by, ask, row, usage


async def test_usage_figures_on_postgres_survive_a_restart(harness: Harness, postgres_url: str) -> None:
    harness.ollama.default_script = ChatScript(tokens=["One", " two", " three."])
    settings = harness.settings(DATABASE_URL=postgres_url)
    running = await harness.start_bot(settings)
    await ask(harness, "first question", user_id=ALICE)
    await ask(harness, "second question", user_id=BOB, channel_id=501)
    await answered_by(harness, running)
    prompt_tokens = sum(r.fit.prompt_tokens for r in harness.ollama.chat_requests if r.fit is not None)

    before = await usage(harness, {"period": "day", "by": "user"})
    assert row(before["content"], "total")[:3] == ["2", f"{prompt_tokens:,}", "6"]

    # Another start on the same database (a restart, or the standby taking over) sees the same figures.
    await harness.stop_all()
    await harness.start_bot(settings)
    after = await usage(harness, {"period": "day", "by": "user"})
    assert row(after["content"], "Alice")[0] == "1" and row(after["content"], "Bob")[0] == "1"
    assert row(after["content"], "total")[:3] == ["2", f"{prompt_tokens:,}", "6"]
