"""End to end with several bot processes on one PostgreSQL and the fake Discord: active and standby.

Each instance is the real entry point in a child process (tests/instances.py). The fake Discord sends
every event to every session of a shard, as Discord does, so an instance that answers when it should
not shows up as a second reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript
from tests.fakes.tcp_proxy import TcpProxy
from tests.instances import TIMEOUT, Instance
from tests.postgres_server import PostgresServer

Start = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def start(harness: Harness, postgres_url: str, tmp_path: Path) -> AsyncIterator[Start]:
    """Start an instance on the test's database (or `database_url`), against the harness's fakes."""
    started: list[Instance] = []

    async def launch(name: str, *, database_url: str | None = None, **env: str) -> Instance:
        instance = await Instance.start(
            name, harness.discord, harness.ollama, tmp_path, database_url=database_url or postgres_url, **env
        )
        started.append(instance)
        return instance

    yield launch
    for instance in started:
        await instance.kill()


@pytest.fixture
def own_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own, to stop and restart."""
    server = postgres_server.copy()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def command(harness: Harness, name: str, options: dict[str, Any] | None = None) -> str:
    """Run a slash command in channel 500; the text of its (ephemeral) answer."""
    token = await harness.discord.send_slash_command(name, options)

    def answered() -> bool:
        message = harness.discord.original_message(token)
        return message is not None and bool(message.get("content"))

    await harness.discord.wait_for(answered, TIMEOUT)
    message = harness.discord.original_message(token)
    assert message is not None
    return str(message["content"])


async def ask(harness: Harness, text: str, **kwargs: Any) -> list[str]:
    prompt = await harness.discord.send_user_message(text, mention_bot=True, **kwargs)
    return await harness.wait_for_reply(int(prompt["id"]), timeout=TIMEOUT)


async def active_and_standby(start: Start, **env: str) -> tuple[Instance, Instance]:
    first = await start("bot-a", **env)
    await first.wait_for_output("connected to Discord as")
    second = await start("bot-b", **env)
    await second.wait_for_output("standby for auto: bot-a is active")
    return first, second


def assert_clean(*instances: Instance) -> None:
    for instance in instances:
        assert "Traceback" not in instance.output, instance.output
        assert "fake-token" not in instance.output


async def test_two_instances_share_one_database_and_only_one_answers(harness: Harness, start: Start) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Only", " once."])
    first, second = await active_and_standby(start)

    assert await second.health() == (200, "standby: bot-a is active\n")
    assert await first.wait_for_health("ok") == "ok: active instance bot-a\n"
    assert await ask(harness, "hello") == ["Only once."]
    assert await ask(harness, "again") == ["Only once."]

    assert len(harness.ollama.chat_requests) == 2
    assert harness.discord.shards_connected() == [(0, 1)]  # the standby never connected to Discord
    assert harness.discord.max_sessions_per_shard == 1
    assert "reply finished" in first.output and "reply finished" not in second.output
    assert_clean(first, second)


async def test_sigkill_of_the_active_instance_mid_answer(harness: Harness, start: Start) -> None:
    """The standby takes over, the half-finished reply gets its note, settings from before still apply."""
    first, second = await active_and_standby(start)
    assert "now `qwen3:8b`" in await command(harness, "model", {"name": "qwen3:8b"})
    harness.ollama.scripts.append(ChatScript(tokens=[f" w{i}" for i in range(3000)], token_delay=0.01))
    harness.ollama.default_script = ChatScript(tokens=["Still", " here."])
    prompt = await harness.discord.send_user_message("tell me a long story", mention_bot=True)
    prompt_id = int(prompt["id"])

    def streaming_words() -> bool:
        parts = harness.replies_to(prompt_id)
        return bool(parts) and " w5" in parts[0]["content"] and parts[-1]["content"].endswith(STREAMING_MARKER)

    await harness.discord.wait_for(streaming_words, TIMEOUT)
    await first.kill()

    await second.wait_for_output("connected to Discord as")
    interrupted = notes.note(notes.INTERRUPTED)

    def finished_with_the_note() -> bool:
        parts = harness.replies_to(prompt_id)
        return bool(parts) and parts[-1]["content"].endswith(interrupted)

    await harness.discord.wait_for(finished_with_the_note, TIMEOUT)
    parts = harness.replies_to(prompt_id)
    assert parts[0]["content"].startswith(" w0 w1") or parts[0]["content"].startswith("w0 w1")
    assert not any(part["content"].endswith(STREAMING_MARKER) for part in parts)
    assert not any(part.get("components") for part in parts[:-1])  # no Stop button left anywhere

    assert await ask(harness, "are you there?") == ["Still here."]
    assert harness.ollama.chat_requests[-1].json["model"] == "qwen3:8b"  # set before the kill
    assert await second.wait_for_health("ok") == "ok: active instance bot-b\n"
    assert_clean(second)


