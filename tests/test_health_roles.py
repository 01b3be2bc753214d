"""/healthz with active and standby instances: the role, and which instance is active."""

from __future__ import annotations

import aiohttp
import pytest

from bot.health import HealthServer
from bot.leadership import LeaderStatus
from bot.metrics import Metrics


async def body_of(role: LeaderStatus, *, gateway: bool = True, ollama: str | None = None) -> tuple[int, str]:
    async def ollama_ok() -> str | None:
        return ollama

    server = HealthServer(Metrics(), gateway_ok=lambda: gateway, ollama_ok=ollama_ok, role=lambda: role)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.port}/healthz") as got:
            return got.status, await got.text()
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (LeaderStatus(active=True, active_instance="bot-a"), (200, "ok: active instance bot-a\n")),
        (LeaderStatus(active=False, active_instance="bot-a"), (200, "standby: bot-a is active\n")),
        (LeaderStatus(active=False, active_instance=None), (200, "standby: no instance is active yet\n")),
        (
            LeaderStatus(active=False, active_instance="bot-a", problem="can't reach PostgreSQL at db:5432/x"),
            (503, "standby: can't reach PostgreSQL at db:5432/x\n"),
        ),
    ],
)
async def test_the_role_and_the_active_instance(role: LeaderStatus, expected: tuple[int, str]) -> None:
    assert await body_of(role) == expected


async def test_a_standby_is_not_judged_by_the_gateway_it_does_not_use() -> None:
    assert (await body_of(LeaderStatus(active=False, active_instance="bot-a"), gateway=False))[0] == 200


async def test_an_active_instance_is_judged_as_before() -> None:
    status, body = await body_of(LeaderStatus(active=True, active_instance="bot-a"), ollama="Ollama is down")
    assert (status, body) == (503, "Ollama is down\n")
