"""Ollama client core: pure asyncio/aiohttp, no Discord, no environment access."""

from bot.ollama.client import ChatChunk, LoadedModel, ModelInfo, OllamaClient, PullProgress
from bot.ollama.errors import (
    ModelNotFound,
    OllamaError,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaProtocolError,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaTimeout,
    OllamaUnreachable,
)
from bot.ollama.host import DEFAULT_OLLAMA_URL, normalize_ollama_host
from bot.ollama.ndjson import NdjsonSplitter, parse_line
from bot.ollama.pull_progress import PullTracker

__all__ = [
    "DEFAULT_OLLAMA_URL",
    "ChatChunk",
    "LoadedModel",
    "ModelInfo",
    "ModelNotFound",
    "NdjsonSplitter",
    "OllamaClient",
    "OllamaError",
    "OllamaFirstTokenTimeout",
    "OllamaHTTPError",
    "OllamaIncompleteStream",
    "OllamaProtocolError",
    "OllamaServerBusy",
    "OllamaStalled",
    "OllamaStreamError",
    "OllamaTimeout",
    "OllamaUnreachable",
    "PullProgress",
    "PullTracker",
    "normalize_ollama_host",
    "parse_line",
]
