"""Per-channel settings: keys and validation, layered resolution, and storage."""

from bot.channel_settings.keys import (
    OPTION_KEYS,
    SETTING_KEYS,
    InvalidSetting,
    SettingValue,
    check_key,
    describe_key,
    format_setting,
    parse_setting,
    validate_setting,
)
from bot.channel_settings.resolve import EffectiveSettings, Source, load_effective_settings, resolve_settings
from bot.channel_settings.store import (
    DATABASE_FILENAME,
    MemorySettingsStore,
    Scope,
    ScopeKind,
    SettingsStore,
    SqliteSettingsStore,
    StoreError,
)

__all__ = [
    "DATABASE_FILENAME",
    "OPTION_KEYS",
    "SETTING_KEYS",
    "EffectiveSettings",
    "InvalidSetting",
    "MemorySettingsStore",
    "Scope",
    "ScopeKind",
    "SettingValue",
    "SettingsStore",
    "Source",
    "SqliteSettingsStore",
    "StoreError",
    "check_key",
    "describe_key",
    "format_setting",
    "load_effective_settings",
    "parse_setting",
    "resolve_settings",
    "validate_setting",
]
