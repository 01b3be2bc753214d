"""The metrics registry and its Prometheus text exposition."""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable

import pytest

import bot.ollama.errors as errors_module
from bot.metrics import (
    CONTENT_TYPE,
    ERROR_KINDS,
    REPLY_OUTCOMES,
    Counter,
    Gauge,
    Histogram,
    Metrics,
    error_kind,
)
from bot.ollama.errors import (
    ModelNotFound,
    NoHostAvailable,
    OllamaConnectionLost,
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
from bot.streaming.relay import Outcome


def render(*metrics: Counter | Gauge | Histogram) -> str:
    return "".join(metric.expose() for metric in metrics)


def test_small_registry_golden_text() -> None:
    requests = Counter("demo_requests_total", "Requests handled.", labels=("code", "method"))
    requests.inc(method="GET", code="200")
    requests.inc(2, method="POST", code="200")
    requests.inc(method="GET", code="404")
    inflight = Gauge("demo_inflight", "Requests in flight.")
    inflight.set(3)
    latency = Histogram("demo_latency_seconds", "Request latency.", (0.5, 1, 5))
    for value in (0.2, 0.5, 0.7, 12):
        latency.observe(value)

    assert render(requests, inflight, latency) == (
        "# HELP demo_requests_total Requests handled.\n"
        "# TYPE demo_requests_total counter\n"
        'demo_requests_total{code="200",method="GET"} 1.0\n'
        'demo_requests_total{code="200",method="POST"} 2.0\n'
        'demo_requests_total{code="404",method="GET"} 1.0\n'
        "# HELP demo_inflight Requests in flight.\n"
        "# TYPE demo_inflight gauge\n"
        "demo_inflight 3.0\n"
        "# HELP demo_latency_seconds Request latency.\n"
        "# TYPE demo_latency_seconds histogram\n"
        'demo_latency_seconds_bucket{le="0.5"} 2\n'
        'demo_latency_seconds_bucket{le="1.0"} 3\n'
        'demo_latency_seconds_bucket{le="5.0"} 3\n'
        'demo_latency_seconds_bucket{le="+Inf"} 4\n'
        "demo_latency_seconds_sum 13.4\n"
        "demo_latency_seconds_count 4\n"
    )


def test_unlabelled_metrics_start_at_zero_and_labelled_ones_without_series_show_only_headers() -> None:
    assert render(
        Counter("a_total", "A."),
        Gauge("b", "B."),
        Counter("c_total", "C.", labels=("kind",)),
        Histogram("d", "D.", (1,)),
    ) == (
        "# HELP a_total A.\n# TYPE a_total counter\na_total 0.0\n"
        "# HELP b B.\n# TYPE b gauge\nb 0.0\n"
        "# HELP c_total C.\n# TYPE c_total counter\n"
        '# HELP d D.\n# TYPE d histogram\nd_bucket{le="1.0"} 0\nd_bucket{le="+Inf"} 0\nd_sum 0.0\nd_count 0\n'
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ('say "hi"', 'say \\"hi\\"'),
        ("C:\\path", "C:\\\\path"),
        ("two\nlines", "two\\nlines"),
        ('\\"\n', '\\\\\\"\\n'),
        ("ünïcode ✓", "ünïcode ✓"),
    ],
)
def test_label_values_are_escaped(value: str, escaped: str) -> None:
    counter = Counter("x_total", "X.", labels=("v",))
    counter.inc(v=value)
    assert render(counter).splitlines()[-1] == f'x_total{{v="{escaped}"}} 1.0'


def test_help_text_escapes_backslash_and_newline_but_not_quotes() -> None:
    gauge = Gauge("g", 'A "quoted" back\\slash\nand a second line.')
    assert render(gauge).splitlines()[0] == '# HELP g A "quoted" back\\\\slash\\nand a second line.'


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    hist = Histogram("h_seconds", "H.", (0.1, 1, 10))
    observations = [0.05, 0.1, 0.1000001, 1, 9.99, 10, 10.5, 1e6, -1]
    for value in observations:
        hist.observe(value)
    samples = parse_samples(render(hist))

    buckets = {labels["le"]: value for name, labels, value in samples if name == "h_seconds_bucket"}
    assert buckets == {"0.1": 3, "1.0": 5, "10.0": 7, "+Inf": 9}
    assert list(buckets) == ["0.1", "1.0", "10.0", "+Inf"]
    assert sorted(buckets.values()) == list(buckets.values())
    (count,) = (value for name, _, value in samples if name == "h_seconds_count")
    (total,) = (value for name, _, value in samples if name == "h_seconds_sum")
    assert count == buckets["+Inf"] == len(observations) == hist.count()
    assert total == pytest.approx(sum(observations))


