"""Streaming benchmark: the real bot (in a child process) relaying fake Ollama answers into fake Discord.

    python3 dev.py bench [--runs N] [--quick] [--verbose] [--keep-logs]

Both fakes run in this process on 127.0.0.1, so their time.monotonic() stamps share one clock:
the fake Ollama records when each token line was flushed, the fake Discord when each REST call
arrived. The bot runs in ``bench/_bot_process.py`` (a fresh process per run) so its CPU time and
peak RSS are its own. Scenarios: 1 conversation, and 20 conversations started at once, one per
channel (500..519); each answer is ~300 tokens at 40 tokens/s (conversation 0 exactly 300, the
others 280..320, so replies end at different points of the channel write budget), the even-numbered
ones with a code block long enough to be split over two messages.

Per reply:
- first-visible overhead: arrival of the first write showing model text - first token flushed;
- final-edit lag: arrival of the reply's last write - last token flushed (this includes the fake's
  one token_delay before it sends the done line; "after done" is measured from the end of the stream);
- update intervals: gaps between visible updates (successful POST/PATCH of any part of the reply;
  writes less than 250 ms apart, e.g. finishing one part and posting the next, count as one update);
- exact text: the final parts joined with ``join_split_answer`` equal the scripted text, and no
  part still shows the streaming marker.
Headline figures are medians across runs of the per-run figures. Timings are never asserted on:
the exit code is 1 only if the bot crashed or a reply's text was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import os
import platform
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import discord  # noqa: E402

from bot.conversation import join_split_answer  # noqa: E402
from bot.streaming.relay import STREAMING_MARKER  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord, RestCall  # noqa: E402
from tests.fakes.fake_ollama import ChatScript, FakeOllama, RecordedRequest  # noqa: E402

BOT_SCRIPT = Path(__file__).resolve().parent / "_bot_process.py"
TOKEN = "bench-token"
FIRST_CHANNEL = 500
MAX_CONVERSATIONS = 20
TOKEN_DELAY = 0.025  # 40 tokens/s
COALESCE = 0.25  # writes closer than this are one visible update
PROMPT_RE = re.compile(r"conversation (\d+)\b")

# Targets (reported, never asserted).
FIRST_VISIBLE_TARGET_MS = 50.0
# Issue 9: with many answers streaming, the reader lets lines pile up between reads (up to 0.2 s, see
# bot/ollama/client.py READ_BATCH_*) to save CPU, so the final edit comes within 0.3 s of the last token.
FINAL_LAG_TARGET_MS = 300.0
UPDATE_INTERVAL_TARGET_S = 1.5

# Short words for the scripted answers (a tuple literal: ruff prefers it to "...".split()).
WORDS = (
    *("the", "a", "an", "of", "to", "in", "on", "for", "with", "by", "from", "as", "at", "is", "are", "was"),
    *("be", "it", "this", "that", "these", "those", "we", "you", "they", "list", "value", "number", "string"),
    *("file", "line", "loop", "call", "return", "result", "error", "type", "class", "method", "module", "data"),
    *("fast", "slow", "small", "large", "first", "last", "next", "each", "every", "other", "simple", "clear"),
    *("short", "long", "quick", "easy", "python", "rust", "code", "test", "build", "run", "read", "write"),
    *("open", "close", "send", "keep", "make", "take", "give", "use", "try", "because", "so", "then", "when"),
    *("while", "if", "else", "also", "only", "just", "still", "often", "maybe", "rather", "quite", "very"),
)
# discord.py's start-up notes about optional voice libraries say nothing about the bot.
BENIGN_LOG = re.compile(r"voice will NOT be supported")

_live_children: set[int] = set()


def _kill_leftovers() -> None:
    """Last resort at interpreter exit: SIGKILL any bot child this process started and did not reap."""
    for pid in list(_live_children):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


atexit.register(_kill_leftovers)


# --------------------------------------------------------------------------- scripted answers


@dataclass
class Conversation:
    """One prompt/answer pair: its channel, its scripted tokens, and what the fakes saw."""

    index: int
    channel_id: int
    tokens: list[str]
    prompt_id: int = 0
    request: RecordedRequest | None = None
    stream_end_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def prompt(self) -> str:
        return f"conversation {self.index}: please explain something in about {len(self.tokens)} tokens"


def make_tokens(index: int, count: int) -> list[str]:
    """About `count` word-like tokens, distinct per conversation; even conversations include a code block."""
    rng = random.Random(1000 + index)
    tokens = [f"Answer #{index}:"]
    with_code = index % 2 == 0
    code_at = count // 3 if with_code else -1
    code_len = count // 2 if with_code else 0
    while len(tokens) < count:
        if len(tokens) == code_at:
            tokens.append("\n\n```python\n")
            for line in range(code_len // 3):
                name = f"{rng.choice(WORDS)}_{index}_{line}"
                tokens += [f"    {name}", f" = compute({rng.randint(1, 999)},", f" {rng.choice(WORDS)!r})\n"]
            tokens.append("```\n\n")
            tokens.append(rng.choice(WORDS).capitalize())
            continue
        word = rng.choice(WORDS)
        roll = rng.random()
        if roll < 0.03:
            tokens.append(".\n\n" + word.capitalize())
        elif roll < 0.10:
            tokens.append(", " + word)
        else:
            tokens.append(" " + word)
    tokens.append(".")
    return tokens


def length_offset(index: int) -> int:
    """-20..+20 tokens in steps of 5 (0 for conversation 0), so replies end at different points of the budget."""
    return ((index * 4 + 4) % 9 - 4) * 5


def make_conversations(count: int, tokens: int) -> list[Conversation]:
    return [Conversation(i, FIRST_CHANNEL + i, make_tokens(i, tokens + length_offset(i))) for i in range(count)]


def script_chooser(conversations: Sequence[Conversation]) -> Callable[[dict[str, Any]], ChatScript | None]:
    """FakeOllama.script_for: find "conversation N" in the last user message."""

    def choose(body: dict[str, Any]) -> ChatScript | None:
        messages = body.get("messages") or []
        last = messages[-1].get("content", "") if messages else ""
        match = PROMPT_RE.search(str(last))
        if match is None or int(match.group(1)) >= len(conversations):
            return None
        return ChatScript(tokens=list(conversations[int(match.group(1))].tokens), token_delay=TOKEN_DELAY)

    return choose


# --------------------------------------------------------------------------- the bot process


class BotProcess:
    """`_bot_process.py` as a child: start, wait for READY, measure, stop (always)."""

    def __init__(self, fake: FakeDiscord, ollama: FakeOllama, workdir: Path, log_name: str, edit_interval: str) -> None:
        self.fake = fake
        self.ollama = ollama
        self.workdir = workdir
        self.log_path = workdir / log_name
        self.edit_interval = edit_interval
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.returncode: int | None = None
        self._log_file: IO[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        args = [
            sys.executable,
            str(BOT_SCRIPT),
            f"--api-base={self.fake.base_url}",
            f"--gateway={self.fake.gateway_url}",
            f"--ollama={self.ollama.url}",
            f"--token={TOKEN}",
            f"--data-dir={self.workdir / 'data'}",
        ]
        if self.edit_interval:
            args.append(f"--edit-interval={self.edit_interval}")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._log_file = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log_file,
            cwd=self.workdir,
            env=env,
        )
        _live_children.add(self.proc.pid)
        self.ps = psutil.Process(self.proc.pid)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise BotCrashed(f"the bot did not print READY within {timeout:.0f}s", self.log_tail()) from None
        if not line.startswith(b"READY"):
            await self._reap(2.0)
            raise BotCrashed(f"the bot exited before READY (exit code {self.returncode})", self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def cpu_seconds(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> tuple[float, float]:
        """(current RSS, peak RSS) in MB, from /proc/<pid>/status (VmRSS, VmHWM)."""
        assert self.ps is not None
        values: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.ps.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
        if not values:  # not Linux: psutil's RSS is the best we have
            rss = self.ps.memory_info().rss / 2**20
            return rss, rss
        return values.get("VmRSS", 0.0), values.get("VmHWM", values.get("VmRSS", 0.0))

    async def stop(self) -> None:
        """Close stdin (the bot's stop signal), then escalate to SIGTERM and SIGKILL if it lingers."""
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        await self._reap(10.0)

    async def _reap(self, grace: float) -> None:
        assert self.proc is not None
        try:
            for action in (None, self.proc.terminate, self.proc.kill):
                if action is not None and self.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        action()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), grace if action is None else 3.0)
                if self.proc.returncode is not None:
                    break
        finally:
            if self.proc.returncode is not None:
                _live_children.discard(self.proc.pid)
            self.returncode = self.proc.returncode
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def log_lines(self) -> list[str]:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").splitlines()
        return []

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def problem_lines(self) -> list[str]:
        """WARNING/ERROR/CRITICAL log lines and tracebacks the bot printed."""
        return [
            line
            for line in self.log_lines()
            if (re.search(r"\s(WARNING|ERROR|CRITICAL)\s", line) or line.startswith("Traceback"))
            and not BENIGN_LOG.search(line)
        ]


