"""Stop and Regenerate buttons on replies; persistent, so clicks still arrive after a restart."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from bot.streaming.relay import Controls


class ButtonHandler(Protocol):
    """What the buttons call (the chat cog)."""

    async def stop_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """Stop the reply generated for `key`."""
        ...

    async def regenerate_reply(self, interaction: discord.Interaction[Any], key: int) -> None:
        """Re-run the conversation that ends in `key` and replace its answer."""
        ...


def _handler(interaction: discord.Interaction[Any]) -> ButtonHandler | None:
    return interaction.client.get_cog("ChatCog")  # type: ignore[no-any-return]


class StopButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ollacord:stop:(?P<key>[0-9]+)"):
    """Cancels a reply while it streams."""

    def __init__(self, key: int) -> None:
        super().__init__(
            discord.ui.Button(label="Stop", style=discord.ButtonStyle.danger, custom_id=f"ollacord:stop:{key}")
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> StopButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["key"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the chat cog."""
        handler = _handler(interaction)
        if handler is not None:
            await handler.stop_reply(interaction, self.key)


class RegenerateButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"ollacord:regenerate:(?P<key>[0-9]+)"):
    """Re-runs a finished reply's conversation and replaces the answer in place."""

    def __init__(self, key: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Regenerate",
                emoji="🔄",
                style=discord.ButtonStyle.secondary,
                custom_id=f"ollacord:regenerate:{key}",
            )
        )
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RegenerateButton:
        """Rebuild the button from its custom id."""
        return cls(int(match["key"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the chat cog."""
        handler = _handler(interaction)
        if handler is not None:
            await handler.regenerate_reply(interaction, self.key)


def controls_view(controls: Controls, key: int) -> discord.ui.View | None:
    """The buttons for a reply message (None: no buttons)."""
    if controls is Controls.NONE:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(StopButton(key) if controls is Controls.STOP else RegenerateButton(key))
    return view
