"""A pool of Ollama hosts: routing, per-host capacity, health checks and failover before the first token.

A request leases a slot on one host (:meth:`OllamaPool.lease`) and streams through the lease
(:meth:`Lease.stream`). Among the healthy hosts that have the model installed, the queue picks the
conversation's last host while it still has the model loaded, else a host with the model loaded,
else the least busy one for its capacity. A failure before the first token (connection refused,
timeout, 5xx, 503 "server busy", 404 model missing on that host only) moves the request to another
host that has the model, and the user sees nothing of it; when no host is left, the error names every
host tried and why. A host that fails is taken out of the rotation and probed back in with backoff.

A pool of one host behaves exactly as a single Ollama did: one FIFO queue of its capacity, 503 retried
with backoff, errors shown as they are, and no background checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from bot.clock import Clock
from bot.ollama.client import ChatChunk, LoadedModel, ModelInfo, OllamaClient
from bot.ollama.errors import (
    HostAttempt,
    ModelNotFound,
    NoHostAvailable,
    OllamaConnectionLost,
    OllamaError,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaProtocolError,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)
from bot.ollama.fair_share import QueuePosition, stream_with_busy_retry
from bot.ollama.pool_host import HostSnapshot, PoolHost, model_key
from bot.ollama.pool_queue import HostQueue

__all__ = ["Lease", "OllamaPool", "fails_over"]

log = logging.getLogger(__name__)

T = TypeVar("T")
OpenStream = Callable[[OllamaClient], AsyncGenerator[ChatChunk, None]]
OnWait = Callable[[QueuePosition], Awaitable[None]]
OnRetry = Callable[[int, float], Awaitable[None]]

# A check (version, models, loaded models) that takes longer than this counts as a failure.
CHECK_TIMEOUT = 5.0
# The first probe of a host that failed comes after about this long; then twice as long each time.
PROBE_FIRST_DELAY = 1.0
# A model no host lists makes the pool ask every host again, at most this often.
RELIST_INTERVAL = 5.0
# Conversations remembered for stickiness (oldest forgotten first).
STICKY_CONVERSATIONS = 10_000


def fails_over(error: OllamaError) -> bool:
    """Whether a failure before the first token should move the request to another host."""
    if isinstance(error, OllamaHTTPError):
        return error.status >= 500  # 5xx, 503 "server busy" included; a 4xx is the request's own fault
    return isinstance(
        error,
        OllamaUnreachable
        | OllamaFirstTokenTimeout
        | ModelNotFound
        | OllamaIncompleteStream
        | OllamaStreamError
        | OllamaProtocolError,
    )


def _takes_host_out(error: OllamaError) -> bool:
    """Failures that say the host itself is gone (rather than one request or one model failing)."""
    return isinstance(error, OllamaUnreachable | OllamaFirstTokenTimeout | OllamaConnectionLost | OllamaStalled)


def _short(error: BaseException) -> str:
    if isinstance(error, OllamaUnreachable):
        return error.detail
    if isinstance(error, ModelNotFound):
        return "model not installed"
    if isinstance(error, OllamaHTTPError):
        return f"HTTP {error.status}: {error.message}"
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:g} s"
    return str(error) or type(error).__name__


class OllamaPool:
    """Several Ollama hosts behind one queue (a single host is a pool of one)."""

    def __init__(
        self,
        hosts: Sequence[tuple[OllamaClient, int]],
        *,
        clock: Clock,
        check_interval: float = 30.0,
        check_timeout: float = CHECK_TIMEOUT,
        probe_first_delay: float = PROBE_FIRST_DELAY,
        busy_attempts: int = 4,
        busy_first_delay: float = 1.0,
        busy_max_delay: float = 8.0,
    ) -> None:
        if not hosts:
            raise ValueError("a pool needs at least one host")
        if not check_interval > 0:
            raise ValueError(f"check_interval must be positive, got {check_interval!r}")
        self.hosts = [
            PoolHost(
                client,
                capacity,
                index=index,
                probe_first=min(probe_first_delay, check_interval),
                probe_cap=check_interval,
            )
            for index, (client, capacity) in enumerate(hosts)
        ]
        self.clock = clock
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.busy_attempts = busy_attempts
        self.busy_first_delay = busy_first_delay
        self.busy_max_delay = busy_max_delay
        self.queue = HostQueue(self.hosts, self._candidates)
        self._sticky: OrderedDict[Hashable, str] = OrderedDict()
        self._monitor: asyncio.Task[None] | None = None
        self._monitor_wake: asyncio.Event | None = None
        self._listed_at: float | None = None
        self._closed = False

    @property
    def single(self) -> bool:
        """A pool of one host: it works exactly as one Ollama server did."""
        return len(self.hosts) == 1

    @property
    def base_url(self) -> str:
        """The first host's URL (the only one, in a pool of one)."""
        return self.hosts[0].url

    @property
    def capacity(self) -> int:
        """Requests all hosts serve at once."""
        return self.queue.limit

    @property
    def limit(self) -> int:
        """Requests all hosts serve at once (the name the single queue used)."""
        return self.queue.limit

    @property
    def active(self) -> int:
        """Slots held right now, on all hosts."""
        return self.queue.active

    @property
    def waiting(self) -> int:
        """Requests waiting for a host."""
        return self.queue.waiting

    def snapshots(self) -> list[HostSnapshot]:
        """What the pool knows about every host right now."""
        return [h.snapshot(self.queue.waiting_for(h)) for h in self.hosts]

    # ---- leasing and streaming

    @contextlib.asynccontextmanager
    async def lease(
        self, model: str, *, conversation: Hashable | None = None, on_wait: OnWait | None = None
    ) -> AsyncIterator[Lease]:
        """Wait for a slot on a host that can serve `model` (on_wait hears the queue position), and hold it."""
        self.start()
        if not self.single:
            await self._learn_where(model)
        lease = Lease(self, model, conversation, on_wait)
        await lease.acquire(frozenset())
        try:
            yield lease
        finally:
            lease.release()

    def _candidates(self, model: str, exclude: frozenset[str]) -> list[PoolHost]:
        """The hosts a request for `model` may go to now, apart from `exclude`."""
        hosts = [h for h in self.hosts if h.url not in exclude]
        if self.single:
            return hosts
        if all(h.up is False for h in self.hosts):
            return hosts  # every host failed lately: try them anyway, one may be back
        healthy = [h for h in hosts if h.up is not False]
        if any(h.up is not False and h.has(model) for h in self.hosts):
            return [h for h in healthy if h.has(model)]
        # Nobody lists the model: hosts never listed may have it; failing that, ask the others, whose
        # lists may be stale (they answer 404 at once if not, and the user is told which hosts lack it).
        return [h for h in healthy if h.has(model) is None] or healthy

    def _sticky_host(self, conversation: Hashable | None) -> str | None:
        return None if conversation is None else self._sticky.get(conversation)

    def _answered(self, host: PoolHost, model: str, conversation: Hashable | None) -> None:
        host.loaded.add(model_key(model))
        if conversation is None:
            return
        self._sticky[conversation] = host.url
        self._sticky.move_to_end(conversation)
        while len(self._sticky) > STICKY_CONVERSATIONS:
            self._sticky.popitem(last=False)

    def _failed(self, host: PoolHost, model: str, error: OllamaError, *, started: bool) -> None:
        """What a failed request teaches about its host."""
        host.errors[type(error)] += 1
        if self.single:
            return
        if isinstance(error, ModelNotFound) and not started:
            host.forget_model(model)
            self.queue.dispatch()
        elif _takes_host_out(error):
            self.mark_down(host, _short(error))

    def mark_down(self, host: PoolHost, problem: str) -> None:
        """Take a host out until a probe finds it answering."""
        host.mark_down(self.clock.now(), problem)
        self.queue.dispatch()  # requests waiting only for this host look elsewhere
        if self._monitor_wake is not None:
            self._monitor_wake.set()

    def _skipped(self, model: str, tried: Sequence[HostAttempt]) -> list[HostAttempt]:
        """Hosts with the model that were not tried because they are out of the pool, and why."""
        seen = {a.url for a in tried}
        return [
            HostAttempt(h.url, OllamaUnreachable(h.url, h.problem or "out of the pool"))
            for h in self.hosts
            if h.url not in seen and h.up is False and h.has(model) is not False
        ]

    async def _on_host(
        self, host: PoolHost, open_stream: OpenStream, model: str, conversation: Hashable | None
    ) -> AsyncGenerator[ChatChunk, None]:
        """Stream from one host, counting the request and learning from how it ends."""
        host.requests += 1
        started = False
        try:
            async with contextlib.aclosing(open_stream(host.client)) as stream:
                async for chunk in stream:
                    started = True
                    yield chunk
        except OllamaError as exc:
            self._failed(host, model, exc, started=started)
            raise
        self._answered(host, model, conversation)

    async def _learn_where(self, model: str) -> None:
        """Before routing a model no host lists, ask the hosts again (their lists may predate a pull)."""
        if any(h.up is not False and h.has(model) for h in self.hosts):
            return
        now = self.clock.now()
        if self._listed_at is not None and now - self._listed_at < RELIST_INTERVAL:
            return
        self._listed_at = now
        await self._gather_hosts(self._list_host, [h for h in self.hosts if h.up is not False] or self.hosts)
        self.queue.dispatch()

    # ---- health

    def start(self) -> None:
        """Start checking the hosts in the background (once; a pool of one is not checked)."""
        if self.single or self._closed or (self._monitor is not None and not self._monitor.done()):
            return
        self._monitor_wake = asyncio.Event()
        self._monitor = asyncio.create_task(self._watch(), name="ollama-pool-health")

    async def close(self) -> None:
        """Stop the background checks."""
        self._closed = True
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor

    async def refresh_models(self, host: PoolHost) -> None:
        """List one host's models again (after a pull or a delete)."""
        await self._list_host(host)

    async def check_all(self) -> None:
        """Check every host now (version, installed and loaded models)."""
        await self._gather_hosts(self._check, self.hosts)

    async def _watch(self) -> None:
        wake = self._monitor_wake
        assert wake is not None
        while True:
            now = self.clock.now()
            due = [h for h in self.hosts if now >= self._next_check_at(h)]
            if due:
                try:
                    await self._gather_hosts(self._check, due)
                except Exception:
                    log.exception("checking the Ollama hosts failed")
            now = self.clock.now()
            delay = min(self._next_check_at(h) for h in self.hosts) - now
            wake.clear()
            await self.clock.wait_for(wake, max(0.05, delay))

    def _next_check_at(self, host: PoolHost) -> float:
        if host.up is False:
            return host.next_probe_at
        if host.checked_at is None:
            return float("-inf")
        return host.checked_at + self.check_interval

    async def _check(self, host: PoolHost) -> None:
        """One health check: /api/version says whether the host answers, then its models are read."""
        try:
            version = await self._bounded(host.client.version())
        except (OllamaError, TimeoutError) as exc:
            if host.up is False:
                host.probe_failed(self.clock.now(), _short(exc))
            elif self.single:
                host.mark_down(self.clock.now(), _short(exc), announce=False)  # only /status shows it
            else:
                self.mark_down(host, _short(exc))
            return
        came_back = host.mark_up(self.clock.now(), version)
        await self._list_host(host)
        with contextlib.suppress(OllamaError, TimeoutError):
            host.set_loaded(await self._bounded(host.client.ps()))
        if came_back:
            self.queue.dispatch()

    async def _list_host(self, host: PoolHost) -> list[ModelInfo] | None:
        try:
            models = await self._bounded(host.client.list_models())
        except (OllamaError, TimeoutError) as exc:
            log.debug("could not list the models of %s: %s", host.url, _short(exc))
            return None
        host.set_models(models)
        return models

    async def _bounded(self, call: Awaitable[T]) -> T:
        async with asyncio.timeout(self.check_timeout):
            return await call

    @staticmethod
    async def _gather_hosts(check: Callable[[PoolHost], Awaitable[Any]], hosts: Sequence[PoolHost]) -> None:
        await asyncio.gather(*(check(h) for h in hosts))

    # ---- the model catalog's view: every host's models as one

    async def version(self) -> str:
        """The version of the first host that answers (hosts in the pool first)."""
        return await self._first_answer(lambda client: client.version(), self._ordered(None))

    async def list_models(self) -> list[ModelInfo]:
        """Every model installed on any host (hosts out of the pool count with what they last listed)."""
        if self.single:
            return await self.hosts[0].client.list_models()
        asked = [h for h in self.hosts if h.up is not False]
        results = await asyncio.gather(*(self._list_host(h) for h in asked))
        if asked and all(r is None for r in results) and not any(h.models for h in self.hosts):
            # Nobody answered and nothing is known: say why (or take the answer of a host that just came back).
            return await self._first_answer(lambda client: client.list_models(), self._ordered(None))
        merged: dict[str, ModelInfo] = {}
        for host in self.hosts:
            for key, info in (host.models or {}).items():
                merged.setdefault(key, info)
        return list(merged.values())

    async def show(self, model: str) -> dict[str, Any]:
        """/api/show from a host that has the model."""
        return await self._first_answer(lambda client: client.show(model), self._ordered(model))

    async def embed(self, model: str, inputs: Sequence[str]) -> list[list[float]]:
        """/api/embed on a host that has the embedding model (the next one if that host fails)."""
        return await self._first_answer(lambda client: client.embed(model, inputs), self._ordered(model))

    async def ps(self) -> list[LoadedModel]:
        """Every model loaded on any answering host (the smallest context when several hosts load one)."""
        if self.single:
            return await self.hosts[0].client.ps()
        asked = [h for h in self.hosts if h.up is not False] or self.hosts
        results = await asyncio.gather(*(self._bounded(h.client.ps()) for h in asked), return_exceptions=True)
        found: dict[str, LoadedModel] = {}
        errors: list[BaseException] = []
        for host, result in zip(asked, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, OllamaError | TimeoutError):
                    raise result
                errors.append(result)
                continue
            host.set_loaded(result)
            for entry in result:
                key = model_key(entry.name)
                known = found.get(key)
                if known is None or (entry.context_length or 0) < (known.context_length or 0):
                    found[key] = entry
        if len(errors) == len(asked):
            error = errors[0]
            raise error if isinstance(error, OllamaError) else OllamaUnreachable(asked[0].url, _short(error))
        return list(found.values())

    async def load(self, model: str, *, keep_alive: float | str | None = None) -> None:
        """Load the model on every host in the pool that has it (the warm-up)."""
        if self.single:
            await self.hosts[0].client.load(model, keep_alive=keep_alive)
            return
        await self._learn_where(model)
        targets = [h for h in self.hosts if h.up is not False and h.has(model) is not False] or self.hosts[:1]
        results = await asyncio.gather(
            *(h.client.load(model, keep_alive=keep_alive) for h in targets), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if not isinstance(error, OllamaError):
                raise error
        if len(errors) == len(targets):
            raise errors[0]

    def _ordered(self, model: str | None) -> list[PoolHost]:
        """Hosts to ask, best first: in the pool and with the model, then in the pool, then the rest."""

        def rank(host: PoolHost) -> tuple[int, int]:
            has = True if model is None else host.has(model)
            return (0 if host.up is not False else 1, {True: 0, None: 1, False: 2}[has])

        return sorted(self.hosts, key=lambda h: (*rank(h), h.index))

    async def _first_answer(self, call: Callable[[OllamaClient], Awaitable[T]], hosts: list[PoolHost]) -> T:
        """The first host's answer; the next host on failure; the most telling error when none answers."""
        errors: list[OllamaError] = []
        for host in hosts:
            try:
                return await call(host.client)
            except OllamaError as exc:
                if self.single:
                    raise
                errors.append(exc)
        # A model missing everywhere says more than an unreachable host.
        raise next((e for e in errors if isinstance(e, ModelNotFound)), errors[0])


class Lease:
    """A slot on one host of the pool, for one answer; streams, moving to another host on early failure."""

    def __init__(self, pool: OllamaPool, model: str, conversation: Hashable | None, on_wait: OnWait | None) -> None:
        self._pool = pool
        self.model = model
        self.conversation = conversation
        self._on_wait = on_wait
        self._seq = pool.queue.next_seq()
        self.host: PoolHost | None = None

    @property
    def url(self) -> str | None:
        """The base URL of the host held now."""
        return self.host.url if self.host is not None else None

    async def acquire(self, exclude: frozenset[str]) -> bool:
        """Wait for a slot on a host not in `exclude` (keeping the first place in line); False if none can serve."""
        self.host = await self._pool.queue.acquire(
            self.model,
            seq=self._seq,
            exclude=exclude,
            sticky=self._pool._sticky_host(self.conversation),
            on_wait=self._on_wait,
        )
        return self.host is not None

    def release(self) -> None:
        """Give the slot back."""
        host, self.host = self.host, None
        if host is not None:
            self._pool.queue.release(host)

    async def stream(
        self, open_stream: OpenStream, *, on_retry: OnRetry | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        """Stream `open_stream(client)` on the leased host; on failure before the first chunk, on another host.

        `on_retry(attempt, delay)` hears of a wait before trying again after "server busy" answers.
        """
        pool = self._pool
        if pool.single:
            host = self.host
            assert host is not None

            def open_here() -> AsyncGenerator[ChatChunk, None]:
                return pool._on_host(host, open_stream, self.model, self.conversation)

            retrying = stream_with_busy_retry(
                open_here,
                clock=pool.clock,
                attempts=pool.busy_attempts,
                first_delay=pool.busy_first_delay,
                max_delay=pool.busy_max_delay,
                on_retry=on_retry,
            )
            async with contextlib.aclosing(retrying) as stream:
                async for chunk in stream:
                    yield chunk
            return
        async with contextlib.aclosing(self._failing_over(open_stream, on_retry)) as stream:
            async for chunk in stream:
                yield chunk

    async def _failing_over(self, open_stream: OpenStream, on_retry: OnRetry | None) -> AsyncGenerator[ChatChunk, None]:
        pool = self._pool
        attempts: list[HostAttempt] = []
        failed: dict[str, OllamaError] = {}  # this round's failures, by host
        busy_round = 1
        delay = pool.busy_first_delay
        while True:
            host = self.host
            if host is not None:
                failure: OllamaError
                async with contextlib.aclosing(pool._on_host(host, open_stream, self.model, self.conversation)) as gen:
                    try:
                        first = await anext(gen)
                    except StopAsyncIteration:
                        return
                    except OllamaError as exc:
                        if not fails_over(exc):
                            raise
                        failure = exc
                    else:
                        yield first
                        async for chunk in gen:
                            yield chunk
                        return
                attempts.append(HostAttempt(host.url, failure))
                failed[host.url] = failure
                log.info(
                    "%s could not answer with %s before the first token (%s); trying another host",
                    host.url,
                    self.model,
                    _short(failure),
                )
                if await self._move(frozenset(failed)):
                    continue
            busy = [url for url, error in failed.items() if isinstance(error, OllamaHTTPError) and error.status == 503]
            if busy and busy_round < pool.busy_attempts:
                # Every host that has the model is busy: wait, as with one busy Ollama, then try them again.
                busy_round += 1
                if on_retry is not None:
                    try:
                        await on_retry(busy_round, delay)
                    except Exception:
                        log.warning("busy-retry callback failed before attempt %d", busy_round, exc_info=True)
                await pool.clock.sleep(delay)
                delay = min(delay * 2, pool.busy_max_delay)
                for url in busy:
                    del failed[url]
                if await self._move(frozenset(failed)):
                    continue
            raise NoHostAvailable(self.model, [*attempts, *pool._skipped(self.model, attempts)])

    async def _move(self, exclude: frozenset[str]) -> bool:
        """Trade the slot held for one on another host not in `exclude`; False (keeping the slot) if none can serve."""
        if not self._pool._candidates(self.model, exclude):
            return False
        self.release()
        return await self.acquire(exclude)
