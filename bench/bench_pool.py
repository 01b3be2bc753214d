"""Pool and global-budget benchmark: many channels at once, several Ollama hosts, a host dying, tokens per core.

    python3 dev.py bench                      # bench_relay.py, then this (about 4 minutes in all)
    python bench/bench_pool.py [--quick] [--compare-with /path/to/an/older/checkout] [--keep-logs]

The bot runs in its own process (bench/_bot_process.py, as in bench_relay.py) against the fakes in this
process: a fake Discord enforcing both Discord limits (5 message writes per 5 s per channel, and 50 requests
per second per bot token with global 429s) and one FakeOllama per Ollama host. Scenarios:

1. 64 channels at once (one host serving 64 at once): global 429s, the busiest second, first visible text
   after Ollama's first token (p95), the longest pause between updates of a reply, the final edit after the
   last token (p95), exact final texts.
2. 24 conversations on 1 host with 2 slots, then on 3 hosts with 2 slots each: time until all are answered.
3. One of 3 hosts killed 5 s into a run of 24 conversations asked over 9 s: every question ends with an answer
   or a visible note, every question asked after the kill is answered in full, nothing is left streaming.
4. Tokens per core: bot CPU per 1,000 tokens with 20 answers at once (bench_relay's scenario), and 64 answers
   at 150 tokens/s with the update cadence of scenario 1.

Figures are printed, never asserted; the exit code is 1 only if the bot crashed or a reply that had to be
exact was not. With --compare-with, scenarios 1 and 4 also run the bot of that checkout (one host, no pool)
in the same run, for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(ROOT), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_relay as relay  # noqa: E402

from bot.streaming.relay import STREAMING_MARKER  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord  # noqa: E402
from tests.fakes.fake_ollama import ChatScript, FakeOllama, RecordedRequest  # noqa: E402

FIRST_CHANNEL = relay.FIRST_CHANNEL
_RUNS = itertools.count(1)
NOTE = "\n-# "  # a note under an answer (bot/streaming/notes.py)
PROMPT_RE = relay.PROMPT_RE

# Targets of the issue (reported, never asserted).
FIRST_VISIBLE_P95_S = 1.0
LONGEST_PAUSE_S = 2.5
FINAL_EDIT_P95_S = 0.3
SPEEDUP = 2.7
CPU_PER_1K_TARGET = 0.05


@dataclass
class HostList:
    """What BotProcess needs of "the Ollama": the OLLAMA_HOST value."""

    url: str


@contextlib.contextmanager
def bot_from(root: Path | None) -> Iterator[None]:
    """Run bench_relay's BotProcess with the bot of another checkout (for before/after figures)."""
    if root is None:
        yield
        return
    saved = relay.ROOT, relay.BOT_SCRIPT
    relay.ROOT, relay.BOT_SCRIPT = root, root / "bench" / "_bot_process.py"
    try:
        yield
    finally:
        relay.ROOT, relay.BOT_SCRIPT = saved


@contextlib.contextmanager
def bot_settings(settings: dict[str, str]) -> Iterator[None]:
    """Extra settings for the bot process (read by _bot_process.py from BENCH_SETTINGS)."""
    saved = os.environ.get("BENCH_SETTINGS")
    os.environ["BENCH_SETTINGS"] = json.dumps(settings)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("BENCH_SETTINGS", None)
        else:
            os.environ["BENCH_SETTINGS"] = saved


def chooser(
    conversations: Sequence[relay.Conversation], token_delay: float, *, varied: bool = False
) -> Callable[[dict[str, Any]], ChatScript | None]:
    """FakeOllama.script_for: the conversation named in the last message, at `token_delay` per token.

    `varied`: the prompt evaluation before the first token takes 0 to 1 s, as prompts of different lengths do.
    """

    def choose(body: dict[str, Any]) -> ChatScript | None:
        messages = body.get("messages") or []
        match = PROMPT_RE.search(str(messages[-1].get("content", ""))) if messages else None
        if match is None or int(match.group(1)) >= len(conversations):
            return None
        index = int(match.group(1))
        first = (index * 0.618) % 1.0 if varied else 0.0
        return ChatScript(tokens=list(conversations[index].tokens), token_delay=token_delay, first_token_delay=first)

    return choose


def p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "-" if value is None or value != value else f"{format(value, spec)}{unit}"


