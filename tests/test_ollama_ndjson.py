"""NdjsonSplitter / parse_line: byte-level framing of Ollama streams."""

from __future__ import annotations

import json

import pytest

from bot.ollama.errors import OllamaProtocolError
from bot.ollama.ndjson import NdjsonSplitter, parse_line

STREAM = (
    '{"message":{"content":"Hel"},"done":false}\n'
    '{"message":{"content":"lo wörld 🎉 \\u003cb\\u003e"},"done":false}\n'
    '{"message":{"content":""},"done":true}\n'
).encode()
LINES = [line for line in STREAM.split(b"\n") if line]


def feed_all(chunks: list[bytes]) -> tuple[list[bytes], bytes | None]:
    splitter = NdjsonSplitter()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out, splitter.finish()


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte_position(cut: int) -> None:
    lines, tail = feed_all([STREAM[:cut], STREAM[cut:]])
    assert lines == LINES
    assert tail is None


@pytest.mark.parametrize(
    ("chunks", "expected", "tail"),
    [
        pytest.param([b'{"a":1}\n{"b":2}\n{"c":3}\n'], [b'{"a":1}', b'{"b":2}', b'{"c":3}'], None, id="several-in-one"),
        pytest.param([b"", b'{"a":1}\n', b""], [b'{"a":1}'], None, id="empty-feeds"),
        pytest.param([b'{"a":1}\n\n\n{"b":2}\n'], [b'{"a":1}', b'{"b":2}'], None, id="blank-lines-skipped"),
        pytest.param([b"\n", b"\r\n", b"  \n"], [], None, id="only-blank"),
        pytest.param([b'{"a":1}\n{"b"', b":2"], [b'{"a":1}'], b'{"b":2', id="partial-tail"),
        pytest.param([b'{"a":1}'], [], b'{"a":1}', id="no-newline-at-all"),
        pytest.param([b"  "], [], None, id="whitespace-tail-is-none"),
        pytest.param([b'{"a":1}', b"\n"], [b'{"a":1}'], None, id="newline-alone"),
        pytest.param([b"{", b'"a"', b":", b"1", b"}", b"\n"], [b'{"a":1}'], None, id="byte-by-byte-ish"),
    ],
)
def test_framing_table(chunks: list[bytes], expected: list[bytes], tail: bytes | None) -> None:
    lines, rest = feed_all(chunks)
    assert lines == expected
    assert rest == tail


@pytest.mark.parametrize("char", ["é", "€", "🎉", "日"])
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_multibyte_utf8_split_across_feeds(char: str, offset: int) -> None:
    line = json.dumps({"message": {"content": f"a{char}b"}}, ensure_ascii=False).encode()
    start = line.index(char.encode())
    cut = start + min(offset, len(char.encode()) - 1)
    lines, tail = feed_all([line[:cut], line[cut:] + b"\n"])
    assert tail is None
    assert parse_line(lines[0])["message"]["content"] == f"a{char}b"


def test_one_megabyte_line_in_small_reads() -> None:
    content = "x" * (1024 * 1024)
    line = json.dumps({"message": {"content": content}, "done": True}).encode() + b"\n"
    chunks = [line[i : i + 16 * 1024] for i in range(0, len(line), 16 * 1024)]
    splitter = NdjsonSplitter()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    assert len(out) == 1
    assert parse_line(out[0])["message"]["content"] == content
    assert splitter.pending == 0


def test_finish_resets_buffer() -> None:
    splitter = NdjsonSplitter()
    splitter.feed(b'{"a"')
    assert splitter.finish() == b'{"a"'
    assert splitter.finish() is None
    assert splitter.feed(b'{"b":1}\n') == [b'{"b":1}']


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"a":1}', {"a": 1}),
        (b'  {"a":"\\u003cthink\\u003e"}  ', {"a": "<think>"}),
        ('{"a":"wörld"}'.encode(), {"a": "wörld"}),
        (b'{"a":"\xff"}', {"a": "\ufffd"}),  # invalid UTF-8 becomes U+FFFD, like Ollama
    ],
)
def test_parse_line_ok(line: bytes, expected: dict[str, object]) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [b"not json", b'{"a":', b"[1,2]", b'"text"', b"42", b"null", b"data: {}", b"<html>502 Bad Gateway</html>"],
)
def test_parse_line_rejects_garbage(line: bytes) -> None:
    with pytest.raises(OllamaProtocolError):
        parse_line(line)
