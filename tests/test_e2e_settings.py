"""End to end: per-channel and per-server settings through slash commands, applied to Ollama requests."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Harness, command
from tests.fakes.fake_ollama import ChatScript

EVERYTHING = "2251799813685247"
MEMBER = str(1024 | 2048 | 65536)  # view, send, read history: no management rights
CHANNEL_MANAGER = str(int(MEMBER) | 16)  # + Manage Channels


async def ask_in(harness: Harness, channel_id: int, text: str = "hi") -> dict[str, Any]:
    """Mention the bot in a channel, wait for the answer, return what Ollama received."""
    before = len(harness.ollama.chat_requests)
    prompt = await harness.discord.send_user_message(text, mention_bot=True, channel_id=channel_id)
    await harness.wait_for_reply(int(prompt["id"]))
    assert len(harness.ollama.chat_requests) == before + 1
    body: dict[str, Any] = harness.ollama.chat_requests[-1].json
    return body


async def test_two_channels_answer_with_their_own_model_and_system_prompt(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()

    assert "qwen3:8b" in (await command(harness, "model", {"name": "qwen3:8b"}, channel_id=500))["content"]
    await command(harness, "system", {"prompt": "You are a pirate."}, channel_id=500)
    await command(harness, "model", {"name": "gemma3:4b"}, channel_id=501)
    await command(harness, "system", {"prompt": "Be terse."}, channel_id=501)

    general = await ask_in(harness, 500)
    random = await ask_in(harness, 501)
    assert general["model"] == "qwen3:8b"
    assert general["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert random["model"] == "gemma3:4b"
    assert random["messages"][0] == {"role": "system", "content": "Be terse."}


async def test_server_default_applies_where_no_channel_override_exists(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "model", {"name": "qwen3:8b"}, channel_id=500)
    await command(harness, "model", {"name": "gemma3:4b", "scope": "server"}, channel_id=500)

    assert (await ask_in(harness, 500))["model"] == "qwen3:8b"
    assert (await ask_in(harness, 501))["model"] == "gemma3:4b"
    shown = (await command(harness, "settings", channel_id=501))["content"]
    assert "`model` = gemma3:4b · *server*" in shown
    assert "`temperature` = (model default) · *default*" in shown


async def test_generation_options_reach_ollama(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    for option, value in [("temperature", "0.3"), ("num_ctx", "8192"), ("think", "off"), ("keep_alive", "10m")]:
        reply = await command(harness, "set", {"option": option, "value": value})
        assert f"`{option}`" in reply["content"]

    body = await ask_in(harness, 500)
    assert body["options"] == {"temperature": 0.3, "num_ctx": 8192}
    assert body["think"] is False
    assert body["keep_alive"] == "10m"

    await command(harness, "reset", {"option": "temperature"})
    assert (await ask_in(harness, 500))["options"] == {"num_ctx": 8192}
    await command(harness, "reset")
    body = await ask_in(harness, 500)
    assert "options" not in body and "think" not in body and "keep_alive" not in body


async def test_members_without_permission_are_refused_and_nothing_changes(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()

    refused = await command(harness, "model", {"name": "qwen3:8b"}, user_id=201, permissions=MEMBER)
    assert "Manage Channels" in refused["content"]
    refused = await command(harness, "set", {"option": "temperature", "value": "1"}, user_id=201, permissions=MEMBER)
    assert "Manage Channels" in refused["content"]
    server = await command(
        harness, "model", {"name": "qwen3:8b", "scope": "server"}, user_id=201, permissions=CHANNEL_MANAGER
    )
    assert "Manage Server" in server["content"]
    # Reading is open to everyone.
    assert "llama3.2" in (await command(harness, "model", user_id=201, permissions=MEMBER))["content"]

    body = await ask_in(harness, 500)
    assert body["model"] == "llama3.2" and "options" not in body

    allowed = await command(
        harness, "set", {"option": "top_k", "value": "20"}, user_id=201, permissions=CHANNEL_MANAGER
    )
    assert "top_k" in allowed["content"]
    assert (await ask_in(harness, 500))["options"] == {"top_k": 20}


async def test_configured_admins_may_change_settings_without_discord_permissions(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(ADMIN_USER_IDS="201"))
    reply = await command(harness, "model", {"name": "gemma3:4b", "scope": "server"}, user_id=201, permissions=MEMBER)
    assert "gemma3:4b" in reply["content"]
    assert (await ask_in(harness, 501))["model"] == "gemma3:4b"


async def test_bad_values_are_refused_with_a_short_message(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()

    missing = (await command(harness, "model", {"name": "qwen3:4b"}))["content"]
    assert "`qwen3:4b` is not installed" in missing
    assert "qwen3:8b" in missing  # the closest installed name is offered
    bad = (await command(harness, "set", {"option": "temperature", "value": "hot"}))["content"]
    assert "temperature" in bad and "Traceback" not in bad
    too_big = (await command(harness, "set", {"option": "num_ctx", "value": "99999999"}))["content"]
    assert "num_ctx" in too_big

    body = await ask_in(harness, 500)
    assert body["model"] == "llama3.2" and "options" not in body


async def test_settings_survive_a_restart(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "model", {"name": "qwen3:8b"}, channel_id=500)
    await command(harness, "system", {"prompt": "Answer in French."}, channel_id=500)
    await command(harness, "model", {"name": "gemma3:4b", "scope": "server"})
    await harness.stop_all()

    await harness.start_bot()
    general = await ask_in(harness, 500)
    assert general["model"] == "qwen3:8b"
    assert general["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert (await ask_in(harness, 501))["model"] == "gemma3:4b"


async def test_clearing_the_system_prompt_falls_back_to_the_default(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot(harness.settings(SYSTEM_PROMPT="Global voice."))
    await command(harness, "system", {"prompt": "Channel voice."})
    assert (await ask_in(harness, 500))["messages"][0]["content"] == "Channel voice."
    await command(harness, "system", {"clear": True})
    assert (await ask_in(harness, 500))["messages"][0]["content"] == "Global voice."


def autocomplete_choices(harness: Harness, token: str) -> list[dict[str, Any]] | None:
    for call in harness.discord.interaction_responses(token):
        if call.path.endswith("/callback") and call.json and call.json.get("type") == 8:
            choices: list[dict[str, Any]] = call.json["data"]["choices"]
            return choices
    return None


async def test_model_autocomplete_lists_installed_models(harness: Harness) -> None:
    await harness.start_bot()
    token = await harness.discord.send_autocomplete("model", {"name": "qw"}, focused="name")
    await harness.discord.wait_for(lambda: autocomplete_choices(harness, token) is not None)
    assert autocomplete_choices(harness, token) == [{"name": "qwen3:8b · 5.2 GB · 8.2B", "value": "qwen3:8b"}]


async def test_model_autocomplete_answers_quickly_when_ollama_is_slow(harness: Harness) -> None:
    harness.ollama.route_delays["/api/tags"] = 4.0
    await harness.start_bot()
    started = time.monotonic()
    token = await harness.discord.send_autocomplete("model", {"name": ""}, focused="name")
    await harness.discord.wait_for(lambda: autocomplete_choices(harness, token) is not None, timeout=3)
    assert time.monotonic() - started < 2.5
    assert autocomplete_choices(harness, token) == []


async def test_auto_reply_channel_answers_every_message_with_channel_history(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["noted"])
    await harness.start_bot()
    await harness.discord.send_user_message("before auto-reply", channel_id=500)
    await command(harness, "set", {"option": "auto_reply", "value": "on"})
    await harness.discord.send_user_message("I like tea", author_id=201, channel_id=500)
    await harness.discord.wait_for(lambda: len(harness.ollama.chat_requests) == 1 and harness.idle())
    second = await harness.discord.send_user_message("what does Bob like?", channel_id=500)
    await harness.wait_for_reply(int(second["id"]))

    messages = harness.ollama.chat_requests[-1].json["messages"]
    assert messages[-1] == {"role": "user", "content": "Alice: what does Bob like?"}
    assert {"role": "user", "content": "Bob: I like tea"} in messages
    assert {"role": "assistant", "content": "noted"} in messages
    # Other channels are not affected.
    await harness.discord.send_user_message("quiet here", channel_id=501)
    await ask_in(harness, 501, "only this one")
    assert len(harness.ollama.chat_requests) == 3
