"""Failover and store benchmark: how fast a standby answers after the active instance dies, and settings reads/s.

    .venv/bin/python bench/bench_failover.py [--runs N] [--lease S] [--database-url postgresql://...]

Two real bot processes (the `python -m bot` entry point) share one PostgreSQL and the fake Discord and
fake Ollama of this process (one clock for every timestamp). Per run and scenario:

- sigkill: the active instance is SIGKILLed in the middle of an answer;
- network cut: the active instance's connection to PostgreSQL goes dead without an error (a proxy
  that swallows every byte), while it keeps running and stays connected to Discord.

From that moment a question is asked every 0.25 s; the figure is the time until the first reply to
one of them appears in Discord (its first message; polled every 20 ms), and until that reply is complete. The default
lease is the production one (LEADER_LEASE_SECONDS=5); the target is 15 s.

Settings reads per second, in the same run: `effective_settings` (what every answer does once: one
read of the thread, channel and server layers) against an SQLite file and against the same
PostgreSQL, 1 and 16 at a time. And the settings reads one 300-token answer costs on PostgreSQL,
from the server's own statistics: one per answer, none per token.

Without --database-url a PostgreSQL server is started in a temporary folder (PostgreSQL 14+ binaries
needed, see tests/postgres_server.py). Timings are printed, never asserted: the exit code is 1 only if
no standby answered.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bot.channel_settings.effective import effective_settings  # noqa: E402
from bot.channel_settings.postgres_store import PostgresSettingsStore  # noqa: E402
from bot.channel_settings.store import Scope, SettingsStore, SqliteSettingsStore  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.streaming.relay import STREAMING_MARKER  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord  # noqa: E402
from tests.fakes.fake_ollama import ChatScript, FakeOllama  # noqa: E402
from tests.fakes.tcp_proxy import TcpProxy  # noqa: E402
from tests.instances import Instance  # noqa: E402
from tests.postgres_server import PostgresServer, find_bin_dir, missing_reason  # noqa: E402

TARGET_SECONDS = 15.0
ASK_EVERY = 0.25
GIVE_UP_AFTER = 60.0
READ_SECONDS = 2.0


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "-"


class Failover:
    """One scenario run: two instances, the active one dies, questions until the standby answers."""

    def __init__(self, url: str, workdir: Path, lease: str) -> None:
        self.url = url
        self.workdir = workdir
        self.lease = lease

    async def run(self, scenario: str) -> tuple[float, float] | None:
        discord, ollama = FakeDiscord(token=TOKEN), FakeOllama()
        await discord.start()
        await ollama.start()
        parts = urlsplit(self.url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
        await proxy.start()
        through = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
        env = {"LEADER_LEASE_SECONDS": self.lease, "USER_REQUESTS_PER_MINUTE": "0", "LOG_LEVEL": "WARNING"}
        instances: list[Instance] = []
        try:
            first = await Instance.start("bench-a", discord, ollama, self.workdir, database_url=through, **env)
            instances.append(first)
            await first.wait_until(lambda: bool(discord.shards_connected()), 60, "a gateway session")
            second = await Instance.start("bench-b", discord, ollama, self.workdir, database_url=self.url, **env)
            instances.append(second)
            await second.wait_for_health("standby: bench-a is active", 60)

            ollama.scripts.append(ChatScript(tokens=[f" w{i}" for i in range(5000)], token_delay=0.01))
            ollama.default_script = ChatScript(tokens=["Here", " again."])
            long = await discord.send_user_message("a long answer", mention_bot=True)
            await discord.wait_for(lambda: any(_answers(discord, int(long["id"]))), 30)

            killed_at = time.monotonic()
            if scenario == "sigkill":
                await first.kill()
            else:
                proxy.freeze()
            asked: list[int] = []

            async def keep_asking() -> None:
                while True:
                    message = await discord.send_user_message(f"question {len(asked)}", mention_bot=True)
                    asked.append(int(message["id"]))
                    await asyncio.sleep(ASK_EVERY)

            asking = asyncio.create_task(keep_asking())
            try:
                first_seen: float | None = None
                while time.monotonic() - killed_at < GIVE_UP_AFTER:
                    replies = [m for question in list(asked) for m in _answers(discord, question)]
                    if replies and first_seen is None:
                        first_seen = time.monotonic()
                    if any(not m["content"].endswith(STREAMING_MARKER) for m in replies):
                        assert first_seen is not None
                        return first_seen - killed_at, time.monotonic() - killed_at
                    await asyncio.sleep(0.02)
                return None
            finally:
                asking.cancel()
        finally:
            for instance in instances:
                await instance.kill()
            await proxy.close()
            await discord.close()
            await ollama.close()


def _answers(discord: FakeDiscord, question: int) -> list[dict[str, Any]]:
    return [
        m for m in discord.bot_messages() if str((m.get("message_reference") or {}).get("message_id")) == str(question)
    ]


async def reads_per_second(store: SettingsStore, settings: Settings, concurrency: int) -> float:
    async def one() -> None:
        await effective_settings(store, settings, guild_id=400, channel_id=1002, parent_id=1001)

    count = 0
    deadline = time.monotonic() + READ_SECONDS

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await one()
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.monotonic() - started)


async def settings_table_reads(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS reads FROM pg_stat_user_tables "
            "WHERE relname = 'settings'"
        )
        return int(row["reads"]) if row else 0
    finally:
        await conn.close()


async def reads_per_answer(url: str, workdir: Path) -> int:
    """Settings reads on the server while one bot answers one 300-token question."""
    discord, ollama = FakeDiscord(token=TOKEN), FakeOllama()
    await discord.start()
    await ollama.start()
    bot = await Instance.start("bench-reads", discord, ollama, workdir, database_url=url, LOG_LEVEL="WARNING")
    try:
        await bot.wait_until(lambda: bool(discord.shards_connected()), 60, "a gateway session")
        await asyncio.sleep(1.5)  # PostgreSQL publishes table statistics at most once a second
        before = await settings_table_reads(url)
        ollama.default_script = ChatScript(tokens=[f" t{i}" for i in range(300)], token_delay=0.005)
        question = await discord.send_user_message("count my reads", mention_bot=True)

        def finished() -> bool:
            parts = _answers(discord, int(question["id"]))
            return bool(parts) and not parts[-1]["content"].endswith(STREAMING_MARKER)

        await discord.wait_for(finished, 60)
        await asyncio.sleep(1.5)
        return await settings_table_reads(url) - before
    finally:
        await bot.kill()
        await discord.close()
        await ollama.close()


async def main_async(args: argparse.Namespace) -> int:
    server: PostgresServer | None = None
    if args.database_url:
        base_url = args.database_url
    else:
        reason = missing_reason()
        if reason is not None:
            print(f"cannot start PostgreSQL: {reason}; pass --database-url", file=sys.stderr)
            return 2
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        server = PostgresServer.create(bin_dir)
        server.durable = True
        server.start()
        base_url = server.url("postgres")
    try:
        with tempfile.TemporaryDirectory(prefix="ollacord-failover-") as folder:
            workdir = Path(folder)
            results: dict[str, list[tuple[float, float]]] = {"sigkill": [], "network cut": []}
            failures = 0
            for run in range(args.runs):
                for scenario in results:
                    url = _fresh_database(server, base_url, f"failover_{run}_{scenario.replace(' ', '_')}")
                    outcome = await Failover(url, workdir / f"{run}-{scenario}", args.lease).run(scenario)
                    if outcome is None:
                        failures += 1
                        print(f"run {run + 1}, {scenario}: no standby answered within {GIVE_UP_AFTER:g} s")
                    else:
                        results[scenario].append(outcome)
                        print(f"run {run + 1}, {scenario}: first reply {outcome[0]:.2f} s, complete {outcome[1]:.2f} s")

            reads_url = _fresh_database(server, base_url, "reads")
            settings = Settings.from_env({"DISCORD_TOKEN": "t"})
            postgres = await PostgresSettingsStore.open(reads_url)
            sqlite = await SqliteSettingsStore.open(workdir / "reads.sqlite3")
            rates: dict[str, dict[int, float]] = {}
            try:
                for store in (sqlite, postgres):
                    await store.set_many(Scope.guild(400), {"temperature": 0.5})
                    await store.set_many(Scope.channel(1001), {"model": "qwen3:8b"})
                    await store.set_many(Scope.channel(1002), {"history": 10})
                for name, store in (("SQLite", sqlite), ("PostgreSQL", postgres)):
                    rates[name] = {n: await reads_per_second(store, settings, n) for n in (1, 16)}
            finally:
                await postgres.close()
                await sqlite.close()
            per_answer = await reads_per_answer(_fresh_database(server, base_url, "per_answer"), workdir / "reads")

        print()
        print(f"lease {args.lease} s, {args.runs} run(s); target: standby answering within {TARGET_SECONDS:g} s")
        print("| scenario | first reply after the failure (median) | reply complete (median) |")
        print("|---|---|---|")
        for scenario, values in results.items():
            print(f"| {scenario} | {median([v[0] for v in values])} | {median([v[1] for v in values])} |")
        print()
        print("| settings reads per second (effective_settings: 3 layers in one read) | 1 at a time | 16 at a time |")
        print("|---|---|---|")
        for name, by_concurrency in rates.items():
            print(f"| {name} | {by_concurrency[1]:,.0f} | {by_concurrency[16]:,.0f} |")
        print()
        print(
            f"settings table scans on PostgreSQL during one 300-token answer: {per_answer} "
            "(pg_stat_user_tables; one read of the thread, channel and server layers per answer, none per token)"
        )
        return 1 if failures else 0
    finally:
        if server is not None:
            server.remove()


def _fresh_database(server: PostgresServer | None, base_url: str, name: str) -> str:
    if server is None:
        return base_url  # a given database is used as it is (each run only adds rows)
    server.psql(f"CREATE DATABASE {name}")
    return server.url(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lease", default="5", help="LEADER_LEASE_SECONDS for the instances (default 5, as shipped)")
    parser.add_argument("--database-url", help="an existing PostgreSQL database instead of a temporary server")
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
