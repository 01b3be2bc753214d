"""Composition root and command line: `python -m bot [run|check|sync]` (or `ollacord ...`).

This is the only place that reads the environment, opens the HTTP session and builds the
services; everything else receives what it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiohttp
import discord
from dotenv import find_dotenv, load_dotenv

from bot.answers.book import AnswerBook
from bot.answers.postgres_store import PostgresAnswerStore
from bot.answers.service import AnswerService
from bot.answers.sqlite_store import SqliteAnswerStore
from bot.answers.store import AnswerStore, MemoryAnswerStore
from bot.app import OllacordBot, ShardedOllacordBot
from bot.attachments import AttachmentLimits
from bot.backoff import Backoff
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import SettingsStore, SqliteSettingsStore, StoreError
from bot.clock import MonotonicClock
from bot.config import SHUTDOWN_FINAL_EDITS_SECONDS, ConfigError, Settings
from bot.health import HealthServer
from bot.knowledge.base import KnowledgeBase, KnowledgeLimits
from bot.knowledge.embedder import Embedder
from bot.knowledge.postgres_store import PostgresKnowledgeStore
from bot.knowledge.sqlite_store import SqliteKnowledgeStore
from bot.knowledge.store import KnowledgeStore, MemoryKnowledgeStore
from bot.leadership import Leadership, live_instances, lock_key_for, process_instance_id
from bot.logs import setup_logging
from bot.metrics import Metrics
from bot.ollama.catalog import ModelCatalog, find_model
from bot.ollama.client import ModelInfo, OllamaClient
from bot.ollama.errors import OllamaError
from bot.ollama.pool import OllamaPool
from bot.prompt_preparation import PromptPreparer
from bot.services import Services
from bot.storage.copy import copy_store
from bot.storage.database_url import Backend, parse_database_url, redact
from bot.storage.postgres import DatabaseUnreachable
from bot.streaming.global_budget import DISCORD_GLOBAL_RATE, GlobalBudget
from bot.streaming.notes import describe_error
from bot.streaming.pacing import ChannelWriteBudget
from bot.usage.ledger import UsageLedger
from bot.usage.postgres_store import PostgresUsageStore
from bot.usage.sqlite_store import SqliteUsageStore
from bot.usage.store import MemoryUsageStore, UsageStore

log = logging.getLogger("bot")

INTENT_HELP = (
    "Discord refused the Message Content intent (close code 4014). Turn it on: "
    "https://discord.com/developers/applications > your application > Bot > Privileged Gateway Intents > "
    "enable MESSAGE CONTENT INTENT, save, then start ollacord again."
)
LOGIN_REFUSED_HELP = "Discord rejected DISCORD_TOKEN. Copy a fresh token from the developer portal (Bot > Reset Token)."
DISCORD_UNREACHABLE_LOG = (
    "can't reach Discord (%s); trying again in %.1f s. Check this machine's network and DNS, "
    "or https://discordstatus.com for an outage."
)
# A failed login while Discord can't be reached: DNS failure or network down (aiohttp errors, which are
# OSErrors too), a timeout, or Discord's edge answering 5xx. Anything else (a rejected token, refused
# intents, a 4xx) will not be fixed by waiting and ends start-up with its own message.
DISCORD_UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError, discord.DiscordServerError)
# A cancelled task normally ends at once; this only bounds shutdown if one does not.
CANCEL_WAIT_SECONDS = 0.5
# Start-up retries: the first after about a second, then twice as long each time, at most a minute apart.
DISCORD_RETRY_FIRST_SECONDS = 1.0
DISCORD_RETRY_MAX_SECONDS = 60.0
# Exit status when the database can't be reached or refuses the login at start-up (as for a bad configuration).
DATABASE_UNREACHABLE_EXIT = 2
# After losing the lock, the bot's own shutdown gets the lease's remaining time minus this margin for its last
# edits; every Discord write is refused once the lease has run out anyway (see _fence_writes).
STEP_DOWN_MARGIN = 0.25
# View Channels, Send Messages, Send Messages in Threads, Create Public Threads, Read Message History,
# Add Reactions: what the bot needs to answer, split long answers, open /chat threads, and mark a question it
# cannot answer where it cannot post.
INVITE_PERMISSIONS = discord.Permissions(309237713984)


def build_services(
    settings: Settings,
    session: aiohttp.ClientSession,
    store: SettingsStore,
    *,
    discord_rate: float = DISCORD_GLOBAL_RATE,
) -> Services:
    """Wire the core services around one shared HTTP session and the settings store.

    `discord_rate` is the share of Discord's global limit (requests per second per bot token) this process
    may use.
    """
    clock = MonotonicClock()
    ollama = build_pool(settings, session, clock)
    catalog = ModelCatalog(ollama, clock)
    budget = ChannelWriteBudget(shared=GlobalBudget(discord_rate, clock=clock))
    metrics = Metrics()
    metrics.watch_hosts(ollama.snapshots)
    answers = AnswerBook(
        answer_store_for(store),
        instance=process_instance_id(settings.instance_name),
        live_instances=_live_instances_in(store, settings),
    )
    usage = UsageLedger(
        usage_store_for(store), retention_days=settings.usage_retention_days, default_host=settings.ollama_host
    )
    attachment_limits = AttachmentLimits(
        max_image_bytes=int(settings.max_image_mb * 1024 * 1024),
        max_text_bytes=settings.max_text_file_kb * 1024,
    )
    knowledge = KnowledgeBase(
        knowledge_store_for(store),
        store,
        Embedder(ollama),
        default_model=settings.embed_model,
        limits=KnowledgeLimits(
            max_file_bytes=int(settings.knowledge_max_file_mb * 1024 * 1024),
            max_files=settings.knowledge_max_files,
            max_chunks=settings.knowledge_max_chunks,
            min_similarity=settings.knowledge_min_similarity,
            excerpts=settings.knowledge_excerpts,
        ),
    )
    prompts = PromptPreparer(
        catalog,
        limits=attachment_limits,
        image_memory_bytes=int(settings.image_memory_mb * 1024 * 1024),
        history_max_messages=settings.history_max_messages,
        history_max_chars=settings.history_max_chars,
        knowledge=knowledge,
    )
    answering = AnswerService(
        settings=settings,
        ollama=ollama,
        prompts=prompts,
        answers=answers,
        clock=clock,
        budget=budget,
        metrics=metrics,
        attachment_limits=attachment_limits,
        usage=usage,
    )
    return Services(
        settings=settings,
        ollama=ollama,
        clock=clock,
        budget=budget,
        store=store,
        catalog=catalog,
        metrics=metrics,
        answers=answers,
        answering=answering,
        knowledge=knowledge,
        usage=usage,
    )


def build_pool(settings: Settings, session: aiohttp.ClientSession, clock: MonotonicClock) -> OllamaPool:
    """Every Ollama host of OLLAMA_HOST with its capacity, behind one queue."""
    clients = [
        (
            OllamaClient(
                session,
                url,
                first_token_timeout=settings.first_token_timeout,
                inactivity_timeout=settings.stream_inactivity_timeout,
            ),
            capacity,
        )
        for url, capacity in settings.host_capacities()
    ]
    return OllamaPool(clients, clock=clock, check_interval=settings.ollama_check_interval)


def ollama_session(settings: Settings) -> aiohttp.ClientSession:
    """The HTTP session for talking to Ollama: no overall timeout (the client keeps its own deadlines), and
    enough connections for every host's capacity plus the checks, as aiohttp would otherwise hold streams
    back at 100 connections without a word."""
    capacity = sum(capacity for _, capacity in settings.host_capacities())
    connector = aiohttp.TCPConnector(limit=capacity + 8 * len(settings.ollama_hosts) + 16)
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), connector=connector)


def answer_store_for(store: SettingsStore) -> AnswerStore:
    """Answer records live in the settings database: the same file (or pool) the settings use."""
    if isinstance(store, SqliteSettingsStore):
        return SqliteAnswerStore(store)
    if isinstance(store, PostgresSettingsStore):
        return PostgresAnswerStore(store)
    return MemoryAnswerStore()


def knowledge_store_for(store: SettingsStore) -> KnowledgeStore:
    """Team knowledge lives in the settings database too: the same file and worker thread, or the same pool."""
    if isinstance(store, SqliteSettingsStore):
        return SqliteKnowledgeStore(store)
    if isinstance(store, PostgresSettingsStore):
        return PostgresKnowledgeStore(store)
    return MemoryKnowledgeStore()


def usage_store_for(store: SettingsStore) -> UsageStore:
    """Usage figures live in the settings database too (table usage_daily)."""
    if isinstance(store, SqliteSettingsStore):
        return SqliteUsageStore(store)
    if isinstance(store, PostgresSettingsStore):
        return PostgresUsageStore(store)
    return MemoryUsageStore()


def _live_instances_in(store: SettingsStore, settings: Settings) -> Callable[[], Awaitable[set[str]]] | None:
    """Where instances share the database, which of them may still be writing their answers."""
    if not isinstance(store, PostgresSettingsStore):
        return None
    return functools.partial(live_instances, store, settings.leader_lease_seconds)


def build_leadership(settings: Settings, services: Services) -> Leadership | None:
    """The active/standby lock of this instance's group of shards; None with SQLite (one instance, always active)."""
    database = settings.database
    if database.backend is not Backend.POSTGRESQL:
        return None
    assert database.dsn is not None
    group = settings.shards.group
    return Leadership(
        database.dsn,
        lock_key=lock_key_for(settings.discord_token, group),
        shard_group=group,
        instance=services.answers.instance,
        name=settings.instance_name,
        lease=settings.leader_lease_seconds,
    )


