"""Unit tests for the start-up/shutdown and user-facing details of issue 8 (see test_e2e_misc.py for the
end-to-end side)."""

from __future__ import annotations

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
