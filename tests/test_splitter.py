"""Tests for bot.streaming.splitter: splitting a streamed answer into Discord messages."""

from __future__ import annotations

import itertools
import random
import re
import string

import pytest

from bot.streaming.splitter import MESSAGE_LIMIT, ReplyPart, split_reply

FENCE_LINE = re.compile(r" {0,3}```")
MARKER = " ⏳"


# --- independent checkers -------------------------------------------------------------


def fence_state(rendered: str) -> str | None:
    """Open fence at the end of ``rendered`` (Discord flavour, written independently of the module)."""
    state: str | None = None
    for line in rendered.split("\n"):
        if not FENCE_LINE.match(line):
            continue
        if state is not None:
            state = None
        elif "`" not in line.strip().lstrip("`"):
            state = line.strip()
    return state


def fence_toggles(rendered: str) -> int:
    """How many lines of ``rendered`` open or close a code block."""
    count, state = 0, False
    for line in rendered.split("\n"):
        if FENCE_LINE.match(line) and (state or "`" not in line.strip().lstrip("`")):
            count, state = count + 1, not state
    return count


def unrepair(part: ReplyPart) -> str:
    """The render with the fence repairs (reopen prefix, added closing fence) removed."""
    body = part.render()
    assert body.startswith(part.reopen)
    body = body[len(part.reopen) :]
    if part.open_fence is not None:
        close = "```" if part.raw.endswith("\n") else "\n```"
        assert body.endswith(close)
        body = body[: -len(close)]
    return body


def check_parts(text: str, parts: list[ReplyPart], limit: int, reserve: int) -> None:
    """Invariants that hold for every split."""
    assert parts
    assert "".join(p.raw for p in parts) == text
    assert "".join(unrepair(p) for p in parts) == text
    assert parts[0].reopen == ""
    for prev, nxt in itertools.pairwise(parts):
        assert prev.raw, "only the single part of an empty text may be empty"
        assert nxt.reopen == ("" if prev.open_fence is None else prev.open_fence + "\n")
    for part in parts:
        assert len(part.render()) + reserve <= limit
        assert len(part.render(MARKER[:reserve])) <= limit
        rendered = part.render()
        assert fence_toggles(rendered) % 2 == 0, f"unbalanced fences in {rendered!r}"
        assert fence_state(rendered) is None
        assert (fence_state(part.reopen + part.raw) is None) == (part.open_fence is None)


def check_stable(text: str, parts: list[ReplyPart], limit: int, reserve: int, lengths: set[int]) -> None:
    """Every non-final part of split(prefix) equals the same-index part of split(text)."""
    for length in sorted(lengths):
        if not 0 <= length <= len(text):
            continue
        sub = split_reply(text[:length], limit=limit, reserve=reserve)
        assert len(sub) <= len(parts)
        assert sub[:-1] == parts[: len(sub) - 1], f"unstable at prefix length {length}"


def cut_points(parts: list[ReplyPart]) -> list[int]:
    points, pos = [], 0
    for part in parts[:-1]:
        pos += len(part.raw)
        points.append(pos)
    return points


def split_checked(text: str, limit: int = MESSAGE_LIMIT, reserve: int = 0) -> list[ReplyPart]:
    """split_reply plus every invariant, including stability around each cut and every 37th prefix."""
    parts = split_reply(text, limit=limit, reserve=reserve)
    check_parts(text, parts, limit, reserve)
    lengths = set(range(0, len(text) + 1, 37)) | {len(text) - 1}
    for point in cut_points(parts):
        lengths |= set(range(point - 3, point + 4))
    for part, point in zip(parts, [0, *cut_points(parts)], strict=True):
        # around the first length at which this part stops being the last one
        room = limit - reserve - len(part.reopen)
        lengths |= set(range(point + room - 5, point + room + 3))
    check_stable(text, parts, limit, reserve, lengths)
    return parts


