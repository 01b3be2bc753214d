"""A short-lived cache of the models installed on the Ollama server(s), and what each one can do.

With a pool of hosts, the catalog sees the union of every host's models (see OllamaPool.list_models).

Autocomplete must answer within Discord's 3 seconds even when Ollama is slow or busy loading a
model, so lookups never wait long: a stale list beats a timeout.

What a model can do comes from /api/show. Servers before 0.6.4 do not list `capabilities`, and
0.6.4-0.6.7 left "vision" out for models with a separate projector file (ollama/ollama#10509), so
vision is also inferred the way those servers' own code decided it: a projector (`projector_info`,
or "clip"/"mllama" in `details.families`), or a vision encoder in the model file
(`<arch>.vision.block_count`, what v0.6.4's Capabilities() checked).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.clock import Clock
from bot.ollama.client import LoadedModel, ModelInfo
from bot.ollama.errors import OllamaError

log = logging.getLogger(__name__)

T = TypeVar("T")

# A model's capabilities only change when it is re-pulled.
CAPABILITY_TTL = 300.0
# Which models are loaded (and with what context) changes whenever Ollama loads or evicts one.
LOADED_TTL = 10.0
# Ollama's default context when neither the request nor the Modelfile sets num_ctx: 2048 until
# v0.6.7, then 4096 (envconfig.ContextLength), which newer servers keep on machines with less than
# 23 GiB of VRAM (server/routes.go picks 32768 or 262144 above that, which the API does not show).
OLD_DEFAULT_NUM_CTX = 2048
DEFAULT_NUM_CTX = 4096
_VISION_FAMILIES = frozenset({"clip", "mllama"})
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


class ModelSource(Protocol):
    """Where the catalog reads models from: one Ollama client, or a pool of hosts seen as one."""

    async def list_models(self) -> list[ModelInfo]:
        """Installed models (/api/tags)."""
        ...

    async def show(self, model: str) -> dict[str, Any]:
        """One model's details (/api/show)."""
        ...

    async def ps(self) -> list[LoadedModel]:
        """Loaded models (/api/ps)."""
        ...

    async def version(self) -> str:
        """The server version (/api/version)."""
        ...


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the bot needs to know about one model, read from /api/show."""

    capabilities: tuple[str, ...]
    # model_info["<arch>.context_length"]: the context the model was trained for (Ollama never goes above it).
    trained_context: int | None = None
    # `PARAMETER num_ctx` from the model's Modelfile, which Ollama uses when a request does not set num_ctx.
    modelfile_num_ctx: int | None = None
    # False on servers before 0.6.4: the capabilities were inferred, not listed by Ollama.
    listed: bool = True

    def supports(self, capability: str) -> bool:
        """Whether the model has `capability` ("vision", "thinking", "tools", …)."""
        return capability in self.capabilities


def profile_from_show(details: Mapping[str, Any]) -> ModelProfile:
    """Read a /api/show response, old or new, into a ModelProfile."""
    listed_caps = details.get("capabilities")
    listed = isinstance(listed_caps, list)
    capabilities = [str(c) for c in listed_caps] if isinstance(listed_caps, list) else []
    model_info = details.get("model_info")
    info: Mapping[str, Any] = model_info if isinstance(model_info, dict) else {}
    if not listed:
        # Older servers answered every non-embedding model with text completion.
        capabilities.append("embedding" if _info_key(info, "pooling_type") is not None else "completion")
    if "vision" not in capabilities and _sees_images(details, info, listed=listed):
        capabilities.append("vision")
    context = _info_key(info, "context_length")
    return ModelProfile(
        capabilities=tuple(capabilities),
        trained_context=context if isinstance(context, int) and not isinstance(context, bool) and context > 0 else None,
        modelfile_num_ctx=_parameter_int(details.get("parameters"), "num_ctx"),
        listed=listed,
    )


def _info_key(info: Mapping[str, Any], suffix: str) -> Any:
    """model_info["<arch>.<suffix>"], the architecture read from general.architecture."""
    arch = info.get("general.architecture")
    if isinstance(arch, str) and f"{arch}.{suffix}" in info:
        return info[f"{arch}.{suffix}"]
    return None


def _sees_images(details: Mapping[str, Any], info: Mapping[str, Any], *, listed: bool) -> bool:
    projector = details.get("projector_info")
    if isinstance(projector, dict) and projector and projector.get("clip.has_vision_encoder") is not False:
        return True
    model_details = details.get("details")
    families = model_details.get("families") if isinstance(model_details, dict) else None
    if isinstance(families, list) and _VISION_FAMILIES.intersection(str(f) for f in families):
        return True
    # A server that lists capabilities has already judged a built-in vision encoder (and may have
    # withheld "vision" on purpose, e.g. for a runner that cannot serve it yet).
    return not listed and _info_key(info, "vision.block_count") is not None


def _parameter_int(parameters: object, key: str) -> int | None:
    """An integer parameter from /api/show's `parameters` text ("num_ctx                        8192")."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        name, _, value = line.strip().partition(" ")
        if name == key:
            try:
                number = int(value.strip())
            except ValueError:
                return None
            return number if number > 0 else None
    return None


