"""End to end: graceful shutdown, warm-up, and the `check` / `sync` commands."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import sys
from pathlib import Path

from bot.__main__ import run_check, run_sync
from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import TOKEN, Harness
from tests.fakes.fake_ollama import ChatScript

ROOT = Path(__file__).resolve().parents[1]


async def test_shutdown_cuts_streaming_replies_short_with_a_note(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=[f" w{i}" for i in range(500)], token_delay=0.01))
    running = await harness.start_bot()
    prompt = await harness.discord.send_user_message("long story", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))))

    await running.bot.shutdown(grace=0.2)

    request = await harness.ollama.wait_for_disconnect()
    assert not request.done_sent
    final = harness.replies_to(int(prompt["id"]))[-1]["content"]
    assert notes.SHUTDOWN in final and STREAMING_MARKER not in final
    assert all(not m["content"].endswith(STREAMING_MARKER) for m in harness.discord.bot_messages())


async def test_shutdown_lets_short_replies_finish(harness: Harness) -> None:
    harness.ollama.scripts.append(ChatScript(tokens=["Quick", " one."], token_delay=0.05))
    running = await harness.start_bot()
    prompt = await harness.discord.send_user_message("quick", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.ollama.chat_requests))
    await running.bot.shutdown(grace=5)
    assert harness.replies_to(int(prompt["id"]))[-1]["content"] == "Quick one."


async def test_sigterm_mid_stream_leaves_no_reply_streaming(harness: Harness, tmp_path: Path) -> None:
    """The real entry point in a child process, stopped with SIGTERM while it streams."""
    harness.ollama.scripts.append(ChatScript(tokens=[f" t{i}" for i in range(2000)], token_delay=0.01))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DISCORD_TOKEN": TOKEN,
        "OLLAMA_HOST": harness.ollama.url,
        "DATA_DIR": str(tmp_path / "data"),
        "SHUTDOWN_GRACE_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "fakes" / "run_bot_against_fakes.py"),
        harness.discord.base_url,
        harness.discord.gateway_url,
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.wait_for(harness.discord.identified.wait(), 30)
        await asyncio.sleep(0.2)  # let the client finish its start-up (guild_ready_timeout)
        prompt = await harness.discord.send_user_message("tell me everything", mention_bot=True)
        await harness.discord.wait_for(lambda: len(harness.replies_to(int(prompt["id"]))) > 0, timeout=10)
        child.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(child.wait(), 20)
    finally:
        if child.returncode is None:
            child.kill()
    output = (await child.stdout.read()).decode() if child.stdout else ""

    assert code == 0, output
    assert "shutting down" in output
    await harness.ollama.wait_for_disconnect()
    final = harness.replies_to(int(prompt["id"]))[-1]["content"]
    assert notes.SHUTDOWN in final and STREAMING_MARKER not in final
    assert "reply finished" in output and "outcome=cancelled" in output
    assert TOKEN not in output


async def test_warm_up_loads_the_default_model_with_a_long_keep_alive(harness: Harness) -> None:
    await harness.start_bot(harness.settings(WARM_UP="true", WARM_UP_KEEP_ALIVE="2h"))
    # The harness starts the bot like tests do; warm-up runs from the composition root.
    from bot.__main__ import warm_up

    await warm_up(harness.running[0].services)
    loads = [r for r in harness.ollama.chat_requests if not r.json.get("messages")]
    assert loads and loads[-1].json["model"] == "llama3.2" and loads[-1].json["keep_alive"] == "2h"


async def test_check_reports_ready_and_prints_the_invite_url(harness: Harness) -> None:
    out = io.StringIO()
    assert await run_check(harness.settings(), out) == 0
    report = out.getvalue()
    assert "default model llama3.2:latest is installed" in report
    assert "client_id=300" in report and "scope=bot+applications.commands" in report
    assert report.rstrip().endswith("ready")


async def test_check_fails_when_ollama_is_down_or_the_model_is_missing(harness: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    out = io.StringIO()
    assert await run_check(harness.settings(OLLAMA_HOST=f"127.0.0.1:{dead}"), out) == 1
    assert f"Can't reach Ollama at http://127.0.0.1:{dead}" in out.getvalue()

    out = io.StringIO()
    assert await run_check(harness.settings(OLLAMA_MODEL="mistral"), out) == 1
    assert "default model mistral is not installed" in out.getvalue()

    out = io.StringIO()
    assert await run_check(harness.settings(DISCORD_TOKEN="wrong"), out) == 1
    assert "rejected DISCORD_TOKEN" in out.getvalue()


async def test_sync_publishes_commands_to_one_server(harness: Harness) -> None:
    out = io.StringIO()
    assert await run_sync(harness.settings(), 400, out) == 0
    put = harness.discord.calls_to("PUT", r"/applications/300/guilds/400/commands")
    names = {c["name"] for c in put[-1].json}
    assert {"ask", "chat", "model", "settings"} <= names
    assert "synced" in out.getvalue()


async def get(url: str) -> tuple[int, str, str]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text(), response.headers.get("Content-Type", "")


async def test_health_and_metrics_endpoints(harness: Harness) -> None:
    from bot.__main__ import build_health_server

    harness.ollama.scripts.append(ChatScript(tokens=["one", " two"]))
    harness.discord.inject_429("PATCH", r"/channels/500/messages/\d+", count=1, retry_after=0.05)
    running = await harness.start_bot()
    health = build_health_server(running.bot, running.services)
    await health.start()
    try:
        base = f"http://127.0.0.1:{health.port}"
        assert (await get(f"{base}/healthz"))[:2] == (200, "ok\n")

        prompt = await harness.discord.send_user_message("count", mention_bot=True)
        await harness.wait_for_reply(int(prompt["id"]))
        status, body, content_type = await get(f"{base}/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        values = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line and not line.startswith("#")
        }
        assert values['ollacord_replies_total{outcome="done"}'] == 1
        assert values["ollacord_tokens_total"] >= 2
        assert values["ollacord_time_to_first_token_seconds_count"] == 1
        assert values["ollacord_queue_depth"] == 0
        assert values["ollacord_discord_rate_limited_total"] >= 1

        await harness.ollama.close()
        health_status, reason, _ = await get(f"{base}/healthz")
        assert health_status == 200 or "Ollama" in reason  # cached for a few seconds
        await running.bot.close()
        health_status, reason, _ = await get(f"{base}/healthz")
        assert health_status == 503 and "gateway" in reason
    finally:
        await health.close()


async def test_healthz_reports_an_unreachable_ollama(harness: Harness) -> None:
    from bot.__main__ import build_health_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    running = await harness.start_bot(harness.settings(OLLAMA_HOST=f"127.0.0.1:{dead}"))
    health = build_health_server(running.bot, running.services)
    await health.start()
    try:
        status, reason, _ = await get(f"http://127.0.0.1:{health.port}/healthz")
        assert status == 503 and f"http://127.0.0.1:{dead}" in reason
    finally:
        await health.close()
