"""End to end: what Ollama does without saying so, through the real bot against the fakes.

`think` on a model that cannot think, an older server without `capabilities`, a prompt longer than
num_ctx (cut silently by Ollama), an answer stopped at num_predict, text files in legacy encodings,
and attachments that must not be downloaded before the request is admitted.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import LLAVA_MODEL, ChatScript

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PROSE = (
    "The river runs past the old mill and under the stone bridge before it reaches the town square "
    "where the market opens every morning at dawn. "
)


async def command(harness: Harness, name: str, options: dict[str, Any], channel_id: int = 500) -> str:
    """Run a slash command and return its ephemeral answer."""
    token = await harness.discord.send_slash_command(name, options, channel_id=channel_id)

    def answered() -> bool:
        message = harness.discord.original_message(token)
        return message is not None and bool(message.get("content"))

    await harness.discord.wait_for(answered)
    message = harness.discord.original_message(token)
    assert message is not None
    return str(message["content"])


async def ask(harness: Harness, text: str, **kw: Any) -> tuple[dict[str, Any], list[str]]:
    """Mention the bot, wait for the final answer; return the message and the answer's parts."""
    prompt = await harness.discord.send_user_message(text, mention_bot=True, **kw)
    return prompt, await harness.wait_for_reply(int(prompt["id"]))


def downloads(harness: Harness, message: dict[str, Any]) -> list[Any]:
    """The fake CDN's GETs for `message`'s attachments."""
    paths = {a["url"].split("?")[0].split("://", 1)[-1].split("/", 1)[-1] for a in message["attachments"]}
    return [c for c in harness.discord.calls if c.method == "GET" and c.path.lstrip("/") in paths]


# ---- think


