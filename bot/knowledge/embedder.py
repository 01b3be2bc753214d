"""Embeddings through Ollama's /api/embed, in batches, as normalised float32 rows."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from bot.knowledge.index import Matrix, normalize_rows
from bot.knowledge.refusals import EmbeddingFailed, EmbeddingModelMissing, EmbeddingUnavailable
from bot.ollama.errors import ModelNotFound, OllamaError, OllamaHTTPError, OllamaServerBusy, OllamaUnreachable
from bot.streaming.notes import describe_error

__all__ = ["EMBED_BATCH", "Embedder"]

log = logging.getLogger(__name__)

# Inputs per /api/embed call: big enough to keep Ollama busy, small enough that a question's own
# embedding never waits long behind an indexing batch on the same model.
EMBED_BATCH = 32


class EmbeddingSource(Protocol):
    """What embeds texts: one Ollama client, or the pool of hosts (which picks a host that has the model)."""

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """One L2-normalised vector per input, in order."""
        ...


class Embedder:
    """Turns texts into embeddings with one Ollama model at a time."""

    def __init__(self, ollama: EmbeddingSource, *, batch_size: int = EMBED_BATCH) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self._ollama = ollama
        self._batch_size = batch_size

    async def embed(self, model: str, texts: Sequence[str], *, progress: Callable[[int], None] | None = None) -> Matrix:
        """One normalised row per text; `progress` hears how many are done after each batch.

        Raises a KnowledgeRefusal saying what went wrong: EmbeddingModelMissing, EmbeddingFailed (Ollama
        refused, e.g. not an embedding model) or EmbeddingUnavailable (Ollama down, busy or broken).
        """
        rows: list[Matrix] = []
        dimensions: int | None = None
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            vectors = await self._call(model, batch)
            try:
                matrix = np.asarray(vectors, dtype=np.float32)
            except (TypeError, ValueError):
                matrix = np.zeros(0, dtype=np.float32)  # ragged: rows of different lengths
            if matrix.ndim != 2 or matrix.shape[0] != len(batch) or not np.isfinite(matrix).all():
                raise _broken(model, "embeddings of different lengths, or not numbers")
            if dimensions is not None and matrix.shape[1] != dimensions:
                raise _broken(model, f"{matrix.shape[1]} dimensions after {dimensions}")
            dimensions = matrix.shape[1]
            rows.append(normalize_rows(matrix))
            if progress is not None:
                progress(start + len(batch))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return rows[0] if len(rows) == 1 else np.vstack(rows)

    async def _call(self, model: str, texts: list[str]) -> list[list[float]]:
        try:
            return await self._ollama.embed(model, texts)
        except ModelNotFound:
            raise EmbeddingModelMissing(model) from None
        except OllamaUnreachable:
            raise EmbeddingUnavailable.unreachable() from None
        except OllamaServerBusy as exc:
            raise EmbeddingUnavailable(describe_error(exc)) from None
        except OllamaHTTPError as exc:
            if 400 <= exc.status < 500:
                raise EmbeddingFailed(model, exc.message) from None
            raise EmbeddingUnavailable(describe_error(exc)) from None
        except OllamaError as exc:
            raise EmbeddingUnavailable(describe_error(exc)) from None


def _broken(model: str, detail: str) -> EmbeddingUnavailable:
    log.warning("embedding model %s returned unusable vectors: %s", model, detail)
    return EmbeddingUnavailable.unusable(model, detail)
