"""A faithful fake Ollama server (aiohttp.web on 127.0.0.1, random port) for tests and benchmarks.

Follows the wire format of Ollama 0.32.x as described in /work/shared/notes/ollama-api.md:
lazy headers (nothing is sent before the first chunk), NDJSON framing, Go JSON escaping,
exact error texts, and client-disconnect detection so tests can assert a stream was closed.

Cut-off counts (`error_after`, `eof_after`, `drop_after`, `stall_after`) count streamed delta
lines, i.e. thinking lines plus content lines (the same as content tokens when there is no
thinking).

What Ollama does without saying so is modelled too (sources cited where each is implemented):
the prompt is silently cut to `num_ctx` (200 OK, with a `prompt_eval_count` that shows what was
kept), `num_predict` ends an answer with `done_reason: "length"`, and an older `version` answers
like that release did (no `capabilities` in /api/show before 0.6.4, `projector_info` for
llava-style models, a 2048-token default context before 0.6.7, no `think` before 0.9.0).

Several instances make a pool of hosts, each with its own models, loaded set (`mark_loaded`),
capacity (`parallel`: streams per model at once, the rest queued, like OLLAMA_NUM_PARALLEL) and
faults: scripted 5xx/503/404 and stalls, `kill()` (streams break mid-answer, connections are
refused) and `revive()` (back on the same port, nothing loaded).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aiohttp import web

__all__ = [
    "BUSY_TEXT",
    "DEFAULT_MODELS",
    "EMBEDDING_MODEL",
    "EMBED_DIMENSIONS",
    "LLAVA_MODEL",
    "PULLABLE_EXTRA",
    "RUNNER_STOPPED_TEXT",
    "ChatScript",
    "FakeModel",
    "FakeOllama",
    "PromptFit",
    "RecordedRequest",
    "count_tokens",
    "fit_prompt",
    "go_json",
    "hashed_embedding",
]

_T = TypeVar("_T")

BUSY_TEXT = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_STOPPED_TEXT = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, "
    "check ollama server logs for details"
)
PULL_MISSING_TEXT = "pull model manifest: file does not exist"
THINK_LEVELS = ("high", "medium", "low", "max")
# Go's maximum time.Duration (~292 years): what `keep_alive: -1` shows as expires_at.
_FOREVER_SECONDS = 9_223_372_036.854775807
_DEFAULT_KEEP_ALIVE = 300.0
_JSON_UTF8 = "application/json; charset=utf-8"
_JSON_BARE = "application/json"
_NDJSON = "application/x-ndjson"
_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MODEL_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*){0,2}(?::[A-Za-z0-9_][A-Za-z0-9._-]*)?"
)
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_OPTION_TYPES: dict[str, str] = {
    **dict.fromkeys(
        ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch", "num_gpu", "main_gpu"),
        "integer",
    ),
    "num_thread": "integer",
    **dict.fromkeys(
        ("temperature", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty"),
        "float32",
    ),
    "use_mmap": "boolean",
    "stop": "array",
}


# --------------------------------------------------------------------------- data model


@dataclass
class FakeModel:
    """A locally "installed" model."""

    name: str
    size: int = 2_019_393_189
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    family: str = "llama"
    capabilities: tuple[str, ...] = ("completion",)
    context_length: int = 131_072
    # details.families; None means just [family]. llava-style models list "clip" (ollama/ollama#2338).
    families: tuple[str, ...] | None = None
    # A separate vision projector file (llava, bakllava, minicpm-v, old llama3.2-vision): /api/show
    # then carries `projector_info` (server/routes.go GetModelInfo, v0.6.3).
    projector: bool = False
    # `PARAMETER num_ctx` in the model's Modelfile (shown in /api/show `parameters`).
    num_ctx_parameter: int | None = None

    @property
    def digest(self) -> str:
        """Bare hex digest, stable per name."""
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, Any]:
        """The `details` object shared by tags, show and ps."""
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": list(self.families) if self.families is not None else [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }


DEFAULT_MODELS: tuple[FakeModel, ...] = (
    FakeModel("llama3.2:latest", 2_019_393_189, "3.2B", "Q4_K_M", "llama", ("completion", "tools"), 131_072),
    FakeModel("qwen3:8b", 5_225_388_164, "8.2B", "Q4_K_M", "qwen3", ("completion", "tools", "thinking"), 40_960),
    FakeModel("gemma3:4b", 3_338_801_804, "4.3B", "Q4_K_M", "gemma3", ("completion", "vision"), 131_072),
)
EMBEDDING_MODEL = FakeModel("nomic-embed-text:latest", 274_302_450, "137M", "F16", "nomic-bert", ("embedding",), 2048)
PULLABLE_EXTRA = FakeModel("tinyllama:latest", 637_700_138, "1B", "Q4_0", "llama", ("completion",), 2048)
# llava 1.6 as older servers describe it: a llama language model plus a CLIP projector file.
LLAVA_MODEL = FakeModel(
    "llava:7b",
    4_733_363_377,
    "7B",
    "Q4_0",
    "llama",
    ("completion", "vision"),
    32_768,
    families=("llama", "clip"),
    projector=True,
)


@dataclass
class ChatScript:
    """What the next generation request streams back."""

    tokens: list[str] = field(default_factory=lambda: ["Hello", " world", "!"])
    thinking: list[str] = field(default_factory=list)
    final_content: str = ""
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    status: int | None = None
    error: str | None = None
    error_after: int | None = None
    stream_error: str = "an error was encountered while running the model: unexpected EOF"
    eof_after: int | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    split_writes: bool = False
    done_reason: str = "stop"
    # Extras beyond the minimal contract:
    lines_per_write: int = 1  # >1 packs several NDJSON lines into one write
    raw_error_body: bool = False  # send `error` as a text/plain body (like a proxy), not JSON
    # Hold the answer (after the request was received, before anything is sent) until the test sets it:
    # a model busy for exactly as long as a test needs to look at what the bot shows meanwhile.
    hold: asyncio.Event | None = None


@dataclass(eq=False)
class RecordedRequest:
    """One request as the fake saw it, plus streaming timestamps (time.monotonic) for generations."""

    method: str
    path: str
    json: Any
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    status: int | None = None
    script: ChatScript | None = None
    token_times: list[float] = field(default_factory=list)
    first_chunk_at: float | None = None  # first line of any kind (thinking or content) flushed
    first_token_at: float | None = None  # first content line flushed
    last_token_at: float | None = None
    done_sent: bool = False
    disconnected: bool = False
    fit: PromptFit | None = None  # chat only: what reached the model after Ollama's silent truncation
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def body(self) -> Any:
        """Alias for `json`."""
        return self.json


class _ApiError(Exception):
    def __init__(self, status: int, message: str, content_type: str = _JSON_UTF8, *, raw: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.content_type = content_type
        self.raw = raw

    def response(self) -> web.Response:
        if self.raw:
            return web.Response(status=self.status, body=self.message.encode(), content_type="text/plain")
        return web.Response(
            status=self.status, body=go_json({"error": self.message}), headers={"Content-Type": self.content_type}
        )


# --------------------------------------------------------------------------- encoding helpers


def go_json(obj: Any) -> bytes:
    """Encode like Go's encoding/json: compact, raw UTF-8, `<`, `>`, `&`, U+2028/9 escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: Go would have replaced invalid UTF-8 with U+FFFD.
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text).encode("utf-8")


