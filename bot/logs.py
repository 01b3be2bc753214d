"""Logging set-up, done once by the composition root."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: int) -> None:
    """Log to stdout (systemd and Docker own files and rotation) at `level`."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py narrates every request and heartbeat at INFO/DEBUG; only its problems matter here.
    for noisy in ("discord.http", "discord.gateway", "discord.client", "discord.shard"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    logging.getLogger("discord.client").addFilter(_drop_voice_warnings)
    logging.getLogger("discord.client").addFilter(_one_line_reconnects)
    logging.getLogger("discord.shard").addFilter(_one_line_shard_reconnects)


def _one_line_reconnects(record: logging.LogRecord) -> bool:
    """discord.py logs every failed gateway reconnect with a traceback; during an outage one line each is enough."""
    if str(record.msg).startswith("Attempting a reconnect") and record.exc_info and record.exc_info[1]:
        error = record.exc_info[1]
        reason = f"{type(error).__name__}: {error}".replace("%", "%%")
        record.msg = f"lost the Discord gateway connection ({reason}); reconnecting in %.2f s"
        record.exc_info = None
        record.exc_text = None
    return True


def _one_line_shard_reconnects(record: logging.LogRecord) -> bool:
    """The same for the shards of the sharded client, which log their own reconnects and failed connects."""
    message = str(record.msg)
    if message.startswith(("Attempting a reconnect", "Failed to connect")) and record.exc_info:
        error = record.exc_info[1]
        reason = f"{type(error).__name__}: {error}".replace("%", "%%")
        if message.startswith("Attempting a reconnect"):
            record.msg = f"lost the Discord gateway connection of shard %s ({reason}); reconnecting in %.2f s"
        else:
            record.msg = f"could not connect shard %s to the Discord gateway ({reason}); trying again in 5 s"
        record.exc_info = None
        record.exc_text = None
    return True


def _drop_voice_warnings(record: logging.LogRecord) -> bool:
    """ollacord never joins voice, so discord.py's warnings about missing voice libraries are noise."""
    return "voice will NOT be supported" not in str(record.msg)
