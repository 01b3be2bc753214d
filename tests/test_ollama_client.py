"""OllamaClient against FakeOllama over real loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import pytest
from aiohttp import web

from bot.ollama import (
    ChatChunk,
    ModelInfo,
    ModelNotFound,
    OllamaClient,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaProtocolError,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)
from tests.fakes.fake_ollama import BUSY_TEXT, ChatScript, FakeModel, FakeOllama

MODEL = "llama3.2"
MESSAGES = [{"role": "user", "content": "Hi!"}]


async def collect(client: OllamaClient, model: str = MODEL, **kwargs: object) -> list[ChatChunk]:
    return [chunk async for chunk in client.chat_stream(model, MESSAGES, **kwargs)]  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- happy paths


async def test_stream_with_final_content(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["Hel", "lo"], final_content=" there."))
    chunks = await collect(client)
    assert [c.content for c in chunks] == ["Hel", "lo", " there."]
    assert [c.done for c in chunks] == [False, False, True]
    final = chunks[-1]
    assert final.done_reason == "stop"
    assert final.eval_count == 2
    assert isinstance(final.prompt_eval_count, int)
    assert isinstance(final.total_duration_ns, int)
    assert final.total_duration_ns > 0
    assert all(c.done_reason is None and c.eval_count is None for c in chunks[:-1])
    rec = fake.chat_requests[-1]
    await asyncio.wait_for(rec.finished.wait(), 1.0)
    assert rec.done_sent
    assert not rec.disconnected


async def test_logs_never_contain_contents(
    client: OllamaClient, fake: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.ollama")
    fake.scripts.append(ChatScript(tokens=["SECRET-ANSWER"]))
    chunks = [c async for c in client.chat_stream(MODEL, [{"role": "user", "content": "SECRET-PROMPT"}])]
    assert chunks[0].content == "SECRET-ANSWER"
    assert caplog.records, "expected DEBUG start/end records"
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)
    assert "SECRET" not in caplog.text


async def test_request_body_omits_unset_fields(client: OllamaClient, fake: FakeOllama) -> None:
    await collect(client)
    body = fake.chat_requests[-1].json
    assert body == {"model": MODEL, "messages": MESSAGES, "stream": True}


@pytest.mark.parametrize(
    ("keep_alive", "sent"),
    [("30m", "30m"), ("-1", -1), (" 300 ", 300), (-1, -1), (1.5, 1.5), ("0", 0), (0, 0)],
)
async def test_request_body_fields(client: OllamaClient, fake: FakeOllama, keep_alive: object, sent: object) -> None:
    options = {"temperature": 0.7, "num_ctx": 8192}
    await collect(client, "qwen3:8b", options=options, think=False, keep_alive=keep_alive)
    body = fake.chat_requests[-1].json
    assert body["options"] == options
    assert body["think"] is False
    assert body["keep_alive"] == sent
    assert type(body["keep_alive"]) is type(sent)


async def test_split_writes_reassemble_non_ascii(client: OllamaClient, fake: FakeOllama) -> None:
    tokens = ["Grüße", " 🎉🦙", " 日本語", " <b>&amp;</b>", " ☃"]
    fake.scripts.append(ChatScript(tokens=tokens, final_content=" ✓", split_writes=True))
    chunks = await collect(client)
    assert "".join(c.content for c in chunks) == "".join(tokens) + " ✓"


async def test_several_lines_per_write(client: OllamaClient, fake: FakeOllama) -> None:
    tokens = [f"t{i} " for i in range(20)]
    fake.scripts.append(ChatScript(tokens=tokens, lines_per_write=7))
    chunks = await collect(client)
    assert [c.content for c in chunks[:-1]] == tokens
    assert chunks[-1].done


async def test_line_longer_than_aiohttp_line_cap(client: OllamaClient, fake: FakeOllama) -> None:
    big = "x" * 700_000  # over aiohttp 3.14's 512 KiB readline limit
    fake.scripts.append(ChatScript(tokens=["a", big], final_content="z"))
    chunks = await collect(client)
    assert "".join(c.content for c in chunks) == "a" + big + "z"


async def test_thinking_deltas(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(thinking=["The user", " greets", "."], tokens=["Hi", "!"], final_content=" :)"))
    chunks = await collect(client, "qwen3:8b", think=True)
    assert "".join(c.thinking for c in chunks) == "The user greets."
    assert "".join(c.content for c in chunks) == "Hi! :)"
    # The switch-over line carries both fields.
    assert ChatChunk(content="Hi", thinking=".", done=False) in chunks
    assert chunks[0].content == ""


async def test_legacy_think_tags_pass_through_content(client: OllamaClient, fake: FakeOllama) -> None:
    tokens = ["<th", "ink>", "hmm", "</think>", "Answer & done"]
    fake.scripts.append(ChatScript(tokens=tokens))
    chunks = await collect(client)
    assert "".join(c.content for c in chunks) == "".join(tokens)


async def test_empty_messages_loads_model(client: OllamaClient, fake: FakeOllama) -> None:
    await client.load(MODEL, keep_alive=-1)
    assert fake.chat_requests[-1].json == {"model": MODEL, "messages": [], "stream": True, "keep_alive": -1}
    chunks = [c async for c in client.chat_stream(MODEL, [], keep_alive=0)]
    assert chunks == [ChatChunk(content="", thinking="", done=True, done_reason="unload")]


async def test_concurrent_streams(client: OllamaClient, fake: FakeOllama) -> None:
    fake.default_script = ChatScript(tokens=["a", "b", "c"], token_delay=0.01)
    results = await asyncio.gather(*(collect(client) for _ in range(10)))
    assert all("".join(c.content for c in chunks) == "abc" for chunks in results)


async def test_session_timeout_is_not_inherited(fake: FakeOllama) -> None:
    # A short session-wide total timeout must not cut off a slow first token.
    short = aiohttp.ClientTimeout(total=0.1, sock_read=0.1)
    async with aiohttp.ClientSession(timeout=short) as session:
        client = OllamaClient(session, fake.url, first_token_timeout=1.0, inactivity_timeout=1.0)
        fake.scripts.append(ChatScript(tokens=["ok"], first_token_delay=0.3))
        chunks = await collect(client)
    assert [c.content for c in chunks] == ["ok", ""]


# --------------------------------------------------------------------------- HTTP errors


async def test_unknown_model_is_model_not_found(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        await collect(client, "nope:7b")
    assert info.value.model == "nope:7b"
    assert info.value.message == "model 'nope:7b' not found"
    assert "nope:7b" in str(info.value)


async def test_old_not_found_text_is_model_not_found(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(status=404, error=f'model "{MODEL}" not found, try pulling it first'))
    with pytest.raises(ModelNotFound) as info:
        await collect(client)
    assert info.value.model == MODEL


async def test_plain_404_is_not_model_not_found(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    # A wrong path prefix (e.g. a misconfigured reverse proxy) must not read as "model not pulled".
    client = OllamaClient(session, fake.url + "/wrong-prefix")
    with pytest.raises(OllamaHTTPError) as info:
        await collect(client)
    assert not isinstance(info.value, ModelNotFound)
    assert info.value.status == 404
    assert info.value.message == "404 page not found"


async def test_500_carries_server_text(client: OllamaClient, fake: FakeOllama) -> None:
    text = "llama-server process has terminated: exit status 2"
    fake.scripts.append(ChatScript(status=500, error=text))
    with pytest.raises(OllamaHTTPError) as info:
        await collect(client)
    assert (info.value.status, info.value.message) == (500, text)


async def test_non_json_error_body_falls_back_to_text(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(status=502, error="Bad Gateway from proxy", raw_error_body=True))
    with pytest.raises(OllamaHTTPError) as info:
        await collect(client)
    assert (info.value.status, info.value.message) == (502, "Bad Gateway from proxy")


async def test_503_is_server_busy(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(status=503))
    with pytest.raises(OllamaServerBusy) as info:
        await collect(client)
    assert info.value.status == 503
    assert info.value.message == BUSY_TEXT


async def test_validation_error_400(client: OllamaClient) -> None:
    with pytest.raises(OllamaHTTPError) as info:
        await collect(client, MODEL, think=True)
    assert (info.value.status, info.value.message) == (400, f'"{MODEL}" does not support thinking')


# --------------------------------------------------------------------------- stream failures


async def test_mid_stream_error_after_tokens(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["a", "b", "c", "d"], error_after=2))
    got: list[str] = []
    with pytest.raises(OllamaStreamError) as info:
        async for chunk in client.chat_stream(MODEL, MESSAGES):
            got.append(chunk.content)
    assert got == ["a", "b"]
    assert info.value.message == "an error was encountered while running the model: unexpected EOF"


async def test_eof_without_done_is_incomplete(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["a", "b", "c"], eof_after=2))
    got: list[str] = []
    with pytest.raises(OllamaIncompleteStream):
        async for chunk in client.chat_stream(MODEL, MESSAGES):
            got.append(chunk.content)
    assert got == ["a", "b"]


async def test_dropped_connection_is_incomplete(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["a", "b", "c"], drop_after=2))
    got: list[str] = []
    with pytest.raises(OllamaIncompleteStream):
        async for chunk in client.chat_stream(MODEL, MESSAGES):
            got.append(chunk.content)
    assert got == ["a", "b"]


async def test_stall_raises_stalled_and_closes(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    client = OllamaClient(session, fake.url, first_token_timeout=5.0, inactivity_timeout=0.2)
    fake.scripts.append(ChatScript(tokens=["a", "b", "c"], stall_after=1))
    got: list[str] = []
    with pytest.raises(OllamaStalled) as info:
        async for chunk in client.chat_stream(MODEL, MESSAGES):
            got.append(chunk.content)
    assert got == ["a"]
    assert info.value.seconds == 0.2
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert not rec.done_sent


async def test_slow_tokens_below_inactivity_timeout_are_fine(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    client = OllamaClient(session, fake.url, first_token_timeout=5.0, inactivity_timeout=0.3)
    fake.scripts.append(ChatScript(tokens=["a", "b", "c", "d"], token_delay=0.1))
    chunks = await collect(client)
    assert "".join(c.content for c in chunks) == "abcd"


async def test_first_token_timeout(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    client = OllamaClient(session, fake.url, first_token_timeout=0.2, inactivity_timeout=5.0)
    fake.scripts.append(ChatScript(first_token_delay=2.0))
    with pytest.raises(OllamaFirstTokenTimeout) as info:
        await collect(client)
    assert info.value.seconds == 0.2
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert rec.first_chunk_at is None


async def test_slow_first_token_within_deadline(session: aiohttp.ClientSession, fake: FakeOllama) -> None:
    # The inactivity timeout must not apply before the first chunk: cold loads are slow.
    client = OllamaClient(session, fake.url, first_token_timeout=1.0, inactivity_timeout=0.1)
    fake.scripts.append(ChatScript(tokens=["cold", " start"], first_token_delay=0.3))
    chunks = await collect(client)
    assert "".join(c.content for c in chunks) == "cold start"


async def test_unreachable_names_url(session: aiohttp.ClientSession) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    client = OllamaClient(session, url, connect_timeout=1.0)
    with pytest.raises(OllamaUnreachable) as info:
        await collect(client)
    assert info.value.url == url
    assert url in str(info.value)
    assert info.value.detail == "connection refused"
    with pytest.raises(OllamaUnreachable):
        await client.version()
    with pytest.raises(OllamaUnreachable):
        await client.list_models()


async def test_garbage_response_is_protocol_error(session: aiohttp.ClientSession) -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>captive portal</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        client = OllamaClient(session, f"http://127.0.0.1:{runner.addresses[0][1]}")
        with pytest.raises(OllamaProtocolError):
            await collect(client)
        with pytest.raises(OllamaProtocolError):
            await client.version()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- cancellation


async def test_aclose_closes_connection(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=[f"t{i}" for i in range(100)], token_delay=0.02))
    stream = client.chat_stream(MODEL, MESSAGES)
    first = [await anext(stream), await anext(stream)]
    assert [c.content for c in first] == ["t0", "t1"]
    await stream.aclose()
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert rec.disconnected
    assert not rec.done_sent
    assert len(rec.token_times) < 100


async def test_cancelling_consumer_closes_connection(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=[f"t{i}" for i in range(100)], token_delay=0.02))
    got: list[ChatChunk] = []
    two = asyncio.Event()

    async def consume() -> None:
        async for chunk in client.chat_stream(MODEL, MESSAGES):
            got.append(chunk)
            if len(got) == 2:
                two.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two.wait(), 2.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert not rec.done_sent
    assert len(got) < 100


async def test_cancel_while_waiting_for_first_token(client: OllamaClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(first_token_delay=5.0))
    task = asyncio.create_task(collect(client))
    await fake.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec = await fake.wait_for_disconnect(timeout=1.0)
    assert rec.first_chunk_at is None


# --------------------------------------------------------------------------- metadata


async def test_version(client: OllamaClient) -> None:
    assert await client.version() == "0.32.15"


async def test_list_models(client: OllamaClient) -> None:
    models = await client.list_models()
    by_name = {m.name: m for m in models}
    assert set(by_name) == {"llama3.2:latest", "qwen3:8b", "gemma3:4b"}
    assert by_name["qwen3:8b"] == ModelInfo(
        name="qwen3:8b",
        size=5_225_388_164,
        parameter_size="8.2B",
        quantization_level="Q4_K_M",
        family="qwen3",
        capabilities=("completion", "tools", "thinking"),
    )
    assert by_name["gemma3:4b"].supports("vision")
    assert not by_name["llama3.2:latest"].supports("thinking")


async def test_list_models_without_capabilities(session: aiohttp.ClientSession) -> None:
    async with FakeOllama(models=[FakeModel("old:latest", capabilities=())]) as fake:
        client = OllamaClient(session, fake.url)
        [model] = await client.list_models()
    assert model.name == "old:latest"
    assert model.capabilities == ()


async def test_show(client: OllamaClient) -> None:
    info = await client.show("qwen3:8b")
    assert info["capabilities"] == ["completion", "tools", "thinking"]
    assert info["model_info"]["qwen3.context_length"] == 40_960
    assert info["details"]["family"] == "qwen3"
    assert "<|user|>" in info["template"]


async def test_show_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        await client.show("missing")
    assert info.value.model == "missing"
    assert info.value.message == "model 'missing:latest' not found"


def test_rejects_non_positive_timeouts() -> None:
    with pytest.raises(ValueError, match="inactivity_timeout"):
        OllamaClient(None, "http://x", inactivity_timeout=0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fake scheduling knobs


async def test_fake_parallel_limit_and_queue(session: aiohttp.ClientSession) -> None:
    async with FakeOllama(parallel=1, max_queue=1) as fake:
        client = OllamaClient(session, fake.url)
        fake.default_script = ChatScript(tokens=["a", "b"], token_delay=0.05)
        first = asyncio.create_task(collect(client))
        await fake.wait_for_requests(1)
        second = asyncio.create_task(collect(client))
        await fake.wait_for_requests(2)
        with pytest.raises(OllamaServerBusy):
            await collect(client)  # one running, one queued: the queue is full
        await asyncio.gather(first, second)
        one, two = fake.chat_requests[:2]
        assert one.last_token_at is not None
        assert two.first_chunk_at is not None
        assert two.first_chunk_at >= one.last_token_at  # serialised per model


async def test_fake_load_delay_only_when_cold(session: aiohttp.ClientSession) -> None:
    async with FakeOllama(load_delay=0.2) as fake:
        client = OllamaClient(session, fake.url)
        started = time.monotonic()
        await collect(client)
        cold = time.monotonic() - started
        started = time.monotonic()
        await collect(client)
        warm = time.monotonic() - started
    assert cold >= 0.2
    assert warm < 0.15
