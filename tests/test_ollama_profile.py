"""What a model can do, read from /api/show answers of old and new Ollama releases; think only where it works."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest

from bot.ollama.catalog import DEFAULT_NUM_CTX, OLD_DEFAULT_NUM_CTX, default_num_ctx, profile_from_show
from bot.ollama.client import ChatChunk
from bot.ollama.errors import OllamaHTTPError, OllamaServerBusy
from bot.ollama.think_gate import rejects_think, stream_without_rejected_think, think_for_model

# Shapes as Ollama sends them (trimmed): current servers list capabilities; v0.5.x llava had none but
# showed families ["llama", "clip"] and the CLIP projector's metadata in projector_info.
CURRENT_QWEN3: dict[str, Any] = {
    "parameters": 'num_ctx                        8192\nstop                           "<|im_end|>"',
    "details": {"family": "qwen3", "families": ["qwen3"]},
    "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
    "capabilities": ["completion", "tools", "thinking"],
}
OLD_LLAVA: dict[str, Any] = {
    "parameters": 'stop                           "[INST]"',
    "details": {"family": "llama", "families": ["llama", "clip"]},
    "model_info": {"general.architecture": "llama", "llama.context_length": 32768},
    "projector_info": {"clip.has_vision_encoder": True, "general.architecture": "clip"},
}
OLD_GEMMA3: dict[str, Any] = {
    "details": {"family": "gemma3", "families": ["gemma3"]},
    "model_info": {"general.architecture": "gemma3", "gemma3.context_length": 131072, "gemma3.vision.block_count": 27},
}
OLD_MLLAMA: dict[str, Any] = {
    "details": {"family": "mllama", "families": ["mllama"]},
    "model_info": {"general.architecture": "mllama", "mllama.context_length": 131072},
}
OLD_EMBEDDING: dict[str, Any] = {
    "details": {"family": "nomic-bert", "families": ["nomic-bert"]},
    "model_info": {"general.architecture": "nomic-bert", "nomic-bert.pooling_type": 1},
}
# v0.6.4-v0.6.7 listed capabilities but left "vision" out for projector models (ollama/ollama#10509).
LISTED_WITHOUT_VISION_LLAVA: dict[str, Any] = {**OLD_LLAVA, "capabilities": ["completion"]}
# A current server that withholds vision on purpose (a runner that cannot serve it) is believed.
CURRENT_WITHHELD_VISION: dict[str, Any] = {**OLD_GEMMA3, "capabilities": ["completion"]}


@pytest.mark.parametrize(
    ("shown", "capabilities", "listed"),
    [
        (CURRENT_QWEN3, ("completion", "tools", "thinking"), True),
        (OLD_LLAVA, ("completion", "vision"), False),
        (OLD_GEMMA3, ("completion", "vision"), False),
        (OLD_MLLAMA, ("completion", "vision"), False),
        (OLD_EMBEDDING, ("embedding",), False),
        (LISTED_WITHOUT_VISION_LLAVA, ("completion", "vision"), True),
        (CURRENT_WITHHELD_VISION, ("completion",), True),
        ({"model_info": {}}, ("completion",), False),
    ],
)
def test_capabilities_from_old_and_new_servers(
    shown: dict[str, Any], capabilities: tuple[str, ...], listed: bool
) -> None:
    profile = profile_from_show(shown)
    assert profile.capabilities == capabilities
    assert profile.listed is listed


def test_context_facts() -> None:
    qwen = profile_from_show(CURRENT_QWEN3)
    assert (qwen.trained_context, qwen.modelfile_num_ctx) == (40960, 8192)
    llava = profile_from_show(OLD_LLAVA)
    assert (llava.trained_context, llava.modelfile_num_ctx) == (32768, None)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.5.7", OLD_DEFAULT_NUM_CTX),
        ("0.6.6", OLD_DEFAULT_NUM_CTX),
        ("0.6.7", DEFAULT_NUM_CTX),
        ("0.32.15", DEFAULT_NUM_CTX),
        ("0.0.0", DEFAULT_NUM_CTX),
        ("0.12.0-rc1", DEFAULT_NUM_CTX),
        ("weird", DEFAULT_NUM_CTX),
    ],
)
def test_default_num_ctx_by_version(version: str, expected: int) -> None:
    assert default_num_ctx(version) == expected


@pytest.mark.parametrize(
    ("think", "capabilities", "sent"),
    [
        (True, ("completion", "thinking"), True),
        ("high", ("completion", "thinking"), "high"),
        (True, ("completion",), None),
        ("low", ("completion", "vision"), None),
        (False, ("completion",), False),  # think:false is accepted by every model
        (None, ("completion", "thinking"), None),
        (True, None, True),  # capabilities unknown: send it; a refusal is retried without it
    ],
)
def test_think_goes_only_to_models_that_can_think(
    think: bool | str | None, capabilities: tuple[str, ...] | None, sent: bool | str | None
) -> None:
    assert think_for_model(think, capabilities) == sent


def test_rejects_think() -> None:
    assert rejects_think(OllamaHTTPError(400, '"llama3.2" does not support thinking'))
    assert not rejects_think(OllamaHTTPError(400, '"llama3.2" does not support tools'))
    assert not rejects_think(OllamaHTTPError(500, "does not support thinking"))


async def test_a_refused_think_is_retried_once_without_it() -> None:
    calls: list[bool | str | None] = []
    forgotten: list[bool] = []

    async def open_stream(think: bool | str | None) -> AsyncGenerator[ChatChunk, None]:
        calls.append(think)
        if think:
            raise OllamaHTTPError(400, '"m" does not support thinking')
        yield ChatChunk(content="hi", thinking="", done=True, done_reason="stop")

    chunks = [
        c async for c in stream_without_rejected_think(open_stream, True, on_rejected=lambda: forgotten.append(True))
    ]
    assert [c.content for c in chunks] == ["hi"]
    assert calls == [True, None]
    assert forgotten == [True]


async def test_other_errors_are_not_retried() -> None:
    calls: list[bool | str | None] = []

    async def open_stream(think: bool | str | None) -> AsyncGenerator[ChatChunk, None]:
        calls.append(think)
        raise OllamaServerBusy(503, "busy")
        yield ChatChunk(content="", thinking="", done=True)  # pragma: no cover

    with pytest.raises(OllamaServerBusy):
        _ = [c async for c in stream_without_rejected_think(open_stream, True)]
    assert calls == [True]
