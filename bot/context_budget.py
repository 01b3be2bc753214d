"""Fit a conversation into the model's context window before it is sent.

Ollama cuts a prompt longer than `num_ctx` silently, with 200 OK: server/prompt.go drops the oldest
non-system messages, and the runner then cuts a single over-long prompt in the middle
(llm/llama_server.go). The model answers without the beginning of the conversation, or without
most of an attached file, and nobody is told. So the bot budgets first: the system prompt and the
question are kept, then images, then the attached files (cut if need be), then as much recent
history as still fits, with room left for the answer. What had to be left out gets a note.

Tokens are estimated from characters on the generous side, then calibrated per model and
conversation with the `prompt_eval_count` Ollama reports for earlier answers (the real number of
prompt tokens, cached ones included), so that later requests use the window well.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from bot.attachments import TextFile, cut_point, display_name, normalize_newlines, quote_text_file
from bot.knowledge.prompt import KNOWLEDGE_HEADER, excerpt_entry, knowledge_block
from bot.knowledge.results import Excerpt
from bot.streaming import notes

__all__ = [
    "ANSWER_RESERVE",
    "IMAGE_TOKENS",
    "ContextBudget",
    "FittedPrompt",
    "TokenCalibration",
    "answer_reserve",
    "context_window",
    "estimate_tokens",
    "fit_to_context",
]

# Ollama's own truncation charges each image 768 tokens (server/prompt.go chatPrompt); budget the same.
IMAGE_TOKENS = 768
# Chat templates add role headers and end-of-turn markers around every message, and a few tokens
# around the whole prompt (BOS, the assistant header the answer follows).
MESSAGE_OVERHEAD = 8
PROMPT_OVERHEAD = 16
# Tokens kept free for the answer when num_predict does not say: a prompt that fills the whole
# window leaves the model nothing to answer with (Ollama would shift the context mid-answer).
ANSWER_RESERVE = 1024
# Spare room for estimation error, on top of the calibration.
SAFETY = 1.1
# Smallest piece of a file worth sending; below this it is left out rather than cut to a stub.
MIN_FILE_TOKENS = 64
# Team knowledge excerpts get at most this share of the room left after the question and its files, so a
# question with knowledge still keeps recent history.
KNOWLEDGE_SHARE = 0.5
_CALIBRATION_RANGE = (0.25, 4.0)
# A prompt this close to the window may itself have been cut by Ollama: its count is a lower bound.
_NEAR_FULL = 0.9
_CALIBRATION_KEYS = 1024
# Below this many estimated tokens a prompt is mostly template overhead, which says nothing about
# how the text itself tokenizes ("Alice: hi" is 3 tokens of text in a prompt of 8): not a sample.
MIN_CALIBRATION_TOKENS = 256


def estimate_tokens(text: str) -> float:
    """A generous token estimate: about 4 characters of words and spaces per token, and one token for each
    punctuation mark, line break and non-ASCII character (CJK text is close to one token per character)."""
    words = other = 0
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch == " "):
            words += 1
        else:
            other += 1
    return words / 4 + other


def context_window(
    *,
    configured: int | None,
    loaded: int | None,
    modelfile: int | None,
    trained: int | None,
    server_default: int,
) -> int:
    """The num_ctx Ollama will really use for the request.

    Ollama takes the request's num_ctx, else the Modelfile's, else its own default, and never goes
    above the trained context (llm/server.go). Its default is far smaller than what models are
    trained for (4096, or 2048 before v0.6.7, on a machine with under 23 GiB of VRAM, against 128k
    for llama3.2) unless the operator set OLLAMA_CONTEXT_LENGTH, which the API does not show; so the
    trained context is only an upper bound. When the model is loaded, /api/ps tells the number in
    use (it also reflects OLLAMA_CONTEXT_LENGTH and any automatic reduction for memory), and a
    request without num_ctx runs with it.
    """
    if configured:
        window = configured
    elif loaded:
        return loaded
    else:
        window = modelfile or server_default
    return min(window, trained) if trained else window


def answer_reserve(window: int, num_predict: int | None) -> int:
    """Tokens to keep free for the answer: num_predict when set, else ANSWER_RESERVE; at most half the window."""
    wanted = num_predict if num_predict is not None and num_predict > 0 else ANSWER_RESERVE
    return min(wanted, window // 4 if wanted == ANSWER_RESERVE else window // 2)


class TokenCalibration:
    """How many real tokens one estimated token is, learned from `prompt_eval_count` per model and conversation."""

    def __init__(self, max_keys: int = _CALIBRATION_KEYS) -> None:
        self._factors: OrderedDict[Hashable, float] = OrderedDict()
        self._max_keys = max_keys

    def factor(self, model: str, conversation: Hashable) -> float:
        """The factor for this conversation, else the model's, else 1 (the estimate as it is)."""
        for key in ((model, conversation), (model,)):
            if key in self._factors:
                self._factors.move_to_end(key)
                return self._factors[key]
        return 1.0

    def observe(self, model: str, conversation: Hashable, *, estimated: float, counted: int, window: int) -> None:
        """Learn from one answer: `estimated` tokens (uncalibrated) were sent and Ollama counted `counted`."""
        if estimated < MIN_CALIBRATION_TOKENS or counted <= 0:
            return
        low, high = _CALIBRATION_RANGE
        sample = min(high, max(low, counted / estimated))
        # A count near the window may be what was left after Ollama's own cut: only trust it upwards.
        lower_bound = counted >= _NEAR_FULL * window
        for key in ((model, conversation), (model,)):
            old = self._factors.get(key)
            if old is None:
                new = sample if not lower_bound else max(sample, 1.0)
            elif sample >= old:
                new = sample  # underestimating overflows the window: correct at once
            elif lower_bound:
                new = old
            else:
                new = 0.7 * old + 0.3 * sample  # overestimating only wastes room: relax slowly
            self._factors[key] = new
            self._factors.move_to_end(key)
        while len(self._factors) > self._max_keys:
            self._factors.popitem(last=False)


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """The room a prompt has: the window, what to keep free for the answer, and the calibration factor."""

    window: int
    reserve: int
    factor: float = 1.0
    image_tokens: int = IMAGE_TOKENS

    @property
    def limit(self) -> float:
        """Tokens the prompt may use."""
        return max(0.0, (self.window - self.reserve) / SAFETY)

    def cost(self, text: str) -> float:
        """Calibrated tokens of one message's text, with its template overhead."""
        return estimate_tokens(text) * self.factor + MESSAGE_OVERHEAD