async def test_server_wide_think_on_leaves_models_that_cannot_think_alone(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    assert "`think`" in await command(harness, "set", {"option": "think", "value": "on", "scope": "server"})
    await command(harness, "model", {"name": "qwen3:8b"}, channel_id=501)

    _, plain = await ask(harness, "hi", channel_id=500)  # llama3.2 cannot think
    _, thinking = await ask(harness, "hi", channel_id=501)

    assert plain == ["ok"] and thinking == ["ok"]
    sent = [r.json for r in harness.ollama.chat_requests]
    assert [(body["model"], body.get("think")) for body in sent] == [("llama3.2", None), ("qwen3:8b", True)]
    assert all(r.status == 200 for r in harness.ollama.chat_requests)

    shown = await command(harness, "settings", {}, channel_id=500)
    think_line = next(line for line in shown.splitlines() if line.startswith("`think`"))
    assert "not applicable" in think_line and "`llama3.2`" in think_line
    shown_thinking = await command(harness, "settings", {}, channel_id=501)
    assert "not applicable" not in shown_thinking


async def test_think_refused_by_ollama_is_asked_again_without_it(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["fine"])
    await harness.start_bot()
    await command(harness, "model", {"name": "qwen3:8b"})
    await command(harness, "set", {"option": "think", "value": "high"})
    await ask(harness, "first")  # the bot learns (and caches) that qwen3:8b can think
    # The model is replaced by one that cannot (a re-pull); the cached capabilities are now stale.
    harness.ollama.add_model(replace(harness.ollama.models["qwen3:8b"], capabilities=("completion", "tools")))

    _, parts = await ask(harness, "second")

    assert parts == ["fine"]
    statuses = [(r.status, r.json.get("think")) for r in harness.ollama.chat_requests]
    assert statuses == [(200, "high"), (400, "high"), (200, None)]
    _, again = await ask(harness, "third")  # and it remembers: no second refusal
    assert again == ["fine"]
    assert harness.ollama.chat_requests[-1].json.get("think") is None
    assert harness.ollama.chat_requests[-1].status == 200


# ---- older servers


async def test_a_llava_model_on_an_old_server_still_gets_images(harness: Harness) -> None:
    harness.ollama.set_version("0.5.7")  # before /api/show had `capabilities`
    harness.ollama.add_model(LLAVA_MODEL)
    harness.ollama.default_script = ChatScript(tokens=["A pixel."])
    await harness.start_bot(harness.settings(OLLAMA_MODEL="llava:7b"))

    _, parts = await ask(harness, "what is this?", attachments=[("pixel.png", PNG, "image/png")])

    assert parts == ["A pixel."]
    user_turn = harness.ollama.chat_requests[0].json["messages"][-1]
    assert user_turn["images"] == [base64.b64encode(PNG).decode()]


# ---- context overflow


async def test_a_long_conversation_over_a_small_num_ctx_is_budgeted_with_a_note(harness: Harness) -> None:
    answer = PROSE * 5  # ~140 words per answer, sent as one chunk to keep Discord writes few
    harness.ollama.default_script = ChatScript(tokens=[answer.strip()])
    await harness.start_bot()
    await command(harness, "set", {"option": "num_ctx", "value": "512"})

    prompt, _ = await ask(harness, "Tell me about the river. " + PROSE)
    for turn in range(3):
        last_answer = harness.replies_to(int(prompt["id"]))[-1]
        prompt = await harness.discord.send_user_message(
            f"Go on, part {turn}. {PROSE}", reply_to=int(last_answer["id"])
        )
        parts = await harness.wait_for_reply(int(prompt["id"]))

    final = harness.ollama.chat_requests[-1]
    assert final.fit is not None
    assert not final.fit.truncated, "Ollama had to cut the prompt: the bot sent more than num_ctx holds"
    assert final.fit.num_ctx == 512
    assert final.json["messages"][-1]["content"].startswith("Alice: Go on, part 2.")
    assert notes.context_history_trimmed(512) in parts[-1]
    # The newest history was kept as far as it fits, starting with a question.
    kept = final.json["messages"][:-1]
    assert kept and kept[0]["content"].startswith("Alice: Go on, part 1.") and kept[-1]["role"] == "assistant"


async def test_a_big_attachment_over_num_ctx_is_cut_to_fit_with_a_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Summary."])
    await harness.start_bot()
    await command(harness, "set", {"option": "num_ctx", "value": "1024"})
    text = PROSE * 150  # ~20,000 characters, far beyond 1024 tokens

    _, parts = await ask(harness, "summarise this", attachments=[("story.txt", text.encode(), "text/plain")])

    request = harness.ollama.chat_requests[-1]
    assert request.fit is not None and not request.fit.truncated
    content = request.json["messages"][-1]["content"]
    assert content.startswith("Alice: summarise this\n\nAttached file `story.txt`:")
    assert PROSE[:200] in content  # the start of the file is there
    assert "`story.txt` was cut to its first" in parts[0]
    assert "to fit the model's context window (1,024 tokens)" in parts[0]


async def test_the_context_of_the_loaded_model_is_the_one_budgeted(harness: Harness) -> None:
    """No num_ctx set anywhere: Ollama runs the model with its own default, which the operator may have
    changed (OLLAMA_CONTEXT_LENGTH, invisible to the API); /api/ps shows it once the model is loaded."""
    harness.ollama.default_num_ctx = 1024
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await ask(harness, "hi")  # loads the model

    _, parts = await ask(harness, "summarise", attachments=[("story.txt", (PROSE * 100).encode(), "text/plain")])

    request = harness.ollama.chat_requests[-1]
    assert "options" not in request.json  # nothing forced: the loaded model is not reloaded
    assert request.fit is not None and request.fit.num_ctx == 1024 and not request.fit.truncated
    assert "to fit the model's context window (1,024 tokens)" in parts[0]


# ---- done_reason length


async def test_an_answer_stopped_at_num_predict_says_it_was_cut(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=[f" word{i}" for i in range(20)])
    await harness.start_bot()
    await command(harness, "set", {"option": "num_predict", "value": "5"})

    _, parts = await ask(harness, "write a lot")

    assert harness.ollama.chat_requests[0].json["options"]["num_predict"] == 5
    answer, note = parts[-1].split("\n", 1)
    assert answer == " word0 word1 word2 word3 word4"
    assert note == notes.note(notes.LENGTH_LIMIT)
    assert STREAMING_MARKER not in parts[-1]


# ---- encodings


async def test_text_files_in_legacy_encodings_are_decoded(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Read them."])
    await harness.start_bot()
    files = {
        "japanese.txt": ("日本語のテキストファイルです。\n文字コードはシフトJISで保存されています。\n", "shift_jis"),
        "chinese.txt": ("这是一个中文文本文件。\n它使用GBK编码保存。\n你好，世界！\n", "gbk"),
        "french.txt": ("Café au lait, crème brûlée et déjà vu.\nÜber Größe und Maß: naïve façade.\n", "latin-1"),
        "notes.txt": ("Hello from a UTF-16 file without a byte order mark.\nSecond line: café.\n", "utf-16-le"),
    }
    attachments = [(name, text.encode(encoding), "text/plain") for name, (text, encoding) in files.items()]

    _, parts = await ask(harness, "read these", attachments=attachments)

    assert parts == ["Read them."]  # no "binary" or other notes
    content = harness.ollama.chat_requests[0].json["messages"][-1]["content"]
    for name, (text, _) in files.items():
        assert f"Attached file `{name}`:\n```\n{text.rstrip()}\n```" in content


# ---- downloads only once admitted


async def test_attachments_are_not_downloaded_while_the_request_waits_in_the_queue(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["busy", " busy"], stall_after=1), ChatScript(tokens=["Read."])])
    await harness.start_bot(harness.settings(MAX_CONCURRENT_REQUESTS="1"))
    first = await harness.discord.send_user_message("long one", mention_bot=True, channel_id=500)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(first["id"]))))

    second = await harness.discord.send_user_message(
        "read this", mention_bot=True, channel_id=501, author_id=201, attachments=[("a.txt", b"queued text", None)]
    )
    second_id = int(second["id"])
    await harness.discord.wait_for(
        lambda: (
            bool(harness.replies_to(second_id))
            and harness.replies_to(second_id)[0]["content"].startswith(notes.queue_status(1, 1))
        )
    )
    assert downloads(harness, second) == [], "downloaded while still waiting in the queue"

    first_reply = harness.replies_to(int(first["id"]))[0]
    await harness.discord.click_button(int(first_reply["id"]), f"ollacord:stop:{first['id']}")
    parts = await harness.wait_for_reply(second_id)

    assert parts == ["Read."]
    assert len(downloads(harness, second)) == 1
    assert "queued text" in harness.ollama.chat_requests[-1].json["messages"][-1]["content"]


