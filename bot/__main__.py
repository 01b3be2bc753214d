"""Composition root and command line: `python -m bot [run|check|sync]` (or `ollacord ...`).

This is the only place that reads the environment, opens the HTTP session and builds the
services; everything else receives what it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

import aiohttp
import discord
from dotenv import find_dotenv, load_dotenv

from bot.answers.book import AnswerBook
from bot.answers.sqlite_store import SqliteAnswerStore
from bot.answers.store import AnswerStore, MemoryAnswerStore
from bot.app import OllacordBot, Services
from bot.channel_settings.store import DATABASE_FILENAME, SettingsStore, SqliteSettingsStore, StoreError
from bot.clock import MonotonicClock
from bot.config import ConfigError, Settings
from bot.health import HealthServer
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.ollama.catalog import ModelCatalog, find_model
from bot.ollama.client import OllamaClient
from bot.ollama.errors import OllamaError
from bot.streaming.notes import describe_error
from bot.streaming.pacing import ChannelWriteBudget

log = logging.getLogger("bot")

INTENT_HELP = (
    "Discord refused the Message Content intent (close code 4014). Turn it on: "
    "https://discord.com/developers/applications > your application > Bot > Privileged Gateway Intents > "
    "enable MESSAGE CONTENT INTENT, save, then start ollacord again."
)
LOGIN_REFUSED_HELP = "Discord rejected DISCORD_TOKEN. Copy a fresh token from the developer portal (Bot > Reset Token)."
# View Channels, Send Messages, Send Messages in Threads, Create Public Threads, Read Message History,
# Attach Files: what the bot needs to answer, split long answers and open /chat threads.
INVITE_PERMISSIONS = discord.Permissions(309237746688)


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
        metrics=Metrics(),
        answers=AnswerBook(answer_store_for(store)),
    )


def answer_store_for(store: SettingsStore) -> AnswerStore:
    """Answer records live in the settings database: the same file, connection and worker thread."""
    if isinstance(store, SqliteSettingsStore):
        return SqliteAnswerStore(store)
    return MemoryAnswerStore()


def build_health_server(bot: OllacordBot, services: Services) -> HealthServer:
    """The /healthz and /metrics endpoint: healthy when the gateway is up and Ollama answers."""
    settings = services.settings

    async def ollama_problem() -> str | None:
        try:
            await services.ollama.version()
        except OllamaError as exc:
            return describe_error(exc).removeprefix("⚠️ ")
        return None

    return HealthServer(
        services.metrics,
        gateway_ok=bot.gateway_connected,
        ollama_ok=ollama_problem,
        host=settings.health_host,
        port=settings.health_port or 0,
    )


async def open_store(settings: Settings) -> SettingsStore:
    """Open the settings database in DATA_DIR (created on first start)."""
    return await SqliteSettingsStore.open(settings.data_dir / DATABASE_FILENAME)


def invite_url(application_id: int) -> str:
    """The link that adds the bot to a server with the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
    )


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


async def warm_up(services: Services) -> None:
    """Load the default model now, so the first question does not wait for a cold load."""
    settings = services.settings
    try:
        await services.ollama.load(settings.ollama_model, keep_alive=settings.warm_up_keep_alive)
    except OllamaError as exc:
        log.warning("could not warm up %s: %s", settings.ollama_model, describe_error(exc))
        return
    log.info("warmed up %s (kept loaded for %s)", settings.ollama_model, settings.warm_up_keep_alive)


async def run_bot(settings: Settings) -> int:
    """Run until the bot stops (SIGTERM/SIGINT shut it down gracefully); return the exit code."""
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
                return await _serve(bot, services)
            except discord.LoginFailure:
                print(LOGIN_REFUSED_HELP, file=sys.stderr)
                return 1
            except discord.PrivilegedIntentsRequired:
                print(INTENT_HELP, file=sys.stderr)
                return 1
            finally:
                if not bot.is_closed():
                    await bot.close()
    finally:
        await store.close()


