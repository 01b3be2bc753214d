"""The discord.py client: holds the injected services and loads the cogs."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_budget import limit_requests
from bot.discord_io import INTERACTION_TOKEN_LIFETIME
from bot.metrics import Metrics
from bot.services import Services

log = logging.getLogger(__name__)


def bot_intents() -> discord.Intents:
    """Default intents plus message content, which reply chains need."""
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


# discord.py logs its 429 retries from two loggers: bot-token routes in discord.http, and the interaction
# and webhook routes (callbacks, followups, @original edits) in discord.webhook.async_.
RATE_LIMIT_LOGGERS = ("discord.http", "discord.webhook.async_")


class DiscordRateLimitCounter(logging.Filter):
    """Counts the 429s discord.py reports (it retries them itself and only logs a warning)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def filter(self, record: logging.LogRecord) -> bool:
        """Count the record if it is a rate-limit warning; never drop it."""
        if record.levelno >= logging.WARNING and "rate limited" in str(record.msg):
            self._metrics.discord_rate_limits.inc()
        return True


class OllacordBot(commands.Bot):
    """The bot: no text-prefix commands, only the chat listener and slash commands."""

    def __init__(
        self,
        services: Services,
        *,
        sync_commands: bool = True,
        interaction_token_lifetime: float = INTERACTION_TOKEN_LIFETIME,
        **client_options: Any,
    ) -> None:
        client_options.setdefault("intents", bot_intents())
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            # Model output must never ping anyone, on creates and on edits alike.
            allowed_mentions=discord.AllowedMentions.none(),
            **client_options,
        )
        self.services = services
        if services.budget.shared is not None:
            limit_requests(self.http, services.budget.shared)  # Discord's global limit, for every bot-token request
        self.sync_commands = sync_commands
        # Discord's 15 minutes, after which an interaction token stops working; tests shorten it.
        self.interaction_token_lifetime = interaction_token_lifetime
        self._rate_limit_counter = DiscordRateLimitCounter(services.metrics)
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        """Load the cogs and publish the slash commands."""
        from bot.cogs.admin_commands import AdminCommands
        from bot.cogs.answer_records import AnswerRecords
        from bot.cogs.chat import ChatCog
        from bot.cogs.knowledge_commands import KnowledgeCommands
        from bot.cogs.message_actions import MessageActions
        from bot.cogs.reply_buttons import RegenerateButton, StopButton
        from bot.cogs.settings_commands import SettingsCommands
        from bot.cogs.summarize_commands import SummaryCommands
        from bot.cogs.usage_commands import UsageCommands

        # Registered by pattern, so buttons on messages from before a restart still reach the cog.
        self.add_dynamic_items(StopButton, RegenerateButton)
        chat = ChatCog(self, self.services)
        await self.add_cog(chat)
        metrics = self.services.metrics
        answering = self.services.answering
        metrics.queue_depth.set_function(lambda: float(answering.ollama.waiting))
        metrics.active_streams.set_function(lambda: float(answering.streaming))
        for name in RATE_LIMIT_LOGGERS:
            logging.getLogger(name).addFilter(self._rate_limit_counter)
        await self.add_cog(SettingsCommands(self, self.services))
        await self.add_cog(AdminCommands(self, self.services))
        await self.add_cog(AnswerRecords(self, self.services))
        if self.services.knowledge is not None:
            await self.add_cog(KnowledgeCommands(self, self.services, self.services.knowledge))
        # After the chat cog: they register how Regenerate remakes their answers with it.
        await self.add_cog(SummaryCommands(self, self.services))
        await self.add_cog(MessageActions(self, self.services))
        await self.add_cog(UsageCommands(self, self.services))
        if self.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d slash commands", len(synced))

    async def on_ready(self) -> None:
        """Say who we are once connected."""
        user = self.user
        log.info("connected to Discord as %s (id %s) in %d server(s)", user, user.id if user else "?", len(self.guilds))

    async def close(self) -> None:
        """Disconnect, and stop counting this client's rate limits."""
        for name in RATE_LIMIT_LOGGERS:
            logging.getLogger(name).removeFilter(self._rate_limit_counter)
        await super().close()

    def gateway_connected(self) -> bool:
        """Whether the gateway connection is up and ready."""
        return self.is_ready() and not self.is_closed() and self.ws is not None and self.ws.open

    async def shutdown(self, grace: float) -> None:
        """Stop taking new work, let streaming replies finish or cut them short, then disconnect."""
        await self.services.answering.drain(grace)
        await self.close()

    async def on_message(self, message: discord.Message, /) -> None:
        """Text-prefix commands are not used; the chat cog listens to messages itself."""

    async def on_app_command_error(
        self, interaction: discord.Interaction[discord.Client], error: app_commands.AppCommandError
    ) -> None:
        """Log the failure and tell the user briefly, never with a traceback."""
        name = interaction.command.name if interaction.command else "?"
        log.error("slash command /%s failed", name, exc_info=error)
        text = "Sorry, something went wrong with that command. The details are in the bot's log."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        # Reporting fails the way the command may have: Discord refuses (an expired or answered interaction)
        # or the network does (aiohttp errors, which discord.py passes on). Anything escaping here would only
        # resurface as "Task exception was never retrieved", with a second traceback.
        except (discord.DiscordException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("could not tell the user that /%s failed: %s: %s", name, type(exc).__name__, exc)


class ShardedOllacordBot(OllacordBot, commands.AutoShardedBot):
    """The bot on discord.py's automatic sharding: the shards Discord asks for, or SHARD_COUNT / SHARD_IDS.

    Without a shard count, discord.py asks Discord (GET /gateway/bot) and runs that many shards in this
    process; one shard when Discord says one is enough. Pass `shard_count` and `shard_ids` to serve a
    part of them.
    """

    def gateway_connected(self) -> bool:
        """Whether every shard's gateway connection is up and ready."""
        shards = self.shards
        return (
            self.is_ready()
            and not self.is_closed()
            and bool(shards)
            and not any(s.is_closed() for s in shards.values())
        )
