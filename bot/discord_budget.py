"""Every bot-token request discord.py makes goes through the process-wide Discord budget.

The budget is kept at discord.py's HTTP layer (`HTTPClient.request`) rather than only in the relay,
because that client is shared by everything the bot does with its token: message posts and edits,
typing indicators (and the task discord.py starts to repeat them), history reads, message fetches,
thread creation, reactions, command replies in channels. Any of them can push the bot over Discord's
global limit, and a global 429 stalls every channel at once. Interaction callbacks and the interaction
webhook routes (`/ask` answers edited through their token) go through discord.py's webhook adapter
instead, so they stay outside the budget, as Discord exempts them.

Priorities come from a context variable the callers set (see global_budget.request_priority); a typing
indicator is left out, rather than delayed, when the budget has no room for it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord.http

from bot.streaming.global_budget import GlobalBudget, Priority, current_priority, take_prepaid

log = logging.getLogger(__name__)


def _exempt(route: discord.http.Route) -> bool:
    """Interaction routes, which Discord leaves out of the global limit (discord.py normally sends them elsewhere)."""
    return route.path.startswith("/interactions/") or "{webhook_token}" in route.path


def limit_requests(http: discord.http.HTTPClient, budget: GlobalBudget) -> None:
    """Make every request of `http` (a discord.py HTTP client) take a slot of `budget` first."""
    send: Callable[..., Awaitable[Any]] = http.request

    @functools.wraps(send)
    async def request(route: discord.http.Route, **kwargs: Any) -> Any:
        if _exempt(route):
            return await send(route, **kwargs)
        priority = current_priority()
        # A slot the relay took beforehand, where giving up the wait was still safe (see relay._Relay._stream).
        slot = take_prepaid()
        if slot is None and priority is Priority.TYPING:
            slot = budget.try_acquire(priority)
            if slot is None:
                budget.dropped += 1
                log.debug("typing indicator left out: Discord's global budget is tight")
                return None
        elif slot is None:
            slot = await budget.acquire(priority)
        try:
            return await send(route, **kwargs)
        finally:
            slot.release()

    http.request = request  # type: ignore[method-assign]