def _rfc3339(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def _normalize(name: str) -> str:
    name = name.strip().lower()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith("library/"):
        name = name[len("library/") :]
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _with_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _split_point(data: bytes) -> int:
    """Where to split a line in two writes: inside the first multi-byte UTF-8 character if any."""
    for i, byte in enumerate(data):
        if byte >= 0xC0 and i + 1 < len(data):
            return i + 1
    return max(1, len(data) // 2)


def _go_decode_error(text: str, exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(text.rstrip()):
        return "unexpected EOF"
    return f"invalid character '{text[exc.pos]}' looking for beginning of value"


def _parse_keep_alive(value: Any) -> float | None:
    """keep_alive as seconds (negative = forever), mirroring api.Duration.UnmarshalJSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _ApiError(400, f"Unsupported type: '{type(value).__name__}'")
    if isinstance(value, int | float):
        return -1.0 if value < 0 else float(value)
    if isinstance(value, str):
        if value == "0":
            return 0.0
        if _DURATION.fullmatch(value):
            sign = -1.0 if value.startswith("-") else 1.0
            total = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in re.findall(r"([\d.]+)([a-zµμ]+)", value))
            return -1.0 if sign < 0 else total
        quoted = json.dumps(value, ensure_ascii=False)
        if _NUMBER.fullmatch(value):
            raise _ApiError(400, f"time: missing unit in duration {quoted}")
        raise _ApiError(400, f"time: invalid duration {quoted}")
    raise _ApiError(400, f"Unsupported type: '{type(value).__name__}'")


def _check_think(value: Any) -> None:
    if value is None or isinstance(value, bool) or (isinstance(value, str) and value in THINK_LEVELS):
        return
    shown = json.dumps(value, ensure_ascii=False)
    raise _ApiError(400, f'invalid think value: {shown} (must be "high", "medium", "low", "max", true, or false)')


def _check_images(images: Any) -> None:
    if not images:
        return
    for image in images:
        if not isinstance(image, str):
            raise _ApiError(400, "json: cannot unmarshal value into Go struct field of type api.ImageData")
        data = image.encode()
        for pos, byte in enumerate(data):
            if byte not in _B64 and byte != ord("="):
                raise _ApiError(400, f"illegal base64 data at input byte {pos}")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _ApiError(400, f"illegal base64 data at input byte {len(data.rstrip(b'='))}") from None


def _check_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise _ApiError(400, "json: cannot unmarshal value into Go struct field of type map[string]interface {}")
    for key, value in options.items():
        kind = _OPTION_TYPES.get(key)
        ok = (
            kind is None
            or (kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind == "float32" and isinstance(value, int | float) and not isinstance(value, bool))
            or (kind == "boolean" and isinstance(value, bool))
            or (kind == "array" and isinstance(value, list))
        )
        if not ok:
            raise _ApiError(500, f'option "{key}" must be of type {kind}')


def _check_format(fmt: Any) -> None:
    if fmt in (None, "", "json") or isinstance(fmt, dict):
        return
    shown = json.dumps(fmt, ensure_ascii=False)
    raise _ApiError(500, f'invalid format: {shown}; expected "json" or a valid JSON Schema object')


def _parameter_count(size: str) -> int:
    scale = {"B": 1e9, "M": 1e6, "K": 1e3}.get(size[-1:].upper(), 1.0)
    try:
        return int(float(size.rstrip("BMKbmk")) * scale)
    except ValueError:
        return 0


def _rough_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# A deterministic stand-in for a BPE tokenizer, realistic enough for context arithmetic: a common
# English word (with its leading space) is one token, longer words split every 5 letters, numbers
# every 3 digits, a run of whitespace is one token (as in tiktoken-style pre-tokenizers, which Llama 3
# and Qwen use), ASCII punctuation goes in pairs ("):", "']"), and each non-ASCII character (CJK
# included) is a token of its own. English prose comes out near 4.5 characters per token.
_TOKEN = re.compile(r" ?[A-Za-z]{1,5}| ?\d{1,3}| ?[!-/:-@\[-`{-~]{1,2}|[^\x00-\x7f]|\s+(?!\S)|\s+|.", re.DOTALL)
# Per message: the chat template's role header and end-of-turn markers.
MESSAGE_OVERHEAD_TOKENS = 4
# Ollama's truncation heuristic charges each image this many tokens (server/prompt.go, chatPrompt:
# "Clip images are represented as 768 tokens, each an embedding").
IMAGE_TOKENS = 768
# api.DefaultOptions(): NumKeep 4 (tokens kept at the start when the runner cuts an over-long prompt).
DEFAULT_NUM_KEEP = 4


def count_tokens(text: str) -> int:
    """How many tokens the fake's tokenizer makes of `text`."""
    return len(_TOKEN.findall(text))


def _version_tuple(version: str) -> tuple[int, ...]:
    """(0, 6, 3) for "0.6.3"; a dev build ("0.0.0") or anything unparsable counts as the newest."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        return (999,)
    parsed = tuple(int(part) for part in match.groups())
    return (999,) if parsed == (0, 0, 0) else parsed


@dataclass(frozen=True, slots=True)
class PromptFit:
    """What Ollama made of a chat prompt that may not fit `num_ctx` (all silently, with 200 OK)."""

    num_ctx: int
    prompt_tokens: int  # what prompt_eval_count reports: the tokens the model really saw
    kept: list[dict[str, Any]]  # the messages the model saw
    dropped_messages: int  # oldest non-system messages left out by the server (server/prompt.go)
    cut_tokens: int  # tokens the runner cut from an over-long single prompt (llm/llama_server.go)

    @property
    def truncated(self) -> bool:
        """Whether anything the client sent did not reach the model."""
        return bool(self.dropped_messages or self.cut_tokens)


def _message_tokens(message: dict[str, Any], vision: bool) -> int:
    images = message.get("images") or []
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    return MESSAGE_OVERHEAD_TOKENS + count_tokens(text) + (IMAGE_TOKENS * len(images) if vision else 0)


def fit_prompt(messages: list[dict[str, Any]], num_ctx: int, *, vision: bool, num_keep: int) -> PromptFit:
    """Cut a chat prompt to `num_ctx` the way Ollama does, without telling the client.

    server/prompt.go (chatPrompt): "Start with all messages and remove from the front until it fits
    in context", keeping system messages and always the last message; images count 768 tokens each.
    llm/llama_server.go (completionPromptForRequest): a prompt still longer than num_ctx - 1 keeps
    its first num_keep tokens and the end, cut to num_ctx - max((num_ctx - num_keep) / 2, 1).
    """
    costs = [_message_tokens(m, vision) for m in messages]
    start = max(0, len(messages) - 1)
    for index in range(len(messages)):
        systems = sum(c for m, c in zip(messages[:index], costs, strict=False) if m.get("role") == "system")
        if 1 + systems + sum(costs[index:]) <= num_ctx:
            start = index
            break
    kept_systems = [m for m in messages[:start] if m.get("role") == "system"]
    kept = kept_systems + messages[start:]
    tokens = 1 + sum(_message_tokens(m, vision) for m in kept)
    cut = 0
    if tokens > num_ctx - 1 and num_ctx > 1:
        keep = max(0, min(num_keep, num_ctx - 1))
        limit = num_ctx - max((num_ctx - keep) // 2, 1)
        cut = tokens - limit
        tokens = limit
    return PromptFit(
        num_ctx=num_ctx,
        prompt_tokens=tokens,
        kept=kept,
        dropped_messages=start - len(kept_systems),
        cut_tokens=cut,
    )


# --------------------------------------------------------------------------- streaming machinery


class _Stream:
    """Lazily prepared NDJSON response plus the recording of flush times."""

    def __init__(self, request: web.Request, rec: RecordedRequest, script: ChatScript) -> None:
        self.request = request
        self.rec = rec
        self.script = script
        self.resp: web.StreamResponse | None = None
        self._pending: list[tuple[bytes, bool]] = []

    async def _prepare(self) -> web.StreamResponse:
        if self.resp is None:
            # Headers go out only now, with the first chunk, exactly like Ollama.
            self.resp = web.StreamResponse(status=200, headers={"Content-Type": _NDJSON})
            await self.resp.prepare(self.request)
            self.rec.status = 200
        return self.resp

    async def add(self, obj: dict[str, Any], *, content: bool, flush: bool = False) -> None:
        self._pending.append((go_json(obj) + b"\n", content))
        if flush or len(self._pending) >= max(1, self.script.lines_per_write):
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        data = b"".join(line for line, _ in pending)
        resp = await self._prepare()
        if self.script.split_writes:
            cut = _split_point(data)
            await resp.write(data[:cut])
            # A short pause so the halves reach the client as separate reads.
            await asyncio.sleep(0.002)
            await resp.write(data[cut:])
        else:
            await resp.write(data)
        now = time.monotonic()
        rec = self.rec
        if rec.first_chunk_at is None:
            rec.first_chunk_at = now
        for _, is_content in pending:
            if is_content:
                rec.token_times.append(now)
                if rec.first_token_at is None:
                    rec.first_token_at = now
                rec.last_token_at = now

    async def drop_mid_line(self, obj: dict[str, Any]) -> web.StreamResponse:
        await self.flush()
        resp = await self._prepare()
        line = go_json(obj) + b"\n"
        await resp.write(line[: max(1, len(line) // 2)])
        transport = self.request.transport
        if transport is not None:
            transport.close()
        return resp

    async def end(self) -> web.StreamResponse:
        await self.flush()
        resp = await self._prepare()
        await resp.write_eof()
        return resp


# --------------------------------------------------------------------------- the server


class FakeOllama:
    """Fake Ollama HTTP server on 127.0.0.1 with scripted generations and full request recording."""

    def __init__(
        self,
        *,
        models: Sequence[FakeModel] | None = None,
        version: str = "0.32.15",
        parallel: int | None = None,
        max_queue: int | None = None,
        registry: Sequence[FakeModel] | None = None,
        load_delay: float = 0.0,
        default_num_ctx: int | None = None,
    ) -> None:
        # Copies: a test may change a model (e.g. its capabilities) without touching the shared defaults.
        self.models: dict[str, FakeModel] = {
            _normalize(m.name): replace(m) for m in (DEFAULT_MODELS if models is None else models)
        }
        self.parallel = parallel  # per-model concurrent generations; None = unlimited
        self.max_queue = max_queue  # waiting requests per model beyond which 503 is returned; None = unbounded
        self.load_delay = load_delay  # extra delay before the first chunk when the model is not loaded
        self._fixed_num_ctx = default_num_ctx
        self.set_version(version)
        self._loaded_ctx: dict[str, int] = {}
        registry_models = [*self.models.values(), PULLABLE_EXTRA] if registry is None else list(registry)
        self.registry: dict[str, FakeModel] = {_normalize(m.name): m for m in registry_models}
        self.scripts: deque[ChatScript] = deque()
        self.default_script = ChatScript()
        self.script_for: Callable[[dict[str, Any]], ChatScript | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.route_delays: dict[str, float] = {}  # path -> seconds before answering (a slow or busy server)
        self.pull_delay = 0.0  # seconds between streamed pull progress lines (a slow download)
        self.loaded: dict[str, float] = {}  # normalised name -> expires_at (time.time())
        self._keep_alive: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._activity = asyncio.Event()
        self._live: dict[int, RecordedRequest] = {}

    # ---- lifecycle

    async def start(self, port: int = 0) -> FakeOllama:
        """Bind to 127.0.0.1 on a random port (or the one given, to come back where a client expects it)."""
        # Ollama (Gin) sets no request body limit, and a few 10 MB images as base64 are normal; aiohttp's
        # default of 1 MiB would answer 413, which the real server never does.
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app.router.add_get("/", self._root)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_post("/api/pull", self._pull)
        app.router.add_delete("/api/delete", self._delete)
        app.router.add_post("/api/embed", self._embed)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    # ---- faults of a whole host (one FakeOllama per host of a pool)

    async def kill(self) -> None:
        """Die like a crashed or unplugged host: streams break mid-answer, new connections are refused."""
        await self.close()
        self.loaded.clear()  # a restarted server starts with nothing in memory

    async def revive(self) -> None:
        """Come back on the same port after kill(), like a host that was restarted."""
        if self._runner is not None:
            return
        self._closing = False
        await self.start(self.port)

    def mark_loaded(self, name: str, keep_alive: float = _DEFAULT_KEEP_ALIVE) -> None:
        """Have the model in memory already, as /api/ps then shows (a request for it pays no load time)."""
        key = _normalize(name)
        self._keep_alive[key] = keep_alive
        self.loaded[key] = time.time() + self._duration(key)

    async def close(self) -> None:
        """Stop the server, cancelling any handler still running (stalls, long delays)."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOllama:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._port is None:
            raise RuntimeError("FakeOllama not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    # ---- test helpers

    def set_version(self, version: str) -> None:
        """Answer like that release of Ollama (see the module docstring for what changes)."""
        self.version = version
        release = _version_tuple(version)
        # capabilities in /api/show: v0.6.4 (#10066); projector models listed as vision only from v0.6.8
        # (#10509); in /api/tags from v0.30.0; `think` from v0.9.0; /api/ps context_length from v0.10.0.
        self.shows_capabilities = release >= (0, 6, 4)
        self.projector_counts_as_vision = release >= (0, 6, 8)
        self.lists_capabilities = release >= (0, 30, 0)
        self.knows_think = release >= (0, 9, 0)
        self.ps_shows_context = release >= (0, 10, 0)
        # envconfig.ContextLength: 2048 until v0.6.7, then 4096 (the VRAM-tiered default of newer servers on a
        # machine with less than 23 GiB of VRAM). Capped at the model's trained context (llm/server.go).
        self.default_num_ctx = self._fixed_num_ctx or (4096 if release >= (0, 6, 7) else 2048)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded POST /api/chat requests."""
        return [r for r in self.requests if r.path == "/api/chat"]

    def add_model(self, model: FakeModel) -> None:
        """Install a model (visible in tags/show/chat)."""
        self.models[_normalize(model.name)] = model

    async def wait_for_disconnect(
        self, timeout: float = 5.0, *, request: RecordedRequest | None = None
    ) -> RecordedRequest:
        """Wait until a request (any, or the given one) records that its client went away; return it."""
        candidates = [request] if request is not None else self.requests

        def gone() -> RecordedRequest | None:
            return next((r for r in candidates if r.disconnected), None)

        return await self._wait_for(gone, timeout)

    async def wait_for_requests(
        self, count: int, path: str = "/api/chat", timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until at least `count` requests to `path` have arrived."""

        def ready() -> list[RecordedRequest] | None:
            found = [r for r in self.requests if r.path == path]
            return found if len(found) >= count else None

        return await self._wait_for(ready, timeout)

    async def _wait_for(self, probe: Callable[[], _T | None], timeout: float) -> _T:
        async with asyncio.timeout(timeout):
            while True:
                self._activity.clear()
                if (found := probe()) is not None:
                    return found
                await self._activity.wait()

    def _touch(self) -> None:
        self._activity.set()

    def _next_script(self, body: dict[str, Any]) -> ChatScript:
        if self.script_for is not None and (chosen := self.script_for(body)) is not None:
            return chosen
        if self.scripts:
            return self.scripts.popleft()
        return self.default_script

    # ---- middleware: recording, error mapping, disconnect detection

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        raw = await request.read() if request.body_exists else b""
        parsed: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            json=parsed,
            at=time.monotonic(),
            headers=dict(request.headers),
            raw=raw,
        )
        # Keyed by id(): request storage keys need aiohttp 3.14's RequestKey to stay warning-free.
        self._live[id(request)] = rec
        self.requests.append(rec)
        self._touch()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            if delay := self.route_delays.get(request.path):
                await asyncio.sleep(delay)
            resp: web.StreamResponse = await handler(request)
        except _ApiError as exc:
            resp = exc.response()
        except web.HTTPNotFound:
            resp = web.Response(status=404, text="404 page not found", content_type="text/plain")
        except web.HTTPMethodNotAllowed:
            resp = web.Response(status=405, text="405 method not allowed", content_type="text/plain")
        except asyncio.CancelledError:
            if not self._closing and not rec.done_sent:
                rec.disconnected = True
            raise
        finally:
            self._live.pop(id(request), None)
            rec.finished.set()
            self._touch()
            if task is not None:
                self._tasks.discard(task)
        if rec.status is None:
            rec.status = resp.status
        return resp

    def _rec(self, request: web.Request) -> RecordedRequest:
        return self._live[id(request)]

    def _body(self, request: web.Request, type_name: str) -> dict[str, Any]:
        raw = self._rec(request).raw
        if not raw:
            raise _ApiError(400, "missing request body")
        text = raw.decode("utf-8", errors="replace")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _ApiError(400, _go_decode_error(text, exc)) from None
        if not isinstance(value, dict):
            kind = {list: "array", str: "string", bool: "bool"}.get(type(value), "number")
            raise _ApiError(400, f"json: cannot unmarshal {kind} into Go value of type api.{type_name}")
        return value

    def _find(self, name: str) -> FakeModel | None:
        return self.models.get(_normalize(name))

    # ---- keep_alive / loaded-model bookkeeping

    def _expire(self) -> None:
        now = time.time()
        for key, expires in list(self.loaded.items()):
            if expires <= now and not self._in_flight.get(key):
                del self.loaded[key]

    def _begin(self, key: str, keep_alive: float | None) -> bool:
        """Mark a request for model `key` as started; return whether the model was cold."""
        self._expire()
        cold = key not in self.loaded
        if keep_alive is not None:
            self._keep_alive[key] = keep_alive
        elif cold:
            self._keep_alive[key] = _DEFAULT_KEEP_ALIVE
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        self.loaded[key] = time.time() + self._duration(key)
        return cold

    def _end(self, key: str) -> None:
        self._in_flight[key] = max(0, self._in_flight.get(key, 1) - 1)
        if self._in_flight[key]:
            return
        # The countdown starts when the model goes idle.
        if self._keep_alive.get(key) == 0:
            self.loaded.pop(key, None)
        else:
            self.loaded[key] = time.time() + self._duration(key)

    def _duration(self, key: str) -> float:
        seconds = self._keep_alive.get(key, _DEFAULT_KEEP_ALIVE)
        return _FOREVER_SECONDS if seconds < 0 else seconds

    # ---- simple routes

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running", content_type="text/plain")

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=go_json(obj), headers={"Content-Type": _JSON_UTF8})

    async def _version(self, request: web.Request) -> web.Response:
        return self._json({"version": self.version})

    async def _tags(self, request: web.Request) -> web.Response:
        models = []
        for m in self.models.values():
            entry: dict[str, Any] = {
                "name": m.name,
                "model": m.name,
                "modified_at": "2026-05-10T08:06:48.639712648-07:00",
                "size": m.size,
                "digest": m.digest,
                "details": m.details(),
            }
            if m.capabilities and self.lists_capabilities:
                entry["capabilities"] = self._capabilities(m)
            models.append(entry)
        return self._json({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        body = self._body(request, "ShowRequest")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not name:
            raise _ApiError(400, "model is required")
        model = self._find(name)
        if model is None:
            raise _ApiError(404, f"model '{_with_tag(name)}' not found")
        arch = model.family.replace("-", "")
        info: dict[str, Any] = {
            "general.architecture": arch,
            "general.file_type": 15,
            "general.parameter_count": _parameter_count(model.parameter_size),
            "general.quantization_version": 2,
            f"{arch}.context_length": model.context_length,
            f"{arch}.embedding_length": 4096,
        }
        if "vision" in model.capabilities and not model.projector:
            # A vision encoder inside the model file: what v0.6.4's Capabilities() looked for.
            info[f"{arch}.vision.block_count"] = 27
        # Parameters are printed as fmt.Sprintf("%-*s %#v", 30, key, value) (server/routes.go GetModelInfo).
        parameters = [f'{"stop":<30} "<|eot_id|>"']
        if model.num_ctx_parameter is not None:
            parameters.insert(0, f"{'num_ctx':<30} {model.num_ctx_parameter}")
        shown: dict[str, Any] = {
            "license": "LICENSE TEXT",
            "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n'
            'TEMPLATE """{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}"""\n',
            "parameters": "\n".join(parameters),
            "template": "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}",
            "details": model.details(),
            "model_info": info,
        }
        if model.projector:
            # The CLIP projector's own metadata, as v0.3-v0.6 servers showed it for llava.
            shown["projector_info"] = {
                "clip.has_llava_projector": True,
                "clip.has_text_encoder": False,
                "clip.has_vision_encoder": True,
                "clip.projector_type": "mlp",
                "clip.vision.block_count": 23,
                "clip.vision.embedding_length": 1024,
                "clip.vision.image_size": 336,
                "general.architecture": "clip",
                "general.file_type": 1,
            }
        if self.shows_capabilities:
            capabilities = self._capabilities(model)
            if capabilities:
                shown["capabilities"] = capabilities
        shown["modified_at"] = "2026-05-10T08:06:48.639712648-07:00"
        return self._json(shown)

    def _capabilities(self, model: FakeModel) -> list[str]:
        """What this server release lists: projector models lacked "vision" in v0.6.4-v0.6.7 (#10509)."""
        if model.projector and not self.projector_counts_as_vision:
            return [c for c in model.capabilities if c != "vision"]
        return list(model.capabilities)

    async def _ps(self, request: web.Request) -> web.Response:
        self._expire()
        entries = []
        for key, expires in sorted(self.loaded.items(), key=lambda kv: kv[1], reverse=True):
            model = self.models.get(key)
            if model is None:
                continue
            entries.append(
                {
                    "name": model.name,
                    "model": model.name,
                    "size": model.size + 500_000_000,
                    "digest": model.digest,
                    "details": model.details(),
                    "expires_at": _rfc3339(int(expires * 1e9)),
                    "size_vram": model.size + 500_000_000,
                }
            )
            if self.ps_shows_context:
                entries[-1]["context_length"] = self._loaded_ctx.get(key) or self._num_ctx(model, None)
        return self._json({"models": entries})

    async def _delete(self, request: web.Request) -> web.Response:
        body = self._body(request, "DeleteRequest")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise _ApiError(400, f'name "{name}" is invalid')
        key = _normalize(name)
        if key not in self.models:
            raise _ApiError(404, f"model '{name}' not found")
        del self.models[key]
        self.loaded.pop(key, None)
        return web.Response(status=200)

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request, "PullRequest")
        name = body.get("model") or body.get("name") or ""
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise _ApiError(400, "invalid model name")
        model = self.registry.get(_normalize(name))
        if body.get("stream") is False:
            if model is None:
                raise _ApiError(500, PULL_MISSING_TEXT)
            self.add_model(model)
            return self._json({"status": "success"})
        rec = self._rec(request)
        resp = web.StreamResponse(status=200, headers={"Content-Type": _NDJSON})
        await resp.prepare(request)
        rec.status = 200

        async def send(obj: dict[str, Any]) -> None:
            await resp.write(go_json(obj) + b"\n")
            # Let other requests and disconnect notifications run even with no delay.
            await asyncio.sleep(self.pull_delay)

        try:
            await send({"status": "pulling manifest"})
            if model is None:
                await resp.write(go_json({"error": PULL_MISSING_TEXT}) + b"\n")
                rec.done_sent = True
                await resp.write_eof()
                return resp
            layers = [
                ("sha256:" + hashlib.sha256(f"{model.name}/model".encode()).hexdigest(), model.size - 12_000),
                ("sha256:" + hashlib.sha256(f"{model.name}/params".encode()).hexdigest(), 12_000),
            ]
            for digest, total in layers:
                status = f"pulling {digest[7:19]}"
                await send({"status": status, "digest": digest, "total": total})
                for completed in (total // 3, 2 * total // 3, total):
                    await send({"status": status, "digest": digest, "total": total, "completed": completed})
            for status in ("verifying sha256 digest", "writing manifest"):
                await send({"status": status})
            self.add_model(model)
            await resp.write(go_json({"status": "success"}) + b"\n")
            rec.done_sent = True
            await resp.write_eof()
        except ConnectionResetError:
            # The client went away: like Ollama, abandon the download (the model is not installed).
            if not rec.done_sent:
                rec.disconnected = True
        return resp

    # ---- generation routes

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request, "ChatRequest")
        name = body.get("model")
        if name is not None and not isinstance(name, str):
            raise _ApiError(400, "json: cannot unmarshal number into Go struct field ChatRequest.model of type string")
        if not name:
            raise _ApiError(400, "model is required")
        keep_alive = _parse_keep_alive(body.get("keep_alive"))
        # Before v0.9.0 `think` was an unknown field, and unknown fields are ignored.
        think = body.get("think") if self.knows_think else None
        _check_think(think)
        if not _MODEL_NAME.fullmatch(name):
            raise _ApiError(400, "invalid model name")
        model = self._find(name)
        if model is None:
            raise _ApiError(404, f"model '{name}' not found")
        if "completion" not in model.capabilities:
            raise _ApiError(400, f'"{name}" does not support chat')
        if body.get("tools") and "tools" not in model.capabilities:
            raise _ApiError(400, f"registry.ollama.ai/library/{_with_tag(model.name)} does not support tools")
        if think not in (None, False) and "thinking" not in model.capabilities:
            raise _ApiError(400, f'"{name}" does not support thinking')
        top_logprobs = body.get("top_logprobs")
        if isinstance(top_logprobs, int) and not 0 <= top_logprobs <= 20:
            raise _ApiError(400, "top_logprobs must be between 0 and 20")
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            raise _ApiError(400, "json: cannot unmarshal object into Go struct field ChatRequest.messages")
        for message in messages:
            if isinstance(message, dict):
                _check_images(message.get("images"))
        if not messages:
            return await self._load_or_unload(name, keep_alive, kind="chat")
        _check_options(body.get("options"))
        _check_format(body.get("format"))
        options = body.get("options") or {}
        num_keep = options.get("num_keep", DEFAULT_NUM_KEEP)
        fit = fit_prompt(
            [m for m in messages if isinstance(m, dict)],
            self._num_ctx(model, options),
            vision="vision" in model.capabilities,
            num_keep=num_keep if isinstance(num_keep, int) else DEFAULT_NUM_KEEP,
        )
        self._rec(request).fit = fit
        self._loaded_ctx[_normalize(name)] = fit.num_ctx
        return await self._run(request, body, name, keep_alive, fit.prompt_tokens, kind="chat")

    def _num_ctx(self, model: FakeModel, options: dict[str, Any] | None) -> int:
        """The context the runner gets: request option, else Modelfile, else the server default; capped at training."""
        requested = (options or {}).get("num_ctx")
        if isinstance(requested, int | float) and not isinstance(requested, bool) and requested > 0:
            num_ctx = int(requested)
        elif model.num_ctx_parameter is not None:
            num_ctx = model.num_ctx_parameter
        else:
            num_ctx = self.default_num_ctx
        return min(num_ctx, model.context_length)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = self._body(request, "GenerateRequest")
        name = body.get("model") or ""
        if not isinstance(name, str):
            name = ""
        keep_alive = _parse_keep_alive(body.get("keep_alive"))
        think = body.get("think")
        _check_think(think)
        if body.get("raw") and (body.get("template") or body.get("system") or body.get("context")):
            raise _ApiError(400, "raw mode does not support template, system, or context")
        model = self._find(name) if name else None
        if model is None:
            raise _ApiError(404, f"model '{name}' not found")
        if "completion" not in model.capabilities:
            raise _ApiError(400, f'"{name}" does not support generate')
        if think not in (None, False) and "thinking" not in model.capabilities:
            raise _ApiError(400, f'"{name}" does not support thinking')
        _check_images(body.get("images"))
        prompt = body.get("prompt") or ""
        if not prompt and not body.get("images"):
            return await self._load_or_unload(name, keep_alive, kind="generate")
        _check_options(body.get("options"))
        _check_format(body.get("format"))
        return await self._run(request, body, name, keep_alive, _rough_tokens(str(prompt)), kind="generate")

    async def _load_or_unload(
        self, name: str, keep_alive: float | None, *, kind: Literal["chat", "generate"]
    ) -> web.Response:
        key = _normalize(name)
        if keep_alive == 0:
            self._keep_alive[key] = 0
            self.loaded.pop(key, None)
            reason = "unload"
        else:
            cold = self._begin(key, keep_alive)
            try:
                if cold and self.load_delay:
                    await asyncio.sleep(self.load_delay)
            finally:
                self._end(key)
            reason = "load"
        obj: dict[str, Any] = {"model": name, "created_at": _rfc3339()}
        if kind == "chat":
            obj["message"] = {"role": "assistant", "content": ""}
        else:
            obj["response"] = ""
        obj["done"] = True
        obj["done_reason"] = reason
        return self._json(obj)

    async def _run(
        self,
        request: web.Request,
        body: dict[str, Any],
        name: str,
        keep_alive: float | None,
        prompt_tokens: int,
        *,
        kind: Literal["chat", "generate"],
    ) -> web.StreamResponse:
        rec = self._rec(request)
        key = _normalize(name)
        script = self._next_script(body)
        rec.script = script
        t0 = time.perf_counter_ns()  # load_duration includes the queue wait, as in Ollama
        semaphore = self._semaphore(key)
        queue_full = self.max_queue is not None and self._waiting.get(key, 0) >= self.max_queue
        if semaphore is not None and semaphore.locked() and queue_full:
            raise _ApiError(503, BUSY_TEXT)
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            if semaphore is not None:
                await semaphore.acquire()
        finally:
            self._waiting[key] -= 1
        try:
            cold = self._begin(key, keep_alive)
            try:
                if cold and self.load_delay:
                    await asyncio.sleep(self.load_delay)
                t_loaded = time.perf_counter_ns()
                if script.hold is not None:
                    await script.hold.wait()
                if script.first_token_delay:
                    await asyncio.sleep(script.first_token_delay)
                if script.status is not None or script.error is not None:
                    raise self._script_error(script, name)
                script = self._within_num_predict(script, body)
                rec.script = script
                if body.get("stream") is False:
                    return await self._respond_whole(request, rec, script, name, prompt_tokens, kind, t0, t_loaded)
                return await self._respond_stream(request, rec, script, name, prompt_tokens, kind, t0, t_loaded)
            finally:
                self._end(key)
        finally:
            if semaphore is not None:
                semaphore.release()

    def _semaphore(self, key: str) -> asyncio.Semaphore | None:
        if self.parallel is None:
            return None
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(self.parallel)
        return self._semaphores[key]

    @staticmethod
    def _script_error(script: ChatScript, name: str) -> _ApiError:
        status = script.status if script.status is not None else 500
        message = script.error
        if message is None:
            message = {404: f"model '{name}' not found", 503: BUSY_TEXT}.get(status, RUNNER_STOPPED_TEXT)
        # Errors raised on the streaming path before the first byte carry no charset.
        return _ApiError(status, message, _JSON_BARE, raw=script.raw_error_body)

    def _within_num_predict(self, script: ChatScript, body: dict[str, Any]) -> ChatScript:
        """Stop at `num_predict` generated tokens (thinking included) with done_reason "length".

        The runner counts every sampled token against num_predict and reports DoneReasonLength when it
        is reached (llm/server.go DoneReason; ollama-api notes §2.2: "length" = num_predict or context limit).
        """
        options = body.get("options") or {}
        limit = options.get("num_predict") if isinstance(options, dict) else None
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            return script
        if len(script.thinking) + len(script.tokens) + bool(script.final_content) <= limit:
            return script
        thinking = script.thinking[:limit]
        tokens = script.tokens[: max(0, limit - len(thinking))]
        return replace(script, thinking=thinking, tokens=tokens, final_content="", done_reason="length")

    @staticmethod
    def _deltas(script: ChatScript) -> list[tuple[str, str]]:
        """(content, thinking) per streamed line; the last thinking delta rides on the first content line."""
        deltas = [("", t) for t in script.thinking]
        contents = list(script.tokens)
        if deltas and contents:
            deltas[-1] = (contents.pop(0), deltas[-1][1])
        deltas.extend((c, "") for c in contents)
        return deltas

    @staticmethod
    def _metrics(t0: int, t_loaded: int, t_first: int, prompt_tokens: int, eval_count: int) -> dict[str, int]:
        now = time.perf_counter_ns()
        metrics = {
            "total_duration": now - t0,
            "load_duration": max(1, t_loaded - t0),
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": max(1, t_first - t_loaded),
            "eval_count": eval_count,
            "eval_duration": max(1, now - t_first) if eval_count else 0,
        }
        return {k: v for k, v in metrics.items() if v}

    @staticmethod
    def _line(name: str, kind: str, content: str, thinking: str) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": name, "created_at": _rfc3339()}
        if kind == "chat":
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            obj["message"] = message
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        obj["done"] = False
        return obj

    async def _respond_stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        script: ChatScript,
        name: str,
        prompt_tokens: int,
        kind: Literal["chat", "generate"],
        t0: int,
        t_loaded: int,
    ) -> web.StreamResponse:
        stream = _Stream(request, rec, script)
        deltas = self._deltas(script)
        t_first = time.perf_counter_ns()
        sent = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for index in range(len(deltas) + 1):
                if index and script.token_delay:
                    await stream.flush()
                    # Absolute schedule, so a 40 tok/s script really streams at 40 tok/s without drift.
                    await asyncio.sleep(max(0.0, started + index * script.token_delay - loop.time()))
                else:
                    # Let other requests and disconnect notifications run even with zero delays.
                    await asyncio.sleep(0)
                final = index == len(deltas)
                if script.error_after is not None and sent >= script.error_after:
                    await stream.add({"error": script.stream_error}, content=False, flush=True)
                    return await stream.end()
                if script.eof_after is not None and sent >= script.eof_after:
                    return await stream.end()
                if script.drop_after is not None and sent >= script.drop_after:
                    content, thinking = ("", "") if final else deltas[index]
                    return await stream.drop_mid_line(self._line(name, kind, content or "dropped", thinking))
                if script.stall_after is not None and sent >= script.stall_after:
                    await stream.flush()
                    # Hold the connection open, sending nothing, until the client leaves or we close.
                    await asyncio.Event().wait()
                if final:
                    break
                content, thinking = deltas[index]
                await stream.add(self._line(name, kind, content, thinking), content=bool(content))
                sent += 1
            done: dict[str, Any] = self._line(name, kind, script.final_content, "")
            done["done"] = True
            done["done_reason"] = script.done_reason
            if kind == "generate" and not rec.json.get("raw"):
                done["context"] = list(range(1, prompt_tokens + sent + 1))
            done.update(self._metrics(t0, t_loaded, t_first, prompt_tokens, sent))
            await stream.add(done, content=bool(script.final_content), flush=True)
            rec.done_sent = True
            return await stream.end()
        except ConnectionResetError:
            # Writing to a connection the client already closed.
            if not rec.done_sent:
                rec.disconnected = True
            return stream.resp if stream.resp is not None else web.Response()

    async def _respond_whole(
        self,
        request: web.Request,
        rec: RecordedRequest,
        script: ChatScript,
        name: str,
        prompt_tokens: int,
        kind: Literal["chat", "generate"],
        t0: int,
        t_loaded: int,
    ) -> web.StreamResponse:
        deltas = self._deltas(script)
        t_first = time.perf_counter_ns()
        limit = len(deltas)
        for cut in (script.error_after, script.eof_after, script.drop_after, script.stall_after):
            if cut is not None:
                limit = min(limit, cut)
        if script.token_delay:
            await asyncio.sleep(script.token_delay * limit)
        if script.error_after is not None and script.error_after <= len(deltas):
            raise _ApiError(500, script.stream_error)
        if script.drop_after is not None and script.drop_after <= len(deltas):
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if script.stall_after is not None and script.stall_after <= len(deltas):
            await asyncio.Event().wait()
        complete = script.eof_after is None or script.eof_after > len(deltas)
        used = deltas[:limit]
        content = "".join(c for c, _ in used) + (script.final_content if complete else "")
        thinking = "".join(t for _, t in used)
        obj = self._line(name, kind, content, thinking)
        obj["done"] = complete
        if complete:
            obj["done_reason"] = script.done_reason
            obj.update(self._metrics(t0, t_loaded, t_first, prompt_tokens, limit))
        rec.done_sent = True
        return self._json(obj)

    # ---- embeddings (POST /api/embed), for team knowledge

    # Set by a test to hold matching /api/embed requests until `release_embeds()` (deterministic progress).
    hold_embed: Callable[[dict[str, Any]], bool] | None = None
    _embed_gate: asyncio.Event | None = None

    @property
    def embed_requests(self) -> list[RecordedRequest]:
        """Recorded POST /api/embed requests."""
        return [r for r in self.requests if r.path == "/api/embed"]

    def release_embeds(self) -> None:
        """Let held /api/embed requests (see `hold_embed`) go on, and stop holding new ones."""
        self.hold_embed = None
        if self._embed_gate is not None:
            self._embed_gate.set()

    async def _embed(self, request: web.Request) -> web.Response:
        """/api/embed as server/routes.go EmbedHandler answers it (notes: "Embeddings: POST /api/embed").

        `input` is a string or a list of strings (anything else: 400 "invalid input type"); an unknown
        model is 404 `model "x" not found, try pulling it first` (handleScheduleError); no capability is
        checked, so a chat model embeds too. Each input longer than min(num_ctx, the model's context) is
        cut silently, unless `truncate` is false (then the runner's 400). Vectors are L2-normalised, and
        `dimensions` keeps the first N values and normalises again. The vectors themselves are hashed
        bags of words (see `hashed_embedding`), so texts that share words are close.
        """
        body = self._body(request, "EmbedRequest")
        name = body.get("model")
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise _ApiError(404, f"model '{name if isinstance(name, str) else ''}' not found")
        raw = body.get("input")
        if isinstance(raw, str):
            inputs = [raw] if raw else []
        elif isinstance(raw, list):
            if not all(isinstance(item, str) for item in raw):
                raise _ApiError(400, "invalid input type")
            inputs = list(raw)
        elif raw is None:
            inputs = []
        else:
            raise _ApiError(400, "invalid input type")
        keep_alive = _parse_keep_alive(body.get("keep_alive"))
        model = self._find(name)
        if model is None:
            raise _ApiError(404, f'model "{name}" not found, try pulling it first')
        _check_options(body.get("options"))
        if self.hold_embed is not None and self.hold_embed(body):
            if self._embed_gate is None or self._embed_gate.is_set():
                self._embed_gate = asyncio.Event()
            await self._embed_gate.wait()
        key = _normalize(name)
        t0 = time.perf_counter_ns()
        cold = self._begin(key, keep_alive)
        try:
            if cold and self.load_delay:
                await asyncio.sleep(self.load_delay)
        finally:
            self._end(key)
        t_loaded = time.perf_counter_ns()
        if not inputs:
            return self._json({"model": name, "embeddings": []})
        limit = self._num_ctx(model, body.get("options"))
        dimensions = body.get("dimensions")
        vectors, tokens = [], 0
        for text in inputs:
            pieces = _TOKEN.findall(text)
            if len(pieces) > limit:
                if body.get("truncate") is False:
                    raise _ApiError(400, "the input length exceeds the context length")
                pieces = pieces[:limit]
            tokens += len(pieces)
            size = dimensions if isinstance(dimensions, int) and 0 < dimensions < EMBED_DIMENSIONS else EMBED_DIMENSIONS
            vectors.append(hashed_embedding(key, "".join(pieces), size))
        return self._json(
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": time.perf_counter_ns() - t0,
                "load_duration": t_loaded - t0,
                "prompt_eval_count": tokens,
            }
        )


# nomic-embed-text's size; every fake model embeds into this many dimensions.
EMBED_DIMENSIONS = 768
_WORD = re.compile(r"\w+")


def hashed_embedding(model: str, text: str, dimensions: int = EMBED_DIMENSIONS) -> list[float]:
    """A deterministic embedding that makes retrieval meaningful: a hashed bag of words, L2-normalised.

    Each lower-cased word adds +1 or -1 at a position picked by a hash of (model, word), so texts that share
    words have a high cosine similarity, texts that share none are near 0, and two models never agree
    (a document must be embedded again when the model changes). Values are rounded to float32 precision.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(f"{model}\0{word}".encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = sum(v * v for v in vector) ** 0.5
    if not norm:
        return vector
    return [float(f"{v / norm:.7g}") for v in vector]
