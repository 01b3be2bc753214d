"""Async client for Ollama's native API: streamed chat plus the few metadata calls the bot needs."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.ollama.errors import (
    ModelNotFound,
    OllamaConnectionLost,
    OllamaError,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaProtocolError,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)
from bot.ollama.ndjson import NdjsonSplitter, parse_line

__all__ = ["ChatChunk", "LoadedModel", "ModelInfo", "OllamaClient", "PullProgress"]

log = logging.getLogger(__name__)

# Current servers say `model 'x' not found`; older ones `model "x" not found, try pulling it first`.
# A bare `404 page not found` means a wrong URL or path prefix, not a missing model.
_MODEL_NOT_FOUND = re.compile(r"""^model ['"].*['"] not found""")
_MAX_ERROR_TEXT = 1000
# In a batched stream (see chat_stream), once the answer has started, the reader lets lines pile up between
# reads: this long for each batched stream of the client (the busier the bot, the more lines per read), at
# most READ_BATCH_MAX. Well under a reply's edit cadence (about a second), so edits show the latest text.
READ_BATCH_PER_STREAM = 0.01
READ_BATCH_MAX = 0.2


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One parsed line of a streamed /api/chat response."""

    content: str
    thinking: str
    done: bool
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    total_duration_ns: int | None = None
    # How many content deltas (about one token each) the chunk carries: more than one when a batched
    # stream merged the lines of one network read.
    deltas: int = 1


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A locally available model as listed by /api/tags."""

    name: str
    size: int
    parameter_size: str
    quantization_level: str
    family: str
    capabilities: tuple[str, ...]

    def supports(self, capability: str) -> bool:
        """Whether /api/tags listed the capability (e.g. "vision", "thinking", "tools")."""
        return capability in self.capabilities


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One progress line of a streamed /api/pull.

    `status` is Ollama's text: "pulling manifest", "pulling <12 hex>" (one per layer, with `digest`,
    `total` and, once bytes arrived, `completed`), "verifying sha256 digest", "writing manifest",
    "removing unused layers", "success". Ollama omits `total`/`completed` when they are 0.
    """

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model currently in memory, as listed by /api/ps."""

    name: str
    size: int
    size_vram: int  # below `size` means partly offloaded to the CPU (slow)
    expires_at: str | None  # Ollama's RFC 3339 text, kept as is (nanoseconds; ~292 years ahead for keep_alive -1)
    context_length: int | None


