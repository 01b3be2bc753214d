"""Active and standby: of the instances sharing a token and a group of shards, one talks to Discord.

The active instance holds a PostgreSQL session-level advisory lock (one per group of shards) on a
connection of its own. The others poll for the same lock and wait; they answer no one.

Why two instances never answer the same message, even while the network is split
-------------------------------------------------------------------------------
Discord accepts several sessions for one shard and sends every event to each of them, so the bot
itself must make sure that at most one instance writes to Discord at any time. Let L be the lease
(LEADER_LEASE_SECONDS):

1. The lock connection runs with `idle_session_timeout = L`: a session the server hears nothing from
   for L seconds is ended by the server, which frees the lock. A killed process frees it at once (its
   socket closes); a vanished machine or a cut network frees it after L.
2. The active instance renews its row in `ollacord_leaders` every L/6 (`renewed_at = clock_timestamp()`
   on the server) and keeps, on its own monotonic clock, the time it *sent* the last renewal the server
   confirmed. Any later release of the lock happens after that send.
   - 0.6 L after that send without a newer confirmation, it stops: no new questions, streaming replies
     end with a note, the Discord connection closes. Until then, if the lock's session ended (the
     database restarted, say), it tries to get the lock back on a new session; that is safe because of 3.
   - At L after that send it has stopped writing to Discord altogether: every REST write checks the
     lease (see `may_write`), so even a process that was frozen and wakes up writes nothing.
3. A standby that gets the lock reads the previous holder's row. Unless that holder released the lock
   itself (a graceful hand-over), the standby waits until `renewed_at + L` has passed on the server's
   clock before it connects to Discord. By 2, the previous holder has stopped by then: its last
   confirmed renewal was sent before the server stamped `renewed_at`.

While PostgreSQL is down for longer than 0.6 L, no instance answers: none can prove it is the only one.
They come back by themselves when it is up again.

Only durations are compared across machines (each on one clock), never wall-clock times, so clock skew
does not matter; what is assumed is that clocks run at the same rate over a few seconds. Failover takes
about: SIGKILL L/6 + up to L; machine or network lost L + L/6 (the server waits L, the wait in 3 is then
over); graceful hand-over L/6. Plus the time to connect to Discord. With the default L = 5 s all stay
under 15 s.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from bot.backoff import Backoff
from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.storage.postgres import CONNECTION_LOST, Connection, describe_connect_error

__all__ = ["LeaderStatus", "Leadership", "live_instances", "lock_key_for", "process_instance_id"]

log = logging.getLogger(__name__)

# When the lock can't be had, or the database can't be reached, try again this often at most.
RETRY_CAP_SECONDS = 5.0
_DB_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECTION_LOST)

_UPSERT_ROW = """
INSERT INTO ollacord_leaders
    (lock_key, shard_group, instance, instance_name, backend_pid, state, acquired_at, renewed_at)
VALUES ($1, $2, $3, $4, pg_backend_pid(), 'active', clock_timestamp(), clock_timestamp())
ON CONFLICT (lock_key) DO UPDATE SET
    shard_group = excluded.shard_group, instance = excluded.instance, instance_name = excluded.instance_name,
    backend_pid = excluded.backend_pid, state = 'active', acquired_at = excluded.acquired_at,
    renewed_at = excluded.renewed_at
