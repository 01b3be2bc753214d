"""Fitting a conversation into the model's context: the window, the estimate, calibration and what is cut."""

from __future__ import annotations

import pytest

from bot.attachments import TextFile
from bot.context_budget import (
    ANSWER_RESERVE,
    IMAGE_TOKENS,
    MIN_CALIBRATION_TOKENS,
    ContextBudget,
    TokenCalibration,
    answer_reserve,
    context_window,
    estimate_tokens,
    fit_to_context,
)
from bot.streaming import notes
from tests.fakes.fake_ollama import count_tokens

ENGLISH = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun. " * 20
CODE = "def add(a, b):\n    return {'sum': a + b, 'items': [a, b]}\n" * 20
JAPANESE = "日本語のテキストです。今日はいい天気ですね。" * 20


@pytest.mark.parametrize("text", [ENGLISH, CODE, JAPANESE], ids=["english", "code", "japanese"])
def test_the_estimate_is_generous_against_a_realistic_tokenizer(text: str) -> None:
    assert estimate_tokens(text) >= count_tokens(text)
    # ...but not absurdly so, or the budget would waste most of the window.
    assert estimate_tokens(text) <= 2.5 * count_tokens(text)


@pytest.mark.parametrize(
    ("configured", "loaded", "modelfile", "trained", "default", "expected"),
    [
        pytest.param(8192, 4096, None, 131072, 4096, 8192, id="the setting wins over what is loaded"),
        pytest.param(200_000, None, None, 131072, 4096, 131072, id="never above the trained context"),
        pytest.param(None, 16384, 8192, 131072, 4096, 16384, id="a loaded model shows what it runs with"),
        pytest.param(None, None, 8192, 131072, 4096, 8192, id="Modelfile num_ctx"),
        pytest.param(None, None, None, 131072, 4096, 4096, id="server default, not the trained context"),
        pytest.param(None, None, None, 2048, 4096, 2048, id="server default capped at training"),
        pytest.param(None, None, None, None, 2048, 2048, id="nothing known: the old default"),
    ],
)
def test_context_window(
    configured: int | None, loaded: int | None, modelfile: int | None, trained: int | None, default: int, expected: int
) -> None:
    window = context_window(
        configured=configured, loaded=loaded, modelfile=modelfile, trained=trained, server_default=default
    )
    assert window == expected


def test_answer_reserve() -> None:
    assert answer_reserve(8192, None) == ANSWER_RESERVE
    assert answer_reserve(1024, None) == 256  # a quarter of a small window
    assert answer_reserve(8192, 300) == 300
    assert answer_reserve(1024, 5000) == 512  # at most half the window
    assert answer_reserve(8192, -1) == ANSWER_RESERVE  # -1 = no limit


def history(turns: int, words: int = 60) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": f"turn{i} " + "word " * words})
    return messages


def test_everything_fits_in_a_large_window() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *history(6), {"role": "user", "content": "Q?"}]
    fitted = fit_to_context(messages, [], ContextBudget(window=32768, reserve=1024), max_file_chars=50_000)
    assert fitted.messages == messages
    assert fitted.notes == []
    assert fitted.dropped_turns == 0


def test_oldest_turns_go_first_and_the_system_prompt_and_question_stay() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *history(10), {"role": "user", "content": "Q?"}]
    fitted = fit_to_context(messages, [], ContextBudget(window=512, reserve=128), max_file_chars=50_000)
    assert fitted.messages[0] == messages[0]
    assert fitted.messages[-1] == messages[-1]
    kept = fitted.messages[1:-1]
    assert kept == messages[-1 - len(kept) : -1]  # the newest history, in order
    assert kept and kept[0]["role"] == "user"  # never starts with a dangling answer
    assert fitted.dropped_turns == 10 - len(kept)
    assert fitted.notes == [notes.context_history_trimmed(512)]


