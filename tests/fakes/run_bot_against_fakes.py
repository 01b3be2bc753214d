"""Run the real `python -m bot` entry point in a child process, pointed at the test fakes.

Usage: python tests/fakes/run_bot_against_fakes.py API_BASE GATEWAY_URL [--gateway-backoff SECONDS]
       [--guild-ready-timeout SECONDS] [bot args...]
Configuration comes from the environment, exactly as in production; only discord.py's two
hard-coded addresses are redirected to the fake Discord (see the protocol notes, §1).

--guild-ready-timeout (after --gateway-backoff, if both) shortens discord.py's wait for more servers
before on_ready, as the in-process harness does.

--gateway-backoff fixes discord.py's gateway reconnect backoff (random, up to 2**attempt s) at what it
reaches after a long outage, where a real run saw 172 s: so a test can stop the bot while it waits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import discord
import yarl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bot.__main__ import main


def run() -> None:
    api_base, gateway, *args = sys.argv[1:]
    for url in (api_base, gateway):
        if yarl.URL(url).host not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"{url} is not a loopback address")
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    if args[:1] == ["--gateway-backoff"]:
        seconds = float(args[1])
        args = args[2:]

        class OutageBackoff(discord.backoff.ExponentialBackoff[bool]):
            def delay(self) -> float:
                return seconds

        discord.client.ExponentialBackoff = OutageBackoff  # type: ignore[misc]
        discord.shard.ExponentialBackoff = OutageBackoff  # type: ignore[misc]  # the sharded client's own
    if args[:1] == ["--guild-ready-timeout"]:
        wait = float(args[1])
        args = args[2:]
        client_init = discord.Client.__init__

        def quick_ready(self: discord.Client, *a: Any, **options: Any) -> None:
            # What the in-process harness passes: on_ready without discord.py's 2 s wait for more servers.
            options.setdefault("guild_ready_timeout", wait)
            client_init(self, *a, **options)

        discord.Client.__init__ = quick_ready  # type: ignore[method-assign]
    main(args)


if __name__ == "__main__":
    run()
