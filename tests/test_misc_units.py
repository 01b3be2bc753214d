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


def test_backoff_grows_to_its_cap_with_jitter_below_each_step() -> None:
    from bot.backoff import Backoff

    highest = Backoff(first=1.0, cap=60.0, random_fraction=lambda: 0.0)
    assert [highest.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    lowest = Backoff(first=1.0, cap=60.0, random_fraction=lambda: 1.0)
    assert [lowest.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    real = Backoff(first=1.0, cap=60.0)
    for step in [1, 2, 4, 8, 16, 32, 60] + [60] * 100:
        assert step / 2 <= real.next_delay() <= step


@pytest.mark.parametrize(
    "kwargs", [{"first": 0.0, "cap": 1.0}, {"first": 2.0, "cap": 1.0}, {"first": 1, "cap": 2, "jitter": 2}]
)
def test_backoff_refuses_meaningless_settings(kwargs: dict[str, float]) -> None:
    from bot.backoff import Backoff

    with pytest.raises(ValueError, match="first"):
        Backoff(**kwargs)


async def test_unreachable_discord_is_described_in_one_short_line() -> None:
    import socket

    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    from bot.__main__ import _describe_unreachable

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get("http://127.0.0.1:9/api")  # the discard port: nothing listens on loopback
    assert _describe_unreachable(refused.value) == "cannot connect to 127.0.0.1:9: Connection refused"
    # What aiohttp raises when the resolver fails (built here: no test looks anything up in DNS).
    key = ConnectionKey("discord.com", 443, True, True, None, None, None, None)
    no_dns = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-3, "Temporary failure in name resolution"))
    assert _describe_unreachable(no_dns) == "DNS lookup of discord.com failed: Temporary failure in name resolution"
    assert _describe_unreachable(TimeoutError()) == "the connection timed out"