def test_labelled_histogram_puts_le_last_and_keeps_series_apart() -> None:
    hist = Histogram("h", "H.", (1, 2), labels=("model",))
    hist.observe(1.5, model="b")
    hist.observe(0.5, model="a")
    hist.observe(3, model="a")
    lines = render(hist).splitlines()[2:]
    assert lines == [
        'h_bucket{model="a",le="1.0"} 1',
        'h_bucket{model="a",le="2.0"} 1',
        'h_bucket{model="a",le="+Inf"} 2',
        'h_sum{model="a"} 3.5',
        'h_count{model="a"} 2',
        'h_bucket{model="b",le="1.0"} 0',
        'h_bucket{model="b",le="2.0"} 1',
        'h_bucket{model="b",le="+Inf"} 1',
        'h_sum{model="b"} 1.5',
        'h_count{model="b"} 1',
    ]


def test_explicit_inf_bucket_is_not_duplicated() -> None:
    hist = Histogram("h", "H.", (1, math.inf))
    assert hist.buckets == (1.0,)
    assert render(hist).count('le="+Inf"') == 1


def test_callable_backed_gauge_reads_at_every_render() -> None:
    depth = [2]
    gauge = Gauge("queue", "Q.", read=lambda: depth[0])
    assert render(gauge).splitlines()[-1] == "queue 2.0"
    depth[0] = 5
    assert render(gauge).splitlines()[-1] == "queue 5.0"
    assert gauge.value() == 5


def test_set_function_overrides_set_and_none_restores_it() -> None:
    gauge = Gauge("g", "G.")
    gauge.set(1)
    gauge.set_function(lambda: 7.5)
    gauge.set(2)
    assert render(gauge).splitlines()[-1] == "g 7.5"
    gauge.set_function(None)
    assert render(gauge).splitlines()[-1] == "g 2.0"


def test_gauge_inc_and_dec() -> None:
    gauge = Gauge("g", "G.")
    gauge.inc()
    gauge.inc(2)
    gauge.dec()
    assert gauge.value() == 2


def test_broken_gauge_reader_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> float:
        raise RuntimeError("boom")

    metrics = Metrics()
    metrics.queue_depth.set_function(broken)
    with caplog.at_level(logging.WARNING, logger="bot.metrics"):
        text = metrics.render()
    assert "# TYPE ollacord_queue_depth gauge\n# HELP ollacord_active_streams" in text
    assert "ollacord_queue_depth" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Counter("requests", "R."), "must end in _total"),
        (lambda: Counter("bad-name_total", "R."), "invalid metric name"),
        (lambda: Counter("x_total", "X.", labels=("__reserved",)), "invalid label name"),
        (lambda: Counter("x_total", "X.", labels=("a", "a")), "duplicate"),
        (lambda: Counter("x_total", "X.").inc(-1), "finite amount >= 0"),
        (lambda: Counter("x_total", "X.").inc(math.nan), "finite amount >= 0"),
        (lambda: Counter("x_total", "X.", labels=("outcome",)).inc(outcom="done"), "takes labels"),
        (lambda: Counter("x_total", "X.").inc(extra="1"), "takes labels"),
        (lambda: Gauge("g", "G.", labels=("a",), read=lambda: 1.0), "cannot have labels"),
        (lambda: Histogram("h", "H.", ()), "at least one finite bucket"),
        (lambda: Histogram("h", "H.", (1, 1)), "strictly increasing"),
        (lambda: Histogram("h", "H.", (2, 1)), "strictly increasing"),
        (lambda: Histogram("h", "H.", (1,), labels=("le",)), "reserved"),
        (lambda: Histogram("h", "H.", (1,)).observe(math.nan), "NaN"),
    ],
)
def test_misuse_is_rejected(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_metrics_render_is_valid_exposition_text() -> None:
    metrics = Metrics()
    metrics.replies.inc(outcome="done")
    metrics.tokens.inc(120)
    metrics.time_to_first_token.observe(0.8)
    metrics.reply_duration.observe(14)
    metrics.queue_depth.set(2)
    metrics.active_streams.set_function(lambda: 1)
    metrics.discord_rate_limits.inc()
    metrics.ollama_errors.inc(kind=error_kind(OllamaStalled(60)))
    text = metrics.render()

    assert text.endswith("\n") and not text.endswith("\n\n")
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE)
    assert families == [
        ("ollacord_replies_total", "counter"),
        ("ollacord_tokens_total", "counter"),
        ("ollacord_time_to_first_token_seconds", "histogram"),
        ("ollacord_reply_duration_seconds", "histogram"),
        ("ollacord_queue_depth", "gauge"),
        ("ollacord_active_streams", "gauge"),
        ("ollacord_discord_rate_limited_total", "counter"),
        ("ollacord_ollama_errors_total", "counter"),
        ("ollacord_model_tokens_total", "counter"),
        ("ollacord_ollama_host_up", "gauge"),
        ("ollacord_ollama_host_requests_total", "counter"),
        ("ollacord_ollama_host_errors_total", "counter"),
        ("ollacord_ollama_host_active", "gauge"),
        ("ollacord_ollama_host_capacity", "gauge"),
        ("ollacord_ollama_host_queue", "gauge"),
    ]
    helps = re.findall(r"^# HELP (\S+) \S", text, flags=re.MULTILINE)
    assert helps == [name for name, _ in families]
    samples = parse_samples(text)
    for name, _, _ in samples:
        assert any(name == family or name.startswith(f"{family}_") for family, _ in families), name
    values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}
    assert values[("ollacord_replies_total", (("outcome", "done"),))] == 1
    assert values[("ollacord_replies_total", (("outcome", "error"),))] == 0
    assert values[("ollacord_tokens_total", ())] == 120
    assert values[("ollacord_time_to_first_token_seconds_bucket", (("le", "1.0"),))] == 1
    assert values[("ollacord_time_to_first_token_seconds_bucket", (("le", "0.5"),))] == 0
    assert values[("ollacord_reply_duration_seconds_count", ())] == 1
    assert values[("ollacord_queue_depth", ())] == 2
    assert values[("ollacord_active_streams", ())] == 1
    assert values[("ollacord_discord_rate_limited_total", ())] == 1
    assert values[("ollacord_ollama_errors_total", (("kind", "stalled"),))] == 1
    assert {labels["kind"] for name, labels, _ in samples if name == "ollacord_ollama_errors_total"} == set(ERROR_KINDS)
    assert {labels["outcome"] for name, labels, _ in samples if name == "ollacord_replies_total"} == set(REPLY_OUTCOMES)


