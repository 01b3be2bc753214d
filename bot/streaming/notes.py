"""Short user-facing texts the relay adds to a reply: errors, warnings, status lines."""

from __future__ import annotations

from bot.attachments import display_name
from bot.ollama.errors import (
    ModelNotFound,
    NoHostAvailable,
    OllamaError,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)

# "-# " is Discord's subtext markdown: small grey text under the answer. Conversation building
# recognises these lines as the bot's own notes and keeps them out of the model's history.
NOTE_PREFIX = "-# "
MAX_DETAIL = 300

WAITING_STATUS = "-# ⏳ Waiting for the model to load…"
REGENERATING = "-# 🔄 Regenerating…"
EMPTY_ANSWER = "-# (the model returned an empty answer)"
STOPPED = "⏹️ stopped"
SHUTDOWN = "🔄 the bot is restarting; this answer was cut short"
INTERRUPTED = "🔄 the bot restarted while writing this answer; it was cut short"


def note(text: str) -> str:
    """Format one note line."""
    return f"{NOTE_PREFIX}{text}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def describe_error(error: OllamaError) -> str:
    """A short, actionable explanation of an Ollama failure (no traceback, no internals)."""
    if isinstance(error, NoHostAvailable):
        return _no_host(error)
    if isinstance(error, OllamaUnreachable):
        return (
            f"⚠️ Can't reach Ollama at {error.url}. Is it running? Check OLLAMA_HOST "
            "(inside Docker, localhost is the container itself: use http://host.docker.internal:11434 "
            "or the compose service name, e.g. http://ollama:11434)."
        )
    if isinstance(error, ModelNotFound):
        return (
            f"⚠️ Model `{error.model}` is not installed on the Ollama server. "
            f"Install it with `ollama pull {error.model}`."
        )
    if isinstance(error, OllamaServerBusy):
        return "⚠️ Ollama is busy (too many requests queued). Please try again in a moment."
    if isinstance(error, OllamaHTTPError):
        return f"⚠️ Ollama answered with an error ({error.status}): {_clip(error.message)}"
    if isinstance(error, OllamaStreamError):
        return f"⚠️ The model stopped with an error: {_clip(error.message)}"
    if isinstance(error, OllamaStalled):
        return f"⚠️ The model stopped sending for {error.seconds:g} s, so the answer was cut off here."
    if isinstance(error, OllamaFirstTokenTimeout):
        return f"⚠️ The model did not start answering within {error.seconds:g} s (a cold load can be slow; try again)."
    if isinstance(error, OllamaIncompleteStream):
        return "⚠️ The answer ended early (the stream closed before the model finished)."
    return f"⚠️ Ollama error: {_clip(str(error))}"


def _no_host(error: NoHostAvailable) -> str:
    """Every host of the pool that might have answered, and why it did not."""
    tried = "; ".join(f"{attempt.url}: {_host_failure(attempt.error)}" for attempt in error.attempts)
    if error.model_missing_everywhere:
        return (
            f"⚠️ Model `{error.model}` is not installed on any Ollama host (tried {tried}). "
            f"Install it with `/pull` or `ollama pull {error.model}`."
        )
    return f"⚠️ No Ollama host could answer with `{error.model}`. Tried {tried}."


def _host_failure(error: OllamaError) -> str:
    """Why one host did not answer, in a few words."""
    if isinstance(error, OllamaUnreachable):
        return _clip(error.detail)
    if isinstance(error, ModelNotFound):
        return "model not installed"
    if isinstance(error, OllamaServerBusy):
        return "busy"
    if isinstance(error, OllamaHTTPError):
        return f"error {error.status} ({_clip(error.message)[:120]})"
    if isinstance(error, OllamaFirstTokenTimeout):
        return f"no answer within {error.seconds:g} s"
    if isinstance(error, OllamaStreamError):
        return f"model error ({_clip(error.message)[:120]})"
    if isinstance(error, OllamaIncompleteStream):
        return "the connection broke before the answer started"
    return _clip(str(error))[:120]


# done_reason "length": Ollama stopped at num_predict (or the context ran out), not at the model's end.
LENGTH_LIMIT = "✂️ The answer hit the length limit and was cut off here (`num_predict`; a bigger value lets it go on)."


def context_history_trimmed(window: int) -> str:
    """Older turns were left out so the conversation fits the model's context (Ollama would drop them silently)."""
    return (
        f"Earlier messages were left out to fit the model's context window ({window:,} tokens; "
        "raise `num_ctx` to keep more)."
    )


def context_file_cut(name: str, kept: int, window: int) -> str:
    """A text attachment was shortened to fit the model's context."""
    return f"{name} was cut to its first {kept:,} characters to fit the model's context window ({window:,} tokens)."


def context_file_left_out(name: str, window: int) -> str:
    """A text attachment did not fit the model's context at all."""
    return f"{name} was left out: it does not fit the model's context window ({window:,} tokens)."


def context_images_left_out(count: int, window: int) -> str:
    """Images that did not fit the model's context."""
    what = "1 image was" if count == 1 else f"{count} images were"
    return f"{what} left out to fit the model's context window ({window:,} tokens)."


def context_prompt_cut(kept: int, window: int) -> str:
    """The question itself was longer than the model's context."""
    return (
        f"Your message was cut to its first {kept:,} characters to fit the model's context window ({window:,} tokens)."
    )


# ---- Discord failures. A reason is a clause ("Discord refused the message (error 50035: Invalid Form Body)")
# that the sentences below complete, so one reason reads right wherever it is shown.

