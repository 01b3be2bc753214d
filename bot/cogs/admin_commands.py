"""Model management and status: /models, /pull, /delete, /status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.access import is_bot_admin
from bot.cogs.admin_hosts import (
    STATUS_UNREACHABLE_FOR_MEMBERS,
    host_label,
    models_by_host,
    pick_hosts,
    pull_text,
    status_line,
    unknown_host,
)
from bot.cogs.chat import DMS_OFF
from bot.discord_errors import NETWORK_ERRORS, describe_discord_error
from bot.discord_io import NO_PINGS, InteractionReplySink
from bot.ollama.catalog import describe_model, find_model, format_size
from bot.ollama.client import LoadedModel, ModelInfo
from bot.ollama.errors import ModelNotFound, OllamaError, OllamaUnreachable
from bot.ollama.pool_host import PoolHost
from bot.ollama.pull_progress import PullTracker
from bot.streaming.global_budget import Priority, request_priority
from bot.streaming.notes import describe_error
from bot.streaming.relay import FINAL_EDIT_RETRIES, Controls, ReplyGone, ReplyRefused, ReplyWriteFailed

if TYPE_CHECKING:
    from bot.app import OllacordBot
    from bot.services import Services

log = logging.getLogger(__name__)

ADMINS_ONLY = (
    "Only the bot's admins can do that: people with the **Administrator** permission, "
    "or listed in ADMIN_USER_IDS / ADMIN_ROLE_IDS."
)
# Where Ollama runs is the operator's business: members learn whether it answers, admins also see where.
OLLAMA_UNREACHABLE_FOR_MEMBERS = "⚠️ The bot can't reach its Ollama server right now. Please try again later."
__all__ = ["STATUS_UNREACHABLE_FOR_MEMBERS", "AdminCommands", "ConfirmDelete"]
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
        return is_bot_admin(interaction, self.services.settings)

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

    @app_commands.command(name="models", description="List the models installed on the Ollama server(s)")
    async def models(self, interaction: discord.Interaction[Any]) -> None:
        """Installed models with size, parameters, quantization, capabilities, whether loaded, and where."""
        if await self._refuse_dm(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        pool = self.services.ollama
        admin = self._is_admin(interaction)
        try:
            installed = await self.services.catalog.fresh()
            loaded = {m.name: m for m in await pool.ps()}
        except OllamaError as exc:
            await interaction.followup.send(self._error_for(interaction, exc), ephemeral=True)
            return
        if not installed:
            await interaction.followup.send(
                "No models are installed. An admin can add one with `/pull`.", ephemeral=True
            )
            return
        if pool.single:
            where = f" on {pool.base_url}" if admin else " installed"
            lines = [f"**{len(installed)} model(s){where}**"]
            lines += [_format_model(m, loaded) for m in installed]
        else:
            placed = models_by_host(installed, pool.snapshots(), admin=admin)
            lines = [f"**{len(installed)} model(s) on {len(pool.hosts)} Ollama hosts**"]
            for model in installed:
                having, loaded_on = placed[model.name]
                line = _format_model(model, {})
                line += f" · on {', '.join(having) or 'no host answering now'}"
                if loaded_on:
                    line += f" · 🟢 loaded on {', '.join(loaded_on)}"
                lines.append(line)
        text = "\n".join(lines)
        if len(text) > 2000:
            text = text[:1990].rsplit("\n", 1)[0] + "\n…"
        await interaction.followup.send(text, ephemeral=True)

    @app_commands.command(name="pull", description="Download a model onto the Ollama server(s) (admins)")
    @app_commands.describe(
        name="The model to pull, e.g. llama3.2 or qwen3:8b", host="One Ollama host (default: every host)"
    )
    @app_commands.guild_only()
    async def pull(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 200],
        host: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        """Pull a model onto every host (or one), showing live progress per host in a channel message."""
        arrived_at = self.services.clock.now()  # the interaction token's 15 minutes run from here
        if not self._is_admin(interaction):
            await interaction.response.send_message(ADMINS_ONLY, ephemeral=True)
            return
        channel = interaction.channel
        if not isinstance(channel, discord.abc.Messageable):
            await interaction.response.send_message("Use /pull in a text channel.", ephemeral=True)
            return
        targets = pick_hosts(self.services.ollama.hosts, host)
        if targets is None:
            await interaction.response.send_message(
                unknown_host(host or "", self.services.ollama.hosts), ephemeral=True
            )
            return
        clock = self.services.clock
        trackers = {target.url: PullTracker(name) for target in targets}
        outcomes: dict[str, str | None] = {}
        # A pull can outlast the interaction token (15 min): the sink then edits through the channel instead.
        sink = InteractionReplySink(
            interaction,
            key=interaction.id,
            clock=clock,
            arrived_at=arrived_at,
            token_lifetime=self.bot.interaction_token_lifetime,
        )
        on_hosts = f" on {len(targets)} hosts" if len(targets) > 1 else ""
        callback = await interaction.response.send_message(f"⬇️ Pulling `{name}`{on_hosts}…", allowed_mentions=NO_PINGS)
        message = callback.resource if callback is not None else None
        if not isinstance(message, discord.InteractionMessage):
            message = None
        log.info("model pull started model=%s hosts=%d by=%s", name, len(targets), interaction.user.id)

        def render(now: float) -> str:
            return pull_text(name, targets, trackers, outcomes, now)

        # Progress is shown by its own task: Discord being slow or refusing an edit must never stall or close
        # a pull stream, since Ollama cancels the download when its client goes away.
        shower = asyncio.create_task(self._show_pull_progress(sink, message, render), name=f"pull-progress-{name}")
        try:
            await asyncio.gather(*(self._pull_on(target, name, trackers[target.url], outcomes) for target in targets))
        finally:
            shower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shower
            for target in targets:
                outcomes.setdefault(target.url, "the pull was interrupted")
            await self._show_pull_outcome(sink, message, render(clock.now()))
        pulled = sum(1 for error in outcomes.values() if error is None)
        log.info("model pull finished model=%s ok=%d/%d", name, pulled, len(targets))

    async def _pull_on(
        self, target: PoolHost, name: str, tracker: PullTracker, outcomes: dict[str, str | None]
    ) -> None:
        """Pull onto one host to the end of its stream; its outcome goes into `outcomes` (None: success)."""
        clock = self.services.clock
        error: str | None = None
        try:
            async for progress in target.client.pull(name):
                tracker.update(progress, clock.now())
        except OllamaError as exc:
            error = getattr(exc, "message", None) or str(exc)
        outcomes[target.url] = error if error or tracker.done else "the pull ended early"
        if outcomes[target.url] is None:
            await self.services.ollama.refresh_models(target)  # route to it at once

    async def _show_pull_progress(
        self, sink: InteractionReplySink, message: discord.Message | None, render: Callable[[float], str]
    ) -> None:
        """Edit the progress message at a steady pace; failed edits are skipped, never raised."""
        clock, budget = self.services.clock, self.services.budget
        interval = max(self.services.settings.edit_interval * 1.5, budget.steady_interval)
        shown = ""
        while message is not None:
            await clock.sleep(interval)
            while (delay := budget.delay(sink.channel_key, clock.now(), needed=2)) > 0:
                await clock.sleep(delay)  # share the channel's write budget with streaming answers
            text = render(clock.now())
            if text == shown:
                continue
            budget.record(sink.channel_key, clock.now())
            try:
                with request_priority(Priority.STATUS):
                    await sink.edit(message, text, controls=Controls.NONE)
                shown = text
            except ReplyWriteFailed as exc:
                log.warning("could not show pull progress (%s); trying again with the next update", exc)
            except (ReplyGone, ReplyRefused) as exc:
                log.warning("stopped showing pull progress (%s); the outcome will still be shown", exc)
                return

    async def _show_pull_outcome(self, sink: InteractionReplySink, message: discord.Message | None, text: str) -> None:
        """Put the outcome into the progress message, or else post it as a message of its own."""
        if message is not None:
            for delay in (*FINAL_EDIT_RETRIES, None):
                try:
                    with request_priority(Priority.FINAL):
                        await sink.edit(message, text, controls=Controls.NONE)
                    return
                except ReplyWriteFailed as exc:
                    log.warning("could not show the pull outcome (%s)", exc)
                except (ReplyGone, ReplyRefused) as exc:
                    log.warning("could not show the pull outcome in its message (%s)", exc)
                    break
                if delay is not None:
                    await self.services.clock.sleep(delay)
        try:
            await sink.send(text, after=message, controls=Controls.NONE)
        except (ReplyGone, ReplyRefused, ReplyWriteFailed) as exc:
            log.error("could not show the outcome of a model pull anywhere (%s)", exc)

    @app_commands.command(name="delete", description="Delete a model from the Ollama server(s) (admins)")
    @app_commands.describe(name="The installed model to delete", host="One Ollama host (default: every host)")
    @app_commands.guild_only()
    async def delete(
        self, interaction: discord.Interaction[Any], name: str, host: app_commands.Range[str, 1, 200] | None = None
    ) -> None:
        """Delete a model (from every host, or one) after a confirmation click."""
        if not self._is_admin(interaction):
            await interaction.response.send_message(ADMINS_ONLY, ephemeral=True)
            return
        pool = self.services.ollama
        targets = pick_hosts(pool.hosts, host)
        if targets is None:
            await interaction.response.send_message(unknown_host(host or "", pool.hosts), ephemeral=True)
            return
        installed = await self.services.catalog.quick()
        found = find_model(installed, name)
        target = found.name if found else name
        view = ConfirmDelete(interaction.user.id)
        if pool.single:
            where = "the Ollama server"
        elif len(targets) == 1:
            where = f"Ollama host `{host_label(targets[0].url, targets[0].index, admin=True)}`"
        else:
            where = f"every Ollama host that has it ({len(targets)} hosts)"
        await interaction.response.send_message(
            f"Delete `{target}` from {where}? This frees its disk space; it can be pulled again later.",
            view=view,
            ephemeral=True,
        )
        await view.wait()
        if not view.confirmed:
            await self._show_delete_outcome(interaction, f"Kept `{target}`.")
            return
        if pool.single:
            try:
                await targets[0].client.delete(target)
            except OllamaError as exc:
                await self._show_delete_outcome(interaction, describe_error(exc))
                return
            targets[0].forget_model(target)
            log.info("model deleted model=%s by=%s", target, interaction.user.id)
            await self._show_delete_outcome(interaction, f"🗑️ Deleted `{target}`.")
            return
        results = await asyncio.gather(*(self._delete_on(h, target) for h in targets))
        await self._show_delete_outcome(interaction, _delete_text(target, targets, results))
        log.info("model deleted model=%s hosts=%d by=%s", target, sum(r is None for r in results), interaction.user.id)

    async def _delete_on(self, target: PoolHost, model: str) -> OllamaError | None:
        """Delete from one host; the error, or None once it is gone."""
        try:
            await target.client.delete(model)
        except OllamaError as exc:
            if isinstance(exc, ModelNotFound):
                target.forget_model(model)
            return exc
        target.forget_model(model)
        return None

    async def _show_delete_outcome(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Replace the confirmation; failing that, a message only the admin sees; failing that, a channel message.

        The deletion has happened (or failed) whatever Discord does with this edit.
        """
        try:
            await interaction.edit_original_response(content=text, view=None)
            return
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("could not show the /delete outcome in its message (%s)", describe_discord_error(exc))
        try:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
            return
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("could not send the /delete outcome as a followup (%s)", describe_discord_error(exc))
        if interaction.channel_id is None:
            log.error("could not show the /delete outcome anywhere")
            return
        channel = self.bot.get_partial_messageable(interaction.channel_id, guild_id=interaction.guild_id)
        try:
            await channel.send(text, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.error("could not show the /delete outcome anywhere (%s)", describe_discord_error(exc))

    @delete.autocomplete("name")
    async def delete_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Installed models matching what was typed."""
        models = await self.services.catalog.quick()
        matches = [m for m in models if current.lower() in m.name.lower()][:25]
        return [app_commands.Choice(name=describe_model(m)[:100], value=m.name[:100]) for m in matches]

    @pull.autocomplete("host")
    @delete.autocomplete("host")
    async def host_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """The Ollama hosts (for admins, who may see their addresses)."""
        if not self._is_admin(interaction):
            return []
        typed = current.lower()
        labels = [host_label(h.url, h.index, admin=True) for h in self.services.ollama.hosts]
        return [app_commands.Choice(name=label, value=label) for label in labels if typed in label.lower()][:25]

    @app_commands.command(name="status", description="Are the Ollama hosts up, what is loaded, how busy is the bot")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        """Every Ollama host (answering, version, loaded models, busy/capacity), streams and queue, latency, uptime."""
        if await self._refuse_dm(interaction):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        pool = self.services.ollama
        admin = self._is_admin(interaction)
        await pool.check_all()
        lines = ["**ollacord status**"]
        several = not pool.single
        lines += [status_line(h, i, admin=admin, several=several) for i, h in enumerate(pool.snapshots())]
        lines.append(f"Answers streaming: {self.services.answering.streaming} · waiting for Ollama: {pool.waiting}")
        latency = self.bot.latency
        lines.append(f"Discord latency: {latency * 1000:.0f} ms" if latency == latency else "Discord latency: -")
        lines.append(f"Uptime: {_uptime(time.monotonic() - self.started_at)}")
        lines.append(f"Default model: `{self.services.settings.ollama_model}`")
        text = "\n".join(lines)
        if len(text) > 2000:
            text = text[:1990].rsplit("\n", 1)[0] + "\n…"
        await interaction.followup.send(text, ephemeral=True)


def _delete_text(model: str, hosts: list[PoolHost], results: list[OllamaError | None]) -> str:
    """What /delete did on each host."""
    deleted = [host_label(h.url, h.index, admin=True) for h, r in zip(hosts, results, strict=True) if r is None]
    missing = [
        host_label(h.url, h.index, admin=True)
        for h, r in zip(hosts, results, strict=True)
        if isinstance(r, ModelNotFound)
    ]
    failed = [
        f"`{host_label(h.url, h.index, admin=True)}`: {describe_error(r).removeprefix('⚠️ ')}"
        for h, r in zip(hosts, results, strict=True)
        if r is not None and not isinstance(r, ModelNotFound)
    ]
    lines = []
    if deleted:
        lines.append(f"🗑️ Deleted `{model}` from {', '.join(f'`{d}`' for d in deleted)}.")
    if missing:
        lines.append(f"`{model}` was not installed on {', '.join(f'`{m}`' for m in missing)}.")
    if failed:
        lines.append("⚠️ Could not delete it from " + "; ".join(failed))
    return "\n".join(lines)[:2000]