class BotCrashed(Exception):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


# --------------------------------------------------------------------------- measuring one run


@dataclass
class ReplyStats:
    """What one conversation's reply looked like from the fakes' side."""

    index: int
    channel_id: int
    text_ok: bool
    problem: str = ""
    parts: int = 0
    writes: int = 0
    redundant_writes: int = 0
    first_visible_ms: float | None = None
    final_lag_ms: float | None = None
    after_done_ms: float | None = None
    intervals: list[float] = field(default_factory=list)

    @property
    def interval_median(self) -> float | None:
        return statistics.median(self.intervals) if self.intervals else None

    @property
    def interval_max(self) -> float | None:
        return max(self.intervals) if self.intervals else None


@dataclass
class RunStats:
    """One scenario run: every reply plus the bot process's figures."""

    conversations: int
    replies: list[ReplyStats]
    rate_limited: int
    tokens: int
    cpu_s: float
    wall_s: float
    rss_ready_mb: float
    rss_peak_mb: float
    bot_problems: list[str]
    crashed: str = ""

    @property
    def texts_ok(self) -> int:
        return sum(r.text_ok for r in self.replies)

    def each(self, attr: str) -> list[float]:
        return [v for r in self.replies if (v := getattr(r, attr)) is not None]


def parent_index(fake: FakeDiscord) -> dict[str, dict[str, Any]]:
    """The bot's messages keyed by the id of the message each one replies to."""
    by_parent: dict[str, dict[str, Any]] = {}
    for message in fake.bot_messages():
        parent = (message.get("message_reference") or {}).get("message_id")
        if parent is not None:
            by_parent.setdefault(str(parent), message)
    return by_parent


