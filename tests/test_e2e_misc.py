"""End to end: the smaller things a user notices (false history notes, reply pings, /status and /models
for non-admins, command failures that cannot be reported)."""

from __future__ import annotations

from typing import Any

from bot.cogs.chat import HISTORY_TRIMMED, THREAD_WELCOME
from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript


async def command(harness: Harness, name: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Run a slash command; return its first visible answer (the original response)."""
    token = await harness.discord.send_slash_command(name, options, **kw)
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    message = harness.discord.original_message(token)
    assert message is not None
    return message


# ---- a fresh /chat thread


async def test_first_answer_in_a_fresh_chat_thread_has_no_history_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Sure", "."])
    await harness.start_bot()
    await command(harness, "chat", {"topic": "help"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))
    assert harness.discord.bot_messages(thread_id)[0]["content"] == THREAD_WELCOME

    first = await harness.discord.send_user_message("how do I sort a dict?", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["Sure."]
    second = await harness.discord.send_user_message("by value", channel_id=thread_id)
    assert await harness.wait_for_reply(int(second["id"])) == ["Sure."]

    assert HISTORY_TRIMMED not in "".join(m["content"] for m in harness.discord.bot_messages(thread_id))
    # The opening message is the bot's own invitation, not a turn of the conversation.
    assert [m["role"] for m in harness.ollama.chat_requests[-1].json["messages"]] == ["user", "assistant", "user"]


async def test_the_welcome_takes_no_place_in_the_history_limit(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "set", {"option": "history", "value": "3"})
    await command(harness, "chat", {"topic": "short"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))

    first = await harness.discord.send_user_message("one", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["ok"]
    # Three messages before this one (welcome, question, answer): the limit reads them all.
    second = await harness.discord.send_user_message("two", channel_id=thread_id)
    assert await harness.wait_for_reply(int(second["id"])) == ["ok"]
    assert [m["content"] for m in harness.ollama.chat_requests[-1].json["messages"]] == [
        "Alice: one",
        "ok",
        "Alice: two",
    ]


async def test_a_thread_that_outgrew_the_history_limit_still_gets_the_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "set", {"option": "history", "value": "2"})
    await command(harness, "chat", {"topic": "long"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))

    first = await harness.discord.send_user_message("one", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["ok"]
    second = await harness.discord.send_user_message("two", channel_id=thread_id)
    parts = await harness.wait_for_reply(int(second["id"]))
    assert parts == [f"ok\n{HISTORY_TRIMMED}"]
