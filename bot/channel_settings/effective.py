"""The settings in effect for one channel: stored layers plus the global defaults from .env."""

from __future__ import annotations

from bot.channel_settings.keys import SettingValue
from bot.channel_settings.resolve import EffectiveSettings, load_effective_settings
from bot.channel_settings.store import SettingsStore
from bot.config import Settings


def global_defaults(settings: Settings) -> dict[str, SettingValue | None]:
    """What applies where neither the channel nor the server set anything."""
    return {
        "model": settings.ollama_model,
        "system": settings.system_prompt,
        "history": settings.history_max_messages,
        "auto_reply": False,
        "embed_model": settings.embed_model,
    }


async def effective_settings(
    store: SettingsStore, settings: Settings, *, guild_id: int | None, channel_id: int, parent_id: int | None
) -> EffectiveSettings:
    """Settings for `channel_id`; when it is a thread, `parent_id` is the channel it inherits from."""
    if parent_id is None:
        return await load_effective_settings(
            store, guild_id=guild_id, channel_id=channel_id, thread_id=None, defaults=global_defaults(settings)
        )
    return await load_effective_settings(
        store, guild_id=guild_id, channel_id=parent_id, thread_id=channel_id, defaults=global_defaults(settings)
    )
