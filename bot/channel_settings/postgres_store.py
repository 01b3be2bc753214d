"""Channel and server settings in PostgreSQL: the same SettingsStore contract as the SQLite file.

The table is the one migration 1 creates on both backends (bot/storage/migrations.py); values are the
same JSON text, so `python -m bot store copy` moves rows between backends as they are. Reads take one
statement (consistent on its own), writes one transaction: a change of several values lands whole or
not at all, and a failure is a StoreError the command that asked reports to its user.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from bot.channel_settings.keys import SettingValue, check_key, validate_setting
from bot.channel_settings.store import Migration, Scope, ScopeKind, StoreError, decode_stored_setting
from bot.storage.postgres import Connection, PostgresDatabase, ServerInfo

__all__ = ["PostgresSettingsStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_READ = (
    "SELECT s.scope_kind, s.scope_id, s.key, s.value FROM settings s "
    "JOIN unnest($1::text[], $2::bigint[]) AS wanted (kind, id) "
    "ON s.scope_kind = wanted.kind AND s.scope_id = wanted.id "
    "ORDER BY s.key"
)
_UPSERT = (
    "INSERT INTO settings (scope_kind, scope_id, key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (scope_kind, scope_id, key) DO UPDATE SET "
    "value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by"
)


class PostgresSettingsStore:
    """A SettingsStore in PostgreSQL; it owns the database's pool, which the answer records share."""

    def __init__(self, database: PostgresDatabase) -> None:
        """Use `await PostgresSettingsStore.open(dsn)`."""
        self.database = database
        self._closed = False
        # Warn once per bad row, not on every read of the channel.
        self._warned: set[tuple[str, int, str, str]] = set()

    @classmethod
    async def open(cls, dsn: str, *, migrations: tuple[Migration, ...] | None = None) -> PostgresSettingsStore:
        """Connect and migrate; raise DatabaseUnreachable (can't connect or log in) or StoreError."""
        if migrations is None:
            return cls(await PostgresDatabase.open(dsn))
        return cls(await PostgresDatabase.open(dsn, migrations=migrations))

    @property
    def shown(self) -> str:
        """The database URL without its password."""
        return self.database.shown

    @property
    def info(self) -> ServerInfo:
        """The server version and schema version found at start-up."""
        return self.database.info

    async def run_job(self, action: str, job: Callable[[Connection], Awaitable[T]], *, write: bool = True) -> T:
        """Run `job` in one transaction (when `write`) on a pooled connection; for the database's other tables."""
        if self._closed:
            raise StoreError(f"the settings database {self.shown} is closed")
        return await self.database.run(action, job, write=write)

    async def get(self, scope: Scope) -> dict[str, SettingValue]:
        """The settings of one scope (empty when none are set)."""
        return (await self.get_many([scope]))[scope]

    async def get_many(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, SettingValue]]:
        """The settings of several scopes from one statement; every requested scope is a key."""
        result: dict[Scope, dict[str, SettingValue]] = {scope: {} for scope in scopes}
        if not result:
            return result
        kinds = [scope.kind.value for scope in result]
        ids = [scope.id for scope in result]

        async def read(conn: Connection) -> list[asyncpg.Record]:
            return await conn.fetch(_READ, kinds, ids)

        for kind, scope_id, key, raw in await self.run_job("read settings", read, write=False):
            scope = Scope(ScopeKind(kind), scope_id)
            value = self._decode(scope, key, raw)
            if value is not None:
                result[scope][key] = value
        return result

    async def set_many(
        self, scope: Scope, values: Mapping[str, SettingValue], *, updated_by: int | None = None
    ) -> None:
        """Validate then store all `values` in one transaction."""
        changes = {key: validate_setting(key, value) for key, value in values.items()}
        if not changes:
            return
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        rows = [
            (scope.kind.value, scope.id, key, json.dumps(value, allow_nan=False), now, updated_by)
            # Keys in one order in every transaction: two changes to the same keys wait for each other, never deadlock.
            for key, value in sorted(changes.items())
        ]

        async def write(conn: Connection) -> None:
            await conn.executemany(_UPSERT, rows)

        await self.run_job("save settings", write)

    async def unset(self, scope: Scope, key: str | None = None) -> int:
        """Remove `key` (or every key when None) from `scope` in one transaction; return rows removed."""
        if key is not None:
            check_key(key)

        async def delete(conn: Connection) -> int:
            if key is None:
                status = await conn.execute(
                    "DELETE FROM settings WHERE scope_kind = $1 AND scope_id = $2", scope.kind.value, scope.id
                )
            else:
                status = await conn.execute(
                    "DELETE FROM settings WHERE scope_kind = $1 AND scope_id = $2 AND key = $3",
                    scope.kind.value,
                    scope.id,
                    key,
                )
            return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

        return await self.run_job("remove settings", delete)

    async def close(self) -> None:
        """Close the pool; later calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        await self.database.close()

    def _decode(self, scope: Scope, key: str, raw: str) -> SettingValue | None:
        return decode_stored_setting(scope, key, raw, where=self.shown, warned=self._warned)
