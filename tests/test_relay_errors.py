"""The relay when Discord fails: passing failures are skipped or retried, refusals end the answer with a note."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from bot.streaming import notes
from bot.streaming.relay import (
    FINAL_EDIT_RETRIES,
    STREAMING_MARKER,
    Controls,
    Outcome,
    ReplyGone,
    ReplyRefused,
    ReplyWriteFailed,
)
from tests.fake_clock import FakeClock
from tests.test_relay import RecordingSink, Script, run, words

REFUSED = notes.discord_refused(50035, "Invalid Form Body")
FailWhen = Callable[[int, str], Exception | None]


@dataclass
class FlakySink(RecordingSink):
    """A RecordingSink whose writes fail when `fail_when(attempt number, content)` returns an exception."""

    fail_when: FailWhen = lambda attempt, content: None
    new_messages_fail_from: int | None = None  # sends of this message index onwards fail for a passing reason
    attempts: int = 0
    reports: list[tuple[str, bool]] = field(default_factory=list)

    def _check(self, content: str) -> None:
        attempt = self.attempts
        self.attempts += 1
        if (failure := self.fail_when(attempt, content)) is not None:
            raise failure

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        if self.new_messages_fail_from is not None and len(self.versions) >= self.new_messages_fail_from:
            raise ReplyWriteFailed("HTTP 503")
        self._check(content)
        return await super().send(content, after=after, controls=controls)

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        self._check(content)
        await super().edit(handle, content, controls=controls)

    async def report_failure(self, reason: str, *, posted: bool) -> None:
        self.reports.append((reason, posted))


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock()
    yield fake
    fake.stop()


def streaming(content: str) -> bool:
    return content.endswith(STREAMING_MARKER)


async def test_a_passing_failure_skips_one_edit_and_the_answer_completes(clock: FakeClock) -> None:
    tokens = words(200)
    sink = FlakySink(clock, fail_when=lambda n, content: ReplyWriteFailed("HTTP 503") if n == 1 else None)
    script = Script(clock, tokens)
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.DONE
    assert sink.final == ["".join(tokens)]
    assert script.sent == len(tokens)  # generation went on


async def test_the_final_edit_is_tried_again_after_passing_failures(clock: FakeClock) -> None:
    tokens = words(20)
    final_attempts: list[float] = []

    def fail(n: int, content: str) -> Exception | None:
        if streaming(content):
            return None
        final_attempts.append(clock.now())
        return ReplyWriteFailed("HTTP 502") if len(final_attempts) <= 2 else None

    sink = FlakySink(clock, fail_when=fail)
    result = await run(clock, Script(clock, tokens), sink)

    assert result.outcome is Outcome.DONE
    assert sink.final == ["".join(tokens)]
    waits = [b - a for a, b in itertools.pairwise(final_attempts)]
    assert waits == pytest.approx(list(FINAL_EDIT_RETRIES[:2]))


async def test_discord_failing_for_good_leaves_a_logged_reply(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(clock, fail_when=lambda n, content: ReplyWriteFailed("HTTP 503") if n >= 1 else None)
    result = await run(clock, Script(clock, words(20)), sink)

    assert result.outcome is Outcome.ERROR
    assert streaming(sink.final[0])  # nothing could take the marker off
    assert "may still show its in-progress marker" in caplog.text
    assert sink.reports == []  # part of the answer is shown: no message about it elsewhere


async def test_a_refused_edit_stops_generation_and_ends_with_a_note(clock: FakeClock) -> None:
    tokens = words(200)
    refusal = ReplyRefused("HTTP 400, Discord error 50035", reason=REFUSED)
    sink = FlakySink(clock, fail_when=lambda n, content: refusal if n == 2 else None)
    script = Script(clock, tokens)
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.ERROR
    text, note = sink.final[0].rsplit("\n", 1)
    assert "".join(tokens).startswith(text) and len(text) < len("".join(tokens))
    assert note == notes.note(notes.cut_short(REFUSED))
    assert script.closed and script.sent < len(tokens)
    assert sink.controls[0] is Controls.NONE


async def test_when_the_final_edit_is_refused_too_the_shown_text_loses_its_marker(clock: FakeClock) -> None:
    refusal = ReplyRefused("HTTP 400, Discord error 50035", reason=REFUSED)
    shown: list[str] = []

    def fail(n: int, content: str) -> Exception | None:
        if streaming(content) and not shown:
            shown.append(content)
            return None
        # Everything new is refused; only the text Discord accepted once (without the marker) goes through.
        accepted = shown[0].removesuffix(STREAMING_MARKER)
        return None if content.startswith(accepted + "\n-# ") else refusal

    sink = FlakySink(clock, fail_when=fail)
    result = await run(clock, Script(clock, words(200)), sink)

    assert result.outcome is Outcome.ERROR
    assert sink.final == [shown[0].removesuffix(STREAMING_MARKER) + "\n" + notes.note(notes.cut_short(REFUSED))]
    assert sink.controls == [Controls.NONE]


async def test_a_first_post_refused_for_good_is_reported_elsewhere(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = ReplyRefused("HTTP 400, Discord error 160002", reason=REFUSED)
    sink = FlakySink(clock, fail_when=lambda n, content: refusal)
    script = Script(clock, words(50))
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.ERROR
    assert sink.versions == []
    assert sink.reports == [(REFUSED, False)]
    assert script.closed
    assert "could not post the reply at all" in caplog.text
    assert "in-progress marker" not in caplog.text


async def test_a_reply_that_cannot_be_written_any_more_is_reported_elsewhere(clock: FakeClock) -> None:
    gone = ReplyGone("HTTP 400, Discord error 50083", reason=notes.ARCHIVED_THREAD)
    sink = FlakySink(clock, fail_when=lambda n, content: gone if n >= 1 else None)
    script = Script(clock, words(200))
    result = await run(clock, script, sink)

    assert result.outcome is Outcome.ERROR
    assert sink.reports == [(notes.ARCHIVED_THREAD, True)]
    assert script.closed and script.sent < 200


async def test_a_deleted_reply_is_not_reported(clock: FakeClock) -> None:
    sink = FlakySink(clock, fail_when=lambda n, content: ReplyGone("HTTP 404, Discord error 10008") if n else None)
    result = await run(clock, Script(clock, words(200)), sink)
    assert result.outcome is Outcome.DELETED
    assert sink.reports == []


async def test_a_part_that_never_gets_posted_leaves_a_note_on_the_last_shown_part(clock: FakeClock) -> None:
    tokens = words(400)  # two messages
    sink = FlakySink(clock, new_messages_fail_from=1)
    result = await run(clock, Script(clock, tokens), sink)

    assert result.outcome is Outcome.ERROR
    assert len(sink.final) == 1 and len(sink.final[0]) <= 2000
    text, note = sink.final[0].rsplit("\n", 1)
    assert note == notes.note(notes.cut_short(notes.DISCORD_KEPT_FAILING))
    assert "".join(tokens).startswith(text.removesuffix("…"))
    assert sink.controls == [Controls.NONE]
