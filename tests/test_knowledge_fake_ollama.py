"""The fake Ollama's /api/embed, read by the official `ollama` client (so the fake can't drift from the API),
and by the bot's own client and embedder."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import numpy as np
import ollama
import pytest

from bot.knowledge.embedder import Embedder
from bot.knowledge.refusals import EmbeddingModelMissing, EmbeddingUnavailable
from bot.ollama.client import OllamaClient
from bot.ollama.errors import ModelNotFound
from tests.fakes.fake_ollama import EMBED_DIMENSIONS, EMBEDDING_MODEL, FakeOllama, hashed_embedding


@pytest.fixture
async def api(fake: FakeOllama) -> AsyncIterator[ollama.AsyncClient]:
    fake.add_model(replace(EMBEDDING_MODEL))
    client = ollama.AsyncClient(host=fake.url, trust_env=False, timeout=5.0)
    yield client
    await client.close()


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


async def test_official_client_reads_a_batch_of_normalised_embeddings(api: ollama.AsyncClient) -> None:
    texts = ["The rollback code word is PAPAYA-42.", "What is the rollback code word?", "Cats sleep a lot."]
    response = await api.embed("nomic-embed-text", texts)
    assert response.model == "nomic-embed-text"
    assert len(response.embeddings) == 3
    assert all(len(vector) == EMBED_DIMENSIONS for vector in response.embeddings)
    assert all(math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-5) for vector in response.embeddings)
    assert response.prompt_eval_count and response.prompt_eval_count > 0
    assert response.total_duration is not None and response.total_duration > 0
    # Shared words make texts close; none make them unrelated.
    fact, question, cats = response.embeddings
    assert cosine(fact, question) > 0.5 > cosine(fact, cats)


async def test_one_string_is_a_list_of_one_and_an_empty_input_none(api: ollama.AsyncClient) -> None:
    single = await api.embed("nomic-embed-text", "hello world")
    assert len(single.embeddings) == 1
    assert single.embeddings[0] == pytest.approx(hashed_embedding("nomic-embed-text:latest", "hello world"), abs=1e-6)
    assert (await api.embed("nomic-embed-text", "")).embeddings == []


async def test_embeddings_are_deterministic_and_differ_between_models(
    api: ollama.AsyncClient, fake: FakeOllama
) -> None:
    fake.add_model(replace(EMBEDDING_MODEL, name="mxbai-embed-large:latest"))
    first = (await api.embed("nomic-embed-text", "same words")).embeddings[0]
    again = (await api.embed("nomic-embed-text:latest", "same words")).embeddings[0]
    other = (await api.embed("mxbai-embed-large", "same words")).embeddings[0]
    assert first == again
    assert abs(cosine(first, other)) < 0.3


async def test_dimensions_keeps_the_first_values_renormalised(api: ollama.AsyncClient) -> None:
    vector = (await api.embed("nomic-embed-text", "short vectors please", dimensions=64)).embeddings[0]
    assert len(vector) == 64
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-5)


async def test_missing_model_and_bad_input_are_the_real_errors(api: ollama.AsyncClient) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        await api.embed("all-minilm", "hi")
    assert missing.value.status_code == 404
    assert missing.value.error == 'model "all-minilm" not found, try pulling it first'
    with pytest.raises(ollama.ResponseError) as too_long:
        await api.embed("nomic-embed-text", "word " * 5000, truncate=False)
    assert too_long.value.status_code == 400
    # By default Ollama cuts the input silently and answers 200.
    cut = await api.embed("nomic-embed-text", "word " * 5000)
    assert len(cut.embeddings) == 1 and cut.prompt_eval_count == 2048


async def test_invalid_input_type_is_a_400(fake: FakeOllama, session: aiohttp.ClientSession) -> None:
    fake.add_model(replace(EMBEDDING_MODEL))
    async with session.post(f"{fake.url}/api/embed", json={"model": "nomic-embed-text", "input": [1, 2]}) as resp:
        assert resp.status == 400
        assert await resp.json() == {"error": "invalid input type"}


async def test_the_bots_client_and_embedder_read_the_fake(fake: FakeOllama, client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound):
        await client.embed("nomic-embed-text", ["x"])
    embedder = Embedder(client, batch_size=2)
    with pytest.raises(EmbeddingModelMissing, match="ollama pull nomic-embed-text"):
        await embedder.embed("nomic-embed-text", ["x"])
    fake.add_model(replace(EMBEDDING_MODEL))
    done: list[int] = []
    matrix = await embedder.embed("nomic-embed-text", ["a b", "b c", "c d", "d e", "e f"], progress=done.append)
    assert matrix.shape == (5, EMBED_DIMENSIONS) and matrix.dtype == np.float32
    assert done == [2, 4, 5]
    assert [len(r.json["input"]) for r in fake.embed_requests] == [1, 1, 2, 2, 1]


async def test_an_unreachable_ollama_is_explained_without_its_address(session: aiohttp.ClientSession) -> None:
    client = OllamaClient(session, "http://127.0.0.1:9", connect_timeout=1.0, inactivity_timeout=2.0)
    with pytest.raises(EmbeddingUnavailable) as caught:
        await Embedder(client).embed("nomic-embed-text", ["x"])
    assert "127.0.0.1" not in str(caught.value) and "can't reach its Ollama server" in str(caught.value)
