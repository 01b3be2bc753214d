"""Discord's failures, in the relay's terms: which errors pass, which refuse for good, and archived threads.

Shared by the reply sinks (bot/discord_io.py) and the admin commands. See discord-protocol.md §4.2, §5 and §12
for the behaviour these rely on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import discord

from bot.streaming import notes
from bot.streaming.relay import ReplyGone, ReplyRefused, ReplyWriteFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

# Discord error codes acted on (discord-protocol.md §4.2 and §12).
UNKNOWN_CHANNEL = 10003
UNKNOWN_WEBHOOK = 10015
THREAD_ARCHIVED = 50083
# Failures of a Discord request that are not an answer from Discord: they pass, so the write is tried again.
NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError, discord.RateLimited)


def describe_discord_error(exc: BaseException) -> str:
    """For logs: the HTTP status and Discord's error code and text (never message contents)."""
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}, Discord error {exc.code}: {exc.text or '-'}"
    return f"{type(exc).__name__}: {exc}"


class NoChannelAccess(ReplyGone):
    """Discord refuses the bot the channel (403, or 404 Unknown Channel)."""


class TokenRejected(Exception):
    """The interaction token no longer works (401/50027 once it expired)."""


def relay_error(exc: Exception) -> Exception:
    """The relay's view of a failed Discord write (see ReplyGone, ReplyRefused, ReplyWriteFailed)."""
    detail = describe_discord_error(exc)
    if isinstance(exc, discord.Forbidden) or (isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_CHANNEL):
        return NoChannelAccess(detail, reason=notes.LOST_ACCESS)
    if isinstance(exc, discord.NotFound):
        return ReplyGone(detail)  # the message was deleted
    if isinstance(exc, discord.HTTPException) and exc.status != 429 and exc.status < 500:
        return ReplyRefused(detail, reason=notes.discord_refused(exc.code, exc.text))
    # 5xx (discord.py raises 503 at once and others after its retries), 429 after 5 tries, network trouble.
    return ReplyWriteFailed(detail)


async def unarchive_thread(channel: object, guild: discord.Guild | None) -> bool:
    """Reopen an archived thread if the bot may (Manage Threads, or an unlocked thread); False if not."""
    channel_id = getattr(channel, "id", None)
    try:
        thread = channel if isinstance(channel, discord.Thread) else None
        if thread is None and guild is not None and isinstance(channel_id, int):
            fetched = await guild.fetch_channel(channel_id)  # not cached: Discord drops archived threads
            thread = fetched if isinstance(fetched, discord.Thread) else None
        if thread is None:
            return False
        await thread.edit(archived=False)
    except (discord.HTTPException, *NETWORK_ERRORS) as exc:
        log.warning("could not unarchive thread %s to go on with a reply (%s)", channel_id, describe_discord_error(exc))
        return False
    log.info("unarchived thread %s to go on with a reply", channel_id)
    return True


async def attempt_write(
    write: Callable[[], Awaitable[T]], *, channel: object, guild: discord.Guild | None, token_route: bool = False
) -> T:
    """Run one Discord write, reopening an archived thread once; failures become the relay's exceptions."""
    for may_unarchive in (True, False):
        try:
            return await write()
        except discord.HTTPException as exc:
            if token_route and (exc.status == 401 or exc.code == UNKNOWN_WEBHOOK):
                raise TokenRejected(describe_discord_error(exc)) from exc
            if exc.code != THREAD_ARCHIVED:
                raise relay_error(exc) from exc
            if not may_unarchive or not await unarchive_thread(channel, guild):
                raise ReplyGone(describe_discord_error(exc), reason=notes.ARCHIVED_THREAD) from exc
        except NETWORK_ERRORS as exc:
            raise ReplyWriteFailed(describe_discord_error(exc)) from exc
    raise AssertionError("unreachable")  # pragma: no cover
