"""End to end: the message actions "Explain" and "Ask about this" (issue 12), through real discord.py and the fakes."""

from __future__ import annotations

from typing import Any

from bot.answers.records import AnswerKind
from bot.cogs.message_actions import ASK_ABOUT, EXPLAIN, SLOW_DOWN
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness, RunningBot
from tests.fakes.fake_ollama import ChatScript, RecordedRequest

ALICE, BOB = 200, 201
CODE = "```py\nprint(1 / 0)\n```"


def components_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components", [])]


def bot_busy(running: RunningBot) -> bool:
    return any(getattr(cog, "active_replies", 0) for cog in running.bot.cogs.values())


def question_of(request: RecordedRequest) -> str:
    return str(request.json["messages"][-1]["content"])


async def final_reply(harness: Harness, running: RunningBot, target_id: int) -> dict[str, Any]:
    """The bot's (one-part) reply to `target_id` once it is final, with its Regenerate button."""

    def done() -> bool:
        parts = harness.replies_to(target_id)
        return (
            len(parts) == 1
            and not bot_busy(running)
            and not parts[0]["content"].endswith(STREAMING_MARKER)
            and any("regenerate" in c for c in components_of(parts[0]))
        )

    await harness.discord.wait_for(done, 10)
    return harness.replies_to(target_id)[0]


async def test_explain_replies_to_the_message_with_it_as_context_and_regenerates(harness: Harness) -> None:
    harness.ollama.scripts.extend(
        [ChatScript(tokens=["It", " divides", " by", " zero."]), ChatScript(tokens=["ZeroDivisionError."])]
    )
    running = await harness.start_bot()
    target = await harness.discord.send_user_message(f"why does this crash?\n{CODE}")

    token = await harness.discord.send_message_command(EXPLAIN, int(target["id"]), user_id=BOB)
    reply = await final_reply(harness, running, int(target["id"]))

    assert reply["content"] == "-# 💡 Explained for Bob\nIt divides by zero."
    (request,) = harness.ollama.chat_requests
    asked = question_of(request)
    assert asked.startswith("Bob: Explain this Discord message from Alice:")
    assert CODE in asked and "error message" in asked
    assert request.json["model"] == "llama3.2"  # the channel's model
    # The command's own response was only a private "thinking…", gone now; nobody was pinged.
    assert harness.discord.original_message(token) is None
    assert harness.discord.pings == []
    (regenerate,) = components_of(reply)
    record = await running.services.answers.find_by_key(int(regenerate.rsplit(":", 1)[1]))
    assert record is not None and record.kind is AnswerKind.ACTION and record.requester_id == BOB

    # Regenerate asks the same again and replaces the answer in place (the asker, or a channel manager, may).
    await harness.discord.click_button(int(reply["id"]), regenerate, user_id=BOB)
    await harness.discord.wait_for(
        lambda: (
            not bot_busy(running)
            and harness.discord.messages[int(reply["id"])]["content"].endswith("ZeroDivisionError.")
        )
    )
    assert question_of(harness.ollama.chat_requests[1]) == asked
    assert [m["id"] for m in harness.replies_to(int(target["id"]))] == [reply["id"]]


async def test_ask_about_this_asks_for_a_question_and_answers_with_the_message_and_its_file(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["The", " divisor", " is", " zero."])
    running = await harness.start_bot()
    log = b'Traceback (most recent call last):\n  File "app.py", line 3\nZeroDivisionError: division by zero\n'
    target = await harness.discord.send_user_message(
        "the job failed again", attachments=[("job.log", log, "text/plain")]
    )

    token = await harness.discord.send_message_command(ASK_ABOUT, int(target["id"]), user_id=BOB)
    await harness.discord.wait_for(lambda: harness.discord.modal_shown(token) is not None)
    modal = harness.discord.modal_shown(token)
    assert modal is not None and modal["title"] == "Ask about this message"
    assert harness.ollama.chat_requests == []  # nothing is asked before the question is given

    (field,) = [c["custom_id"] for row in modal["components"] for c in row["components"]]
    await harness.discord.submit_modal(token, {field: "what causes this and how do I fix it?"})
    reply = await final_reply(harness, running, int(target["id"]))

    assert reply["content"] == "> **Bob asked:** what causes this and how do I fix it?\n\nThe divisor is zero."
    (request,) = harness.ollama.chat_requests
    asked = question_of(request)
    assert asked.startswith("Bob: About this Discord message from Alice (attached: job.log):")
    assert "the job failed again" in asked
    assert "My question: what causes this and how do I fix it?" in asked
    assert "ZeroDivisionError: division by zero" in asked  # the attached file is read into the prompt
    assert harness.discord.pings == []


async def test_message_actions_follow_the_per_user_limit(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Fine."])
    running = await harness.start_bot(harness.settings(USER_REQUESTS_PER_MINUTE="1"))
    target = await harness.discord.send_user_message("a term: idempotent")

    await harness.discord.send_message_command(EXPLAIN, int(target["id"]))
    await final_reply(harness, running, int(target["id"]))
    again = await harness.discord.send_message_command(EXPLAIN, int(target["id"]))
    await harness.discord.wait_for(lambda: harness.discord.original_message(again) is not None)

    refusal = harness.discord.original_message(again)
    assert refusal is not None and refusal["flags"] & 64
    assert refusal["content"].startswith(SLOW_DOWN.split("{")[0])
    assert len(harness.ollama.chat_requests) == 1


async def test_a_message_action_where_the_bot_cannot_post_says_why(harness: Harness) -> None:
    running = await harness.start_bot()
    target = await harness.discord.send_user_message("explain me", channel_id=501)
    await harness.discord.deny_permissions(501, "send_messages")
    await harness.discord.wait_for(
        lambda: not running.bot.get_channel(501).permissions_for(running.bot.get_guild(400).me).send_messages  # type: ignore[union-attr]
    )

    token = await harness.discord.send_message_command(EXPLAIN, int(target["id"]))
    await harness.discord.wait_for(lambda: harness.discord.original_message(token) is not None)

    refusal = harness.discord.original_message(token)
    assert refusal is not None and refusal["flags"] & 64
    assert refusal["content"] == "I can't answer here: I need the **Send Messages** permission in this channel."
    assert harness.ollama.chat_requests == []


async def test_an_explanation_regenerates_after_a_restart(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Before."]), ChatScript(tokens=["After."])])
    running = await harness.start_bot()
    target = await harness.discord.send_user_message("EADDRINUSE")
    await harness.discord.send_message_command(EXPLAIN, int(target["id"]))
    reply = await final_reply(harness, running, int(target["id"]))
    await harness.stop_all()

    running = await harness.start_bot()
    (regenerate,) = components_of(reply)
    await harness.discord.click_button(int(reply["id"]), regenerate)
    await harness.discord.wait_for(
        lambda: not bot_busy(running) and harness.discord.messages[int(reply["id"])]["content"].endswith("After.")
    )
    assert harness.discord.messages[int(reply["id"])]["content"] == "-# 💡 Explained for Alice\nAfter."
    assert question_of(harness.ollama.chat_requests[1]) == question_of(harness.ollama.chat_requests[0])
