"""Message actions (the message context menu: Apps > Explain / Ask about this), free of Discord.

What the model is asked about a selected message, what the answer shows above the model's words (so the
channel sees why the bot replied), and what the answer's record keeps so Regenerate can ask again.
The selected message is quoted inside the one question turn rather than sent as history: the context
budget keeps the question whole (or cuts its end), whereas history is the first thing it drops.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

__all__ = ["Action", "ActionSpec", "action_header", "action_prompt"]

QUESTION_MAX_CHARS = 1000
# Shown above the answer; the question of "Ask about this" exists nowhere else in Discord.
EXPLAIN_HEADER = "-# 💡 Explained for {asker}\n"
ASK_HEADER = "> **{asker} asked:** {question}\n\n"
SHOWN_QUESTION_CHARS = 300

_EXPLAIN = (
    "Explain this Discord message from {author}{attached}:\n\n"
    "<message>\n{content}\n</message>\n\n"
    "If it is code, say what it does and point out any bug you notice. If it is an error message or a log, say what "
    "it means, its likely cause and how to fix it. If it uses terms or acronyms, say what they mean. Otherwise say "
    "what it means in plain words. Keep it short."
)
_ASK = (
    "About this Discord message from {author}{attached}:\n\n<message>\n{content}\n</message>\n\nMy question: {question}"
)


class Action(enum.StrEnum):
    """What was asked of a message."""

    EXPLAIN = "explain"
    ASK = "ask"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A message action as its record keeps it: enough to ask the same again (Regenerate)."""

    action: Action
    target_id: int
    question: str | None = None

    def to_text(self) -> str:
        """The action as the text kept in the answer's record."""
        return json.dumps(
            {"action": self.action.value, "target_id": self.target_id, "question": self.question}, sort_keys=True
        )

    @classmethod
    def from_text(cls, text: str) -> ActionSpec | None:
        """The action kept by `to_text` (None if `text` is not one)."""
        try:
            values = json.loads(text)
            question = values.get("question")
            return cls(
                action=Action(values["action"]),
                target_id=int(values["target_id"]),
                question=str(question) if question is not None else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def action_prompt(spec: ActionSpec, *, author: str, content: str, attachments: tuple[str, ...] = ()) -> str:
    """The question turn about the selected message (the asker's name is added by conversation building)."""
    attached = f" (attached: {', '.join(attachments)})" if attachments else ""
    text = content.strip() or "(no text)"
    if spec.action is Action.EXPLAIN:
        return _EXPLAIN.format(author=author, attached=attached, content=text)
    return _ASK.format(author=author, attached=attached, content=text, question=(spec.question or "").strip())


def action_header(spec: ActionSpec, *, asker: str) -> str:
    """What the answer shows above the model's words: who asked for it, and the question."""
    if spec.action is Action.EXPLAIN:
        return EXPLAIN_HEADER.format(asker=asker)
    question = " ".join((spec.question or "").split())
    if len(question) > SHOWN_QUESTION_CHARS:
        question = question[: SHOWN_QUESTION_CHARS - 1] + "…"
    return ASK_HEADER.format(asker=asker, question=question)