DISCORD_KEPT_FAILING = "Discord kept failing to accept it"
ARCHIVED_THREAD = "this thread was archived and I'm not allowed to reopen it"
LOST_ACCESS = "I can no longer post or edit messages here"
COMMAND_ANSWER_TIMED_OUT = (
    "Discord lets me edit a command's answer for only 15 minutes, and I can't edit messages in this channel "
    "myself (that needs the View Channel permission here)"
)
PRIVATE_ANSWER_TIMED_OUT = "Discord lets me edit an answer only you can see for only 15 minutes"
FAILED_REACTION = "⚠️"  # added to the question when not even a short message about the failure can be posted


def discord_refused(code: int, message: str) -> str:
    """The reason for an answer Discord refused for good (a 4xx), with Discord's code and text."""
    detail = _clip(message) if message.strip() else "no details"
    return f"Discord refused the message (error {code}: {detail})"


def cut_short(reason: str) -> str:
    """The note ending an answer that had to stop because of Discord."""
    return f"⚠️ {reason[:1].upper()}{reason[1:]}, so the answer stops here."


def reply_failed(reason: str, *, posted: bool, link: str | None = None) -> str:
    """Told some other way (a plain message, an ephemeral one) when the answer itself can't say it."""
    about = f" to {link}" if link else ""
    verb = "finish" if posted else "post"
    return f"⚠️ I couldn't {verb} my answer{about}: {reason}."


# Conversation building drops messages that start with this header: reasoning is not history.
REASONING_HEADER = "-# 💭 Reasoning"
REASONING_TRUNCATED = "…"


def thinking_status(seconds: float) -> str:
    """The status shown while a thinking model reasons before answering."""
    return f"-# 💭 Thinking… {int(seconds)} s"


def queue_status(position: int, waiting: int) -> str:
    """The status shown while a request waits for its turn on Ollama."""
    if position <= 1:
        return "-# ⏳ Waiting for Ollama: you are next in line."
    return f"-# ⏳ Waiting for Ollama: position {position} of {waiting} in line."


def busy_retry_status(delay: float) -> str:
    """The status shown while Ollama answers 'server busy' and the request is retried."""
    return f"-# ⏳ Ollama is busy; trying again in {delay:g} s…"


def reasoning_block(reasoning: str, limit: int) -> str:
    """The model's reasoning as one collapsed (spoiler) message, cut to fit Discord's limit.

    When it is too long the end is kept: the conclusions sit there.
    """
    header = f"{REASONING_HEADER} (click to reveal)\n"
    # A "||" inside the text would close the spoiler early.
    body = " ".join(reasoning.strip().replace("||", "| |").split(" "))
    room = limit - len(header) - 4
    if len(body) > room:
        body = REASONING_TRUNCATED + body[-(room - len(REASONING_TRUNCATED)) :]
    return f"{header}||{body}||"


# ---- team knowledge (bot/knowledge/): the sources line under an answer, and why knowledge was not used.
SOURCES_MAX_CHARS = 400


def knowledge_source(name: str, section: str | None, *, link: str | None = None, pinned: bool = False) -> str:
    """How the sources line names one excerpt: the file and section, or a link to the pinned message."""
    if pinned:
        label = f"pinned message by {' '.join(name.split())[:60] or 'someone'}"
        # <…> around the link keeps Discord from adding a preview of the message under the answer.
        return f"[{label.replace('[', '(').replace(']', ')')}](<{link}>)" if link else label
    shown = display_name(name)
    # A heading's own backticks would break the inline code of the next label.
    if not section:
        return shown
    heading = " ".join(section.replace("`", "'").split())[:80]
    return f"{shown} › {heading}"


def knowledge_sources(labels: list[str]) -> str:
    """The sources line under an answer that used team knowledge: numbered like the excerpts the model saw."""
    parts: list[str] = []
    used = 0
    for number, label in enumerate(labels, start=1):
        part = f"[{number}] {label}"
        if parts and used + len(part) > SOURCES_MAX_CHARS:
            parts.append(f"and {len(labels) - number + 1} more")
            break
        parts.append(part)
        used += len(part) + 3
    return "📚 Sources: " + " · ".join(parts)


def knowledge_not_used(reason: str) -> str:
    """Team knowledge exists here but could not be searched for this answer."""
    return f"📚 Answered without this channel's knowledge: {_clip(reason.removeprefix('⚠️ '))}"


def knowledge_reembedding(model: str, done: int, total: int) -> str:
    """The knowledge here is being embedded again with a new model; this answer went without it."""
    return f"📚 Answered without this channel's knowledge: it is being re-indexed with `{model}` ({done:,}/{total:,})."


def knowledge_reembed_failed(model: str, error: str) -> str:
    """Re-indexing with a new embedding model failed, so the knowledge here can't be searched."""
    return f"📚 Answered without this channel's knowledge: re-indexing it with `{model}` failed. {_clip(error)}"


# ---- summaries (bot/summaries/): the status while a long span is summarized in parts


def summary_part_status(part: int, parts: int) -> str:
    """The status while one part of a span too long for the model's context is summarized."""
    return f"-# 📝 Summarizing part {part} of {parts}…"


def summary_merge_status(group: int, groups: int) -> str:
    """The status while the notes on the parts are merged into fewer (they did not fit one request)."""
    return f"-# 📝 Merging the notes on the parts ({group} of {groups})…"


def summary_combining_status(parts: int) -> str:
    """The status while the notes on every part are combined into the summary."""
    return f"-# 📝 Combining the {parts} parts into one summary…"


def summary_context_too_small(window: int) -> str:
    """The model's context leaves no room for the text to summarize."""
    return (
        f"⚠️ The model's context window ({window:,} tokens) is too small to summarize with, once the instructions "
        "and the system prompt are in it. Raise `num_ctx` (or shorten the system prompt) and try again."
    )
