"""End to end: /summarize and "Summarize from here" (issue 12), through the real discord.py and both fakes."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.channel_settings.store import Scope
from bot.cogs.summarize_commands import CANNOT_READ, SUMMARIZE_FROM_HERE
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness, RunningBot
from tests.fakes.fake_ollama import ChatScript, RecordedRequest

ALICE, BOB = 200, 201
TOPICS = (
    "we should move the deploy to friday once the tests pass",
    "the staging database still needs the new index before that",
    "who owns the release notes this time around",
    "I can take the notes if someone reviews the migration",
)


def history(count: int) -> list[tuple[int, str]]:
    """`count` messages, Alice and Bob in turn, each naming its number."""
    return [(ALICE if i % 2 == 0 else BOB, f"message {i}: {TOPICS[i % len(TOPICS)]}") for i in range(count)]


def components_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components", [])]


def user_text(request: RecordedRequest) -> str:
    return str(request.json["messages"][-1]["content"])


def bot_busy(running: RunningBot) -> bool:
    return any(getattr(cog, "active_replies", 0) for cog in running.bot.cogs.values())


async def finished_answer(harness: Harness, running: RunningBot, token: str, timeout: float = 10.0) -> dict[str, Any]:
    """The command's response once its answer is final (Regenerate shown, nothing streaming)."""

    def done() -> bool:
        original = harness.discord.original_message(token) or {}
        return (
            not bot_busy(running)
            and not original.get("content", "").endswith(STREAMING_MARKER)
            and any("regenerate" in c for c in components_of(original))
        )

    await harness.discord.wait_for(done, timeout)
    original = harness.discord.original_message(token)
    assert original is not None
    return original


def summary_count(content: str) -> int:
    found = re.search(r"Summary of (\d+) messages?", content)
    assert found is not None, content
    return int(found.group(1))


async def test_a_long_span_with_a_small_context_is_summarized_in_parts_naming_the_speakers(harness: Harness) -> None:
    harness.discord.post_history(
        500, history(150), start=datetime.now(UTC) - timedelta(hours=3), spacing=timedelta(minutes=1)
    )
    first_part, second_part = asyncio.Event(), asyncio.Event()
    harness.ollama.scripts.extend(
        [
            ChatScript(tokens=["Alice", " proposed", " Friday."], hold=first_part),
            ChatScript(tokens=["Bob", " wants", " the", " index."], hold=second_part),
        ]
    )
    harness.ollama.script_for = lambda body: (
        ChatScript(tokens=["Deploy", " on", " Friday", "; notes", " still", " open."])
        if "Combine them" in str(body["messages"][-1]["content"])
        else None
    )
    harness.ollama.default_script = ChatScript(tokens=["More", " notes."])
    running = await harness.start_bot()
    await running.services.store.set_many(Scope.channel(500), {"num_ctx": 2048})

    token = await harness.discord.send_slash_command("summarize", {"messages": 150})

    def status() -> str:
        return str((harness.discord.original_message(token) or {}).get("content", ""))

    # The progress shows while each part is summarized (the fake model holds each part until seen).
    await harness.discord.wait_for(lambda: "part 1 of" in status())
    parts = int(re.search(r"part 1 of (\d+)", status()).group(1))  # type: ignore[union-attr]
    first_part.set()
    await harness.discord.wait_for(lambda: f"part 2 of {parts}" in status(), timeout=10)
    second_part.set()
    answer = await finished_answer(harness, running, token)

    assert parts >= 3
    requests = harness.ollama.chat_requests
    assert len(requests) == parts + 1  # one request per part, then the combine
    # Every request fit the context: Ollama cut nothing silently.
    assert all(r.fit is not None and not r.fit.truncated for r in requests)
    part_texts = [user_text(r) for r in requests[:parts]]
    assert all("Alice: message" in text and "Bob: message" in text for text in part_texts)
    for i in range(150):  # each message in exactly one part, in order
        assert sum(f"message {i}: " in text for text in part_texts) == 1
    combine = user_text(requests[-1])
    assert "Alice proposed Friday." in combine and "Bob wants the index." in combine
    assert "Part 1 (" in combine and f"Part {parts} (" in combine

    content = answer["content"]
    assert summary_count(content) == 150
    assert content.endswith("Deploy on Friday; notes still open.")
    first_id = next(m["id"] for m in harness.discord.messages.values() if m["content"].startswith("message 0: "))
    assert f"(<https://discord.com/channels/400/500/{first_id}>)" in content
    assert "Only the newest" not in content  # the span was not cut by the limit
    shown = harness.discord.message_history[int(answer["id"])]
    assert any(f"part 1 of {parts}" in text for text in shown)
    assert any(f"part 2 of {parts}" in text for text in shown)


async def test_since_a_message_link_or_a_duration(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Summary."])
    now = datetime.now(UTC)
    # 24 messages 10 minutes apart, the last 5 minutes ago: 2 hours back reaches message 12 (115 min ago).
    posted = harness.discord.post_history(
        500, history(24), start=now - timedelta(minutes=235), spacing=timedelta(minutes=10)
    )
    running = await harness.start_bot()

    link = f"https://discord.com/channels/400/500/{posted[20]['id']}"
    by_link = await harness.discord.send_slash_command("summarize", {"since": link})
    answer = await finished_answer(harness, running, by_link)
    assert summary_count(answer["content"]) == 4  # messages 20 to 23
    asked = user_text(harness.ollama.chat_requests[-1])
    assert "message 20: " in asked and "message 23: " in asked and "message 19: " not in asked
    assert f"/channels/400/500/{posted[20]['id']}>" in answer["content"]

    by_duration = await harness.discord.send_slash_command("summarize", {"since": "2h"})
    answer = await finished_answer(harness, running, by_duration)
    # Messages 12 to 23, and the summary posted a moment ago: it is part of the channel's discussion too.
    assert summary_count(answer["content"]) == 13
    asked = user_text(harness.ollama.chat_requests[-1])
    assert "message 12: " in asked and "message 11: " not in asked
    assert "ollacord: 📋 **Summary of 4 messages**" in asked
    assert "Alice: message 12" in asked and "Bob: message 13" in asked

    # A cap smaller than the span keeps the newest messages and says so.
    capped = await harness.discord.send_slash_command("summarize", {"since": "2h", "messages": 5})
    answer = await finished_answer(harness, running, capped)
    assert summary_count(answer["content"]) == 5
    assert "Only the newest 5 messages" in answer["content"]

    bad = await harness.discord.send_slash_command("summarize", {"since": "last tuesday"})
    await harness.discord.wait_for(lambda: harness.discord.original_message(bad) is not None)
    refusal = harness.discord.original_message(bad)
    assert refusal is not None and refusal["flags"] & 64
    assert "couldn't read `since`" in refusal["content"]
    assert len(harness.ollama.chat_requests) == 3


async def test_private_summary_is_seen_only_by_the_asker_and_regenerates_privately(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Secret", " summary."]), ChatScript(tokens=["Another", " one."])])
    harness.discord.post_history(
        500, history(10), start=datetime.now(UTC) - timedelta(minutes=30), spacing=timedelta(minutes=1)
    )
    running = await harness.start_bot()

    token = await harness.discord.send_slash_command("summarize", {"private": True})
    answer = await finished_answer(harness, running, token)

    assert answer["flags"] & 64  # ephemeral: only the person who asked sees it
    assert summary_count(answer["content"]) == 10 and answer["content"].endswith("Secret summary.")
    assert harness.discord.bot_messages(500) == []  # nothing public in the channel
    assert harness.discord.calls_to("PATCH", r"^/channels/") == []  # never edited through the channel routes

    (regenerate,) = components_of(answer)
    await harness.discord.click_button(int(answer["id"]), regenerate)
    await harness.discord.wait_for(
        lambda: (
            not bot_busy(running)
            and (harness.discord.messages.get(int(answer["id"])) or {}).get("content", "").endswith("Another one.")
        )
    )
    again = harness.discord.messages[int(answer["id"])]
    assert again["flags"] & 64 and summary_count(again["content"]) == 10
    assert harness.discord.bot_messages(500) == []
    assert user_text(harness.ollama.chat_requests[1]) == user_text(harness.ollama.chat_requests[0])  # the same span


async def test_summarize_from_here_covers_the_selected_message_to_now(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["From", " here."]), ChatScript(tokens=["Again."])])
    posted = harness.discord.post_history(
        500, history(10), start=datetime.now(UTC) - timedelta(minutes=30), spacing=timedelta(minutes=1)
    )
    running = await harness.start_bot()

    token = await harness.discord.send_message_command(SUMMARIZE_FROM_HERE, int(posted[4]["id"]), user_id=BOB)
    answer = await finished_answer(harness, running, token)

    assert summary_count(answer["content"]) == 6  # messages 4 to 9
    asked = user_text(harness.ollama.chat_requests[0])
    assert "message 4: " in asked and "message 9: " in asked and "message 3: " not in asked
    assert answer["content"].endswith("From here.")

    # Regenerate (a public summary): the same span again, replacing the answer in place.
    (regenerate,) = components_of(answer)
    await harness.discord.click_button(int(answer["id"]), regenerate, user_id=BOB)
    await harness.discord.wait_for(
        lambda: not bot_busy(running) and harness.discord.messages[int(answer["id"])]["content"].endswith("Again.")
    )
    assert user_text(harness.ollama.chat_requests[1]) == asked
    assert summary_count(harness.discord.messages[int(answer["id"])]["content"]) == 6


