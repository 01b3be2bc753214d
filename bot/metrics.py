"""A tiny metrics registry rendered in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence

from bot.ollama.errors import (
    ModelNotFound,
    NoHostAvailable,
    OllamaFirstTokenTimeout,
    OllamaHTTPError,
    OllamaIncompleteStream,
    OllamaServerBusy,
    OllamaStalled,
    OllamaStreamError,
    OllamaUnreachable,
)
from bot.ollama.pool_host import HostSnapshot

__all__ = [
    "CONTENT_TYPE",
    "ERROR_KINDS",
    "REPLY_DURATION_BUCKETS",
    "REPLY_OUTCOMES",
    "TIME_TO_FIRST_TOKEN_BUCKETS",
    "Collected",
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "error_kind",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Content-Type of `Metrics.render()` output."""

# Mirrors bot.streaming.relay.Outcome (a test keeps them equal); not imported so the relay may import this module.
REPLY_OUTCOMES = ("done", "incomplete", "error", "deleted", "cancelled")
"""Every value of the `outcome` label of ollacord_replies_total."""

ERROR_KINDS = (
    "unreachable",
    "model_not_found",
    "http",
    "stream",
    "stalled",
    "first_token_timeout",
    "incomplete",
    "busy",
    "no_host",
    "other",
)
"""Every value of the `kind` label of ollacord_ollama_errors_total."""