@dataclass(slots=True)
class FittedPrompt:
    """Messages ready for Ollama, and what had to be left out (as notes)."""

    messages: list[dict[str, object]]
    notes: list[str] = field(default_factory=list)
    dropped_turns: int = 0
    # The uncalibrated estimate of what is sent (images excluded), to compare with prompt_eval_count.
    estimated_tokens: float = 0.0
    has_images: bool = False
    # The team-knowledge excerpts that fit, in the order (and numbering) the model sees them.
    excerpts: list[Excerpt] = field(default_factory=list)


def fit_to_context(
    messages: Sequence[dict[str, object]],
    files: Sequence[TextFile],
    budget: ContextBudget,
    *,
    max_file_chars: int,
    excerpts: Sequence[Excerpt] = (),
) -> FittedPrompt:
    """Fit `messages` (optional system, history, the question last) plus `files` into `budget`.

    The files, then the team-knowledge excerpts, are quoted into the last message. Priority: system
    prompt, the question, its images, the files in order (cut to fit, or left out), the excerpts in
    order (whole, within KNOWLEDGE_SHARE of the room left), then history from the newest turn back.
    """
    items = [dict(m) for m in messages]
    system = items.pop(0) if items and items[0].get("role") == "system" else None
    question: dict[str, object] = items.pop() if items else {"role": "user", "content": ""}
    history = items
    fitted = FittedPrompt(messages=[])
    window = budget.window
    used = float(PROMPT_OVERHEAD)
    if system is not None:
        used += budget.cost(_text(system))

    text = _text(question)
    room = budget.limit - used - MESSAGE_OVERHEAD
    if estimate_tokens(text) * budget.factor > room:
        text = _cut_to(text, room, budget)
        fitted.notes.append(notes.context_prompt_cut(len(text), window))
    used += budget.cost(text)

    images = list(_images(question))
    while images and used + len(images) * budget.image_tokens > budget.limit:
        images.pop()
    if len(images) < len(_images(question)):
        fitted.notes.append(notes.context_images_left_out(len(_images(question)) - len(images), window))
    used += len(images) * budget.image_tokens

    blocks: list[str] = []
    for file in files:
        block, cut_note = quote_text_file(file.filename, file.text, max_chars=max_file_chars)
        cost = estimate_tokens("\n\n" + block) * budget.factor
        if used + cost <= budget.limit:
            blocks.append(block)
            used += cost
            if cut_note:
                fitted.notes.append(cut_note)
            continue
        block, kept = _cut_file(file, budget.limit - used, budget, max_file_chars)
        if block:
            blocks.append(block)
            used += estimate_tokens("\n\n" + block) * budget.factor
            fitted.notes.append(notes.context_file_cut(display_name(file.filename), kept, window))
        else:
            fitted.notes.append(notes.context_file_left_out(display_name(file.filename), window))

    if excerpts:
        room = (budget.limit - used) * KNOWLEDGE_SHARE
        spent = estimate_tokens("\n\n" + KNOWLEDGE_HEADER) * budget.factor
        for excerpt in excerpts:
            cost = estimate_tokens("\n\n" + excerpt_entry(len(fitted.excerpts) + 1, excerpt)) * budget.factor
            if spent + cost <= room:
                fitted.excerpts.append(excerpt)
                spent += cost
        if fitted.excerpts:
            blocks.append(knowledge_block(fitted.excerpts))
            used += spent

    kept_history: list[dict[str, object]] = []
    for turn in reversed(history):
        cost = budget.cost(_text(turn))
        if used + cost > budget.limit:
            break
        kept_history.append(turn)
        used += cost
    kept_history.reverse()
    # Like build_conversation: a chat should start with the user, not a dangling answer.
    while kept_history and kept_history[0].get("role") == "assistant" and len(kept_history) < len(history):
        kept_history.pop(0)
    fitted.dropped_turns = len(history) - len(kept_history)
    if fitted.dropped_turns:
        fitted.notes.insert(0, notes.context_history_trimmed(window))

    question = {**question, "content": "\n\n".join([text, *blocks]) if blocks else text}
    if images:
        question["images"] = images
    else:
        question.pop("images", None)
    fitted.messages = [*([system] if system is not None else []), *kept_history, question]
    fitted.has_images = bool(images)
    fitted.estimated_tokens = PROMPT_OVERHEAD + sum(
        estimate_tokens(_text(m)) + MESSAGE_OVERHEAD for m in fitted.messages
    )
    return fitted


def _text(message: dict[str, object]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _images(message: dict[str, object]) -> list[str]:
    images = message.get("images")
    return [i for i in images if isinstance(i, str)] if isinstance(images, list) else []


def _cut_to(text: str, tokens: float, budget: ContextBudget) -> str:
    """The longest start of `text` whose calibrated estimate fits in `tokens`."""
    if tokens <= 0:
        return ""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) * budget.factor <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _cut_file(file: TextFile, tokens: float, budget: ContextBudget, max_file_chars: int) -> tuple[str, int]:
    """The file quoted and cut so the block fits in `tokens`, and how many characters were kept ("" if none fit)."""
    if tokens < MIN_FILE_TOKENS:
        return "", 0
    text = normalize_newlines(file.text)
    chars = min(max_file_chars, len(_cut_to(text, tokens, budget)))
    while chars > 0:
        block, _ = quote_text_file(file.filename, text, max_chars=chars)
        if estimate_tokens("\n\n" + block) * budget.factor <= tokens:
            return block, cut_point(text, chars)
        chars = math.floor(chars * 0.9)
    return "", 0
