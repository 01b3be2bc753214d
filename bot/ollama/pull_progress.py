"""Turn Ollama's pull progress lines into a short status text for a chat message.

Pure: no I/O, no sleeps; the caller passes the current time (any monotonic scale, in seconds).
Odd input (missing fields, totals that shrink, `completed` above `total`, time running backwards)
is tolerated, never raised on.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

from bot.ollama.client import PullProgress

__all__ = ["BAR_CELLS", "SPEED_WINDOW", "PullTracker", "human_bytes", "human_speed"]

BAR_CELLS = 20
SPEED_WINDOW = 5.0  # seconds of updates the download speed is averaged over
_FULL, _EMPTY = "▓", "░"
_MAX_NAME = 100
_MAX_STATUS = 80
_MAX_ERROR = 1500
_MAX_COUNT = 10**18  # keeps arithmetic and formatting sane whatever the server sends
_LAYER_STATUS = re.compile(r"pulling ([0-9a-f]{12})")
_PHASES = {
    "pulling manifest": "Fetching manifest…",
    "verifying sha256 digest": "Verifying…",
    "writing manifest": "Writing manifest…",
    "removing unused layers": "Removing unused layers…",
    "removing any unused layers": "Removing unused layers…",
    "success": "Done.",
}
_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))


@dataclass(slots=True)
class _Layer:
    total: int | None
    completed: int


class PullTracker:
    """Turns a stream of PullProgress into a short, readable status for a Discord message."""

    def __init__(self, model: str) -> None:
        self._name = _display_name(model)
        self._layers: dict[str, _Layer] = {}  # insertion order = order first seen
        self._current: str | None = None  # the layer updated last
        self._phase: str | None = None  # status of the last non-layer update; None while downloading
        self._downloaded = 0  # bytes that arrived while we watched; never decreases
        self._samples: deque[tuple[float, int]] = deque()  # (time, _downloaded)
        self._first_at: float | None = None
        self._last_at: float | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """Whether a "success" status was seen."""
        return self._done

    @property
    def percent(self) -> int | None:
        """Overall percentage (rounded down) over the layers with a known size, or None before any."""
        fraction = self._fraction()
        return None if fraction is None else fraction[0] * 100 // fraction[1]

    def update(self, progress: PullProgress, now: float) -> None:
        """Record one progress line received at time `now`."""
        status = getattr(progress, "status", "")
        status = status.strip() if isinstance(status, str) else ""
        t = _time(now)
        if t is not None:
            if self._first_at is None:
                self._first_at = t
            self._last_at = t if self._last_at is None else max(self._last_at, t)
        key = _layer_key(status, getattr(progress, "digest", None))
        if key is None:
            self._phase = status
            if status == "success":
                self._done = True
        else:
            self._phase = None
            self._current = key
            self._update_layer(key, getattr(progress, "total", None), getattr(progress, "completed", None))
        if t is not None:
            self._sample(t)

    def render(self, now: float) -> str:
        """The status text, e.g. "⬇️ Pulling `m`\\n`▓▓▓░…` 31% · 612 MB / 1.9 GB · 48.2 MB/s · layer 1/3"."""
        if self._done:
            return self.finished(None, now=now)
        lines = [f"⬇️ Pulling `{self._name}`"]
        downloading = self._phase is None
        if self._layers:
            lines.append(self._progress_line(now, downloading=downloading))
        if not downloading:
            lines.append(_phase_text(self._phase or ""))
        elif not self._layers:
            lines.append("Starting…")
        return "\n".join(lines)

    def finished(self, error: str | None, *, now: float | None = None) -> str:
        """The final text: success with size and duration, or the failure with the error text as given.

        The duration runs from the first update to `now`, or to the last update when `now` is not given.
        """
        if error is not None:
            text = error if isinstance(error, str) else str(error)
            if not text.strip():
                text = "unknown error"
            elif len(text) > _MAX_ERROR:
                text = text[:_MAX_ERROR] + "…"
            return f"❌ Pull of `{self._name}` failed: {text}"
        total = sum(layer.total for layer in self._layers.values() if layer.total)
        end = _time(now) if now is not None else self._last_at
        elapsed = None
        if end is not None and self._first_at is not None and end >= self._first_at:
            elapsed = end - self._first_at
        details = [human_bytes(total)] if total else []
        if elapsed is not None:
            details.append(f"in {_human_duration(elapsed)}")
        suffix = f" ({' '.join(details)})" if details else ""
        return f"✅ Pulled `{self._name}`{suffix}"

    # ---- internals

    def _update_layer(self, key: str, total_value: object, completed_value: object) -> None:
        total = _count(total_value)
        completed = _count(completed_value) or 0  # Ollama omits `completed` while it is 0
        layer = self._layers.get(key)
        if layer is None:
            # Bytes a layer already has when first seen (present locally, or a resumed download) did not
            # arrive while we watched: they count toward the percentage but not the speed.
            self._layers[key] = _Layer(total or None, completed)
            return
        if total is not None:
            layer.total = total or None
        if completed > layer.completed:
            self._downloaded += completed - layer.completed
        layer.completed = completed

    def _sample(self, t: float) -> None:
        samples = self._samples
        if samples and t < samples[-1][0]:
            samples.clear()  # the clock went backwards: start the window afresh
        samples.append((t, self._downloaded))
        # Keep one sample at or before the window start as the baseline.
        while len(samples) >= 2 and samples[1][0] <= t - SPEED_WINDOW:
            samples.popleft()

    def _speed(self, now: float) -> float | None:
        """Bytes per second over the last SPEED_WINDOW seconds of updates; None if unknown or zero."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        current = _time(now)
        if current is not None and current - t1 > SPEED_WINDOW:
            return None  # nothing for a whole window: the old rate would be a lie
        if t1 <= t0 or b1 <= b0:
            return None
        return (b1 - b0) / (t1 - t0)

    def _fraction(self) -> tuple[int, int] | None:
        """(bytes done, bytes in total) over the layers with a known size; integers, so 100 % means all."""
        sized = [layer for layer in self._layers.values() if layer.total]
        if not sized:
            return None
        total = sum(layer.total or 0 for layer in sized)
        done = sum(min(layer.completed, layer.total or 0) for layer in sized)
        return done, total

    def _progress_line(self, now: float, *, downloading: bool) -> str:
        parts: list[str] = []
        fraction = self._fraction()
        if fraction is not None:
            done, total = fraction
            cells = done * BAR_CELLS // total
            parts.append(f"`{_FULL * cells}{_EMPTY * (BAR_CELLS - cells)}` {done * 100 // total}%")
            parts.append(f"{human_bytes(done)} / {human_bytes(total)}")
        elif received := sum(layer.completed for layer in self._layers.values()):
            parts.append(human_bytes(received))
        elif downloading:
            parts.append("Downloading…")
        if downloading:
            if (speed := self._speed(now)) is not None:
                parts.append(human_speed(speed))
            if self._current is not None:
                index = list(self._layers).index(self._current) + 1
                parts.append(f"layer {index}/{len(self._layers)}")
        return " · ".join(parts)