class GatewayState(Protocol):
    """What the health endpoint needs to know about the Discord connection."""

    def gateway_connected(self) -> bool:
        """Whether the gateway connection is up and ready."""
        ...


def build_health_server(bot: GatewayState, services: Services, leadership: Leadership | None = None) -> HealthServer:
    """The /healthz and /metrics endpoint: healthy when the gateway is up and Ollama answers (or a standby waits)."""
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
        role=leadership.status if leadership is not None else None,
    )


async def open_store(settings: Settings) -> SettingsStore:
    """Open the database DATABASE_URL names: the SQLite file in DATA_DIR by default (created on first start)."""
    database = settings.database
    if database.backend is Backend.POSTGRESQL:
        assert database.dsn is not None
        return await PostgresSettingsStore.open(database.dsn)
    assert database.sqlite_path is not None
    return await SqliteSettingsStore.open(database.sqlite_path)


def _store_failure_exit(exc: StoreError) -> int:
    """Print why the database can't be used, in one line; the exit status for it."""
    print(exc, file=sys.stderr)
    return DATABASE_UNREACHABLE_EXIT if isinstance(exc, DatabaseUnreachable) else 1


async def describe_database(store: SettingsStore, settings: Settings) -> str:
    """One line for `check`: which database, and with PostgreSQL its version, schema and active instance."""
    if not isinstance(store, PostgresSettingsStore):
        return f"settings database {settings.database.sqlite_path} opens"
    info = await store.database.server_info()
    group = settings.shards.group
    key = lock_key_for(settings.discord_token, group)

    async def read(conn: Any) -> Any:
        return await conn.fetchrow(
            "SELECT instance_name, state FROM ollacord_leaders WHERE lock_key = $1 AND state = 'active'", key
        )

    active = await store.run_job("read the active instance", read, write=False)
    holder = f"{active['instance_name']} is active" if active is not None else "no instance is active"
    return (
        f"PostgreSQL {info.version} at {store.shown} answers (schema version {info.schema_version}); "
        f"shards {group}: {holder}"
    )


