"""Answer records: one per answer, kept in the store so that an answer outlives the process that wrote it."""

from bot.answers.book import RETENTION, AnswerBook, LiveAnswer
from bot.answers.records import INTERRUPTED, AnswerKind, AnswerRecord, AnswerState, AskPrompt
from bot.answers.sink import RecordingSink
from bot.answers.store import AnswerStore, MemoryAnswerStore

__all__ = [
    "INTERRUPTED",
    "RETENTION",
    "AnswerBook",
    "AnswerKind",
    "AnswerRecord",
    "AnswerState",
    "AnswerStore",
    "AskPrompt",
    "LiveAnswer",
    "MemoryAnswerStore",
    "RecordingSink",
]