async def _serve(bot: OllacordBot, services: Services) -> int:
    settings = services.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            loop.add_signal_handler(sig, stop.set)
    background: set[asyncio.Task[None]] = set()
    health = build_health_server(bot, services) if settings.health_port else None
    try:
        if health is not None:
            await health.start()
            log.info("health endpoint on http://%s:%d/healthz and /metrics", settings.health_host, health.port)
        await bot.login(settings.discord_token)
        if settings.warm_up:
            task = asyncio.create_task(warm_up(services), name="warm-up")
            background.add(task)
            task.add_done_callback(background.discard)
        connection = asyncio.create_task(bot.connect(), name="discord-gateway")
        stopping = asyncio.create_task(stop.wait(), name="wait-for-signal")
        await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            log.info("shutting down: finishing replies for up to %.0f s", settings.shutdown_grace_seconds)
            await bot.shutdown(settings.shutdown_grace_seconds)
            with contextlib.suppress(asyncio.CancelledError):
                await connection
            return 0
        stopping.cancel()
        connection.result()  # re-raises what ended the connection (e.g. refused intents)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for task in background:
            task.cancel()
        if health is not None:
            await health.close()


async def run_check(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Check everything the bot needs and print a readiness report; non-zero if anything fails."""
    failures = 0

    def line(ok: bool, text: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'✅' if ok else '❌'} {text}", file=out)

    line(True, "configuration is valid")
    try:
        store = await open_store(settings)
        await store.close()
        line(True, f"settings database {settings.data_dir / DATABASE_FILENAME} opens")
    except StoreError as exc:
        line(False, str(exc))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        ollama = OllamaClient(session, settings.ollama_host, inactivity_timeout=15.0)
        try:
            version = await ollama.version()
            line(True, f"Ollama {version} answers at {settings.ollama_host}")
            models = await ollama.list_models()
            found = find_model(models, settings.ollama_model)
            if found:
                line(True, f"default model {found.name} is installed")
            else:
                names = ", ".join(m.name for m in models) or "none"
                line(
                    False,
                    f"default model {settings.ollama_model} is not installed (`ollama pull "
                    f"{settings.ollama_model}`); installed: {names}",
                )
        except OllamaError as exc:
            line(False, describe_error(exc).removeprefix("⚠️ "))
    client = discord.Client(intents=discord.Intents.default())
    try:
        await client.login(settings.discord_token)
        user = client.user
        application = await client.application_info()
        line(True, f"Discord accepts the token: logged in as {user} (application {application.id})")
        print(f"\nInvite the bot with:\n{invite_url(application.id)}", file=out)
    except discord.LoginFailure:
        line(False, LOGIN_REFUSED_HELP)
    except (discord.HTTPException, aiohttp.ClientError) as exc:
        line(False, f"could not reach Discord: {exc}")
    finally:
        await client.close()
    print(f"\n{'ready' if not failures else f'{failures} problem(s) found'}", file=out)
    return 1 if failures else 0


async def run_sync(settings: Settings, guild_id: int | None, out: TextIO = sys.stdout) -> int:
    """Publish the slash commands globally, or to one server (instant, for testing)."""
    try:
        store = await open_store(settings)
    except StoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        async with aiohttp.ClientSession() as session:
            bot = OllacordBot(build_services(settings, session, store), sync_commands=False)
            try:
                await bot.login(settings.discord_token)  # runs setup_hook, which loads the commands
                if guild_id is None:
                    synced = await bot.tree.sync()
                    where = "globally (Discord may take a while to show changes)"
                else:
                    guild = discord.Object(id=guild_id)
                    bot.tree.copy_global_to(guild=guild)
                    synced = await bot.tree.sync(guild=guild)
                    where = f"to server {guild_id}"
                print(f"synced {len(synced)} commands {where}: {', '.join('/' + c.name for c in synced)}", file=out)
                return 0
            except discord.LoginFailure:
                print(LOGIN_REFUSED_HELP, file=sys.stderr)
                return 1
            finally:
                await bot.close()
    finally:
        await store.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: run (default), check, or sync [--guild ID]."""
    parser = argparse.ArgumentParser(prog="ollacord", description="A Discord bot for your local Ollama models.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("check", help="check the config, Ollama, the default model and the Discord token")
    sync = sub.add_parser("sync", help="publish the slash commands")
    sync.add_argument("--guild", type=int, help="publish to this server only (instant)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = parse_args(argv)
    load_dotenv(find_dotenv(usecwd=True))
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    setup_logging(settings.log_level_number)
    if args.command == "check":
        sys.exit(asyncio.run(run_check(settings)))
    if args.command == "sync":
        sys.exit(asyncio.run(run_sync(settings, args.guild)))
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run_bot(settings)))


if __name__ == "__main__":
    main()
