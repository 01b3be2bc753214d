"""The pool's pieces without a server: OLLAMA_HOST lists, routing preferences, the queue, what fails over."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.config import ConfigError, Settings
from bot.ollama.client import ModelInfo, OllamaClient
from bot.ollama.errors import (
    HostAttempt,
    ModelNotFound,
    NoHostAvailable,
    OllamaConnectionLost,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)
from bot.ollama.fair_share import QueuePosition
from bot.ollama.host import HostSpec, parse_ollama_hosts
from bot.ollama.pool import OllamaPool, fails_over
from bot.streaming.notes import describe_error
from tests.fake_clock import FakeClock

# ---- OLLAMA_HOST


def test_one_host_is_a_list_of_one() -> None:
    assert parse_ollama_hosts("ollama:11434") == (HostSpec("http://ollama:11434"),)
    assert parse_ollama_hosts("") == (HostSpec("http://127.0.0.1:11434"),)


def test_several_hosts_with_and_without_capacity() -> None:
    hosts = parse_ollama_hosts(" http://gpu-a:11434*4, gpu-b * 2 ,[::1]:8080, https://box/ollama*16")
    assert hosts == (
        HostSpec("http://gpu-a:11434", 4),
        HostSpec("http://gpu-b:11434", 2),
        HostSpec("http://[::1]:8080", None),
        HostSpec("https://box:443/ollama", 16),
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a:11434,,b:11434", "host 2 of 3 is empty"),
        ("a:11434,", "host 2 of 2 is empty"),
        ("a:11434*0", "capacity after '*' must be a whole number from 1 to 4096"),
        ("a:11434*5000", "from 1 to 4096"),
        ("a:11434*x", "write a host's capacity as a whole number at the end"),
        ("*4", "an address is missing"),
        ("a:11434, http://a:11434/", "http://a:11434 is listed more than once"),
        ("ftp://a", "unsupported scheme"),
        (",".join(f"h{i}" for i in range(65)), "at most 64"),
    ],
)
def test_mistakes_in_the_host_list_are_explained(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("*", r"\*").replace("(", r"\(")):
        parse_ollama_hosts(value)


def test_settings_give_each_host_its_capacity() -> None:
    settings = Settings.from_env(
        {"DISCORD_TOKEN": "t", "OLLAMA_HOST": "gpu-a:11434*4, gpu-b:11434", "MAX_CONCURRENT_REQUESTS": "200"}
    )
    assert settings.ollama_host == "http://gpu-a:11434"
    assert settings.host_capacities() == (("http://gpu-a:11434", 4), ("http://gpu-b:11434", 200))


def test_a_bad_host_list_stops_start_up_with_the_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"DISCORD_TOKEN": "t", "OLLAMA_HOST": "gpu-a:11434*0"})
    assert "OLLAMA_HOST='gpu-a:11434*0'" in str(caught.value)


def test_max_concurrent_requests_is_no_longer_capped_at_64() -> None:
    assert Settings.from_env({"DISCORD_TOKEN": "t", "MAX_CONCURRENT_REQUESTS": "512"}).max_concurrent_requests == 512
    with pytest.raises(ConfigError):
        Settings.from_env({"DISCORD_TOKEN": "t", "MAX_CONCURRENT_REQUESTS": "0"})


# ---- what moves a request to another host


@pytest.mark.parametrize(
    ("error", "moves"),
    [
        (OllamaUnreachable("http://a:11434", "connection refused"), True),
        (OllamaFirstTokenTimeout(600), True),
        (OllamaHTTPError(500, "llama-server process has terminated"), True),
        (OllamaServerBusy(503, "server busy"), True),
        (ModelNotFound("llama3.2"), True),
        (OllamaStreamError("an error was encountered while running the model"), True),
        (OllamaConnectionLost(), True),
        (OllamaHTTPError(400, '"llama3.2" does not support thinking'), False),
        (OllamaStalled(120), False),  # only after the first token, when the answer is already shown
    ],
)
def test_which_failures_before_the_first_token_fail_over(error: Any, moves: bool) -> None:
    assert fails_over(error) is moves


def test_the_user_is_told_every_host_tried_and_why() -> None:
    error = NoHostAvailable(
        "llama3.2",
        [
            HostAttempt("http://a:11434", OllamaUnreachable("http://a:11434", "connection refused")),
            HostAttempt("http://b:11434", OllamaServerBusy(503, "server busy")),
            HostAttempt("http://c:11434", ModelNotFound("llama3.2")),
        ],
    )
    text = describe_error(error)
    assert text.startswith("⚠️ No Ollama host could answer with `llama3.2`.")
    assert "http://a:11434: connection refused; http://b:11434: busy; http://c:11434: model not installed" in text
    missing = NoHostAvailable("mistral", [HostAttempt("http://a:11434", ModelNotFound("mistral"))])
    assert describe_error(missing).startswith("⚠️ Model `mistral` is not installed on any Ollama host")


# ---- routing and the queue, on hosts whose state is set by hand


def pool(*capacities: int, clock: FakeClock | None = None) -> OllamaPool:
    clients = [(OllamaClient(None, f"http://h{i}:11434"), cap) for i, cap in enumerate(capacities)]  # type: ignore[arg-type]
    return OllamaPool(clients, clock=clock or FakeClock())


def knows(pool: OllamaPool, index: int, *models: str, loaded: tuple[str, ...] = ()) -> None:
    host = pool.hosts[index]
    host.set_models([ModelInfo(m, 0, "", "", "", ()) for m in models])
    host.loaded = {f"{m}:latest" if ":" not in m else m for m in loaded}
    host.up = True


async def test_routing_prefers_loaded_then_least_busy_for_capacity() -> None:
    p = pool(4, 2, 2)
    knows(p, 0, "llama3.2")
    knows(p, 1, "llama3.2", loaded=("llama3.2",))
    knows(p, 2, "qwen3:8b")
    got = [await p.queue.acquire("llama3.2", seq=p.queue.next_seq()) for _ in range(4)]
    # Loaded first (h1, twice: its capacity), then the only other host with the model.
    assert [h.url if h else None for h in got] == [
        "http://h1:11434",
        "http://h1:11434",
        "http://h0:11434",
        "http://h0:11434",
    ]


async def test_a_conversation_sticks_to_its_host_only_while_it_is_fit() -> None:
    p = pool(2, 2)
    knows(p, 0, "llama3.2", loaded=("llama3.2",))
    knows(p, 1, "llama3.2", loaded=("llama3.2",))
    p._answered(p.hosts[1], "llama3.2", conversation=500)
    async with p.lease("llama3.2", conversation=500) as lease:
        assert lease.url == "http://h1:11434"  # both idle; h0 comes first, but h1 answered this conversation
    p.hosts[1].mark_down(0.0, "connection refused")
    async with p.lease("llama3.2", conversation=500) as lease:
        assert lease.url == "http://h0:11434"  # out of the pool: no longer fit


async def test_no_head_of_line_blocking_and_fifo_among_competitors() -> None:
    p = pool(1, 1)
    knows(p, 0, "llama3.2")
    knows(p, 1, "qwen3:8b")
    busy = await p.queue.acquire("llama3.2", seq=p.queue.next_seq())
    assert busy is p.hosts[0]
    positions: list[QueuePosition] = []

    async def report(position: QueuePosition) -> None:
        positions.append(position)

    waiting = asyncio.create_task(p.queue.acquire("llama3.2", seq=p.queue.next_seq(), on_wait=report))
    later = asyncio.create_task(p.queue.acquire("llama3.2", seq=p.queue.next_seq()))
    await asyncio.sleep(0)
    # Another model's request goes straight to its own free host.
    assert await p.queue.acquire("qwen3:8b", seq=p.queue.next_seq()) is p.hosts[1]
    assert positions == [QueuePosition(1, 1)]  # next in line, as with one Ollama (arrivals behind are not news)
    p.queue.release(p.hosts[0])
    assert await waiting is p.hosts[0]  # first come, first served
    assert not later.done()
    p.queue.release(p.hosts[0])
    assert await later is p.hosts[0]


async def test_a_request_waiting_for_a_host_that_goes_down_is_served_elsewhere() -> None:
    p = pool(1, 1)
    knows(p, 0, "llama3.2")
    knows(p, 1, "llama3.2")
    first = await p.queue.acquire("llama3.2", seq=p.queue.next_seq())
    second = await p.queue.acquire("llama3.2", seq=p.queue.next_seq())
    assert {first, second} == set(p.hosts)
    third = asyncio.create_task(p.queue.acquire("llama3.2", seq=p.queue.next_seq()))
    await asyncio.sleep(0)
    p.mark_down(p.hosts[0], "connection refused")
    p.queue.release(p.hosts[1])
    assert await third is p.hosts[1]


async def test_candidates_when_nobody_lists_the_model_or_everyone_is_down() -> None:
    p = pool(1, 1, 1)
    knows(p, 0, "llama3.2")
    knows(p, 1, "llama3.2")
    assert [h.index for h in p._candidates("llama3.2", frozenset())] == [0, 1]
    assert [h.index for h in p._candidates("llama3.2", frozenset({"http://h0:11434"}))] == [1]
    # h2 was never listed: it may have a model nobody lists.
    assert [h.index for h in p._candidates("mistral", frozenset())] == [2]
    for host in p.hosts:
        host.mark_down(0.0, "connection refused")
    assert [h.index for h in p._candidates("llama3.2", frozenset())] == [0, 1, 2]  # try them anyway


async def test_a_cancelled_waiter_gives_its_granted_slot_on() -> None:
    p = pool(1)
    held = await p.queue.acquire("llama3.2", seq=p.queue.next_seq())
    assert held is not None
    waiter = asyncio.create_task(p.queue.acquire("llama3.2", seq=p.queue.next_seq()))
    after = asyncio.create_task(p.queue.acquire("llama3.2", seq=p.queue.next_seq()))
    await asyncio.sleep(0)
    p.queue.release(held)  # granted to `waiter`...
    waiter.cancel()  # ...which is cancelled before it resumes
    assert await after is p.hosts[0]
    assert p.queue.active == 1