# Model loads from disk can take minutes, so the tail reaches far beyond typical web latencies.
TIME_TO_FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (seconds) of ollacord_time_to_first_token_seconds."""

REPLY_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0)
"""Upper bounds (seconds) of ollacord_reply_duration_seconds."""

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

_Key = tuple[str, ...]


class _Metric:
    """Name, help text, label names and the exposition shared by every metric type."""

    type_name = ""

    def __init__(self, name: str, help: str, labels: Sequence[str]) -> None:
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            # Names starting with "__" are reserved for Prometheus itself.
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate label names for {name}: {labels}")
        self.name = name
        self.help = help
        self.label_names = tuple(labels)

    def _key(self, labels: dict[str, str]) -> _Key:
        # An exact label set catches typos (`outcom=`) that would otherwise create a stray series.
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {sorted(self.label_names)}, got {sorted(labels)}")
        return tuple(labels[name] for name in self.label_names)

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.type_name}"]

    def expose(self) -> str:
        """This metric's exposition text: HELP, TYPE and one line per sample, each ending in a newline."""
        return "".join(f"{line}\n" for line in [*self._header(), *self._samples()])

    def _samples(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing total; its name must end in `_total`."""

    type_name = "counter"

    def __init__(self, name: str, help: str, *, labels: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter name {name!r} must end in _total")
        super().__init__(name, help, labels)
        self._values: dict[_Key, float] = {}
        if not self.label_names:
            self._values[()] = 0.0

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` (zero or more) to the series named by `labels`; inc(0, ...) makes a series appear at 0."""
        if not (amount >= 0 and math.isfinite(amount)):
            raise ValueError(f"{self.name} can only increase by a finite amount >= 0, not {amount}")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current total of one series (0 if never incremented)."""
        return self._values.get(self._key(labels), 0.0)

    def _samples(self) -> Iterable[str]:
        for key in sorted(self._values):
            yield _sample(self.name, self.label_names, key, _format_float(self._values[key]))


class Gauge(_Metric):
    """A value that goes up and down: set directly, or read from a callable at render time."""

    type_name = "gauge"

    def __init__(
        self, name: str, help: str, *, labels: Sequence[str] = (), read: Callable[[], float] | None = None
    ) -> None:
        super().__init__(name, help, labels)
        if read is not None and self.label_names:
            raise ValueError(f"{name}: a callable-backed gauge cannot have labels")
        self._read = read
        self._values: dict[_Key, float] = {}
        if not self.label_names:
            self._values[()] = 0.0

    def set_function(self, read: Callable[[], float] | None) -> None:
        """Read the (unlabelled) value from `read` at every render from now on; None goes back to set()."""
        if read is not None and self.label_names:
            raise ValueError(f"{self.name}: a callable-backed gauge cannot have labels")
        self._read = read

    def set(self, value: float, **labels: str) -> None:
        """Set the series named by `labels` to `value` (ignored at render while a read function is installed)."""
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` to the series named by `labels`."""
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        """Subtract `amount` from the series named by `labels`."""
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        """The current value of one series: the read function's answer if there is one."""
        if self._read is not None:
            return float(self._read())
        return self._values.get(self._key(labels), 0.0)

    def _samples(self) -> Iterable[str]:
        if self._read is not None:
            try:
                value = float(self._read())
            except Exception:
                # A broken reader must not take the whole scrape (and the other metrics) down with it.
                logger.warning("reading gauge %s failed; leaving it out of this scrape", self.name, exc_info=True)
                return
            yield _sample(self.name, (), (), _format_float(value))
            return
        for key in sorted(self._values):
            yield _sample(self.name, self.label_names, key, _format_float(self._values[key]))


class Collected(_Metric):
    """Labelled values read from a callable at every render (what another component already keeps count of)."""

    def __init__(self, name: str, help: str, *, type_name: str, labels: Sequence[str]) -> None:
        if type_name == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter name {name!r} must end in _total")
        super().__init__(name, help, labels)
        self.type_name = type_name
        self._read: Callable[[], dict[_Key, float]] | None = None

    def set_function(self, read: Callable[[], dict[_Key, float]] | None) -> None:
        """Read the series (label values in label order -> value) from `read` at every render."""
        self._read = read

    def values(self) -> dict[_Key, float]:
        """Every series now."""
        return self._read() if self._read is not None else {}

    def _samples(self) -> Iterable[str]:
        try:
            values = self.values()
        except Exception:
            logger.warning("reading %s failed; leaving it out of this scrape", self.name, exc_info=True)
            return
        for key in sorted(values):
            yield _sample(self.name, self.label_names, key, _format_float(values[key]))


class _HistogramSeries:
    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        # Per-bucket (not cumulative) counts; the last slot is the +Inf overflow.
        self.counts = [0] * (buckets + 1)
        self.sum = 0.0


class Histogram(_Metric):
    """Observations counted into fixed buckets, exposed as cumulative `_bucket{le=...}`, `_sum` and `_count`."""

    type_name = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], *, labels: Sequence[str] = ()) -> None:
        if "le" in labels:
            raise ValueError(f"{name}: 'le' is reserved for histogram buckets")
        super().__init__(name, help, labels)
        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds:
            raise ValueError(f"{name}: a histogram needs at least one finite bucket")
        if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"{name}: buckets must be finite and strictly increasing, got {list(buckets)}")
        self.buckets = tuple(bounds)
        self._series: dict[_Key, _HistogramSeries] = {}
        if not self.label_names:
            self._series[()] = _HistogramSeries(len(self.buckets))

    def observe(self, value: float, **labels: str) -> None:
        """Record one observation in the series named by `labels`."""
        if math.isnan(value):
            raise ValueError(f"{self.name} cannot observe NaN")
        key = self._key(labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _HistogramSeries(len(self.buckets))
        # Buckets are upper bounds inclusive (le = "less than or equal").
        index = next((i for i, bound in enumerate(self.buckets) if value <= bound), len(self.buckets))
        series.counts[index] += 1
        series.sum += value

    def count(self, **labels: str) -> int:
        """How many observations one series has."""
        series = self._series.get(self._key(labels))
        return sum(series.counts) if series else 0

    def _samples(self) -> Iterable[str]:
        names = (*self.label_names, "le")
        bounds = [*(_format_float(b) for b in self.buckets), "+Inf"]
        for key in sorted(self._series):
            series = self._series[key]
            cumulative = 0
            for bound, count in zip(bounds, series.counts, strict=True):
                cumulative += count
                yield _sample(f"{self.name}_bucket", names, (*key, bound), str(cumulative))
            yield _sample(f"{self.name}_sum", self.label_names, key, _format_float(series.sum))
            # _count is by definition the +Inf bucket.
            yield _sample(f"{self.name}_count", self.label_names, key, str(cumulative))


class Metrics:
    """All of ollacord's metrics in one object (created by the composition root, passed to whoever records)."""

    def __init__(self) -> None:
        self.replies = Counter("ollacord_replies_total", "Replies finished, by how they ended.", labels=("outcome",))
        self.tokens = Counter("ollacord_tokens_total", "Tokens generated by Ollama for replies.")
        self.time_to_first_token = Histogram(
            "ollacord_time_to_first_token_seconds",
            "Seconds from sending a request to Ollama until its first token.",
            TIME_TO_FIRST_TOKEN_BUCKETS,
        )
        self.reply_duration = Histogram(
            "ollacord_reply_duration_seconds",
            "Seconds from starting a reply until its final edit.",
            REPLY_DURATION_BUCKETS,
        )
        self.queue_depth = Gauge("ollacord_queue_depth", "Requests waiting for a free Ollama slot.")
        self.active_streams = Gauge("ollacord_active_streams", "Replies currently streaming from Ollama.")
        self.discord_rate_limits = Counter(
            "ollacord_discord_rate_limited_total", "HTTP 429 responses received from Discord."
        )
        self.ollama_errors = Counter(
            "ollacord_ollama_errors_total", "Errors talking to Ollama, by kind.", labels=("kind",)
        )
        self.model_tokens = Counter(
            "ollacord_model_tokens_total",
            "Tokens per model: prompt (sent to the model, every request of an answer) and answer (generated).",
            labels=("model", "kind"),
        )
        # Per Ollama host of the pool (the host label is its base URL).
        self.host_up = Collected(
            "ollacord_ollama_host_up",
            "1 if the Ollama host is in the pool, 0 while it is out.",
            type_name="gauge",
            labels=("host",),
        )
        self.host_requests = Collected(
            "ollacord_ollama_host_requests_total",
            "Chat requests sent to each Ollama host.",
            type_name="counter",
            labels=("host",),
        )
        self.host_errors = Collected(
            "ollacord_ollama_host_errors_total",
            "Failed chat requests per Ollama host, by kind.",
            type_name="counter",
            labels=("host", "kind"),
        )
        self.host_active = Collected(
            "ollacord_ollama_host_active",
            "Requests each Ollama host serves right now.",
            type_name="gauge",
            labels=("host",),
        )
        self.host_capacity = Collected(
            "ollacord_ollama_host_capacity",
            "Requests each Ollama host serves at once.",
            type_name="gauge",
            labels=("host",),
        )
        self.host_queue = Collected(
            "ollacord_ollama_host_queue",
            "Waiting requests each Ollama host could serve.",
            type_name="gauge",
            labels=("host",),
        )
        # Known label values start at 0 so rate() and absent-series alerts work before the first event.
        for outcome in REPLY_OUTCOMES:
            self.replies.inc(0, outcome=outcome)
        for kind in ERROR_KINDS:
            self.ollama_errors.inc(0, kind=kind)

    def all(self) -> tuple[Counter | Gauge | Histogram | Collected, ...]:
        """Every metric, in exposition order."""
        return (
            self.replies,
            self.tokens,
            self.time_to_first_token,
            self.reply_duration,
            self.queue_depth,
            self.active_streams,
            self.discord_rate_limits,
            self.ollama_errors,
            self.model_tokens,
            self.host_up,
            self.host_requests,
            self.host_errors,
            self.host_active,
            self.host_capacity,
            self.host_queue,
        )

    def watch_hosts(self, snapshots: Callable[[], Sequence[HostSnapshot]]) -> None:
        """Read the per-host metrics from the Ollama pool's snapshots at every render."""

        def per_host(value: Callable[[HostSnapshot], float]) -> Callable[[], dict[_Key, float]]:
            return lambda: {(h.url,): value(h) for h in snapshots()}

        def errors() -> dict[_Key, float]:
            found: dict[_Key, float] = {}
            for host in snapshots():
                for kind in ERROR_KINDS:
                    found[(host.url, kind)] = 0.0
                for error_type, count in host.errors:
                    key = (host.url, error_kind_of(error_type))
                    found[key] += count
            return found

        self.host_up.set_function(per_host(lambda h: 0.0 if h.up is False else 1.0))
        self.host_requests.set_function(per_host(lambda h: float(h.requests)))
        self.host_errors.set_function(errors)
        self.host_active.set_function(per_host(lambda h: float(h.active)))
        self.host_capacity.set_function(per_host(lambda h: float(h.capacity)))
        self.host_queue.set_function(per_host(lambda h: float(h.waiting)))

    def render(self) -> str:
        """The full exposition text (Prometheus text format 0.0.4), ending in a newline."""
        return "".join(metric.expose() for metric in self.all())


# Looked up along the exception's MRO, so OllamaServerBusy counts as busy rather than as its base class's http.
_ERROR_KINDS: dict[type[BaseException], str] = {
    OllamaUnreachable: "unreachable",
    ModelNotFound: "model_not_found",
    OllamaServerBusy: "busy",
    OllamaHTTPError: "http",
    OllamaStreamError: "stream",
    OllamaStalled: "stalled",
    OllamaFirstTokenTimeout: "first_token_timeout",
    OllamaIncompleteStream: "incomplete",
    NoHostAvailable: "no_host",
}


def error_kind(error: BaseException) -> str:
    """The `kind` label for `error` (one of ERROR_KINDS); anything unrecognised is "other"."""
    return error_kind_of(type(error))


def error_kind_of(error_type: type[BaseException]) -> str:
    """The `kind` label for errors of this type."""
    for cls in error_type.__mro__:
        kind = _ERROR_KINDS.get(cls)
        if kind is not None:
            return kind
    return "other"


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, label_names: Sequence[str], label_values: Sequence[str], value: str) -> str:
    if not label_names:
        return f"{name} {value}"
    pairs = ",".join(
        f'{label}="{_escape_label_value(val)}"' for label, val in zip(label_names, label_values, strict=True)
    )
    return f"{name}{{{pairs}}} {value}"