def default_num_ctx(version: str) -> int:
    """The num_ctx a server of this version uses when nobody sets one (dev builds count as new)."""
    match = _VERSION.match(version.strip().removeprefix("v"))
    if match is None:
        return DEFAULT_NUM_CTX
    release = tuple(int(part) for part in match.groups())
    if release == (0, 0, 0) or release >= (0, 6, 7):
        return DEFAULT_NUM_CTX
    return OLD_DEFAULT_NUM_CTX


class ModelCatalog:
    """Installed models from /api/tags, refreshed in the background when older than `ttl`."""

    def __init__(self, client: ModelSource, clock: Clock, *, ttl: float = 30.0, patience: float = 1.0) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._patience = patience
        self._models: list[ModelInfo] = []
        self._fetched_at: float | None = None
        self._refresh: asyncio.Task[list[ModelInfo]] | None = None
        self._profiles: dict[str, tuple[float, ModelProfile]] = {}
        self._loaded: tuple[float, dict[str, int]] | None = None
        self._default_num_ctx: tuple[float, int] | None = None
        # Lookups under way: answers that start together (a burst of questions) share one request to Ollama.
        self._pending: dict[str, asyncio.Future[Any]] = {}

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
        return (await self.profile(model)).capabilities

    async def profile(self, model: str) -> ModelProfile:
        """Capabilities and context facts of `model` from /api/show, cached for a while; raises OllamaError."""
        cached = self._profiles.get(model)
        if cached is not None and self._clock.now() - cached[0] < CAPABILITY_TTL:
            return cached[1]
        profile = profile_from_show(await self._shared(f"show:{model}", lambda: self._client.show(model)))
        self._profiles[model] = (self._clock.now(), profile)
        return profile

    def forget(self, model: str) -> None:
        """Drop what is cached about `model` (Ollama contradicted it, e.g. after a re-pull)."""
        self._profiles.pop(model, None)

    async def loaded_context(self, model: str) -> int | None:
        """The context `model` is loaded with right now (/api/ps), or None if not loaded or unknown.

        Only a model found loaded is answered from the cache: one that was not may have been loaded since.
        """
        wanted = _tagged(model)
        now = self._clock.now()
        if self._loaded is not None and now - self._loaded[0] < LOADED_TTL and wanted in self._loaded[1]:
            return self._loaded[1][wanted]
        try:
            loaded = await self._shared("ps", self._client.ps)
        except OllamaError:
            return None
        contexts: dict[str, int] = {}
        for entry in loaded:
            if entry.context_length:
                contexts[entry.name.lower()] = entry.context_length
        self._loaded = (now, contexts)
        return contexts.get(wanted)

    async def default_num_ctx(self) -> int:
        """The num_ctx Ollama uses when nobody sets one, by server version; the older, smaller one if unknown."""
        now = self._clock.now()
        if self._default_num_ctx is None or now - self._default_num_ctx[0] >= CAPABILITY_TTL:
            try:
                found = default_num_ctx(await self._shared("version", self._client.version))
            except OllamaError:
                return OLD_DEFAULT_NUM_CTX
            self._default_num_ctx = (now, found)
        return self._default_num_ctx[1]

    async def _shared(self, key: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, or the same call already under way."""
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(call())
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._forget_pending(key, done))
        result: T = await asyncio.shield(pending)
        return result

    def _forget_pending(self, key: str, done: asyncio.Future[Any]) -> None:
        if self._pending.get(key) is done:
            del self._pending[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a caller that was cancelled meanwhile leaves no warning

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


def _tagged(name: str) -> str:
    """`name` lowercased with Ollama's default tag: `llama3.2` means `llama3.2:latest`."""
    wanted = name.strip().lower()
    if ":" not in wanted.rsplit("/", 1)[-1]:
        wanted += ":latest"
    return wanted


def find_model(models: list[ModelInfo], name: str) -> ModelInfo | None:
    """The installed model `name` refers to (`llama3.2` means `llama3.2:latest`), case-insensitively."""
    wanted = _tagged(name)
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