@dataclass
class Outcome:
    """One bot run against the fakes."""

    label: str
    conversations: list[relay.Conversation]
    replies: list[relay.ReplyStats] = field(default_factory=list)
    final_texts: dict[int, list[str]] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = float("nan")
    tokens: int = 0
    global_429: int = 0
    channel_429: int = 0
    busiest_second: int = 0
    stuck: int = 0
    crashed: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> int:
        return sum(r.text_ok for r in self.replies)

    @property
    def cpu_per_1k(self) -> float | None:
        return self.cpu_s / (self.tokens / 1000) if self.tokens and self.cpu_s == self.cpu_s else None

    def first_visible_s(self) -> list[float]:
        return [r.first_visible_ms / 1000 for r in self.replies if r.first_visible_ms is not None]

    def final_lag_s(self) -> list[float]:
        return [r.final_lag_ms / 1000 for r in self.replies if r.final_lag_ms is not None]

    def longest_pause_s(self) -> float | None:
        gaps = [gap for r in self.replies for gap in r.intervals]
        return max(gaps) if gaps else None

    def median_update_s(self) -> float | None:
        medians = [m for r in self.replies if (m := r.interval_median) is not None]
        return statistics.median(medians) if medians else None


def settled(fake: FakeDiscord, conversations: Sequence[relay.Conversation]) -> bool:
    """Every question has its final reply: none of its parts streaming, the Regenerate button on the last.

    (Between the two writes of a roll-over the first part is already finished: only the button on the last
    part says the reply is.)
    """
    by_parent = relay.parent_index(fake)
    for conv in conversations:
        if not conv.prompt_id:
            return False
        chain = relay.reply_chain(by_parent, conv.prompt_id)
        if not chain or any(_streaming(m) for m in chain) or not any(":regenerate:" in b for b in _buttons(chain[-1])):
            return False
    return True


def _buttons(message: dict[str, Any]) -> list[str]:
    return [c.get("custom_id", "") for row in message.get("components") or [] for c in row.get("components", [])]


def _streaming(message: dict[str, Any]) -> bool:
    return message["content"].endswith(STREAMING_MARKER) or any(":stop:" in b for b in _buttons(message))


async def _follow_requests(hosts: Sequence[FakeOllama], conversations: Sequence[relay.Conversation]) -> None:
    """Attach each conversation to the chat request that answers it (the last one, after a move) and its end."""
    by_index = {c.index: c for c in conversations}
    seen: set[int] = set()
    waiters: dict[int, asyncio.Task[None]] = {}

    async def stamp(conv: relay.Conversation, req: RecordedRequest) -> None:
        await req.finished.wait()
        if conv.request is req:
            conv.stream_end_at = time.monotonic()

    try:
        while True:
            for host in hosts:
                for req in host.chat_requests:
                    if id(req) in seen:
                        continue
                    seen.add(id(req))
                    messages = (req.json or {}).get("messages") or []
                    match = PROMPT_RE.search(str(messages[-1].get("content", ""))) if messages else None
                    conv = by_index.get(int(match.group(1))) if match else None
                    if conv is not None:
                        conv.request = req
                        waiters[conv.index] = asyncio.create_task(stamp(conv, req))
            await asyncio.sleep(0.005)
    finally:
        for task in waiters.values():
            task.cancel()


