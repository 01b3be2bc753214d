"""Start-up configuration: every setting parsed and validated once into one typed object."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bot.ollama.host import MAX_HOST_CAPACITY, HostSpec, parse_ollama_hosts
from bot.shards import MAX_SHARDS, ShardPlan, parse_shard_ids
from bot.storage.database_url import DatabaseUrl, parse_database_url, redact

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
# How often every Ollama host of a pool is checked (version, models installed and loaded).
DEFAULT_OLLAMA_CHECK_INTERVAL = 30.0
DEFAULT_MODEL = "llama3.2"
# The embedding model team knowledge uses where no channel or server sets `embed_model`.
DEFAULT_EMBED_MODEL = "nomic-embed-text"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# After the grace period, cut-short replies get this long for their final edits and the bot for its
# disconnect, whatever Discord is doing; the process then exits.
SHUTDOWN_FINAL_EDITS_SECONDS = 2.0
# The default grace plus the final edits stays under the 10 s after which a plain `docker stop` kills
# the container, so the bot always gets to make its final edits.
DEFAULT_SHUTDOWN_GRACE = 7.0
# Active/standby (PostgreSQL only): an active instance that cannot confirm its lock for this long has
# stopped writing to Discord; a standby takes over within about this plus the time to connect (see
# bot/leadership.py for the timeline). Short enough for the 15 s failover target, long enough that a
# busy database does not make instances hand over for nothing.
DEFAULT_LEADER_LEASE = 5.0

T = TypeVar("T")


class ConfigError(Exception):
    """One or more configuration problems, all reported together."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def __str__(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"ollacord cannot start, the configuration has {len(self.problems)} problem(s):\n{lines}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ollacord reads from the environment (and `.env`)."""

    discord_token: str
    ollama_host: str = DEFAULT_OLLAMA_HOST  # the first (often the only) host of ollama_hosts
    ollama_hosts: tuple[HostSpec, ...] = (HostSpec(DEFAULT_OLLAMA_HOST),)
    ollama_check_interval: float = DEFAULT_OLLAMA_CHECK_INTERVAL
    ollama_model: str = DEFAULT_MODEL
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    edit_interval: float = 1.0
    first_token_timeout: float = 600.0
    stream_inactivity_timeout: float = 120.0
    history_max_messages: int = 25
    history_max_chars: int = 24_000
    system_prompt: str | None = None
    admin_user_ids: frozenset[int] = frozenset()
    admin_role_ids: frozenset[int] = frozenset()
    allow_dms: bool = False
    max_concurrent_requests: int = 1
    user_requests_per_minute: int = 10
    max_image_mb: float = 10.0
    max_text_file_kb: int = 200
    image_memory_mb: float = 64.0
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    warm_up: bool = False
    warm_up_keep_alive: str = "1h"
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE
    embed_model: str = DEFAULT_EMBED_MODEL
    knowledge_max_file_mb: float = 10.0
    knowledge_max_files: int = 100
    knowledge_max_chunks: int = 20_000
    knowledge_min_similarity: float = 0.5
    knowledge_excerpts: int = 4
    usage_retention_days: int = 90
    database_url: str = ""  # raw DATABASE_URL; see `database`
    shards: ShardPlan = field(default_factory=ShardPlan)
    instance_name: str = ""  # empty: this machine's host name
    leader_lease_seconds: float = DEFAULT_LEADER_LEASE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate `env`; raise ConfigError listing every problem at once."""
        problems: list[str] = []

        def get(key: str) -> str:
            return env.get(key, "").strip()

        def parsed(key: str, default: T, convert: Callable[[str], T], describe: str) -> T:
            raw = get(key)
            if not raw:
                return default
            try:
                return convert(raw)
            except ValueError as exc:
                detail = str(exc) if isinstance(exc, _RangeError) else describe
                problems.append(f"{key}={raw!r}: {detail}")
                return default

        token = get("DISCORD_TOKEN")
        if not token:
            problems.append(
                "DISCORD_TOKEN is not set: copy the bot token from the Discord developer portal "
                "(Applications > your app > Bot > Reset Token) into .env"
            )
        elif token.lower().startswith("bot "):
            token = token[4:].strip()

        hosts: tuple[HostSpec, ...] = (HostSpec(DEFAULT_OLLAMA_HOST),)
        raw_host = get("OLLAMA_HOST")
        if raw_host:
            try:
                hosts = parse_ollama_hosts(raw_host)
            except ValueError as exc:
                problems.append(f"OLLAMA_HOST={raw_host!r}: {exc}")

        model = get("OLLAMA_MODEL") or DEFAULT_MODEL
        if any(ch.isspace() for ch in model):
            problems.append(f"OLLAMA_MODEL={model!r}: a model name has no spaces (e.g. llama3.2 or qwen3:8b)")

        embed_model = get("OLLAMA_EMBED_MODEL") or DEFAULT_EMBED_MODEL
        if any(ch.isspace() for ch in embed_model):
            problems.append(f"OLLAMA_EMBED_MODEL={embed_model!r}: a model name has no spaces (e.g. nomic-embed-text)")

        level = (get("LOG_LEVEL") or "INFO").upper()
        if level not in LOG_LEVELS:
            problems.append(f"LOG_LEVEL={get('LOG_LEVEL')!r}: use one of {', '.join(LOG_LEVELS)}")
            level = "INFO"

        database_url = get("DATABASE_URL")
        try:
            parse_database_url(database_url, Path(get("DATA_DIR") or "data"))
        except ValueError as exc:
            problems.append(f"DATABASE_URL={_shown_url(database_url)!r}: {exc}")
            database_url = ""

        shard_count = parsed("SHARD_COUNT", None, _bounded(int, 1, MAX_SHARDS), "a whole number of shards")
        shard_ids = parsed("SHARD_IDS", None, parse_shard_ids, "comma-separated shard ids, e.g. 0,1 or 0-3")
        shards = ShardPlan()
        try:
            shards = ShardPlan(shard_count, shard_ids)
        except ValueError as exc:
            problems.append(f"SHARD_COUNT={get('SHARD_COUNT')!r}, SHARD_IDS={get('SHARD_IDS')!r}: {exc}")

        settings = cls(
            discord_token=token,
            ollama_host=hosts[0].url,
            ollama_hosts=hosts,
            ollama_check_interval=parsed(
                "OLLAMA_CHECK_INTERVAL",
                DEFAULT_OLLAMA_CHECK_INTERVAL,
                _bounded(float, 1.0, 3600.0),
                "a number of seconds between 1 and 3600",
            ),
            ollama_model=model,
            data_dir=Path(get("DATA_DIR") or "data"),
            log_level=level,
            edit_interval=parsed(
                "EDIT_INTERVAL", 1.0, _bounded(float, 0.2, 10.0), "a number of seconds between 0.2 and 10"
            ),
            first_token_timeout=parsed(
                "OLLAMA_FIRST_TOKEN_TIMEOUT", 600.0, _bounded(float, 1.0, 86_400.0), "a number of seconds"
            ),
            stream_inactivity_timeout=parsed(
                "OLLAMA_STREAM_TIMEOUT", 120.0, _bounded(float, 1.0, 86_400.0), "a number of seconds"
            ),
            history_max_messages=parsed("HISTORY_MAX_MESSAGES", 25, _bounded(int, 1, 500), "a whole number"),
            history_max_chars=parsed("HISTORY_MAX_CHARS", 24_000, _bounded(int, 200, 2_000_000), "a whole number"),
            system_prompt=get("SYSTEM_PROMPT").replace("\\n", "\n") or None,
            admin_user_ids=parsed("ADMIN_USER_IDS", frozenset(), _id_set, "a comma-separated list of numeric ids"),
            admin_role_ids=parsed("ADMIN_ROLE_IDS", frozenset(), _id_set, "a comma-separated list of numeric ids"),
            allow_dms=parsed("ALLOW_DMS", False, _switch, "true or false"),
            max_concurrent_requests=parsed(
                "MAX_CONCURRENT_REQUESTS",
                1,
                _bounded(int, 1, MAX_HOST_CAPACITY),
                f"a whole number from 1 to {MAX_HOST_CAPACITY}",
            ),
            user_requests_per_minute=parsed(
                "USER_REQUESTS_PER_MINUTE", 10, _bounded(int, 0, 10_000), "a whole number (0 = no limit)"
            ),
            max_image_mb=parsed("MAX_IMAGE_MB", 10.0, _bounded(float, 0.0, 100.0), "a number of megabytes"),
            max_text_file_kb=parsed("MAX_TEXT_FILE_KB", 200, _bounded(int, 0, 10_000), "a number of kilobytes"),
            image_memory_mb=parsed("IMAGE_MEMORY_MB", 64.0, _bounded(float, 1.0, 65_536.0), "a number of megabytes"),
            health_port=parsed("HEALTH_PORT", None, _port, "a port number from 1 to 65535 (empty = off)"),
            health_host=get("HEALTH_HOST") or "127.0.0.1",
            warm_up=parsed("WARM_UP", False, _switch, "true or false"),
            warm_up_keep_alive=get("WARM_UP_KEEP_ALIVE") or "1h",
            shutdown_grace_seconds=parsed(
                "SHUTDOWN_GRACE_SECONDS", DEFAULT_SHUTDOWN_GRACE, _bounded(float, 0.0, 600.0), "a number of seconds"
            ),
            embed_model=embed_model,
            knowledge_max_file_mb=parsed(
                "KNOWLEDGE_MAX_FILE_MB", 10.0, _bounded(float, 0.001, 1024.0), "a number of megabytes"
            ),
            knowledge_max_files=parsed("KNOWLEDGE_MAX_FILES", 100, _bounded(int, 1, 100_000), "a whole number"),
            knowledge_max_chunks=parsed("KNOWLEDGE_MAX_CHUNKS", 20_000, _bounded(int, 1, 10_000_000), "a whole number"),
            knowledge_min_similarity=parsed(
                "KNOWLEDGE_MIN_SIMILARITY", 0.5, _bounded(float, -1.0, 1.0), "a number from -1 to 1"
            ),
            knowledge_excerpts=parsed("KNOWLEDGE_EXCERPTS", 4, _bounded(int, 0, 50), "a whole number (0 = off)"),
            usage_retention_days=parsed(
                "USAGE_RETENTION_DAYS", 90, _bounded(int, 1, 3650), "a whole number of days from 1 to 3650"
            ),
            database_url=database_url,
            shards=shards,
            instance_name=get("INSTANCE_NAME") or socket.gethostname() or "ollacord",
            leader_lease_seconds=parsed(
                "LEADER_LEASE_SECONDS", DEFAULT_LEADER_LEASE, _bounded(float, 1.0, 60.0), "a number of seconds"
            ),
        )
        if problems:
            raise ConfigError(problems)
        return settings

    def host_capacities(self) -> tuple[tuple[str, int], ...]:
        """Every Ollama host with the requests it serves at once: its own `*N`, else MAX_CONCURRENT_REQUESTS."""
        return tuple((host.url, host.capacity or self.max_concurrent_requests) for host in self.ollama_hosts)

    @property
    def database(self) -> DatabaseUrl:
        """Where the state lives: DATABASE_URL, or the SQLite file in DATA_DIR when it is unset."""
        return parse_database_url(self.database_url, self.data_dir)

    @property
    def log_level_number(self) -> int:
        """The numeric logging level."""
        return logging.getLevelNamesMapping()[self.log_level]


def _shown_url(raw: str) -> str:
    """A DATABASE_URL for an error message, without its password."""
    return redact(raw) if "://" in raw else raw


def _port(raw: str) -> int | None:
    if raw in ("0", "off"):
        return None
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ValueError("out of range")
    return port


def _switch(raw: str) -> bool:
    word = raw.lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a switch")


def _id_set(raw: str) -> frozenset[int]:
    ids = [part.strip() for part in raw.replace(" ", ",").split(",") if part.strip()]
    if not all(part.isdigit() for part in ids):
        raise ValueError("not a list of ids")
    return frozenset(int(part) for part in ids)


class _RangeError(ValueError):
    """A value that parsed but lies outside its allowed range."""


def _bounded(convert: Callable[[str], T], low: float, high: float) -> Callable[[str], T]:
    def check(raw: str) -> T:
        value = convert(raw)
        if not low <= value <= high:  # type: ignore[operator]
            raise _RangeError(f"must be between {low:g} and {high:g}")
        return value

    return check