class OllamaClient:
    """Talks to one Ollama server over an injected aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        first_token_timeout: float = 600.0,
        inactivity_timeout: float = 120.0,
        connect_timeout: float = 10.0,
    ) -> None:
        for name, value in (
            ("first_token_timeout", first_token_timeout),
            ("inactivity_timeout", inactivity_timeout),
            ("connect_timeout", connect_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._first_token_timeout = first_token_timeout
        self._inactivity_timeout = inactivity_timeout
        self._connect_timeout = connect_timeout
        self._batched_streams = 0  # batched chat streams under way (see READ_BATCH_PER_STREAM)
        # aiohttp's default total=300 s would kill cold loads and long answers; our own deadlines apply instead.
        # sock_connect rather than connect so that waiting for a free pooled connection is not a "connect timeout".
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect_timeout, sock_read=None)

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base_url

    async def chat_stream(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        options: Mapping[str, Any] | None = None,
        think: bool | str | None = None,
        keep_alive: float | str | None = None,
        batch: bool = False,
    ) -> AsyncGenerator[ChatChunk, None]:
        """Stream a chat completion; the last chunk has done=True. aclose() it (or cancel) to stop generation.

        With `batch`, the lines of each network read come as one chunk (their texts joined, `deltas` counting
        them), and once the answer has started the reader stops reading the socket for a moment between reads
        (READ_BATCH_PER_STREAM per batched stream, at most READ_BATCH_MAX), so the lines that arrived meanwhile
        come in one read. Ollama sends one line per token, each in its own TCP segment: many answers at once
        would otherwise wake the event loop, the socket and every layer above for each token, while a reply is
        edited about once a second. The first content comes at once; the end of the stream (done line, error)
        at most one pause late.
        """
        body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], "stream": True}
        if options is not None:
            body["options"] = dict(options)
        if think is not None:
            body["think"] = think
        if keep_alive is not None:
            body["keep_alive"] = _keep_alive_value(keep_alive)

        loop = asyncio.get_running_loop()
        started = loop.time()
        first_deadline = started + self._first_token_timeout
        log.debug("chat start model=%s messages=%d url=%s", model, len(messages), self._base_url)
        resp = await self._open("POST", "/api/chat", body, deadline=first_deadline, on_deadline=self._first_token_error)
        chunks = 0
        outcome = "closed early"
        reader: _LineReader | None = None
        self._batched_streams += batch
        try:
            if resp.status >= 400:
                raise await self._http_error(resp, model)
            reader = _LineReader(resp, first_deadline, self._first_token_timeout, self._inactivity_timeout)
            if batch:
                reader.pile_up = self._batch_pause
            while (lines := await reader.next_lines()) is not None:
                if batch:
                    for chunk in _merged_chunks(lines):
                        chunks += chunk.deltas
                        if chunk.content:
                            reader.batch_after_start = True
                        if chunk.done:
                            outcome = f"done ({chunk.done_reason})"
                            yield chunk
                            return
                        yield chunk
                    continue
                for line in lines:
                    chunk = _chat_chunk(line)
                    chunks += 1
                    if chunk.done:
                        outcome = f"done ({chunk.done_reason})"
                        yield chunk
                        return
                    yield chunk
            raise OllamaIncompleteStream("Ollama ended the stream without a done line")
        except OllamaError as exc:
            outcome = type(exc).__name__
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._batched_streams -= batch
            if reader is not None:
                reader.stop()
            if outcome.startswith("done"):
                resp.release()
            else:
                # Closing (not releasing) the connection is what tells Ollama to stop generating.
                resp.close()
            log.debug(
                "chat end model=%s status=%d chunks=%d outcome=%s elapsed=%.2fs",
                model,
                resp.status,
                chunks,
                outcome,
                loop.time() - started,
            )

    async def load(self, model: str, *, keep_alive: float | str | None = None) -> None:
        """Load a model into memory without generating (an empty chat), e.g. to pre-warm it."""
        async for _ in self.chat_stream(model, [], keep_alive=keep_alive):
            pass

    async def version(self) -> str:
        """GET /api/version; a cheap health check."""
        data = await self._request_json("GET", "/api/version")
        version = data.get("version")
        if not isinstance(version, str):
            raise OllamaProtocolError("/api/version response has no version string")
        return version

    async def list_models(self) -> list[ModelInfo]:
        """GET /api/tags: the models available locally."""
        data = await self._request_json("GET", "/api/tags")
        models = data.get("models") or []
        if not isinstance(models, list):
            raise OllamaProtocolError("/api/tags response has no models list")
        return [_model_info(entry) for entry in models if isinstance(entry, dict)]

    async def show(self, model: str) -> dict[str, Any]:
        """POST /api/show: details, model_info and capabilities of one model."""
        return await self._request_json("POST", "/api/show", {"model": model}, model=model)

    async def pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        """Stream POST /api/pull progress; the last item has status "success". aclose() it (or cancel) to abort.

        An `{"error": ...}` line (e.g. `pull model manifest: file does not exist`) raises OllamaStreamError,
        an HTTP error status OllamaHTTPError, and EOF before "success" OllamaIncompleteStream. The first line
        must arrive within the first-token timeout, each later one within the inactivity timeout.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_deadline = started + self._first_token_timeout
        log.debug("pull start model=%s url=%s", model, self._base_url)
        body = {"model": model, "stream": True}
        resp = await self._open("POST", "/api/pull", body, deadline=first_deadline, on_deadline=self._first_token_error)
        lines = 0
        outcome = "closed early"
        reader: _LineReader | None = None
        try:
            if resp.status >= 400:
                # No ModelNotFound here: for a pull that would read as "not pulled locally", which is the point.
                raise await self._http_error(resp, None)
            reader = _LineReader(resp, first_deadline, self._first_token_timeout, self._inactivity_timeout)
            while (batch := await reader.next_lines()) is not None:
                for line in batch:
                    progress = _pull_progress(line)
                    lines += 1
                    if progress.status == "success":
                        outcome = "success"
                        yield progress
                        return
                    yield progress
            raise OllamaIncompleteStream("Ollama ended the pull stream without a success line")
        except OllamaError as exc:
            outcome = type(exc).__name__
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if reader is not None:
                reader.stop()
            if outcome == "success":
                resp.release()
            else:
                # Closing the connection is what makes Ollama abandon the download.
                resp.close()
            log.debug(
                "pull end model=%s status=%d lines=%d outcome=%s elapsed=%.2fs",
                model,
                resp.status,
                lines,
                outcome,
                loop.time() - started,
            )

    async def delete(self, model: str) -> None:
        """DELETE /api/delete: remove a local model; ModelNotFound if it is not there."""
        await self._request("DELETE", "/api/delete", {"model": model}, model=model)

    async def ps(self) -> list[LoadedModel]:
        """GET /api/ps: the models currently loaded, longest remaining keep-alive first."""
        data = await self._request_json("GET", "/api/ps")
        models = data.get("models") or []
        if not isinstance(models, list):
            raise OllamaProtocolError("/api/ps response has no models list")
        return [_loaded_model(entry) for entry in models if isinstance(entry, dict)]

    async def embed(
        self,
        model: str,
        inputs: Sequence[str],
        *,
        keep_alive: float | str | None = None,
        truncate: bool | None = None,
    ) -> list[list[float]]:
        """POST /api/embed: one embedding per input, in order; ModelNotFound if the model is not pulled.

        Ollama returns L2-normalised vectors. Unless `truncate` is False it silently cuts an input longer
        than the model's context, so callers keep their inputs short enough.
        """
        body: dict[str, Any] = {"model": model, "input": list(inputs)}
        if keep_alive is not None:
            body["keep_alive"] = _keep_alive_value(keep_alive)
        if truncate is not None:
            body["truncate"] = truncate
        data = await self._request_json("POST", "/api/embed", body, model=model)
        embeddings = data.get("embeddings")
        if not isinstance(embeddings, list) or len(embeddings) != len(inputs):
            raise OllamaProtocolError(f"/api/embed returned {_count(embeddings)} embeddings for {len(inputs)} inputs")
        for vector in embeddings:
            # type() rather than isinstance: a bool is an int, and this runs for every number of every vector.
            if not isinstance(vector, list) or not all(type(v) is float or type(v) is int for v in vector):
                raise OllamaProtocolError("/api/embed returned an embedding that is not a list of numbers")
        return embeddings

    def _batch_pause(self) -> float:
        """How long a batched stream lets lines pile up between reads, given how many stream now."""
        return min(READ_BATCH_MAX, READ_BATCH_PER_STREAM * self._batched_streams)

    def _first_token_error(self) -> OllamaError:
        return OllamaFirstTokenTimeout(self._first_token_timeout)

    def _stalled_error(self) -> OllamaError:
        return OllamaStalled(self._inactivity_timeout)

    async def _open(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        *,
        deadline: float,
        on_deadline: Callable[[], OllamaError],
    ) -> aiohttp.ClientResponse:
        """Send a request and wait for the response headers, mapping transport failures to OllamaError."""
        url = self._base_url + path
        data = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        deadline_cm = asyncio.timeout_at(deadline)
        try:
            async with deadline_cm:
                return await self._session.request(method, url, data=data, headers=headers, timeout=self._timeout)
        except TimeoutError as exc:
            if deadline_cm.expired():
                raise on_deadline() from None
            # Otherwise aiohttp's own sock_connect timeout fired.
            detail = f"connect timed out after {self._connect_timeout:g} s"
            raise OllamaUnreachable(self._base_url, detail) from exc
        except aiohttp.ClientConnectionError as exc:
            raise OllamaUnreachable(self._base_url, _describe(exc)) from exc
        except aiohttp.InvalidURL as exc:
            raise OllamaUnreachable(self._base_url, f"invalid URL {url!r}") from exc
        except aiohttp.ClientError as exc:
            raise OllamaProtocolError(f"bad HTTP response from Ollama: {exc}") from exc

    async def _request_json(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, model: str | None = None
    ) -> dict[str, Any]:
        """A plain (non-streamed) JSON call bounded by the inactivity timeout."""
        raw = await self._request(method, path, body, model=model)
        try:
            value = json.loads(raw.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            raise OllamaProtocolError(f"{path} returned invalid JSON") from None
        if not isinstance(value, dict):
            raise OllamaProtocolError(f"{path} returned {type(value).__name__}, expected an object")
        return value

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, model: str | None = None
    ) -> bytes:
        """A plain (non-streamed) call bounded by the inactivity timeout; returns the raw body of a success."""
        deadline = asyncio.get_running_loop().time() + self._inactivity_timeout
        resp = await self._open(method, path, body, deadline=deadline, on_deadline=self._stalled_error)
        try:
            log.debug("%s %s -> %d", method, path, resp.status)
            if resp.status >= 400:
                raise await self._http_error(resp, model)
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await resp.read()
            except TimeoutError:
                raise self._stalled_error() from None
            except aiohttp.ClientError as exc:
                raise OllamaIncompleteStream(f"connection lost while reading {path}: {_describe(exc)}") from exc
        finally:
            resp.release()
        return raw

    async def _http_error(self, resp: aiohttp.ClientResponse, model: str | None) -> OllamaError:
        """Read an error body once and map it to a typed error."""
        try:
            async with asyncio.timeout(self._inactivity_timeout):
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError):
            raw = b""
        message = _error_text(raw) or resp.reason or "no error text"
        log.debug("%s %s -> HTTP %d", resp.method, resp.url.path, resp.status)
        if resp.status == 404 and model is not None and _MODEL_NOT_FOUND.match(message):
            return ModelNotFound(model, message)
        if resp.status == 503:
            return OllamaServerBusy(resp.status, message)
        return OllamaHTTPError(resp.status, message)


