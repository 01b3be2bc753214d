"""Tests for bot.streaming.thinking: removing <think>…</think> from streamed content."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable

import pytest

from bot.streaming.thinking import Filtered, ThinkTagFilter

# --- helpers ------------------------------------------------------------------------------


def run(chunks: Iterable[str], max_retract_chars: int = 20_000) -> tuple[str, str]:
    """Feed ``chunks`` and finish, applying the caller protocol; return (content, reasoning)."""
    filt = ThinkTagFilter(max_retract_chars)
    content = reasoning = ""
    outs = [filt.feed(chunk) for chunk in chunks]
    outs.append(filt.finish())
    for out in outs:
        if out.retract:
            reasoning += content
            content = ""
        reasoning += out.reasoning
        content += out.content
    return content, reasoning


def outputs(chunks: Iterable[str], max_retract_chars: int = 20_000) -> list[Filtered]:
    """Every Filtered the filter returns for ``chunks``, finish included."""
    filt = ThinkTagFilter(max_retract_chars)
    result = [filt.feed(chunk) for chunk in chunks]
    result.append(filt.finish())
    return result


def cut(text: str, points: Iterable[int]) -> list[str]:
    """``text`` cut at the given sorted indices."""
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def random_chunks(text: str, rng: random.Random, longest: int = 6) -> list[str]:
    """``text`` cut into random pieces of 0..longest characters (empty deltas happen too)."""
    chunks, i = [], 0
    while i < len(text):
        size = rng.randint(0, longest)
        chunks.append(text[i : i + size])
        i += size
    return chunks


TAG = re.compile(r"<(/?)think(?:ing)?>", re.IGNORECASE | re.ASCII)


def oracle(text: str, max_retract_chars: int = 20_000) -> tuple[str, str]:
    """Whole-text reference for inputs without backticks (written independently of the module)."""
    content = reasoning = ""
    in_block = seen = drop = False

    def add(piece: str) -> None:
        nonlocal content, reasoning, drop
        if in_block:
            reasoning += piece
            return
        if drop:
            piece = piece.lstrip()
            drop = not piece
        content += piece

    pos = 0
    for match in TAG.finditer(text):
        add(text[pos : match.start()])
        closing = bool(match.group(1))
        if in_block and closing:
            in_block, drop = False, True
        elif not in_block and not closing:
            in_block = seen = True
        elif closing and not seen and len(content) <= max_retract_chars:
            reasoning, content = content + reasoning, ""
            seen = drop = True
        else:
            add(match.group())
        pos = match.end()
    add(text[pos:])
    return content, reasoning


# --- whole-stream results ------------------------------------------------------------------

CASES = [
    # (name, input, content, reasoning)
    ("plain", "Hello world", "Hello world", ""),
    ("empty", "", "", ""),
    ("block", "<think>plan</think>Answer", "Answer", "plan"),
    ("space after close dropped", "<think>plan</think>\n\n Answer", "Answer", "plan"),
    ("empty block vanishes", "<think>\n\n</think>\n\nHello", "Hello", "\n\n"),
    ("bare empty block", "<think></think>", "", ""),
    ("block mid answer", "Intro\n\n<think>hmm</think>\n\nmore", "Intro\n\nmore", "hmm"),
    ("two blocks", "<think>a</think>\n\nB\n<think>c</think>\nD", "B\nD", "ac"),
    ("unclosed block", "<think>still going", "", "still going"),
    ("unclosed block, partial close at end", "<think>still </thi", "", "still </thi"),
    ("no nesting", "<think>a<think>b</think>c", "c", "a<think>b"),
    ("thinking variant", "<thinking>x</thinking>y", "y", "x"),
    ("mixed variants", "<think>x</thinking>y", "y", "x"),
    ("upper case", "<THINK>x</Think>y", "y", "x"),
    ("odd case thinking", "<ThInKiNg>x</THINKING>y", "y", "x"),
    ("stray close opens in reasoning", "reasoning first\n</think>\n\nAnswer", "Answer", "reasoning first\n"),
    ("stray close at start", "</think>\n\nHi", "Hi", ""),
    ("stray thinking close", "mull</thinking>ok", "ok", "mull"),
    ("stray close after a block is literal", "<think>a</think>b</think>c", "b</think>c", "a"),
    ("second stray close is literal", "r</think>a</think>b", "a</think>b", "r"),
    ("stray close then block", "r</think>a<think>s</think>b", "ab", "rs"),
    ("less than", "a < b", "a < b", ""),
    ("html", "<div>hi</div>", "<div>hi</div>", ""),
    ("x<t at end", "x<t", "x<t", ""),
    ("x<tab", "x<tab", "x<tab", ""),
    ("partial open at end", "ends with <thi", "ends with <thi", ""),
    ("partial close at end", "ends with </thi", "ends with </thi", ""),
    ("lone < at end", "1 <", "1 <", ""),
    ("double <", "<<think>>x</think>", "<", ">x"),
    ("space inside tag", "<think >x</ think>", "<think >x</ think>", ""),
    ("kelvin sign is not k", "<thin\u212a>x", "<thin\u212a>x", ""),
    ("non-ascii after tag", "<think>\u0130</think>\u0130", "\u0130", "\u0130"),
    ("inline code", "use `<think>` and `</think>`", "use `<think>` and `</think>`", ""),
    ("inside a fence", "```\n<think>x</think>\n```\nafter", "```\n<think>x</think>\n```\nafter", ""),
    (
        "after a closed fence",
        "```py\nprint('<think>')\n```\n<think>r</think>ok",
        "```py\nprint('<think>')\n```\nok",
        "r",
    ),
    ("fence closed by any fence line", "```py\n```js\n<think>r</think>ok", "```py\n```js\nok", "r"),
    ("a closing fence line may hold backticks", "```py\n```x`\n<think>r</think>ok", "```py\n```x`\nok", "r"),
    ("inline triple backticks are no fence", "```x```\n<think>r</think>ok", "```x```\nok", "r"),
    ("two backticks are no fence", "``x\n<think>r</think>ok", "``x\nok", "r"),
    ("four spaces are no fence", "    ```\n<think>r</think>ok", "    ```\nok", "r"),
    ("indented fence", "   ````\n<think>x</think>", "   ````\n<think>x</think>", ""),
    ("stray close inside a fence", "```\n</think>\n```", "```\n</think>\n```", ""),
    ("fence inside reasoning is not tracked", "<think>```\n</think>ok", "ok", "```\n"),
]


@pytest.mark.parametrize(("text", "content", "reasoning"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_whole_stream(text: str, content: str, reasoning: str) -> None:
    assert run([text]) == (content, reasoning)
    assert run(text) == (content, reasoning)  # one character per delta


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcde</think>x", 5, ("x", "abcde")),
        ("abcdef</think>x", 5, ("abcdef</think>x", "")),
        ("</think>x", 0, ("x", "")),
        ("a</think>x", 0, ("a</think>x", "")),
        # leading space dropped after a block does not count towards the limit
        ("ab   cd</think>x", 7, ("x", "ab   cd")),
    ],
)
def test_retract_limit(text: str, limit: int, expected: tuple[str, str]) -> None:
    assert run([text], limit) == expected
    assert run(text, limit) == expected


# --- what each call returns --------------------------------------------------------------

F = Filtered


@pytest.mark.parametrize(
    ("chunks", "limit", "expected"),
    [
        (["Hello <"], 20_000, [F("Hello ", ""), F("<", "")]),
        (["a < b"], 20_000, [F("a < b", ""), F("", "")]),
        (["x<t"], 20_000, [F("x", ""), F("<t", "")]),
        (["x<tab"], 20_000, [F("x<tab", ""), F("", "")]),
        (["<div>"], 20_000, [F("<div>", ""), F("", "")]),
        (["<think"], 20_000, [F("", ""), F("<think", "")]),
        (["<thinkin"], 20_000, [F("", ""), F("<thinkin", "")]),
        (["<thin\u212a"], 20_000, [F("<thin\u212a", ""), F("", "")]),  # the Kelvin sign lowercases to "k"
        (
            ["<th", "ink>r", "</thi", "nk>", "a"],
            20_000,
            [F("", ""), F("", "r"), F("", ""), F("", ""), F("a", ""), F("", "")],
        ),
        # inside a block only closing tags matter, so "<th" is not held back
        (["<think>abc<th"], 20_000, [F("", "abc<th"), F("", "")]),
        (["<think>abc</th"], 20_000, [F("", "abc"), F("", "</th")]),
        # once a block was seen a stray close is literal, so "</" is not held back
        (["<think>a</think>b", "</"], 20_000, [F("b", "a"), F("</", ""), F("", "")]),
        (["ab", "</"], 20_000, [F("ab", ""), F("", ""), F("</", "")]),
        (["abc", "</"], 2, [F("abc", ""), F("</", ""), F("", "")]),
        (["`<th"], 20_000, [F("`<th", ""), F("", "")]),
        (["```\n<th"], 20_000, [F("```\n<th", ""), F("", "")]),
        (["```", "\n<th"], 20_000, [F("```", ""), F("\n<th", ""), F("", "")]),
        (["`", "<th"], 20_000, [F("`", ""), F("<th", ""), F("", "")]),
        (["<", "<", "<th"], 20_000, [F("", ""), F("<", ""), F("<", ""), F("<th", "")]),
        # a stray close: earlier content is retracted once, this call's part goes to reasoning
        (
            ["Let me think.", "\n</think>", "\n\nHi"],
            20_000,
            [F("Let me think.", ""), F("", "\n", True), F("Hi", ""), F("", "")],
        ),
        (["abc", "d</think>e"], 20_000, [F("abc", ""), F("e", "d", True), F("", "")]),
        (["abc</think>def"], 20_000, [F("def", "abc"), F("", "")]),
        (["</think>Hi"], 20_000, [F("Hi", ""), F("", "")]),
        (
            ["abc", "</", "think>def", "</think>"],
            20_000,
            [F("abc", ""), F("", ""), F("def", "", True), F("</think>", ""), F("", "")],
        ),
        # whitespace after a close is dropped across deltas
        (["<think>r</think>", "\n", " \n", "Hi"], 20_000, [F("", "r"), F("", ""), F("", ""), F("Hi", ""), F("", "")]),
    ],
)
def test_outputs_per_call(chunks: list[str], limit: int, expected: list[Filtered]) -> None:
    assert outputs(chunks, limit) == expected


def test_finish_is_idempotent() -> None:
    filt = ThinkTagFilter()
    filt.feed("a<th")
    assert filt.finish() == Filtered("<th", "")
    assert filt.finish() == Filtered("", "")


# --- the chunking invariant ---------------------------------------------------------------

INVARIANT_INPUTS = [c[1] for c in CASES] + [
    "Okay, the user wants X.\n```py\nx = 1\n```\nSo...\n</think>\n\nHere:\n<think>again</think>done",
    "<THINKING>\n  plan\n</thinking>   \n\n<think>\n\n</think>\n\nFinal `<think>` answer",
    "a<b<th<thi<think>x<</</t</think>y</think>z",
    "` ```\n<think>r</think>\n```\n</think>\n```` \n``` x\n<think>s</think>t",
]


@pytest.mark.parametrize("text", INVARIANT_INPUTS)
def test_every_split_point(text: str) -> None:
    whole = run([text])
    for i in range(len(text) + 1):
        assert run(cut(text, [i])) == whole, i
    if len(text) <= 60:
        for i, j in itertools.combinations_with_replacement(range(len(text) + 1), 2):
            assert run(cut(text, [i, j])) == whole, (i, j)


@pytest.mark.parametrize("text", INVARIANT_INPUTS)
def test_random_chunkings(text: str) -> None:
    rng = random.Random(text)
    whole = run([text])
    for _ in range(200):
        chunks = random_chunks(text, rng)
        assert run(chunks) == whole, chunks


FRAGMENTS = [
    "<think>",
    "</think>",
    "<THINKING>",
    "</thinking>",
    "<Think>",
    "<",
    "<th",
    "</thi",
    ">",
    "/",
    "a",
    "b c",
    " ",
    "\n",
    "\n\n",
    "t",
    "ink>",
]


@pytest.mark.parametrize("seed", range(30))
def test_random_inputs_match_oracle_and_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    fragments = FRAGMENTS if seed % 2 else [*FRAGMENTS, "`", "```", "```\n", "   ```x\n"]
    for _ in range(40):
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(0, 30)))
        limit = rng.choice([0, 3, 10, 20_000])
        whole = run([text], limit)
        if "`" not in text:
            assert whole == oracle(text, limit), text
        for _ in range(10):
            chunks = random_chunks(text, rng, longest=rng.randint(1, 12))
            assert run(chunks, limit) == whole, chunks


def test_linear_time_on_a_long_stream() -> None:
    text = ("<think>" + "r <t </th " * 2_000 + "</think>\n" + "a < b <thx " * 2_000) * 5
    filt = ThinkTagFilter()
    content = reasoning = ""
    for chunk in random_chunks(text, random.Random(0), longest=4):
        out = filt.feed(chunk)
        content += out.content
        reasoning += out.reasoning
    out = filt.finish()
    assert (content + out.content, reasoning + out.reasoning) == run([text])
    assert content.count("a < b") == 10_000
