"""`python -m bot store copy --from URL --to URL`: move an installation between SQLite and PostgreSQL.

Both databases are opened the way the bot opens them, so both end up at the current schema version
(the source is upgraded first if it is older). The tables and their columns come from the migrations
themselves (applied to a scratch in-memory SQLite database), so tables added by later migrations are
copied without anyone listing them here. The target must hold no ollacord rows yet; everything is
written in one transaction, so a copy that fails leaves the target as empty as it was.
"""

from __future__ import annotations

import graphlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.channel_settings.postgres_store import PostgresSettingsStore
from bot.channel_settings.store import MIGRATIONS, Migration, SqliteSettingsStore, StoreError
from bot.storage.database_url import Backend, DatabaseUrl
from bot.storage.postgres import Connection

__all__ = ["CopyResult", "Table", "copy_store", "schema_tables"]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the schema and its columns, in their declared order."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """How many rows each table got."""

    rows: dict[str, int]

    def describe(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.rows.items())


def schema_tables(migrations: tuple[Migration, ...] = MIGRATIONS) -> list[Table]:
    """Every table the migrations create, parents before the tables whose foreign keys point at them."""
    conn = sqlite3.connect(":memory:")
    try:
        for migration in migrations:
            for statement in migration:
                conn.execute(statement)
        names = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        columns: dict[str, tuple[str, ...]] = {}
        for name in names:
            # The name comes from sqlite_master of this scratch database, not from input.
            columns[name] = tuple(str(row[1]) for row in conn.execute(f"PRAGMA table_info({name})"))
            parents = {str(row[2]) for row in conn.execute(f"PRAGMA foreign_key_list({name})")} - {name}
            order.add(name, *parents)
        return [Table(name, columns[name]) for name in order.static_order()]
    finally:
        conn.close()


class _Side(Protocol):
    shown: str

    async def count(self, table: Table) -> int: ...

    async def read(self, table: Table) -> list[Row]: ...

    async def write(self, batches: Sequence[tuple[Table, list[Row]]]) -> None: ...

    async def close(self) -> None: ...


class _SqliteSide:
    def __init__(self, store: SqliteSettingsStore) -> None:
        self.store = store
        self.shown = f"sqlite:///{store.path}"

    async def count(self, table: Table) -> int:
        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0])  # noqa: S608

        return await self.store.run_job(f"count the rows of {table.name}", count, write=False)

    async def read(self, table: Table) -> list[Row]:
        def read(conn: sqlite3.Connection) -> list[Row]:
            query = f"SELECT {', '.join(table.columns)} FROM {table.name}"  # noqa: S608
            return [tuple(row) for row in conn.execute(query)]

        return await self.store.run_job(f"read {table.name}", read, write=False)

    async def write(self, batches: Sequence[tuple[Table, list[Row]]]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for table, rows in batches:
                marks = ", ".join("?" for _ in table.columns)
                insert = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"  # noqa: S608
                conn.executemany(insert, rows)

        await self.store.run_job("write the copied rows", write)

    async def close(self) -> None:
        await self.store.close()


class _PostgresSide:
    def __init__(self, store: PostgresSettingsStore) -> None:
        self.store = store
        self.shown = store.shown

    async def count(self, table: Table) -> int:
        async def count(conn: Connection) -> int:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table.name}"))  # noqa: S608

        return await self.store.run_job(f"count the rows of {table.name}", count, write=False)

    async def read(self, table: Table) -> list[Row]:
        async def read(conn: Connection) -> list[Row]:
            query = f"SELECT {', '.join(table.columns)} FROM {table.name}"  # noqa: S608
            return [tuple(row) for row in await conn.fetch(query)]

        return await self.store.run_job(f"read {table.name}", read, write=False)

    async def write(self, batches: Sequence[tuple[Table, list[Row]]]) -> None:
        async def write(conn: Connection) -> None:
            for table, rows in batches:
                if not rows:
                    continue
                floats = {
                    str(name)
                    for (name,) in await conn.fetch(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND table_name = $1 AND data_type IN ('double precision', 'real', 'numeric')",
                        table.name,
                    )
                }
                # SQLite hands back 1 for 1.0 in some columns; PostgreSQL's binary COPY wants the declared type.
                at = [i for i, column in enumerate(table.columns) if column in floats]
                records = [
                    tuple(float(v) if i in at and isinstance(v, int) else v for i, v in enumerate(row)) for row in rows
                ]
                await conn.copy_records_to_table(table.name, records=records, columns=list(table.columns))
                # Identity columns keep counting after the copied ids, not from 1.
                for (column,) in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = $1 AND is_identity = 'YES'",
                    table.name,
                ):
                    await conn.execute(
                        f"SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max({column}) FROM {table.name}))",  # noqa: S608
                        table.name,
                        column,
                    )

        await self.store.run_job("write the copied rows", write)

    async def close(self) -> None:
        await self.store.close()


async def _open(url: DatabaseUrl, *, must_exist: bool) -> _Side:
    if url.backend is Backend.POSTGRESQL:
        assert url.dsn is not None
        return _PostgresSide(await PostgresSettingsStore.open(url.dsn))
    assert url.sqlite_path is not None
    if must_exist and not url.sqlite_path.is_file():
        raise StoreError(f"there is no SQLite database at {url.sqlite_path} to copy from", path=url.sqlite_path)
    return _SqliteSide(await SqliteSettingsStore.open(url.sqlite_path))


async def copy_store(source: DatabaseUrl, target: DatabaseUrl) -> CopyResult:
    """Copy every ollacord table from `source` into the empty `target`; raise StoreError saying what went wrong."""
    if source == target:
        raise StoreError("--from and --to name the same database")
    tables = schema_tables()
    origin = await _open(source, must_exist=True)
    try:
        destination = await _open(target, must_exist=False)
        try:
            for table in tables:
                if (held := await destination.count(table)) > 0:
                    raise StoreError(
                        f"{destination.shown} already holds ollacord data ({held} rows in {table.name}); "
                        "copy only into a new, empty database"
                    )
            batches = [(table, await origin.read(table)) for table in tables]
            await destination.write(batches)
            copied = {table.name: await destination.count(table) for table in tables}
            expected = {table.name: len(rows) for table, rows in batches}
            if copied != expected:
                raise StoreError(f"the copy does not match: expected {expected}, found {copied} in {destination.shown}")
            return CopyResult(copied)
        finally:
            await destination.close()
    finally:
        await origin.close()
