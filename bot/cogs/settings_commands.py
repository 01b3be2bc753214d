"""Slash commands for per-channel and per-server model settings: /model /system /set /settings /reset."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.channel_settings.effective import effective_settings
from bot.channel_settings.keys import SETTING_KEYS, InvalidSetting, describe_key, format_setting, parse_setting
from bot.channel_settings.resolve import EffectiveSettings
from bot.channel_settings.store import Scope, ScopeKind, StoreError
from bot.cogs.access import listed_admin
from bot.ollama.catalog import closest_models, describe_model, find_model
from bot.ollama.errors import OllamaError
from bot.ollama.think_gate import THINKING
from bot.streaming.notes import describe_error

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

ScopeChoice = Literal["channel", "server"]
# /model and /system have their own commands; /set covers the rest.
SET_KEYS = [key for key in SETTING_KEYS if key not in ("model", "system")]
MAX_CHOICES = 25
CHOICE_NAME_LIMIT = 100
# `think` goes only to models that can think (bot/ollama/think_gate.py); /settings says so.
THINK_NOT_APPLICABLE = "not applicable: `{model}` can't think, so `think` is not sent to it"
# /settings answers at once; a slow Ollama only costs the capability remark.
CAPABILITY_PATIENCE = 1.5
# A change the database did not take (each is one transaction: all of it or nothing was stored).
_DATABASE_DOWN = "the settings database can't be reached right now, so nothing was changed. Try again in a moment."
NOT_SAVED = f"❌ Couldn't save that: {_DATABASE_DOWN}"
NOT_RESET = f"❌ Couldn't reset that: {_DATABASE_DOWN}"


def _key_choices(keys: list[str]) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=f"{key}: {describe_key(key)}"[:CHOICE_NAME_LIMIT], value=key) for key in keys]


class SettingsCommands(commands.Cog):
    """View and change the model, system prompt and options of a channel or the whole server."""

    def __init__(self, bot: OllacordBot, services: Services) -> None:
        self.bot = bot
        self.services = services

    # ---- helpers

    def _target(self, interaction: discord.Interaction[Any], scope: ScopeChoice) -> Scope:
        if scope == "server":
            assert interaction.guild_id is not None
            return Scope(ScopeKind.GUILD, interaction.guild_id)
        assert interaction.channel_id is not None
        return Scope(ScopeKind.CHANNEL, interaction.channel_id)

    def _refusal(self, interaction: discord.Interaction[Any], scope: ScopeChoice) -> str | None:
        """Why this user may not change `scope` settings here, or None if they may."""
        if listed_admin(interaction, self.services.settings):
            return None
        permissions = interaction.permissions
        if scope == "server":
            if permissions.manage_guild:
                return None
            return "You need the **Manage Server** permission to change the server's default settings."
        if permissions.manage_channels:
            return None
        return "You need the **Manage Channels** permission in this channel to change its settings."

    async def _effective(self, interaction: discord.Interaction[Any]) -> EffectiveSettings:
        channel = interaction.channel
        parent_id = channel.parent_id if isinstance(channel, discord.Thread) else None
        assert interaction.channel_id is not None
        return await effective_settings(
            self.services.store,
            self.services.settings,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            parent_id=parent_id,
        )

    async def _store(
        self, interaction: discord.Interaction[Any], scope: ScopeChoice, values: dict[str, Any], done: str
    ) -> None:
        refusal = self._refusal(interaction, scope)
        if refusal:
            await _reply(interaction, refusal)
            return
        await _defer(interaction)
        try:
            await self.services.store.set_many(self._target(interaction, scope), values, updated_by=interaction.user.id)
        except StoreError as exc:
            log.warning("settings change not saved scope=%s keys=%s: %s", scope, ",".join(values), exc)
            await _reply(interaction, NOT_SAVED)
            return
        log.info(
            "settings changed scope=%s keys=%s guild=%s channel=%s by=%s",
            scope,
            ",".join(values),
            interaction.guild_id,
            interaction.channel_id,
            interaction.user.id,
        )
        await _reply(interaction, done)
        if "embed_model" in values:
            # Team knowledge embedded with the old model is embedded again (bot/cogs/knowledge_commands.py).
            self.bot.dispatch("embed_model_changed", interaction, scope)

    # ---- /model

    @app_commands.command(name="model", description="Show this channel's model, or set it")
    @app_commands.describe(name="An installed Ollama model", scope="Set it for this channel or as the server default")
    @app_commands.guild_only()
    async def model(
        self, interaction: discord.Interaction[Any], name: str | None = None, scope: ScopeChoice = "channel"
    ) -> None:
        """Show or set the model."""
        if name is None:
            effective = await self._effective(interaction)
            model = effective.model
            await _reply(interaction, f"Model here: `{model}` (from {effective.sources['model'].value} settings).")
            return
        refusal = self._refusal(interaction, scope)
        if refusal:
            await _reply(interaction, refusal)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            installed = await self.services.catalog.fresh()
        except OllamaError as exc:
            await _reply(interaction, f"Can't check that model right now. {describe_error(exc)}")
            return
        found = find_model(installed, name)
        if found is None:
            close = closest_models(installed, name)
            hint = f" Did you mean {', '.join(f'`{n}`' for n in close)}?" if close else ""
            await _reply(
                interaction,
                f"`{name}` is not installed on the Ollama server.{hint} (`ollama pull {name}` installs it.)",
            )
            return
        where = "the server default" if scope == "server" else "this channel"
        await self._store(interaction, scope, {"model": found.name}, f"Model for {where} is now `{found.name}`.")

    @model.autocomplete("name")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Installed models matching what was typed, from a short cache."""
        models = await self.services.catalog.quick()
        typed = current.lower()
        matches = [m for m in models if typed in m.name.lower()]
        return [
            app_commands.Choice(name=describe_model(m)[:CHOICE_NAME_LIMIT], value=m.name[:CHOICE_NAME_LIMIT])
            for m in matches[:MAX_CHOICES]
        ]

    # ---- /system

    @app_commands.command(name="system", description="Show, set or clear this channel's system prompt")
    @app_commands.describe(
        prompt="The new system prompt", clear="Remove the system prompt override", scope="This channel or the server"
    )
    @app_commands.guild_only()
    async def system(
        self,
        interaction: discord.Interaction[Any],
        prompt: str | None = None,
        clear: bool = False,
        scope: ScopeChoice = "channel",
    ) -> None:
        """Show, set or clear the system prompt."""
        if clear:
            await self._unset(interaction, scope, "system")
            return
        if prompt is None:
            effective = await self._effective(interaction)
            shown = format_setting("system", effective.values["system"])
            await _reply(interaction, f"System prompt here (from {effective.sources['system'].value}):\n{shown}")
            return
        try:
            value = parse_setting("system", prompt)
        except InvalidSetting as exc:
            await _reply(interaction, str(exc))
            return
        where = "the server default" if scope == "server" else "this channel"
        await self._store(interaction, scope, {"system": value}, f"System prompt for {where} updated.")

    # ---- /set

    @app_commands.command(name="set", description="Set a generation option for this channel")
    @app_commands.describe(option="Which option", value="The new value", scope="This channel or the server")
    @app_commands.choices(option=_key_choices(SET_KEYS))
    @app_commands.guild_only()
    async def set_option(
        self, interaction: discord.Interaction[Any], option: str, value: str, scope: ScopeChoice = "channel"
    ) -> None:
        """Set one option after validating it."""
        try:
            parsed = parse_setting(option, value)
        except InvalidSetting as exc:
            await _reply(interaction, str(exc))
            return
        where = "the server default" if scope == "server" else "this channel"
        await self._store(
            interaction, scope, {option: parsed}, f"`{option}` for {where} is now {format_setting(option, parsed)}."
        )

    # ---- /settings

    @app_commands.command(name="settings", description="Show every setting in effect here and where it comes from")
    @app_commands.guild_only()
    async def show_settings(self, interaction: discord.Interaction[Any]) -> None:
        """List effective values with their source."""
        effective = await self._effective(interaction)
        lines = ["**Settings in effect here**"]
        for key in SETTING_KEYS:
            shown = format_setting(key, effective.values[key])
            if key == "system" and "\n" in shown:
                shown = shown.split("\n", 1)[0] + " …"
            line = f"`{key}` = {shown} · *{effective.sources[key].value}*"
            if key == "think" and not await self._can_think(effective.model):
                line += f" · {THINK_NOT_APPLICABLE.format(model=effective.model)}"
            lines.append(line)
        await _reply(interaction, "\n".join(lines)[:2000])

    async def _can_think(self, model: str) -> bool:
        """Whether `model` can think; True when Ollama cannot say quickly (no remark rather than a wrong one)."""
        try:
            async with asyncio.timeout(CAPABILITY_PATIENCE):
                return THINKING in await self.services.catalog.capabilities(model)
        except (OllamaError, TimeoutError):
            return True

    # ---- /reset

    @app_commands.command(name="reset", description="Remove an override (or all of them) from this channel")
    @app_commands.describe(option="Which setting (all of them if left out)", scope="This channel or the server")
    @app_commands.choices(option=_key_choices(list(SETTING_KEYS)))
    @app_commands.guild_only()
    async def reset(
        self, interaction: discord.Interaction[Any], option: str | None = None, scope: ScopeChoice = "channel"
    ) -> None:
        """Remove overrides so the next layer's values apply."""
        await self._unset(interaction, scope, option)

    async def _unset(self, interaction: discord.Interaction[Any], scope: ScopeChoice, key: str | None) -> None:
        refusal = self._refusal(interaction, scope)
        if refusal:
            await _reply(interaction, refusal)
            return
        await _defer(interaction)
        try:
            removed = await self.services.store.unset(self._target(interaction, scope), key)
        except StoreError as exc:
            log.warning("settings reset not saved scope=%s key=%s: %s", scope, key, exc)
            await _reply(interaction, NOT_RESET)
            return
        where = "the server defaults" if scope == "server" else "this channel"
        what = f"`{key}`" if key else "all settings"
        if removed:
            log.info(
                "settings reset scope=%s key=%s guild=%s channel=%s",
                scope,
                key,
                interaction.guild_id,
                interaction.channel_id,
            )
            await _reply(interaction, f"Reset {what} for {where}; inherited values apply again.")
            if key in (None, "embed_model"):
                self.bot.dispatch("embed_model_changed", interaction, scope)
        else:
            await _reply(interaction, f"Nothing to reset: {what} had no override for {where}.")


async def _defer(interaction: discord.Interaction[Any]) -> None:
    """Acknowledge before a database write, so a slow database can't outlast Discord's 3 s to answer."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


async def _reply(interaction: discord.Interaction[Any], text: str) -> None:
    """An ephemeral answer, whether or not the interaction was deferred."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)
