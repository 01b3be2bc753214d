"""The per-channel setting keys: parsing what users type, validating typed values, formatting for display."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "OPTION_KEYS",
    "SETTING_KEYS",
    "SYSTEM_PREVIEW_CHARS",
    "THINK_LEVELS",
    "InvalidSetting",
    "SettingValue",
    "check_key",
    "describe_key",
    "format_setting",
    "parse_setting",
    "validate_setting",
]

SettingValue: TypeAlias = str | int | float | bool

SETTING_KEYS: tuple[str, ...] = (
    "model",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "num_ctx",
    "num_predict",
    "seed",
    "repeat_penalty",
    "think",
    "keep_alive",
    "history",
    "auto_reply",
    "show_thinking",
    "reply_ping",
    "embed_model",
)
OPTION_KEYS: tuple[str, ...] = ("temperature", "top_p", "top_k", "num_ctx", "num_predict", "seed", "repeat_penalty")
THINK_LEVELS: tuple[str, ...] = ("off", "on", "low", "medium", "high")

MODEL_MAX_CHARS = 200
SYSTEM_MAX_CHARS = 4000
SYSTEM_PREVIEW_CHARS = 100

_TRUE_WORDS = frozenset({"on", "true", "yes", "1"})
_FALSE_WORDS = frozenset({"off", "false", "no", "0"})
_THINK_SYNONYMS = {**dict.fromkeys(_TRUE_WORDS, "on"), **dict.fromkeys(_FALSE_WORDS, "off")}

# ASCII only: float() would also accept "nan", "inf", "1_000" and non-Latin digits.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
# Go's time.ParseDuration grammar, which is what Ollama applies to a keep_alive string.
_DURATION_UNITS_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
# A Go time.Duration is an int64 of nanoseconds; Ollama cannot represent anything longer (about 292 years).
_MAX_DURATION_NS = 2**63 - 1
_MAX_KEEP_ALIVE_SECONDS = _MAX_DURATION_NS // 10**9
# Ollama names look like "llama3.2", "qwen3:8b", "hf.co/user/repo:Q4_K_M" or "name@sha256:...";
# "_" is allowed because quantisation tags such as q4_K_M use it.
_MODEL_NAME = re.compile(r"[A-Za-z0-9._:/@-]+", re.ASCII)
_GOT_MAX_CHARS = 40


class InvalidSetting(ValueError):
    """A setting key or value was rejected; str() is a short sentence fit to show the user."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class _Key:
    """How one key is parsed from text, validated when already typed, and described."""

    description: str
    parse: Callable[[str], SettingValue]
    validate: Callable[[object], SettingValue]


def _shown(value: object) -> str:
    """`value` as it appears after "got", cut short so a pasted essay does not flood the reply."""
    text = repr(value)
    if len(text) > _GOT_MAX_CHARS:
        text = text[: _GOT_MAX_CHARS - 1] + "…"
    return text


def _fail(key: str, expected: str, got: object) -> InvalidSetting:
    return InvalidSetting(f"{key} must be {expected} (got {_shown(got)})", key=key)


def _number_key(key: str, low: float, high: float, description: str) -> _Key:
    expected = f"a number from {low:g} to {high:g}"

    def validate(value: object) -> SettingValue:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, expected, value)
        # Adding 0.0 turns -0.0 into 0.0, so "-0" is stored and shown as 0.
        number = float(value) + 0.0
        if not math.isfinite(number) or not low <= number <= high:
            raise _fail(key, expected, value)
        return number

    def parse(raw: str) -> SettingValue:
        text = raw.strip()
        if not _NUMBER.fullmatch(text):
            raise _fail(key, expected, text)
        try:
            return validate(float(text))
        except InvalidSetting:
            raise _fail(key, expected, text) from None

    return _Key(description, parse, validate)


def _whole_key(key: str, low: int, high: int, description: str, *, unlimited: int | None = None) -> _Key:
    expected = f"a whole number from {low} to {high}"
    if unlimited is not None:
        expected = f"{unlimited} (unlimited) or {expected}"

    def validate(value: object) -> SettingValue:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(key, expected, value)
        if isinstance(value, float):
            if not value.is_integer():
                raise _fail(key, expected, value)
            value = int(value)
        if value != unlimited and not low <= value <= high:
            raise _fail(key, expected, value)
        return value

    def parse(raw: str) -> SettingValue:
        text = raw.strip()
        try:
            if _INTEGER.fullmatch(text):
                return validate(int(text))
            # "4e3" or "40.0" are whole numbers too; float is exact for every value in these ranges.
            if _NUMBER.fullmatch(text):
                return validate(float(text))
        except InvalidSetting:
            pass
        raise _fail(key, expected, text)

    return _Key(description, parse, validate)


