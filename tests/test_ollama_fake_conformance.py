"""The official `ollama` Python client must parse everything FakeOllama sends.

This keeps the fake from drifting away from the real API: if ollama-python (which is written
against the real server) can't read a stream, neither could it read Ollama's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import httpx
import ollama
import pytest

from tests.fakes.fake_ollama import BUSY_TEXT, EMBEDDING_MODEL, ChatScript, FakeOllama

USER = [{"role": "user", "content": "Say <hi> & wave"}]


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[ollama.AsyncClient]:
    api = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
    yield api
    await api.close()


@pytest.fixture
async def raw(fake: FakeOllama) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.url, trust_env=False, timeout=5.0) as http:
        yield http


# --------------------------------------------------------------------------- chat


async def test_streamed_chat_reassembles(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    tokens = ["Grüße", " <b>", "🎉", " & ", "日本"]
    fake.scripts.append(ChatScript(tokens=tokens, final_content=" fin", split_writes=True))
    parts = [part async for part in await client.chat("llama3.2", messages=USER, stream=True)]
    assert "".join(p.message.content or "" for p in parts) == "".join(tokens) + " fin"
    assert [p.done for p in parts] == [False] * len(tokens) + [True]
    final = parts[-1]
    assert final.done_reason == "stop"
    assert final.eval_count == len(tokens)
    assert final.total_duration and final.total_duration > 0
    assert all(p.eval_count is None and p.done_reason is None for p in parts[:-1])
    assert fake.chat_requests[-1].json["tools"] == []  # the client always sends tools; accepted


async def test_streamed_chat_thinking(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(thinking=["Greeting", " detected"], tokens=["Hi", "!"]))
    parts = [part async for part in await client.chat("qwen3:8b", messages=USER, stream=True, think=True)]
    assert "".join(p.message.thinking or "" for p in parts) == "Greeting detected"
    assert "".join(p.message.content or "" for p in parts) == "Hi!"
    assert fake.chat_requests[-1].json["think"] is True


async def test_non_streamed_chat(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(thinking=["hm"], tokens=["A", "B"], final_content="C"))
    resp = await client.chat("qwen3:8b", messages=USER, think="high", options={"num_ctx": 4096})
    assert resp.message.content == "ABC"
    assert resp.message.thinking == "hm"
    assert resp.done is True
    assert resp.done_reason == "stop"
    assert resp.eval_count == 2
    assert fake.chat_requests[-1].json["stream"] is False


async def test_load_and_unload(client: ollama.AsyncClient) -> None:
    loaded = await client.chat("llama3.2", messages=[], keep_alive=-1)
    assert (loaded.done, loaded.done_reason, loaded.message.content) == (True, "load", "")
    listed = await client.ps()
    assert [m.model for m in listed.models] == ["llama3.2:latest"]
    expires = listed.models[0].expires_at
    assert expires is not None
    assert expires.year > datetime.now(UTC).year + 200  # keep_alive -1 = "forever"
    unloaded = await client.chat("llama3.2", messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert (await client.ps()).models == []


async def test_ps_orders_longest_remaining_first(client: ollama.AsyncClient) -> None:
    await client.chat("llama3.2", messages=USER, keep_alive="1m")
    await client.chat("gemma3:4b", messages=USER, keep_alive="2h")
    listed = await client.ps()
    assert [m.model for m in listed.models] == ["gemma3:4b", "llama3.2:latest"]
    assert all(m.size_vram and m.context_length for m in listed.models)


# --------------------------------------------------------------------------- errors


async def test_unknown_model_404(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat("nope", messages=USER)
    assert (info.value.status_code, info.value.error) == (404, "model 'nope' not found")

    with pytest.raises(ollama.ResponseError) as info:
        async for _ in await client.chat("nope", messages=USER, stream=True):
            pass
    assert (info.value.status_code, info.value.error) == (404, "model 'nope' not found")


async def test_mid_stream_error_has_status_minus_one(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["a", "b", "c"], error_after=1))
    got: list[str] = []
    with pytest.raises(ollama.ResponseError) as info:
        async for part in await client.chat("llama3.2", messages=USER, stream=True):
            got.append(part.message.content or "")
    assert got == ["a"]
    assert info.value.status_code == -1
    assert info.value.error == "an error was encountered while running the model: unexpected EOF"


async def test_non_streamed_mid_stream_error_is_500(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["a", "b"], error_after=1, stream_error="boom"))
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat("llama3.2", messages=USER)
    assert (info.value.status_code, info.value.error) == (500, "boom")


@pytest.mark.parametrize(
    ("kwargs", "status", "text"),
    [
        ({"model": "llama3.2", "think": True}, 400, '"llama3.2" does not support thinking'),
        ({"model": "qwen3:8b", "think": "extreme"}, 400, None),
        ({"model": "llama3.2", "keep_alive": "-1"}, 400, 'time: missing unit in duration "-1"'),
        ({"model": "llama3.2", "options": {"stop": "\n"}}, 500, 'option "stop" must be of type array'),
    ],
)
async def test_validation_errors(
    client: ollama.AsyncClient, kwargs: dict[str, object], status: int, text: str | None
) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        await client.chat(messages=USER, **kwargs)  # type: ignore[arg-type]
    assert info.value.status_code == status
    if text is not None:
        assert info.value.error == text


async def test_exact_error_texts(raw: httpx.AsyncClient, fake: FakeOllama) -> None:
    async def err(body: object) -> tuple[int, str]:
        r = await raw.post("/api/chat", json=body)
        return r.status_code, r.json()["error"]

    assert await err({"messages": USER}) == (400, "model is required")
    assert await err({"model": "qwen3:8b", "messages": USER, "think": "extreme"}) == (
        400,
        'invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false)',
    )
    image = {"role": "user", "content": "?", "images": ["data:image/png;base64,iVBORw0KGgo="]}
    assert await err({"model": "gemma3:4b", "messages": [image]}) == (400, "illegal base64 data at input byte 4")
    r = await raw.post("/api/chat", content=b"")
    assert (r.status_code, r.json()) == (400, {"error": "missing request body"})
    r = await raw.post("/api/generate", json={"prompt": "hi"})
    assert (r.status_code, r.json()) == (404, {"error": "model '' not found"})
    fake.scripts.append(ChatScript(status=503))
    assert await err({"model": "llama3.2", "messages": USER}) == (503, BUSY_TEXT)
    fake.add_model(EMBEDDING_MODEL)
    assert await err({"model": "nomic-embed-text", "messages": USER}) == (
        400,
        '"nomic-embed-text" does not support chat',
    )
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
    assert await err({"model": "gemma3:4b", "messages": USER, "tools": [tool]}) == (
        400,
        "registry.ollama.ai/library/gemma3:4b does not support tools",
    )
    assert fake.scripts == deque()  # validation failures never consume a script


async def test_plain_404_and_405(raw: httpx.AsyncClient, client: ollama.AsyncClient) -> None:
    r = await raw.get("/api/nope")
    assert (r.status_code, r.text) == (404, "404 page not found")
    assert r.headers["content-type"].startswith("text/plain")
    r = await raw.get("/api/chat")
    assert (r.status_code, r.text) == (405, "405 method not allowed")


# --------------------------------------------------------------------------- metadata


async def test_root_and_version(raw: httpx.AsyncClient) -> None:
    r = await raw.get("/")
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "Ollama is running", "text/plain; charset=utf-8")
    r = await raw.head("/")
    assert r.status_code == 200
    r = await raw.get("/api/version")
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.content == b'{"version":"0.32.15"}'


async def test_list(client: ollama.AsyncClient) -> None:
    listed = await client.list()
    by_name = {m.model: m for m in listed.models}
    assert set(by_name) == {"llama3.2:latest", "qwen3:8b", "gemma3:4b"}
    qwen = by_name["qwen3:8b"]
    assert qwen.size == 5_225_388_164
    assert qwen.details is not None
    assert (qwen.details.family, qwen.details.parameter_size, qwen.details.quantization_level) == (
        "qwen3",
        "8.2B",
        "Q4_K_M",
    )
    assert qwen.modified_at is not None
    assert qwen.digest is not None
    assert len(qwen.digest) == 64


async def test_show(client: ollama.AsyncClient) -> None:
    shown = await client.show("gemma3:4b")
    assert shown.capabilities == ["completion", "vision"]
    assert shown.details is not None
    assert shown.details.family == "gemma3"
    assert shown.modelinfo is not None
    assert shown.modelinfo["gemma3.context_length"] == 131_072
    with pytest.raises(ollama.ResponseError) as info:
        await client.show("missing")
    assert (info.value.status_code, info.value.error) == (404, "model 'missing:latest' not found")


async def test_pull_progress(client: ollama.AsyncClient) -> None:
    progress = [p async for p in await client.pull("tinyllama", stream=True)]
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = progress[1]
    assert layer.digest is not None
    assert layer.status == f"pulling {layer.digest[7:19]}"
    assert layer.total and layer.completed is None
    assert any(p.completed == p.total for p in progress if p.digest == layer.digest)
    assert "tinyllama:latest" in {m.model for m in (await client.list()).models}


async def test_pull_unknown(client: ollama.AsyncClient) -> None:
    got: list[str | None] = []
    with pytest.raises(ollama.ResponseError) as info:
        async for p in await client.pull("no-such-model", stream=True):
            got.append(p.status)
    assert got == ["pulling manifest"]
    assert (info.value.status_code, info.value.error) == (-1, "pull model manifest: file does not exist")
    with pytest.raises(ollama.ResponseError) as info:
        await client.pull("no-such-model")
    assert info.value.status_code == 500
    assert (await client.pull("tinyllama")).status == "success"


async def test_paced_pull_and_early_close(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.pull_delay = 0.01
    statuses = [p.status async for p in await client.pull("tinyllama", stream=True)]
    assert statuses[-1] == "success"
    await client.delete("tinyllama")
    fake.pull_delay = 0.05
    stream = await client.pull("tinyllama", stream=True)
    assert (await anext(stream)).status == "pulling manifest"
    await stream.aclose()  # type: ignore[attr-defined]
    rec = await fake.wait_for_disconnect(timeout=2.0)
    assert rec.path == "/api/pull"
    assert not rec.done_sent
    assert "tinyllama:latest" not in {m.model for m in (await client.list()).models}


async def test_delete(client: ollama.AsyncClient) -> None:
    assert (await client.delete("gemma3:4b")).status == "success"
    with pytest.raises(ollama.ResponseError) as info:
        await client.delete("gemma3:4b")
    assert (info.value.status_code, info.value.error) == (404, "model 'gemma3:4b' not found")


async def test_generate_stream(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["Once", " upon"], final_content=" a time"))
    parts = [p async for p in await client.generate("llama3.2", prompt="Tell a story", stream=True)]
    assert "".join(p.response or "" for p in parts) == "Once upon a time"
    assert parts[-1].done and parts[-1].context
    loaded = await client.generate("llama3.2", prompt="")
    assert loaded.done_reason == "load"


# --------------------------------------------------------------------------- raw framing


async def test_raw_stream_framing(raw: httpx.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["<think>", "ü & 🎉"]))
    async with raw.stream("POST", "/api/chat", json={"model": "llama3.2", "messages": USER}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        assert r.headers.get("transfer-encoding") == "chunked"
        body = await r.aread()
    assert body.endswith(b"}\n")
    assert b"\n\n" not in body
    assert b'"content":"\\u003cthink\\u003e"' in body
    assert "ü \\u0026 🎉".encode() in body
    lines = body.split(b"\n")[:-1]
    assert all(b" " not in line.split(b'"content"')[0] for line in lines)  # compact separators
    assert b'"created_at":"' in lines[0]
    created = lines[0].split(b'"created_at":"')[1].split(b'"')[0].decode()
    assert created.endswith("Z")
    assert 1 <= len(created.split(".")[1]) - 1 <= 9


async def test_non_streamed_body_has_no_trailing_newline(raw: httpx.AsyncClient) -> None:
    r = await raw.post("/api/chat", json={"model": "llama3.2", "messages": USER, "stream": False})
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert not r.content.endswith(b"\n")
    assert r.json()["message"] == {"role": "assistant", "content": "Hello world!"}


async def test_no_headers_before_first_chunk(fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["late"], first_token_delay=0.5))
    async with aiohttp.ClientSession() as session:
        request = session.post(fake.url + "/api/chat", json={"model": "llama3.2", "messages": USER})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(request, 0.2)
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert rec.first_chunk_at is None


async def test_split_writes_really_split_utf8(fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["é" * 4, "🎉" * 3], split_writes=True))
    reads: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(fake.url + "/api/chat", json={"model": "llama3.2", "messages": USER}) as resp,
    ):
        async for data in resp.content.iter_any():
            reads.append(data)
    undecodable = 0
    for data in reads:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable >= 1, reads
    body = b"".join(reads)
    assert body.decode("utf-8").count("\n") == 3  # two deltas and the done line, no blank lines
