"""Through the real entry point (`python -m bot` in a child process): start-up while Discord can't be reached,
and SIGTERM while the gateway is reconnecting."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import TOKEN, Harness
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_ollama import ChatScript, FakeOllama

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "fakes" / "run_bot_against_fakes.py"
# Generous: every wait below ends as soon as its condition holds; these only bound a broken case.
TIMEOUT = 30.0


class BotProcess:
    """The bot's real entry point in a child process, its output collected line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, port: int, ollama: FakeOllama, data_dir: Path, *, runner_args: tuple[str, ...] = (), **env: str
    ) -> BotProcess:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "DISCORD_TOKEN": TOKEN,
            "OLLAMA_HOST": ollama.url,
            "DATA_DIR": str(data_dir),
            "LOG_LEVEL": "INFO",
            **env,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RUNNER),
            f"http://127.0.0.1:{port}/api/v10",
            f"ws://127.0.0.1:{port}/gateway-ws",
            *runner_args,
            "run",
            cwd=data_dir.parent,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_output(self, text: str, timeout: float = TIMEOUT) -> None:
        await self.wait_until(lambda: text in self.output, timeout, f"{text!r} in the output")

    async def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if self.process.returncode is not None:
                await self._reader
                if condition():
                    return
                raise AssertionError(f"the bot exited ({self.process.returncode}) before {what}:\n{self.output}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.output}")
            await asyncio.sleep(0.01)

    async def terminate(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM; the exit code once the process has ended (AssertionError if it does not within `timeout`)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"still running {timeout} s after SIGTERM:\n{self.output}") from None
        await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


@pytest.fixture
async def processes() -> AsyncIterator[list[BotProcess]]:
    started: list[BotProcess] = []
    yield started
    for process in started:
        await process.kill()


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output, output
    assert TOKEN not in output


# ---- SIGTERM while the gateway reconnects


async def test_sigterm_during_the_gateway_reconnect_backoff_ends_the_bot_within_the_grace(
    harness: Harness, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """Discord drops the gateway and refuses the reconnect; discord.py's backoff has grown to 10 minutes."""
    harness.ollama.scripts.append(ChatScript(tokens=[f" t{i}" for i in range(3000)], token_delay=0.01))
    bot = await BotProcess.start(
        harness.discord.port,
        harness.ollama,
        tmp_path / "data",
        runner_args=("--gateway-backoff", "600"),
        SHUTDOWN_GRACE_SECONDS="0.5",
    )
    processes.append(bot)
    await bot.wait_until(harness.discord.identified.is_set, TIMEOUT, "a gateway session")
    prompt = await harness.discord.send_user_message("tell me everything", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))), TIMEOUT)

    harness.discord.gateway_mode = "refuse"
    await harness.discord.drop_gateway(4000)  # discord.py reconnects at once, is refused, then backs off
    await bot.wait_for_output("reconnecting in 600")
    code = await bot.terminate()  # the old code slept out the 600 s backoff first

    assert code == 0, bot.output
    assert "shutting down" in bot.output
    final = harness.replies_to(int(prompt["id"]))[-1]["content"]
    assert notes.SHUTDOWN in final and STREAMING_MARKER not in final  # REST still works for the final edit
    assert_no_traceback(bot.output)


# ---- Discord unreachable at start-up


async def test_start_up_waits_for_an_unreachable_discord_and_then_connects(
    ollama_server: FakeOllama, tmp_path: Path, unused_tcp_port: int, processes: list[BotProcess]
) -> None:
    """Network down (nothing listens where Discord should be): one clear line per attempt, then it connects."""
    bot = await BotProcess.start(unused_tcp_port, ollama_server, tmp_path / "data")
    processes.append(bot)
    await bot.wait_for_output("can't reach Discord")
    fake = FakeDiscord(token=TOKEN)
    await fake.start(unused_tcp_port)
    try:
        await bot.wait_until(fake.identified.is_set, TIMEOUT, "a gateway session")
        code = await bot.terminate()
    finally:
        await fake.close()

    assert code == 0, bot.output
    failures = [line for line in bot.lines if "can't reach Discord" in line]
    assert failures and all(f"127.0.0.1:{unused_tcp_port}" in line and "trying again in" in line for line in failures)
    assert_no_traceback(bot.output)


async def test_start_up_retries_while_discord_answers_5xx(
    ollama_server: FakeOllama, tmp_path: Path, processes: list[BotProcess]
) -> None:
    fake = FakeDiscord(token=TOKEN)
    fake.rest_outage = 503
    await fake.start()
    try:
        bot = await BotProcess.start(fake.port, ollama_server, tmp_path / "data")
        processes.append(bot)
        await bot.wait_for_output("can't reach Discord (Discord answered HTTP 503)")
        fake.rest_outage = None
        await bot.wait_until(fake.identified.is_set, TIMEOUT, "a gateway session")
        code = await bot.terminate()
    finally:
        await fake.close()

    assert code == 0, bot.output
    assert "<html>" not in bot.output  # the edge's error page is not dumped into the log
    assert_no_traceback(bot.output)


async def test_sigterm_ends_the_start_up_retries_at_once(
    ollama_server: FakeOllama, tmp_path: Path, unused_tcp_port: int, processes: list[BotProcess]
) -> None:
    bot = await BotProcess.start(unused_tcp_port, ollama_server, tmp_path / "data")
    processes.append(bot)
    await bot.wait_for_output("can't reach Discord")
    code = await bot.terminate()

    assert code == 0, bot.output
    assert "stopped before Discord could be reached" in bot.output
    assert_no_traceback(bot.output)