def test_metrics_buckets_span_the_documented_ranges() -> None:
    metrics = Metrics()
    assert metrics.time_to_first_token.buckets[0] == 0.1
    assert metrics.time_to_first_token.buckets[-1] == 600
    assert metrics.reply_duration.buckets[0] == 0.5
    assert metrics.reply_duration.buckets[-1] == 900


def test_reply_outcomes_match_the_relay() -> None:
    assert set(REPLY_OUTCOMES) == {outcome.value for outcome in Outcome}


def test_content_type_is_text_format_0_0_4() -> None:
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


ERROR_KIND_TABLE: list[tuple[BaseException, str]] = [
    (OllamaUnreachable("http://localhost:11434", "connection refused"), "unreachable"),
    (ModelNotFound("llama3.2"), "model_not_found"),
    (OllamaHTTPError(500, "internal error"), "http"),
    (OllamaServerBusy(503, "server busy"), "busy"),
    (OllamaStreamError("out of memory"), "stream"),
    (OllamaStalled(60), "stalled"),
    (OllamaFirstTokenTimeout(300), "first_token_timeout"),
    (OllamaIncompleteStream(), "incomplete"),
    (OllamaConnectionLost(), "incomplete"),
    (NoHostAvailable("llama3.2", []), "no_host"),
    (OllamaProtocolError("not JSON"), "other"),
    (OllamaTimeout(5, "deadline"), "other"),
    (OllamaError("something"), "other"),
]


@pytest.mark.parametrize(
    ("error", "kind"), ERROR_KIND_TABLE, ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v
)
def test_error_kind(error: BaseException, kind: str) -> None:
    assert error_kind(error) == kind
    assert kind in ERROR_KINDS


def test_error_kind_table_covers_every_error_class() -> None:
    classes = {
        obj
        for obj in vars(errors_module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == errors_module.__name__
    }
    assert {type(error) for error, _ in ERROR_KIND_TABLE} == classes


@pytest.mark.parametrize(
    "error", [RuntimeError("x"), TimeoutError(), ConnectionResetError(), KeyboardInterrupt()], ids=repr
)
def test_foreign_errors_are_other(error: BaseException) -> None:
    assert error_kind(error) == "other"


def test_subclasses_inherit_their_base_kind() -> None:
    class CustomStall(OllamaStalled):
        pass

    assert error_kind(CustomStall(1)) == "stalled"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Parse sample lines strictly enough to catch malformed output; comments are skipped."""
    samples = []
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) \S+ ", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"malformed sample line: {line!r}"
        name, labels, value = match.groups()
        samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples
