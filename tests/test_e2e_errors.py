"""End to end: Discord failing while the bot answers.

Expiring interaction tokens (/ask, /pull), refused and failed edits, archived threads, a refused first
post, /delete when its message can't be edited, and 429s on interaction routes in the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.conversation import join_split_answer
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript

Json = dict[str, Any]


def buttons(message: Json) -> list[str]:
    return [c.get("label", "") for row in message.get("components") or [] for c in row.get("components") or []]


def finished(message: Json) -> bool:
    """No in-progress marker and no Stop button."""
    return not message["content"].endswith(STREAMING_MARKER) and "Stop" not in buttons(message)


def streaming_edit(call: Any) -> bool:
    """An edit made while the answer streams (it carries the in-progress marker)."""
    return str((call.json or {}).get("content", "")).endswith(STREAMING_MARKER)


def ask_parts(harness: Harness, token: str) -> list[Json]:
    """The /ask answer: its original response, its followups, then channel messages continuing the chain."""
    original = harness.discord.original_message(token)
    if original is None:
        return []
    parts = [original, *harness.discord.followup_messages(token)]
    while True:
        following = [
            m
            for m in harness.discord.bot_messages()
            if str((m.get("message_reference") or {}).get("message_id")) == parts[-1]["id"]
        ]
        if not following:
            return parts
        parts.append(following[0])


def ask_finished(harness: Harness, token: str) -> bool:
    parts = ask_parts(harness, token)
    return bool(parts) and all(finished(p) for p in parts) and buttons(parts[-1]) == ["Regenerate"] and harness.idle()


def webhook_statuses(harness: Harness, token: str) -> list[int]:
    return [c.status for c in harness.discord.interaction_responses(token) if c.path.startswith("/webhooks/")]


# ---- interaction tokens expire after 15 minutes (seconds here)


async def test_ask_queued_past_the_token_lifetime_finishes_through_the_channel(harness: Harness) -> None:
    lifetime = 2.0
    harness.discord.interaction_token_lifetime = lifetime
    first = [f" a{i}" for i in range(30)]
    answer = [f" b{i}" for i in range(30)]
    harness.ollama.scripts.extend(
        [ChatScript(tokens=first, token_delay=0.05), ChatScript(tokens=answer, token_delay=0.05)]
    )
    await harness.start_bot(harness.settings(MAX_CONCURRENT_REQUESTS="1"), interaction_token_lifetime=lifetime)
    await harness.discord.send_user_message("you go first", mention_bot=True)
    await harness.ollama.wait_for_requests(1)

    token = await harness.discord.send_slash_command("ask", {"prompt": "then me"})
    await harness.discord.wait_for(lambda: ask_finished(harness, token), timeout=20)

    parts = ask_parts(harness, token)
    assert join_split_answer([p["content"] for p in parts]) == "".join(answer)
    original_id = int(parts[0]["id"])
    # It waited in line (shown through the token), then its edits moved to the channel route.
    assert any("Waiting for Ollama" in version for version in harness.discord.message_history[original_id])
    channel_edits = harness.discord.calls_to("PATCH", rf"^/channels/500/messages/{original_id}$")
    assert channel_edits and channel_edits[-1].status == 200
    assert channel_edits[-1].json["components"] == parts[0]["components"]  # Regenerate, set with the bot token


async def test_ask_goes_on_in_the_channel_once_discord_rejects_the_token(harness: Harness) -> None:
    harness.discord.interaction_token_lifetime = 1.0
    text = "".join(f"Sentence number {i} of a long answer. " for i in range(120))
    tokens = [text[i : i + 60] for i in range(0, len(text), 60)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.03))
    await harness.start_bot()  # the bot expects Discord's 15 minutes: it learns of the expiry from the 401

    token = await harness.discord.send_slash_command("ask", {"prompt": "write a lot"})
    await harness.discord.wait_for(lambda: ask_finished(harness, token), timeout=20)

    parts = ask_parts(harness, token)
    assert len(parts) >= 3
    assert join_split_answer([p["content"] for p in parts]) == text
    assert 401 in webhook_statuses(harness, token)
    # Parts after the expiry are normal channel messages, each replying to the previous part.
    assert "message_reference" in parts[-1] and parts[-1]["message_reference"]["message_id"] == parts[-2]["id"]
    assert harness.ollama.chat_requests[0].done_sent


async def test_ask_in_a_channel_closed_to_the_bot_is_finished_through_the_token_in_time(harness: Harness) -> None:
    lifetime = 5.0  # the bot moves to the channel route 2.5 s before the end, at its next edit
    harness.discord.interaction_token_lifetime = lifetime
    tokens = [f" w{i}" for i in range(120)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.03))
    # Interactions reach the bot even in a channel it can't see; the channel routes answer 403 there.
    harness.discord.inject_error("PATCH", r"^/channels/500/messages/\d+$", 403, 50001, "Missing Access", count=None)
    await harness.start_bot(interaction_token_lifetime=lifetime)

    token = await harness.discord.send_slash_command("ask", {"prompt": "talk"})
    await harness.discord.wait_for(lambda: ask_finished(harness, token), timeout=10)

    parts = ask_parts(harness, token)
    assert len(parts) == 1
    *text, note = parts[0]["content"].split("\n")
    assert "".join(tokens).startswith("".join(text)) and len("".join(text)) < len("".join(tokens))
    assert note == (
        "-# ⚠️ Discord lets me edit a command's answer for only 15 minutes, and I can't edit messages in this "
        "channel myself (that needs the View Channel permission here), so the answer stops here."
    )
    assert 401 not in webhook_statuses(harness, token)  # finished before the token ran out
    assert (await harness.ollama.wait_for_disconnect()).done_sent is False


async def test_regenerate_of_an_ask_answer_works_after_its_token_expired(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["First", " take."]), ChatScript(tokens=["Second", " take."])])
    await harness.start_bot()
    token = await harness.discord.send_slash_command("ask", {"prompt": "try twice"})
    await harness.discord.wait_for(lambda: ask_finished(harness, token))
    harness.discord.interaction_token_lifetime = 0.0  # every token is over; Regenerate edits with the bot token

    original = ask_parts(harness, token)[0]
    labels = {c["label"]: c["custom_id"] for row in original["components"] for c in row["components"]}
    await harness.discord.click_button(int(original["id"]), labels["Regenerate"])
    await harness.discord.wait_for(
        lambda: ask_parts(harness, token)[0]["content"] == "Second take." and ask_finished(harness, token)
    )


async def test_pull_past_the_token_lifetime_reads_the_stream_to_the_end(harness: Harness) -> None:
    harness.discord.interaction_token_lifetime = 1.0
    harness.ollama.pull_delay = 0.25  # about 3 s of progress lines
    await harness.start_bot()

    token = await harness.discord.send_slash_command("pull", {"name": "tinyllama"})
    await harness.discord.wait_for(lambda: harness.discord.original_message(token) is not None)
    original = harness.discord.original_message(token)
    assert original is not None
    message_id = int(original["id"])
    await harness.discord.wait_for(lambda: harness.discord.messages[message_id]["content"].startswith("✅"), 20)

    pull = next(r for r in harness.ollama.requests if r.path == "/api/pull")
    assert pull.done_sent and not pull.disconnected
    assert 401 in webhook_statuses(harness, token)
    assert harness.discord.calls_to("PATCH", rf"^/channels/500/messages/{message_id}$")[-1].status == 200
    assert "tinyllama:latest" in harness.ollama.models


async def test_pull_survives_a_refused_progress_edit(harness: Harness) -> None:
    harness.ollama.pull_delay = 0.15
    await harness.start_bot()
    refusal = harness.discord.inject_error(
        "PATCH", r"^/webhooks/300/[^/]+/messages/@original$", 400, 50035, "Invalid Form Body"
    )

    token = await harness.discord.send_slash_command("pull", {"name": "tinyllama"})
    await harness.discord.wait_for(
        lambda: (harness.discord.original_message(token) or {}).get("content", "").startswith("✅"), 20
    )
    pull = next(r for r in harness.ollama.requests if r.path == "/api/pull")
    assert refusal.hits == 1
    assert pull.done_sent and not pull.disconnected


# ---- every Discord error during streaming ends visibly


async def test_a_503_on_one_edit_is_skipped_and_the_answer_completes(harness: Harness) -> None:
    tokens = [f" t{i}" for i in range(60)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.03))
    failure = harness.discord.inject_error(
        "PATCH", r"^/channels/500/messages/\d+$", 503, message="Service Unavailable", match=streaming_edit
    )
    await harness.start_bot()

    prompt = await harness.discord.send_user_message("count", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["".join(tokens)]
    assert failure.hits == 1
    assert harness.ollama.chat_requests[0].done_sent


@pytest.mark.parametrize(
    ("status", "code", "message"), [(400, 50035, "Invalid Form Body"), (401, 0, "401: Unauthorized")]
)
async def test_a_refused_edit_ends_the_answer_with_a_note(
    harness: Harness, status: int, code: int, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = [f" t{i}" for i in range(100)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.03))
    harness.discord.inject_error("PATCH", r"^/channels/500/messages/\d+$", status, code, message, match=streaming_edit)
    await harness.start_bot()

    prompt = await harness.discord.send_user_message("count", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert len(parts) == 1
    *text, note = parts[0].split("\n")
    assert note == f"-# ⚠️ Discord refused the message (error {code}: {message}), so the answer stops here."
    assert "".join(tokens).startswith("".join(text)) and len("".join(text)) < len("".join(tokens))
    assert buttons(harness.replies_to(int(prompt["id"]))[0]) == ["Regenerate"]
    request = await harness.ollama.wait_for_disconnect()
    assert not request.done_sent  # generation stopped
    assert f"Discord error {code}" in caplog.text


# ---- archived threads


async def test_a_thread_archived_mid_answer_is_reopened_and_the_answer_completes(harness: Harness) -> None:
    tokens = [f" w{i}" for i in range(40)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.04))
    running = await harness.start_bot()
    tid = await harness.discord.create_thread(500, "topic", owner_id=201)
    await harness.discord.wait_for(lambda: running.bot.get_channel(tid) is not None)

    prompt = await harness.discord.send_user_message("talk", channel_id=tid, mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))))
    await harness.discord.archive_thread(tid)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["".join(tokens)]
    edits = harness.discord.calls_to("PATCH", rf"^/channels/{tid}/messages/\d+$")
    assert 400 in [c.status for c in edits]  # an edit met the archived thread
    unarchive = harness.discord.calls_to("PATCH", rf"^/channels/{tid}$")
    assert [(c.json, c.status) for c in unarchive] == [({"archived": False}, 200)]
    assert not harness.discord.threads[tid]["thread_metadata"]["archived"]


async def test_ask_in_a_thread_locked_mid_answer_says_why_to_the_asker(harness: Harness) -> None:
    tokens = [f" w{i}" for i in range(200)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.02))
    running = await harness.start_bot()
    tid = await harness.discord.create_thread(500, "topic", owner_id=201)
    await harness.discord.wait_for(lambda: running.bot.get_channel(tid) is not None)

    token = await harness.discord.send_slash_command("ask", {"prompt": "talk"}, channel_id=tid)
    await harness.discord.wait_for(lambda: " w1" in (harness.discord.original_message(token) or {}).get("content", ""))
    harness.discord.bot_can_manage_threads = False
    await harness.discord.archive_thread(tid, locked=True)

    def told() -> list[Json]:
        return [m for m in harness.discord.followup_messages(token) if m["flags"] & 64]

    await harness.discord.wait_for(lambda: bool(told()) and harness.idle(), timeout=10)
    assert told()[0]["content"] == (
        "⚠️ I couldn't finish my answer: this thread was archived and I'm not allowed to reopen it."
    )
    request = await harness.ollama.wait_for_disconnect()
    assert not request.done_sent
    assert harness.discord.calls_to("PATCH", rf"^/channels/{tid}$")[-1].status == 403


# ---- a failed first post


async def test_a_refused_first_post_is_explained_in_a_plain_message(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["never", " shown"]))
    harness.discord.inject_error(
        "POST",
        r"^/channels/500/messages$",
        400,
        160002,
        "Cannot reply without permission to read message history",
        count=None,
        match=lambda call: "message_reference" in (call.json or {}),
    )
    await harness.start_bot()
    caplog.set_level(logging.INFO)

    prompt = await harness.discord.send_user_message("hello", mention_bot=True)

    def notes() -> list[str]:
        return [m["content"] for m in harness.discord.bot_messages(500) if "couldn't post" in m["content"]]

    await harness.discord.wait_for(lambda: bool(notes()) and harness.idle())
    assert notes() == [
        f"⚠️ I couldn't post my answer to https://discord.com/channels/400/500/{prompt['id']}: "
        "Discord refused the message (error 160002: Cannot reply without permission to read message history)."
    ]
    assert "could not post the reply at all" in caplog.text
    assert "in-progress marker" not in caplog.text


async def test_when_nothing_can_be_posted_the_question_gets_a_reaction(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["never", " shown"]))
    harness.discord.inject_error("POST", r"^/channels/500/messages$", 400, 50035, "Invalid Form Body", count=None)
    await harness.start_bot()

    prompt = await harness.discord.send_user_message("hello", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.discord.reactions.get(int(prompt["id"]))) and harness.idle())
    assert harness.discord.reactions[int(prompt["id"])] == [(100, "⚠️")]


# ---- /delete, and 429s on interaction routes


async def test_delete_outcome_is_shown_even_when_its_message_cannot_be_edited(harness: Harness) -> None:
    await harness.start_bot()
    token = await harness.discord.send_slash_command("delete", {"name": "gemma3:4b"})
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("components")))
    confirmation = harness.discord.original_message(token)
    assert confirmation is not None
    for method, path in (
        ("PATCH", rf"^/webhooks/300/{token}/messages/@original$"),
        ("POST", rf"^/webhooks/300/{token}$"),
    ):
        harness.discord.inject_error(method, path, 400, 50035, "Invalid Form Body", count=None)

    labels = {c["label"]: c["custom_id"] for row in confirmation["components"] for c in row["components"]}
    await harness.discord.click_button(int(confirmation["id"]), labels["Delete"])

    def shown() -> bool:
        return any(m["content"] == "🗑️ Deleted `gemma3:4b`." for m in harness.discord.bot_messages(500))

    await harness.discord.wait_for(shown)
    assert "gemma3:4b" not in harness.ollama.models


async def test_a_429_on_an_interaction_route_is_counted_in_the_metrics(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Forty", "-two."], token_delay=0.05))
    harness.discord.inject_429("PATCH", r"^/webhooks/300/[^/]+/messages/@original$", count=1, retry_after=0.05)
    running = await harness.start_bot()

    token = await harness.discord.send_slash_command("ask", {"prompt": "meaning of life?"})
    await harness.discord.wait_for(lambda: ask_finished(harness, token))

    assert ask_parts(harness, token)[0]["content"] == "Forty-two."
    assert harness.discord.rate_limited == 1
    assert "ollacord_discord_rate_limited_total 1.0\n" in running.services.metrics.render()
