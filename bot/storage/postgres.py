"""PostgreSQL underneath the stores: the connection pool, start-up checks, migrations and one retry on reconnect.

Everything is asyncpg on the event loop: a pool of a few connections, each operation one transaction on
one of them. When the server restarts, every pooled connection dies with it; asyncpg notices, and the
next operation opens a new connection. An operation that fails because its connection was lost is run
once more on a fresh one (every write of the stores is an upsert or a delete, so running it twice is
harmless; the usage store's add, which is not, checks what became of its first run: bot/usage/postgres_store.py);
anything else, and a second loss, is a StoreError, which the callers report.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg
import asyncpg.pool

from bot.channel_settings.store import MIGRATIONS, Migration, StoreError
from bot.storage.database_url import redact
from bot.storage.migrations import postgres_migrations

__all__ = [
    "CONNECTION_LOST",
    "MIN_SERVER_VERSION",
    "Connection",
    "DatabaseUnreachable",
    "PostgresDatabase",
    "describe_connect_error",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

# A few connections are plenty: each operation is one short transaction, and settings are read once per answer.
POOL_SIZE = 8
# How long one operation (a connection included) may take before it fails; the slash commands defer first,
# so a write that waits this long still reaches the user with its outcome.
OPERATION_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# idle_session_timeout (PostgreSQL 14) is what releases a vanished active instance's lock (bot/leadership.py).
MIN_SERVER_VERSION = 14
# pg_advisory_xact_lock key serialising migrations between instances starting at once ("ollacord" in ASCII).
MIGRATION_LOCK = 0x6F6C6C61636F7264

# The connection is gone (server restart, network, administrator), or the server will not take one right now.
CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.AdminShutdownError,  # 57P01: terminating connection due to administrator command
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: the database system is starting up / shutting down
    asyncpg.IdleSessionTimeoutError,  # 57P05
    asyncpg.InterfaceError,  # the connection is closed / was lost mid-operation
    OSError,  # refused, reset, unreachable (ConnectionError, socket.gaierror)
    TimeoutError,
)
_OPEN_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECTION_LOST)

# Tables the database itself needs, outside the numbered migrations (they are not copied by `store copy`).
_INTERNAL_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS ollacord_schema (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        version INTEGER NOT NULL,
        migrated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    # One row per group of shards: who holds (or last held) its active/standby lock; see bot/leadership.py.
    """
    CREATE TABLE IF NOT EXISTS ollacord_leaders (
        lock_key BIGINT PRIMARY KEY,
        shard_group TEXT NOT NULL,
        instance TEXT NOT NULL,
        instance_name TEXT NOT NULL,
        backend_pid INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'released')),
        acquired_at TIMESTAMPTZ NOT NULL,
        renewed_at TIMESTAMPTZ NOT NULL
    )
    """,
)
INTERNAL_TABLE_NAMES = ("ollacord_schema", "ollacord_leaders")


class DatabaseUnreachable(StoreError):
    """PostgreSQL can't be reached or refuses the login: start-up ends with this one line and exit code 2."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What `check` and the start-up log say about the server."""

    version: str
    schema_version: int


