"""End to end: a bot missing a permission it needs says which one, where the person can see it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.conftest import Harness, command
from tests.fakes.fake_ollama import ChatScript

FORUM = 510


def reactions(harness: Harness, message: dict[str, Any]) -> list[str]:
    stored = harness.discord.messages[int(message["id"])]
    return [r["emoji"]["name"] for r in stored.get("reactions", []) if r["me"]]


def cannot_answer_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "can't answer" in r.getMessage()]


async def test_without_send_messages_a_mention_gets_a_reaction_and_the_log_names_the_permission(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    await harness.discord.deny_permissions(500, "send_messages")
    await harness.start_bot()

    asked = await harness.discord.send_user_message("hello?", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(reactions(harness, asked)))

    assert reactions(harness, asked) == ["🔇"]
    (warning,) = cannot_answer_warnings(caplog)
    assert "channel 500 (general)" in warning and "Send Messages permission" in warning
    assert harness.discord.bot_messages(500) == []
    assert harness.ollama.chat_requests == []  # nothing generated that could not be shown
    assert not [c for c in harness.discord.calls if c.status == 403]  # checked up front, not by failing


async def test_without_send_messages_in_threads_a_mention_in_a_thread_names_that_permission(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    harness.ollama.default_script = ChatScript(tokens=["here"])
    await harness.discord.deny_permissions(500, "send_messages_in_threads")
    await harness.start_bot()
    thread_id = await harness.discord.create_thread(500, "user thread")

    in_thread = await harness.discord.send_user_message("anyone?", channel_id=thread_id, mention_bot=True)
    await harness.discord.wait_for(lambda: bool(reactions(harness, in_thread)))
    (warning,) = cannot_answer_warnings(caplog)
    assert f"channel {thread_id}" in warning and "Send Messages in Threads permission" in warning
    assert harness.discord.bot_messages(thread_id) == []

    # Send Messages has no effect in threads, and the parent channel itself is fine.
    in_channel = await harness.discord.send_user_message("and here?", mention_bot=True)
    assert await harness.wait_for_reply(int(in_channel["id"])) == ["here"]


async def test_without_send_messages_or_add_reactions_only_the_log_says_why(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    await harness.discord.deny_permissions(500, "send_messages", "add_reactions")
    await harness.start_bot()

    asked = await harness.discord.send_user_message("hello?", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(cannot_answer_warnings(caplog)))
    await harness.discord.wait_for(harness.idle)  # the bot is done with the message

    (warning,) = cannot_answer_warnings(caplog)
    assert "channel 500 (general)" in warning and "Send Messages permission" in warning
    assert reactions(harness, asked) == []
    assert not harness.discord.calls_to("PUT", r"/reactions/")


async def test_without_read_message_history_the_question_is_answered_alone_with_a_note(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Paris."]), ChatScript(tokens=["About 2.1 million."])])
    await harness.start_bot()
    first = await harness.discord.send_user_message("capital of France?", mention_bot=True)
    await harness.wait_for_reply(int(first["id"]))
    answer = harness.replies_to(int(first["id"]))[0]

    await harness.discord.deny_permissions(500, "read_message_history")
    follow = await harness.discord.send_user_message("and its population?", reply_to=int(answer["id"]))

    def final_answer() -> dict[str, Any] | None:
        later = [m for m in harness.discord.bot_messages(500) if int(m["id"]) > int(follow["id"])]
        done = later and "⏳" not in later[-1]["content"] and harness.idle()
        return later[-1] if done else None

    await harness.discord.wait_for(lambda: final_answer() is not None)
    posted = final_answer()
    assert posted is not None
    text, note = posted["content"].split("\n")
    assert text == "About 2.1 million."
    assert note.startswith("-# ") and "**Read Message History** permission" in note
    assert "answered this message alone" in note
    # A reply needs Read Message History, so the answer is a plain message; the model got the question alone.
    assert "message_reference" not in posted
    assert harness.ollama.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "Alice: and its population?"}
    ]


async def test_chat_names_a_missing_create_public_threads_permission_without_trying(harness: Harness) -> None:
    await harness.discord.deny_permissions(500, "create_public_threads")
    await harness.start_bot()
    answer = await command(harness, "chat", channel_id=500)
    assert answer["flags"] & 64
    assert answer["content"] == "I need the **Create Public Threads** permission here to start a chat thread."
    assert not harness.discord.calls_to("POST", r"/threads$")


async def test_chat_names_a_missing_send_messages_in_threads_permission(harness: Harness) -> None:
    await harness.discord.deny_permissions(500, "send_messages_in_threads", "create_public_threads")
    await harness.start_bot()
    answer = await command(harness, "chat", channel_id=500)
    assert answer["flags"] & 64
    assert "**Create Public Threads** and **Send Messages in Threads** permissions" in answer["content"]
    assert harness.discord.threads == {}  # no empty thread left behind

    await harness.discord.deny_permissions(501, "send_messages_in_threads")
    answer = await command(harness, "chat", channel_id=501)
    assert answer["content"] == "I need the **Send Messages in Threads** permission here to start a chat thread."
    assert harness.discord.threads == {}


async def test_chat_in_a_forum_names_a_missing_send_messages_permission(harness: Harness) -> None:
    await harness.discord.add_channel(FORUM, "help-forum", kind=15)
    await harness.discord.deny_permissions(FORUM, "send_messages", "create_public_threads")
    await harness.start_bot()
    answer = await command(harness, "chat", channel_id=FORUM)
    assert answer["flags"] & 64
    # A forum post needs Send Messages; Create Public Threads does not matter there.
    assert answer["content"] == "I need the **Send Messages** permission here to start a chat thread."
    assert harness.discord.threads == {}
