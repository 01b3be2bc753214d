"""HealthServer over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from bot.health import HealthServer
from bot.metrics import Metrics


@dataclass
class Probe:
    """Controllable stand-ins for the gateway and Ollama checks, plus a hand-wound clock."""

    gateway: bool = True
    ollama_reason: str | None = None
    now: float = 1000.0
    calls: int = 0
    block: asyncio.Event | None = None
    raises: Exception | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def gateway_ok(self) -> bool:
        return self.gateway

    async def ollama_ok(self) -> str | None:
        self.calls += 1
        self.started.set()
        if self.block is not None:
            await self.block.wait()
        if self.raises is not None:
            raise self.raises
        return self.ollama_reason

    def clock(self) -> float:
        return self.now


Serve = Callable[..., Awaitable[tuple[HealthServer, str]]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[HealthServer] = []

    async def start(
        probe: Probe,
        metrics: Metrics | None = None,
        *,
        ollama_check_ttl: float = 10.0,
        ollama_check_timeout: float = 3.0,
    ) -> tuple[HealthServer, str]:
        server = HealthServer(
            metrics or Metrics(),
            gateway_ok=probe.gateway_ok,
            ollama_ok=probe.ollama_ok,
            ollama_check_ttl=ollama_check_ttl,
            ollama_check_timeout=ollama_check_timeout,
            clock=probe.clock,
        )
        await server.start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


async def get(http: aiohttp.ClientSession, url: str, method: str = "GET") -> tuple[int, str, str]:
    async with http.request(method, url) as response:
        return response.status, await response.text(), response.headers.get("Content-Type", "")


@pytest.mark.parametrize(
    ("gateway", "ollama_reason", "status", "body"),
    [
        (True, None, 200, "ok\n"),
        (False, None, 503, "discord gateway not connected\n"),
        (False, "cannot reach Ollama at http://localhost:11434", 503, "discord gateway not connected\n"),
        (True, "cannot reach Ollama at http://localhost:11434", 503, "cannot reach Ollama at http://localhost:11434\n"),
        (True, "first line\nsecond line", 503, "first line second line\n"),
    ],
)
async def test_healthz(
    serve: Serve, http: aiohttp.ClientSession, gateway: bool, ollama_reason: str | None, status: int, body: str
) -> None:
    _, url = await serve(Probe(gateway=gateway, ollama_reason=ollama_reason))
    assert await get(http, f"{url}/healthz") == (status, body, "text/plain; charset=utf-8")


@pytest.mark.parametrize(("gateway", "status"), [(True, 200), (False, 503)])
async def test_head_healthz_has_status_and_no_body(
    serve: Serve, http: aiohttp.ClientSession, gateway: bool, status: int
) -> None:
    _, url = await serve(Probe(gateway=gateway))
    assert (await get(http, f"{url}/healthz", "HEAD"))[:2] == (status, "")


async def test_ollama_check_is_cached_for_the_ttl(serve: Serve, http: aiohttp.ClientSession) -> None:
    probe = Probe()
    _, url = await serve(probe, ollama_check_ttl=10)

    for _ in range(3):
        assert (await get(http, f"{url}/healthz"))[0] == 200
    assert probe.calls == 1

    probe.ollama_reason = "cannot reach Ollama at http://localhost:11434"
    probe.now += 9.9
    assert (await get(http, f"{url}/healthz"))[0] == 200
    assert probe.calls == 1

    probe.now += 0.1
    assert await get(http, f"{url}/healthz") == (503, f"{probe.ollama_reason}\n", "text/plain; charset=utf-8")
    assert probe.calls == 2

    # Failures are cached too, so a down Ollama is not probed on every request either.
    probe.ollama_reason = None
    assert (await get(http, f"{url}/healthz"))[0] == 503
    assert probe.calls == 2
    probe.now += 10
    assert (await get(http, f"{url}/healthz"))[0] == 200
    assert probe.calls == 3


async def test_gateway_down_does_not_probe_ollama(serve: Serve, http: aiohttp.ClientSession) -> None:
    probe = Probe(gateway=False)
    _, url = await serve(probe)
    assert (await get(http, f"{url}/healthz"))[0] == 503
    assert probe.calls == 0


async def test_simultaneous_probes_share_one_check(serve: Serve, http: aiohttp.ClientSession) -> None:
    probe = Probe(block=asyncio.Event())
    _, url = await serve(probe)
    first = asyncio.create_task(get(http, f"{url}/healthz"))
    second = asyncio.create_task(get(http, f"{url}/healthz"))
    await asyncio.wait_for(probe.started.wait(), 5)
    for _ in range(20):
        await asyncio.sleep(0)
    assert probe.block is not None
    probe.block.set()
    assert [r[0] for r in await asyncio.gather(first, second)] == [200, 200]
    assert probe.calls == 1


async def test_slow_ollama_check_counts_as_unreachable(serve: Serve, http: aiohttp.ClientSession) -> None:
    probe = Probe(block=asyncio.Event())
    _, url = await serve(probe, ollama_check_timeout=0.05)
    assert await get(http, f"{url}/healthz") == (
        503,
        "Ollama did not answer within 0.05 s\n",
        "text/plain; charset=utf-8",
    )


async def test_check_that_raises_is_unhealthy_and_logged(
    serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    probe = Probe(raises=RuntimeError("bug"))
    _, url = await serve(probe)
    with caplog.at_level(logging.WARNING, logger="bot.health"):
        status, body, _ = await get(http, f"{url}/healthz")
    assert (status, body) == (503, "Ollama check failed: RuntimeError('bug')\n")
    assert "Ollama health check raised" in caplog.text


async def test_metrics_page(serve: Serve, http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.replies.inc(outcome="done")
    _, url = await serve(Probe(), metrics)
    status, body, content_type = await get(http, f"{url}/metrics")
    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    assert body == metrics.render()
    assert 'ollacord_replies_total{outcome="done"} 1.0\n' in body
    metrics.tokens.inc(5)
    assert "ollacord_tokens_total 5.0\n" in (await get(http, f"{url}/metrics"))[1]


@pytest.mark.parametrize("path", ["/", "/health", "/healthz/", "/metrics/x", "/favicon.ico"])
async def test_other_paths_are_404(serve: Serve, http: aiohttp.ClientSession, path: str) -> None:
    _, url = await serve(Probe())
    assert (await get(http, f"{url}{path}"))[0] == 404


async def test_access_log_is_off(serve: Serve, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    _, url = await serve(Probe())
    with caplog.at_level(logging.DEBUG, logger="aiohttp.access"):
        await get(http, f"{url}/healthz")
    assert not [r for r in caplog.records if r.name == "aiohttp.access"]


async def test_port_before_start_is_an_error() -> None:
    probe = Probe()
    server = HealthServer(Metrics(), gateway_ok=probe.gateway_ok, ollama_ok=probe.ollama_ok)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_close_frees_the_port(http: aiohttp.ClientSession) -> None:
    probe = Probe()
    server = HealthServer(Metrics(), gateway_ok=probe.gateway_ok, ollama_ok=probe.ollama_ok)
    await server.start()
    port = server.port
    assert port > 0
    assert (await get(http, f"http://127.0.0.1:{port}/healthz"))[0] == 200
    await server.close()
    await server.close()  # idempotent

    with pytest.raises(aiohttp.ClientConnectionError):
        await get(http, f"http://127.0.0.1:{port}/healthz")
    again = HealthServer(Metrics(), gateway_ok=probe.gateway_ok, ollama_ok=probe.ollama_ok, port=port)
    await again.start()
    try:
        assert again.port == port
        assert (await get(http, f"http://127.0.0.1:{port}/healthz"))[0] == 200
    finally:
        await again.close()


async def test_close_during_a_pending_check_does_not_hang(serve: Serve, http: aiohttp.ClientSession) -> None:
    probe = Probe(block=asyncio.Event())
    server, url = await serve(probe)
    request = asyncio.create_task(get(http, f"{url}/healthz"))
    await asyncio.wait_for(probe.started.wait(), 5)
    await asyncio.wait_for(server.close(), 5)
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(request, 5)
