"""Who counts as the bot's admin: one rule for every command that checks it."""

from __future__ import annotations

from typing import Any

import discord

from bot.config import Settings


def listed_admin(interaction: discord.Interaction[Any], settings: Settings) -> bool:
    """Whether the user is in ADMIN_USER_IDS or holds a role in ADMIN_ROLE_IDS."""
    user = interaction.user
    if user.id in settings.admin_user_ids:
        return True
    return any(role.id in settings.admin_role_ids for role in getattr(user, "roles", []))


def is_bot_admin(interaction: discord.Interaction[Any], settings: Settings) -> bool:
    """A listed admin, or someone with the Administrator permission in this server."""
    if listed_admin(interaction, settings):
        return True
    return interaction.guild_id is not None and interaction.permissions.administrator
