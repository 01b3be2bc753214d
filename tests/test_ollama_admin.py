"""Model administration: OllamaClient.pull/delete/ps over real HTTP, and the pure PullTracker."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from bot.ollama import (
    LoadedModel,
    ModelNotFound,
    OllamaClient,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaProtocolError,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
    PullProgress,
    PullTracker,
)
from bot.ollama.pull_progress import BAR_CELLS, human_bytes, human_speed
from tests.fakes.fake_ollama import PULLABLE_EXTRA, FakeOllama

PULL_MISSING = "pull model manifest: file does not exist"


async def tag_names(client: OllamaClient) -> set[str]:
    return {m.name for m in await client.list_models()}


@asynccontextmanager
async def raw_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A one-route server for responses the fake never sends; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def ndjson_handler(*objects: object) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for obj in objects:
            await resp.write(json.dumps(obj).encode() + b"\n")
        await resp.write_eof()
        return resp

    return handler


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- pull


async def test_pull_streams_full_sequence(client: OllamaClient, fake: FakeOllama) -> None:
    assert "tinyllama:latest" not in await tag_names(client)
    progress = [p async for p in client.pull("tinyllama")]

    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert progress[0] == PullProgress("pulling manifest")
    assert progress[-1] == PullProgress("success")
    layers = [p for p in progress if p.digest is not None]
    assert len(layers) == 8  # two layers: one announcement plus three progress lines each
    digests = list(dict.fromkeys(p.digest for p in layers))
    assert len(digests) == 2
    for digest in digests:
        assert digest is not None
        lines = [p for p in layers if p.digest == digest]
        assert {p.status for p in lines} == {f"pulling {digest[7:19]}"}
        assert lines[0].completed is None  # Ollama omits completed while it is 0
        assert lines[-1].completed == lines[-1].total
    assert sum(p.total or 0 for p in layers if p.completed is None) == PULLABLE_EXTRA.size

    [rec] = [r for r in fake.requests if r.path == "/api/pull"]
    assert rec.json == {"model": "tinyllama", "stream": True}
    assert rec.done_sent
    assert not rec.disconnected
    assert "tinyllama:latest" in await tag_names(client)


async def test_pull_drives_tracker(client: OllamaClient) -> None:
    tracker = PullTracker("tinyllama")
    renders = []
    for second, progress in enumerate([p async for p in client.pull("tinyllama")]):
        tracker.update(progress, float(second))
        renders.append(tracker.render(float(second)))
    assert tracker.done
    assert renders[0] == "⬇️ Pulling `tinyllama`\nFetching manifest…"
    assert any("Verifying…" in text for text in renders)
    assert renders[-1] == "✅ Pulled `tinyllama` (637 MB in 11 s)"
    assert tracker.finished(None) == "✅ Pulled `tinyllama` (637 MB in 11 s)"


async def test_pull_unknown_model_is_stream_error(client: OllamaClient, fake: FakeOllama) -> None:
    got: list[str] = []
    with pytest.raises(OllamaStreamError) as info:
        async for progress in client.pull("no-such-model"):
            got.append(progress.status)
    assert got == ["pulling manifest"]
    assert info.value.message == PULL_MISSING
    assert str(info.value) == PULL_MISSING
    assert "no-such-model:latest" not in await tag_names(client)


async def test_pull_invalid_name_is_http_error(client: OllamaClient) -> None:
    with pytest.raises(OllamaHTTPError) as info:
        async for _ in client.pull("bad name!"):
            pass
    assert (info.value.status, info.value.message) == (400, "invalid model name")
    assert not isinstance(info.value, ModelNotFound)


async def test_closing_pull_early_disconnects(client: OllamaClient, fake: FakeOllama) -> None:
    fake.pull_delay = 0.05
    pull = client.pull("tinyllama")
    first = [await anext(pull), await anext(pull)]
    assert first[0].status == "pulling manifest"
    await pull.aclose()
    rec = await fake.wait_for_disconnect(timeout=2.0)
    assert rec.path == "/api/pull"
    assert not rec.done_sent
    assert "tinyllama:latest" not in await tag_names(client)


async def test_cancelling_pull_consumer_disconnects(client: OllamaClient, fake: FakeOllama) -> None:
    fake.pull_delay = 0.05
    seen = asyncio.Event()

    async def consume() -> None:
        async for _ in client.pull("tinyllama"):
            seen.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(seen.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = await fake.wait_for_disconnect(timeout=2.0)
    assert not rec.done_sent


async def test_pull_silent_between_lines_is_stalled(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    fake.pull_delay = 1.0
    client = OllamaClient(session, fake.url, first_token_timeout=5.0, inactivity_timeout=0.2)
    got: list[PullProgress] = []
    with pytest.raises(OllamaStalled):
        async for progress in client.pull("tinyllama"):
            got.append(progress)
    assert [p.status for p in got] == ["pulling manifest"]
    rec = await fake.wait_for_disconnect(timeout=2.0)
    assert not rec.done_sent


async def test_pull_first_line_deadline(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    fake.route_delays["/api/pull"] = 0.3
    # The first line only has to beat the first-chunk deadline, not the (shorter) inactivity one.
    patient = OllamaClient(session, fake.url, first_token_timeout=5.0, inactivity_timeout=0.1)
    assert [p async for p in patient.pull("tinyllama")][-1].status == "success"
    hasty = OllamaClient(session, fake.url, first_token_timeout=0.1, inactivity_timeout=5.0)
    with pytest.raises(OllamaFirstTokenTimeout):
        async for _ in hasty.pull("tinyllama"):
            pass


async def test_pull_eof_without_success_is_incomplete(session: aiohttp.ClientSession) -> None:
    handler = ndjson_handler({"status": "pulling manifest"}, {"status": "pulling abcdefabcdef", "total": 5})
    async with raw_server(handler) as url:
        client = OllamaClient(session, url)
        got: list[PullProgress] = []
        with pytest.raises(OllamaIncompleteStream):
            async for progress in client.pull("m"):
                got.append(progress)
    assert got == [PullProgress("pulling manifest"), PullProgress("pulling abcdefabcdef", total=5)]


async def test_pull_tolerates_odd_lines(session: aiohttp.ClientSession) -> None:
    handler = ndjson_handler(
        {},
        {"status": 7, "digest": "", "total": "12", "completed": True},
        {"status": "pulling x", "digest": "sha256:ab", "total": 3, "completed": 9, "extra": [1]},
        {"status": "success"},
        {"status": "after success is never read"},
    )
    async with raw_server(handler) as url:
        progress = [p async for p in OllamaClient(session, url).pull("m")]
    assert progress == [
        PullProgress(""),
        PullProgress(""),
        PullProgress("pulling x", digest="sha256:ab", total=3, completed=9),
        PullProgress("success"),
    ]


async def test_pull_non_streamed_server_error(session: aiohttp.ClientSession) -> None:
    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "registry unreachable"}, status=500)

    async with raw_server(fail) as url:
        with pytest.raises(OllamaHTTPError) as info:
            async for _ in OllamaClient(session, url).pull("m"):
                pass
    assert (info.value.status, info.value.message) == (500, "registry unreachable")


# --------------------------------------------------------------------------- delete


async def test_delete_removes_model(client: OllamaClient, fake: FakeOllama) -> None:
    assert "gemma3:4b" in await tag_names(client)
    await client.delete("gemma3:4b")
    assert "gemma3:4b" not in await tag_names(client)
    [rec] = [r for r in fake.requests if r.path == "/api/delete"]
    assert (rec.method, rec.json, rec.status) == ("DELETE", {"model": "gemma3:4b"}, 200)


async def test_delete_unknown_is_model_not_found(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        await client.delete("nope:1b")
    assert info.value.model == "nope:1b"
    assert info.value.message == "model 'nope:1b' not found"


async def test_delete_twice(client: OllamaClient) -> None:
    await client.delete("llama3.2")
    with pytest.raises(ModelNotFound):
        await client.delete("llama3.2")


async def test_delete_invalid_name(client: OllamaClient) -> None:
    with pytest.raises(OllamaHTTPError) as info:
        await client.delete("bad name!")
    assert (info.value.status, info.value.message) == (400, 'name "bad name!" is invalid')
    assert not isinstance(info.value, ModelNotFound)


async def test_pull_then_delete_round_trip(client: OllamaClient) -> None:
    async for _ in client.pull("tinyllama"):
        pass
    await client.delete("tinyllama")
    assert "tinyllama:latest" not in await tag_names(client)


async def test_admin_calls_unreachable(session: aiohttp.ClientSession) -> None:
    client = OllamaClient(session, f"http://127.0.0.1:{closed_port()}", connect_timeout=1.0)
    with pytest.raises(OllamaUnreachable):
        await client.delete("x")
    with pytest.raises(OllamaUnreachable):
        await client.ps()
    with pytest.raises(OllamaUnreachable):
        async for _ in client.pull("x"):
            pass


# --------------------------------------------------------------------------- ps


async def test_ps_empty(client: OllamaClient) -> None:
    assert await client.ps() == []


async def test_ps_lists_loaded_models(client: OllamaClient, fake: FakeOllama) -> None:
    await client.load("qwen3:8b")
    await client.load("llama3.2", keep_alive=-1)
    loaded = await client.ps()
    assert [m.name for m in loaded] == ["llama3.2:latest", "qwen3:8b"]  # longest remaining first
    forever = loaded[0]
    assert forever == LoadedModel(
        name="llama3.2:latest",
        size=2_019_393_189 + 500_000_000,
        size_vram=2_019_393_189 + 500_000_000,
        expires_at=forever.expires_at,
        context_length=4096,
    )
    assert forever.expires_at is not None and forever.expires_at.endswith("Z")
    assert int(forever.expires_at[:4]) > 2200  # keep_alive -1: ~292 years ahead
    assert loaded[1].expires_at is not None
    assert int(loaded[1].expires_at[:4]) < 2200
    await client.load("qwen3:8b", keep_alive=0)
    assert [m.name for m in await client.ps()] == ["llama3.2:latest"]


async def test_ps_after_chat(client: OllamaClient) -> None:
    async for _ in client.chat_stream("gemma3:4b", [{"role": "user", "content": "hi"}]):
        pass
    [model] = await client.ps()
    assert model.name == "gemma3:4b"
    assert model.context_length == 4096


async def test_ps_tolerates_odd_entries(session: aiohttp.ClientSession) -> None:
    async def ps(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "models": [
                    {"model": "only-model-key:1b", "size": "big", "size_vram": True, "expires_at": ""},
                    "not an object",
                    {"name": "partial:2b", "size": 10, "size_vram": 4, "context_length": 8192},
                ]
            }
        )

    async with raw_server(ps) as url:
        loaded = await OllamaClient(session, url).ps()
    assert loaded == [
        LoadedModel("only-model-key:1b", 0, 0, None, None),
        LoadedModel("partial:2b", 10, 4, None, 8192),
    ]


@pytest.mark.parametrize("body", [{"models": None}, {}])
async def test_ps_null_models(session: aiohttp.ClientSession, body: dict[str, object]) -> None:
    async def ps(request: web.Request) -> web.Response:
        return web.json_response(body)

    async with raw_server(ps) as url:
        assert await OllamaClient(session, url).ps() == []


async def test_ps_bad_shape(session: aiohttp.ClientSession) -> None:
    async def ps(request: web.Request) -> web.Response:
        return web.json_response({"models": {"a": 1}})

    async with raw_server(ps) as url:
        with pytest.raises(OllamaProtocolError):
            await OllamaClient(session, url).ps()


# --------------------------------------------------------------------------- PullTracker

GB = 1_000_000_000
MB = 1_000_000
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def layer(digest: str, total: int | None = None, completed: int | None = None) -> PullProgress:
    return PullProgress(f"pulling {digest[7:19]}", digest, total, completed)


def bar(cells: int) -> str:
    return "`" + "▓" * cells + "░" * (BAR_CELLS - cells) + "`"


def feed(tracker: PullTracker, steps: list[tuple[float, PullProgress]]) -> None:
    for now, progress in steps:
        tracker.update(progress, now)


def test_tracker_before_any_update() -> None:
    tracker = PullTracker("llama3.2")
    assert tracker.render(0.0) == "⬇️ Pulling `llama3.2`\nStarting…"
    assert not tracker.done
    assert tracker.percent is None
    assert tracker.finished(None) == "✅ Pulled `llama3.2`"


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("pulling manifest", "Fetching manifest…"),
        ("verifying sha256 digest", "Verifying…"),
        ("writing manifest", "Writing manifest…"),
        ("removing unused layers", "Removing unused layers…"),
        ("removing any unused layers", "Removing unused layers…"),
        ("retrieving", "Retrieving…"),
        ("waiting for lock...", "Waiting for lock…"),
        ("", "Working…"),
        ("   ", "Working…"),
    ],
)
def test_tracker_phases_without_layers(status: str, phase: str) -> None:
    tracker = PullTracker("m")
    tracker.update(PullProgress(status), 1.0)
    assert tracker.render(1.0) == f"⬇️ Pulling `m`\n{phase}"


def test_tracker_percent_across_layers() -> None:
    tracker = PullTracker("llama3.2")
    steps: list[tuple[float, PullProgress, str]] = [
        (0.0, PullProgress("pulling manifest"), "Fetching manifest…"),
        (1.0, layer(A, 1_500 * MB), f"{bar(0)} 0% · 0 B / 1.5 GB · layer 1/1"),
        (1.0, layer(B, 400 * MB), f"{bar(0)} 0% · 0 B / 1.9 GB · layer 2/2"),
        # 300 MB between t=0 and t=2 -> 150 MB/s; 300/1900 = 15.8 %
        (2.0, layer(A, 1_500 * MB, 300 * MB), f"{bar(3)} 15% · 300 MB / 1.9 GB · 150 MB/s · layer 1/2"),
        (3.0, layer(A, 1_500 * MB, 612 * MB), f"{bar(6)} 32% · 612 MB / 1.9 GB · 204 MB/s · layer 1/2"),
        (4.0, layer(B, 400 * MB, 400 * MB), f"{bar(10)} 53% · 1.0 GB / 1.9 GB · 253 MB/s · layer 2/2"),
        # A third layer appears: the percentage is over all layers seen so far.
        (5.0, layer(C, 100 * MB), f"{bar(10)} 50% · 1.0 GB / 2 GB · 202 MB/s · layer 3/3"),
        # From here the window drops the oldest samples: 1900 MB over t=1..6, then 1700 MB over t=2..7.
        (6.0, layer(A, 1_500 * MB, 1_500 * MB), f"{bar(19)} 95% · 1.9 GB / 2 GB · 380 MB/s · layer 1/3"),
        (7.0, layer(C, 100 * MB, 100 * MB), f"{bar(20)} 100% · 2 GB / 2 GB · 340 MB/s · layer 3/3"),
        (8.0, PullProgress("verifying sha256 digest"), f"{bar(20)} 100% · 2 GB / 2 GB\nVerifying…"),
        (9.0, PullProgress("writing manifest"), f"{bar(20)} 100% · 2 GB / 2 GB\nWriting manifest…"),
    ]
    for now, progress, expected in steps:
        tracker.update(progress, now)
        assert tracker.render(now) == f"⬇️ Pulling `llama3.2`\n{expected}", now
    assert tracker.percent == 100
    assert not tracker.done
    tracker.update(PullProgress("success"), 42.0)
    assert tracker.done
    assert tracker.render(42.0) == "✅ Pulled `llama3.2` (2 GB in 42 s)"
    assert tracker.finished(None) == "✅ Pulled `llama3.2` (2 GB in 42 s)"
    assert tracker.finished(None, now=125.0) == "✅ Pulled `llama3.2` (2 GB in 2 min 5 s)"


def test_tracker_speed_window() -> None:
    tracker = PullTracker("m")
    tracker.update(layer(A, 10 * GB), 0.0)
    assert "/s" not in tracker.render(0.0)  # nothing downloaded yet: no speed
    for second in range(1, 11):
        tracker.update(layer(A, 10 * GB, second * 10 * MB), float(second))
    # Only the last 5 s count: (100 MB - 50 MB) / 5 s.
    assert "· 10.0 MB/s ·" in tracker.render(10.0)
    tracker.update(layer(A, 10 * GB, 150 * MB), 11.0)
    assert "· 18.0 MB/s ·" in tracker.render(11.0)  # (150 - 60) MB / 5 s
    assert "· 18.0 MB/s ·" in tracker.render(16.0)
    # No update for more than a whole window: the old rate is dropped rather than shown.
    assert "/s" not in tracker.render(16.5)
    tracker.update(layer(A, 10 * GB, 150 * MB), 17.0)
    tracker.update(layer(A, 10 * GB, 151 * MB), 27.0)
    assert "· 100 KB/s ·" in tracker.render(27.0)  # 1 MB over the 10 s since the previous sample


def test_tracker_present_layers_do_not_count_toward_speed() -> None:
    tracker = PullTracker("m")
    # A layer already on disk is announced complete; a resumed one with the bytes it already has.
    tracker.update(layer(A, 4 * GB, 4 * GB), 0.0)
    tracker.update(layer(B, 2 * GB, 1 * GB), 0.1)
    assert tracker.render(0.1) == f"⬇️ Pulling `m`\n{bar(16)} 83% · 5 GB / 6 GB · layer 2/2"
    tracker.update(layer(B, 2 * GB, 1 * GB + 20 * MB), 2.0)
    assert tracker.render(2.0).endswith(" · 10.0 MB/s · layer 2/2")  # 20 MB in 2 s, not 5 GB in 2 s


def test_tracker_status_only_layer_and_digest_spellings_agree() -> None:
    tracker = PullTracker("m")
    tracker.update(PullProgress("pulling 0123456789ab", total=100), 0.0)
    tracker.update(PullProgress("pulling 0123456789ab", digest="sha256:0123456789ab" + "f" * 52, completed=50), 1.0)
    tracker.update(PullProgress("pulling 0123456789ab", digest="0123456789AB" + "f" * 52, completed=60), 2.0)
    assert tracker.render(2.0) == f"⬇️ Pulling `m`\n{bar(12)} 60% · 60 B / 100 B · 30 B/s · layer 1/1"


def test_tracker_layer_without_total() -> None:
    tracker = PullTracker("m")
    tracker.update(layer(A), 0.0)
    assert tracker.render(0.0) == "⬇️ Pulling `m`\nDownloading… · layer 1/1"
    tracker.update(layer(A, None, 3 * MB), 1.0)
    assert tracker.render(1.0) == "⬇️ Pulling `m`\n3 MB · 3.0 MB/s · layer 1/1"
    assert tracker.percent is None


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # completed above total: clamped to 100 %
        ([layer(A, 100, 250)], f"{bar(20)} 100% · 100 B / 100 B · layer 1/1"),
        # the total shrinks below completed
        ([layer(A, 1000), layer(A, 1000, 800), layer(A, 500, 800)], f"{bar(20)} 100% · 500 B / 500 B"),
        # the total grows again; a later line omitting `total` keeps the last one
        ([layer(A, 100, 50), layer(A, 200, 50), layer(A, None, 100)], f"{bar(10)} 50% · 100 B / 200 B"),
        # completed omitted on a later line means 0
        ([layer(A, 100, 50), layer(A, 100)], f"{bar(0)} 0% · 0 B / 100 B"),
        # negative and boolean numbers
        ([layer(A, -5, -1), layer(A, True, False)], "Downloading… · layer 1/1"),
        # zero total
        ([layer(A, 0, 0)], "Downloading… · layer 1/1"),
        # non-numeric fields and a status of the wrong type
        ([PullProgress(None, 7, "x", [1])], "Working…"),  # type: ignore[arg-type]
        # a digest on a non-layer status is not a layer
        ([PullProgress("verifying sha256 digest", A, 5, 5)], "Verifying…"),
        # absurd sizes
        ([layer(A, 10**400, 10**17)], f"{bar(2)} 10% · 100000 TB / 1000000 TB"),
    ],
)
def test_tracker_odd_inputs(steps: list[PullProgress], expected: str) -> None:
    tracker = PullTracker("m")
    for index, progress in enumerate(steps):
        tracker.update(progress, float(index))
    text = tracker.render(float(len(steps)))
    assert text.startswith("⬇️ Pulling `m`\n")
    assert expected in text


@pytest.mark.parametrize("bad_now", [math.nan, math.inf, -math.inf, 10**400])
def test_tracker_odd_clock_values(bad_now: float) -> None:
    tracker = PullTracker("m")
    tracker.update(layer(A, 100), bad_now)
    tracker.update(layer(A, 100, 50), 1.0)
    tracker.update(layer(A, 100, 60), bad_now)
    assert tracker.render(bad_now).startswith(f"⬇️ Pulling `m`\n{bar(12)} 60%")
    tracker.update(PullProgress("success"), bad_now)
    assert tracker.finished(None) == "✅ Pulled `m` (100 B in <1 s)"
    assert tracker.finished(None, now=bad_now) == "✅ Pulled `m` (100 B)"


def test_tracker_clock_going_backwards() -> None:
    tracker = PullTracker("m")
    feed(tracker, [(10.0, layer(A, GB)), (11.0, layer(A, GB, 10 * MB)), (5.0, layer(A, GB, 20 * MB))])
    assert "/s" not in tracker.render(5.0)  # the window restarted
    tracker.update(layer(A, GB, 30 * MB), 6.0)
    assert "· 10.0 MB/s ·" in tracker.render(6.0)
    tracker.update(PullProgress("success"), 12.0)
    assert tracker.finished(None) == "✅ Pulled `m` (1 GB in 2 s)"
    assert tracker.finished(None, now=1.0) == "✅ Pulled `m` (1 GB)"


def test_tracker_updates_after_success() -> None:
    tracker = PullTracker("m")
    feed(tracker, [(0.0, layer(A, 100, 100)), (1.0, PullProgress("success")), (2.0, PullProgress("pulling manifest"))])
    assert tracker.done
    assert tracker.render(2.0) == "✅ Pulled `m` (100 B in 2 s)"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PULL_MISSING, f"❌ Pull of `llama3.2` failed: {PULL_MISSING}"),
        ("  spaced  error  ", "❌ Pull of `llama3.2` failed:   spaced  error  "),
        ("", "❌ Pull of `llama3.2` failed: unknown error"),
        ("   ", "❌ Pull of `llama3.2` failed: unknown error"),
        ("**markdown** `kept`", "❌ Pull of `llama3.2` failed: **markdown** `kept`"),
    ],
)
def test_tracker_finished_error(error: str, expected: str) -> None:
    tracker = PullTracker("llama3.2")
    tracker.update(layer(A, 100, 10), 0.0)
    assert tracker.finished(error) == expected


def test_tracker_finished_error_is_bounded() -> None:
    text = PullTracker("m").finished("x" * 10_000)
    assert text.startswith("❌ Pull of `m` failed: xxx")
    assert text.endswith("…")
    assert len(text) < 2000


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 0.3, "<1 s"),
        (0.0, 42.4, "42 s"),
        (0.0, 59.6, "1 min"),
        (0.0, 125.0, "2 min 5 s"),
        (0.0, 3600.0, "1 h"),
        (0.0, 3725.0, "1 h 2 min"),
    ],
)
def test_tracker_finished_durations(start: float, end: float, expected: str) -> None:
    tracker = PullTracker("m")
    feed(tracker, [(start, layer(A, 1_900 * MB)), (end, PullProgress("success"))])
    assert tracker.finished(None) == f"✅ Pulled `m` (1.9 GB in {expected})"


def test_tracker_name_is_sanitised_and_output_bounded() -> None:
    tracker = PullTracker("evil`name" + "x" * 5000)
    for index in range(300):
        tracker.update(PullProgress(f"pulling {index:012x}", total=10**12, completed=index), float(index))
    tracker.update(PullProgress("z" * 5000), 301.0)
    for text in (tracker.render(301.0), tracker.finished(None), tracker.finished("e" * 5000)):
        assert len(text) < 2000
        assert "evil'name" in text
        assert text.count("`") % 2 == 0


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (612 * MB, "612 MB"),
        (2 * GB, "2 GB"),
        (2_019_393_189, "2.0 GB"),
        (1_900 * MB, "1.9 GB"),
        (12_345_678_901, "12 GB"),
        (10**13, "10 TB"),
        (-5, "0 B"),
        (math.nan, "0 B"),
        (math.inf, "1000000 TB"),
        (10**400, "1000000 TB"),
    ],
)
def test_human_bytes(count: float, text: str) -> None:
    assert human_bytes(count) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (512, "512 B/s"),
        (48_200_000, "48.2 MB/s"),
        (150 * MB, "150 MB/s"),
        (99_990, "100 KB/s"),
        (150_700_000, "151 MB/s"),
        (-1, "0 B/s"),
    ],
)
def test_human_speed(rate: float, text: str) -> None:
    assert human_speed(rate) == text
