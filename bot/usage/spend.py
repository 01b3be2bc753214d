"""What one answer cost on Ollama: tokens in and out across all its requests, and the time it held its turn."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Spend"]


@dataclass(slots=True)
class Spend:
    """Accumulates the cost of one answer while it is made (a summary makes several Ollama requests)."""

    prompt_tokens: int = 0
    answer_tokens: int = 0
    # When the answer got its turn on Ollama (the answer service's clock); None while it waits or if it never did.
    turn_started_at: float | None = None

    def add(self, *, prompt_tokens: int | None, answer_tokens: int | None) -> None:
        """Count one request's `prompt_eval_count` and `eval_count` (None: Ollama did not say)."""
        self.prompt_tokens += max(0, prompt_tokens or 0)
        self.answer_tokens += max(0, answer_tokens or 0)

    def seconds_until(self, end: float) -> float:
        """How long the answer held its turn, from getting it until `end` (0 if it never got one)."""
        return max(0.0, end - self.turn_started_at) if self.turn_started_at is not None else 0.0
