"""A short-lived cache of the models installed on the Ollama server.

Autocomplete must answer within Discord's 3 seconds even when Ollama is slow or busy loading a
model, so lookups never wait long: a stale list beats a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging

from bot.clock import Clock
from bot.ollama.client import ModelInfo, OllamaClient
from bot.ollama.errors import OllamaError

log = logging.getLogger(__name__)

# A model's capabilities only change when it is re-pulled.
CAPABILITY_TTL = 300.0


class ModelCatalog:
    """Installed models from /api/tags, refreshed in the background when older than `ttl`."""

    def __init__(self, client: OllamaClient, clock: Clock, *, ttl: float = 30.0, patience: float = 1.0) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._patience = patience
        self._models: list[ModelInfo] = []
        self._fetched_at: float | None = None
        self._refresh: asyncio.Task[list[ModelInfo]] | None = None
        self._capabilities: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def quick(self) -> list[ModelInfo]:
        """The freshest list obtainable within `patience` seconds (possibly stale or empty)."""
        if self._is_fresh():
            return self._models
        task = self._start_refresh()
        done = asyncio.Event()
        task.add_done_callback(lambda _: done.set())
        await self._clock.wait_for(done, self._patience)
        return self._models

    async def fresh(self) -> list[ModelInfo]:
        """The current list, waiting for Ollama; raises OllamaError if it cannot be reached."""
        return await self._start_refresh()

    async def capabilities(self, model: str) -> tuple[str, ...]:
        """What `model` can do ("vision", "thinking", "tools", …) from /api/show, cached for a while.

        Raises OllamaError (e.g. ModelNotFound) when Ollama cannot say.
        """
        cached = self._capabilities.get(model)
        if cached is not None and self._clock.now() - cached[0] < CAPABILITY_TTL:
            return cached[1]
        details = await self._client.show(model)
        found = details.get("capabilities") or ()
        capabilities = tuple(str(c) for c in found) if isinstance(found, list) else ()
        self._capabilities[model] = (self._clock.now(), capabilities)
        return capabilities

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and self._clock.now() - self._fetched_at < self._ttl

    def _start_refresh(self) -> asyncio.Task[list[ModelInfo]]:
        """Start a listing unless one is already under way (then share it)."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.create_task(self._fetch(), name="ollama-model-list")
            self._refresh.add_done_callback(_consume_error)
        return self._refresh

    async def _fetch(self) -> list[ModelInfo]:
        models = await self._client.list_models()
        self._models = sorted(models, key=lambda m: m.name)
        self._fetched_at = self._clock.now()
        return self._models


def _consume_error(task: asyncio.Task[list[ModelInfo]]) -> None:
    if task.cancelled():
        return
    with contextlib.suppress(Exception):
        error = task.exception()
        if isinstance(error, OllamaError):
            log.info("could not list Ollama models: %s", type(error).__name__)
        elif error is not None:
            log.warning("listing Ollama models failed", exc_info=error)


def find_model(models: list[ModelInfo], name: str) -> ModelInfo | None:
    """The installed model `name` refers to (`llama3.2` means `llama3.2:latest`), case-insensitively."""
    wanted = name.strip().lower()
    if ":" not in wanted.rsplit("/", 1)[-1]:
        wanted += ":latest"
    for model in models:
        if model.name.lower() == wanted:
            return model
    return None


def closest_models(models: list[ModelInfo], name: str, count: int = 3) -> list[str]:
    """Installed names that look like `name`, best first (similar spelling, then the same family)."""
    by_lower = {m.name.lower(): m.name for m in models}
    wanted = name.strip().lower()
    close = difflib.get_close_matches(wanted, list(by_lower), n=count, cutoff=0.4)
    family = wanted.split(":")[0]
    same_family = [n for n in by_lower if n.startswith(family) and n not in close]
    return [by_lower[n] for n in [*close, *same_family][:count]]


def format_size(size: int) -> str:
    """Bytes in decimal gigabytes, as Ollama shows them ("" when unknown)."""
    return f"{size / 1e9:.1f} GB" if size else ""


def describe_model(model: ModelInfo) -> str:
    """`name · 4.7 GB · 8.2B` for menus."""
    return " · ".join(p for p in (model.name, format_size(model.size), model.parameter_size) if p)
