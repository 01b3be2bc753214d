"""The real ollacord bot in its own process, pointed at the benchmark's fakes.

Started by ``bench_relay.py`` so the bot's CPU time and peak RSS can be measured apart from the
fakes. Usage::

    python bench/_bot_process.py --api-base http://127.0.0.1:P/api/v10 --gateway ws://127.0.0.1:P/gateway-ws \
        --ollama http://127.0.0.1:Q [--token T] [--data-dir D] [--edit-interval S] [--log-level INFO]

Each option can also come from the environment (``BENCH_DISCORD_API``, ``BENCH_DISCORD_GATEWAY``,
``BENCH_OLLAMA``, ``BENCH_TOKEN``, ``BENCH_DATA_DIR``, ``BENCH_EDIT_INTERVAL``, ``BENCH_LOG_LEVEL``).
Without ``--edit-interval`` the production default applies (EDIT_INTERVAL unset, 1.0 s).

Starts the bot the way tests/conftest.py does (login, ``connect(reconnect=False)``,
``wait_until_ready()``), prints one ``READY pid=<pid>`` line on stdout, then runs until SIGTERM,
SIGINT or EOF on stdin (so the bot also stops if the parent dies), and closes cleanly. Logs go to
stderr with the production logging set-up. Exit codes: 0 clean stop, 2 bad configuration,
3 never became ready, 4 the gateway connection ended on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading

import discord.gateway
import discord.http
import yarl

from bot.__main__ import build_services, ollama_session, open_store
from bot.app import OllacordBot
from bot.config import ConfigError, Settings
from bot.logs import setup_logging

log = logging.getLogger("bench.bot_process")

READY_PREFIX = "READY"
READY_TIMEOUT = 30.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", default=env.get("BENCH_DISCORD_API"), help="fake Discord REST base URL")
    parser.add_argument("--gateway", default=env.get("BENCH_DISCORD_GATEWAY"), help="fake Discord gateway URL")
    parser.add_argument(
        "--ollama", default=env.get("BENCH_OLLAMA"), help="fake Ollama base URL, or several as OLLAMA_HOST lists them"
    )
    parser.add_argument("--token", default=env.get("BENCH_TOKEN", "fake-token"))
    parser.add_argument("--model", default=env.get("BENCH_MODEL", "llama3.2"))
    parser.add_argument("--data-dir", default=env.get("BENCH_DATA_DIR", "data"))
    parser.add_argument("--edit-interval", default=env.get("BENCH_EDIT_INTERVAL"), help="EDIT_INTERVAL (s)")
    parser.add_argument("--log-level", default=env.get("BENCH_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    missing = [name for name in ("api_base", "gateway", "ollama") if not getattr(args, name)]
    if missing:
        parser.error("missing " + ", ".join("--" + name.replace("_", "-") for name in missing))
    ollama_urls = [entry.strip().rsplit("*", 1)[0] for entry in args.ollama.split(",")]
    for url in (args.api_base, args.gateway, *ollama_urls):
        if yarl.URL(url).host not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"{url} is not a loopback address; the benchmark never leaves this machine")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    env = {
        "DISCORD_TOKEN": args.token,
        "OLLAMA_HOST": args.ollama,
        "OLLAMA_MODEL": args.model,
        "DATA_DIR": args.data_dir,
        "LOG_LEVEL": args.log_level,
        # The benchmark measures streaming: the fake Ollama serves every conversation at once, and all
        # prompts come from one fake user, so the bot's own queue and per-user limit are opened up.
        "MAX_CONCURRENT_REQUESTS": "64",
        "USER_REQUESTS_PER_MINUTE": "0",
    }
    if args.edit_interval:
        env["EDIT_INTERVAL"] = str(args.edit_interval)
    # Further settings a scenario needs (bench_pool.py: several hosts, their check interval), as JSON.
    env.update(json.loads(os.environ.get("BENCH_SETTINGS") or "{}"))
    return Settings.from_env(env)


def patch_discord(api_base: str, gateway: str) -> None:
    """Point discord.py at the fake (see /work/shared/notes/discord-protocol.md §1); before login()."""
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Block on stdin until EOF (the parent closed it, or died), then ask the loop to stop."""
    with contextlib.suppress(Exception):
        while sys.stdin.buffer.read(4096):
            pass
    with contextlib.suppress(RuntimeError):  # the loop may already be closed
        loop.call_soon_threadsafe(stop.set)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    patch_discord(args.api_base, args.gateway)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    threading.Thread(target=_watch_stdin, args=(loop, stop), name="stdin-watch", daemon=True).start()

    # The same session and pool as production (bot/__main__.py run_bot).
    store = await open_store(settings)
    async with ollama_session(settings) as session:
        services = build_services(settings, session, store)
        services.ollama.start()
        bot = OllacordBot(services, guild_ready_timeout=0.05)
        connection: asyncio.Task[None] | None = None
        try:
            await bot.login(settings.discord_token)
            connection = asyncio.create_task(bot.connect(reconnect=False), name="gateway")
            ready = asyncio.create_task(bot.wait_until_ready(), name="ready")
            await asyncio.wait({connection, ready}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not ready.done():
                ready.cancel()
                log.error("the bot did not become ready within %.0fs", READY_TIMEOUT)
                return 3
            print(f"{READY_PREFIX} pid={os.getpid()}", flush=True)

            stopping = asyncio.create_task(stop.wait(), name="stop")
            await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                stopping.cancel()
                error = None if connection.cancelled() else connection.exception()
                log.error("the gateway connection ended on its own: %r", error)
                return 4
            return 0
        finally:
            await bot.close()
            await services.ollama.close()
            await store.close()
            if connection is not None and not connection.done():
                try:
                    await asyncio.wait_for(connection, 5)
                except (asyncio.CancelledError, TimeoutError):
                    pass
                except Exception:
                    log.exception("the gateway connection failed while closing")


def main() -> None:
    args = parse_args()
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    setup_logging(settings.log_level_number)
    # Production logs to stdout; here stdout carries only the READY line, so logs go to stderr.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    sys.exit(asyncio.run(run(args, settings)))


if __name__ == "__main__":
    main()