async def test_graceful_shutdown_hands_over_at_once(harness: Harness, start: Start) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Hello", " from b."])
    first, second = await active_and_standby(start)

    assert await first.terminate() == 0
    await second.wait_for_output("connected to Discord as")
    assert "handed over the lock" in first.output
    assert "did not hand over" not in second.output  # no waiting out a lease after a hand-over
    assert await ask(harness, "hi") == ["Hello from b."]
    assert_clean(first, second)


async def test_the_database_restarts_while_the_bot_runs(
    harness: Harness, start: Start, own_server: PostgresServer
) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Fine."])
    url = own_server.url(own_server.new_database())
    bot = await start("bot-a", database_url=url)
    await bot.wait_for_output("connected to Discord as")
    assert "now `qwen3:8b`" in await command(harness, "model", {"name": "qwen3:8b"})

    await asyncio.to_thread(own_server.stop, "fast")
    await asyncio.to_thread(own_server.start)

    # The lock's session ended with the restart: the instance gets it back, or steps down and comes back.
    await bot.wait_until(
        lambda: "got the lock for auto back" in bot.output or "lost the active/standby lock" in bot.output,
        TIMEOUT,
        "the lock's recovery",
    )
    await bot.wait_for_health("ok: active instance bot-a")
    assert await ask(harness, "still there?") == ["Fine."]
    assert harness.ollama.chat_requests[-1].json["model"] == "qwen3:8b"
    assert "now `gemma3:4b`" in await command(harness, "model", {"name": "gemma3:4b"})
    assert bot.process.returncode is None
    assert_clean(bot)


async def stored_settings(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        return {row["key"]: row["value"] for row in await conn.fetch("SELECT key, value FROM settings")}
    finally:
        await conn.close()


async def test_a_settings_change_during_a_database_outage_is_reported_and_leaves_nothing(
    harness: Harness, start: Start, own_server: PostgresServer
) -> None:
    url = own_server.url(own_server.new_database())
    # A longer lease: the command below must reach the instance while it is still allowed to answer.
    bot = await start("bot-a", database_url=url, LEADER_LEASE_SECONDS="8")
    await bot.wait_for_output("connected to Discord as")
    assert "is now 0.5" in await command(harness, "set", {"option": "temperature", "value": "0.5"})

    await asyncio.to_thread(own_server.stop, "fast")
    answer = await command(harness, "set", {"option": "temperature", "value": "1.5"})
    assert answer.startswith("❌ Couldn't save that") and "nothing was changed" in answer
    await asyncio.to_thread(own_server.start)

    assert await stored_settings(url) == {"temperature": "0.5"}
    await bot.wait_for_health("ok: active instance bot-a")
    assert "0.5" in await command(harness, "settings")
    assert "settings change not saved" in bot.output
    assert_clean(bot)


async def test_a_split_network_never_lets_two_instances_answer(
    harness: Harness, start: Start, postgres_url: str
) -> None:
    """The active instance's link to the database goes dead without an error; questions keep coming meanwhile."""
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    through = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    harness.ollama.default_script = ChatScript(tokens=["One", " answer."], token_delay=0.02)
    try:
        first = await start("bot-a", database_url=through, USER_REQUESTS_PER_MINUTE="0")
        await first.wait_for_output("connected to Discord as")
        second = await start("bot-b", USER_REQUESTS_PER_MINUTE="0")
        await second.wait_for_output("standby for auto: bot-a is active")

        proxy.freeze()
        prompts: list[int] = []
        # Questions throughout the hand-over, until the standby is on the gateway.
        while "connected to Discord as" not in second.output:
            assert len(prompts) < 100, second.output
            prompts.append(int((await harness.discord.send_user_message(f"q{len(prompts)}", mention_bot=True))["id"]))
            await asyncio.sleep(0.5)
        assert await ask(harness, "after the split") == ["One answer."]
        await first.wait_for_output("lost the active/standby lock")

        def settled() -> bool:
            return not any(m["content"].endswith(STREAMING_MARKER) for m in harness.discord.bot_messages())

        await harness.discord.wait_for(settled, TIMEOUT)  # nothing is left streaming
        replies = {prompt: harness.replies_to(prompt) for prompt in prompts}
        assert all(len(parts) <= 1 for parts in replies.values()), "a question was answered twice"
        assert harness.discord.max_sessions_per_shard == 1, "two instances were on the gateway at once"
        assert "Traceback" not in second.output
    finally:
        await proxy.close()