async def run_bot(
    label: str,
    *,
    workdir: Path,
    channels: int,
    hosts: Sequence[FakeOllama],
    host_setting: str,
    conversations: list[relay.Conversation],
    settings: dict[str, str] | None = None,
    ask_at: Sequence[float] | None = None,
    kill: tuple[float, int] | None = None,
    timeout: float = 60.0,
    root: Path | None = None,
) -> Outcome:
    """Start the fakes and a bot process, ask every question (at once, or at `ask_at` seconds), wait, measure."""
    fake = FakeDiscord(token=relay.TOKEN, channels=range(FIRST_CHANNEL, FIRST_CHANNEL + channels))
    outcome = Outcome(label, conversations)
    await fake.start()
    log_name = f"bot-{next(_RUNS)}-{re.sub(r'[^a-z0-9]+', '-', label)}.log"
    bot = relay.BotProcess(fake, HostList(host_setting), workdir, log_name, "")  # type: ignore[arg-type]
    follower: asyncio.Task[None] | None = None
    try:
        with bot_from(root), bot_settings(settings or {}):
            await bot.start()
        cpu_before = bot.cpu_seconds()
        started = time.monotonic()
        follower = asyncio.create_task(_follow_requests(hosts, conversations))
        killer = asyncio.create_task(_kill_later(hosts, kill, started)) if kill else None
        await _ask(fake, conversations, ask_at, started)
        while not settled(fake, conversations):
            if not bot.alive():
                outcome.crashed = (
                    f"the bot process exited mid-run (exit code {bot.proc.returncode if bot.proc else '?'})"
                )
                break
            if time.monotonic() - started > timeout:
                break
            await asyncio.sleep(0.01)
        outcome.wall_s = time.monotonic() - started
        if bot.alive():
            outcome.cpu_s = bot.cpu_seconds() - cpu_before
        if killer is not None:
            await killer
        await asyncio.sleep(0.3)  # let a stray late write land before judging
    except relay.BotCrashed as exc:
        outcome.crashed = f"{exc}\n{exc.log_tail}"
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        await bot.stop()
        for host in hosts:
            await host.close()
        await fake.close()
    by_parent = relay.parent_index(fake)
    for conv in conversations:
        chain = relay.reply_chain(by_parent, conv.prompt_id) if conv.prompt_id else []
        outcome.final_texts[conv.index] = [m["content"] for m in chain]
        finished = bool(chain) and any(":regenerate:" in b for b in _buttons(chain[-1]))
        outcome.stuck += sum(1 for m in chain if _streaming(m)) + (not finished)
    outcome.replies = [relay.measure_reply(fake, c) for c in conversations]
    outcome.tokens = sum(len(c.tokens) for c in conversations)
    outcome.global_429 = fake.global_rate_limited
    outcome.channel_429 = fake.rate_limited - fake.global_rate_limited
    outcome.busiest_second = fake.busiest_window(1.0)
    outcome.problems = bot.problem_lines()
    if not outcome.crashed and bot.returncode not in (0, None):
        outcome.crashed = f"the bot exited with code {bot.returncode} when asked to stop\n{bot.log_tail()}"
    return outcome


async def _ask(
    fake: FakeDiscord, conversations: Sequence[relay.Conversation], ask_at: Sequence[float] | None, started: float
) -> None:
    if ask_at is None:
        prompts = await asyncio.gather(
            *(fake.send_user_message(c.prompt, channel_id=c.channel_id, mention_bot=True) for c in conversations)
        )
        for conv, prompt in zip(conversations, prompts, strict=True):
            conv.prompt_id = int(prompt["id"])
        return
    for conv, at in zip(conversations, ask_at, strict=True):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        conv.prompt_id = int(
            (await fake.send_user_message(conv.prompt, channel_id=conv.channel_id, mention_bot=True))["id"]
        )


async def _kill_later(hosts: Sequence[FakeOllama], kill: tuple[float, int] | None, started: float) -> None:
    assert kill is not None
    at, index = kill
    await asyncio.sleep(max(0.0, started + at - time.monotonic()))
    await hosts[index].kill()


