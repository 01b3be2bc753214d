"""Conversation building: plain message records in, Ollama chat messages out.

The reply chain in Discord is the conversation's memory (nothing is stored): the adapter walks
`message.reference` and hands the chain here as plain records, oldest first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.streaming.notes import NOTE_PREFIX, REASONING_HEADER
from bot.streaming.relay import STREAMING_MARKER

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_REOPEN_FENCE = re.compile(r"^ {0,3}```[^\n`]*\n")
_CLOSE_FENCE = "\n```"


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """One Discord message as the conversation needs it."""

    id: int
    author_id: int
    author_name: str
    content: str
    from_bot: bool
    images: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversation:
    """Messages ready for Ollama's /api/chat, plus whether older history was left out."""

    messages: list[dict[str, object]]
    trimmed: bool


def clean_prompt(content: str, *, bot_id: int, names: Mapping[int, str]) -> str:
    """Drop mentions of the bot and spell other user mentions as @name."""

    def replace(match: re.Match[str]) -> str:
        user_id = int(match.group(1))
        if user_id == bot_id:
            return ""
        return f"@{names.get(user_id, 'someone')}"

    return " ".join(_USER_MENTION.sub(replace, content).split(" ")).strip()


def strip_bot_decorations(content: str) -> str:
    """Remove what the bot added around the model's words: the streaming marker and note lines."""
    if content.endswith(STREAMING_MARKER):
        content = content[: -len(STREAMING_MARKER)]
    lines = content.split("\n")
    while lines and lines[-1].startswith(NOTE_PREFIX):
        lines.pop()
    return "\n".join(lines)


def join_split_answer(parts: Sequence[str]) -> str:
    """Undo the fence repair between consecutive parts of one split answer.

    A part cut inside a code block ends with a closing fence line and the next part starts by
    reopening it. Keeping the newline before the closing fence can at worst add one line break
    inside the code, never glue two lines together.
    """
    if not parts:
        return ""
    text = parts[0]
    for part in parts[1:]:
        reopen = _REOPEN_FENCE.match(part)
        if reopen and text.endswith(_CLOSE_FENCE):
            text = text[: -len("```")]
            part = part[reopen.end() :]
        text += part
    return text


def build_conversation(
    chain: Sequence[ChatRecord],
    *,
    max_messages: int,
    max_chars: int,
    system: str | None = None,
    chain_cut: bool = False,
) -> Conversation:
    """Turn a reply chain (oldest first, the prompt last) into Ollama messages within budget.

    Consecutive bot messages are one assistant turn (a long answer split over several Discord
    messages). User turns are prefixed with the speaker's name so the model can tell people
    apart. The newest turns are kept; `trimmed` says older ones were left out.
    """
    turns: list[tuple[str, str, list[str]]] = []
    bot_parts: list[str] = []

    def flush_bot() -> None:
        if bot_parts:
            turns.append(("assistant", join_split_answer(bot_parts).strip(), []))
            bot_parts.clear()

    for record in chain[-max_messages:]:
        if record.from_bot:
            # A shown reasoning block is display only; the model gets its answers, not its musings.
            if not record.content.startswith(REASONING_HEADER):
                bot_parts.append(strip_bot_decorations(record.content))
            continue
        flush_bot()
        turns.append(("user", f"{record.author_name}: {record.content}", list(record.images)))
    flush_bot()
    trimmed = chain_cut or len(chain) > max_messages

    kept: list[tuple[str, str, list[str]]] = []
    used = 0
    for role, content, images in reversed(turns):
        if kept and used + len(content) > max_chars:
            trimmed = True
            break
        if not content and not images:
            continue
        kept.append((role, content, images))
        used += len(content)
    kept.reverse()
    # A conversation handed to a chat model should start with the user, not a dangling answer. Dropping
    # it is not trimming: when a limit made it dangle, `trimmed` is already set; otherwise it opened the
    # conversation (the greeting of a /chat thread) and nothing before it was left out.
    while len(kept) > 1 and kept[0][0] == "assistant":
        kept.pop(0)

    messages: list[dict[str, object]] = []
    if system:
        messages.append({"role": "system", "content": system})
    for role, content, images in kept:
        message: dict[str, object] = {"role": role, "content": content}
        if images:
            message["images"] = images
        messages.append(message)
    return Conversation(messages=messages, trimmed=trimmed)