# --- ReplyPart.render -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "suffix", "expected"),
    [
        (ReplyPart("hello", "", None), "", "hello"),
        (ReplyPart("hello", "", None), " ⏳", "hello ⏳"),
        (ReplyPart("```py\nx = 1", "", "```py"), "", "```py\nx = 1\n```"),
        (ReplyPart("x = 1\n", "", "```py"), "", "x = 1\n```"),
        (ReplyPart("x = 1\n", "```py\n", "```py"), " ⏳", "```py\nx = 1\n``` ⏳"),
        (ReplyPart("y\n```\nafter", "```\n", None), "", "```\ny\n```\nafter"),
    ],
)
def test_render(part: ReplyPart, suffix: str, expected: str) -> None:
    assert part.render(suffix) == expected


# --- simple splits and boundaries -----------------------------------------------------


def test_empty_text_is_one_empty_part() -> None:
    assert split_reply("") == [ReplyPart("", "", None)]
    assert split_reply("", limit=50, reserve=2) == [ReplyPart("", "", None)]


@pytest.mark.parametrize("text", ["hello", "hello world", "two\nlines", "para\n\ngraph", "emoji 😀👍🏽 é"])
def test_short_text_is_one_part(text: str) -> None:
    assert split_checked(text) == [ReplyPart(text, "", None)]


@pytest.mark.parametrize(
    ("length", "limit", "reserve", "expected"),
    [
        (50, 50, 0, [50]),
        (51, 50, 0, [50, 1]),
        (100, 50, 0, [50, 50]),
        (48, 50, 2, [48]),
        (49, 50, 2, [48, 1]),
        (2000, MESSAGE_LIMIT, 0, [2000]),
        (2001, MESSAGE_LIMIT, 0, [2000, 1]),
        (1998, MESSAGE_LIMIT, 2, [1998]),
        (1999, MESSAGE_LIMIT, 2, [1998, 1]),
        (1234, 100, 0, [100] * 12 + [34]),
    ],
)
def test_exact_limit_boundaries_without_spaces(length: int, limit: int, reserve: int, expected: list[int]) -> None:
    text = "".join(string.ascii_letters[i % 52] for i in range(length))
    parts = split_checked(text, limit, reserve)
    assert [len(p.raw) for p in parts] == expected
    assert all(p.reopen == "" and p.open_fence is None for p in parts)


@pytest.mark.parametrize(("limit", "reserve"), [(50, 0), (60, 2), (MESSAGE_LIMIT, 0), (MESSAGE_LIMIT, 2)])
def test_words_exactly_at_limit_stay_one_part(limit: int, reserve: int) -> None:
    room = limit - reserve
    text = ("word " * room)[: room - 1] + "!"
    assert len(text) == room
    assert split_checked(text, limit, reserve) == [ReplyPart(text, "", None)]
    over = split_checked(text + "x", limit, reserve)
    assert len(over) == 2
    assert over[0].raw.endswith(" ")


@pytest.mark.parametrize(
    ("text", "first"),
    [
        pytest.param(
            "w " * 29 + "w\n\n" + "x" * 15 + "\n" + "y " * 30,
            "w " * 29 + "w\n\n",
            id="paragraph-beats-later-newline-and-space",
        ),
        pytest.param(
            "w " * 14 + "w\n\n" + "x " * 25 + "x\n" + "y " * 30,
            "w " * 14 + "w\n\n" + "x " * 25 + "x\n",
            id="early-paragraph-falls-through-to-newline",
        ),
        pytest.param(
            "w " * 14 + "w\n\n" + "x " * 40,
            "w " * 14 + "w\n\n" + "x " * 34,
            id="early-paragraph-falls-through-to-space",
        ),
        pytest.param(
            "a" * 30 + "\n" + "b " * 40,
            "a" * 30 + "\n" + "b " * 34,
            id="space-in-latter-half-beats-early-newline",
        ),
        pytest.param(
            "a" * 30 + "\n" + "b" * 90,
            "a" * 30 + "\n",
            id="early-newline-beats-hard-cut",
        ),
        pytest.param(
            "a" * 10 + " " + "b" * 120,
            "a" * 10 + " " + "b" * 89,
            id="too-early-space-gives-hard-cut",
        ),
        pytest.param(
            "one two\n\n\n\nthree " + "c" * 100,
            "one two\n\n\n\nthree " + "c" * 83,
            id="blank-lines-at-start-too-early",
        ),
    ],
)
def test_split_preference(text: str, first: str) -> None:
    parts = split_checked(text, limit=100)
    assert parts[0].raw == first


def test_prefers_latest_paragraph_in_latter_half() -> None:
    text = "a " * 25 + "\n\n" + "b " * 10 + "\n\n" + "c " * 10 + "\n\n" + "d " * 30
    parts = split_checked(text, limit=100)
    assert parts[0].raw == "a " * 25 + "\n\n" + "b " * 10 + "\n\n" + "c " * 10 + "\n\n"


# --- code fences ----------------------------------------------------------------------


def code_lines(count: int, width: int = 10) -> str:
    return "".join(f"v{i} = {i}".ljust(width, "#") + "\n" for i in range(count))


@pytest.mark.parametrize(("tag", "opener"), [("python", "```python"), ("", "```"), ("c++ ", "```c++")])
def test_fence_cut_across_parts(tag: str, opener: str) -> None:
    text = "intro\n```" + tag + "\n" + code_lines(12) + "```\noutro"
    parts = split_checked(text, limit=80)
    assert len(parts) >= 2
    first, second = parts[:2]
    assert first.raw.startswith("intro\n```" + tag + "\n")
    assert first.open_fence == opener
    assert first.render().endswith("\n```")
    assert second.reopen == opener + "\n"
    assert second.render().startswith(opener + "\nv")
    assert parts[-1].open_fence is None
    assert parts[-1].render().endswith("```\noutro")


def test_long_code_block_spans_many_parts() -> None:
    text = "Here:\n```js\n" + code_lines(60, 16) + "```\nDone."
    parts = split_checked(text, limit=120)
    assert len(parts) >= 4
    for middle in parts[1:-1]:
        assert middle.reopen == "```js\n"
        assert middle.open_fence == "```js"
        assert middle.raw.endswith("\n")
        assert middle.render().endswith("\n```")
    assert parts[-1].open_fence is None
    assert parts[-1].render().endswith("```\nDone.")


def test_split_between_blocks_needs_no_repair() -> None:
    block_a = "```py\nprint('a')\n```\n"
    block_b = "```sh\necho b\necho c\necho d\n```\n"
    text = "First:\n" + block_a + "Then some words here.\n" + block_b + "And " * 20
    parts = split_checked(text, limit=70)
    assert parts[0].raw == "First:\n" + block_a + "Then some words here.\n"
    assert parts[0].open_fence is None
    assert parts[1].reopen == ""
    assert parts[1].raw.startswith(block_b)


def test_cut_after_closing_fence() -> None:
    text = "Look:\n```\n" + code_lines(3) + "```\n" + "word " * 30
    parts = split_checked(text, limit=80)
    assert parts[0].raw == "Look:\n```\n" + code_lines(3) + "```\n"
    assert parts[0].open_fence is None
    assert parts[1].reopen == ""


@pytest.mark.parametrize(
    ("text", "open_fence", "rendered"),
    [
        ("hi\n```py\nprint(1)", "```py", "hi\n```py\nprint(1)\n```"),
        ("hi\n```py\nprint(1)\n", "```py", "hi\n```py\nprint(1)\n```"),
        ("hi\n```py", "```py", "hi\n```py\n```"),
        ("hi\n```py\nprint(1)\n```", None, "hi\n```py\nprint(1)\n```"),
        ("hi\n```py\nprint(1)\n``", "```py", "hi\n```py\nprint(1)\n``\n```"),
        ("hi\n```\ncode", "```", "hi\n```\ncode\n```"),
        ("a\n```\nb\n```\nc\n```rust\nfn", "```rust", "a\n```\nb\n```\nc\n```rust\nfn\n```"),
    ],
)
def test_fence_open_at_end_of_streaming_text(text: str, open_fence: str | None, rendered: str) -> None:
    parts = split_checked(text)
    assert len(parts) == 1
    assert parts[0].open_fence == open_fence
    assert parts[0].render() == rendered


def test_streaming_text_with_open_block_after_split() -> None:
    text = "Start.\n```python\n" + code_lines(12)
    parts = split_checked(text, limit=60)
    assert len(parts) >= 2
    assert all(p.open_fence == "```python" for p in parts)
    assert parts[-1].render().endswith("\n```")


