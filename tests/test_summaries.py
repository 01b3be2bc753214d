"""Unit tests for the discord-free summary core: `since`, the span, the transcript, packing and map-reduce."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta

import pytest

from bot.context_budget import ContextBudget, estimate_tokens
from bot.message_actions import SHOWN_QUESTION_CHARS, Action, ActionSpec, action_header, action_prompt
from bot.ollama.client import ChatChunk
from bot.streaming import notes
from bot.summaries.engine import SummaryJob, summarize
from bot.summaries.prompts import cost, cut_to_tokens, pack, room_for, single_prompt
from bot.summaries.span import (
    BadSince,
    SinceDuration,
    SinceMessage,
    SpanRequest,
    jump_link,
    parse_duration,
    parse_since,
    span_header,
)
from bot.summaries.transcript import SpokenLine, render_lines, spoken_text
from bot.usage.spend import Spend

CHANNEL = 500
T0 = datetime(2026, 3, 2, 14, 3, tzinfo=UTC)


# -- since and the span -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("1 day", timedelta(days=1)),
        ("2 weeks", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        (" 45 MIN ", timedelta(minutes=45)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_since(text, channel_id=CHANNEL) == SinceDuration(expected)


@pytest.mark.parametrize("text", ["", "h", "2", "2 parsecs", "yesterday", "2h and then some", "0m", "-3h"])
def test_what_is_not_a_duration(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    "link",
    [
        "https://discord.com/channels/400/500/1234567890123456789",
        "https://ptb.discord.com/channels/400/500/1234567890123456789",
        "https://canary.discordapp.com/channels/400/500/1234567890123456789/",
        "<https://discord.com/channels/400/500/1234567890123456789>",
    ],
)
def test_message_links(link: str) -> None:
    assert parse_since(link, channel_id=CHANNEL) == SinceMessage(1234567890123456789, CHANNEL, 400)


def test_a_bare_message_id_is_a_message() -> None:
    assert parse_since("1234567890123456789", channel_id=CHANNEL) == SinceMessage(1234567890123456789)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://discord.com/channels/400/501/1234567890123456789", "another channel"),
        ("last tuesday", "couldn't read `since`"),
        ("400d", "at most a year"),
    ],
)
def test_since_refusals_say_why(text: str, says: str) -> None:
    with pytest.raises(BadSince, match=says):
        parse_since(text, channel_id=CHANNEL)


def test_the_span_kept_in_the_record_round_trips() -> None:
    span = SpanRequest(limit=100, after_id=41, private=True)
    assert SpanRequest.from_text(span.to_text()) == span
    assert SpanRequest.from_text(span.covering(50, 60).to_text()) == SpanRequest(100, 49, 61, True)
    assert SpanRequest.from_text("not json") is None
    assert SpanRequest.from_text('{"action": "explain"}') is None


def test_the_header_names_count_times_and_the_first_message() -> None:
    link = jump_link(400, CHANNEL, 42)
    header = span_header(count=3, start=T0, end=T0 + timedelta(minutes=5), link=link)
    start, end = int(T0.timestamp()), int(T0.timestamp()) + 300
    assert header == (
        f"📋 **Summary of 3 messages** · <t:{start}:f> → <t:{end}:f> · "
        "[first message](<https://discord.com/channels/400/500/42>)\n\n"
    )
    capped = span_header(count=1, start=T0, end=T0, link=link, capped_at=100)
    assert "Summary of 1 message**" in capped and "Only the newest 100 messages" in capped
    assert "`messages:`" in capped
    at_most = span_header(count=1000, start=T0, end=T0, link=link, capped_at=1000)
    assert "(the most a summary reads)" in at_most and "`messages:`" not in at_most
    assert jump_link(None, 9, 1) == "https://discord.com/channels/@me/9/1"


# -- the transcript -----------------------------------------------------------------------------------------


def test_the_bots_notes_marker_and_reasoning_are_not_part_of_the_discussion() -> None:
    assert spoken_text("A lock ⏳", from_bot=True) == "A lock"
    assert spoken_text("A lock.\n-# ⏹️ stopped", from_bot=True) == "A lock."
    assert spoken_text("-# ⏳ Waiting for Ollama: you are next in line.", from_bot=True) == ""
    assert spoken_text(f"{notes.REASONING_HEADER} (click to reveal)\n||hmm||", from_bot=True) == ""
    # A person's subtext line is theirs to say.
    assert spoken_text("-# small print", from_bot=False) == "-# small print"


def test_attachments_are_named() -> None:
    assert spoken_text("see log", from_bot=False, attachments=("job.log",)) == "see log [attached: job.log]"
    assert spoken_text("", from_bot=False, attachments=("a.png", "b.png")) == "[attached: a.png, b.png]"
    assert spoken_text("   ", from_bot=False) == ""


def test_lines_carry_time_and_speaker_with_the_date_when_days_change() -> None:
    one_day = [SpokenLine(1, "Alice", T0, "hi"), SpokenLine(2, "Bob", T0 + timedelta(minutes=2), "hey")]
    assert render_lines(one_day) == ["[14:03] Alice: hi", "[14:05] Bob: hey"]
    two_days = [*one_day, SpokenLine(3, "Alice", T0 + timedelta(days=1), "again")]
    assert render_lines(two_days)[-1] == "[2026-03-03 14:03] Alice: again"


# -- packing within the budget ------------------------------------------------------------------------------


def test_pack_keeps_order_and_every_group_within_the_room() -> None:
    budget = ContextBudget(window=4096, reserve=1024)
    items = [f"[10:{i:02d}] Alice: message number {i} about the deploy" for i in range(60)]
    groups = pack(items, 120, budget, separator="\n")
    assert [item for group in groups for item in group] == items
    assert len(groups) > 1
    assert all(sum(cost(item + "\n", budget) for item in group) <= 120 for group in groups)


def test_an_item_too_long_for_any_group_is_cut() -> None:
    budget = ContextBudget(window=4096, reserve=1024)
    (group,) = pack(["word " * 500], 100, budget, separator="\n")
    assert group[0].endswith("…") and cost(group[0] + "\n", budget) <= 100
    assert cut_to_tokens("short", 100, budget) == "short"


# -- map-reduce ---------------------------------------------------------------------------------------------


class FakeModel:
    """An open_chat that records every request and answers from a function of it."""

    def __init__(self, answer: str = "Notes.") -> None:
        self.answer = answer
        self.requests: list[list[dict[str, object]]] = []

    def __call__(self, messages: list[dict[str, object]]) -> AsyncGenerator[ChatChunk, None]:
        self.requests.append(messages)
        answer = self.answer

        async def stream() -> AsyncGenerator[ChatChunk, None]:
            yield ChatChunk(content=answer, thinking="", done=False)
            yield ChatChunk(content="", thinking="", done=True, prompt_eval_count=100, eval_count=7)

        return stream()


def spoken(count: int, words: int = 12) -> tuple[SpokenLine, ...]:
    return tuple(
        SpokenLine(i, "Alice" if i % 2 == 0 else "Bob", T0 + timedelta(minutes=i), f"message {i} " + "lorem " * words)
        for i in range(count)
    )


def estimated(messages: list[dict[str, object]], budget: ContextBudget) -> float:
    return 16 + sum(budget.cost(str(m["content"])) for m in messages)


async def run(
    job: SummaryJob, budget: ContextBudget, model: FakeModel, system: str | None = None
) -> tuple[str, list[str | None], Spend]:
    shown: list[str | None] = []
    spend = Spend()
    text = ""
    async for chunk in summarize(
        job, budget=budget, system=system, open_chat=model, progress=shown.append, spend=spend
    ):
        text += chunk.content
    return text, shown, spend


async def test_a_span_that_fits_is_one_request() -> None:
    model = FakeModel("All good.")
    text, shown, spend = await run(SummaryJob(spoken(5), "#general"), ContextBudget(window=8192, reserve=1024), model)
    assert text == "All good." and shown == []
    (request,) = model.requests
    assert "in #general" in str(request[-1]["content"]) and "Bob: message 1 " in str(request[-1]["content"])
    assert (spend.prompt_tokens, spend.answer_tokens) == (0, 0)  # the final request is counted by the service


async def test_a_long_span_goes_in_parts_each_within_the_context() -> None:
    budget = ContextBudget(window=1024, reserve=256)
    model = FakeModel("Short notes.")
    text, shown, spend = await run(SummaryJob(spoken(80), "#general"), budget, model, system="Be brief.")

    parts = len(model.requests) - 1
    assert parts >= 3 and text == "Short notes."
    assert shown == [notes.summary_part_status(i, parts) for i in range(1, parts + 1)] + [
        notes.summary_combining_status(parts)
    ]
    assert all(estimated(request, budget) <= budget.limit for request in model.requests)
    assert all(request[0] == {"role": "system", "content": "Be brief."} for request in model.requests)
    combined = str(model.requests[-1][-1]["content"])
    assert combined.count("Short notes.") == parts and "Part 1 (14:03-" in combined
    assert (spend.prompt_tokens, spend.answer_tokens) == (100 * parts, 7 * parts)


async def test_notes_too_many_for_one_combine_are_merged_first() -> None:
    budget = ContextBudget(window=1024, reserve=256)
    model = FakeModel("These notes are long: " + "detail " * 60)
    text, shown, _ = await run(SummaryJob(spoken(120), ""), budget, model)

    assert any(status and "Merging" in status for status in shown)
    assert all(estimated(request, budget) <= budget.limit for request in model.requests)
    assert text.startswith("These notes are long")


async def test_a_model_that_writes_more_than_fits_still_ends_within_the_context() -> None:
    budget = ContextBudget(window=1024, reserve=256)
    model = FakeModel("Far too long: " + "detail " * 2000)  # every note longer than the whole window
    text, shown, _ = await run(SummaryJob(spoken(200), ""), budget, model)

    assert text.startswith("Far too long")
    assert all(estimated(request, budget) <= budget.limit for request in model.requests)
    merges = [status for status in shown if status and "Merging" in status]
    assert merges and len(model.requests) < 200  # the merge rounds shrink the notes and end


async def test_a_context_too_small_for_the_instructions_says_so() -> None:
    model = FakeModel()
    text, _, _ = await run(SummaryJob(spoken(3), ""), ContextBudget(window=256, reserve=64), model, system="x " * 200)
    assert text == notes.summary_context_too_small(256)
    assert model.requests == []


def test_room_accounts_for_the_system_prompt() -> None:
    budget = ContextBudget(window=2048, reserve=512)
    prompt = single_prompt("#general")
    assert room_for(prompt, "You are terse. " * 20, budget) < room_for(prompt, None, budget)
    assert room_for(prompt, None, budget) < budget.limit - estimate_tokens(prompt.instructions)


# -- message actions -----------------------------------------------------------------------------------------


def test_an_action_round_trips_through_its_record() -> None:
    ask = ActionSpec(Action.ASK, 42, question="why?")
    assert ActionSpec.from_text(ask.to_text()) == ask
    assert ActionSpec.from_text(ActionSpec(Action.EXPLAIN, 7).to_text()) == ActionSpec(Action.EXPLAIN, 7)
    assert ActionSpec.from_text(SpanRequest(limit=5).to_text()) is None
    assert ActionSpec.from_text("[]") is None


def test_action_prompts_quote_the_message_and_the_question() -> None:
    explain = action_prompt(ActionSpec(Action.EXPLAIN, 1), author="Alice", content="E_TOOBIG", attachments=("x.log",))
    assert explain.startswith("Explain this Discord message from Alice (attached: x.log):")
    assert "<message>\nE_TOOBIG\n</message>" in explain
    asked = action_prompt(ActionSpec(Action.ASK, 1, "is it safe?"), author="Bob", content="rm -rf build")
    assert asked.endswith("My question: is it safe?") and "from Bob:" in asked


def test_the_question_shown_above_the_answer_is_clipped() -> None:
    assert action_header(ActionSpec(Action.EXPLAIN, 1), asker="Bob") == "-# 💡 Explained for Bob\n"
    long = action_header(ActionSpec(Action.ASK, 1, "why " * 200), asker="Bob")
    shown = long.removeprefix("> **Bob asked:** ").removesuffix("\n\n")
    assert len(shown) == SHOWN_QUESTION_CHARS and shown.endswith("…")