def invite_url(application_id: int) -> str:
    """The link that adds the bot to a server with the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=("bot", "applications.commands")
    )


async def _report_ollama(services: Services) -> None:
    """Log whether each Ollama host answers; the bot stays up either way and explains failures in replies."""
    hosts = services.ollama.hosts
    versions = await asyncio.gather(*(host.client.version() for host in hosts), return_exceptions=True)
    for host, version in zip(hosts, versions, strict=True):
        if isinstance(version, OllamaError):
            log.warning(
                "Ollama is not reachable at %s yet (%s); replies will explain until it is",
                host.url,
                type(version).__name__,
            )
        elif isinstance(version, BaseException):
            raise version
        else:
            log.info("Ollama %s at %s (%d at once)", version, host.url, host.capacity)
    log.info("default model %s", services.settings.ollama_model)


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
        return _store_failure_exit(exc)
    leadership: Leadership | None = None
    try:
        async with ollama_session(settings) as session:
            # Instances that split a token's shards split Discord's global limit the same way.
            services = build_services(
                settings, session, store, discord_rate=DISCORD_GLOBAL_RATE * settings.shards.token_share
            )
            leadership = build_leadership(settings, services)
            await _report_ollama(services)
            services.ollama.start()  # checks every host of a pool in the background
            try:
                return await _serve(services, leadership)
            except discord.LoginFailure:
                print(LOGIN_REFUSED_HELP, file=sys.stderr)
                return 1
            except discord.PrivilegedIntentsRequired:
                print(INTENT_HELP, file=sys.stderr)
                return 1
            finally:
                await services.ollama.close()
    finally:
        if leadership is not None:
            await leadership.close()
        await store.close()


class _Gateway:
    """The health endpoint's view of the bot, which exists only once Discord has been reached."""

    def __init__(self) -> None:
        self.bot: OllacordBot | None = None

    def gateway_connected(self) -> bool:
        """Whether the bot's gateway connection is up and ready."""
        return self.bot is not None and self.bot.gateway_connected()


