"""Where channel and server settings are kept: a small async interface, an SQLite file and an in-memory twin.

The SQLite store owns one connection and one worker thread. Every operation is a
job on that thread, so the event loop never waits on file I/O and operations run
one at a time in submission order: two concurrent changes cannot interleave and
lose an update. Each change is a single ``BEGIN IMMEDIATE`` … ``COMMIT``, so a
crash (or a process killed mid-write) leaves the last committed state. Cancelling
an awaiting caller does not stop a job already queued: its change still lands,
whole.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from bot.channel_settings.keys import InvalidSetting, SettingValue, check_key, validate_setting

__all__ = [
    "APPLICATION_ID",
    "DATABASE_FILENAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "MemorySettingsStore",
    "Scope",
    "ScopeKind",
    "SettingsStore",
    "SqliteSettingsStore",
    "StoreError",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DATABASE_FILENAME = "ollacord.sqlite3"
# Stamped into the header (PRAGMA application_id) so a stray SQLite file from another program is not adopted.
APPLICATION_ID = 0x4F4C4C41  # "OLLA"
BUSY_TIMEOUT_MS = 5000
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_SCOPE_ID = 2**63 - 1

Migration = tuple[str, ...]
# Append only: entry N (1-based) upgrades a file at schema version N-1 to N. Never edit a released entry.
MIGRATIONS: tuple[Migration, ...] = (
    (
        """
        CREATE TABLE settings (
            scope_kind TEXT NOT NULL CHECK (scope_kind IN ('channel', 'guild')),
            scope_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            updated_by INTEGER,
            PRIMARY KEY (scope_kind, scope_id, key)
        ) WITHOUT ROWID
        """,
    ),
    # 2: answer records (bot/answers/). One row per generation of an answer; its messages in their own
    # table so an answer can be found from any of them. Times are UTC ISO 8601 text (milliseconds).
    (
        """
        CREATE TABLE answers (
            answer_id TEXT PRIMARY KEY,
            answer_key INTEGER NOT NULL,
            generation INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL,
            guild_id INTEGER,
            channel_id INTEGER NOT NULL,
            requester_id INTEGER NOT NULL,
            prompt_author_id INTEGER,
            prompt_author_name TEXT,
            prompt_text TEXT,
            model TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL CHECK (state IN ('streaming', 'finished')),
            outcome TEXT,
            done_reason TEXT,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            eval_count INTEGER,
            prompt_eval_count INTEGER,
            host TEXT,
            instance TEXT NOT NULL
        )
        """,
        "CREATE INDEX answers_by_key ON answers (answer_key, generation)",
        "CREATE INDEX answers_by_created ON answers (created_at)",
        "CREATE INDEX answers_streaming ON answers (created_at) WHERE state = 'streaming'",
        """
        CREATE TABLE answer_messages (
            answer_id TEXT NOT NULL REFERENCES answers (answer_id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            message_id INTEGER NOT NULL,
            PRIMARY KEY (answer_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX answer_messages_by_message ON answer_messages (message_id)",
    ),
    # 3: the answer's text as the model gave it, so a reply chain needs no Discord read for the bot's turns.
    ("ALTER TABLE answers ADD COLUMN answer_text TEXT",),
    # 4: team knowledge (bot/knowledge/). Documents of a scope (a channel, thread or server), their chunks
    # with vectors (little-endian float32, L2-normalised, `dimensions` values each), and the channels whose
    # pinned messages are kept in a scope. guild_id and parent_id say where a scope's embed_model comes from.
    (
        """
        CREATE TABLE knowledge_documents (
            document_id TEXT PRIMARY KEY,
            guild_id INTEGER NOT NULL,
            scope_kind TEXT NOT NULL CHECK (scope_kind IN ('channel', 'guild')),
            scope_id INTEGER NOT NULL,
            parent_id INTEGER,
            kind TEXT NOT NULL CHECK (kind IN ('file', 'pin')),
            name TEXT NOT NULL,
            embed_model TEXT NOT NULL,
            dimensions INTEGER NOT NULL,
            chunk_count INTEGER NOT NULL,
            chars INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            added_at TEXT NOT NULL,
            added_by INTEGER,
            link TEXT,
            pin_channel_id INTEGER,
            pin_message_id INTEGER
        )
        """,
        "CREATE INDEX knowledge_documents_by_scope ON knowledge_documents (scope_kind, scope_id, added_at)",
        "CREATE INDEX knowledge_documents_by_guild ON knowledge_documents (guild_id, added_at)",
        # Rows of ~3 KB (a 768-dimension vector) are too big for a WITHOUT ROWID table to pay off.
        """
        CREATE TABLE knowledge_chunks (
            document_id TEXT NOT NULL REFERENCES knowledge_documents (document_id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            section TEXT,
            text TEXT NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (document_id, position)
        )
        """,
        """
        CREATE TABLE knowledge_pin_sources (
            scope_kind TEXT NOT NULL CHECK (scope_kind IN ('channel', 'guild')),
            scope_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            guild_id INTEGER NOT NULL,
            parent_id INTEGER,
            added_at TEXT NOT NULL,
            added_by INTEGER,
            PRIMARY KEY (scope_kind, scope_id, channel_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX knowledge_pin_sources_by_channel ON knowledge_pin_sources (channel_id)",
    ),
    # 5: usage per UTC day (bot/usage/): one row per day, server (0 for DMs), channel, user, model and Ollama
    # host, so the table grows with activity, not with answers, and old days are pruned whole.
    (
        """
        CREATE TABLE usage_daily (
            day TEXT NOT NULL,
            guild_id INTEGER NOT NULL,
            channel_id INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            model TEXT NOT NULL,
            host TEXT NOT NULL,
            answers INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            answer_tokens INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (day, guild_id, channel_id, user_id, model, host)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX usage_daily_by_guild ON usage_daily (guild_id, day)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class ScopeKind(enum.StrEnum):
    """What a scope's id names; a thread is a CHANNEL scope with the thread's id."""

    CHANNEL = "channel"
    GUILD = "guild"


@dataclass(frozen=True, slots=True)
class Scope:
    """One place settings can be attached to: a channel (or thread) or a whole server."""

    kind: ScopeKind
    id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ScopeKind(self.kind))
        if isinstance(self.id, bool) or not isinstance(self.id, int) or not 0 <= self.id <= _MAX_SCOPE_ID:
            raise ValueError(f"a scope id is a Discord snowflake (a non-negative 64-bit int), got {self.id!r}")

    @classmethod
    def channel(cls, channel_id: int) -> Scope:
        """The scope of a channel or thread."""
        return cls(ScopeKind.CHANNEL, channel_id)

    @classmethod
    def guild(cls, guild_id: int) -> Scope:
        """The scope of a whole server."""
        return cls(ScopeKind.GUILD, guild_id)


@runtime_checkable
class SettingsStore(Protocol):
    """Persistent per-scope settings; every value returned has passed validate_setting."""

    async def get(self, scope: Scope) -> dict[str, SettingValue]:
        """The settings of one scope (empty when none are set)."""
        ...

    async def get_many(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, SettingValue]]:
        """The settings of several scopes from one consistent read; every requested scope is a key."""
        ...

    async def set_many(
        self, scope: Scope, values: Mapping[str, SettingValue], *, updated_by: int | None = None
    ) -> None:
        """Validate then store all `values` in one transaction; an invalid value raises InvalidSetting, storing none."""
        ...

    async def unset(self, scope: Scope, key: str | None = None) -> int:
        """Remove `key` (or every key when None) from `scope`; return how many were removed."""
        ...

    async def close(self) -> None:
        """Release the store; later calls raise StoreError."""
        ...


def decode_stored_setting(
    scope: Scope, key: str, raw: str, *, where: object, warned: set[tuple[str, int, str, str]]
) -> SettingValue | None:
    """A stored value as the setting it is, or None (warned once) when it no longer validates.

    A value written by a newer or older release may not pass today's checks; it is skipped, not fatal.
    """
    try:
        return validate_setting(key, json.loads(raw))
    except (InvalidSetting, ValueError, TypeError) as exc:
        marker = (scope.kind.value, scope.id, key, raw)
        if marker not in warned:
            warned.add(marker)
            log.warning(
                "settings database %s: ignoring stored %s for %s %d (%r): %s",
                where,
                key,
                scope.kind.value,
                scope.id,
                str(raw)[:80],
                exc,
            )
        return None


class StoreError(Exception):
    """The settings storage cannot be used; str() says which file, what is wrong and what to do."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def _validated(values: Mapping[str, SettingValue]) -> dict[str, SettingValue]:
    """Every value checked before anything is written, so one bad value leaves the store untouched."""
    return {key: validate_setting(key, value) for key, value in values.items()}


class MemorySettingsStore:
    """A SettingsStore kept in a dict: for tests, and to keep the interface honest about backends."""

    def __init__(self) -> None:
        self._data: dict[Scope, dict[str, SettingValue]] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the in-memory settings store is closed")

    async def get(self, scope: Scope) -> dict[str, SettingValue]:
        """The settings of one scope (empty when none are set)."""
        self._check_open()
        return dict(self._data.get(scope, {}))

    async def get_many(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, SettingValue]]:
        """The settings of several scopes; every requested scope is a key."""
        self._check_open()
        return {scope: dict(self._data.get(scope, {})) for scope in scopes}

    async def set_many(
        self, scope: Scope, values: Mapping[str, SettingValue], *, updated_by: int | None = None
    ) -> None:
        """Validate then store all `values` at once."""
        self._check_open()
        changes = _validated(values)
        if changes:
            self._data.setdefault(scope, {}).update(changes)

    async def unset(self, scope: Scope, key: str | None = None) -> int:
        """Remove `key` (or every key when None) from `scope`; return how many were removed."""
        self._check_open()
        current = self._data.get(scope, {})
        if key is None:
            removed = len(current)
            current.clear()
        else:
            removed = 1 if current.pop(check_key(key), None) is not None else 0
        if not current:
            self._data.pop(scope, None)
        return removed

    async def close(self) -> None:
        """Forget everything; later calls raise StoreError."""
        self._closed = True
        self._data.clear()


class SqliteSettingsStore:
    """A SettingsStore in one SQLite file, driven from a single dedicated worker thread."""

    def __init__(self, db: _SqliteFile, executor: ThreadPoolExecutor) -> None:
        """Use `await SqliteSettingsStore.open(path)` instead."""
        self._db = db
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> SqliteSettingsStore:
        """Open (creating folders and file if missing), check and migrate the database; raise StoreError if unusable."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ollacord-settings")
        db = _SqliteFile(Path(path))
        try:
            await asyncio.get_running_loop().run_in_executor(executor, db.open)
        except BaseException:
            # Queued after open, so the connection is closed even when open is cancelled while running.
            executor.submit(db.close)
            executor.shutdown(wait=False)
            raise
        return cls(db, executor)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    async def _call(self, job: Callable[[], T]) -> T:
        if self._closed:
            raise StoreError(f"the settings database {self._db.path} is closed", path=self._db.path)
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def get(self, scope: Scope) -> dict[str, SettingValue]:
        """The settings of one scope (empty when none are set)."""
        return (await self._call(functools.partial(self._db.read, [scope])))[scope]

    async def get_many(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, SettingValue]]:
        """The settings of several scopes from one read transaction; every requested scope is a key."""
        return await self._call(functools.partial(self._db.read, list(scopes)))

    async def set_many(
        self, scope: Scope, values: Mapping[str, SettingValue], *, updated_by: int | None = None
    ) -> None:
        """Validate then store all `values` in one transaction."""
        changes = _validated(values)
        if changes:
            await self._call(functools.partial(self._db.write, scope, changes, updated_by))

    async def unset(self, scope: Scope, key: str | None = None) -> int:
        """Remove `key` (or every key when None) from `scope` in one transaction; return rows removed."""
        if key is not None:
            check_key(key)
        return await self._call(functools.partial(self._db.delete, scope, key))

    async def run_job(self, action: str, job: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        """Run `job` with the connection in one transaction on the worker thread; for the file's other tables.

        `action` says what failed in the StoreError raised for an SQLite error ("could not <action>").
        """
        return await self._call(functools.partial(self._db.run, action, job, write))

    async def close(self) -> None:
        """Finish queued operations, close the connection and stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._db.close)
        finally:
            self._executor.shutdown(wait=False)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL); a second ROLLBACK would fail.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _error_code(exc: sqlite3.Error) -> int:
    # Primary result code: the low byte of the extended code.
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_AUTH, _SQLITE_NOTADB = 23, 26


class _SqliteFile:
    """The connection and every blocking operation on it; only ever called on the store's worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        # Warn once per bad row, not on every read of the channel.
        self._warned: set[tuple[str, int, str, str]] = set()

    # -- opening -------------------------------------------------------------------------------------------

    def open(self) -> None:
        self._check_file()
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._open_error(exc) from exc
        try:
            self._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._open_error(exc) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _check_file(self) -> None:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {path.parent} for the settings database {path}: "
                f"{exc.strerror or exc}. Check DATA_DIR and the folder's permissions.",
                path=path,
            ) from exc
        if path.is_dir():
            raise StoreError(
                f"the settings database {path} is a directory, not a file. "
                "Move it away (or point DATA_DIR elsewhere) and start ollacord again.",
                path=path,
            )
        # Reading the header ourselves gives the OS's reason (permissions, a symlink loop) where SQLite
        # would only say "unable to open database file".
        try:
            with path.open("rb") as file:
                header = file.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(
                f"cannot read the settings database {path}: {exc.strerror or exc}. "
                "Check the file's owner and permissions.",
                path=path,
            ) from exc
        if header and header != _SQLITE_MAGIC[: len(header)]:
            raise self._not_a_database()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise self._damaged(str(problems[0]) if problems else "no answer from quick_check")
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id not in (0, APPLICATION_ID):
            raise StoreError(
                f"{self.path} is an SQLite database of another program (application_id {application_id:#x}), "
                "not ollacord's settings. Move it away or point DATA_DIR elsewhere.",
                path=self.path,
            )
        # Checked before anything below writes to the file: a newer file must be left exactly as it is.
        self._check_version(conn.execute("PRAGMA user_version").fetchone()[0])
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("settings database %s: WAL journal not available, using %s", self.path, mode)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._migrate(conn)
        conn.execute("SELECT count(*) FROM settings").fetchone()

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the settings database {self.path} was written by a newer ollacord (schema version {version}; "
                f"this version knows up to {len(MIGRATIONS)}). Upgrade ollacord, or restore a backup "
                "made by this version.",
                path=self.path,
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            # Read again under the write lock: another process may have migrated since the first look.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            for migration in MIGRATIONS[version:]:
                for statement in migration:
                    conn.execute(statement)
            # Always written, even when nothing changed: it proves at start-up that the file is writable.
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS):d}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        if version < len(MIGRATIONS):
            log.info("settings database %s: schema upgraded from version %d to %d", self.path, version, len(MIGRATIONS))

    def _not_a_database(self) -> StoreError:
        return StoreError(
            f"the settings database {self.path} is not an SQLite database. Restore it from a backup, or move it "
            "away to start with no saved settings.",
            path=self.path,
        )

    def _damaged(self, detail: str) -> StoreError:
        return StoreError(
            f"the settings database {self.path} is damaged ({detail}). Restore it from a backup, or move it "
            "away (with its -wal and -shm files) to start with no saved settings.",
            path=self.path,
        )

    def _open_error(self, exc: sqlite3.Error) -> StoreError:
        code = _error_code(exc)
        if code == _SQLITE_NOTADB:
            return self._not_a_database()
        if code == _SQLITE_CORRUPT:
            return self._damaged(str(exc))
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return StoreError(
                f"the settings database {self.path} is locked by another program ({exc}). "
                "Is another ollacord running with the same DATA_DIR?",
                path=self.path,
            )
        if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_AUTH, _SQLITE_CANTOPEN):
            return StoreError(
                f"cannot open the settings database {self.path} for writing ({exc}). "
                "Check the file's and its folder's owner and permissions.",
                path=self.path,
            )
        if code == _SQLITE_FULL:
            return StoreError(f"the disk holding {self.path} is full ({exc}). Free some space.", path=self.path)
        if code == _SQLITE_IOERR:
            return StoreError(
                f"cannot read or write the settings database {self.path} ({exc}). Check the disk.",
                path=self.path,
            )
        return StoreError(f"cannot open the settings database {self.path}: {exc}", path=self.path)

    # -- operations ----------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the settings database {self.path} is not open", path=self.path)
        return self._conn

    def _failed(self, action: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"settings database {self.path}: could not {action} ({exc})", path=self.path)

    def read(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, SettingValue]]:
        conn = self._connection()
        result: dict[Scope, dict[str, SettingValue]] = {scope: {} for scope in scopes}
        try:
            # One read transaction so the layers of a resolution come from the same committed state.
            with _transaction(conn, "BEGIN"):
                for scope in result:
                    rows = conn.execute(
                        "SELECT key, value FROM settings WHERE scope_kind = ? AND scope_id = ? ORDER BY key",
                        (scope.kind.value, scope.id),
                    ).fetchall()
                    for key, raw in rows:
                        value = self._decode(scope, key, raw)
                        if value is not None:
                            result[scope][key] = value
        except sqlite3.Error as exc:
            raise self._failed("read settings", exc) from exc
        return result

    def _decode(self, scope: Scope, key: str, raw: str) -> SettingValue | None:
        return decode_stored_setting(scope, key, raw, where=self.path, warned=self._warned)

    def write(self, scope: Scope, values: Mapping[str, SettingValue], updated_by: int | None) -> None:
        conn = self._connection()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        rows = [
            (scope.kind.value, scope.id, key, json.dumps(value, allow_nan=False), now, updated_by)
            for key, value in values.items()
        ]
        try:
            with _transaction(conn):
                conn.executemany(
                    "INSERT INTO settings (scope_kind, scope_id, key, value, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope_kind, scope_id, key) DO UPDATE SET "
                    "value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    rows,
                )
        except sqlite3.Error as exc:
            raise self._failed("save settings", exc) from exc

    def delete(self, scope: Scope, key: str | None) -> int:
        conn = self._connection()
        try:
            with _transaction(conn):
                if key is None:
                    cursor = conn.execute(
                        "DELETE FROM settings WHERE scope_kind = ? AND scope_id = ?", (scope.kind.value, scope.id)
                    )
                else:
                    cursor = conn.execute(
                        "DELETE FROM settings WHERE scope_kind = ? AND scope_id = ? AND key = ?",
                        (scope.kind.value, scope.id, key),
                    )
                return cursor.rowcount
        except sqlite3.Error as exc:
            raise self._failed("remove settings", exc) from exc

    def run(self, action: str, job: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._connection()
        try:
            with _transaction(conn, "BEGIN IMMEDIATE" if write else "BEGIN"):
                return job(conn)
        except sqlite3.Error as exc:
            raise self._failed(action, exc) from exc

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
