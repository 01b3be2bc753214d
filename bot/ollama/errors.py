"""Typed errors raised by the Ollama client, each carrying what a user-facing message needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HostAttempt",
    "ModelNotFound",
    "NoHostAvailable",
    "OllamaConnectionLost",
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
]


class OllamaError(Exception):
    """Base class for every error raised by bot.ollama."""


class OllamaUnreachable(OllamaError):
    """The server could not be reached (refused, DNS failure, connect timeout, closed before replying)."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"cannot reach Ollama at {url}: {detail}")
        self.url = url
        self.detail = detail


class ModelNotFound(OllamaError):
    """The requested model is not pulled on the server (HTTP 404 `model 'X' not found`)."""

    def __init__(self, model: str, message: str | None = None) -> None:
        self.model = model
        self.message = message or f"model '{model}' not found"
        super().__init__(self.message)


class OllamaHTTPError(OllamaError):
    """Any other HTTP error status, with the server's `error` text (or the raw body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Ollama returned HTTP {status}: {message}")
        self.status = status
        self.message = message


class OllamaServerBusy(OllamaHTTPError):
    """HTTP 503: the scheduler queue is full; retrying later may succeed."""


class OllamaStreamError(OllamaError):
    """The server sent an `{"error": ...}` line after the stream had started."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OllamaIncompleteStream(OllamaError):
    """The stream ended (EOF or dropped connection) without a `done: true` line."""

    def __init__(self, detail: str = "stream ended without a done line") -> None:
        super().__init__(detail)
        self.detail = detail


class OllamaConnectionLost(OllamaIncompleteStream):
    """The connection broke mid-stream (the host went away), rather than Ollama ending the stream itself."""


class OllamaTimeout(OllamaError):
    """Base class for the client's own deadlines."""

    def __init__(self, seconds: float, message: str) -> None:
        super().__init__(message)
        self.seconds = seconds


class OllamaStalled(OllamaTimeout):
    """No bytes arrived for the inactivity timeout after the stream had started."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds, f"Ollama sent nothing for {seconds:g} s")


class OllamaFirstTokenTimeout(OllamaTimeout):
    """No first chunk within the first-token timeout (model load plus prompt evaluation)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds, f"no response from Ollama within {seconds:g} s (model load or prompt evaluation)")


class OllamaProtocolError(OllamaError):
    """The server sent something that is not valid Ollama API data."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class HostAttempt:
    """One host a request was tried on, and why it did not answer."""

    url: str
    error: OllamaError


class NoHostAvailable(OllamaError):
    """No host of the pool could serve the request: every one that might was tried and failed before answering."""

    def __init__(self, model: str, attempts: Sequence[HostAttempt]) -> None:
        tried = "; ".join(f"{a.url}: {a.error}" for a in attempts) or "no host"
        super().__init__(f"no Ollama host could answer with {model}: {tried}")
        self.model = model
        self.attempts = tuple(attempts)

    @property
    def model_missing_everywhere(self) -> bool:
        """Every host tried said the model is not installed there."""
        return bool(self.attempts) and all(isinstance(a.error, ModelNotFound) for a in self.attempts)