async def _serve(services: Services, leadership: Leadership | None = None) -> int:
    settings = services.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait(), name="wait-for-signal")
    background: set[asyncio.Task[None]] = set()
    gateway = _Gateway()
    health = build_health_server(gateway, services, leadership) if settings.health_port else None
    bot: OllacordBot | None = None
    lost: asyncio.Task[Any] | None = None
    try:
        if health is not None:
            await health.start()
            log.info("health endpoint on http://%s:%d/healthz and /metrics", settings.health_host, health.port)
        while True:
            if leadership is not None:
                if not await _wait_until_active(leadership, stopping):
                    log.info("stopped while standby")
                    return 0
                lost = asyncio.create_task(leadership.lost.wait(), name="wait-for-lock-loss")
            bot = await _log_in(services, stopping, lost)
            if bot is None:
                if stopping.done():
                    log.info("stopped before Discord could be reached")
                    if leadership is not None:
                        await leadership.release()
                    return 0
                assert leadership is not None
                log.warning("lost the active/standby lock while connecting (%s)", leadership.lost_reason)
                await leadership.step_down()
                continue
            gateway.bot = bot
            if leadership is not None:
                _fence_writes(bot, leadership)
            if settings.warm_up:
                task = asyncio.create_task(warm_up(services), name="warm-up")
                background.add(task)
                task.add_done_callback(background.discard)
            connection = asyncio.create_task(bot.connect(), name="discord-gateway")
            await asyncio.wait({connection, stopping, *([lost] if lost else [])}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                await _shut_down(bot, connection, settings.shutdown_grace_seconds)
                if leadership is not None:
                    await leadership.release()  # replies are finished: a standby may take over at once
                return 0
            if lost is not None and lost.done() and leadership is not None:
                await _step_down(bot, connection, leadership)
                gateway.bot = None
                bot = None
                continue
            connection.result()  # re-raises what ended the connection (e.g. refused intents)
            return 0
    finally:
        stopping.cancel()
        if lost is not None:
            lost.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for task in background:
            task.cancel()
        if health is not None:
            await health.close()
        # After a signal, _shut_down has had all the time there is; a disconnect it did not finish is
        # left to the process exit rather than allowed to outlast the stop timeout.
        if bot is not None and not bot.is_closed() and not stop.is_set():
            await bot.close()


async def _wait_until_active(leadership: Leadership, stopping: asyncio.Task[Any]) -> bool:
    """Wait as a standby until this instance holds the lock; False if a signal came first."""
    acquiring = asyncio.create_task(leadership.acquire(), name="wait-for-lock")
    await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if acquiring.done():
        acquiring.result()
        if not stopping.done():
            return True
        await leadership.release()
        return False
    await _cancel(acquiring)
    await leadership.close()
    return False


async def _step_down(bot: OllacordBot, connection: asyncio.Task[None], leadership: Leadership) -> None:
    """The lock is lost: end the replies and disconnect within the lease, then wait as a standby again.

    What is left of the lease bounds the final edits; once it has run out every Discord write is refused
    (_fence_writes), because by then another instance may be answering.
    """
    log.warning(
        "lost the active/standby lock (%s): ending the replies and disconnecting; another instance takes over",
        leadership.lost_reason,
    )
    shutdown = asyncio.create_task(bot.shutdown(0.0), name="step-down")
    await asyncio.wait({shutdown}, timeout=max(0.0, leadership.seconds_left() - STEP_DOWN_MARGIN))
    await _cancel(shutdown)
    await _cancel(connection)
    if not bot.is_closed():
        await _cancel(asyncio.create_task(bot.close(), name="disconnect"))
    await leadership.step_down()


FENCED = "this instance no longer holds the active/standby lock; Discord writes are refused"


def _fence_writes(bot: OllacordBot, leadership: Leadership) -> None:
    """Refuse every Discord write (REST and interaction responses) once this instance's lease has run out.

    The last line of defence of bot/leadership.py's reasoning: even a process that was frozen past its
    lease, and wakes up with events still queued, cannot answer what another instance now answers.
    """
    http = bot.http
    request = http.request

    async def fenced_request(route: discord.http.Route, **kwargs: Any) -> Any:
        if route.method != "GET" and not leadership.may_write():
            raise aiohttp.ClientConnectionError(FENCED)
        return await request(route, **kwargs)

    http.request = fenced_request  # type: ignore[method-assign]
    # Interaction responses and follow-ups go through discord.py's webhook adapter, one per process.
    adapter = discord.webhook.async_.async_context.get()
    if getattr(adapter, "_ollacord_fenced", False):
        return
    adapter_request = adapter.request

    async def fenced_adapter_request(route: Any, *args: Any, **kwargs: Any) -> Any:
        if route.method != "GET" and not leadership.may_write():
            raise aiohttp.ClientConnectionError(FENCED)
        return await adapter_request(route, *args, **kwargs)

    adapter.request = fenced_adapter_request  # type: ignore[method-assign]
    adapter._ollacord_fenced = True  # type: ignore[attr-defined]


def new_bot(services: Services, **client_options: Any) -> OllacordBot:
    """The Discord client the bot runs on: discord.py's automatic sharding, or the shards of SHARD_COUNT/SHARD_IDS."""
    shards = services.settings.shards
    if shards.count is not None:
        client_options["shard_count"] = shards.count
        client_options["shard_ids"] = list(shards.ids) if shards.ids is not None else None
    return ShardedOllacordBot(services, **client_options)


async def _log_in(
    services: Services, stopping: asyncio.Task[Any], lost: asyncio.Task[Any] | None = None
) -> OllacordBot | None:
    """A bot logged in to Discord, retrying with backoff while Discord can't be reached; None if stopped first
    (or, with `lost`, if this instance lost its active/standby lock meanwhile).

    Each attempt uses a fresh client: a failed login leaves discord.py's HTTP session and, when it failed
    while publishing the commands, the loaded cogs behind.
    """
    backoff = Backoff(first=DISCORD_RETRY_FIRST_SECONDS, cap=DISCORD_RETRY_MAX_SECONDS)
    give_up = {stopping, *([lost] if lost is not None else [])}
    while True:
        bot = new_bot(services)
        login = asyncio.create_task(bot.login(services.settings.discord_token), name="discord-login")
        await asyncio.wait({login, *give_up}, return_when=asyncio.FIRST_COMPLETED)
        if not login.done():
            await _cancel(login)
            await bot.close()
            return None
        try:
            login.result()
        except DISCORD_UNREACHABLE as exc:
            await bot.close()
            delay = backoff.next_delay()
            log.warning(DISCORD_UNREACHABLE_LOG, _describe_unreachable(exc), delay)
        except BaseException:
            await bot.close()
            raise
        else:
            return bot
        await asyncio.wait(give_up, timeout=delay)
        if any(task.done() for task in give_up):
            return None


def _describe_unreachable(error: BaseException) -> str:
    """Why Discord could not be reached, in one line (no traceback, no HTML error page)."""
    if isinstance(error, discord.DiscordServerError):
        return f"Discord answered HTTP {error.status}"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup of {error.host} failed: {error.os_error.strerror or error.os_error}"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        # asyncio words a refused connection "Connect call failed (...)"; the errno's own name says more.
        reason = os.strerror(cause.errno) if cause.errno and cause.errno > 0 else (cause.strerror or str(cause))
        return f"cannot connect to {error.host}:{error.port}: {reason}"
    if isinstance(error, TimeoutError):
        return "the connection timed out"
    return f"{type(error).__name__}: {error}"


async def _shut_down(bot: OllacordBot, connection: asyncio.Task[None], grace: float) -> None:
    """Finish or cut short the replies and disconnect, within the grace period plus the final edits.

    Whatever the gateway is doing: discord.py checks for a closed client only between reconnect
    attempts, after a backoff that grows to minutes during an outage, or after waiting up to 60 s
    for a gateway that does not answer. So its connection task is cancelled rather than awaited.
    """
    log.info("shutting down: finishing replies for up to %g s", grace)
    shutdown = asyncio.create_task(bot.shutdown(grace), name="shutdown")
    await asyncio.wait({shutdown}, timeout=grace + SHUTDOWN_FINAL_EDITS_SECONDS)
    if not shutdown.done():
        log.warning(
            "the final edits and the disconnect took more than %g s after the grace period; exiting without them",
            SHUTDOWN_FINAL_EDITS_SECONDS,
        )
    await _cancel(shutdown)
    await _cancel(connection)


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` if it still runs and wait (briefly) for it; log what it failed with, if anything."""
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_WAIT_SECONDS)
    if not task.done():
        log.warning("%s did not stop when cancelled; exiting without it", task.get_name())
    elif not task.cancelled() and (error := task.exception()) is not None:
        log.warning("%s ended with %s: %s", task.get_name(), type(error).__name__, error)


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
        try:
            line(True, await describe_database(store, settings))
        finally:
            await store.close()
    except StoreError as exc:
        line(False, str(exc))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as session:
        await _check_ollama_hosts(settings, session, line)
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


async def _check_ollama_hosts(
    settings: Settings, session: aiohttp.ClientSession, line: Callable[[bool, str], None]
) -> None:
    """Every Ollama host answers, and the default model is installed (on at least one of them)."""
    model = settings.ollama_model
    several = len(settings.ollama_hosts) > 1
    found: list[ModelInfo] = []
    names: set[str] = set()
    answered = 0
    for url, capacity in settings.host_capacities():
        client = OllamaClient(session, url, inactivity_timeout=15.0)
        try:
            version = await client.version()
            models = await client.list_models()
        except OllamaError as exc:
            line(False, describe_error(exc).removeprefix("⚠️ "))
            continue
        answered += 1
        names.update(m.name for m in models)
        here = find_model(models, model)
        if here is not None:
            found.append(here)
        if several:
            has = f"has {here.name}" if here else f"does not have {model}"
            line(True, f"Ollama {version} answers at {url} ({capacity} at once; {has})")
        else:
            line(True, f"Ollama {version} answers at {url}")
    if found:
        where = f" on {len(found)} of {len(settings.ollama_hosts)} hosts" if several else ""
        line(True, f"default model {found[0].name} is installed{where}")
    elif answered:
        listed = ", ".join(sorted(names)) or "none"
        where = " on any host" if several else ""
        line(False, f"default model {model} is not installed{where} (`ollama pull {model}`); installed: {listed}")


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


async def run_store_copy(source: str, target: str, out: TextIO = sys.stdout) -> int:
    """`store copy --from URL --to URL`: 0 when copied, 2 for a bad URL or an unreachable database, else 1."""
    urls = []
    for flag, raw in (("--from", source), ("--to", target)):
        try:
            urls.append(parse_database_url(raw, Path("data")) if raw.strip() else None)
        except ValueError as exc:
            print(f"{flag} {redact(raw)}: {exc}", file=sys.stderr)
            return DATABASE_UNREACHABLE_EXIT
        if urls[-1] is None:
            print(f"{flag} needs a database URL (sqlite:///path or postgresql://…)", file=sys.stderr)
            return DATABASE_UNREACHABLE_EXIT
    origin, destination = urls
    assert origin is not None and destination is not None
    try:
        result = await copy_store(origin, destination)
    except StoreError as exc:
        return _store_failure_exit(exc)
    print(f"copied {result.describe()} from {origin.shown} to {destination.shown}", file=out)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line: run (default), check, sync [--guild ID], or store copy --from URL --to URL."""
    parser = argparse.ArgumentParser(prog="ollacord", description="A Discord bot for your local Ollama models.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bot (the default)")
    sub.add_parser("check", help="check the config, Ollama, the default model and the Discord token")
    sync = sub.add_parser("sync", help="publish the slash commands")
    sync.add_argument("--guild", type=int, help="publish to this server only (instant)")
    store = sub.add_parser("store", help="move the state (settings, answer records) between databases")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    copy = store_commands.add_parser("copy", help="copy everything into a new, empty database")
    copy.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="e.g. sqlite:///data/ollacord.sqlite3"
    )
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="e.g. postgresql://user:pw@host/db")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    args = parse_args(argv)
    load_dotenv(find_dotenv(usecwd=True))
    if args.command == "store":
        # Needs no token or Ollama: only the two databases named on the command line.
        setup_logging(logging.getLevelNamesMapping().get(os.environ.get("LOG_LEVEL", "").upper(), logging.INFO))
        sys.exit(asyncio.run(run_store_copy(args.source, args.target)))
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
