"""Composition root: `python -m bot` (or `ollacord`) reads the config and runs the bot.

This is the only place that reads the environment, opens the HTTP session and builds the
services; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

import aiohttp
import discord
from dotenv import find_dotenv, load_dotenv

from bot.app import OllacordBot, Services
from bot.channel_settings.store import DATABASE_FILENAME, SettingsStore, SqliteSettingsStore, StoreError
from bot.clock import MonotonicClock
from bot.config import ConfigError, Settings
from bot.logs import setup_logging
from bot.ollama.catalog import ModelCatalog
from bot.ollama.client import OllamaClient
from bot.ollama.errors import OllamaError
from bot.streaming.pacing import ChannelWriteBudget

log = logging.getLogger("bot")

INTENT_HELP = (
    "Discord refused the Message Content intent (close code 4014). Turn it on: "
    "https://discord.com/developers/applications > your application > Bot > Privileged Gateway Intents > "
    "enable MESSAGE CONTENT INTENT, save, then start ollacord again."
)
LOGIN_REFUSED_HELP = "Discord rejected DISCORD_TOKEN. Copy a fresh token from the developer portal (Bot > Reset Token)."


def build_services(settings: Settings, session: aiohttp.ClientSession, store: SettingsStore) -> Services:
    """Wire the core services around one shared HTTP session and the settings store."""
    clock = MonotonicClock()
    ollama = OllamaClient(
        session,
        settings.ollama_host,
        first_token_timeout=settings.first_token_timeout,
        inactivity_timeout=settings.stream_inactivity_timeout,
    )
    return Services(
        settings=settings,
        ollama=ollama,
        clock=clock,
        budget=ChannelWriteBudget(),
        store=store,
        catalog=ModelCatalog(ollama, clock),
    )


async def open_store(settings: Settings) -> SettingsStore:
    """Open the settings database in DATA_DIR (created on first start)."""
    return await SqliteSettingsStore.open(settings.data_dir / DATABASE_FILENAME)


async def _report_ollama(services: Services) -> None:
    """Log whether Ollama answers; the bot stays up either way and explains failures in replies."""
    try:
        version = await services.ollama.version()
    except OllamaError as exc:
        log.warning(
            "Ollama is not reachable at %s yet (%s); replies will explain until it is",
            services.ollama.base_url,
            type(exc).__name__,
        )
        return
    log.info("Ollama %s at %s; default model %s", version, services.ollama.base_url, services.settings.ollama_model)


async def run_bot(settings: Settings) -> int:
    """Run until the bot stops; return the process exit code."""
    try:
        store = await open_store(settings)
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            services = build_services(settings, session, store)
            await _report_ollama(services)
            bot = OllacordBot(services)
            try:
                async with bot:
                    await bot.start(settings.discord_token)
            except discord.LoginFailure:
                print(LOGIN_REFUSED_HELP, file=sys.stderr)
                return 1
            except discord.PrivilegedIntentsRequired:
                print(INTENT_HELP, file=sys.stderr)
                return 1
    finally:
        await store.close()
    return 0


def main() -> None:
    """Console entry point."""
    load_dotenv(find_dotenv(usecwd=True))
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    setup_logging(settings.log_level_number)
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run_bot(settings)))


if __name__ == "__main__":
    main()