def test_files_come_before_history_and_are_cut_to_fit() -> None:
    messages = [*history(4), {"role": "user", "content": "Alice: summarise"}]
    story = TextFile("story.txt", ("A line of the story that goes on. " * 3 + "\n") * 300)
    fitted = fit_to_context(messages, [story], ContextBudget(window=1024, reserve=256), max_file_chars=50_000)
    question = fitted.messages[-1]["content"]
    assert isinstance(question, str)
    assert question.startswith("Alice: summarise\n\nAttached file `story.txt`:\n```\nA line of the story")
    assert "[… truncated:" in question
    assert fitted.dropped_turns == 4  # the file took the room
    assert notes.context_history_trimmed(1024) in fitted.notes
    [cut] = [n for n in fitted.notes if "story.txt" in n]
    kept = int(cut.split("first ")[1].split(" characters")[0].replace(",", ""))
    assert 0 < kept < len(story.text)
    assert f"\n{story.text[:kept].rstrip()}" in question
    assert estimate_tokens(question) <= (1024 - 256)


def test_a_file_that_cannot_fit_at_all_is_left_out() -> None:
    # The question leaves fewer than MIN_FILE_TOKENS of the (1024 - 256) / 1.1 tokens the prompt may use.
    messages = [{"role": "user", "content": "Alice: " + "word " * 520}]
    fitted = fit_to_context(
        messages, [TextFile("big.log", "x " * 5000)], ContextBudget(window=1024, reserve=256), max_file_chars=50_000
    )
    assert fitted.messages[-1]["content"] == messages[0]["content"]
    assert fitted.notes == [notes.context_file_left_out("`big.log`", 1024)]


def test_a_question_longer_than_the_window_is_cut() -> None:
    fitted = fit_to_context(
        [{"role": "user", "content": "word " * 5000}], [], ContextBudget(window=512, reserve=128), max_file_chars=1
    )
    content = fitted.messages[-1]["content"]
    assert isinstance(content, str) and 0 < len(content) < 5 * 5000
    assert fitted.notes == [notes.context_prompt_cut(len(content), 512)]


def test_images_count_768_tokens_and_are_dropped_when_they_cannot_fit() -> None:
    question = {"role": "user", "content": "what are these?", "images": ["a", "b", "c"]}
    roomy = fit_to_context([question], [], ContextBudget(window=8192, reserve=1024), max_file_chars=1)
    assert roomy.messages[-1]["images"] == ["a", "b", "c"] and roomy.has_images
    tight = fit_to_context([question], [], ContextBudget(window=2048, reserve=512), max_file_chars=1)
    assert tight.messages[-1]["images"] == ["a"]
    assert tight.notes == [notes.context_images_left_out(2, 2048)]
    assert 2 * IMAGE_TOKENS > (2048 - 512) / 1.1


def test_calibration_learns_from_prompt_eval_count() -> None:
    calibration = TokenCalibration()
    assert calibration.factor("m", 1) == 1.0
    calibration.observe("m", 1, estimated=1000, counted=500, window=8192)
    assert calibration.factor("m", 1) == 0.5  # the first sample is taken as it is
    assert calibration.factor("m", 2) == 0.5  # another conversation starts from the model's factor
    calibration.observe("m", 1, estimated=1000, counted=900, window=8192)
    assert calibration.factor("m", 1) == 0.9  # underestimating overflows: corrected at once
    calibration.observe("m", 1, estimated=1000, counted=600, window=8192)
    assert 0.6 < calibration.factor("m", 1) < 0.9  # overestimating only wastes room: relaxed slowly
    assert calibration.factor("other", 1) == 1.0


def test_calibration_ignores_tiny_prompts_and_distrusts_full_windows() -> None:
    calibration = TokenCalibration()
    calibration.observe("m", 1, estimated=MIN_CALIBRATION_TOKENS - 1, counted=5, window=8192)
    assert calibration.factor("m", 1) == 1.0
    # A count near the window may be what Ollama kept after cutting: it can only raise the factor.
    calibration.observe("m", 1, estimated=4000, counted=1900, window=2048)
    assert calibration.factor("m", 1) == 1.0


def test_calibration_is_bounded() -> None:
    calibration = TokenCalibration(max_keys=4)
    for conversation in range(10):
        calibration.observe("m", conversation, estimated=1000, counted=800, window=8192)
    assert calibration.factor("m", 0) == 0.8  # evicted: falls back to the model's factor
    assert len(calibration._factors) <= 4
