"""Shared fixtures: the fake Discord and fake Ollama servers, and the real bot wired to both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.__main__ import build_services, open_store
from bot.app import OllacordBot
from bot.config import Settings
from bot.ollama.client import OllamaClient
from bot.services import Services
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_ollama import FakeOllama
from tests.postgres_server import PostgresServer, find_bin_dir, missing_reason

TOKEN = "fake-token"


@pytest.fixture
async def discord_server() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord(token=TOKEN)
    await fake.start()
    fake.patch_discord_py()
    try:
        yield fake
    finally:
        fake.restore_discord_py()
        await fake.close()


@pytest.fixture
async def ollama_server() -> AsyncIterator[FakeOllama]:
    fake = FakeOllama()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


# The Ollama client tests talk to the fake Ollama directly: `fake`, one `session`, and a `client` with
# short deadlines so a broken case fails fast.


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    server = FakeOllama()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(fake: FakeOllama, session: aiohttp.ClientSession) -> OllamaClient:
    return OllamaClient(session, fake.url, first_token_timeout=5.0, inactivity_timeout=5.0, connect_timeout=2.0)


@dataclass
class RunningBot:
    """A started bot and the task running its gateway connection."""

    bot: OllacordBot
    services: Services
    task: asyncio.Task[None]
    session: aiohttp.ClientSession

    async def stop(self) -> None:
        await self.bot.close()
        await self.services.ollama.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 5)
        await self.session.close()
        await self.services.store.close()
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            raise AssertionError(f"the bot's connection task failed: {self.task.exception()!r}")


@dataclass
class Harness:
    """The two fakes plus a way to start (and restart) the real bot against them."""

    discord: FakeDiscord
    ollama: FakeOllama
    data_dir: Path
    running: list[RunningBot] = field(default_factory=list)

    def settings(self, **overrides: str) -> Settings:
        env: dict[str, str] = {
            "DISCORD_TOKEN": TOKEN,
            "OLLAMA_HOST": self.ollama.url,
            "OLLAMA_MODEL": "llama3.2",
            "DATA_DIR": str(self.data_dir),
            "EDIT_INTERVAL": "0.2",
        }
        env.update(overrides)
        return Settings.from_env(env)

    async def start_bot(self, settings: Settings | None = None, **client_options: Any) -> RunningBot:
        settings = settings or self.settings()
        store = await open_store(settings)
        session = aiohttp.ClientSession()
        services = build_services(settings, session, store)
        client_options.setdefault("guild_ready_timeout", 0.05)
        bot = OllacordBot(services, **client_options)
        await bot.login(settings.discord_token)
        task = asyncio.create_task(bot.connect(reconnect=False))
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        running = RunningBot(bot=bot, services=services, task=task, session=session)
        self.running.append(running)
        return running

    async def stop_all(self) -> None:
        while self.running:
            await self.running.pop().stop()

    def replies_to(self, message_id: int) -> list[dict[str, Any]]:
        """The bot's messages answering `message_id`, following the chain of continuation parts."""
        parts: list[dict[str, Any]] = []
        target = str(message_id)
        for message in self.discord.bot_messages():
            reference = message.get("message_reference") or {}
            if str(reference.get("message_id")) == target:
                parts.append(message)
                target = str(message["id"])
        return parts

    async def wait_for_reply(
        self, message_id: int, *, done: Callable[[list[Mapping[str, Any]]], bool] | None = None, timeout: float = 10.0
    ) -> list[str]:
        """Wait until the reply to `message_id` is final (no streaming marker); return its parts' contents."""
        from bot.streaming.relay import STREAMING_MARKER

        def finished() -> bool:
            parts = self.replies_to(message_id)
            if not parts or parts[-1]["content"].endswith(STREAMING_MARKER):
                return False
            if any(p["content"].endswith(STREAMING_MARKER) for p in parts):
                return False
            return self.idle() and (done(parts) if done else True)

        await self.discord.wait_for(finished, timeout)
        return [p["content"] for p in self.replies_to(message_id)]

    def idle(self) -> bool:
        """No reply is being streamed by any running bot."""
        for running in self.running:
            cog = running.bot.get_cog("ChatCog")
            if cog is not None and getattr(cog, "active_replies", 0):
                return False
        return True


@pytest.fixture
async def harness(discord_server: FakeDiscord, ollama_server: FakeOllama, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(discord=discord_server, ollama=ollama_server, data_dir=tmp_path / "data")
    try:
        yield h
    finally:
        await h.stop_all()


async def command(harness: Harness, name: str, options: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Run a slash command; return the interaction's response message once it has content."""
    token = await harness.discord.send_slash_command(name, options, **kw)
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    message = harness.discord.original_message(token)
    assert message is not None
    return message


# A real PostgreSQL (tests/postgres_server.py): one server for the whole run, a fresh database per test.


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    server = PostgresServer.create(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the shared test server."""
    name = postgres_server.new_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
