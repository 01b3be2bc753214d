"""End to end: threads, DMs and attachments."""

from __future__ import annotations

import base64

from tests.conftest import Harness, command
from tests.fakes.fake_ollama import ChatScript

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_chat_command_opens_a_thread_where_every_message_is_answered(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["sure"])
    await harness.start_bot()
    await command(harness, "model", {"name": "qwen3:8b"}, channel_id=500)

    announcement = await command(harness, "chat", {"topic": "Python help"})
    (thread_id,) = harness.discord.threads
    thread = harness.discord.threads[thread_id]
    assert thread["name"] == "Python help" and int(thread["parent_id"]) == 500
    assert f"<#{thread_id}>" in announcement["content"]

    first = await harness.discord.send_user_message("how do I sort a dict?", channel_id=thread_id)
    await harness.wait_for_reply(int(first["id"]))
    second = await harness.discord.send_user_message("by value please", channel_id=thread_id, author_id=201)
    await harness.wait_for_reply(int(second["id"]))

    body = harness.ollama.chat_requests[-1].json
    assert body["model"] == "qwen3:8b"  # settings resolve from the thread's parent channel
    assert body["messages"] == [
        {"role": "user", "content": "Alice: how do I sort a dict?"},
        {"role": "assistant", "content": "sure"},
        {"role": "user", "content": "Bob: by value please"},
    ]


async def test_threads_the_bot_did_not_start_need_a_mention_and_inherit_settings(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "system", {"prompt": "Parent prompt."}, channel_id=500)
    thread_id = await harness.discord.create_thread(500, "user thread")

    await harness.discord.send_user_message("talking among ourselves", channel_id=thread_id)
    asked = await harness.discord.send_user_message("what now?", channel_id=thread_id, mention_bot=True)
    await harness.wait_for_reply(int(asked["id"]))
    assert len(harness.ollama.chat_requests) == 1
    assert harness.ollama.chat_requests[0].json["messages"][0] == {"role": "system", "content": "Parent prompt."}

    # A thread-level override wins over the parent channel.
    await command(harness, "system", {"prompt": "Thread prompt."}, channel_id=thread_id)
    again = await harness.discord.send_user_message("and now?", channel_id=thread_id, mention_bot=True)
    await harness.wait_for_reply(int(again["id"]))
    assert harness.ollama.chat_requests[1].json["messages"][0] == {"role": "system", "content": "Thread prompt."}


async def test_dms_are_answered_with_dm_history_when_allowed(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["hello there"])
    await harness.start_bot(harness.settings(ALLOW_DMS="true"))
    first = await harness.discord.send_user_message("hi", guild=False)
    await harness.wait_for_reply(int(first["id"]))
    second = await harness.discord.send_user_message("how are you?", guild=False)
    parts = await harness.wait_for_reply(int(second["id"]))

    assert parts == ["hello there"]
    assert harness.ollama.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "Alice: hi"},
        {"role": "assistant", "content": "hello there"},
        {"role": "user", "content": "Alice: how are you?"},
    ]


async def test_dms_are_refused_politely_when_off(harness: Harness) -> None:
    await harness.start_bot()
    message = await harness.discord.send_user_message("hi", guild=False)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(message["id"]))))
    assert "direct messages are turned off" in harness.replies_to(int(message["id"]))[0]["content"]
    assert harness.ollama.chat_requests == []


async def test_image_goes_to_a_vision_model_as_bare_base64(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["A red pixel."])
    await harness.start_bot(harness.settings(OLLAMA_MODEL="gemma3:4b"))
    prompt = await harness.discord.send_user_message(
        "what is this?", mention_bot=True, attachments=[("pixel.png", PNG, "image/png")]
    )
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert parts == ["A red pixel."]
    user_turn = harness.ollama.chat_requests[0].json["messages"][-1]
    assert user_turn["images"] == [base64.b64encode(PNG).decode()]
    assert not user_turn["images"][0].startswith("data:")


async def test_image_to_a_text_model_gets_a_visible_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["I can't see it."])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message(
        "what is this?", mention_bot=True, attachments=[("cat.png", PNG, "image/png")]
    )
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert "images" not in harness.ollama.chat_requests[0].json["messages"][-1]
    assert "`cat.png` was not sent" in parts[0]
    assert "can't see images" in parts[0]


async def test_text_files_are_inlined_and_other_files_noted(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Looks fine."])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message(
        "review this",
        mention_bot=True,
        attachments=[
            ("main.py", b"print('hi')\n", "text/x-python"),
            ("archive.zip", b"PK\x03\x04" + bytes(100), "application/zip"),
        ],
    )
    parts = await harness.wait_for_reply(int(prompt["id"]))

    content = harness.ollama.chat_requests[0].json["messages"][-1]["content"]
    assert content.startswith("Alice: review this")
    assert "Attached file `main.py`:\n```python\nprint('hi')\n```" in content
    assert "`archive.zip` was skipped" in parts[0]
