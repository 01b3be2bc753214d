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
    for noisy in ("discord.http", "discord.gateway", "discord.client"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    logging.getLogger("discord.client").addFilter(_drop_voice_warnings)


def _drop_voice_warnings(record: logging.LogRecord) -> bool:
    """ollacord never joins voice, so discord.py's warnings about missing voice libraries are noise."""
    return "voice will NOT be supported" not in str(record.msg)