def reply_chain(by_parent: dict[str, dict[str, Any]], prompt_id: int) -> list[dict[str, Any]]:
    """The bot's messages answering `prompt_id`: the first replies to it, each later part to the previous one."""
    chain: list[dict[str, Any]] = []
    target = str(prompt_id)
    while target in by_parent:
        chain.append(by_parent[target])
        target = str(chain[-1]["id"])
    return chain


def replies_final(fake: FakeDiscord, conversations: Sequence[Conversation]) -> bool:
    """Every stream has ended and no part of any reply still shows the streaming marker."""
    by_parent = parent_index(fake)
    for conv in conversations:
        if conv.request is None or not conv.request.finished.is_set():
            return False
        chain = reply_chain(by_parent, conv.prompt_id)
        if not chain or any(m["content"].endswith(STREAMING_MARKER) for m in chain):
            return False
    return True


def reply_writes(fake: FakeDiscord, conv: Conversation, chain: Sequence[dict[str, Any]]) -> list[RestCall]:
    """Successful POST/PATCH calls that created or edited a part of this reply, in arrival order."""
    part_ids = [str(m["id"]) for m in chain]
    parents = {str(conv.prompt_id), *part_ids[:-1]}
    create_path = f"/channels/{conv.channel_id}/messages"
    edit_paths = {f"{create_path}/{pid}" for pid in part_ids}
    writes = []
    for call in fake.calls:
        if call.status != 200 or not isinstance(call.json, dict) or "content" not in call.json:
            continue
        if call.method == "POST" and call.path == create_path:
            parent = (call.json.get("message_reference") or {}).get("message_id")
            if str(parent) in parents:
                writes.append(call)
        elif call.method == "PATCH" and call.path in edit_paths:
            writes.append(call)
    return sorted(writes, key=lambda c: c.at)