def human_bytes(count: float) -> str:
    """Decimal units as Ollama prints them: "612 MB", "1.9 GB", "2 GB", "512 B"."""
    count = _amount(count)
    for unit, scale in _UNITS:
        if count >= scale:
            value = count / scale
            if value >= 10 or value == math.trunc(value):
                return f"{math.trunc(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{math.trunc(count)} B"


def human_speed(per_second: float) -> str:
    """A transfer rate with one decimal below 100 units: "48.2 MB/s", "512 B/s", "120 MB/s"."""
    rate = _amount(per_second)
    for unit, scale in _UNITS:
        if rate >= scale:
            value = rate / scale
            return f"{value:.0f} {unit}/s" if value >= 99.95 else f"{value:.1f} {unit}/s"
    return f"{math.trunc(rate)} B/s"


def _amount(value: float) -> float:
    """Clamp to [0, _MAX_COUNT]; NaN counts as 0."""
    try:
        result = float(value)
    except OverflowError:
        result = math.inf if value > 0 else 0.0
    if math.isnan(result):
        return 0.0
    return max(0.0, min(result, float(_MAX_COUNT)))


def _human_duration(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _phase_text(status: str) -> str:
    if status in _PHASES:
        return _PHASES[status]
    if not status:
        return "Working…"
    text = status[:1].upper() + status[1:]
    if len(text) > _MAX_STATUS:
        text = text[:_MAX_STATUS]
    return text.rstrip(".…") + "…"


def _layer_key(status: str, digest: object) -> str | None:
    """Which layer a line is about: its digest, or the 12 hex characters of a `pulling <hex>` status."""
    if status == "pulling manifest":
        return None
    if isinstance(digest, str) and status.startswith("pulling "):
        # "sha256:<hex>": the status shows hex characters 7-19 of it, so both spellings agree.
        short = digest.rpartition(":")[2][:12].lower()
        if short:
            return short
    match = _LAYER_STATUS.fullmatch(status)
    return match.group(1) if match else None


def _count(value: object) -> int | None:
    """A byte count: non-negative int (clamped), or None when missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return max(0, min(int(value), _MAX_COUNT))


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def _display_name(model: object) -> str:
    name = str(model).strip().replace("`", "'") or "?"
    return name if len(name) <= _MAX_NAME else name[:_MAX_NAME] + "…"