@pytest.mark.parametrize(
    ("text", "open_fence"),
    [
        ("x\n  ```py\ncode", "```py"),
        ("x\n   ```py  \ncode", "```py"),
        ("x\n    ```py\ncode", None),  # four spaces: indented code, not a fence
        ("x\n   ```py\ncode\n  ```\nafter", None),
        ("x\n````md\ncode", "````md"),
        ("x\n\t```py\ncode", None),
    ],
)
def test_indented_fences(text: str, open_fence: str | None) -> None:
    assert split_checked(text)[-1].open_fence == open_fence


def test_indented_fence_cut_across_parts() -> None:
    text = "List:\n  ```py\n" + code_lines(10, 12) + "  ```\nend"
    parts = split_checked(text, limit=70)
    assert len(parts) >= 2
    assert parts[0].open_fence == "```py"
    assert parts[1].reopen == "```py\n"
    assert parts[-1].open_fence is None


@pytest.mark.parametrize(
    "text",
    [
        "Use ```inline``` here",
        "a ```py\nnot code\n",
        "```inline``` on its own line\nmore",
        "text ``` and more\nline",
    ],
)
def test_inline_triple_backticks_are_not_fences(text: str) -> None:
    parts = split_checked(text)
    assert parts == [ReplyPart(text, "", None)]


def test_inline_backticks_across_a_split_open_nothing() -> None:
    text = ("Say ```x``` or ```y``` often. " * 12).strip()
    parts = split_checked(text, limit=60)
    assert len(parts) > 3
    assert all(p.open_fence is None and p.reopen == "" for p in parts)
    for part in parts[1:]:
        assert not FENCE_LINE.match(part.raw), "a part must not start with what looks like a fence"


@pytest.mark.parametrize(
    ("text", "limit", "first"),
    [
        pytest.param(
            "ab\n" + "```python title=" + "x" * 39 + "\ncode line\n```\n",
            60,
            "ab\n",
            id="hard-cut-moved-before-opener",
        ),
        pytest.param(
            "ab cd ef gh ij kl\n```python foo bar baz\ncode line here\n```\n",
            40,
            "ab cd ef gh ij kl\n",
            id="block-boundary-instead-of-space-in-opener",
        ),
        pytest.param(
            "x\n```\n" + "c" * 40 + "\n```  trailing words on the closer\nafter",
            60,
            "x\n```\n" + "c" * 40 + "\n",
            id="never-inside-closer-line",
        ),
    ],
)
def test_cut_never_lands_inside_fence_line(text: str, limit: int, first: str) -> None:
    parts = split_checked(text, limit)
    assert parts[0].raw == first
    for point in cut_points(parts):
        line_start = text.rfind("\n", 0, point) + 1
        line = text[line_start:].split("\n", 1)[0]
        assert point == line_start or not FENCE_LINE.match(line)


def test_code_prefers_newline_over_space() -> None:
    body = "".join(f"call(a, b, c{i})\n" for i in range(8))
    text = "```py\n" + body + "```"
    parts = split_checked(text, limit=80)
    assert len(parts) >= 2
    assert all(p.raw.endswith("\n") for p in parts[:-1])


def test_long_code_line_falls_back_to_space_then_hard_cut() -> None:
    text = "```\n" + "tok " * 40 + "\n" + "z" * 200 + "\n```"
    parts = split_checked(text, limit=60)
    assert parts[0].raw.endswith(" ")
    assert any(len(p.raw) > 0 and not p.raw[-1].isspace() for p in parts[:-1]), "expected a hard cut"
    assert all(p.open_fence == "```" for p in parts[:-1])


@pytest.mark.parametrize(
    "cluster",
    ["e\u0301\u0302", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "❤\ufe0f"],
)
def test_hard_cut_keeps_grapheme_clusters(cluster: str) -> None:
    text = cluster * 80
    parts = split_checked(text, limit=50)
    assert len(parts) > 1
    for part in parts:
        assert len(part.raw) % len(cluster) == 0


def test_small_limits_validated() -> None:
    with pytest.raises(ValueError, match="reserve"):
        split_reply("x", reserve=-1)
    with pytest.raises(ValueError, match="limit"):
        split_reply("x", limit=20, reserve=10)
    assert split_checked("a" * 40 + "\n```py\n" + "b" * 40, limit=16)