def measure_reply(fake: FakeDiscord, conv: Conversation) -> ReplyStats:
    chain = reply_chain(parent_index(fake), conv.prompt_id)
    stats = ReplyStats(conv.index, conv.channel_id, text_ok=False, parts=len(chain))
    contents = [m["content"] for m in chain]
    if not chain:
        stats.problem = "no reply"
    elif any(c.endswith(STREAMING_MARKER) for c in contents):
        stats.problem = "a part still shows the streaming marker"
    elif (joined := join_split_answer(contents)) != conv.text:
        at = next((i for i, (a, b) in enumerate(zip(joined, conv.text, strict=False)) if a != b), None)
        at = min(len(joined), len(conv.text)) if at is None else at
        stats.problem = (
            f"text differs at char {at} (got {len(joined)} chars, want {len(conv.text)}): "
            f"{joined[max(0, at - 20) : at + 20]!r} vs {conv.text[max(0, at - 20) : at + 20]!r}"
        )
    else:
        stats.text_ok = True
    for message in chain:
        history = fake.message_history.get(int(message["id"]), [])
        stats.redundant_writes += sum(a == b for a, b in itertools.pairwise(history))

    writes = reply_writes(fake, conv, chain)
    stats.writes = len(writes)
    req = conv.request
    if not writes or req is None or req.first_token_at is None or req.last_token_at is None:
        return stats
    visible = next(
        (
            w
            for w in writes
            if (shown := w.json["content"].removesuffix(STREAMING_MARKER)) and conv.text.startswith(shown)
        ),
        writes[0],
    )
    stats.first_visible_ms = (visible.at - req.first_token_at) * 1000
    stats.final_lag_ms = (writes[-1].at - req.last_token_at) * 1000
    if conv.stream_end_at is not None:
        stats.after_done_ms = (writes[-1].at - conv.stream_end_at) * 1000
    updates: list[float] = []
    for write in writes:
        if not updates or write.at - updates[-1] >= COALESCE:
            updates.append(write.at)
    stats.intervals = [b - a for a, b in itertools.pairwise(updates)]
    return stats


async def _stamp_stream_ends(ollama: FakeOllama, conversations: Sequence[Conversation]) -> None:
    """Attach each chat request to its conversation and note when its stream ended."""
    pending = {c.index: c for c in conversations}
    waiters: list[asyncio.Task[None]] = []

    async def stamp(conv: Conversation, req: RecordedRequest) -> None:
        await req.finished.wait()
        conv.stream_end_at = time.monotonic()

    seen: set[int] = set()
    try:
        while pending:
            for req in ollama.chat_requests:
                if id(req) in seen:
                    continue
                seen.add(id(req))
                messages = (req.json or {}).get("messages") or []
                match = PROMPT_RE.search(str(messages[-1].get("content", ""))) if messages else None
                conv = pending.pop(int(match.group(1)), None) if match else None
                if conv is not None:
                    conv.request = req
                    waiters.append(asyncio.create_task(stamp(conv, req)))
            await asyncio.sleep(0.002)
        await asyncio.gather(*waiters)
    finally:
        for task in waiters:
            task.cancel()


async def run_scenario(
    conversations: int, tokens: int, *, workdir: Path, label: str, edit_interval: str, timeout_slack: float = 30.0
) -> RunStats:
    """Fresh fakes and a fresh bot process; all prompts at once; wait until every reply is final."""
    fake = FakeDiscord(token=TOKEN, channels=range(500, 500 + MAX_CONVERSATIONS), rate_limit=(5, 5.0))
    ollama = FakeOllama()
    convs = make_conversations(conversations, tokens)
    ollama.script_for = script_chooser(convs)
    await fake.start()
    await ollama.start()
    bot = BotProcess(fake, ollama, workdir, f"bot-{label}.log", edit_interval)
    stamper: asyncio.Task[None] | None = None
    crashed = ""
    try:
        await bot.start()
        rss_ready, _ = bot.rss_mb()
        cpu_before = bot.cpu_seconds()
        started = time.monotonic()
        stamper = asyncio.create_task(_stamp_stream_ends(ollama, convs))
        prompts = await asyncio.gather(
            *(fake.send_user_message(c.prompt, channel_id=c.channel_id, mention_bot=True) for c in convs)
        )
        for conv, prompt in zip(convs, prompts, strict=True):
            conv.prompt_id = int(prompt["id"])

        deadline = started + max(len(c.tokens) for c in convs) * TOKEN_DELAY + timeout_slack
        while not replies_final(fake, convs):
            if not bot.alive():
                crashed = f"the bot process exited mid-run (exit code {bot.proc.returncode if bot.proc else '?'})"
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.005)
        cpu_s = bot.cpu_seconds() - cpu_before if bot.alive() else float("nan")
        wall_s = time.monotonic() - started
        await asyncio.sleep(0.3)  # let any stray late write land before judging the texts
        _, rss_peak = bot.rss_mb() if bot.alive() else (0.0, 0.0)
    except BotCrashed as exc:
        crashed = f"{exc}\n{exc.log_tail}"
        return RunStats(conversations, [], fake.rate_limited, 0, float("nan"), 0.0, 0.0, 0.0, [], crashed)
    finally:
        if stamper is not None:
            stamper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stamper
        await bot.stop()
        await ollama.close()
        await fake.close()
    if not crashed and bot.returncode not in (0, None):
        crashed = f"the bot exited with code {bot.returncode} when asked to stop"
    if crashed:
        crashed += "\n" + bot.log_tail()
    return RunStats(
        conversations=conversations,
        replies=[measure_reply(fake, c) for c in convs],
        rate_limited=fake.rate_limited,
        tokens=sum(len(c.tokens) for c in convs),
        cpu_s=cpu_s,
        wall_s=wall_s,
        rss_ready_mb=rss_ready,
        rss_peak_mb=rss_peak,
        bot_problems=bot.problem_lines(),
        crashed=crashed,
    )


