"""Layered resolution of channel settings: thread, then its parent channel, then the server, then the defaults."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bot.channel_settings.keys import OPTION_KEYS, SETTING_KEYS, SettingValue
from bot.channel_settings.store import Scope, SettingsStore

__all__ = ["EffectiveSettings", "Source", "load_effective_settings", "resolve_settings"]


class Source(enum.StrEnum):
    """Which layer an effective value came from."""

    THREAD = "thread"
    CHANNEL = "channel"
    SERVER = "server"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """The settings that apply to one channel or thread, each with the layer it came from."""

    values: Mapping[str, SettingValue | None]
    sources: Mapping[str, Source]

    def __post_init__(self) -> None:
        missing = [key for key in SETTING_KEYS if key not in self.values or key not in self.sources]
        if missing:
            raise ValueError(f"EffectiveSettings is missing {', '.join(missing)}")
        # Read-only copies: one resolution may be shared by a whole reply, nobody should edit it underneath.
        object.__setattr__(self, "values", MappingProxyType({key: self.values[key] for key in SETTING_KEYS}))
        object.__setattr__(self, "sources", MappingProxyType({key: Source(self.sources[key]) for key in SETTING_KEYS}))

    @property
    def model(self) -> str:
        """The model to answer with."""
        value = self.values["model"]
        if not isinstance(value, str) or not value:
            raise LookupError("no model is configured at any layer (the defaults must provide one)")
        return value

    @property
    def system(self) -> str | None:
        """The system prompt, or None to use the model's own."""
        value = self.values["system"]
        return value if isinstance(value, str) else None

    @property
    def options(self) -> dict[str, int | float]:
        """The Ollama `options` that are set, ready to send."""
        options: dict[str, int | float] = {}
        for key in OPTION_KEYS:
            value = self.values[key]
            if isinstance(value, int | float) and not isinstance(value, bool):
                options[key] = value
        return options

    @property
    def think(self) -> bool | str | None:
        """Ollama's `think` field: False for "off", True for "on", a level string, or None when unset."""
        value = self.values["think"]
        if value is None or isinstance(value, bool):
            return value
        if value == "off":
            return False
        if value == "on":
            return True
        return str(value)

    @property
    def keep_alive(self) -> int | float | str | None:
        """Ollama's `keep_alive` field, or None when unset."""
        value = self.values["keep_alive"]
        return None if isinstance(value, bool) else value

    @property
    def history(self) -> int | None:
        """How many earlier messages to send as context, or None when unset."""
        value = self.values["history"]
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def auto_reply(self) -> bool:
        """Whether to answer every message without a mention (off when unset)."""
        return self.values["auto_reply"] is True

    @property
    def show_thinking(self) -> bool:
        """Whether to show a thinking model's reasoning (hidden when unset)."""
        return self.values["show_thinking"] is True

    def reply_ping(self, *, asked: bool) -> bool:
        """Whether an answer's first message notifies the person it replies to (Discord's reply ping).

        Unset, it follows whether they `asked` the bot: someone who mentioned it, replied to it or talks in
        its thread or DM waits for an answer (a cold model load can take minutes) and wants to hear of it;
        someone auto_reply answered unasked did not address the bot, so a notification would be noise.
        """
        value = self.values["reply_ping"]
        return value if isinstance(value, bool) else asked


def resolve_settings(
    *,
    thread: Mapping[str, SettingValue] | None,
    channel: Mapping[str, SettingValue],
    server: Mapping[str, SettingValue],
    defaults: Mapping[str, SettingValue | None],
) -> EffectiveSettings:
    """Pick each key from the first layer that sets it: thread, channel, server, defaults."""
    layers: list[tuple[Source, Mapping[str, SettingValue | None]]] = []
    if thread is not None:
        layers.append((Source.THREAD, thread))
    layers += [(Source.CHANNEL, channel), (Source.SERVER, server), (Source.DEFAULT, defaults)]

    values: dict[str, SettingValue | None] = {}
    sources: dict[str, Source] = {}
    for key in SETTING_KEYS:
        values[key] = None
        sources[key] = Source.DEFAULT
        for source, layer in layers:
            value = layer.get(key)
            if value is not None:
                values[key] = value
                sources[key] = source
                break
    return EffectiveSettings(values=values, sources=sources)


async def load_effective_settings(
    store: SettingsStore,
    *,
    guild_id: int | None,
    channel_id: int,
    thread_id: int | None,
    defaults: Mapping[str, SettingValue | None],
) -> EffectiveSettings:
    """Read the layers for a message in one store call and resolve them.

    `channel_id` is the channel itself, or the thread's parent when `thread_id` is given;
    `guild_id` is None in DMs (no server layer).
    """
    thread_scope = Scope.channel(thread_id) if thread_id is not None else None
    channel_scope = Scope.channel(channel_id)
    guild_scope = Scope.guild(guild_id) if guild_id is not None else None
    scopes = [scope for scope in (thread_scope, channel_scope, guild_scope) if scope is not None]
    layers = await store.get_many(scopes)
    return resolve_settings(
        thread=layers[thread_scope] if thread_scope is not None else None,
        channel=layers[channel_scope],
        server=layers[guild_scope] if guild_scope is not None else {},
        defaults=defaults,
    )
