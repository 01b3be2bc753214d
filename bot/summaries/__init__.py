"""Summaries of a channel's discussion, free of Discord: the span to read, the transcript, and map-reduce.

The cogs read the messages (bot/cogs/summarize_commands.py) and hand them here as plain `SpokenLine`s;
the answer service runs `summarize` in the request's turn on Ollama and streams the final combine into
the reply.
"""

from bot.summaries.engine import SummaryJob, summarize
from bot.summaries.span import (
    DEFAULT_MESSAGES,
    MAX_MESSAGES,
    SinceDuration,
    SinceMessage,
    SpanRequest,
    parse_since,
)
from bot.summaries.transcript import SpokenLine, spoken_text

__all__ = [
    "DEFAULT_MESSAGES",
    "MAX_MESSAGES",
    "SinceDuration",
    "SinceMessage",
    "SpanRequest",
    "SpokenLine",
    "SummaryJob",
    "parse_since",
    "spoken_text",
    "summarize",
]