class _LineReader:
    """Reads complete NDJSON lines under the first-chunk and inactivity deadlines.

    The deadlines are kept by one timer that is moved on only when it fires, rather than a timeout around
    every read: a stream sends a line per token, and a timer set and cancelled for each would cost more than
    the line itself. When the timer finds a deadline passed, it closes the response, which ends the read.
    """

    __slots__ = (
        "_expired",
        "_first_deadline",
        "_first_timeout",
        "_inactivity",
        "_last_data",
        "_loop",
        "_piling",
        "_resp",
        "_seen_line",
        "_splitter",
        "_timer",
        "batch_after_start",
        "pile_up",
    )

    def __init__(
        self, resp: aiohttp.ClientResponse, first_deadline: float, first_timeout: float, inactivity: float
    ) -> None:
        self._resp = resp
        self._first_deadline = first_deadline
        self._first_timeout = first_timeout
        self._inactivity = inactivity
        self._splitter = NdjsonSplitter()
        self._seen_line = False
        self._loop = asyncio.get_running_loop()
        self._last_data = self._loop.time()
        self._expired: OllamaError | None = None
        self._timer = self._loop.call_at(first_deadline, self._check_deadline)
        # Set by the stream once the answer has started: from then on, let lines pile up between reads.
        self.batch_after_start = False
        # How long to leave the socket unread between reads once batching (None: never).
        self.pile_up: Callable[[], float] | None = None
        self._piling: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """The stream is over: drop the deadline timer."""
        self._timer.cancel()

    def _deadline(self) -> float:
        return self._last_data + self._inactivity if self._seen_line else self._first_deadline

    def _check_deadline(self) -> None:
        deadline = self._deadline()
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
            return
        if self._seen_line:
            self._expired = OllamaStalled(self._inactivity)
        else:
            self._expired = OllamaFirstTokenTimeout(self._first_timeout)
        self._resp.close()  # ends the read under way with an error

    async def next_lines(self) -> list[dict[str, Any]] | None:
        """Return the next non-empty batch of parsed lines, or None at a clean EOF."""
        content = self._resp.content
        if self.batch_after_start and self.pile_up is not None:
            await self._let_lines_pile_up(self.pile_up())
        while True:
            try:
                data = await content.readany()
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                if self._expired is not None:
                    raise self._expired from None
                raise OllamaConnectionLost(f"connection to Ollama lost mid-stream: {_describe(exc)}") from exc
            if self._expired is not None:
                raise self._expired
            if not data:
                return self._tail()
            self._last_data = self._loop.time()
            lines = self._splitter.feed(data)
            if lines:
                if not self._seen_line:
                    # From now on the (usually much shorter) inactivity deadline applies: move the timer to it.
                    # After this a deadline only ever moves later, which the timer notices when it fires.
                    self._seen_line = True
                    self._timer.cancel()
                    self._timer = self._loop.call_at(self._deadline(), self._check_deadline)
                return [parse_line(line) for line in lines]

    async def _let_lines_pile_up(self, seconds: float) -> None:
        """Leave the socket unread for `seconds`: the lines that arrive meanwhile wait in the kernel for one read.

        A future and a timer rather than a sleep in a timeout: this runs several times a second per stream.
        """
        connection = self._resp.connection
        transport = connection.transport if connection is not None else None
        if seconds <= 0 or transport is None or not transport.is_reading():
            return
        transport.pause_reading()
        piling = self._loop.create_future()
        self._piling = piling
        timer = self._loop.call_later(seconds, self._stop_piling)
        try:
            await piling
        finally:
            timer.cancel()
            self._piling = None
            if not transport.is_closing():
                transport.resume_reading()

    def _stop_piling(self) -> None:
        piling = self._piling
        if piling is not None and not piling.done():
            piling.set_result(None)

    def _tail(self) -> list[dict[str, Any]] | None:
        # Non-streamed bodies (e.g. the load object for an empty chat) carry no trailing newline.
        tail = self._splitter.finish()
        if tail is None:
            return None
        try:
            return [parse_line(tail)]
        except OllamaProtocolError:
            if not self._seen_line:
                raise  # e.g. an HTML page from a proxy: not Ollama at all
            raise OllamaIncompleteStream("Ollama ended the stream in the middle of a line") from None


