"""One Ollama host of a pool: its client, its capacity, and what the pool has learned about it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from bot.backoff import Backoff
from bot.ollama.client import LoadedModel, ModelInfo, OllamaClient
from bot.ollama.errors import OllamaError

__all__ = ["HostSnapshot", "PoolHost", "model_key"]

log = logging.getLogger(__name__)


def model_key(name: str) -> str:
    """How Ollama matches model names: case-insensitive, `llama3.2` meaning `llama3.2:latest`."""
    wanted = name.strip().lower()
    if ":" not in wanted.rsplit("/", 1)[-1]:
        wanted += ":latest"
    return wanted


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """What the pool knows about one host, for /status and the metrics."""

    url: str
    up: bool | None  # None: not checked yet
    problem: str | None
    version: str | None
    models: tuple[str, ...] | None  # None: never listed
    loaded: tuple[str, ...]
    active: int
    capacity: int
    waiting: int  # requests in the queue this host could serve
    requests: int
    errors: tuple[tuple[type[OllamaError], int], ...]


class PoolHost:
    """A host's client and capacity, its health (with the backoff of its probes) and its models."""

    def __init__(
        self, client: OllamaClient, capacity: int, *, index: int, probe_first: float, probe_cap: float
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self.client = client
        self.url = client.base_url
        self.capacity = capacity
        self.index = index
        self.active = 0
        self.up: bool | None = None
        self.problem: str | None = None
        self.version: str | None = None
        self.models: dict[str, ModelInfo] | None = None  # by model_key; None until the first listing
        self.loaded: set[str] = set()  # model keys loaded right now, from /api/ps and from answers
        self.loaded_models: list[LoadedModel] = []
        self.checked_at: float | None = None
        self.next_probe_at = 0.0
        self.requests = 0
        self.errors: Counter[type[OllamaError]] = Counter()
        self._probe_first = probe_first
        self._probe_cap = probe_cap
        self._backoff = Backoff(first=probe_first, cap=probe_cap)

    @property
    def free(self) -> bool:
        """Whether a request may start here now."""
        return self.active < self.capacity

    @property
    def busy_ratio(self) -> float:
        """How busy the host is relative to its capacity."""
        return self.active / self.capacity

    def has(self, model: str) -> bool | None:
        """Whether the model is installed here: None when the host was never listed."""
        if self.models is None:
            return None
        return model_key(model) in self.models

    def has_loaded(self, model: str) -> bool:
        """Whether the model was loaded here when last seen."""
        return model_key(model) in self.loaded

    def set_models(self, models: Iterable[ModelInfo]) -> None:
        """What /api/tags listed."""
        self.models = {model_key(m.name): m for m in models}

    def set_loaded(self, models: list[LoadedModel]) -> None:
        """What /api/ps listed."""
        self.loaded_models = models
        self.loaded = {model_key(m.name) for m in models}

    def forget_model(self, model: str) -> None:
        """The host said the model is not there (404): stop routing it here until the next listing."""
        key = model_key(model)
        if self.models is not None:
            self.models.pop(key, None)
        self.loaded.discard(key)

    def mark_up(self, now: float, version: str | None = None) -> bool:
        """The host answered; True if it was down (or unknown) before."""
        came_back = self.up is not True
        if self.up is False and self.problem is not None:
            log.info("Ollama host %s answers again", self.url)
        self.up = True
        self.problem = None
        self.checked_at = now
        if version is not None:
            self.version = version
        self._backoff = Backoff(first=self._probe_first, cap=self._probe_cap)
        return came_back

    def mark_down(self, now: float, problem: str, *, announce: bool = True) -> None:
        """The host failed: out of the rotation until a probe finds it answering (probes back off)."""
        if self.up is not False:
            if announce:
                log.warning("Ollama host %s is taken out of the pool: %s", self.url, problem)
            self._backoff = Backoff(first=self._probe_first, cap=self._probe_cap)
        self.up = False
        self.problem = problem
        self.checked_at = now
        self.loaded.clear()
        self.next_probe_at = now + self._backoff.next_delay()

    def probe_failed(self, now: float, problem: str) -> None:
        """A probe of a down host failed again: wait longer before the next one."""
        self.problem = problem
        self.checked_at = now
        self.next_probe_at = now + self._backoff.next_delay()

    def snapshot(self, waiting: int) -> HostSnapshot:
        """A frozen view of the host."""
        return HostSnapshot(
            url=self.url,
            up=self.up,
            problem=self.problem,
            version=self.version,
            models=tuple(sorted(m.name for m in self.models.values())) if self.models is not None else None,
            loaded=tuple(sorted(self.loaded)),
            active=self.active,
            capacity=self.capacity,
            waiting=waiting,
            requests=self.requests,
            errors=tuple(self.errors.items()),
        )