def conversations(count: int, tokens: int, *, varied: bool = False) -> list[relay.Conversation]:
    """`count` conversations of about `tokens` tokens; `varied`: from half to one and a half times as long."""
    if not varied:
        return relay.make_conversations(count, tokens)
    lengths = [tokens // 2 + (i * 61) % (tokens + 1) for i in range(count)]
    return [relay.Conversation(i, FIRST_CHANNEL + i, relay.make_tokens(i, n)) for i, n in enumerate(lengths)]


def hosts_with(
    count: int, convs: Sequence[relay.Conversation], token_delay: float, *, varied: bool = False, **kw: Any
) -> list[FakeOllama]:
    hosts = [FakeOllama(**kw) for _ in range(count)]
    for host in hosts:
        host.script_for = chooser(convs, token_delay, varied=varied)
    return hosts


async def _bound(hosts: Sequence[FakeOllama]) -> list[FakeOllama]:
    """Start the hosts now, so their ports (and so OLLAMA_HOST) are known before the bot starts."""
    for host in hosts:
        await host.start()
    return list(hosts)


# --------------------------------------------------------------------------- scenarios


async def scenario_many_channels(
    args: argparse.Namespace,
    workdir: Path,
    *,
    label: str,
    token_delay: float,
    tokens: int,
    varied: bool = True,
    root: Path | None = None,
) -> Outcome:
    """All questions at once in as many channels. `varied`: prompts and answers of different lengths."""
    count = args.channels
    convs = conversations(count, tokens, varied=varied)
    hosts = await _bound(hosts_with(1, convs, token_delay, varied=varied))
    setting = hosts[0].url if root is not None else f"{hosts[0].url}*{count}"
    return await run_bot(
        label, workdir=workdir, channels=count, hosts=hosts, host_setting=setting, conversations=convs, root=root
    )


async def scenario_scale_out(args: argparse.Namespace, workdir: Path) -> tuple[Outcome, Outcome]:
    results = []
    for count in (1, 3):
        convs = conversations(args.scale_conversations, args.scale_tokens)
        hosts = await _bound(hosts_with(count, convs, relay.TOKEN_DELAY, parallel=2))
        setting = ", ".join(f"{h.url}*2" for h in hosts)
        results.append(
            await run_bot(
                f"scale-{count}",
                workdir=workdir,
                channels=len(convs),
                hosts=hosts,
                host_setting=setting,
                conversations=convs,
                settings={"OLLAMA_CHECK_INTERVAL": "1"},
                timeout=120,
            )
        )
    return results[0], results[1]


async def scenario_host_killed(args: argparse.Namespace, workdir: Path) -> tuple[Outcome, float]:
    count = args.scale_conversations
    convs = conversations(count, args.kill_tokens)
    hosts = await _bound(hosts_with(3, convs, relay.TOKEN_DELAY, parallel=2))
    setting = ", ".join(f"{h.url}*2" for h in hosts)
    spacing = args.kill_spacing
    outcome = await run_bot(
        "killed",
        workdir=workdir,
        channels=count,
        hosts=hosts,
        host_setting=setting,
        conversations=convs,
        settings={"OLLAMA_CHECK_INTERVAL": "1"},
        ask_at=[i * spacing for i in range(count)],
        kill=(args.kill_at, 1),
        timeout=90,
    )
    return outcome, args.kill_at


# --------------------------------------------------------------------------- reporting


def print_many_channels(title: str, outcomes: Sequence[Outcome]) -> None:
    print(f"\n== {title} ==")
    head = (
        f"{'bot':<10} {'global 429':>10} {'busiest 1 s':>11} {'first vis p95':>13} {'longest pause':>13} "
        f"{'final p95':>9} {'update med':>10} {'channel 429':>11} {'cpu s/1k':>8} {'wall s':>6} {'exact':>7}"
    )
    print(head)
    for o in outcomes:
        print(
            f"{o.label:<10} {o.global_429:>10} {o.busiest_second:>11} {fmt(p95(o.first_visible_s()), '.2f', ' s'):>13} "
            f"{fmt(o.longest_pause_s(), '.2f', ' s'):>13} {fmt(p95(o.final_lag_s()), '.2f', ' s'):>9} "
            f"{fmt(o.median_update_s(), '.2f', ' s'):>10} {o.channel_429:>11} {fmt(o.cpu_per_1k, '.3f'):>8} "
            f"{o.wall_s:>6.1f} {o.exact:>3}/{len(o.conversations):<3}"
        )
        _print_problems(o)


def _print_problems(o: Outcome) -> None:
    if o.crashed:
        print(f"  {o.label}: BOT CRASHED: {o.crashed}")
    for reply in o.replies:
        if not reply.text_ok and not o.label.startswith("killed"):
            print(f"  {o.label} conversation {reply.index}: WRONG TEXT: {reply.problem}")
    if o.problems:
        print(f"  {o.label}: the bot logged {len(o.problems)} warning/error line(s), e.g.:")
        for line in o.problems[:3]:
            print(f"    {line}")


def judge_killed(outcome: Outcome, kill_at: float, spacing: float) -> dict[str, int]:
    """Sort the questions of the host-killed run by how they ended."""
    counts = {"exact": 0, "note": 0, "after_kill": 0, "after_kill_exact": 0, "unfinished": 0}
    for conv, reply in zip(outcome.conversations, outcome.replies, strict=True):
        parts = outcome.final_texts.get(conv.index) or []
        asked_after = conv.index * spacing > kill_at + 0.05
        if asked_after:
            counts["after_kill"] += 1
            counts["after_kill_exact"] += reply.text_ok
        if reply.text_ok:
            counts["exact"] += 1
        elif parts and NOTE in parts[-1] and not any(p.endswith(STREAMING_MARKER) for p in parts):
            counts["note"] += 1
        else:
            counts["unfinished"] += 1
    return counts


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark ollacord's pool of Ollama hosts and its global budget.")
    parser.add_argument("--quick", action="store_true", help="tiny scenarios: a smoke run of about 20 s")
    parser.add_argument("--compare-with", type=Path, default=None, help="an older checkout to measure too (1 and 4)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the bot's logs (path is printed)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.channels = 8 if quick else 64
    args.tokens = 40 if quick else 300
    args.scale_conversations = 6 if quick else 24
    args.scale_tokens = 20 if quick else 60
    args.kill_tokens = 30 if quick else 80
    args.kill_spacing = 0.3 if quick else 0.4
    args.kill_at = 1.0 if quick else 5.0
    args.fast_tokens = 60 if quick else 450
    if args.compare_with is not None and not (args.compare_with / "bench" / "_bot_process.py").exists():
        parser.error(f"{args.compare_with} has no bench/_bot_process.py")
    return args


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    failed = False
    old = args.compare_with
    print(
        f"ollacord pool benchmark{' (quick)' if args.quick else ''}: fake Discord enforcing 5 writes per 5 s per "
        f"channel and 50 requests/s globally; {os.cpu_count()} CPU(s)"
        + (f"; before/after against {old}" if old else "")
    )

    # 1. Many channels at once: as in real use (prompts and answers of different lengths), then all in step.
    runs = []
    for label, varied, root in (("new", True, None), ("new, step", False, None), ("before", True, old)):
        if (label == "before" and root is None) or (label == "new, step" and args.quick):
            continue
        runs.append(
            await scenario_many_channels(
                args,
                workdir,
                label=label,
                token_delay=relay.TOKEN_DELAY,
                tokens=args.tokens,
                varied=varied,
                root=root,
            )
        )
    print_many_channels(
        f"1. {args.channels} channels at once, about {args.tokens} tokens at 40 tokens/s each, one host serving "
        f"{args.channels} at once ('step': every prompt and answer the same size, all in step)",
        runs,
    )
    many = runs[0]
    failed = failed or any(o.crashed or o.exact < len(o.conversations) for o in runs if o.label.startswith("new"))

    # 2. Scale out.
    one, three = await scenario_scale_out(args, workdir)
    speedup = one.wall_s / three.wall_s if three.wall_s else float("nan")
    print(
        f"\n== 2. {args.scale_conversations} conversations of {args.scale_tokens} tokens at 40 tokens/s: "
        "1 host with 2 slots, then 3 hosts with 2 slots each =="
    )
    for o in (one, three):
        print(f"{o.label:<10} all answered after {o.wall_s:6.2f} s   exact {o.exact}/{len(o.conversations)}")
        _print_problems(o)
    print(f"speed-up: {speedup:.2f}x")
    for o in (one, three):
        failed = failed or bool(o.crashed) or o.exact < len(o.conversations)

    # 3. A host dies mid-run.
    killed, kill_at = await scenario_host_killed(args, workdir)
    counts = judge_killed(killed, kill_at, args.kill_spacing)
    print(
        f"\n== 3. 3 hosts with 2 slots; {len(killed.conversations)} conversations asked {args.kill_spacing:g} s "
        f"apart; host 2 killed {kill_at:g} s in =="
    )
    print(
        f"answered in full {counts['exact']}, ended with a note {counts['note']}, unfinished {counts['unfinished']}; "
        f"asked after the kill: {counts['after_kill_exact']}/{counts['after_kill']} answered in full; "
        f"left streaming: {killed.stuck}; all settled after {killed.wall_s:.2f} s"
    )
    _print_problems(killed)
    failed = failed or bool(killed.crashed) or counts["after_kill_exact"] < counts["after_kill"]

    # 4. Tokens per core.
    cpu_runs: list[tuple[str, float | None]] = []
    for label, root in (("new", None), ("before", old)):
        if label == "before" and root is None:
            continue
        with bot_from(root):
            run = await relay.run_scenario(
                relay.MAX_CONVERSATIONS, args.tokens, workdir=workdir, label=f"cpu-{label}", edit_interval=""
            )
        cpu_runs.append((label, run.cpu_s / (run.tokens / 1000) if run.tokens else None))
        failed = failed or (label == "new" and (bool(run.crashed) or run.texts_ok < run.conversations))
    fast = [
        await scenario_many_channels(
            args, workdir, label=label, token_delay=1 / 150, tokens=args.fast_tokens, root=root
        )
        for label, root in (("new", None), ("before", old))
        if label == "new" or root is not None
    ]
    print("\n== 4. tokens per core ==")
    for label, per_1k in cpu_runs:
        answers = f"{relay.MAX_CONVERSATIONS} answers at once, 40 tokens/s each"
        print(f"{label:<10} {answers}: {fmt(per_1k, '.3f')} s CPU per 1,000 tokens")
    print_many_channels(
        f"{args.channels} answers at once, {args.fast_tokens} tokens at 150 tokens/s each "
        f"({args.channels * 150:,} tokens/s in all)",
        fast,
    )
    failed = failed or bool(fast[0].crashed) or fast[0].exact < len(fast[0].conversations)

    quick = " (a --quick run is a smoke test: its scenarios are too small for these targets)" if args.quick else ""
    print(f"\nverdicts (the issue's targets; reported, never asserted){quick}:")
    for line in verdicts(many, speedup, counts, killed, cpu_runs, fast[0]):
        print(f"  {line}")
    return 1 if failed else 0


def verdicts(
    many: Outcome,
    speedup: float,
    counts: dict[str, int],
    killed: Outcome,
    cpu_runs: Sequence[tuple[str, float | None]],
    fast: Outcome,
) -> list[str]:
    def check(ok: bool | None) -> str:
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    fv, pause, final = p95(many.first_visible_s()), many.longest_pause_s(), p95(many.final_lag_s())
    cpu = dict(cpu_runs).get("new")
    exact = f"{many.exact}/{len(many.conversations)}"
    held = fast.exact == len(fast.conversations) and at_most(
        fast.median_update_s(), (many.median_update_s() or 0) + 0.25
    )
    return [
        f"{check(many.global_429 == 0)}  1: no global 429 ({many.global_429})",
        f"{check(many.busiest_second <= 50)}  1: at most 50 requests in any second ({many.busiest_second})",
        f"{check(at_most(fv, FIRST_VISIBLE_P95_S))}  1: first visible text p95 <= {FIRST_VISIBLE_P95_S} s "
        f"after the first token ({fmt(fv)} s)",
        f"{check(at_most(pause, LONGEST_PAUSE_S))}  1: longest pause between updates <= {LONGEST_PAUSE_S} s "
        f"({fmt(pause)} s)",
        f"{check(at_most(final, FINAL_EDIT_P95_S))}  1: final edit p95 <= {FINAL_EDIT_P95_S} s after the last "
        f"token ({fmt(final)} s)",
        f"{check(many.exact == len(many.conversations))}  1: every final text exact ({exact})",
        f"{check(speedup >= SPEEDUP)}  2: 3 hosts answer everything >= {SPEEDUP}x sooner than 1 ({speedup:.2f}x)",
        f"{check(counts['unfinished'] == 0)}  3: every question ends with an answer or a visible note "
        f"({counts['unfinished']} unfinished)",
        f"{check(counts['after_kill_exact'] == counts['after_kill'])}  3: every question asked after the kill "
        f"answered in full ({counts['after_kill_exact']}/{counts['after_kill']})",
        f"{check(killed.stuck == 0)}  3: nothing left streaming ({killed.stuck})",
        f"{check(at_most(cpu, CPU_PER_1K_TARGET))}  4: <= {CPU_PER_1K_TARGET} s CPU per 1,000 tokens with "
        f"{relay.MAX_CONVERSATIONS} answers at once ({fmt(cpu, '.3f')} s)",
        f"{check(held)}  4: 150 tokens/s per answer held with the cadence of 40 tokens/s "
        f"({fmt(fast.median_update_s())} s vs {fmt(many.median_update_s())} s median update; "
        f"{fast.exact}/{len(fast.conversations)} exact)",
    ]


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ollacord-bench-pool-"))
    code = 1
    try:
        code = asyncio.run(main_async(args, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    finally:
        relay._kill_leftovers()
        if args.keep_logs or code:
            print(f"\nbot logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"total wall time {time.monotonic() - began:.1f} s; exit code {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
