"""Parsing, validation, formatting and descriptions of the per-channel setting keys."""

from __future__ import annotations

import math

import pytest

from bot.channel_settings.keys import (
    OPTION_KEYS,
    SETTING_KEYS,
    SYSTEM_PREVIEW_CHARS,
    InvalidSetting,
    SettingValue,
    check_key,
    describe_key,
    format_setting,
    parse_setting,
    validate_setting,
)

VALID: list[tuple[str, str, SettingValue]] = [
    ("model", "llama3.2", "llama3.2"),
    ("model", "  qwen3:8b  ", "qwen3:8b"),
    ("model", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
    (
        "model",
        "registry.example.com:5000/team/model@sha256:abc123",
        "registry.example.com:5000/team/model@sha256:abc123",
    ),
    ("model", "m" * 200, "m" * 200),
    ("system", "You are a pirate.", "You are a pirate."),
    ("system", "  Be brief.\n", "Be brief."),
    ("system", "x" * 4000, "x" * 4000),
    ("temperature", "0", 0.0),
    ("temperature", "0.7", 0.7),
    ("temperature", ".5", 0.5),
    ("temperature", "2", 2.0),
    ("temperature", "1e0", 1.0),
    ("temperature", "-0", 0.0),
    ("temperature", "+1.25", 1.25),
    ("top_p", "0", 0.0),
    ("top_p", "0.95", 0.95),
    ("top_p", "1", 1.0),
    ("top_k", "1", 1),
    ("top_k", "40", 40),
    ("top_k", "40.0", 40),
    ("top_k", "1000", 1000),
    ("num_ctx", "256", 256),
    ("num_ctx", "8192", 8192),
    ("num_ctx", "1048576", 1048576),
    ("num_predict", "-1", -1),
    ("num_predict", "1", 1),
    ("num_predict", "131072", 131072),
    ("seed", "0", 0),
    ("seed", "42", 42),
    ("seed", "2147483647", 2**31 - 1),
    ("repeat_penalty", "0", 0.0),
    ("repeat_penalty", "1.1", 1.1),
    ("repeat_penalty", "5", 5.0),
    ("think", "off", "off"),
    ("think", "on", "on"),
    ("think", "LOW", "low"),
    ("think", "medium", "medium"),
    ("think", " high ", "high"),
    ("think", "true", "on"),
    ("think", "yes", "on"),
    ("think", "1", "on"),
    ("think", "false", "off"),
    ("think", "No", "off"),
    ("think", "0", "off"),
    ("keep_alive", "5m", "5m"),
    ("keep_alive", "1h30m", "1h30m"),
    ("keep_alive", "300ms", "300ms"),
    ("keep_alive", "-1m", "-1m"),
    ("keep_alive", "1.5h", "1.5h"),
    ("keep_alive", "10µs", "10µs"),
    ("keep_alive", "1h 30M", "1h30m"),
    ("keep_alive", "300", 300),
    ("keep_alive", "2.5", 2.5),
    ("keep_alive", "0", 0),
    ("keep_alive", "-1", -1),
    ("keep_alive", "-30", -1),
    ("keep_alive", "60.0", 60),
    ("keep_alive", "-0", 0),
    ("keep_alive", "0s", "0s"),
    ("keep_alive", "2562047h", "2562047h"),
    ("history", "1", 1),
    ("history", "25", 25),
    ("history", "200", 200),
    ("auto_reply", "on", True),
    ("auto_reply", "TRUE", True),
    ("auto_reply", "yes", True),
    ("auto_reply", "1", True),
    ("auto_reply", "off", False),
    ("auto_reply", "false", False),
    ("auto_reply", "no", False),
    ("auto_reply", "0", False),
    ("show_thinking", "on", True),
    ("show_thinking", "off", False),
]


@pytest.mark.parametrize(("key", "raw", "expected"), VALID)
def test_parse_valid(key: str, raw: str, expected: SettingValue) -> None:
    value = parse_setting(key, raw)
    assert value == expected
    assert type(value) is type(expected)
    # What parse returns is what validate_setting accepts unchanged, so stored values round-trip.
    again = validate_setting(key, value)
    assert again == value
    assert type(again) is type(value)


# (key, raw, fragments the message must contain besides the key itself)
INVALID: list[tuple[str, str, tuple[str, ...]]] = [
    ("model", "", ("must not be empty",)),
    ("model", "   ", ("must not be empty",)),
    ("model", "llama 3", ("without spaces",)),
    ("model", "m" * 201, ("at most 200 characters",)),
    ("model", "llama3!", ("letters, digits", "'llama3!'")),
    ("model", "modèle", ("letters, digits",)),
    ("system", "", ("must not be empty", "unset")),
    ("system", " \n\t ", ("must not be empty",)),
    ("system", "x" * 4001, ("at most 4000 characters", "4001")),
    ("temperature", "hot", ("a number from 0 to 2", "'hot'")),
    ("temperature", "2.01", ("a number from 0 to 2",)),
    ("temperature", "-0.1", ("a number from 0 to 2",)),
    ("temperature", "nan", ("a number from 0 to 2",)),
    ("temperature", "inf", ("a number from 0 to 2",)),
    ("temperature", "1e999", ("a number from 0 to 2",)),
    ("temperature", "", ("a number from 0 to 2",)),
    ("temperature", "0,7", ("a number from 0 to 2",)),
    ("temperature", "١", ("a number from 0 to 2",)),
    ("top_p", "1.5", ("a number from 0 to 1",)),
    ("top_p", "-1", ("a number from 0 to 1",)),
    ("top_k", "0", ("a whole number from 1 to 1000",)),
    ("top_k", "1001", ("a whole number from 1 to 1000",)),
    ("top_k", "4.5", ("a whole number from 1 to 1000",)),
    ("top_k", "forty", ("a whole number from 1 to 1000",)),
    ("num_ctx", "255", ("a whole number from 256 to 1048576",)),
    ("num_ctx", "1048577", ("a whole number from 256 to 1048576",)),
    ("num_predict", "0", ("-1 (unlimited) or a whole number from 1 to 131072",)),
    ("num_predict", "-2", ("-1 (unlimited)",)),
    ("num_predict", "131073", ("from 1 to 131072",)),
    ("seed", "-1", ("a whole number from 0 to 2147483647",)),
    ("seed", "2147483648", ("a whole number from 0 to 2147483647",)),
    ("repeat_penalty", "5.5", ("a number from 0 to 5",)),
    ("repeat_penalty", "-inf", ("a number from 0 to 5",)),
    ("think", "maybe", ("off, on, low, medium, high", "'maybe'")),
    ("think", "", ("off, on, low, medium, high",)),
    ("keep_alive", "5 minutes", ("duration like 5m", "number of seconds", "'5 minutes'")),
    ("keep_alive", "5d", ("duration like 5m",)),
    ("keep_alive", "m", ("duration like 5m",)),
    ("keep_alive", "forever", ("duration like 5m", "-1 = forever")),
    ("keep_alive", "", ("duration like 5m",)),
    ("keep_alive", "inf", ("duration like 5m",)),
    ("keep_alive", "3000000h", ("duration like 5m",)),
    ("keep_alive", "-3000000h", ("duration like 5m",)),
    ("keep_alive", "1e12", ("duration like 5m",)),
    ("history", "0", ("a whole number from 1 to 200",)),
    ("history", "201", ("a whole number from 1 to 200",)),
    ("history", "lots", ("a whole number from 1 to 200",)),
    ("auto_reply", "maybe", ("on or off", "'maybe'")),
    ("auto_reply", "", ("on or off",)),
    ("show_thinking", "sometimes", ("show_thinking", "on or off")),
]


@pytest.mark.parametrize(("key", "raw", "fragments"), INVALID)
def test_parse_invalid_explains_key_and_range(key: str, raw: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(InvalidSetting) as caught:
        parse_setting(key, raw)
    message = str(caught.value)
    assert message.startswith(key)
    for fragment in fragments:
        assert fragment in message
    assert caught.value.key == key
    assert "\n" not in message
    assert len(message) < 200


def test_error_message_matches_documented_example() -> None:
    with pytest.raises(InvalidSetting, match=r"^temperature must be a number from 0 to 2 \(got 'hot'\)$"):
        parse_setting("temperature", "hot")


def test_long_bad_input_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidSetting) as caught:
        parse_setting("history", "9" * 500)
    assert "…" in str(caught.value)
    assert len(str(caught.value)) < 120


def test_invalid_setting_is_a_value_error() -> None:
    assert issubclass(InvalidSetting, ValueError)


@pytest.mark.parametrize("call", [parse_setting, validate_setting])
@pytest.mark.parametrize("key", ["temp", "Model", "", "options"])
def test_unknown_key_lists_valid_keys(call: object, key: str) -> None:
    assert callable(call)
    with pytest.raises(InvalidSetting) as caught:
        call(key, "1")
    message = str(caught.value)
    assert f"unknown setting {key!r}" in message
    for valid in SETTING_KEYS:
        assert valid in message


def test_check_key() -> None:
    assert check_key("seed") == "seed"
    with pytest.raises(InvalidSetting, match="valid settings"):
        check_key("seeds")


VALID_TYPED: list[tuple[str, object, SettingValue]] = [
    ("temperature", 1, 1.0),
    ("temperature", 0.3, 0.3),
    ("top_k", 40, 40),
    ("top_k", 40.0, 40),
    ("num_predict", -1, -1),
    ("seed", 2**31 - 1, 2**31 - 1),
    ("history", 10, 10),
    ("think", True, "on"),
    ("think", False, "off"),
    ("think", "medium", "medium"),
    ("keep_alive", 300, 300),
    ("keep_alive", 300.0, 300),
    ("keep_alive", 0.5, 0.5),
    ("keep_alive", -5, -1),
    ("keep_alive", "10m", "10m"),
    ("keep_alive", "300", 300),
    ("auto_reply", True, True),
    ("auto_reply", False, False),
    ("model", "llama3.2", "llama3.2"),
    ("system", "Be kind.", "Be kind."),
]


@pytest.mark.parametrize(("key", "value", "expected"), VALID_TYPED)
def test_validate_typed_values(key: str, value: object, expected: SettingValue) -> None:
    result = validate_setting(key, value)
    assert result == expected
    assert type(result) is type(expected)


INVALID_TYPED: list[tuple[str, object]] = [
    ("temperature", True),
    ("temperature", "0.7"),
    ("temperature", math.nan),
    ("temperature", math.inf),
    ("temperature", 3),
    ("temperature", None),
    ("top_p", -0.5),
    ("top_k", 4.5),
    ("top_k", True),
    ("top_k", "40"),
    ("top_k", math.nan),
    ("num_ctx", 100),
    ("num_predict", 0),
    ("seed", -1),
    ("repeat_penalty", [1]),
    ("think", 1),
    ("think", "sometimes"),
    ("keep_alive", True),
    ("keep_alive", math.inf),
    ("keep_alive", math.nan),
    ("keep_alive", "5 parsecs"),
    ("keep_alive", None),
    ("history", 0),
    ("history", 1.5),
    ("auto_reply", 1),
    ("auto_reply", "on"),
    ("model", 3),
    ("model", "two words"),
    ("system", ""),
    ("system", 42),
]


@pytest.mark.parametrize(("key", "value"), INVALID_TYPED)
def test_validate_rejects_wrong_type_and_range(key: str, value: object) -> None:
    with pytest.raises(InvalidSetting) as caught:
        validate_setting(key, value)
    assert str(caught.value).startswith(key)


FORMATS: list[tuple[str, SettingValue | None, str]] = [
    ("temperature", None, "(model default)"),
    ("system", None, "(model default)"),
    ("keep_alive", None, "(model default)"),
    ("think", None, "(model default)"),
    ("model", None, "(not set)"),
    ("history", None, "(not set)"),
    ("auto_reply", None, "(not set)"),
    ("model", "qwen3:8b", "qwen3:8b"),
    ("temperature", 0.7, "0.7"),
    ("temperature", 1.0, "1"),
    ("temperature", 0.123456789, "0.123456789"),
    ("keep_alive", "0s", "0s (unload immediately)"),
    ("keep_alive", "-0s", "-0s (unload immediately)"),
    ("keep_alive", "-1h30m", "-1h30m (forever)"),
    ("top_k", 40, "40"),
    ("num_predict", -1, "-1 (unlimited)"),
    ("num_predict", 512, "512"),
    ("seed", 2147483647, "2147483647"),
    ("think", "high", "high"),
    ("keep_alive", "5m", "5m"),
    ("keep_alive", "-1m", "-1m (forever)"),
    ("keep_alive", -1, "-1 (forever)"),
    ("keep_alive", 0, "0 (unload immediately)"),
    ("keep_alive", 300, "300s"),
    ("keep_alive", 2.5, "2.5s"),
    ("auto_reply", True, "on"),
    ("auto_reply", False, "off"),
    ("history", 25, "25"),
    ("system", "Be\n  brief.", "Be brief."),
]


@pytest.mark.parametrize(("key", "value", "expected"), FORMATS)
def test_format_setting(key: str, value: SettingValue | None, expected: str) -> None:
    assert format_setting(key, value) == expected


def test_format_shortens_long_system_prompt() -> None:
    prompt = "word " * 500
    shown = format_setting("system", parse_setting("system", prompt))
    assert shown.endswith("…")
    assert len(shown) <= SYSTEM_PREVIEW_CHARS
    assert "\n" not in shown


def test_format_unknown_key() -> None:
    with pytest.raises(InvalidSetting):
        format_setting("colour", "red")


@pytest.mark.parametrize("key", SETTING_KEYS)
def test_describe_key_is_one_short_line(key: str) -> None:
    description = describe_key(key)
    assert description
    assert "\n" not in description
    # Discord caps a slash-command choice name at 100 characters; leave room for "key: ".
    assert len(f"{key}: {description}") <= 100


@pytest.mark.parametrize(
    ("key", "fragments"),
    [
        ("temperature", ("0", "2")),
        ("top_p", ("0", "1")),
        ("top_k", ("1", "1000")),
        ("num_ctx", ("256", "1048576")),
        ("num_predict", ("-1", "131072")),
        ("seed", ("0", "2147483647")),
        ("repeat_penalty", ("0", "5")),
        ("think", ("off", "on", "low", "medium", "high")),
        ("keep_alive", ("5m", "-1", "0")),
        ("history", ("1", "200")),
        ("auto_reply", ("on", "off")),
        ("system", ("4000",)),
    ],
)
def test_describe_key_mentions_allowed_values(key: str, fragments: tuple[str, ...]) -> None:
    for fragment in fragments:
        assert fragment in describe_key(key)


def test_describe_unknown_key() -> None:
    with pytest.raises(InvalidSetting):
        describe_key("nope")


def test_key_lists() -> None:
    assert len(set(SETTING_KEYS)) == len(SETTING_KEYS) == 16
    assert set(OPTION_KEYS) <= set(SETTING_KEYS)
    for key in SETTING_KEYS:
        describe_key(key)
