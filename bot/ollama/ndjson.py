"""Byte-level NDJSON framing for Ollama streams."""

from __future__ import annotations

import json
from typing import Any

from bot.ollama.errors import OllamaProtocolError

__all__ = ["NdjsonSplitter", "parse_line"]

_EXCERPT = 80


class NdjsonSplitter:
    """Split a byte stream into complete newline-terminated lines, buffering any partial tail."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete non-empty lines they finish, without the newline."""
        if not data:
            return []
        self._buf += data
        # Only the new bytes can hold a newline, so a huge line fed in small reads stays linear.
        if b"\n" not in data:
            return []
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines if line.strip()]

    def finish(self) -> bytes | None:
        """Return the buffered unterminated tail (None if there is none) and reset the buffer."""
        tail = bytes(self._buf)
        self._buf = bytearray()
        return tail if tail.strip() else None

    @property
    def pending(self) -> int:
        """Number of buffered bytes not yet returned as a line."""
        return len(self._buf)


def parse_line(line: bytes) -> dict[str, Any]:
    """Decode one NDJSON line into a JSON object, raising OllamaProtocolError on anything else."""
    try:
        # Straight from bytes (json detects UTF-8), the common case, one line per token.
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        value = _parse_text(line)
    if not isinstance(value, dict):
        text = line.decode("utf-8", errors="replace")
        raise OllamaProtocolError(f"expected a JSON object from Ollama, got {type(value).__name__}: {_excerpt(text)}")
    return value


def _parse_text(line: bytes) -> Any:
    # Ollama itself replaces invalid UTF-8 with U+FFFD, so do the same rather than fail the stream.
    text = line.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OllamaProtocolError(f"invalid JSON from Ollama ({exc.msg} at char {exc.pos}): {_excerpt(text)}") from None
    return value


def _excerpt(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…")
