"""End to end: reply-chain history built in bulk (issue 13), counted in Discord requests, through real discord.py.

"Before the request" is everything the fake Discord received between the prompt's dispatch and the chat request
reaching the fake Ollama. Reads are GETs of messages; the typing indicator is not a read.
"""

from __future__ import annotations

import re
import time
from typing import Any

from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript

READ = re.compile(r"^/channels/\d+/messages(/\d+)?$")


def seed_chain(harness: Harness, exchanges: int, *, channel_id: int = 500, reply_to: int | None = None) -> int:
    """Store `exchanges` question/answer pairs (each replying to the one before) before the bot starts."""
    previous = reply_to
    for turn in range(exchanges):
        question = harness.discord.seed_message(f"fact {turn}: cw{turn}", channel_id=channel_id, reply_to=previous)
        answer = harness.discord.seed_message(
            f"Noted cw{turn}.", author_id=harness.discord.bot_id, channel_id=channel_id, reply_to=int(question["id"])
        )
        previous = int(answer["id"])
    assert previous is not None
    return previous


async def ask_and_measure(harness: Harness, content: str, **message: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Send a user message; return the chat request's messages and the Discord reads made before it."""
    before = len(harness.ollama.chat_requests)
    sent_at = time.monotonic()
    prompt = await harness.discord.send_user_message(content, **message)
    await harness.discord.wait_for(lambda: len(harness.ollama.chat_requests) > before)
    request = harness.ollama.chat_requests[before]
    reads = [
        f"{c.method} {c.path}"
        for c in harness.discord.calls
        if sent_at <= c.at <= request.at and c.method == "GET" and READ.match(c.path)
    ]
    await harness.wait_for_reply(int(prompt["id"]))
    return request.json["messages"], reads


def contents(messages: list[dict[str, Any]]) -> list[str]:
    return [str(m["content"]) for m in messages if m["role"] in ("user", "assistant")]


async def test_cold_cache_deep_chain_needs_one_bulk_read(harness: Harness) -> None:
    last = seed_chain(harness, 12)  # 24 messages, none of them in discord.py's cache
    await harness.start_bot(harness.settings(HISTORY_MAX_MESSAGES="50"))
    messages, reads = await ask_and_measure(harness, "list every code word", reply_to=last)

    assert len(reads) == 1 and "?" not in reads[0]  # one GET of the channel's messages, no single GETs
    assert reads[0] == "GET /channels/500/messages"
    said = contents(messages)
    assert len(said) == 25
    assert all(any(f"cw{turn}" in text for text in said) for turn in range(12))


async def test_warm_cache_needs_no_read_at_all(harness: Harness) -> None:
    await harness.start_bot()
    harness.ollama.scripts.extend(ChatScript(tokens=[f"Noted cw{turn}."]) for turn in range(3))
    prompt = await harness.discord.send_user_message("fact 0: cw0", mention_bot=True)
    await harness.wait_for_reply(int(prompt["id"]))
    for turn in (1, 2):
        answer = harness.replies_to(int(prompt["id"]))[-1]
        prompt = await harness.discord.send_user_message(f"fact {turn}: cw{turn}", reply_to=int(answer["id"]))
        await harness.wait_for_reply(int(prompt["id"]))

    answer = harness.replies_to(int(prompt["id"]))[-1]
    messages, reads = await ask_and_measure(harness, "list them", reply_to=int(answer["id"]))
    assert reads == []
    assert contents(messages) == [
        "Alice: fact 0: cw0",
        "Noted cw0.",
        "Alice: fact 1: cw1",
        "Noted cw1.",
        "Alice: fact 2: cw2",
        "Noted cw2.",
        "Alice: list them",
    ]


async def test_a_reply_to_an_older_answer_follows_its_branch(harness: Harness) -> None:
    discord = harness.discord
    q0 = discord.seed_message("fact 0: trunk")
    a0 = discord.seed_message("Noted trunk.", author_id=discord.bot_id, reply_to=int(q0["id"]))
    q1 = discord.seed_message("fact 1: main line", reply_to=int(a0["id"]))
    discord.seed_message("Noted main line.", author_id=discord.bot_id, reply_to=int(q1["id"]))
    # A branch: someone replies to the first answer again.
    b1 = discord.seed_message("fact 1b: side road", reply_to=int(a0["id"]))
    b1a = discord.seed_message("Noted side road.", author_id=discord.bot_id, reply_to=int(b1["id"]))
    await harness.start_bot()

    messages, reads = await ask_and_measure(harness, "where are we?", reply_to=int(b1a["id"]))
    assert contents(messages) == [
        "Alice: fact 0: trunk",
        "Noted trunk.",
        "Alice: fact 1b: side road",
        "Noted side road.",
        "Alice: where are we?",
    ]
    assert len(reads) == 1


async def test_a_deleted_message_ends_the_chain_after_the_gap(harness: Harness) -> None:
    discord = harness.discord
    q0 = discord.seed_message("fact 0: lost")
    a0 = discord.seed_message("Noted lost.", author_id=discord.bot_id, reply_to=int(q0["id"]))
    q1 = discord.seed_message("fact 1: kept", reply_to=int(a0["id"]))
    a1 = discord.seed_message("Noted kept.", author_id=discord.bot_id, reply_to=int(q1["id"]))
    await discord.delete_message(int(a0["id"]))
    await harness.start_bot()

    messages, reads = await ask_and_measure(harness, "what do you know?", reply_to=int(a1["id"]))
    assert contents(messages) == ["Alice: fact 1: kept", "Noted kept.", "Alice: what do you know?"]
    # The bulk read says the parent is gone (referenced_message: null), so nobody asks for it again.
    assert len(reads) == 1


async def test_a_parent_older_than_the_window_is_fetched_alone(harness: Harness) -> None:
    last = seed_chain(harness, 2)
    for n in range(120):  # push the chain out of the 100-message window
        harness.discord.seed_message(f"chatter {n}", author_id=201)
    late = harness.discord.seed_message("fact 2: cw2", reply_to=last)
    answer = harness.discord.seed_message("Noted cw2.", author_id=harness.discord.bot_id, reply_to=int(late["id"]))
    await harness.start_bot()

    messages, reads = await ask_and_measure(harness, "all of them?", reply_to=int(answer["id"]))
    said = contents(messages)
    assert said[:4] == ["Alice: fact 0: cw0", "Noted cw0.", "Alice: fact 1: cw1", "Noted cw1."]
    assert said[-1] == "Alice: all of them?"
    # One window, then single GETs only for what lies before it; each GET also brings the parent it embeds.
    assert reads[0] == "GET /channels/500/messages"
    assert 1 < len(reads) <= 3
    assert all("/messages/" in read for read in reads[1:])


async def test_answers_after_a_restart_come_from_the_records(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Noted cw0."]), ChatScript(tokens=["Noted cw1."])])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("fact 0: cw0", mention_bot=True)
    await harness.wait_for_reply(int(prompt["id"]))
    answer = harness.replies_to(int(prompt["id"]))[-1]
    prompt = await harness.discord.send_user_message("fact 1: cw1", reply_to=int(answer["id"]))
    await harness.wait_for_reply(int(prompt["id"]))
    answer = harness.replies_to(int(prompt["id"]))[-1]
    await harness.stop_all()
    # Discord still shows the answers; the bot restarts with an empty cache and reads the records.
    await harness.start_bot()

    messages, reads = await ask_and_measure(harness, "both?", reply_to=int(answer["id"]))
    assert contents(messages) == [
        "Alice: fact 0: cw0",
        "Noted cw0.",
        "Alice: fact 1: cw1",
        "Noted cw1.",
        "Alice: both?",
    ]
    assert len(reads) <= 1


async def test_a_thread_opened_on_an_answer_continues_its_chain(harness: Harness) -> None:
    discord = harness.discord
    question = discord.seed_message("fact: the door code is 4711")
    answer = discord.seed_message("Noted: 4711.", author_id=discord.bot_id, reply_to=int(question["id"]))
    await harness.start_bot()
    thread_id = await discord.create_thread(500, "about the code", owner_id=201, message_id=int(answer["id"]))

    messages, _ = await ask_and_measure(harness, "explain more", channel_id=thread_id, mention_bot=True)
    assert contents(messages) == ["Alice: fact: the door code is 4711", "Noted: 4711.", "Alice: explain more"]


async def test_a_mention_in_a_plain_thread_asks_for_a_starter_at_most_once(harness: Harness) -> None:
    await harness.start_bot()
    thread_id = await harness.discord.create_thread(500, "plain", owner_id=201)

    messages, reads = await ask_and_measure(harness, "hello", channel_id=thread_id, mention_bot=True)
    assert contents(messages) == ["Alice: hello"]
    assert len(reads) <= 1
    _, reads = await ask_and_measure(harness, "again", channel_id=thread_id, mention_bot=True)
    assert reads == []  # the thread is known to have no starter message
