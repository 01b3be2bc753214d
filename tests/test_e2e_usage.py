"""End to end: /usage and the per-model token counters (issue 12), through real discord.py and the fakes."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from bot.cogs.usage_commands import OTHERS_ADMINS_ONLY
from bot.usage.store import Dimension, UsageQuery
from tests.conftest import Harness, RunningBot
from tests.fakes.fake_discord import EVERYONE_PERMISSIONS
from tests.fakes.fake_ollama import ChatScript

ALICE, BOB = 200, 201


def components_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components", [])]


async def ask(harness: Harness, prompt: str, *, user_id: int, channel_id: int = 500) -> None:
    token = await harness.discord.send_slash_command("ask", {"prompt": prompt}, user_id=user_id, channel_id=channel_id)
    await harness.discord.wait_for(
        lambda: (
            harness.idle()
            and any("regenerate" in c for c in components_of(harness.discord.original_message(token) or {}))
        )
    )


async def usage(harness: Harness, options: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Run /usage and return its (private) answer once it is there."""
    token = await harness.discord.send_slash_command("usage", options, **kwargs)

    def answered() -> bool:
        message = harness.discord.original_message(token) or {}
        return bool(message.get("content")) and not message["flags"] & 128  # no longer "thinking…"

    await harness.discord.wait_for(answered)
    message = harness.discord.original_message(token)
    assert message is not None and message["flags"] & 64, "usage is only shown to the person who asked"
    return message


def row(table: str, name: str) -> list[str]:
    """The cells of the table row for `name`: answers, prompt tokens, answer tokens, time."""
    for line in table.splitlines():
        if line.startswith(name + " "):
            return re.split(r"\s{2,}", line[len(name) :].strip())
    raise AssertionError(f"no row {name!r} in\n{table}")


async def answered_by(harness: Harness, running: RunningBot) -> None:
    """Wait until every answer so far is in the figures (each is added as its answer ends)."""
    ledger = running.services.usage
    expected = len(harness.ollama.chat_requests)
    today = ledger.today()
    query = UsageQuery(guild_id=400, since=today, until=today, by=Dimension.MODEL)
    async with asyncio.timeout(10):
        while sum(t.amounts.answers for t in await ledger.store.usage_totals(query)) != expected:
            await asyncio.sleep(0.005)


async def test_usage_numbers_match_the_answers_given(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["One", " two", " three."])
    await harness.discord.add_channel(502, "dev")
    running = await harness.start_bot()
    # In different channels, so no answer waits for another's writes (Discord's 5 per 5 s per channel).
    asked = ((ALICE, "first question", 500), (ALICE, "second question, a bit longer", 501), (BOB, "third", 502))
    for user_id, text, channel_id in asked:
        await ask(harness, text, user_id=user_id, channel_id=channel_id)
    await answered_by(harness, running)
    prompt_tokens = [r.fit.prompt_tokens for r in harness.ollama.chat_requests if r.fit is not None]
    alice_prompt, bob_prompt = prompt_tokens[0] + prompt_tokens[1], prompt_tokens[2]

    # Alice has Administrator: the whole server, by user.
    by_user = await usage(harness, {"period": "day", "by": "user"})
    table = by_user["content"]
    assert table.startswith("📊 **Test Guild** · today")
    assert row(table, "Alice")[:3] == ["2", f"{alice_prompt:,}", "6"]
    assert row(table, "Bob")[:3] == ["1", f"{bob_prompt:,}", "3"]
    assert row(table, "total")[:3] == ["3", f"{alice_prompt + bob_prompt:,}", "9"]
    assert table.index("Alice") < table.index("Bob")  # heaviest first

    by_model = await usage(harness, {"period": "week", "by": "model"})
    assert row(by_model["content"], "llama3.2")[:3] == ["3", f"{alice_prompt + bob_prompt:,}", "9"]
    by_channel = await usage(harness, {"period": "month", "by": "channel"}, channel_id=502)
    assert [row(by_channel["content"], f"#{name}")[0] for name in ("general", "random", "dev")] == ["1", "1", "1"]

    # /metrics: tokens per model.
    metrics = running.services.metrics.render()
    assert (
        f'ollacord_model_tokens_total{{model="llama3.2",kind="prompt"}} {float(alice_prompt + bob_prompt)}' in metrics
    )
    assert 'ollacord_model_tokens_total{model="llama3.2",kind="answer"} 9.0' in metrics

    # The figures are in the database: they survive a restart.
    await harness.stop_all()
    await harness.start_bot()
    again = await usage(harness, {"period": "day", "by": "user"})
    assert row(again["content"], "total")[:3] == ["3", f"{alice_prompt + bob_prompt:,}", "9"]


async def test_only_admins_see_someone_elses_usage_everyone_sees_their_own(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Yes."])
    running = await harness.start_bot()
    await ask(harness, "alice asks", user_id=ALICE)
    await ask(harness, "bob asks", user_id=BOB, channel_id=501)
    await answered_by(harness, running)

    refused = await usage(harness, {}, user_id=BOB, permissions=EVERYONE_PERMISSIONS)
    assert "Your usage" in refused["content"]  # without `user`, Bob sees his own usage only
    assert row(refused["content"], "llama3.2")[0] == "1"
    assert "Alice" not in refused["content"]

    token = await harness.discord.send_slash_command_with_members(
        "usage", {}, {"user": ALICE}, user_id=BOB, permissions=EVERYONE_PERMISSIONS
    )
    await harness.discord.wait_for(lambda: harness.discord.original_message(token) is not None)
    refusal = harness.discord.original_message(token)
    assert refusal is not None and refusal["flags"] & 64
    assert refusal["content"] == OTHERS_ADMINS_ONLY

    # An admin may look at anyone's.
    token = await harness.discord.send_slash_command_with_members("usage", {"by": "model"}, {"user": BOB})
    await harness.discord.wait_for(
        lambda: "llama3.2" in (harness.discord.original_message(token) or {}).get("content", "")
    )
    shown = (harness.discord.original_message(token) or {})["content"]
    assert shown.startswith("📊 **Bob**") and row(shown, "llama3.2")[0] == "1"