# --------------------------------------------------------------------------- reporting


def _med(values: Sequence[float]) -> float | None:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else None


def _max(values: Sequence[float]) -> float | None:
    return max(values) if values else None


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None or value != value else format(value, spec)


@dataclass
class Headline:
    """Median across runs of each per-run figure."""

    fv_med: float | None
    fv_max: float | None
    lag_med: float | None
    lag_max: float | None
    done_med: float | None
    upd_med: float | None
    upd_worst_conv: float | None
    upd_worst_gap: float | None
    cpu_per_1k: float | None
    cpu_pct: float | None
    rss_ready: float | None
    rss_peak: float | None
    wall: float | None
    rate_limited: int
    texts_ok: int
    texts_total: int


def per_run_row(run: RunStats) -> dict[str, float | None]:
    per_conv_medians = [m for r in run.replies if (m := r.interval_median) is not None]
    per_conv_max = [m for r in run.replies if (m := r.interval_max) is not None]
    return {
        "fv_med": _med(run.each("first_visible_ms")),
        "fv_max": _max(run.each("first_visible_ms")),
        "lag_med": _med(run.each("final_lag_ms")),
        "lag_max": _max(run.each("final_lag_ms")),
        "done_med": _med(run.each("after_done_ms")),
        "upd_med": _med(per_conv_medians),
        "upd_worst_conv": _max(per_conv_medians),
        "upd_worst_gap": _max(per_conv_max),
        "cpu_per_1k": run.cpu_s / (run.tokens / 1000) if run.tokens else None,
        "cpu_pct": 100 * run.cpu_s / run.wall_s if run.wall_s else None,
        "rss_ready": run.rss_ready_mb or None,
        "rss_peak": run.rss_peak_mb or None,
        "wall": run.wall_s or None,
        "writes": _med([r.writes for r in run.replies]),
        "parts": _max([r.parts for r in run.replies]),
    }


def headline(runs: Sequence[RunStats]) -> Headline:
    rows = [per_run_row(r) for r in runs]

    def med(key: str) -> float | None:
        return _med([v for row in rows if (v := row[key]) is not None])

    return Headline(
        fv_med=med("fv_med"),
        fv_max=med("fv_max"),
        lag_med=med("lag_med"),
        lag_max=med("lag_max"),
        done_med=med("done_med"),
        upd_med=med("upd_med"),
        upd_worst_conv=med("upd_worst_conv"),
        upd_worst_gap=med("upd_worst_gap"),
        cpu_per_1k=med("cpu_per_1k"),
        cpu_pct=med("cpu_pct"),
        rss_ready=med("rss_ready"),
        rss_peak=med("rss_peak"),
        wall=med("wall"),
        rate_limited=sum(r.rate_limited for r in runs),
        texts_ok=sum(r.texts_ok for r in runs),
        texts_total=sum(r.conversations for r in runs),
    )


COLUMNS = (
    ("run", 4),
    ("first vis ms med/max", 21),
    ("final lag ms med/max", 21),
    ("after done", 10),
    ("update s med/worst/max", 23),
    ("writes", 6),
    ("429", 4),
    ("cpu s/1k tok", 12),
    ("cpu %", 6),
    ("rss MB rdy/peak", 16),
    ("wall s", 7),
    ("text", 6),
)


def _row(cells: Sequence[str]) -> str:
    return "  ".join(
        cell.rjust(width) if i else cell.ljust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
    ).rstrip()


