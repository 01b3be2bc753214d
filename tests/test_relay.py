"""The streaming relay on virtual time, with an in-memory sink and scripted Ollama chunks."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from bot.conversation import join_split_answer
from bot.ollama.client import ChatChunk
from bot.ollama.errors import ModelNotFound, OllamaError, OllamaStreamError
from bot.streaming import notes
from bot.streaming.pacing import ChannelWriteBudget
from bot.streaming.relay import (
    SHUTDOWN_CANCEL,
    STREAMING_MARKER,
    Controls,
    Outcome,
    RelayOptions,
    RelayResult,
    ReplyGone,
    StatusLine,
    relay_reply,
)
from tests.fake_clock import FakeClock


@dataclass
class Write:
    at: float
    index: int
    content: str
    controls: Controls


@dataclass
class RecordingSink:
    """A MessageSink that keeps every version of every message."""

    clock: FakeClock
    channel_key: int = 500
    versions: list[list[str]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    typing: bool = False
    typing_started: int = 0
    deleted: set[int] = field(default_factory=set)
    afters: list[object | None] = field(default_factory=list)
    controls: list[Controls] = field(default_factory=list)

    async def start_waiting(self) -> None:
        self.typing = True
        self.typing_started += 1

    async def stop_waiting(self) -> None:
        self.typing = False

    removed: list[int] = field(default_factory=list)

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        index = len(self.versions)
        self.versions.append([content])
        self.controls.append(controls)
        self.afters.append(after)
        self.writes.append(Write(self.clock.now(), index, content, controls))
        return index

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        assert isinstance(handle, int)
        if handle in self.deleted:
            raise ReplyGone("deleted")
        self.versions[handle].append(content)
        self.controls[handle] = controls
        self.writes.append(Write(self.clock.now(), handle, content, controls))

    async def delete(self, handle: object) -> None:
        assert isinstance(handle, int)
        self.removed.append(handle)

    @property
    def final(self) -> list[str]:
        return [v[-1] for i, v in enumerate(self.versions) if i not in self.removed]


@dataclass
class Script:
    """Scripted Ollama output on virtual time; records whether the consumer closed it."""

    clock: FakeClock
    tokens: list[str]
    delay: float = 0.025
    first_delay: float = 0.0
    error: OllamaError | None = None
    error_after: int | None = None
    thinking: list[str] = field(default_factory=list)
    closed: bool = False
    sent: int = 0
    token_times: list[float] = field(default_factory=list)

    async def stream(self) -> AsyncIterator[ChatChunk]:
        try:
            await self.clock.sleep(self.first_delay)
            if self.error is not None and self.error_after is None:
                raise self.error
            for thought in self.thinking:
                yield ChatChunk(content="", thinking=thought, done=False)
                await self.clock.sleep(self.delay)
            for i, token in enumerate(self.tokens):
                if i:
                    await self.clock.sleep(self.delay)
                if self.error is not None and self.error_after == i:
                    raise self.error
                self.sent += 1
                self.token_times.append(self.clock.now())
                yield ChatChunk(content=token, thinking="", done=False)
            yield ChatChunk(content="", thinking="", done=True, done_reason="stop", eval_count=len(self.tokens))
        finally:
            self.closed = True


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock()
    yield fake
    fake.stop()


async def run(
    clock: FakeClock, script: Script, sink: RecordingSink, budget: ChannelWriteBudget | None = None, **options: object
) -> RelayResult:
    clock.start()
    return await relay_reply(
        script.stream(),
        sink,
        clock=clock,
        budget=budget or ChannelWriteBudget(),
        options=RelayOptions(**options),  # type: ignore[arg-type]
    )


def words(n: int) -> list[str]:
    return [f" word{i}" for i in range(n)]


async def test_reply_appears_at_first_token_and_ends_with_exact_text(clock: FakeClock) -> None:
    tokens = words(120)
    sink = RecordingSink(clock)
    script = Script(clock, tokens, first_delay=2.0)
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.DONE
    assert sink.final == ["".join(tokens)]
    assert result.first_visible_at == script.token_times[0]  # no waiting for a throttle slot
    assert result.final_edit_at == script.token_times[-1]  # final edit at once
    assert sink.writes[0].content.endswith(STREAMING_MARKER)
    assert not sink.typing and sink.typing_started == 1
    assert script.closed


async def test_edits_coalesce_to_latest_text_at_the_configured_cadence(clock: FakeClock) -> None:
    tokens = words(240)  # 6 s at 40 tokens/s, under 2000 characters
    sink = RecordingSink(clock)
    script = Script(clock, tokens)
    await run(clock, script, sink, edit_interval=1.0)
    assert len(sink.versions) == 1

    times = [w.at for w in sink.writes]
    streaming_gaps = [b - a for a, b in itertools.pairwise(times[:-1])]
    assert all(gap >= 1.0 - 1e-9 for gap in streaming_gaps)
    assert len(sink.writes) <= 8  # ~6 s of streaming at ≤ 1 edit/s plus the final
    for write in sink.writes[:-1]:
        shown = write.content.removesuffix(STREAMING_MARKER)
        # Each edit carries everything received up to that instant (latest wins, nothing stale).
        received = "".join(t for t, at in zip(tokens, script.token_times, strict=True) if at <= write.at)
        assert shown == received


async def test_separate_channels_do_not_slow_each_other(clock: FakeClock) -> None:
    budget = ChannelWriteBudget()
    sinks = [RecordingSink(clock, channel_key=500 + i) for i in range(20)]
    scripts = [Script(clock, words(300)) for _ in sinks]
    clock.start()
    results = await asyncio.gather(
        *(
            relay_reply(s.stream(), sink, clock=clock, budget=budget, options=RelayOptions())
            for s, sink in zip(scripts, sinks, strict=True)
        )
    )
    for result, sink in zip(results, sinks, strict=True):
        gaps = sorted(b - a for a, b in zip(result.update_times, result.update_times[1:], strict=False))
        assert gaps[len(gaps) // 2] <= 1.5
        assert join_split_answer(sink.final) == "".join(words(300))


async def test_replies_sharing_a_channel_stay_within_discord_budget(clock: FakeClock) -> None:
    budget = ChannelWriteBudget(max_writes=5, window=5.0, margin=0.0)
    sinks = [RecordingSink(clock, channel_key=500) for _ in range(3)]
    scripts = [Script(clock, words(200)) for _ in sinks]
    clock.start()
    await asyncio.gather(
        *(relay_reply(s.stream(), k, clock=clock, budget=budget) for s, k in zip(scripts, sinks, strict=True))
    )
    times = sorted(w.at for sink in sinks for w in sink.writes)
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 5.0 - 1e-9
    assert all(join_split_answer(sink.final) == "".join(words(200)) for sink in sinks)


async def test_long_answer_with_code_rolls_over_into_reply_chain(clock: FakeClock) -> None:
    code = "```python\n" + "".join(f"print('line {i}')\n" for i in range(200)) + "```\n"
    text = "Here you go:\n\n" + code + "\nThat prints 200 lines." + " Extra words." * 100
    tokens = [text[i : i + 7] for i in range(0, len(text), 7)]
    sink = RecordingSink(clock)
    result = await run(clock, Script(clock, tokens, delay=0.005), sink)

    assert result.outcome is Outcome.DONE
    assert len(sink.versions) >= 3
    assert all(len(v) <= 2000 for versions in sink.versions for v in versions)
    assert sink.afters[0] is None and sink.afters[1:] == list(range(len(sink.versions) - 1))
    for content in sink.final:
        assert not content.endswith(STREAMING_MARKER)
        assert content.count("```") % 2 == 0
    assert sink.final[1].startswith("```python\n")
    # Undoing the fence repair gives back the model's text exactly.
    assert join_split_answer(sink.final) == text


async def test_error_mid_stream_keeps_partial_text_and_adds_a_note(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    script = Script(clock, words(10), error=OllamaStreamError("runner crashed"), error_after=5)
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.ERROR
    final = sink.final[0]
    assert final.startswith("".join(words(5)))
    assert "runner crashed" in final and final.splitlines()[-1].startswith(notes.NOTE_PREFIX)
    assert STREAMING_MARKER not in final


async def test_error_before_first_token_is_shown_in_the_reply(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    result = await run(clock, Script(clock, [], error=ModelNotFound("mistral")), sink)

    assert result.outcome is Outcome.ERROR
    assert len(sink.versions) == 1
    assert "ollama pull mistral" in sink.final[0]
    assert not sink.typing


async def test_deleted_reply_stops_generation(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    sink.deleted.add(0)
    script = Script(clock, words(400))
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.DELETED
    assert script.closed and script.sent < 400


async def test_cancelling_the_relay_finishes_the_reply_and_closes_the_stream(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    script = Script(clock, words(400))
    clock.start()
    task = asyncio.create_task(relay_reply(script.stream(), sink, clock=clock, budget=ChannelWriteBudget()))
    while script.sent < 100:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.closed
    final = sink.final[0]
    assert notes.STOPPED in final and STREAMING_MARKER not in final
    assert final.startswith("".join(words(100)))


async def test_slow_model_load_shows_a_status_then_the_answer(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    await run(clock, Script(clock, words(3), first_delay=30.0), sink, placeholder_after=5.0)

    assert sink.versions[0][0] == notes.WAITING_STATUS
    assert sink.writes[0].at == pytest.approx(1005.0)
    assert sink.final == ["".join(words(3))]


async def test_empty_answer_says_so(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    await run(clock, Script(clock, []), sink)
    assert sink.final == [notes.EMPTY_ANSWER]


async def test_extra_notes_are_added_to_the_final_edit(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    clock.start()
    await relay_reply(
        Script(clock, words(3)).stream(),
        sink,
        clock=clock,
        budget=ChannelWriteBudget(),
        extra_notes=["-# history trimmed"],
    )
    assert sink.final == ["".join(words(3)) + "\n-# history trimmed"]


@pytest.mark.parametrize("count", [240, 250, 260, 270, 280, 290, 300, 320])
async def test_final_edit_is_immediate_even_right_after_a_roll_over(clock: FakeClock, count: int) -> None:
    """A split spends two writes; the final edit must still find a free slot at once."""
    sink = RecordingSink(clock)
    script = Script(clock, words(count))
    result = await run(clock, script, sink)

    assert join_split_answer(sink.final) == "".join(words(count))
    assert result.final_edit_at == script.token_times[-1]


async def test_updates_are_evenly_spaced_without_stalls(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    result = await run(clock, Script(clock, words(230)), sink)
    gaps = [b - a for a, b in itertools.pairwise(result.update_times[:-1])]
    assert max(gaps) <= 1.3


async def test_thinking_shows_a_status_then_only_the_answer(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    thoughts = [" hmm"] * 200  # 5 s of reasoning
    await run(clock, Script(clock, words(5), thinking=thoughts), sink)

    first_versions = sink.versions[0]
    assert first_versions[0].startswith("-# 💭 Thinking… 0 s")
    assert any(v.startswith("-# 💭 Thinking… 3 s") for v in first_versions)  # elapsed time ticks
    assert sink.final == ["".join(words(5))]


async def test_thinking_can_be_shown_collapsed_before_the_answer(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    await run(clock, Script(clock, words(5), thinking=["step one.", " step two."]), sink, show_thinking=True)

    assert sink.final[0].startswith(notes.REASONING_HEADER)
    assert "||step one. step two.||" in sink.final[0]
    assert sink.final[1:] == ["".join(words(5))]


@pytest.mark.parametrize(
    "tokens",
    [
        ["<th", "ink>let me", " think</th", "ink>\n\nThe answer", " is 4."],
        ["<think>\n\n</think>\n\n", "The answer is 4."],
        ["reasoning without an opening tag", "</think>", "The answer is 4."],
    ],
)
async def test_think_tags_in_content_are_stripped(clock: FakeClock, tokens: list[str]) -> None:
    sink = RecordingSink(clock)
    result = await run(clock, Script(clock, tokens), sink)
    assert sink.final == ["The answer is 4."]
    assert "<think>" not in result.text


async def test_stop_button_while_streaming_and_regenerate_after(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    await run(clock, Script(clock, words(80)), sink, stop_button=True, regenerate_button=True)
    assert all(w.controls is Controls.STOP for w in sink.writes[:-1])
    assert sink.writes[-1].controls is Controls.REGENERATE


async def test_status_line_is_shown_until_the_answer_starts(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    status = StatusLine()
    script = Script(clock, words(3), first_delay=3.0)

    async def queue() -> None:
        status.set("-# ⏳ position 2 of 2")
        await clock.sleep(1.0)
        status.set("-# ⏳ position 1 of 1")
        await clock.sleep(1.0)
        status.set(None)

    clock.start()
    waiter = asyncio.create_task(queue())
    await relay_reply(script.stream(), sink, clock=clock, budget=ChannelWriteBudget(), status=status)
    await waiter
    assert sink.versions[0][:2] == ["-# ⏳ position 2 of 2", "-# ⏳ position 1 of 1"]
    assert sink.final == ["".join(words(3))]
    # The answer replaces the status at once, without waiting for the edit cadence.
    assert sink.writes[-1].at == script.token_times[-1] or sink.writes[-2].at == script.token_times[0]


async def test_regenerate_reuses_the_first_message_and_deletes_the_rest(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    sink.versions = [["old part 1"], ["old part 2"], ["old part 3"]]
    sink.controls = [Controls.NONE] * 3
    clock.start()
    await relay_reply(Script(clock, words(4)).stream(), sink, clock=clock, budget=ChannelWriteBudget(), reuse=[0, 1, 2])
    assert sink.versions[0][-1] == "".join(words(4))
    assert sorted(sink.removed) == [1, 2]


async def test_cancelling_for_shutdown_says_the_bot_is_restarting(clock: FakeClock) -> None:
    sink = RecordingSink(clock)
    script = Script(clock, words(400))
    clock.start()
    task = asyncio.create_task(relay_reply(script.stream(), sink, clock=clock, budget=ChannelWriteBudget()))
    while script.sent < 50:
        await asyncio.sleep(0)
    task.cancel(SHUTDOWN_CANCEL)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert notes.SHUTDOWN in sink.final[0] and notes.STOPPED not in sink.final[0]
    assert script.closed