"""
_RENEW = (
    "UPDATE ollacord_leaders SET renewed_at = clock_timestamp() "
    "WHERE lock_key = $1 AND instance = $2 AND backend_pid = pg_backend_pid() RETURNING 1"
)
_PREVIOUS = (
    "SELECT state, instance, instance_name, EXTRACT(EPOCH FROM clock_timestamp() - renewed_at)::float8 AS idle "
    "FROM ollacord_leaders WHERE lock_key = $1"
)
# An instance is alive while its lock session holds the lock, or its lease may still run.
_LIVE = """
SELECT l.instance FROM ollacord_leaders l
WHERE l.state = 'active' AND (
    clock_timestamp() - l.renewed_at < make_interval(secs => $1)
    OR EXISTS (
        SELECT 1 FROM pg_locks k
        WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid AND k.objsubid = 1
          AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((k.classid::bigint << 32) | k.objid::bigint) = l.lock_key
    )
)
"""


def process_instance_id(name: str) -> str:
    """This process's id in answer records and the leaders table: the instance name plus a per-run suffix.

    A restarted container keeps its host name (and often its pid), so the name alone would make a new
    process take its dead predecessor's unfinished answers for its own.
    """
    return f"{name}/{uuid.uuid4().hex[:12]}"


def _bot_identity(token: str) -> str:
    """The bot user's id from the token's first part (base64 of the id), so a reset token keeps the same lock."""
    first = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded.isdigit():
        return decoded
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]  # never the token itself


def lock_key_for(token: str, shard_group: str) -> int:
    """The advisory lock key of one bot's group of shards: different bots on one database never share it."""
    digest = hashlib.sha256(f"ollacord-leader:{_bot_identity(token)}:{shard_group}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def live_instances(store: PostgresSettingsStore, lease: float) -> set[str]:
    """The instances that are active now, or may still be writing to Discord (their lease has not run out)."""

    async def read(conn: Connection) -> set[str]:
        return {str(row[0]) for row in await conn.fetch(_LIVE, lease)}

    return await store.run_job("read which instances are alive", read, write=False)


@dataclass(frozen=True, slots=True)
class LeaderStatus:
    """What /healthz says about this instance's role."""

    active: bool
    active_instance: str | None  # the INSTANCE_NAME of the active instance, as last seen (None: none known)
    problem: str | None = None  # why a standby can't even wait properly (the database can't be reached)


class Leadership:
    """The lock of one group of shards: wait for it as a standby, hold it with a lease while active."""

    def __init__(
        self,
        dsn: str,
        *,
        lock_key: int,
        shard_group: str,
        instance: str,
        name: str,
        lease: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dsn = dsn
        self.lock_key = lock_key
        self.shard_group = shard_group
        self.instance = instance
        self.name = name
        self.lease = lease
        self._clock = clock
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._confirmed_sent: float | None = None  # when the last renewal the server confirmed was sent
        self._heartbeat: asyncio.Task[None] | None = None
        self._wind_down_timer: asyncio.TimerHandle | None = None
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._wake = asyncio.Event()  # renew now: the lock's session has just ended
        self._status = LeaderStatus(active=False, active_instance=None, problem="looking for the active instance")

    # -- timings (see the module docstring)

    @property
    def renew_every(self) -> float:
        """How often the active instance renews, and a standby asks for the lock."""
        return self.lease / 6

    @property
    def wind_down_after(self) -> float:
        """Without a confirmed renewal for this long, the active instance stops answering.

        What is left of the lease after this is for the final edits of the replies it cuts short.
        """
        return self.lease * 0.6

    def status(self) -> LeaderStatus:
        """This instance's role and the active instance, for /healthz."""
        return self._status

    def may_write(self) -> bool:
        """Whether this instance may still write to Discord: it holds the lock and its lease has not run out."""
        return self._confirmed_sent is not None and self._clock() < self._confirmed_sent + self.lease

    def seconds_left(self) -> float:
        """Until the lease runs out (0 when not active)."""
        if self._confirmed_sent is None:
            return 0.0
        return max(0.0, self._confirmed_sent + self.lease - self._clock())

    # -- standby

    async def acquire(self) -> None:
        """Wait as a standby until this instance holds the lock and the previous holder has surely stopped."""
        backoff = Backoff(first=self.renew_every, cap=max(self.renew_every, RETRY_CAP_SECONDS))
        while True:
            try:
                await self._try_to_become_active()
                return
            except _DB_FAILURES as exc:
                self._confirmed_sent = None
                await self._stop_renewing()
                await self._drop_connection()
                problem = describe_connect_error(exc, self.dsn, self.lease)
                if self._status.problem != problem:
                    log.warning("standby: %s; trying again", problem)
                self._status = LeaderStatus(active=False, active_instance=self._status.active_instance, problem=problem)
                await asyncio.sleep(backoff.next_delay())

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        return await asyncpg.connect(
            self.dsn,
            timeout=max(self.lease, 1.0),
            command_timeout=self.wind_down_after,
            server_settings={
                # The server ends this session, and so frees the lock, when it hears nothing for a lease.
                "idle_session_timeout": str(max(1, round(self.lease * 1000))),
                "application_name": f"ollacord lock {self.name}"[:63],
            },
        )

    async def _lock_connection(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
            # A session the server ends (restart, administrator) is noticed at once, not at the next renewal.
            self._conn.add_termination_listener(self._on_terminated)
        return self._conn

    async def _try_to_become_active(self) -> None:
        conn = await self._lock_connection()
        announced = False
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
            row = await conn.fetchrow("SELECT instance_name FROM ollacord_leaders WHERE lock_key = $1", self.lock_key)
            active = str(row["instance_name"]) if row is not None else None
            if not announced or active != self._status.active_instance or self._status.problem:
                log.info("standby for %s: %s is active", self.shard_group, active or "another instance")
                announced = True
            self._status = LeaderStatus(active=False, active_instance=active)
            await asyncio.sleep(self.renew_every)
        previous = await conn.fetchrow(_PREVIOUS, self.lock_key)
        sent = self._clock()
        await conn.execute(_UPSERT_ROW, self.lock_key, self.shard_group, self.instance, self.name)
        self.lost.clear()
        self.lost_reason = ""
        self._confirmed(sent)
        self._heartbeat = asyncio.create_task(self._renew(), name="leader-lease")
        settle = 0.0
        if previous is not None and previous["state"] == "active" and previous["instance"] != self.instance:
            settle = max(0.0, self.lease - float(previous["idle"]))
        if settle > 0:
            log.info(
                "took the lock for %s from %s, which did not hand over; waiting %.1f s until it has surely stopped",
                self.shard_group,
                previous["instance_name"] if previous is not None else "?",
                settle,
            )
            lost = asyncio.ensure_future(self.lost.wait())
            await asyncio.wait({lost}, timeout=settle)
            lost.cancel()
            if self.lost.is_set():
                raise ConnectionError(f"lost the lock again while waiting: {self.lost_reason}")
        self._status = LeaderStatus(active=True, active_instance=self.name)
        log.info("active for %s as %s", self.shard_group, self.name)

    # -- active

    def _confirmed(self, sent: float) -> None:
        self._confirmed_sent = sent
        if self._wind_down_timer is not None:
            self._wind_down_timer.cancel()
        delay = max(0.0, sent + self.wind_down_after - self._clock())
        self._wind_down_timer = asyncio.get_running_loop().call_later(
            delay, self._lose, f"the lock could not be confirmed for {self.wind_down_after:g} s"
        )

    def _on_terminated(self, conn: object) -> None:
        self._wake.set()

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        self._status = LeaderStatus(active=False, active_instance=None, problem=None)
        if self._wind_down_timer is not None:
            self._wind_down_timer.cancel()

    async def _renew(self) -> None:
        """Renew every renew_every; when the lock's session is gone, try to get the lock back within the lease.

        Getting it back is safe: whoever held it meanwhile waited out this instance's lease before
        answering (see the module docstring, point 3), so it has not answered yet, and it no longer holds it.
        """
        failing = False
        while not self.lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.renew_every)
            self._wake.clear()
            sent = self._clock()
            try:
                async with asyncio.timeout(self.wind_down_after):
                    renewed = await self._renew_once()
            except _DB_FAILURES as exc:
                if not failing:
                    log.warning(
                        "the lock's database session failed (%s: %s); trying to get it back within the lease",
                        type(exc).__name__,
                        exc,
                    )
                failing = True
                await self._drop_connection()
                continue
            if renewed is None:
                continue  # not held by this session yet (another session may still hold it): try again
            if not renewed:
                self._lose("another instance holds the lock")
                return
            if failing:
                log.info("got the lock for %s back", self.shard_group)
                failing = False
            if not self.lost.is_set():
                self._confirmed(sent)

    async def _renew_once(self) -> bool | None:
        """True: renewed. False: the row names another holder. None: the lock can't be had right now."""
        reconnect = self._conn is None or self._conn.is_closed()
        conn = await self._lock_connection()
        if reconnect:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                return None
            await conn.execute(_UPSERT_ROW, self.lock_key, self.shard_group, self.instance, self.name)
            return True
        return await conn.fetchval(_RENEW, self.lock_key, self.instance) is not None

    async def step_down(self) -> None:
        """After losing the lock: forget it and close its connection, ready to wait as a standby again."""
        self._confirmed_sent = None
        await self._stop_renewing()
        await self._drop_connection()
        self._status = LeaderStatus(active=False, active_instance=None, problem="looking for the active instance")

    async def release(self) -> None:
        """Hand over at once (graceful shutdown): mark the row released, unlock, close the connection.

        Called after this instance has stopped writing to Discord, so a standby may start without waiting.
        """
        self._confirmed_sent = None
        await self._stop_renewing()
        conn = self._conn
        if conn is not None and not conn.is_closed() and not self.lost.is_set():
            try:
                async with asyncio.timeout(self.wind_down_after):
                    await conn.execute(
                        "UPDATE ollacord_leaders SET state = 'released', renewed_at = clock_timestamp() "
                        "WHERE lock_key = $1 AND instance = $2",
                        self.lock_key,
                        self.instance,
                    )
                    await conn.fetchval("SELECT pg_advisory_unlock($1)", self.lock_key)
                log.info("handed over the lock for %s", self.shard_group)
            except _DB_FAILURES as exc:
                log.warning(
                    "could not hand over the lock for %s (%s); it frees when the session ends", self.shard_group, exc
                )
        await self._drop_connection()
        self._status = LeaderStatus(active=False, active_instance=None)

    async def close(self) -> None:
        """Stop everything; the lock, if held, is freed as the session ends."""
        self._confirmed_sent = None
        await self._stop_renewing()
        await self._drop_connection()

    async def _stop_renewing(self) -> None:
        if self._wind_down_timer is not None:
            self._wind_down_timer.cancel()
            self._wind_down_timer = None
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            async with asyncio.timeout(1.0):
                await conn.close()
        except _DB_FAILURES:
            conn.terminate()
