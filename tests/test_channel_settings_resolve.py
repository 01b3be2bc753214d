"""Layered resolution: thread, then parent channel, then server, then the .env defaults."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bot.channel_settings.keys import SETTING_KEYS, SettingValue
from bot.channel_settings.resolve import EffectiveSettings, Source, load_effective_settings, resolve_settings
from bot.channel_settings.store import MemorySettingsStore, Scope

DEFAULTS: dict[str, SettingValue | None] = {"model": "llama3.2", "history": 25}

LAYER_VALUES = {
    Source.THREAD: "thread-model",
    Source.CHANNEL: "channel-model",
    Source.SERVER: "server-model",
    Source.DEFAULT: "default-model",
}


def _layers(*present: Source) -> dict[str, Mapping[str, SettingValue]]:
    layer = {source: ({"model": LAYER_VALUES[source]} if source in present else {}) for source in Source}
    return {
        "thread": layer[Source.THREAD],
        "channel": layer[Source.CHANNEL],
        "server": layer[Source.SERVER],
        "defaults": layer[Source.DEFAULT],
    }


# Which layers set the key -> which one wins.
PRECEDENCE = [
    ((Source.THREAD, Source.CHANNEL, Source.SERVER, Source.DEFAULT), Source.THREAD),
    ((Source.CHANNEL, Source.SERVER, Source.DEFAULT), Source.CHANNEL),
    ((Source.SERVER, Source.DEFAULT), Source.SERVER),
    ((Source.DEFAULT,), Source.DEFAULT),
    ((Source.THREAD, Source.DEFAULT), Source.THREAD),
    ((Source.THREAD, Source.SERVER), Source.THREAD),
    ((Source.CHANNEL, Source.DEFAULT), Source.CHANNEL),
    ((Source.SERVER,), Source.SERVER),
]


@pytest.mark.parametrize(("present", "winner"), PRECEDENCE)
def test_precedence(present: tuple[Source, ...], winner: Source) -> None:
    layers = _layers(*present)
    settings = resolve_settings(
        thread=layers["thread"], channel=layers["channel"], server=layers["server"], defaults=layers["defaults"]
    )
    assert settings.values["model"] == LAYER_VALUES[winner]
    assert settings.sources["model"] is winner
    assert settings.model == LAYER_VALUES[winner]


def test_not_in_a_thread_skips_the_thread_layer() -> None:
    settings = resolve_settings(thread=None, channel={"temperature": 0.2}, server={"top_k": 10}, defaults=DEFAULTS)
    assert settings.sources["temperature"] is Source.CHANNEL
    assert settings.sources["top_k"] is Source.SERVER
    assert settings.sources["model"] is Source.DEFAULT
    assert Source.THREAD not in settings.sources.values()


def test_each_key_resolves_independently() -> None:
    settings = resolve_settings(
        thread={"temperature": 0.1},
        channel={"temperature": 0.9, "system": "channel prompt", "auto_reply": True},
        server={"system": "server prompt", "model": "qwen3:8b", "seed": 7},
        defaults=DEFAULTS,
    )
    expected = {
        "temperature": (0.1, Source.THREAD),
        "system": ("channel prompt", Source.CHANNEL),
        "auto_reply": (True, Source.CHANNEL),
        "model": ("qwen3:8b", Source.SERVER),
        "seed": (7, Source.SERVER),
        "history": (25, Source.DEFAULT),
        "top_p": (None, Source.DEFAULT),
    }
    for key, (value, source) in expected.items():
        assert settings.values[key] == value, key
        assert settings.sources[key] is source, key


def test_every_key_is_present() -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={"model": "llama3.2"})
    assert set(settings.values) == set(SETTING_KEYS)
    assert set(settings.sources) == set(SETTING_KEYS)
    unset = [key for key in SETTING_KEYS if key != "model"]
    assert all(settings.values[key] is None for key in unset)
    assert all(settings.sources[key] is Source.DEFAULT for key in unset)


def test_none_in_defaults_means_unset() -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={"model": "m", "system": None})
    assert settings.system is None
    assert settings.values["system"] is None


def test_ignores_keys_it_does_not_know() -> None:
    settings = resolve_settings(thread=None, channel={"colour": "red"}, server={}, defaults=DEFAULTS)
    assert "colour" not in settings.values


def test_result_is_read_only() -> None:
    channel: dict[str, SettingValue] = {"temperature": 0.5}
    settings = resolve_settings(thread=None, channel=channel, server={}, defaults=DEFAULTS)
    channel["temperature"] = 1.5
    assert settings.values["temperature"] == 0.5
    with pytest.raises(TypeError):
        settings.values["temperature"] = 1.0  # type: ignore[index]


def test_options_holds_only_the_set_option_keys() -> None:
    settings = resolve_settings(
        thread={"num_predict": -1},
        channel={"temperature": 0.3, "think": "on", "history": 5},
        server={"seed": 0, "top_k": 40},
        defaults={"model": "m", "num_ctx": 8192},
    )
    assert settings.options == {"num_predict": -1, "temperature": 0.3, "seed": 0, "top_k": 40, "num_ctx": 8192}


def test_options_empty_when_nothing_set() -> None:
    assert resolve_settings(thread=None, channel={}, server={}, defaults=DEFAULTS).options == {}


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("off", False), ("on", True), ("low", "low"), ("medium", "medium"), ("high", "high"), (None, None), (True, True)],
)
def test_think_property(stored: SettingValue | None, expected: bool | str | None) -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={"model": "m", "think": stored})
    assert settings.think == expected
    assert type(settings.think) is type(expected)


@pytest.mark.parametrize("stored", ["5m", "-1m", 300, 2.5, -1, 0, None])
def test_keep_alive_property(stored: SettingValue | None) -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={"model": "m", "keep_alive": stored})
    assert settings.keep_alive == stored
    assert type(settings.keep_alive) is type(stored)


def test_scalar_properties() -> None:
    settings = resolve_settings(
        thread=None, channel={"system": "Be brief.", "auto_reply": True}, server={}, defaults=DEFAULTS
    )
    assert settings.model == "llama3.2"
    assert settings.system == "Be brief."
    assert settings.history == 25
    assert settings.auto_reply is True


def test_unset_properties() -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={"model": "m"})
    assert settings.system is None
    assert settings.history is None
    assert settings.auto_reply is False
    assert settings.keep_alive is None
    assert settings.think is None


def test_channel_can_turn_off_what_the_server_turned_on() -> None:
    settings = resolve_settings(thread=None, channel={"auto_reply": False}, server={"auto_reply": True}, defaults={})
    assert settings.auto_reply is False
    assert settings.sources["auto_reply"] is Source.CHANNEL


def test_model_property_needs_a_model_somewhere() -> None:
    settings = resolve_settings(thread=None, channel={}, server={}, defaults={})
    with pytest.raises(LookupError, match="no model"):
        _ = settings.model


def test_effective_settings_requires_every_key() -> None:
    with pytest.raises(ValueError, match="missing"):
        EffectiveSettings(values={"model": "m"}, sources={"model": Source.DEFAULT})


async def test_load_effective_settings_reads_the_layers_from_a_store() -> None:
    store = MemorySettingsStore()
    await store.set_many(Scope.guild(1), {"model": "server-model", "temperature": 0.1, "history": 50})
    await store.set_many(Scope.channel(10), {"temperature": 0.5, "system": "channel prompt"})
    await store.set_many(Scope.channel(100), {"temperature": 0.9})
    await store.set_many(Scope.channel(11), {"temperature": 1.9})  # another channel: must not leak in

    in_thread = await load_effective_settings(store, guild_id=1, channel_id=10, thread_id=100, defaults=DEFAULTS)
    assert in_thread.values["temperature"] == 0.9
    assert in_thread.sources["temperature"] is Source.THREAD
    assert in_thread.system == "channel prompt"
    assert in_thread.model == "server-model"
    assert in_thread.history == 50

    in_channel = await load_effective_settings(store, guild_id=1, channel_id=10, thread_id=None, defaults=DEFAULTS)
    assert in_channel.values["temperature"] == 0.5
    assert in_channel.sources["temperature"] is Source.CHANNEL

    in_dm = await load_effective_settings(store, guild_id=None, channel_id=500, thread_id=None, defaults=DEFAULTS)
    assert in_dm.model == "llama3.2"
    assert in_dm.sources["model"] is Source.DEFAULT
    await store.close()