def _merged_chunks(lines: list[dict[str, Any]]) -> Iterator[ChatChunk]:
    """The lines of one read as few chunks: the texts joined, the done line kept apart.

    An error line (or one that is not Ollama's) raises, after the text that came before it has been handed on.
    """
    contents: list[str] = []
    thinking: list[str] = []
    deltas = 0
    for line in lines:
        message = line.get("message")
        if line.get("error") or line.get("done") is True or not (message is None or isinstance(message, dict)):
            if contents:
                yield ChatChunk("".join(contents), "".join(thinking), False, deltas=deltas)
                contents, thinking, deltas = [], [], 0
            yield _chat_chunk(line)
            continue
        content = _text_field(message, "content") if message else ""
        contents.append(content)
        thinking.append(_text_field(message, "thinking") if message else "")
        deltas += bool(content)
    if contents:
        yield ChatChunk("".join(contents), "".join(thinking), False, deltas=deltas)


def _chat_chunk(obj: dict[str, Any]) -> ChatChunk:
    error = obj.get("error")
    if error:
        raise OllamaStreamError(error if isinstance(error, str) else json.dumps(error))
    message = obj.get("message")
    if message is None:
        message = {}
    elif not isinstance(message, dict):
        raise OllamaProtocolError("chat line has a non-object message")
    if obj.get("done") is not True:
        # The common case, once per token: only the texts matter (metrics come on the done line).
        return ChatChunk(_text_field(message, "content"), _text_field(message, "thinking"), False)
    done_reason = obj.get("done_reason")
    return ChatChunk(
        content=_text_field(message, "content"),
        thinking=_text_field(message, "thinking"),
        done=obj.get("done") is True,
        done_reason=done_reason if isinstance(done_reason, str) and done_reason else None,
        prompt_eval_count=_int_field(obj, "prompt_eval_count"),
        eval_count=_int_field(obj, "eval_count"),
        total_duration_ns=_int_field(obj, "total_duration"),
    )


