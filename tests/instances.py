"""Bot instances as real processes (`python -m bot` through tests/fakes/run_bot_against_fakes.py) for the
active/standby, failover and shard tests: their output line by line, /healthz, SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_ollama import FakeOllama
from tests.postgres_server import free_port

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "fakes" / "run_bot_against_fakes.py"
# Generous: every wait ends as soon as its condition holds; this only bounds a broken case.
TIMEOUT = 45.0
# Short for the suite, long enough that a loaded 2-core machine does not miss renewals by accident.
TEST_LEASE = "3"


class Instance:
    """One bot process; `name` is its INSTANCE_NAME."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, health_port: int) -> None:
        self.name = name
        self.process = process
        self.health_port = health_port
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, name: str, discord: FakeDiscord, ollama: FakeOllama, workdir: Path, *, database_url: str, **env: str
    ) -> Instance:
        health_port = free_port()
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "DISCORD_TOKEN": TOKEN,
            "OLLAMA_HOST": ollama.url,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(workdir / name),
            "INSTANCE_NAME": name,
            "LEADER_LEASE_SECONDS": TEST_LEASE,
            "HEALTH_PORT": str(health_port),
            "EDIT_INTERVAL": "0.2",
            "SHUTDOWN_GRACE_SECONDS": "0.5",
            "LOG_LEVEL": "INFO",
            **env,
        }
        workdir.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RUNNER),
            discord.base_url,
            discord.gateway_url,
            "--guild-ready-timeout",
            "0.05",
            "run",
            cwd=workdir,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(name, process, health_port)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def active(self) -> bool:
        """Whether it has said it is active (and not stepped down since)."""
        for line in reversed(self.lines):
            if "lost the active/standby lock" in line or "standby for" in line:
                return False
            if f"as {self.name}" in line and "active for" in line:
                return True
        return False

    async def wait_for_output(self, text: str, timeout: float = TIMEOUT) -> None:
        await self.wait_until(lambda: text in self.output, timeout, f"{text!r} in the output of {self.name}")

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if self.process.returncode is not None:
                await self._reader
                if condition():
                    return
                raise AssertionError(f"{self.name} exited ({self.process.returncode}) before {what}:\n{self.output}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.output}")
            await asyncio.sleep(0.02)

    async def health(self) -> tuple[int, str]:
        """GET /healthz: (status, body); (0, reason) when nothing answers."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=aiohttp.ClientTimeout(total=5)
                ) as response,
            ):
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, str(exc)

    async def wait_for_health(self, expected: str, timeout: float = TIMEOUT) -> str:
        """Poll /healthz until its body contains `expected`; return the body."""
        deadline = asyncio.get_running_loop().time() + timeout
        body = ""
        while asyncio.get_running_loop().time() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{self.output}")
            _, body = await self.health()
            if expected in body:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"/healthz of {self.name} never said {expected!r} (last: {body!r}):\n{self.output}")

    async def terminate(self, timeout: float = TIMEOUT) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} still running {timeout} s after SIGTERM:\n{self.output}") from None
        await self._reader
        return code

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no hand-over; the kernel closes its sockets."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await asyncio.wait({self._reader}, timeout=5)
        self._reader.cancel()
