"""Which messages a summary covers: the `since` option, the span kept for Regenerate, and the header naming it.

`since` is a message link (or id), meaning "from that message on", or a duration such as `2h` or `1d`,
meaning "the messages of that last stretch of time". `messages` caps how many are read either way: the
newest ones are kept, and the header says when the cap cut the span short.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_MESSAGES",
    "MAX_MESSAGES",
    "MAX_SINCE",
    "BadSince",
    "SinceDuration",
    "SinceMessage",
    "SpanRequest",
    "jump_link",
    "parse_since",
    "span_header",
]

DEFAULT_MESSAGES = 100
# Ten history pages of Discord's 100 messages each: a few seconds of reading at most.
MAX_MESSAGES = 1000
# Longer stretches hold more than MAX_MESSAGES in any channel worth summarizing.
MAX_SINCE = timedelta(days=366)

BAD_SINCE = (
    "I couldn't read `since` ({given}). Give a message link (right-click a message > **Copy Message Link**) "
    "or a duration like `30m`, `2h`, `1d` or `1w`."
)
SINCE_TOO_LONG = "`since` can go back at most a year; use a message link to start further back."
SINCE_ELSEWHERE = (
    "That link points to a message in another channel. Use /summarize in that channel, "
    "or right-click the message there and pick **Apps > Summarize from here**."
)
# The header of a summary; the model's text follows it.
HEADER = "📋 **Summary of {count}** · {start} → {end} · [first message](<{link}>)"
CAPPED = (
    "-# Only the newest {limit} messages of that span were read; give `messages:` (up to {most}) to go further back."
)
CAPPED_AT_MOST = "-# Only the newest {limit} messages of that span were read (the most a summary reads)."

_LINK = re.compile(
    r"^<?https?://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(@me|\d+)/(\d+)/(\d+)/?>?$", re.IGNORECASE
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), timedelta(seconds=1)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
}


class BadSince(ValueError):
    """`since` can't be used; str() is the sentence to show the user."""


@dataclass(frozen=True, slots=True)
class SinceDuration:
    """`since` as a stretch of time ending now."""

    duration: timedelta


@dataclass(frozen=True, slots=True)
class SinceMessage:
    """`since` as a message: the summary starts with it. The ids are None when only an id was given."""

    message_id: int
    channel_id: int | None = None
    guild_id: int | None = None


def parse_since(text: str, *, channel_id: int) -> SinceDuration | SinceMessage:
    """Read `since`: a message link or id (in the channel `channel_id`), or a duration; BadSince if neither."""
    given = text.strip()
    if given.isdigit() and len(given) >= 15:  # a snowflake, copied with Developer Mode's "Copy Message ID"
        return SinceMessage(int(given))
    link = _LINK.match(given)
    if link is not None:
        guild, channel, message = link.groups()
        if int(channel) != channel_id:
            raise BadSince(SINCE_ELSEWHERE)
        return SinceMessage(int(message), int(channel), None if guild == "@me" else int(guild))
    duration = parse_duration(given)
    if duration is None:
        raise BadSince(BAD_SINCE.format(given=f"`{given[:40]}`" if given else "empty"))
    if duration > MAX_SINCE:
        raise BadSince(SINCE_TOO_LONG)
    return SinceDuration(duration)


def parse_duration(text: str) -> timedelta | None:
    """`90m`, `2h`, `1h30m`, `1 day`, `2w` as a positive timedelta; None if it is not one."""
    compact = text.strip().lower()
    total = timedelta()
    position = 0
    for match in _DURATION_PART.finditer(compact):
        if compact[position : match.start()].strip(" ,"):
            return None  # something between the parts that is not a duration
        unit = _UNITS.get(match.group(2))
        if unit is None:
            return None
        total += float(match.group(1)) * unit
        position = match.end()
    if position == 0 or compact[position:].strip() or total <= timedelta():
        return None
    return total


@dataclass(frozen=True, slots=True)
class SpanRequest:
    """The messages to read: newer than `after_id`, older than `before_id` (None: up to now), at most `limit`.

    Kept in the answer's record, so Regenerate reads the very same span again.
    """

    limit: int
    after_id: int | None = None
    before_id: int | None = None
    private: bool = False

    def to_text(self) -> str:
        """The span as the text kept in the answer's record."""
        return json.dumps({"span": asdict(self)}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str) -> SpanRequest | None:
        """The span kept by `to_text` (None if `text` is not one)."""
        try:
            values = json.loads(text)["span"]
            return cls(
                limit=int(values["limit"]),
                after_id=_optional_int(values.get("after_id")),
                before_id=_optional_int(values.get("before_id")),
                private=bool(values.get("private", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def covering(self, first_id: int, last_id: int) -> SpanRequest:
        """The span of exactly the messages `first_id` to `last_id` (what a Regenerate reads again)."""
        return SpanRequest(limit=self.limit, after_id=first_id - 1, before_id=last_id + 1, private=self.private)


def _optional_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def jump_link(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """Discord's link to a message (what "Copy Message Link" gives)."""
    return f"https://discord.com/channels/{guild_id if guild_id is not None else '@me'}/{channel_id}/{message_id}"


def _timestamp(when: datetime) -> str:
    # Discord renders <t:…:f> in each reader's own time zone and language.
    return f"<t:{int(when.timestamp())}:f>"


def span_header(
    *,
    count: int,
    start: datetime,
    end: datetime,
    link: str,
    capped_at: int | None = None,
) -> str:
    """The lines that open a summary: how many messages, from when to when, a link to the first; a blank line."""
    noun = "1 message" if count == 1 else f"{count} messages"
    lines = [HEADER.format(count=noun, start=_timestamp(start), end=_timestamp(end), link=link)]
    if capped_at is not None:
        capped = CAPPED_AT_MOST if capped_at >= MAX_MESSAGES else CAPPED
        lines.append(capped.format(limit=capped_at, most=MAX_MESSAGES))
    return "\n".join(lines) + "\n\n"
