"""End to end: the real bot (real discord.py, real aiohttp) against the fake Discord and fake Ollama."""

from __future__ import annotations

import socket
from typing import Any

from bot.conversation import join_split_answer
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript

BOT_ID = 100


def message_writes(harness: Harness) -> list[Any]:
    return [
        c
        for c in harness.discord.calls
        if (c.method == "POST" and c.path.endswith("/messages")) or (c.method == "PATCH" and "/messages/" in c.path)
    ]


async def test_mention_streams_edits_into_a_reply_with_exact_final_text(harness: Harness) -> None:
    tokens = ["Use ", "`reversed()`", " or ", "slicing", ": ", "`xs[::-1]`", ".", " Both ", "work", " well", "."] * 4
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.05))
    await harness.start_bot()

    prompt = await harness.discord.send_user_message("how do I reverse a list in Python?", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["".join(tokens)]
    reply = harness.replies_to(int(prompt["id"]))[0]
    versions = harness.discord.message_history[int(reply["id"])]
    assert len(versions) >= 3, "the reply should be edited in place while streaming"
    assert all(v.endswith(STREAMING_MARKER) for v in versions[:-1])
    assert all("".join(tokens).startswith(v.removesuffix(STREAMING_MARKER)) for v in versions)
    # Typing shown while waiting; the mention is stripped and the speaker named.
    assert any(c.path == "/channels/500/typing" for c in harness.discord.calls)
    request = harness.ollama.chat_requests[0].json
    assert request["model"] == "llama3.2"
    assert request["messages"] == [{"role": "user", "content": "Alice: how do I reverse a list in Python?"}]
    assert harness.discord.rate_limited == 0


async def test_reply_chain_is_sent_as_history(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Paris", "."]), ChatScript(tokens=["About ", "2.1 million."])])
    await harness.start_bot()

    first = await harness.discord.send_user_message("capital of France?", mention_bot=True)
    await harness.wait_for_reply(int(first["id"]))
    answer = harness.replies_to(int(first["id"]))[0]
    # A reply without a mention, whose referenced message Discord did not include: the bot fetches it.
    follow = await harness.discord.send_user_message(
        "and its population?", author_id=201, reply_to=int(answer["id"]), reference_mode="absent"
    )
    parts = await harness.wait_for_reply(int(follow["id"]))

    assert parts == ["About 2.1 million."]
    assert harness.ollama.chat_requests[1].json["messages"] == [
        {"role": "user", "content": "Alice: capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Bob: and its population?"},
    ]


async def test_messages_not_for_the_bot_are_ignored(harness: Harness) -> None:
    await harness.start_bot()
    other = await harness.discord.send_user_message("just chatting", author_id=201)
    await harness.discord.send_user_message("replying to Bob", reply_to=int(other["id"]))
    # The bot's own message mentioning itself must not trigger it either.
    await harness.discord.send_user_message("<@100> echo", author_id=BOT_ID)
    marker = await harness.discord.send_user_message("now me", mention_bot=True)
    await harness.wait_for_reply(int(marker["id"]))
    assert len(harness.ollama.chat_requests) == 1


async def test_ask_slash_command_streams_into_the_response(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Forty", "-two", "."], token_delay=0.02))
    await harness.start_bot()

    token = await harness.discord.send_slash_command("ask", {"prompt": "meaning of life?"})
    await harness.discord.wait_for(
        lambda: (
            (m := harness.discord.original_message(token)) is not None
            and m["content"] == "Forty-two."
            and harness.idle()
        )
    )
    callbacks = [c for c in harness.discord.interaction_responses(token) if c.path.endswith("/callback")]
    assert callbacks[0].json["type"] == 5  # deferred: Discord shows "thinking…" at once
    assert harness.ollama.chat_requests[0].json["messages"] == [{"role": "user", "content": "Alice: meaning of life?"}]


async def test_reply_to_an_ask_answer_continues_that_conversation(harness: Harness) -> None:
    harness.ollama.scripts.extend(
        [ChatScript(tokens=["Blue."]), ChatScript(tokens=["Because of Rayleigh scattering."])]
    )
    await harness.start_bot()
    token = await harness.discord.send_slash_command("ask", {"prompt": "sky colour?"})
    await harness.discord.wait_for(
        lambda: (
            (m := harness.discord.original_message(token)) is not None and m["content"] == "Blue." and harness.idle()
        )
    )
    original = harness.discord.original_message(token)
    assert original is not None
    follow = await harness.discord.send_user_message("why?", reply_to=int(original["id"]))
    await harness.wait_for_reply(int(follow["id"]))
    assert harness.ollama.chat_requests[1].json["messages"] == [
        {"role": "user", "content": "Alice: sky colour?"},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Alice: why?"},
    ]


async def test_long_answer_with_code_is_split_with_fences_repaired(harness: Harness) -> None:
    code = "```python\n" + "".join(f"print('line number {i}')\n" for i in range(150)) + "```\n"
    text = "Here is the script:\n\n" + code + "\nRun it with `python script.py`. " + "It prints lines. " * 60
    tokens = [text[i : i + 40] for i in range(0, len(text), 40)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.002))
    await harness.start_bot()

    prompt = await harness.discord.send_user_message("write a script", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]), timeout=20)

    assert len(parts) >= 3
    assert all(len(p) <= 2000 for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert parts[1].startswith("```python\n")
    assert join_split_answer(parts) == text
    assert harness.discord.rate_limited == 0


async def test_model_output_pings_nobody(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["@everyone ", "look, <@201> and ", "<@&400> ", "@here"]))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("ping people", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["@everyone look, <@201> and <@&400> @here"]
    writes = message_writes(harness)
    assert writes
    for call in writes:
        assert call.json["allowed_mentions"]["parse"] == []
    # Only Discord's reply ping to the asker, from the first post: the model's text pinged nobody.
    assert [(p.target, p.on) for p in harness.discord.pings] == [("user:200", "create")]


async def test_429_is_retried_without_losing_text(harness: Harness) -> None:
    tokens = [f" t{i}" for i in range(30)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.02))
    harness.discord.inject_429("PATCH", r"/channels/500/messages/\d+", count=2, retry_after=0.1)
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("count", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["".join(tokens)]
    assert harness.discord.rate_limited == 2


async def test_unreachable_ollama_is_explained_in_the_reply(harness: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    await harness.start_bot(harness.settings(OLLAMA_HOST=f"127.0.0.1:{dead_port}"))
    prompt = await harness.discord.send_user_message("hello?", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert len(parts) == 1
    assert f"http://127.0.0.1:{dead_port}" in parts[0]
    assert "OLLAMA_HOST" in parts[0]
    assert "Traceback" not in parts[0]


async def test_missing_model_names_it_and_suggests_pull(harness: Harness) -> None:
    await harness.start_bot(harness.settings(OLLAMA_MODEL="mistral-nemo"))
    prompt = await harness.discord.send_user_message("hello?", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))
    assert "`mistral-nemo`" in parts[0]
    assert "ollama pull mistral-nemo" in parts[0]


async def test_error_mid_stream_keeps_partial_text(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Part", "ial", " answer", " lost"], error_after=3))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("go", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts[0].startswith("Partial answer\n-# ")
    assert "unexpected EOF" in parts[0]
    assert STREAMING_MARKER not in parts[0]


async def test_stream_ending_without_done_is_marked_incomplete(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Half", " an", " answer"], eof_after=2))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("go", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))
    assert parts[0].startswith("Half an\n-# ")
    assert "ended early" in parts[0]


async def test_stalled_stream_is_cut_off_with_a_note(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Still", " thinking", " about"], stall_after=2))
    await harness.start_bot(harness.settings(OLLAMA_STREAM_TIMEOUT="1"))
    prompt = await harness.discord.send_user_message("go", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))
    assert parts[0].startswith("Still thinking\n-# ")
    assert "stopped sending" in parts[0]
    await harness.ollama.wait_for_disconnect()


async def test_deleting_the_reply_stops_generation(harness: Harness) -> None:
    tokens = [f" w{i}" for i in range(400)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.01))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("talk a lot", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))))
    reply = harness.replies_to(int(prompt["id"]))[0]
    await harness.discord.delete_message(int(reply["id"]))

    request = await harness.ollama.wait_for_disconnect()
    assert request.disconnected and not request.done_sent
    await harness.discord.wait_for(harness.idle)