def _where(dsn: str) -> str:
    """host:port/database of a DSN, for messages."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    database = parts.path.lstrip("/") or parts.username or "postgres"
    return f"{host}:{port}/{database}"


def describe_connect_error(exc: BaseException, dsn: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """One line saying why PostgreSQL could not be used, and what to do."""
    where = _where(dsn)
    user = urlsplit(dsn).username or "the default user"
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"PostgreSQL at {where} refused the login of {user} ({exc}). "
            "Check the user name and password in DATABASE_URL."
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"PostgreSQL at {where}: {exc}. Create it first (e.g. `createdb`), or fix the name in DATABASE_URL."
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return f"PostgreSQL at {where} is not accepting connections right now ({exc}). Try again in a moment."
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return f"PostgreSQL at {where} has no free connection ({exc}). Raise max_connections or close others."
    if isinstance(exc, socket.gaierror):
        return (
            f"can't reach PostgreSQL at {where}: the host name does not resolve ({exc.strerror}). Check DATABASE_URL."
        )
    if isinstance(exc, TimeoutError):
        return f"can't reach PostgreSQL at {where}: no answer within {timeout:g} s. Check the host, port and firewall."
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return (
            f"can't reach PostgreSQL at {where}: {reason}. Is it running, and are DATABASE_URL's host and port right?"
        )
    return f"can't use PostgreSQL at {where}: {type(exc).__name__}: {exc}"


class PostgresDatabase:
    """A pool of connections to one migrated ollacord database."""

    def __init__(
        self, pool: asyncpg.Pool[asyncpg.Record], dsn: str, info: ServerInfo, *, operation_timeout: float
    ) -> None:
        """Use `await PostgresDatabase.open(dsn)`."""
        self._pool = pool
        self.dsn = dsn
        self.info = info
        self.operation_timeout = operation_timeout
        self._closed = False

    @property
    def shown(self) -> str:
        """The DSN without its password."""
        return redact(self.dsn)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        pool_size: int = POOL_SIZE,
        operation_timeout: float = OPERATION_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> PostgresDatabase:
        """Connect, check the server and bring the schema up to date; raise DatabaseUnreachable or StoreError."""
        try:
            pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
                dsn,
                # No floor of idle connections: while the server is down asyncpg would keep trying to restore
                # it, logging a traceback each time. Connections open as operations need them.
                min_size=0,
                max_size=pool_size,
                timeout=connect_timeout,
                command_timeout=operation_timeout,
                # Idle connections are closed after a while, so a restarted server is met with fresh ones.
                max_inactive_connection_lifetime=60.0,
                server_settings={"application_name": "ollacord"},
            )
        except _OPEN_FAILURES as exc:
            raise DatabaseUnreachable(describe_connect_error(exc, dsn, connect_timeout)) from exc
        try:
            async with pool.acquire() as conn:  # the first connection: reachable, and the login accepted?
                await conn.fetchval("SELECT 1")
        except _OPEN_FAILURES as exc:
            pool.terminate()
            raise DatabaseUnreachable(describe_connect_error(exc, dsn, connect_timeout)) from exc
        try:
            info = await _prepare(pool, dsn, migrations, connect_timeout)
        except BaseException:
            pool.terminate()
            raise
        return cls(pool, dsn, info, operation_timeout=operation_timeout)

    async def run(self, action: str, job: Callable[[Connection], Awaitable[T]], *, write: bool = True) -> T:
        """Run `job` on a pooled connection (in one transaction when `write`), once more if the connection was lost.

        `action` completes "could not …" in the StoreError raised when it fails.
        """
        if self._closed:
            raise StoreError(f"the database {self.shown} is closed")
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.operation_timeout):
                    return await self._once(job, write)
            except CONNECTION_LOST as exc:
                if attempt == 2 or self._closed:
                    raise StoreError(f"database {self.shown}: could not {action} ({_reason(exc)})") from exc
                log.debug("database %s: connection lost during %s, trying once more", self.shown, action)
            except asyncpg.PostgresError as exc:
                raise StoreError(f"database {self.shown}: could not {action} ({_reason(exc)})") from exc
        raise AssertionError("unreachable")

    async def _once(self, job: Callable[[Connection], Awaitable[T]], write: bool) -> T:
        async with self._pool.acquire() as conn:
            if not write:
                return await job(conn)
            async with conn.transaction():
                return await job(conn)

    async def server_info(self) -> ServerInfo:
        """The server's version and the schema version, read now."""

        async def read(conn: Connection) -> ServerInfo:
            return await _server_info(conn)

        return await self.run("read the server's version", read, write=False)

    async def close(self) -> None:
        """Close every connection (waiting briefly for operations under way)."""
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self.operation_timeout):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


async def _server_info(conn: Connection) -> ServerInfo:
    version = str(await conn.fetchval("SHOW server_version"))
    schema = await conn.fetchval("SELECT version FROM ollacord_schema")
    return ServerInfo(version=version.split()[0], schema_version=int(schema or 0))


async def _prepare(
    pool: asyncpg.Pool[asyncpg.Record], dsn: str, migrations: tuple[Migration, ...], connect_timeout: float
) -> ServerInfo:
    try:
        async with pool.acquire() as conn:
            number = int(await conn.fetchval("SHOW server_version_num"))
            if number < MIN_SERVER_VERSION * 10_000:
                raise StoreError(
                    f"PostgreSQL at {_where(dsn)} is version {number // 10_000}; ollacord needs {MIN_SERVER_VERSION} "
                    "or newer (for idle_session_timeout, which frees a vanished instance's lock)."
                )
            await _migrate(conn, dsn, migrations)
            return await _server_info(conn)
    except (asyncpg.InsufficientPrivilegeError, asyncpg.InvalidSchemaNameError) as exc:
        raise StoreError(
            f"PostgreSQL at {_where(dsn)}: {exc}. The user in DATABASE_URL must be allowed to create tables "
            "in the database (e.g. its owner)."
        ) from exc
    except CONNECTION_LOST as exc:
        raise DatabaseUnreachable(describe_connect_error(exc, dsn, connect_timeout)) from exc
    except asyncpg.PostgresError as exc:
        raise StoreError(f"PostgreSQL at {_where(dsn)}: could not prepare the database ({_reason(exc)})") from exc


async def _migrate(conn: Connection, dsn: str, migrations: tuple[Migration, ...]) -> None:
    statements = postgres_migrations(migrations)
    async with conn.transaction():
        # Instances starting together queue here; the second finds the work done. DDL is transactional in
        # PostgreSQL, so a migration that fails leaves nothing behind.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        for statement in _INTERNAL_TABLES:
            await conn.execute(statement)
        version = int(await conn.fetchval("SELECT version FROM ollacord_schema") or 0)
        if version > len(statements):
            raise StoreError(
                f"the database at {_where(dsn)} was written by a newer ollacord (schema version {version}; this "
                f"version knows up to {len(statements)}). Upgrade ollacord, or restore a backup made by this version."
            )
        for migration in statements[version:]:
            for statement in migration:
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO ollacord_schema (singleton, version, migrated_at) VALUES (TRUE, $1, now()) "
            "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, migrated_at = excluded.migrated_at",
            len(statements),
        )
    if version < len(statements):
        log.info("database %s: schema upgraded from version %d to %d", redact(dsn), version, len(statements))