def _parse_model(raw: str) -> SettingValue:
    name = raw.strip()
    if not name:
        raise InvalidSetting("model must not be empty (e.g. llama3.2 or qwen3:8b)", key="model")
    if any(ch.isspace() for ch in name):
        raise InvalidSetting(
            f"model must be a name without spaces, e.g. llama3.2 or qwen3:8b (got {_shown(name)})", key="model"
        )
    if len(name) > MODEL_MAX_CHARS:
        raise InvalidSetting(f"model must be at most {MODEL_MAX_CHARS} characters (got {len(name)})", key="model")
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidSetting(
            f"model may only use letters, digits and . _ : / @ - (got {_shown(name)})",
            key="model",
        )
    return name


def _parse_embed_model(raw: str) -> SettingValue:
    try:
        return _parse_model(raw)
    except InvalidSetting as exc:
        text = str(exc).replace("model", "embed_model", 1).replace("llama3.2 or qwen3:8b", "nomic-embed-text")
        raise InvalidSetting(text, key="embed_model") from None


def _parse_system(raw: str) -> SettingValue:
    prompt = raw.strip()
    if not prompt:
        raise InvalidSetting("system must not be empty (to clear the system prompt, unset it)", key="system")
    if len(prompt) > SYSTEM_MAX_CHARS:
        raise InvalidSetting(
            f"system must be at most {SYSTEM_MAX_CHARS} characters (got {len(prompt)})",
            key="system",
        )
    return prompt


def _string_validator(
    key: str, parse: Callable[[str], SettingValue], expected: str
) -> Callable[[object], SettingValue]:
    def validate(value: object) -> SettingValue:
        if not isinstance(value, str):
            raise _fail(key, expected, value)
        return parse(value)

    return validate


_THINK_EXPECTED = "one of off, on, low, medium, high"


def _parse_think(raw: str) -> SettingValue:
    word = raw.strip().lower()
    if word in THINK_LEVELS:
        return word
    if word in _THINK_SYNONYMS:
        return _THINK_SYNONYMS[word]
    raise _fail("think", _THINK_EXPECTED, raw.strip())


def _validate_think(value: object) -> SettingValue:
    if isinstance(value, bool):
        return "on" if value else "off"
    if not isinstance(value, str):
        raise _fail("think", _THINK_EXPECTED, value)
    return _parse_think(value)


_BOOL_EXPECTED = "on or off"


def _switch_key(key: str, description: str) -> _Key:
    """An on/off setting."""

    def parse(raw: str) -> SettingValue:
        word = raw.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _fail(key, _BOOL_EXPECTED, raw.strip())

    def validate(value: object) -> SettingValue:
        if not isinstance(value, bool):
            raise _fail(key, _BOOL_EXPECTED, value)
        return value

    return _Key(description, parse, validate)


_KEEP_ALIVE_EXPECTED = "a duration like 5m, 1h30m or 300ms, or a number of seconds (-1 = forever, 0 = unload at once)"


def _keep_alive_number(value: float, got: object) -> SettingValue:
    if not math.isfinite(value) or value > _MAX_KEEP_ALIVE_SECONDS:
        raise _fail("keep_alive", _KEEP_ALIVE_EXPECTED, got)
    if value < 0:
        # Ollama treats every negative value as "keep loaded forever"; one spelling keeps displays consistent.
        return -1
    if value.is_integer():
        return int(value)
    return value


def _parse_keep_alive(raw: str) -> SettingValue:
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        return _keep_alive_number(float(text), text)
    # Go's units are lower case and it rejects spaces; "1h 30M" is still clearly meant as "1h30m".
    compact = "".join(text.split()).lower()
    if not _DURATION.fullmatch(compact):
        raise _fail("keep_alive", _KEEP_ALIVE_EXPECTED, text)
    if abs(_duration_ns(compact)) > _MAX_DURATION_NS:
        raise _fail("keep_alive", _KEEP_ALIVE_EXPECTED, text)
    return compact


def _duration_ns(duration: str) -> float:
    """The signed length of a Go duration string that already matched _DURATION."""
    total = sum(float(amount) * _DURATION_UNITS_NS[unit] for amount, unit in _DURATION_PART.findall(duration))
    return -total if duration.startswith("-") else total


def _validate_keep_alive(value: object) -> SettingValue:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail("keep_alive", _KEEP_ALIVE_EXPECTED, value)
    if isinstance(value, str):
        return _parse_keep_alive(value)
    return _keep_alive_number(float(value), value)


