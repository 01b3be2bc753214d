"""Deep-chain benchmark: how long a reply to a long conversation waits before Ollama is asked.

    python3 bench/bench_history.py [--runs N] [--exchanges N] [--latency S]   (also run by `python3 dev.py bench`)

A conversation `--exchanges` deep (question, answer, question, ...; each replying to the one before) is stored
in the fake Discord before the bot starts, so none of it is in discord.py's message cache: the bot is "freshly
restarted". The fake answers every REST call after `--latency` seconds (a real round trip is 50-150 ms). Then
someone replies to the last answer, and the benchmark prints:
- the time from that reply reaching Discord to the chat request reaching Ollama;
- the REST calls the bot made in that time (reads of messages, and all calls);
- how many turns of the conversation the request carried, and whether every earlier fact was among them.
Targets (printed, never asserted): <= 2 REST calls and <= 0.25 s at 80 ms latency, every turn included.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_relay import TOKEN, BotCrashed, BotProcess  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord  # noqa: E402
from tests.fakes.fake_ollama import ChatScript, FakeOllama  # noqa: E402

CHANNEL = 500
TIME_TARGET_S = 0.25
CALLS_TARGET = 2
MESSAGE_READ = re.compile(r"^/channels/\d+/messages(/\d+)?$")


@dataclass
class ChainRun:
    """What one run measured."""

    seconds: float
    reads: int
    calls: int
    turns: int
    expected_turns: int
    facts_found: int
    facts: int


async def run_deep_chain(exchanges: int, latency: float, workdir: Path, label: str) -> ChainRun:
    """Store the conversation, start a fresh bot, reply to the last answer, measure until Ollama is asked."""
    fake = FakeDiscord(token=TOKEN, channels=[CHANNEL])
    ollama = FakeOllama()
    ollama.script_for = lambda body: ChatScript(tokens=["All", " noted."], token_delay=0.0)
    await fake.start()
    await ollama.start()
    previous: int | None = None
    for turn in range(exchanges):
        question = fake.seed_message(f"fact {turn}: remember the code word cw{turn}", reply_to=previous)
        answer = fake.seed_message(f"Noted: cw{turn}.", author_id=fake.bot_id, reply_to=int(question["id"]))
        previous = int(answer["id"])
    bot = BotProcess(fake, ollama, workdir, f"bot-chain-{label}.log", "")
    try:
        await bot.start()
        fake.rest_latency = latency
        sent_at = time.monotonic()
        await fake.send_user_message("list every code word", reply_to=previous)
        deadline = sent_at + 30.0
        while not ollama.chat_requests and time.monotonic() < deadline:
            if not bot.alive():
                raise BotCrashed("the bot process exited mid-run", bot.log_tail())
            await asyncio.sleep(0.002)
        requests = ollama.chat_requests
        if not requests:
            raise BotCrashed("Ollama was never asked", bot.log_tail())
        asked_at = requests[0].at
        before = [c for c in fake.calls if sent_at <= c.at <= asked_at]
        messages = [m for m in requests[0].json.get("messages", []) if m.get("role") in ("user", "assistant")]
        text = "\n".join(str(m.get("content", "")) for m in messages)
        return ChainRun(
            seconds=asked_at - sent_at,
            reads=sum(1 for c in before if c.method == "GET" and MESSAGE_READ.match(c.path)),
            calls=len(before),
            turns=len(messages),
            expected_turns=2 * exchanges + 1,
            facts_found=sum(1 for turn in range(exchanges) if f"cw{turn}" in text),
            facts=exchanges,
        )
    finally:
        await bot.stop()
        await ollama.close()
        await fake.close()


def report(runs: list[ChainRun], exchanges: int, latency: float) -> list[str]:
    """The printed figures (medians across runs) and their verdicts."""
    seconds = statistics.median(r.seconds for r in runs)
    reads = statistics.median(r.reads for r in runs)
    calls = statistics.median(r.calls for r in runs)
    turns = min(r.turns for r in runs)
    facts = min(r.facts_found for r in runs)
    complete = all(r.turns == r.expected_turns and r.facts_found == r.facts for r in runs)
    ok = "PASS" if calls <= CALLS_TARGET and seconds <= TIME_TARGET_S and complete else "MISS"
    return [
        f"deep chain: {exchanges} exchanges stored before start, cold cache, {latency * 1000:.0f} ms per REST call, "
        f"{len(runs)} run(s)",
        f"  reply -> Ollama request: median {seconds * 1000:.0f} ms (runs: "
        + ", ".join(f"{r.seconds * 1000:.0f}" for r in runs)
        + ")",
        f"  REST calls before the request: median {calls:g} (message reads {reads:g})",
        f"  turns in the request: {turns} of {runs[0].expected_turns}; facts remembered: {facts} of {exchanges}",
        f"  verdict: {ok} (targets: <= {CALLS_TARGET} REST calls, <= {TIME_TARGET_S * 1000:.0f} ms, every turn)",
    ]


async def main_async(runs: int, exchanges: int, latency: float, workdir: Path) -> int:
    results = [await run_deep_chain(exchanges, latency, workdir, f"run{n}") for n in range(1, runs + 1)]
    for line in report(results, exchanges, latency):
        print(line)
    complete = all(r.turns == r.expected_turns and r.facts_found == r.facts for r in results)
    return 0 if complete else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark building a deep reply-chain history.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--exchanges", type=int, default=12)
    parser.add_argument("--latency", type=float, default=0.08, help="seconds the fake Discord holds each REST answer")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.exchanges < 1 or args.latency < 0:
        parser.error("--runs and --exchanges must be >= 1, --latency >= 0")
    return args


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="ollacord-bench-chain-") as workdir:
        try:
            code = asyncio.run(main_async(args.runs, args.exchanges, args.latency, Path(workdir)))
        except BotCrashed as exc:
            print(f"the bot failed: {exc}\n{exc.log_tail}", file=sys.stderr)
            code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
