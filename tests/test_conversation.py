"""Conversation building from plain reply-chain records."""

from __future__ import annotations

import pytest

from bot.conversation import ChatRecord, build_conversation, clean_prompt, join_split_answer, strip_bot_decorations
from bot.streaming.relay import STREAMING_MARKER

BOT = 100


def user(i: int, text: str, name: str = "Alice") -> ChatRecord:
    return ChatRecord(id=i, author_id=200, author_name=name, content=text, from_bot=False)


def bot(i: int, text: str) -> ChatRecord:
    return ChatRecord(id=i, author_id=BOT, author_name="ollacord", content=text, from_bot=True)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<@100> how do I reverse a list?", "how do I reverse a list?"),
        ("<@!100> hi", "hi"),
        ("hey <@100>, what does <@201> mean?", "hey , what does @Bob mean?"),
        ("<@999> unknown", "@someone unknown"),
        ("no mention", "no mention"),
        ("<@100>", ""),
    ],
)
def test_clean_prompt(content: str, expected: str) -> None:
    assert clean_prompt(content, bot_id=BOT, names={201: "Bob"}) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("answer" + STREAMING_MARKER, "answer"),
        ("answer\n-# ⚠️ The model stopped", "answer"),
        ("answer\n-# note one\n-# note two", "answer"),
        ("-# not a trailing note\nanswer", "-# not a trailing note\nanswer"),
    ],
)
def test_strip_bot_decorations(content: str, expected: str) -> None:
    assert strip_bot_decorations(content) == expected


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["one ", "two"], "one two"),
        (["```py\na = 1\n```", "```py\nb = 2\n```"], "```py\na = 1\nb = 2\n```"),
        (["text\n```\n", "after"], "text\n```\nafter"),
        ([], ""),
    ],
)
def test_join_split_answer(parts: list[str], expected: str) -> None:
    assert join_split_answer(parts) == expected


def test_reply_chain_becomes_alternating_turns_with_speaker_names() -> None:
    chain = [user(1, "hi"), bot(2, "Hello!"), user(3, "and you?", name="Bob")]
    conv = build_conversation(chain, max_messages=10, max_chars=1000, system="Be terse.")
    assert conv.messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Alice: hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bob: and you?"},
    ]
    assert not conv.trimmed


def test_split_answer_is_one_assistant_turn() -> None:
    chain = [
        user(1, "code please"),
        bot(2, "```py\nx = 1\n```"),
        bot(3, "```py\ny = 2\n```\n-# note"),
        user(4, "thanks"),
    ]
    conv = build_conversation(chain, max_messages=10, max_chars=1000)
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "user"]
    assert conv.messages[1]["content"] == "```py\nx = 1\ny = 2\n```"


@pytest.mark.parametrize(
    ("max_messages", "max_chars", "chain_cut", "expected_users", "trimmed"),
    [
        (10, 10_000, False, ["Alice: q1", "Alice: q2", "Alice: q3"], False),
        (10, 10_000, True, ["Alice: q1", "Alice: q2", "Alice: q3"], True),
        (3, 10_000, False, ["Alice: q2", "Alice: q3"], True),
        (10, 30, False, ["Alice: q2", "Alice: q3"], True),
        (10, 20, False, ["Alice: q3"], True),
        # The prompt itself is always kept, even over budget.
        (10, 1, False, ["Alice: q3"], True),
    ],
)
def test_history_budget(
    max_messages: int, max_chars: int, chain_cut: bool, expected_users: list[str], trimmed: bool
) -> None:
    chain = [user(1, "q1"), bot(2, "a1" * 5), user(3, "q2"), bot(4, "a2" * 5), user(5, "q3")]
    conv = build_conversation(chain, max_messages=max_messages, max_chars=max_chars, chain_cut=chain_cut)
    assert [m["content"] for m in conv.messages if m["role"] == "user"] == expected_users
    assert conv.messages[0]["role"] == "user"
    assert conv.trimmed is trimmed


def test_shown_reasoning_is_not_sent_back_as_history() -> None:
    chain = [
        user(1, "count"),
        bot(2, "-# 💭 Reasoning (click to reveal)\n||one, two||"),
        bot(3, "Two."),
        user(4, "more"),
    ]
    conv = build_conversation(chain, max_messages=10, max_chars=1000)
    assert conv.messages == [
        {"role": "user", "content": "Alice: count"},
        {"role": "assistant", "content": "Two."},
        {"role": "user", "content": "Alice: more"},
    ]
