"""End to end: /models, /pull, /delete and /status."""

from __future__ import annotations

import socket
from typing import Any

from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript

MEMBER = str(1024 | 2048 | 65536)


async def command(harness: Harness, name: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    """Run a slash command; return its interaction token once it has a visible answer."""
    token = await harness.discord.send_slash_command(name, options, **kw)
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    return token


def answer(harness: Harness, token: str) -> str:
    message = harness.discord.original_message(token)
    assert message is not None
    content: str = message["content"]
    return content


async def test_models_lists_details_and_what_is_loaded(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["hi"])
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("load it", mention_bot=True)
    await harness.wait_for_reply(int(prompt["id"]))

    text = answer(harness, await command(harness, "models"))
    assert "**3 model(s)" in text
    assert "`qwen3:8b` · 5.2 GB · 8.2B · Q4_K_M · 🔧 tools · 💭 thinking" in text
    assert "`gemma3:4b` · 3.3 GB · 4.3B · Q4_K_M · 👁️ vision" in text
    assert "`llama3.2:latest`" in text and "🟢 loaded" in text.split("`llama3.2:latest`")[1].split("\n")[0]


async def test_pull_shows_progress_and_ends_with_success(harness: Harness) -> None:
    await harness.start_bot(harness.settings(EDIT_INTERVAL="0.2"))
    token = await command(harness, "pull", {"name": "tinyllama"})
    original = harness.discord.original_message(token)
    assert original is not None
    message_id = int(original["id"])
    await harness.discord.wait_for(lambda: harness.discord.messages[message_id]["content"].startswith("✅"), 20)

    assert "tinyllama" in harness.discord.messages[message_id]["content"]
    tags = [r for r in harness.ollama.requests if r.path == "/api/pull"]
    assert tags and tags[0].json["model"] == "tinyllama"
    assert "tinyllama:latest" in answer(harness, await command(harness, "models"))


async def test_pull_of_an_unknown_model_shows_the_exact_error(harness: Harness) -> None:
    await harness.start_bot()
    token = await command(harness, "pull", {"name": "no-such-model"})
    original = harness.discord.original_message(token)
    assert original is not None
    message_id = int(original["id"])
    await harness.discord.wait_for(lambda: harness.discord.messages[message_id]["content"].startswith("❌"))
    assert "pull model manifest: file does not exist" in harness.discord.messages[message_id]["content"]


async def test_admin_commands_refuse_non_admins(harness: Harness) -> None:
    await harness.start_bot()
    for name, options in (("pull", {"name": "tinyllama"}), ("delete", {"name": "gemma3:4b"})):
        text = answer(harness, await command(harness, name, options, user_id=201, permissions=MEMBER))
        assert "Only the bot's admins" in text
    assert not [r for r in harness.ollama.requests if r.path in ("/api/pull", "/api/delete")]


async def confirm_delete(harness: Harness, model: str, button: str) -> str:
    token = await command(harness, "delete", {"name": model})
    original = harness.discord.original_message(token)
    assert original is not None
    buttons = {c["label"]: c["custom_id"] for row in original["components"] for c in row["components"]}
    await harness.discord.click_button(int(original["id"]), buttons[button])
    await harness.discord.wait_for(lambda: not (harness.discord.original_message(token) or {}).get("components"))
    return answer(harness, token)


async def test_delete_needs_confirmation(harness: Harness) -> None:
    await harness.start_bot()
    assert await confirm_delete(harness, "gemma3:4b", "Cancel") == "Kept `gemma3:4b`."
    assert not [r for r in harness.ollama.requests if r.path == "/api/delete"]

    assert await confirm_delete(harness, "gemma3:4b", "Delete") == "🗑️ Deleted `gemma3:4b`."
    assert "gemma3:4b" not in answer(harness, await command(harness, "models"))


async def test_status_reports_ollama_streams_and_uptime(harness: Harness) -> None:
    await harness.start_bot()
    text = answer(harness, await command(harness, "status"))
    assert f"🟢 Ollama 0.32.15 at {harness.ollama.url}" in text
    assert "Answers streaming: 0 · waiting for Ollama: 0" in text
    assert "Discord latency:" in text and "Uptime:" in text


async def test_status_counts_answers_streaming_and_waiting(harness: Harness) -> None:
    # One slot on Ollama: the first answer streams slowly, the second waits in line.
    harness.ollama.default_script = ChatScript(tokens=[f" w{i}" for i in range(100)], token_delay=0.05)
    await harness.start_bot()
    first = await harness.discord.send_user_message("one", mention_bot=True)
    second = await harness.discord.send_user_message("two", mention_bot=True, author_id=201)
    await harness.discord.wait_for(lambda: " w1" in "".join(m["content"] for m in harness.replies_to(int(first["id"]))))
    await harness.discord.wait_for(
        lambda: "next in line" in "".join(m["content"] for m in harness.replies_to(int(second["id"])))
    )
    text = answer(harness, await command(harness, "status"))
    assert "Answers streaming: 2 · waiting for Ollama: 1" in text


async def test_status_says_when_ollama_is_unreachable(harness: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    await harness.start_bot(harness.settings(OLLAMA_HOST=f"127.0.0.1:{dead}"))
    text = answer(harness, await command(harness, "status"))
    assert f"🔴 Ollama unreachable at http://127.0.0.1:{dead}" in text
