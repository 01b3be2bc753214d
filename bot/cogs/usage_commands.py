"""/usage: who uses the GPUs. Admins see the server's figures; everyone may see their own.

The figures come from bot/usage/ (every finished answer, added up per day); this cog also prunes the
days past USAGE_RETENTION_DAYS once a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.access import is_bot_admin
from bot.cogs.upkeep import Upkeep
from bot.usage.ledger import Period, UsageReport
from bot.usage.report import MAX_ROWS, render_usage
from bot.usage.store import Dimension

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

PRUNE_EVERY = 24 * 3600.0  # seconds
OTHERS_ADMINS_ONLY = (
    "Only the bot's admins can see someone else's usage (people with the **Administrator** permission, "
    "or listed in ADMIN_USER_IDS / ADMIN_ROLE_IDS). Use /usage without `user` to see your own."
)
HOSTS_ADMINS_ONLY = "Only the bot's admins can see usage by Ollama host. Use /usage without `by: host`."
CANNOT_READ_USAGE = "I can't read the usage figures right now (the bot's log says why). Please try again later."
YOUR_USAGE = "Your usage"


class UsageCommands(commands.Cog):
    """The /usage command and the daily pruning of old usage figures."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self._upkeep = Upkeep("usage-upkeep", self._prune_daily)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Start the daily pruning (once)."""
        self._upkeep.start()

    async def cog_unload(self) -> None:
        """Stop the pruning with the bot."""
        await self._upkeep.stop()

    async def _prune_daily(self) -> None:
        while True:
            await self.services.usage.prune()
            await asyncio.sleep(PRUNE_EVERY)

    def _is_admin(self, interaction: discord.Interaction[Any]) -> bool:
        return is_bot_admin(interaction, self.services.settings)

    @app_commands.command(name="usage", description="Tokens, answers and time used with the bot in this server")
    @app_commands.describe(
        period="Today, the last 7 days or the last 30 days (UTC days)",
        by="Break it down by user, channel, model or Ollama host",
        user="Someone's usage (admins only; everyone may see their own)",
    )
    @app_commands.guild_only()
    async def usage(
        self,
        interaction: discord.Interaction[Any],
        period: Literal["day", "week", "month"] = "week",
        by: Literal["user", "channel", "model", "host"] | None = None,
        user: discord.Member | None = None,
    ) -> None:
        """A compact table of usage: the server's for admins, your own for everyone else."""
        guild = interaction.guild
        if guild is None:
            return
        admin = self._is_admin(interaction)
        if user is not None and user.id != interaction.user.id and not admin:
            await interaction.response.send_message(OTHERS_ADMINS_ONLY, ephemeral=True)
            return
        if by == "host" and not admin:
            await interaction.response.send_message(HOSTS_ADMINS_ONLY, ephemeral=True)
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        whose_id = user.id if user is not None else (None if admin else interaction.user.id)
        dimension = Dimension(by) if by is not None else (Dimension.USER if whose_id is None else Dimension.MODEL)
        chosen = Period(period)
        try:
            report = await self.services.usage.report(guild_id=guild.id, period=chosen, by=dimension, user_id=whose_id)
        except Exception:
            log.exception("could not read the usage figures")
            await interaction.edit_original_response(content=CANNOT_READ_USAGE)
            return
        names = await self._names(guild, report)
        if whose_id is None:
            whose = guild.name
        elif whose_id == interaction.user.id and user is None:
            whose = YOUR_USAGE
        else:
            whose = names.get(whose_id) or await self._user_name(guild, whose_id)
        text = render_usage(
            report,
            whose=whose,
            period=chosen,
            name_of=lambda by, key: names.get(key) or _fallback_name(by, key),
        )
        await interaction.edit_original_response(content=text)

    async def _names(self, guild: discord.Guild, report: UsageReport) -> dict[int | str, str]:
        """Readable names for the users or channels in the rows that will be shown."""
        names: dict[int | str, str] = {}
        for total in report.totals[:MAX_ROWS]:
            key = total.key
            if not isinstance(key, int):
                continue
            if report.by is Dimension.USER:
                names[key] = await self._user_name(guild, key)
            elif report.by is Dimension.CHANNEL:
                channel = guild.get_channel_or_thread(key)
                if channel is not None:
                    names[key] = f"#{channel.name}"
        return names

    async def _user_name(self, guild: discord.Guild, user_id: int) -> str:
        """A user's display name: from the cache, else asked of Discord (the members intent is off)."""
        found = guild.get_member(user_id) or self.bot.get_user(user_id)
        if found is None:
            with contextlib.suppress(discord.HTTPException):
                found = await self.bot.fetch_user(user_id)
        return found.display_name if found is not None else _fallback_name(Dimension.USER, user_id)


def _fallback_name(by: Dimension, key: int | str) -> str:
    if by is Dimension.USER:
        return f"user {key}"
    if by is Dimension.CHANNEL:
        return f"#{key}"
    return str(key)
