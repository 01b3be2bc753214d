"""A message kept up to date while slow work runs, without the work ever waiting on Discord."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import discord

log = logging.getLogger(__name__)

# At most every this many seconds, whatever EDIT_INTERVAL says (interaction webhooks are rate limited too).
PROGRESS_MIN_SECONDS = 0.2


class LiveStatus:
    """One message kept up to date from a background loop while work runs (the latest text wins).

    The work never waits on Discord: it only sets the text. When an edit fails (e.g. the interaction
    token expired after 15 minutes) the loop stops editing, and the final text goes to the channel.
    """

    def __init__(
        self,
        edit: Callable[[str], Awaitable[object]],
        *,
        interval: float,
        fallback: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._edit = edit
        self._fallback = fallback
        self._interval = max(interval, PROGRESS_MIN_SECONDS)
        self._text: str | None = None
        self._shown: str | None = None
        self._broken = False
        self._task: asyncio.Task[None] | None = None

    def show(self, text: str) -> None:
        """Show `text` at the next edit."""
        self._text = text
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="knowledge-progress")

    async def _loop(self) -> None:
        while not self._broken:
            await asyncio.sleep(self._interval)
            await self._push()

    async def _push(self) -> bool:
        text = self._text
        if text is None or text == self._shown or self._broken:
            return not self._broken
        try:
            await self._edit(text)
        except discord.HTTPException as exc:
            self._broken = True
            log.warning("could not update a progress message (HTTP %s, code %s)", exc.status, exc.code)
            return False
        self._shown = text
        return True

    async def finish(self, text: str) -> None:
        """Stop the loop and show the outcome: in the message, or in the channel if the message can't be edited."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._text = text
        if await self._push() or self._fallback is None:
            return
        try:
            await self._fallback(text)
        except discord.HTTPException as exc:
            log.warning("could not show an outcome anywhere (HTTP %s, code %s)", exc.status, exc.code)
