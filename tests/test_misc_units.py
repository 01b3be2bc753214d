"""Unit tests for the start-up/shutdown and user-facing details of issue 8 (see test_e2e_misc.py for the
end-to-end side)."""

from __future__ import annotations

import pytest

from bot.channel_settings.keys import format_setting, parse_setting
from bot.channel_settings.resolve import resolve_settings
from bot.conversation import ChatRecord, build_conversation


def _record(i: int, text: str, *, from_bot: bool) -> ChatRecord:
    return ChatRecord(id=i, author_id=100 if from_bot else 200, author_name="Alice", content=text, from_bot=from_bot)


def test_an_opening_bot_message_is_dropped_without_claiming_a_trim() -> None:
    chain = [_record(1, "Ask me anything here", from_bot=True), _record(2, "hi", from_bot=False)]
    conversation = build_conversation(chain, max_messages=10, max_chars=1000)
    assert conversation.messages == [{"role": "user", "content": "Alice: hi"}]
    assert not conversation.trimmed


def test_an_answer_left_dangling_by_the_limit_still_counts_as_trimmed() -> None:
    chain = [
        _record(1, "q1", from_bot=False),
        _record(2, "a1", from_bot=True),
        _record(3, "q2", from_bot=False),
    ]
    conversation = build_conversation(chain, max_messages=2, max_chars=1000)
    assert conversation.messages == [{"role": "user", "content": "Alice: q2"}]
    assert conversation.trimmed


@pytest.mark.parametrize(
    ("stored", "asked", "expected"),
    [
        (None, True, True),  # someone who addressed the bot hears of its answer
        (None, False, False),  # auto_reply answering unasked does not notify
        (True, False, True),
        (False, True, False),
    ],
)
def test_reply_ping_follows_the_setting_else_whether_the_person_asked(
    stored: bool | None, asked: bool, expected: bool
) -> None:
    channel = {} if stored is None else {"reply_ping": stored}
    settings = resolve_settings(thread=None, channel=channel, server={}, defaults={"model": "m"})
    assert settings.reply_ping(asked=asked) is expected


def test_reply_ping_is_an_on_off_setting() -> None:
    assert parse_setting("reply_ping", "off") is False
    assert format_setting("reply_ping", True) == "on"
    assert "auto-reply" in format_setting("reply_ping", None)
