"""End to end: thinking models, Stop and Regenerate, and fair sharing of one Ollama."""

from __future__ import annotations

from typing import Any

from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import BUSY_TEXT, ChatScript

MEMBER = str(1024 | 2048 | 65536)


def components_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components", [])]


async def test_thinking_is_shown_as_a_status_and_hidden_from_the_answer(harness: Harness) -> None:
    harness.ollama.scripts.append(
        ChatScript(
            thinking=["Let me ", "count ", "carefully."] * 10, tokens=["There ", "are ", "three."], token_delay=0.05
        )
    )
    await harness.start_bot(harness.settings(OLLAMA_MODEL="qwen3:8b"))
    prompt = await harness.discord.send_user_message("how many r in strawberry?", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["There are three."]
    versions = harness.discord.message_history[int(harness.replies_to(int(prompt["id"]))[0]["id"])]
    assert versions[0].startswith("-# 💭 Thinking…")


async def test_reasoning_can_be_shown_collapsed(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(thinking=["Three ", "r letters."], tokens=["Three."]))
    await harness.start_bot(harness.settings(OLLAMA_MODEL="qwen3:8b"))
    token = await harness.discord.send_slash_command("set", {"option": "show_thinking", "value": "on"})
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    prompt = await harness.discord.send_user_message("count", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts[0].startswith(notes.REASONING_HEADER)
    assert "||Three r letters.||" in parts[0]
    assert parts[1] == "Three."

    # Replying continues with the answer as history, not the displayed reasoning.
    harness.ollama.scripts.append(ChatScript(tokens=["Yes."]))
    answer = harness.replies_to(int(prompt["id"]))[-1]
    follow = await harness.discord.send_user_message("sure?", reply_to=int(answer["id"]))
    await harness.wait_for_reply(int(follow["id"]))
    assert harness.ollama.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "Alice: count"},
        {"role": "assistant", "content": "Three."},
        {"role": "user", "content": "Alice: sure?"},
    ]


async def test_think_tags_split_across_chunks_are_stripped(harness: Harness) -> None:
    harness.ollama.scripts.append(
        ChatScript(tokens=["<th", "ink>private ", "musing</thi", "nk>\n\n", "Public answer."])
    )
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("go", mention_bot=True)
    assert await harness.wait_for_reply(int(prompt["id"])) == ["Public answer."]


async def test_stop_button_cancels_generation_and_keeps_the_partial_text(harness: Harness) -> None:
    tokens = [f" w{i}" for i in range(400)]
    harness.ollama.scripts.append(ChatScript(tokens=tokens, token_delay=0.01))
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("talk", mention_bot=True)
    key = int(prompt["id"])
    await harness.discord.wait_for(lambda: bool(harness.replies_to(key)))
    reply = harness.replies_to(key)[0]
    assert components_of(harness.discord.messages[int(reply["id"])]) == [f"ollacord:stop:{key}"]

    # Someone else, without Manage Channels, may not stop it.
    refused = await harness.discord.click_button(
        int(reply["id"]), f"ollacord:stop:{key}", user_id=201, permissions=MEMBER
    )
    await harness.discord.wait_for(lambda: bool(harness.discord.interaction_responses(refused)))
    assert "Only the person who asked" in harness.discord.interaction_responses(refused)[0].json["data"]["content"]

    await harness.discord.click_button(int(reply["id"]), f"ollacord:stop:{key}")
    request = await harness.ollama.wait_for_disconnect()
    assert not request.done_sent
    parts = await harness.wait_for_reply(key)
    assert notes.STOPPED in parts[-1]
    assert STREAMING_MARKER not in parts[-1]
    partial = parts[0].split("\n-# ")[0]
    assert partial.startswith(" w0") and "".join(tokens).startswith(partial)
    final = harness.replies_to(key)[-1]
    assert components_of(final) == [f"ollacord:regenerate:{key}"]


