"""Token counts for the answer record, read off the stream on its way to the relay."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.ollama.client import ChatChunk


class UsageMeter:
    """Passes Ollama's chunks through unchanged, noting what the final one says about the prompt."""

    def __init__(self, chunks: AsyncIterator[ChatChunk]) -> None:
        self._chunks = chunks
        self.prompt_eval_count: int | None = None

    def __aiter__(self) -> UsageMeter:
        return self

    async def __anext__(self) -> ChatChunk:
        chunk = await self._chunks.__anext__()
        if chunk.done and chunk.prompt_eval_count is not None:
            self.prompt_eval_count = chunk.prompt_eval_count
        return chunk

    async def aclose(self) -> None:
        """Close the stream underneath: the relay closes its chunks so Ollama stops generating."""
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()