def test_overlong_opener_reopens_as_bare_fence() -> None:
    opener = "```" + "x" * 30
    text = "hi\n" + opener + "\n" + code_lines(10)
    parts = split_checked(text, limit=60)
    assert len(parts) > 1
    assert parts[0].open_fence == "```"
    assert parts[1].reopen == "```\n"


def test_large_text_default_limit() -> None:
    text = make_corpus(7, 60_000)
    parts = split_reply(text)
    check_parts(text, parts, MESSAGE_LIMIT, 0)
    assert len(parts) > 30
    assert sum(len(p.render()) for p in parts) / len(parts) > MESSAGE_LIMIT * 0.6


# --- pseudo-random corpus ---------------------------------------------------------------

WORDS = [
    *("the", "a", "model", "answer", "streams", "into", "discord", "message", "while", "editing", "it"),
    *("in", "place", "and", "never", "touches", "final", "parts", "again", "so", "stability", "matters"),
]
EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🇫🇷", "e\u0301", "✨", "❤\ufe0f"]
LANGS = ["python", "js", "", "rust", "c++", "sh", "py title=x.py"]


def long_token(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + "/.-_=", k=rng.randint(30, 260)))


def code_block(rng: random.Random, closed: bool) -> str:
    indent = rng.choice(["", "", "", " ", "   "])
    lines = [indent + "```" + rng.choice(LANGS)]
    for _ in range(rng.randint(0, 40)):
        r = rng.random()
        if r < 0.1:
            lines.append("")
        elif r < 0.15:
            lines.append("    " + long_token(rng))
        elif r < 0.2:
            lines.append("x = '" + rng.choice(EMOJI) + "' # `tick` ```")
        else:
            depth = " " * rng.choice([0, 2, 4, 8])
            lines.append(depth + " ".join(rng.choices(WORDS, k=rng.randint(1, 9))))
    if closed:
        lines.append(indent + "```")
    return "\n".join(lines) + "\n"


def make_corpus(seed: int, size: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    total = 0
    while total < size:
        r = rng.random()
        if r < 0.07:
            chunk = ("" if not out or out[-1].endswith("\n") else "\n") + code_block(rng, closed=True)
        elif r < 0.15:
            chunk = "\n\n"
        elif r < 0.25:
            chunk = "\n"
        elif r < 0.3:
            chunk = rng.choice(EMOJI) + rng.choice([" ", "", "\n"])
        elif r < 0.33:
            chunk = long_token(rng) + " "
        elif r < 0.35:
            chunk = "inline ```x``` ticks "
        else:
            chunk = rng.choice(WORDS) + rng.choice([" ", " ", " ", ", ", ". "])
        out.append(chunk)
        total += len(chunk)
    if rng.random() < 0.5:
        out.append(("" if out[-1].endswith("\n") else "\n") + code_block(rng, closed=False))
    return "".join(out)


@pytest.mark.parametrize("reserve", [0, 2])
@pytest.mark.parametrize(("limit", "size"), [(48, 900), (64, 1500), (120, 3000), (500, 6000), (MESSAGE_LIMIT, 12000)])
@pytest.mark.parametrize("seed", range(6))
def test_random_corpus_invariants(seed: int, limit: int, size: int, reserve: int) -> None:
    text = make_corpus(seed, size)
    parts = split_checked(text, limit, reserve)
    assert len(parts) >= 2


@pytest.mark.parametrize(("seed", "limit", "reserve"), [(100, 40, 0), (101, 48, 2), (102, 64, 0), (103, 90, 2)])
def test_random_corpus_every_prefix_stable(seed: int, limit: int, reserve: int) -> None:
    text = make_corpus(seed, 600)
    parts = split_reply(text, limit=limit, reserve=reserve)
    check_parts(text, parts, limit, reserve)
    check_stable(text, parts, limit, reserve, set(range(len(text) + 1)))
    # Stability between arbitrary prefixes too, not only against the full text.
    for length in range(0, len(text), 97):
        base = split_reply(text[:length], limit=limit, reserve=reserve)
        check_parts(text[:length], base, limit, reserve)
        check_stable(text[:length], base, limit, reserve, set(range(0, length + 1, 7)))
