"""The messages of a span as a transcript the model can read: who said what, and when.

Speakers are named by their display names (so the summary can say who proposed or decided what); the
bot's own status notes (lines starting with "-# ": queue positions, "stopped", cut-short warnings) are
left out, since they are not part of the discussion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.streaming.notes import NOTE_PREFIX, REASONING_HEADER
from bot.streaming.relay import STREAMING_MARKER

__all__ = ["SpokenLine", "render_lines", "spoken_text"]


@dataclass(frozen=True, slots=True)
class SpokenLine:
    """One message of the span, as the summary needs it."""

    message_id: int
    author_name: str
    created_at: datetime
    text: str


def spoken_text(content: str, *, from_bot: bool, attachments: Sequence[str] = ()) -> str:
    """What a message says, for the transcript ("" when it says nothing worth summarizing).

    The bot's own messages lose their status notes, streaming marker and shown reasoning; attached
    files are named, since "see the attached log" means little without the name.
    """
    text = content
    if from_bot:
        if text.startswith(REASONING_HEADER):
            return ""
        text = text.removesuffix(STREAMING_MARKER)
        text = "\n".join(line for line in text.split("\n") if not line.startswith(NOTE_PREFIX))
    text = text.strip()
    files = ", ".join(name for name in attachments if name)
    if files:
        text = f"{text} [attached: {files}]" if text else f"[attached: {files}]"
    return text


def _when(moment: datetime, *, with_date: bool) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def render_lines(lines: Sequence[SpokenLine]) -> list[str]:
    """One transcript line per message: `[14:03] Alice: text` (with the date when the span crosses days)."""
    if not lines:
        return []
    days = {line.created_at.astimezone(UTC).date() for line in lines}
    with_date = len(days) > 1
    return [f"[{_when(line.created_at, with_date=with_date)}] {line.author_name}: {line.text}" for line in lines]


def time_range(lines: Sequence[SpokenLine]) -> str:
    """The UTC time range of `lines` for a prompt, e.g. `14:03-14:41`."""
    if not lines:
        return ""
    with_date = lines[0].created_at.astimezone(UTC).date() != lines[-1].created_at.astimezone(UTC).date()
    return f"{_when(lines[0].created_at, with_date=with_date)}-{_when(lines[-1].created_at, with_date=with_date)}"
