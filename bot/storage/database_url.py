"""DATABASE_URL: which backend keeps the state, parsed once and shown without its password."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["Backend", "DatabaseUrl", "parse_database_url"]

DATABASE_FILENAME = "ollacord.sqlite3"  # the same name as bot.channel_settings.store.DATABASE_FILENAME
POSTGRES_SCHEMES = ("postgresql", "postgres")


class Backend(enum.StrEnum):
    """The two kinds of store."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed DATABASE_URL: an SQLite file, or a PostgreSQL connection string (`dsn`)."""

    backend: Backend
    sqlite_path: Path | None = None
    dsn: str | None = None

    @property
    def shown(self) -> str:
        """The URL to print or log: a PostgreSQL password is replaced by ***."""
        if self.backend is Backend.SQLITE:
            return f"sqlite:///{self.sqlite_path}"
        assert self.dsn is not None
        return redact(self.dsn)


def redact(dsn: str) -> str:
    """`dsn` with its password (in the user part or a `password=` parameter) replaced by ***."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        users, _, hosts = netloc.rpartition("@")
        user, colon, _ = users.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item for item in parts.query.split("&") if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def parse_database_url(raw: str, data_dir: Path) -> DatabaseUrl:
    """Unset or empty: `DATA_DIR/ollacord.sqlite3`. `sqlite:///relative` and `sqlite:////absolute` name a file;
    `postgresql://` (or `postgres://`) URLs go to PostgreSQL as they are. Raise ValueError with what is wrong."""
    text = raw.strip()
    if not text:
        return DatabaseUrl(Backend.SQLITE, sqlite_path=data_dir / DATABASE_FILENAME)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError("expected sqlite:///path/to/file.sqlite3 or postgresql://user:password@host:5432/database")
    if scheme == "sqlite":
        # sqlite:///data/x.sqlite3 is relative (three slashes), sqlite:////srv/x.sqlite3 absolute (four), as in
        # SQLAlchemy's URLs; "?" and "#" would be query and fragment there, so they are refused rather than guessed.
        if not rest.startswith("/") or rest == "/":
            raise ValueError("an SQLite URL names a file: sqlite:///relative/path or sqlite:////absolute/path")
        if any(ch in rest for ch in "?#"):
            raise ValueError("an SQLite URL takes no ? or # part")
        path = unquote(rest[1:])
        if path.endswith("/"):
            raise ValueError("an SQLite URL names a file, not a folder")
        return DatabaseUrl(Backend.SQLITE, sqlite_path=Path(path))
    if scheme in POSTGRES_SCHEMES:
        parts = urlsplit(text)
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("a PostgreSQL URL needs a host: postgresql://user:password@host:5432/database")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"the port is not a number ({exc})") from None
        return DatabaseUrl(Backend.POSTGRESQL, dsn=text)
    raise ValueError(f"unknown database kind {quote(scheme)!r}: use sqlite:///path or postgresql://…")