async def test_the_bots_status_notes_are_left_out(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["First", " answer."]), ChatScript(tokens=["Summary."])])
    running = await harness.start_bot()
    prompt = await harness.discord.send_user_message("what is a mutex?", mention_bot=True)
    await harness.wait_for_reply(int(prompt["id"]))
    reply = harness.replies_to(int(prompt["id"]))[0]
    # An answer with a note under it, and a status-only message from the bot.
    harness.discord.messages[int(reply["id"])]["content"] = "A lock.\n-# ⏹️ stopped"
    harness.discord.post_history(
        500,
        [(running.bot.user.id, "-# ⏳ Waiting for Ollama: position 2 of 3 in line.")],  # type: ignore[union-attr]
        start=datetime.now(UTC),
        spacing=timedelta(seconds=1),
    )

    token = await harness.discord.send_slash_command("summarize", {"messages": 10})
    answer = await finished_answer(harness, running, token)

    asked = user_text(harness.ollama.chat_requests[-1])
    # (The fake's 3-digit user ids are too short for discord.py's clean_content to spell <@100> as @ollacord.)
    assert "] Alice: <@100> what is a mutex?\n" in asked and asked.endswith("] ollacord: A lock.")
    assert "stopped" not in asked and "Waiting for Ollama" not in asked
    assert summary_count(answer["content"]) == 2


async def test_a_channel_the_bot_cannot_read_gets_a_clear_message(harness: Harness) -> None:
    running = await harness.start_bot()
    await harness.discord.deny_permissions(501, "read_message_history")
    await harness.discord.wait_for(
        lambda: not running.bot.get_channel(501).permissions_for(running.bot.get_guild(400).me).read_message_history  # type: ignore[union-attr]
    )

    token = await harness.discord.send_slash_command("summarize", {}, channel_id=501)
    await harness.discord.wait_for(lambda: harness.discord.original_message(token) is not None)

    refusal = harness.discord.original_message(token)
    assert refusal is not None and refusal["flags"] & 64
    assert refusal["content"] == CANNOT_READ.format(permissions="**Read Message History**", s="")
    assert harness.ollama.chat_requests == []

    # A person who may not read the history either is not told what it holds.
    mine = await harness.discord.send_slash_command("summarize", {}, user_id=BOB, permissions="0")
    await harness.discord.wait_for(lambda: harness.discord.original_message(mine) is not None)
    assert "You can't read" in (harness.discord.original_message(mine) or {})["content"]


async def test_stop_during_a_part_ends_the_summary_and_its_request(harness: Harness) -> None:
    harness.discord.post_history(
        500, history(150), start=datetime.now(UTC) - timedelta(hours=3), spacing=timedelta(minutes=1)
    )
    held = asyncio.Event()
    harness.ollama.scripts.append(ChatScript(tokens=["Never", " seen."], hold=held))
    running = await harness.start_bot()
    await running.services.store.set_many(Scope.channel(500), {"num_ctx": 2048})

    token = await harness.discord.send_slash_command("summarize", {"messages": 150})
    await harness.discord.wait_for(
        lambda: "part 1 of" in (harness.discord.original_message(token) or {}).get("content", "")
    )
    status = harness.discord.original_message(token)
    assert status is not None
    (stop,) = components_of(status)
    await harness.discord.click_button(int(status["id"]), stop)

    # The part being summarized is closed on Ollama's side, and nothing more is asked.
    gone = await harness.ollama.wait_for_disconnect()
    assert gone is harness.ollama.chat_requests[0]
    await harness.discord.wait_for(
        lambda: not bot_busy(running) and "stopped" in harness.discord.messages[int(status["id"])]["content"]
    )
    final = harness.discord.messages[int(status["id"])]
    assert final["content"] == "-# ⏹️ stopped"
    assert ["regenerate" in c for c in components_of(final)] == [True]
    held.set()
    assert len(harness.ollama.chat_requests) == 1


async def test_a_private_summary_ends_with_a_note_before_its_token_does(harness: Harness) -> None:
    lifetime = 4.0  # the private answer ends at its first write 2 s before the token does
    harness.discord.interaction_token_lifetime = lifetime
    harness.discord.post_history(
        500, history(10), start=datetime.now(UTC) - timedelta(minutes=30), spacing=timedelta(minutes=1)
    )
    tokens = [f" w{i}" for i in range(200)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.03))
    running = await harness.start_bot(interaction_token_lifetime=lifetime)

    token = await harness.discord.send_slash_command("summarize", {"private": True})
    await harness.discord.wait_for(
        lambda: (
            not bot_busy(running) and "stops here" in (harness.discord.original_message(token) or {}).get("content", "")
        ),
        timeout=15,
    )

    answer = harness.discord.original_message(token)
    assert answer is not None and answer["flags"] & 64
    *text, note = answer["content"].split("\n")
    assert note == "-# ⚠️ Discord lets me edit an answer only you can see for only 15 minutes, so the answer stops here."
    assert "".join(tokens).startswith("\n".join(text).split("\n\n", 1)[1])  # the header, then part of the summary
    assert not components_of(answer) or all("stop" not in c for c in components_of(answer))
    assert all(c.status != 401 for c in harness.discord.interaction_responses(token))  # finished in time
    assert (await harness.ollama.wait_for_disconnect()).done_sent is False
    assert harness.discord.bot_messages(500) == []
