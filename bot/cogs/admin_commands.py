"""Model management and status: /models, /pull, /delete, /status."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.chat import DMS_OFF
from bot.discord_io import NO_PINGS
from bot.ollama.catalog import describe_model, find_model, format_size
from bot.ollama.client import LoadedModel, ModelInfo
from bot.ollama.errors import OllamaError, OllamaUnreachable
from bot.ollama.pull_progress import PullTracker
from bot.streaming.notes import describe_error

if TYPE_CHECKING:
    from bot.app import OllacordBot, Services

log = logging.getLogger(__name__)

ADMINS_ONLY = (
    "Only the bot's admins can do that: people with the **Administrator** permission, "
    "or listed in ADMIN_USER_IDS / ADMIN_ROLE_IDS."
)
# Where Ollama runs is the operator's business: members learn whether it answers, admins also see where.
OLLAMA_UNREACHABLE_FOR_MEMBERS = "⚠️ The bot can't reach its Ollama server right now. Please try again later."
STATUS_UNREACHABLE_FOR_MEMBERS = "🔴 Ollama is not answering right now (the bot's admins see why in `/status`)."
CAPABILITY_BADGES = {"vision": "👁️ vision", "thinking": "💭 thinking", "tools": "🔧 tools"}
CONFIRM_SECONDS = 60.0


def _format_model(model: ModelInfo, loaded: dict[str, LoadedModel]) -> str:
    parts = [f"`{model.name}`", format_size(model.size), model.parameter_size, model.quantization_level]
    parts += [CAPABILITY_BADGES[c] for c in model.capabilities if c in CAPABILITY_BADGES]
    if model.name in loaded:
        parts.append("🟢 loaded")
    return " · ".join(p for p in parts if p)


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


class ConfirmDelete(discord.ui.View):
    """Delete-model confirmation, usable only by the person who asked."""

    def __init__(self, requester_id: int) -> None:
        super().__init__(timeout=CONFIRM_SECONDS)
        self.requester_id = requester_id
        self.confirmed: bool | None = None

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        """Only the requester may answer."""
        return interaction.user.id == self.requester_id

    @discord.ui.button(label="Delete", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        """Go ahead."""
        self.confirmed = True
        await interaction.response.defer()
        self.stop()

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]) -> None:
        """Keep the model."""
        self.confirmed = False
        await interaction.response.defer()
        self.stop()


class AdminCommands(commands.Cog):
    """What a self-hoster needs to run the bot from Discord."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services
        self.started_at = time.monotonic()

    def _is_admin(self, interaction: discord.Interaction[Any]) -> bool:
        settings = self.services.settings
        user = interaction.user
        if user.id in settings.admin_user_ids:
            return True
        if any(role.id in settings.admin_role_ids for role in getattr(user, "roles", [])):
            return True
        return interaction.guild_id is not None and interaction.permissions.administrator

    async def _refuse_dm(self, interaction: discord.Interaction[Any]) -> bool:
        """In a DM, commands follow ALLOW_DMS like conversations do; True if this one was refused."""
        if interaction.guild_id is not None or self.services.settings.allow_dms:
            return False
        await interaction.response.send_message(DMS_OFF, ephemeral=True)
        return True

    def _error_for(self, interaction: discord.Interaction[Any], error: OllamaError) -> str:
        """describe_error, without the Ollama URL for people who are not admins."""
        if isinstance(error, OllamaUnreachable) and not self._is_admin(interaction):
            return OLLAMA_UNREACHABLE_FOR_MEMBERS
        return describe_error(error)

    @app_commands.command(name="models", description="List the models installed on the Ollama server")
    async def models(self, interaction: discord.Interaction[Any]) -> None:
        """Installed models with size, parameters, quantization, capabilities and whether loaded."""
        if await self._refuse_dm(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            installed = await self.services.catalog.fresh()
            loaded = {m.name: m for m in await self.services.ollama.ps()}
        except OllamaError as exc:
            await interaction.followup.send(self._error_for(interaction, exc), ephemeral=True)
            return
        if not installed:
            await interaction.followup.send(
                "No models are installed. An admin can add one with `/pull`.", ephemeral=True
            )
            return
        where = f" on {self.services.ollama.base_url}" if self._is_admin(interaction) else " installed"
        lines = [f"**{len(installed)} model(s){where}**"]
        lines += [_format_model(m, loaded) for m in installed]
        text = "\n".join(lines)
        if len(text) > 2000:
            text = text[:1990].rsplit("\n", 1)[0] + "\n…"
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="pull", description="Download a model onto the Ollama server (admins)")
    @app_commands.describe(name="The model to pull, e.g. llama3.2 or qwen3:8b")
    @app_commands.guild_only()
    async def pull(self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 200]) -> None:
        """Pull a model, showing live progress in a channel message."""
        if not self._is_admin(interaction):
            await interaction.response.send_message(ADMINS_ONLY, ephemeral=True)
            return
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            await interaction.response.send_message("Use /pull in a text channel.", ephemeral=True)
            return
        clock = self.services.clock
        tracker = PullTracker(name)
        # A pull can outlast an interaction token (15 min), so progress goes into a normal message.
        await interaction.response.send_message(f"⬇️ Pulling `{name}`…", allowed_mentions=NO_PINGS)
        message = await interaction.original_response()
        log.info("model pull started model=%s by=%s", name, interaction.user.id)
        error: str | None = None
        last_edit = clock.now()
        shown = ""
        try:
            async for progress in self.services.ollama.pull(name):
                now = clock.now()
                tracker.update(progress, now)
                if now - last_edit >= self.services.settings.edit_interval * 1.5:
                    text = tracker.render(now)
                    if text != shown:
                        await message.edit(content=text)
                        shown, last_edit = text, now
        except OllamaError as exc:
            error = getattr(exc, "message", None) or str(exc)
        finally:
            final = tracker.finished(error if error or tracker.done else "the pull ended early")
            await message.edit(content=final)
        log.info("model pull finished model=%s ok=%s", name, error is None and tracker.done)

    @app_commands.command(name="delete", description="Delete a model from the Ollama server (admins)")
    @app_commands.describe(name="The installed model to delete")
    @app_commands.guild_only()
    async def delete(self, interaction: discord.Interaction[Any], name: str) -> None:
        """Delete a model after a confirmation click."""
        if not self._is_admin(interaction):
            await interaction.response.send_message(ADMINS_ONLY, ephemeral=True)
            return
        installed = await self.services.catalog.quick()
        found = find_model(installed, name)
        target = found.name if found else name
        view = ConfirmDelete(interaction.user.id)
        await interaction.response.send_message(
            f"Delete `{target}` from the Ollama server? This frees its disk space; it can be pulled again later.",
            view=view,
            ephemeral=True,
        )
        await view.wait()
        if not view.confirmed:
            await interaction.edit_original_response(content=f"Kept `{target}`.", view=None)
            return
        try:
            await self.services.ollama.delete(target)
        except OllamaError as exc:
            await interaction.edit_original_response(content=describe_error(exc), view=None)
            return
        log.info("model deleted model=%s by=%s", target, interaction.user.id)
        await interaction.edit_original_response(content=f"🗑️ Deleted `{target}`.", view=None)

    @delete.autocomplete("name")
    async def delete_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Installed models matching what was typed."""
        models = await self.services.catalog.quick()
        matches = [m for m in models if current.lower() in m.name.lower()][:25]
        return [app_commands.Choice(name=describe_model(m)[:100], value=m.name[:100]) for m in matches]

    @app_commands.command(name="status", description="Is Ollama up, what is loaded, how busy is the bot")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        """Ollama reachability and version, loaded models, streams and queue, Discord latency, uptime."""
        if await self._refuse_dm(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        ollama = self.services.ollama
        admin = self._is_admin(interaction)
        lines = ["**ollacord status**"]
        try:
            version = await ollama.version()
            loaded = await ollama.ps()
            lines.append(f"🟢 Ollama {version} at {ollama.base_url}" if admin else f"🟢 Ollama {version}")
            names = ", ".join(f"`{m.name}`" for m in loaded) or "none"
            lines.append(f"Loaded models: {names}")
        except OllamaError as exc:
            if admin:
                lines.append(f"🔴 Ollama unreachable at {ollama.base_url}: {describe_error(exc).removeprefix('⚠️ ')}")
            elif isinstance(exc, OllamaUnreachable):
                lines.append(STATUS_UNREACHABLE_FOR_MEMBERS)
            else:
                lines.append(f"🔴 {describe_error(exc).removeprefix('⚠️ ')}")
        chat = self.bot.get_cog("ChatCog")
        streams = getattr(chat, "streaming", 0)
        queue = getattr(chat, "queue", None)
        waiting = queue.waiting if queue is not None else 0
        lines.append(f"Answers streaming: {streams} · waiting for Ollama: {waiting}")
        latency = self.bot.latency
        lines.append(f"Discord latency: {latency * 1000:.0f} ms" if latency == latency else "Discord latency: -")
        lines.append(f"Uptime: {_uptime(time.monotonic() - self.started_at)}")
        lines.append(f"Default model: `{self.services.settings.ollama_model}`")
        await interaction.followup.send("\n".join(lines), ephemeral=True)