async def test_regenerate_replaces_the_answer_in_place(harness: Harness) -> None:
    long_answer = [f" first{i}" for i in range(300)]  # two messages
    second = ChatScript(tokens=["Second", " try."], first_token_delay=0.3)
    harness.ollama.scripts.extend([ChatScript(tokens=long_answer), second])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("write something", mention_bot=True)
    key = int(prompt["id"])
    parts = await harness.wait_for_reply(key)
    assert len(parts) == 2
    first_id = int(harness.replies_to(key)[0]["id"])
    last = harness.replies_to(key)[-1]
    assert components_of(last) == [f"ollacord:regenerate:{key}"]

    await harness.discord.click_button(int(last["id"]), f"ollacord:regenerate:{key}")
    await harness.discord.wait_for(lambda: len(harness.ollama.chat_requests) == 2)
    await harness.discord.wait_for(
        lambda: harness.idle() and harness.discord.messages.get(first_id, {}).get("content") == "Second try."
    )
    assert harness.ollama.chat_requests[1].json["messages"] == harness.ollama.chat_requests[0].json["messages"]
    assert [p["id"] for p in harness.replies_to(key)] == [str(first_id)]  # the extra part was deleted
    assert notes.REGENERATING in harness.discord.message_history[first_id]  # shown while the model starts


async def test_buttons_work_after_a_restart(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["One."]), ChatScript(tokens=["Two."])])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("hi", mention_bot=True)
    key = int(prompt["id"])
    await harness.wait_for_reply(key)
    answer_id = int(harness.replies_to(key)[0]["id"])
    await harness.stop_all()

    await harness.start_bot()
    await harness.discord.click_button(answer_id, f"ollacord:regenerate:{key}")
    await harness.discord.wait_for(lambda: harness.idle() and harness.discord.messages[answer_id]["content"] == "Two.")

    # A Stop button left over from a bot that died mid-answer says it expired and goes away.
    stop_row = {
        "type": 1,
        "components": [{"type": 2, "style": 4, "label": "Stop", "custom_id": f"ollacord:stop:{key}"}],
    }
    harness.discord.messages[answer_id]["components"] = [stop_row]
    stale = await harness.discord.click_button(answer_id, f"ollacord:stop:{key}")
    await harness.discord.wait_for(lambda: len(harness.discord.interaction_responses(stale)) >= 2)
    responses = harness.discord.interaction_responses(stale)
    assert responses[0].json["type"] == 7 and responses[0].json["data"]["components"] == []
    assert "no longer being generated" in responses[1].json["content"]


async def test_queue_shows_position_while_waiting_for_ollama(harness: Harness) -> None:
    harness.ollama.scripts.extend(
        [ChatScript(tokens=[f" a{i}" for i in range(40)], token_delay=0.03), ChatScript(tokens=["second"])]
    )
    await harness.start_bot(harness.settings(MAX_CONCURRENT_REQUESTS="1"))
    first = await harness.discord.send_user_message("one", mention_bot=True, channel_id=500)
    await harness.discord.wait_for(lambda: len(harness.ollama.chat_requests) == 1)
    second = await harness.discord.send_user_message("two", mention_bot=True, channel_id=501, author_id=201)
    second_parts = await harness.wait_for_reply(int(second["id"]))
    await harness.wait_for_reply(int(first["id"]))

    assert second_parts == ["second"]
    versions = harness.discord.message_history[int(harness.replies_to(int(second["id"]))[0]["id"])]
    assert versions[0] == notes.queue_status(1, 1)
    # The second request reached Ollama only after the first had finished.
    one, two = harness.ollama.chat_requests
    assert one.last_token_at is not None and two.at >= one.last_token_at


async def test_per_user_rate_limit_is_explained(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(USER_REQUESTS_PER_MINUTE="2"))
    for text in ("one", "two"):
        message = await harness.discord.send_user_message(text, mention_bot=True)
        await harness.wait_for_reply(int(message["id"]))
    third = await harness.discord.send_user_message("three", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(third["id"]))))

    assert "You're asking quickly" in harness.replies_to(int(third["id"]))[0]["content"]
    assert len(harness.ollama.chat_requests) == 2
    # Someone else is not affected.
    other = await harness.discord.send_user_message("mine", mention_bot=True, author_id=201)
    assert await harness.wait_for_reply(int(other["id"])) == ["ok"]


async def test_server_busy_is_retried_before_the_user_sees_an_error(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(status=503, error=BUSY_TEXT), ChatScript(tokens=["Made", " it."])])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("hi", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]), timeout=15)
    assert parts == ["Made it."]
    assert [r.status for r in harness.ollama.chat_requests] == [503, 200]