async def test_attachments_of_a_rate_limited_request_are_not_downloaded(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(USER_REQUESTS_PER_MINUTE="1"))
    await ask(harness, "one")
    second = await harness.discord.send_user_message(
        "two", mention_bot=True, attachments=[("b.txt", b"some text", "text/plain"), ("c.png", PNG, "image/png")]
    )
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(second["id"]))))

    assert "You're asking quickly" in harness.replies_to(int(second["id"]))[0]["content"]
    assert downloads(harness, second) == []


async def test_images_beyond_the_image_memory_budget_are_left_out_with_a_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["One image."])
    big = PNG + bytes(600 * 1024)  # Ollama gets it as base64 either way; the fake checks only the encoding
    await harness.start_bot(harness.settings(OLLAMA_MODEL="gemma3:4b", MAX_IMAGE_MB="1", IMAGE_MEMORY_MB="1"))

    prompt, parts = await ask(
        harness, "compare", attachments=[("a.png", big, "image/png"), ("b.png", big, "image/png")]
    )

    assert len(harness.ollama.chat_requests[0].json["messages"][-1]["images"]) == 1
    assert "`b.png` was not sent" in parts[0]
    assert len(downloads(harness, prompt)) == 1  # the one that did not fit was never downloaded
    answering = harness.running[0].services.answering
    assert answering.prompts.image_memory.used == 0  # released once the answer is done