def print_scenario(title: str, runs: Sequence[RunStats], head: Headline, *, verbose: bool) -> None:
    print(f"\n== {title} ==")
    print(_row([name for name, _ in COLUMNS]))
    for number, run in enumerate(runs, start=1):
        if run.crashed and not run.replies:
            print(_row([str(number), "CRASHED", *[""] * (len(COLUMNS) - 2)]))
            continue
        row = per_run_row(run)
        print(
            _row(
                [
                    str(number),
                    f"{_fmt(row['fv_med'], '.1f')} / {_fmt(row['fv_max'], '.1f')}",
                    f"{_fmt(row['lag_med'], '.1f')} / {_fmt(row['lag_max'], '.1f')}",
                    _fmt(row["done_med"], ".1f"),
                    f"{_fmt(row['upd_med'], '.2f')} / {_fmt(row['upd_worst_conv'], '.2f')} / "
                    f"{_fmt(row['upd_worst_gap'], '.2f')}",
                    _fmt(row["writes"]),
                    str(run.rate_limited),
                    _fmt(row["cpu_per_1k"], ".3f"),
                    _fmt(row["cpu_pct"], ".0f"),
                    f"{_fmt(row['rss_ready'], '.1f')} / {_fmt(row['rss_peak'], '.1f')}",
                    _fmt(row["wall"], ".2f"),
                    f"{run.texts_ok}/{run.conversations}",
                ]
            )
        )
    print(
        _row(
            [
                "med",
                f"{_fmt(head.fv_med, '.1f')} / {_fmt(head.fv_max, '.1f')}",
                f"{_fmt(head.lag_med, '.1f')} / {_fmt(head.lag_max, '.1f')}",
                _fmt(head.done_med, ".1f"),
                f"{_fmt(head.upd_med, '.2f')} / {_fmt(head.upd_worst_conv, '.2f')} / {_fmt(head.upd_worst_gap, '.2f')}",
                "",
                f"{head.rate_limited}",
                _fmt(head.cpu_per_1k, ".3f"),
                _fmt(head.cpu_pct, ".0f"),
                f"{_fmt(head.rss_ready, '.1f')} / {_fmt(head.rss_peak, '.1f')}",
                _fmt(head.wall, ".2f"),
                f"{head.texts_ok}/{head.texts_total}",
            ]
        )
    )
    for number, run in enumerate(runs, start=1):
        if run.crashed:
            print(f"  run {number}: BOT CRASHED: {run.crashed}")
        for reply in run.replies:
            if not reply.text_ok:
                print(f"  run {number} conversation {reply.index}: WRONG TEXT: {reply.problem}")
        redundant = sum(r.redundant_writes for r in run.replies)
        if redundant:
            print(f"  run {number}: {redundant} write(s) re-sent content the message already had")
        if run.bot_problems:
            print(f"  run {number}: the bot logged {len(run.bot_problems)} warning/error line(s), e.g.:")
            for line in run.bot_problems[:5]:
                print(f"    {line}")
    if verbose:
        for number, run in enumerate(runs, start=1):
            print(f"  run {number} per conversation (ch, parts, writes, first vis ms, lag ms, update s med/max):")
            for r in run.replies:
                print(
                    f"    #{r.index:<2} ch {r.channel_id}  parts {r.parts}  writes {r.writes:>2}  "
                    f"fv {_fmt(r.first_visible_ms, '6.1f')}  lag {_fmt(r.final_lag_ms, '6.1f')}  "
                    f"upd {_fmt(r.interval_median, '.2f')}/{_fmt(r.interval_max, '.2f')}  "
                    f"{'ok' if r.text_ok else 'WRONG'}"
                )


