"""End to end: discord.py's automatic sharding, and shards split over instances with a lock per group.

The fake Discord routes as Discord does (gateway docs, "Sharding"): a server's events go to shard
(guild_id >> 22) % shard_count only, DMs to shard 0 only. Its one server here has the id 1 << 22,
so with two shards it lives on shard 1, while DMs arrive on shard 0: each shard has work of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from bot.__main__ import build_services, new_bot, open_store
from bot.config import Settings
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import TOKEN
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_ollama import ChatScript, FakeOllama
from tests.instances import TIMEOUT, Instance

GUILD_ON_SHARD_1 = 1 << 22

Start = Callable[..., Awaitable[Instance]]


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN, guild_id=GUILD_ON_SHARD_1)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def start(discord: FakeDiscord, ollama_server: FakeOllama, tmp_path: Path) -> AsyncIterator[Start]:
    started: list[Instance] = []

    async def launch(name: str, database_url: str, **env: str) -> Instance:
        instance = await Instance.start(
            name, discord, ollama_server, tmp_path, database_url=database_url, ALLOW_DMS="true", **env
        )
        started.append(instance)
        return instance

    yield launch
    for instance in started:
        await instance.kill()


async def answer_to(discord: FakeDiscord, text: str, *, guild: bool) -> str:
    prompt = await discord.send_user_message(text, mention_bot=guild, guild=guild)

    def replied() -> bool:
        return any(
            (m.get("message_reference") or {}).get("message_id") == prompt["id"]
            and not m["content"].endswith(STREAMING_MARKER)
            for m in discord.bot_messages()
        )

    await discord.wait_for(replied, TIMEOUT)
    reply = next(
        m for m in discord.bot_messages() if (m.get("message_reference") or {}).get("message_id") == prompt["id"]
    )
    return str(reply["content"])


async def test_automatic_sharding_runs_every_shard_discord_asks_for(
    discord: FakeDiscord, ollama_server: FakeOllama, tmp_path: Path
) -> None:
    """In this process, as the entry point builds it (SQLite: sharding needs no PostgreSQL)."""
    discord.recommended_shards = 2
    ollama_server.default_script = ChatScript(tokens=["Hi."])
    settings = Settings.from_env(
        {"DISCORD_TOKEN": TOKEN, "OLLAMA_HOST": ollama_server.url, "DATA_DIR": str(tmp_path), "ALLOW_DMS": "true"}
    )
    discord.patch_discord_py()
    store = await open_store(settings)
    session = aiohttp.ClientSession()
    bot = new_bot(build_services(settings, session, store), guild_ready_timeout=0.05)

    async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py waits 5 s before each further shard's IDENTIFY (Discord's max_concurrency 1); the fake
        does not limit identifies, so the test does not wait."""

    bot.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    try:
        await bot.login(TOKEN)
        connection = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), TIMEOUT)

        assert discord.calls_to("GET", r"^/gateway/bot$")  # it asked Discord how many shards to run
        assert discord.shards_connected() == [(0, 2), (1, 2)]
        assert bot.gateway_connected()  # what /healthz reports: every shard is up
        assert await answer_to(discord, "in the server", guild=True) == "Hi."  # shard 1
        assert await answer_to(discord, "in a DM", guild=False) == "Hi."  # shard 0
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection, 5)
        await session.close()
        await store.close()
        discord.restore_discord_py()


async def test_instances_split_the_shards_and_each_group_has_its_own_standby(
    discord: FakeDiscord, ollama_server: FakeOllama, start: Start, postgres_url: str
) -> None:
    ollama_server.default_script = ChatScript(tokens=["Hi."])
    zero = await start("bot-0", postgres_url, SHARD_COUNT="2", SHARD_IDS="0")
    one = await start("bot-1", postgres_url, SHARD_COUNT="2", SHARD_IDS="1")
    await zero.wait_for_output("connected to Discord as")
    await one.wait_for_output("connected to Discord as")
    spare = await start("bot-1-spare", postgres_url, SHARD_COUNT="2", SHARD_IDS="1")
    await spare.wait_for_output("standby for 2:1: bot-1 is active")

    assert discord.shards_connected() == [(0, 2), (1, 2)]
    assert discord.max_sessions_per_shard == 1
    assert await answer_to(discord, "in the server", guild=True) == "Hi."
    assert await answer_to(discord, "in a DM", guild=False) == "Hi."
    await one.wait_for_output(f"reply finished guild={GUILD_ON_SHARD_1}")
    await zero.wait_for_output("reply finished guild=- ")
    assert f"guild={GUILD_ON_SHARD_1}" not in zero.output and "guild=- " not in one.output
    assert "reply finished" not in spare.output
    assert await zero.wait_for_health("ok") == "ok: active instance bot-0\n"
    assert await spare.health() == (200, "standby: bot-1 is active\n")

    for instance in (zero, one, spare):
        assert "Traceback" not in instance.output