def _pull_progress(obj: dict[str, Any]) -> PullProgress:
    error = obj.get("error")
    if error:
        raise OllamaStreamError(error if isinstance(error, str) else json.dumps(error))
    status = obj.get("status")
    digest = obj.get("digest")
    return PullProgress(
        status=status if isinstance(status, str) else "",
        digest=digest if isinstance(digest, str) and digest else None,
        total=_int_field(obj, "total"),
        completed=_int_field(obj, "completed"),
    )


def _text_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OllamaProtocolError(f"chat line has a non-string {key}")
    return value


def _int_field(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _model_info(entry: Mapping[str, Any]) -> ModelInfo:
    details = entry.get("details")
    if not isinstance(details, dict):
        details = {}
    caps = entry.get("capabilities")
    size = entry.get("size")
    name = entry.get("name") or entry.get("model") or ""
    return ModelInfo(
        name=str(name),
        size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        parameter_size=str(details.get("parameter_size") or ""),
        quantization_level=str(details.get("quantization_level") or ""),
        family=str(details.get("family") or ""),
        capabilities=tuple(c for c in caps if isinstance(c, str)) if isinstance(caps, list) else (),
    )


def _loaded_model(entry: Mapping[str, Any]) -> LoadedModel:
    name = entry.get("name") or entry.get("model") or ""
    expires_at = entry.get("expires_at")
    return LoadedModel(
        name=str(name),
        size=_int_field(entry, "size") or 0,
        size_vram=_int_field(entry, "size_vram") or 0,
        expires_at=expires_at if isinstance(expires_at, str) and expires_at else None,
        context_length=_int_field(entry, "context_length"),
    )


def _count(value: object) -> str:
    return str(len(value)) if isinstance(value, list) else "no"


def _keep_alive_value(value: float | str) -> float | int | str:
    """Send numeric keep_alive values as JSON numbers: Ollama rejects unit-less strings such as "-1"."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            return text
    if not math.isfinite(value):
        raise ValueError(f"keep_alive must be finite, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _error_text(raw: bytes) -> str:
    """The `error` field of a JSON error body, else the raw body text (content types vary)."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and "error" in value:
        error = value["error"]
        text = error if isinstance(error, str) else json.dumps(error)
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "…"
    return text


def _describe(exc: BaseException) -> str:
    """A short human description of a transport failure."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host!r}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return str(exc.os_error) or str(exc)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    return str(exc) or type(exc).__name__
