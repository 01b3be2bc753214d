"""Configuration for several instances: DATABASE_URL, SHARD_COUNT / SHARD_IDS, INSTANCE_NAME, the lease."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings
from bot.leadership import lock_key_for
from bot.shards import ShardPlan, parse_shard_ids
from bot.storage.database_url import Backend, parse_database_url, redact


def settings(**env: str) -> Settings:
    return Settings.from_env({"DISCORD_TOKEN": "t", **env})


@pytest.mark.parametrize(
    ("raw", "backend", "where"),
    [
        ("", Backend.SQLITE, "data/ollacord.sqlite3"),
        ("sqlite:///state/bot.sqlite3", Backend.SQLITE, "state/bot.sqlite3"),
        ("sqlite:////srv/ollacord/bot.sqlite3", Backend.SQLITE, "/srv/ollacord/bot.sqlite3"),
        ("postgresql://bot:pw@db:5432/ollacord", Backend.POSTGRESQL, "postgresql://bot:pw@db:5432/ollacord"),
        (
            "postgres://bot@db/ollacord?sslmode=require",
            Backend.POSTGRESQL,
            "postgres://bot@db/ollacord?sslmode=require",
        ),
    ],
)
def test_database_url_forms(raw: str, backend: Backend, where: str) -> None:
    url = parse_database_url(raw, Path("data"))
    assert url.backend is backend
    assert (str(url.sqlite_path) if backend is Backend.SQLITE else url.dsn) == where


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("mysql://x/y", "unknown database kind"),
        ("sqlite://relative.db", "names a file"),
        ("sqlite:///", "names a file"),
        ("sqlite:///data/", "not a folder"),
        ("postgresql:///ollacord", "needs a host"),
        ("postgresql://db:port/x", "port is not a number"),
        ("just-a-path.sqlite3", "expected sqlite"),
    ],
)
def test_bad_database_urls_are_config_problems_without_the_password(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(DATABASE_URL=raw.replace("//db", "//u:hunter2@db"))
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_default_is_the_sqlite_file_in_data_dir() -> None:
    assert settings(DATA_DIR="/var/lib/x").database.sqlite_path == Path("/var/lib/x/ollacord.sqlite3")


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://bot:s3cret@db:5432/x", "postgresql://bot:***@db:5432/x"),
        ("postgresql://bot@db/x", "postgresql://bot@db/x"),
        (
            "postgresql://db/x?user=bot&password=s3cret&sslmode=require",
            "postgresql://db/x?user=bot&password=***&sslmode=require",
        ),
    ],
)
def test_passwords_are_never_shown(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


@pytest.mark.parametrize(
    ("env", "group", "share", "instances"),
    [
        ({}, "auto", 1.0, 1),
        ({"SHARD_COUNT": "4"}, "4:all", 1.0, 1),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,1"}, "4:0,1", 0.5, 2),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3, 1"}, "4:1,3", 0.5, 2),
        ({"SHARD_COUNT": "8", "SHARD_IDS": "0-2"}, "8:0,1,2", 0.375, 3),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1"}, "2:1", 0.5, 2),
    ],
)
def test_shard_plans(env: dict[str, str], group: str, share: float, instances: int) -> None:
    plan = settings(**env).shards
    assert plan.group == group
    assert plan.token_share == share
    assert plan.instances_sharing_token == instances


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "from 0 to SHARD_COUNT-1"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,0"}, "names a shard twice"),
        ({"SHARD_COUNT": "0"}, "between 1 and"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "one"}, "comma-separated shard ids"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3-1"}, "comma-separated shard ids"),
        ({"LEADER_LEASE_SECONDS": "0.1"}, "between 1 and 60"),
    ],
)
def test_bad_shard_settings(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        settings(**env)


def test_shard_ids_ranges() -> None:
    assert parse_shard_ids("0-2, 5,7-8") == (0, 1, 2, 5, 7, 8)
    with pytest.raises(ValueError, match="not a shard id"):
        parse_shard_ids("a")


def test_instance_name_defaults_to_the_host_name() -> None:
    assert settings().instance_name
    assert settings(INSTANCE_NAME="bot-a").instance_name == "bot-a"


def test_lock_keys_belong_to_one_bot_and_one_group_of_shards() -> None:
    bot_id = base64.b64encode(b"123456789012345678").decode().rstrip("=")
    token, reset_token = f"{bot_id}.GhIjKl.secret-one", f"{bot_id}.XyZaBc.secret-two"
    other_bot = base64.b64encode(b"876543210987654321").decode().rstrip("=") + ".a.b"
    assert lock_key_for(token, "auto") == lock_key_for(reset_token, "auto")  # a reset token keeps the lock
    assert lock_key_for(token, "auto") != lock_key_for(other_bot, "auto")
    assert lock_key_for(token, "2:0") != lock_key_for(token, "2:1")
    assert -(2**63) <= lock_key_for("not-a-real-token", "auto") < 2**63


def test_a_shard_plan_is_checked_when_built_directly() -> None:
    with pytest.raises(ValueError, match="needs SHARD_COUNT"):
        ShardPlan(None, (0,))
