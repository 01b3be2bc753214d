"""Optional HTTP endpoint: /healthz for container and uptime probes, /metrics for Prometheus."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from bot.leadership import LeaderStatus
from bot.metrics import CONTENT_TYPE, Metrics

__all__ = ["HealthServer"]

logger = logging.getLogger(__name__)

GATEWAY_DOWN = "discord gateway not connected"
"""The /healthz reason when `gateway_ok()` is false."""


class HealthServer:
    """Serves GET/HEAD /healthz and GET /metrics on host:port until closed."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        gateway_ok: Callable[[], bool],
        ollama_ok: Callable[[], Awaitable[str | None]],
        host: str = "127.0.0.1",
        port: int = 0,
        ollama_check_ttl: float = 10.0,
        ollama_check_timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        role: Callable[[], LeaderStatus] | None = None,
    ) -> None:
        """`role`: with active/standby instances (PostgreSQL), this instance's role and the active instance."""
        self._metrics = metrics
        self._role = role
        self._gateway_ok = gateway_ok
        self._ollama_ok = ollama_ok
        self._host = host
        self._requested_port = port
        self._ttl = ollama_check_ttl
        self._check_timeout = ollama_check_timeout
        self._clock = clock
        self._checked_at: float | None = None
        self._ollama_reason: str | None = None
        self._check: asyncio.Task[str | None] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when constructed with port 0); only valid after start()."""
        if self._port is None:
            raise RuntimeError("HealthServer is not started")
        return self._port

    async def start(self) -> None:
        """Bind host:port and start serving."""
        if self._runner is not None:
            raise RuntimeError("HealthServer is already started")
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)  # add_get also answers HEAD
        app.router.add_get("/metrics", self._metrics_page)
        # Probes arrive every few seconds; aiohttp's access log would write each one at INFO.
        # A short shutdown timeout keeps a stuck scraper from holding up the bot's shutdown.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        logger.info("health endpoint listening on http://%s:%d (/healthz, /metrics)", self._host, self._port)

    async def close(self) -> None:
        """Stop serving and release the port; safe to call more than once."""
        check, self._check = self._check, None
        if check is not None and not check.done():
            check.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logger.info("health endpoint closed")

    async def healthy(self) -> str | None:
        """None when the gateway is connected and Ollama answers, else a one-line reason."""
        try:
            gateway = self._gateway_ok()
        except Exception as exc:
            logger.warning("gateway health check raised", exc_info=True)
            return f"gateway check failed: {exc!r}"
        if not gateway:
            return GATEWAY_DOWN
        return await self._ollama_status()

    async def _ollama_status(self) -> str | None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._ttl:
            return self._ollama_reason
        if self._check is None:
            # One shared check: simultaneous probes (Docker plus Prometheus) cost Ollama one request.
            self._check = asyncio.get_running_loop().create_task(self._run_check())
        check = self._check
        # Shielded so a probe that disconnects mid-check does not cancel the check the others wait on.
        return await asyncio.shield(check)

    async def _run_check(self) -> str | None:
        try:
            async with asyncio.timeout(self._check_timeout):
                reason = await self._ollama_ok()
        except TimeoutError:
            reason = f"Ollama did not answer within {self._check_timeout:g} s"
        except Exception as exc:
            logger.warning("Ollama health check raised", exc_info=True)
            reason = f"Ollama check failed: {exc!r}"
        self._ollama_reason = reason
        self._checked_at = self._clock()
        self._check = None
        return reason

    async def _healthz(self, request: web.Request) -> web.Response:
        role = self._role() if self._role is not None else None
        if role is not None and not role.active:
            # A standby is healthy while it can wait for the lock: it answers no one by design.
            if role.problem is not None:
                return self._unhealthy(f"standby: {role.problem}")
            active = f"{role.active_instance} is active" if role.active_instance else "no instance is active yet"
            return web.Response(text=f"standby: {active}\n", headers={hdrs.CACHE_CONTROL: "no-store"})
        reason = await self.healthy()
        if reason is None:
            text = "ok\n" if role is None else f"ok: active instance {role.active_instance}\n"
            return web.Response(text=text, headers={hdrs.CACHE_CONTROL: "no-store"})
        return self._unhealthy(reason)

    @staticmethod
    def _unhealthy(reason: str) -> web.Response:
        # One line, so `curl` output and Docker's health log stay readable.
        line = " ".join(reason.split()) or "unhealthy"
        return web.Response(status=503, text=f"{line}\n", headers={hdrs.CACHE_CONTROL: "no-store"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        body = self._metrics.render().encode("utf-8")
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})