def verdicts(results: dict[str, tuple[int, Headline]]) -> list[str]:
    def check(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    def below(value: float | None, limit: float) -> bool | None:
        return None if value is None else value < limit

    lines = []
    fv = [below(h.fv_med, FIRST_VISIBLE_TARGET_MS) for _, h in results.values()]
    fv += [below(h.fv_max, FIRST_VISIBLE_TARGET_MS) for _, h in results.values()]
    detail = "; ".join(f"{n} conv: {_fmt(h.fv_med, '.1f')}/{_fmt(h.fv_max, '.1f')} ms" for n, h in results.values())
    lines.append(f"{check(_all(fv))}  first-visible overhead < {FIRST_VISIBLE_TARGET_MS:.0f} ms (median/max): {detail}")
    lag = [below(h.lag_med, FINAL_LAG_TARGET_MS) for _, h in results.values()]
    lag += [below(h.lag_max, FINAL_LAG_TARGET_MS) for _, h in results.values()]
    detail = "; ".join(f"{n} conv: {_fmt(h.lag_med, '.1f')}/{_fmt(h.lag_max, '.1f')} ms" for n, h in results.values())
    lines.append(f"{check(_all(lag))}  final-edit lag < {FINAL_LAG_TARGET_MS:.0f} ms (median/max): {detail}")
    total_429 = sum(h.rate_limited for _, h in results.values())
    lines.append(f"{check(total_429 == 0)}  zero 429s: {total_429} across all runs")
    most = max(results.values(), key=lambda item: item[0])
    worst = most[1].upd_worst_conv
    lines.append(
        f"{check(None if worst is None else worst <= UPDATE_INTERVAL_TARGET_S)}  median update interval "
        f"<= {UPDATE_INTERVAL_TARGET_S} s for every conversation with {most[0]} at once: "
        f"worst conversation {_fmt(worst, '.2f')} s (median of all {_fmt(most[1].upd_med, '.2f')} s)"
    )
    ok = sum(h.texts_ok for _, h in results.values())
    total = sum(h.texts_total for _, h in results.values())
    lines.append(f"{check(ok == total)}  exact final text in every reply: {ok}/{total}")
    return lines


def _all(checks: Sequence[bool | None]) -> bool | None:
    known = [c for c in checks if c is not None]
    return all(known) if known else None


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark ollacord's streaming relay against the fakes.")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3, or 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 100 tokens per answer, 1 run")
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="tokens per answer, +-20 across conversations (default 300, 100 with --quick)",
    )
    parser.add_argument("--edit-interval", default="", help="EDIT_INTERVAL for the bot (default: unset = 1.0 s)")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print every conversation's figures")
    parser.add_argument("--keep-logs", action="store_true", help="keep the bot's logs (path is printed)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.tokens = args.tokens or (100 if args.quick else 300)
    if args.runs < 1 or args.tokens < 30:
        parser.error("--runs must be >= 1 and --tokens >= 30")
    return args


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    scenarios = [(1, "1 conversation"), (MAX_CONVERSATIONS, f"{MAX_CONVERSATIONS} concurrent conversations")]
    interval = args.edit_interval or "1.0 (default)"
    print(
        f"ollacord relay benchmark: {args.runs} run(s) per scenario, {args.tokens} tokens per answer at "
        f"{1 / TOKEN_DELAY:.0f} tok/s, EDIT_INTERVAL={interval}, fake rate limit 5 writes/5 s per channel"
    )
    print(
        f"python {platform.python_version()}, discord.py {discord.__version__}, {os.cpu_count()} CPU(s); "
        f"times from the fakes' shared monotonic clock"
    )
    failed = False
    results: dict[str, tuple[int, Headline]] = {}
    for count, title in scenarios:
        runs: list[RunStats] = []
        for number in range(1, args.runs + 1):
            run = await run_scenario(
                count, args.tokens, workdir=workdir, label=f"{count}conv-run{number}", edit_interval=args.edit_interval
            )
            runs.append(run)
            failed = failed or bool(run.crashed) or run.texts_ok < run.conversations
        head = headline(runs)
        results[title] = (count, head)
        print_scenario(f"{title}, {args.tokens} tokens each, {args.runs} run(s)", runs, head, verbose=args.verbose)
    print(
        "\ncolumns: first vis = first write showing model text - first token flushed; final lag = last write - "
        "last token flushed;\n  after done = last write - end of the Ollama stream; update = gaps between visible "
        "updates (median per reply: median of replies / worst reply; max = longest gap);\n  cpu = bot process "
        "user+sys during the scenario; rss = bot VmRSS at ready / VmHWM peak; 'med' row = median across runs"
    )
    print("\nverdicts (medians across runs):")
    for line in verdicts(results):
        print(f"  {line}")
    return 1 if failed else 0


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so every `finally` (stopping the bot process) runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ollacord-bench-"))
    code = 1
    try:
        code = asyncio.run(main_async(args, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    finally:
        _kill_leftovers()
        if args.keep_logs or code:
            print(f"\nbot logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total wall time {time.monotonic() - began:.1f} s; exit code {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