_KEYS: dict[str, _Key] = {
    "model": _Key(
        "Ollama model to answer with, e.g. llama3.2 or qwen3:8b",
        _parse_model,
        _string_validator("model", _parse_model, "a model name such as llama3.2"),
    ),
    "system": _Key(
        f"system prompt sent before the conversation, up to {SYSTEM_MAX_CHARS} characters",
        _parse_system,
        _string_validator("system", _parse_system, "text"),
    ),
    "temperature": _number_key("temperature", 0, 2, "randomness of answers, 0 to 2 (higher is more creative)"),
    "top_p": _number_key("top_p", 0, 1, "sample from the likeliest tokens up to this total probability, 0 to 1"),
    "top_k": _whole_key("top_k", 1, 1000, "sample only from the k likeliest tokens, 1 to 1000"),
    "num_ctx": _whole_key("num_ctx", 256, 1_048_576, "context window in tokens, 256 to 1048576"),
    "num_predict": _whole_key(
        "num_predict", 1, 131_072, "most tokens per answer, 1 to 131072, or -1 for unlimited", unlimited=-1
    ),
    "seed": _whole_key("seed", 0, 2**31 - 1, "random seed for repeatable answers, 0 to 2147483647"),
    "repeat_penalty": _number_key("repeat_penalty", 0, 5, "penalty for repeating tokens, 0 to 5 (1 = none)"),
    "think": _Key("reasoning for thinking models: off, on, low, medium or high", _parse_think, _validate_think),
    "keep_alive": _Key(
        "how long the model stays loaded: 5m, 1h, seconds, -1 forever, 0 unload",
        _parse_keep_alive,
        _validate_keep_alive,
    ),
    "history": _whole_key("history", 1, 200, "earlier messages sent as context, 1 to 200"),
    "auto_reply": _switch_key("auto_reply", "answer every message here without a mention: on or off"),
    "show_thinking": _switch_key("show_thinking", "show a thinking model's reasoning, collapsed: on or off"),
    "reply_ping": _switch_key("reply_ping", "notify the person an answer replies to (a reply ping): on or off"),
    "embed_model": _Key(
        "Ollama embedding model for /knowledge, e.g. nomic-embed-text (changing it re-indexes)",
        _parse_embed_model,
        _string_validator("embed_model", _parse_embed_model, "a model name such as nomic-embed-text"),
    ),
}


def check_key(key: str) -> str:
    """Return `key` if it is a setting key, else raise InvalidSetting listing the valid keys."""
    if key not in _KEYS:
        raise InvalidSetting(f"unknown setting {_shown(key)}; valid settings: {', '.join(SETTING_KEYS)}", key=key)
    return key


def parse_setting(key: str, raw: str) -> SettingValue:
    """Parse and normalise what a user typed for `key`; raise InvalidSetting with a user-facing reason."""
    return _KEYS[check_key(key)].parse(raw)


def validate_setting(key: str, value: object) -> SettingValue:
    """Check and normalise an already-typed value (from storage or a typed slash-command option)."""
    return _KEYS[check_key(key)].validate(value)


# Keys sent to Ollama: unset means the model's own (Modelfile) default applies.
_NOT_SET_LABELS = {
    "model": "(not set)",
    "history": "(not set)",
    "auto_reply": "(not set)",
    "show_thinking": "(not set)",
    # EffectiveSettings.reply_ping: a reply notifies whoever asked, but not someone auto_reply answered unasked.
    "reply_ping": "(not set: on, off for auto-reply answers)",
    "embed_model": "(not set)",
}


def format_setting(key: str, value: SettingValue | None) -> str:
    """Render a value for display; long system prompts are shortened with "…"."""
    check_key(key)
    if value is None:
        return _NOT_SET_LABELS.get(key, "(model default)")
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "system":
        text = " ".join(str(value).split())
        if len(text) > SYSTEM_PREVIEW_CHARS:
            text = text[: SYSTEM_PREVIEW_CHARS - 1].rstrip() + "…"
        return text
    if key == "num_predict" and value == -1:
        return "-1 (unlimited)"
    if key == "keep_alive":
        return _format_keep_alive(value)
    if isinstance(value, float):
        return _format_number(value)
    return str(value)


def _format_number(value: float) -> str:
    # repr is the shortest text that reads back as the same float; "1.0" is shown as "1".
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _format_keep_alive(value: str | int | float) -> str:
    if isinstance(value, str):
        length = _duration_ns(value) if _DURATION.fullmatch(value) else 1.0
        if length < 0:
            return f"{value} (forever)"
        return f"{value} (unload immediately)" if length == 0 else value
    if value < 0:
        return f"{_format_number(value)} (forever)"
    if value == 0:
        return "0 (unload immediately)"
    return f"{_format_number(value)}s"


def describe_key(key: str) -> str:
    """One line saying what `key` does and which values it accepts."""
    return _KEYS[check_key(key)].description
