"""The model catalog: name matching, suggestions, and never waiting long for a slow Ollama."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.ollama.catalog import ModelCatalog, closest_models, describe_model, find_model
from bot.ollama.client import ModelInfo
from bot.ollama.errors import OllamaUnreachable
from tests.fake_clock import FakeClock


def model(name: str, size: int = 5_225_388_164, params: str = "8.2B") -> ModelInfo:
    return ModelInfo(name, size, params, "Q4_K_M", "x", ("completion",))


INSTALLED = [model("llama3.2:latest"), model("qwen3:8b"), model("qwen3:30b-a3b"), model("gemma3:4b")]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("LLAMA3.2:latest", "llama3.2:latest"),
        ("qwen3:8b", "qwen3:8b"),
        ("qwen3", None),  # means qwen3:latest, which is not installed
        ("mistral", None),
    ],
)
def test_find_model(typed: str, expected: str | None) -> None:
    found = find_model(INSTALLED, typed)
    assert (found.name if found else None) == expected


@pytest.mark.parametrize(
    ("typed", "expected_first"),
    [("qwen3:4b", "qwen3:8b"), ("lama3.2", "llama3.2:latest"), ("gemma3", "gemma3:4b")],
)
def test_closest_models(typed: str, expected_first: str) -> None:
    suggestions = closest_models(INSTALLED, typed)
    assert suggestions[0] == expected_first
    assert len(suggestions) == len(set(suggestions)) <= 3


def test_describe_model() -> None:
    assert describe_model(model("qwen3:8b")) == "qwen3:8b · 5.2 GB · 8.2B"


class SlowLister:
    """Stands in for OllamaClient.list_models with a controllable answer."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delay = 0.0
        self.calls = 0
        self.fail = False
        self.models = INSTALLED

    async def list_models(self) -> list[ModelInfo]:
        self.calls += 1
        await self.clock.sleep(self.delay)
        if self.fail:
            raise OllamaUnreachable("http://127.0.0.1:11434", "connection refused")
        return list(self.models)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    fake = FakeClock()
    yield fake
    fake.stop()


async def test_quick_returns_within_patience_and_serves_stale_lists(clock: FakeClock) -> None:
    clock.start()
    lister = SlowLister(clock)
    catalog = ModelCatalog(lister, clock, ttl=30.0, patience=1.0)  # type: ignore[arg-type]

    assert [m.name for m in await catalog.quick()] == sorted(m.name for m in INSTALLED)
    assert lister.calls == 1
    await catalog.quick()
    assert lister.calls == 1  # cached

    lister.delay = 10.0
    lister.models = INSTALLED[:1]
    await clock.sleep(31.0)  # the cache is now stale
    started = clock.now()
    stale = await catalog.quick()
    assert clock.now() - started == pytest.approx(1.0)
    assert len(stale) == len(INSTALLED)  # a stale list beats a timeout
    await clock.sleep(10.0)  # the background refresh lands
    assert [m.name for m in await catalog.quick()] == ["llama3.2:latest"]


async def test_fresh_raises_when_ollama_is_down_and_quick_keeps_the_old_list(clock: FakeClock) -> None:
    clock.start()
    lister = SlowLister(clock)
    catalog = ModelCatalog(lister, clock, ttl=0.0)  # type: ignore[arg-type]
    await catalog.fresh()
    lister.fail = True
    with pytest.raises(OllamaUnreachable):
        await catalog.fresh()
    assert len(await catalog.quick()) == len(INSTALLED)
    await asyncio.sleep(0)