async def test_history_cut_is_noted_visibly(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(HISTORY_MAX_MESSAGES="3"))
    message = await harness.discord.send_user_message("one", mention_bot=True)
    for text in ("two", "three"):
        await harness.wait_for_reply(int(message["id"]))
        answer = harness.replies_to(int(message["id"]))[0]
        message = await harness.discord.send_user_message(text, reply_to=int(answer["id"]))
    parts = await harness.wait_for_reply(int(message["id"]))

    assert parts[0].startswith("ok\n-# ")
    assert "left out" in parts[0]
    sent = harness.ollama.chat_requests[-1].json["messages"]
    assert sent == [
        {"role": "user", "content": "Alice: two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Alice: three"},
    ]


async def test_reply_to_a_deleted_message_with_a_mention_still_answers(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Sure."]))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message(
        "what was that?", mention_bot=True, reply_to=999_999, reference_mode="null"
    )
    parts = await harness.wait_for_reply(int(prompt["id"]))
    assert parts == ["Sure."]
    assert harness.ollama.chat_requests[0].json["messages"] == [{"role": "user", "content": "Alice: what was that?"}]


async def test_bare_mention_gets_a_hint_instead_of_a_model_call(harness: Harness) -> None:
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))))
    assert "Ask me something" in harness.replies_to(int(prompt["id"]))[0]["content"]
    assert harness.ollama.chat_requests == []
