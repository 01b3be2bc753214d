"""The fake Ollama's silent behaviours, checked with the official `ollama` client where it can parse them.

Each case is something real Ollama does without an error: cutting a prompt to num_ctx, stopping at
num_predict with done_reason "length", older releases' /api/show without `capabilities`, and the 400
for `think` on a model that cannot think.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import ollama
import pytest

from tests.fakes.fake_ollama import (
    IMAGE_TOKENS,
    LLAVA_MODEL,
    MESSAGE_OVERHEAD_TOKENS,
    ChatScript,
    FakeModel,
    FakeOllama,
    count_tokens,
    fit_prompt,
)

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
async def client(fake: FakeOllama) -> AsyncIterator[ollama.AsyncClient]:
    api = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
    yield api
    await api.close()


def turn(role: str, words: int, tag: str) -> dict[str, str]:
    return {"role": role, "content": " ".join(f"{tag}{i}" for i in range(words))}


def test_tokenizer_is_plausible() -> None:
    assert count_tokens("Hello world") == 2
    assert count_tokens("internationalization") == 4  # long words split
    assert count_tokens("日本語") == 3  # one token per CJK character
    prose = "The quick brown fox jumps over the lazy dog, and then it runs away into the forest. " * 10
    assert 3.5 < len(prose) / count_tokens(prose) < 6


def test_fit_prompt_drops_the_oldest_turns_but_keeps_system_and_the_last() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        turn("user", 100, "a"),
        turn("assistant", 100, "b"),
        turn("user", 100, "c"),
        turn("assistant", 100, "d"),
        turn("user", 10, "e"),
    ]
    fit = fit_prompt(messages, 300, vision=False, num_keep=4)
    assert fit.kept[0]["role"] == "system"
    assert fit.kept[-1] == messages[-1]
    assert fit.dropped_messages == 3
    assert fit.cut_tokens == 0
    assert fit.prompt_tokens <= 300
    roomy = fit_prompt(messages, 4096, vision=False, num_keep=4)
    assert not roomy.truncated
    assert roomy.prompt_tokens == 1 + sum(MESSAGE_OVERHEAD_TOKENS + count_tokens(m["content"]) for m in messages)


def test_fit_prompt_cuts_a_single_over_long_prompt_like_the_runner() -> None:
    fit = fit_prompt([turn("user", 1000, "w")], 512, vision=False, num_keep=4)
    assert fit.dropped_messages == 0
    # llm/llama_server.go: limit = num_ctx - max((num_ctx - num_keep) / 2, 1)
    assert fit.prompt_tokens == 512 - (512 - 4) // 2
    assert fit.cut_tokens > 0


def test_images_cost_768_tokens_for_vision_models() -> None:
    message = {"role": "user", "content": "hi", "images": [PIXEL, PIXEL]}
    assert fit_prompt([message], 4096, vision=True, num_keep=4).prompt_tokens == 1 + 4 + 1 + 2 * IMAGE_TOKENS
    assert fit_prompt([message], 4096, vision=False, num_keep=4).prompt_tokens == 1 + 4 + 1


async def test_prompt_longer_than_num_ctx_is_cut_silently(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    history = [turn("user" if i % 2 == 0 else "assistant", 200, f"t{i}x") for i in range(6)]
    history.append({"role": "user", "content": "the question"})
    parts = [p async for p in await client.chat("llama3.2", messages=history, stream=True, options={"num_ctx": 512})]
    final = parts[-1]
    assert final.done and final.done_reason == "stop"
    fit = fake.chat_requests[-1].fit
    assert fit is not None and fit.truncated
    assert fit.kept[-1]["content"] == "the question"
    assert final.prompt_eval_count == fit.prompt_tokens <= 512


async def test_default_num_ctx_is_the_server_default_capped_at_training(fake: FakeOllama) -> None:
    fake.add_model(FakeModel("tiny:latest", context_length=1024))
    fake.add_model(FakeModel("tuned:latest", num_ctx_parameter=8192))
    client = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
    try:
        for name in ("llama3.2", "tiny", "tuned"):
            await client.chat(name, messages=[{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    contexts = [r.fit.num_ctx for r in fake.chat_requests if r.fit is not None]
    assert contexts == [4096, 1024, 8192]


async def test_ps_reports_the_context_a_model_was_loaded_with(fake: FakeOllama) -> None:
    async with httpx.AsyncClient(base_url=fake.url, trust_env=False, timeout=5.0) as raw:
        await raw.post(
            "/api/chat",
            json={"model": "qwen3:8b", "messages": [{"role": "user", "content": "hi"}], "options": {"num_ctx": 8192}},
        )
        listed = (await raw.get("/api/ps")).json()["models"]
    assert [(m["name"], m["context_length"]) for m in listed] == [("qwen3:8b", 8192)]


async def test_num_predict_ends_with_done_reason_length(client: ollama.AsyncClient, fake: FakeOllama) -> None:
    fake.scripts.append(ChatScript(tokens=["One", " two", " three", " four", " five"], final_content="!"))
    parts = [
        p
        async for p in await client.chat(
            "llama3.2", messages=[{"role": "user", "content": "count"}], stream=True, options={"num_predict": 3}
        )
    ]
    assert "".join(p.message.content or "" for p in parts) == "One two three"
    assert parts[-1].done_reason == "length"
    assert parts[-1].eval_count == 3

    fake.scripts.append(ChatScript(thinking=["a", "b"], tokens=["X", "Y"]))
    whole = await client.chat(
        "qwen3:8b", messages=[{"role": "user", "content": "count"}], think=True, options={"num_predict": 3}
    )
    # Thinking tokens count against num_predict too.
    assert (whole.message.thinking, whole.message.content, whole.done_reason) == ("ab", "X", "length")

    fake.scripts.append(ChatScript(tokens=["Short"]))
    short = await client.chat("llama3.2", messages=[{"role": "user", "content": "hi"}], options={"num_predict": 3})
    assert short.done_reason == "stop"


async def test_think_on_a_model_without_thinking_is_a_400(client: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        await client.chat("llama3.2", messages=[{"role": "user", "content": "hi"}], think=True)
    assert raised.value.status_code == 400
    assert raised.value.error == '"llama3.2" does not support thinking'
    # think:false is always accepted.
    await client.chat("llama3.2", messages=[{"role": "user", "content": "hi"}], think=False)


async def test_an_old_server_shows_no_capabilities_but_families_and_projector_info() -> None:
    gemma = FakeModel("gemma3:4b", family="gemma3", capabilities=("completion", "vision"))
    async with (
        FakeOllama(version="0.5.7", models=[LLAVA_MODEL, gemma]) as fake,
        httpx.AsyncClient(base_url=fake.url, trust_env=False, timeout=5.0) as raw,
    ):
        client = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
        try:
            await _check_old_server(fake, client, raw)
        finally:
            await client.close()


async def _check_old_server(fake: FakeOllama, client: ollama.AsyncClient, raw: httpx.AsyncClient) -> None:
    shown = await client.show("llava:7b")
    assert shown.capabilities is None
    assert shown.details is not None and shown.details.families == ["llama", "clip"]
    body = (await raw.post("/api/show", json={"model": "llava:7b"})).json()
    assert "capabilities" not in body
    assert body["projector_info"]["clip.has_vision_encoder"] is True
    single_file = (await raw.post("/api/show", json={"model": "gemma3:4b"})).json()
    assert "capabilities" not in single_file and "gemma3.vision.block_count" in single_file["model_info"]
    tags = (await raw.get("/api/tags")).json()["models"]
    assert all("capabilities" not in entry for entry in tags)
    # Before think existed it was an unknown field, and those are ignored.
    await client.chat("llava:7b", messages=[{"role": "user", "content": "hi"}], think=True)
    assert fake.chat_requests[-1].fit is not None and fake.chat_requests[-1].fit.num_ctx == 2048
    [loaded] = (await raw.get("/api/ps")).json()["models"]
    assert "context_length" not in loaded


async def test_servers_before_0_6_8_left_vision_out_for_projector_models() -> None:
    async with FakeOllama(version="0.6.5", models=[LLAVA_MODEL]) as fake:
        client = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
        try:
            shown = await client.show("llava:7b")
        finally:
            await client.close()
    assert shown.capabilities == ["completion"]
