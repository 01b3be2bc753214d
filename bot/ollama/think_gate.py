"""Send `think` only to models that can think.

Ollama answers `think: true` (or a level) for a model without the "thinking" capability with
400 `"NAME" does not support thinking` (server/routes.go ChatHandler), while `think: false` is always
accepted. A server-wide `think on` must not turn every channel with another model into errors, so
the field is left out for such models. When the capability list was stale (the model was re-pulled
or replaced) and Ollama still refuses, the request is sent once more without `think`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Sequence

from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaError, OllamaHTTPError

__all__ = ["THINKING", "Think", "rejects_think", "stream_without_rejected_think", "think_for_model"]

log = logging.getLogger(__name__)

THINKING = "thinking"
_REFUSAL = "does not support thinking"

Think = bool | str | None


def think_for_model(think: Think, capabilities: Sequence[str] | None) -> Think:
    """The `think` value to send: as set for a thinking model, None (left out) for any other.

    `think: false` is accepted by every model, so it is kept. `capabilities` None means Ollama could
    not be asked; then the setting is sent as it is and a refusal is handled by
    :func:`stream_without_rejected_think`.
    """
    if think is None or think is False or capabilities is None or THINKING in capabilities:
        return think
    return None


def rejects_think(error: OllamaError) -> bool:
    """Whether `error` is Ollama's 400 for `think` on a model that cannot think."""
    return isinstance(error, OllamaHTTPError) and error.status == 400 and _REFUSAL in error.message


async def stream_without_rejected_think(
    open_stream: Callable[[Think], AsyncGenerator[ChatChunk, None]],
    think: Think,
    *,
    on_rejected: Callable[[], None] | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """Stream `open_stream(think)`; if Ollama refuses `think` before any chunk, stream `open_stream(None)`."""
    async with contextlib.aclosing(open_stream(think)) as stream:
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            return
        except OllamaError as exc:
            if think is None or not rejects_think(exc):
                raise
            log.info("Ollama refused think=%r for this model; asking again without it", think)
            if on_rejected is not None:
                on_rejected()
        else:
            yield first
            async for chunk in stream:
                yield chunk
            return
    async with contextlib.aclosing(open_stream(None)) as stream:
        async for chunk in stream:
            yield chunk
