"""Team-knowledge benchmark: search time, the bot's memory with a large index, and indexing throughput.

    .venv/bin/python bench/bench_knowledge.py [--chunks 20000] [--quick] [--keep-logs]

1. Search: a ScopeIndex of N chunks x 768 dimensions (random unit vectors, as stored), searched the way
   a question searches it (one matrix-vector product, top 4 above the threshold), directly and through
   asyncio.to_thread as the bot does; p50/p95/p99 over many queries. Target: p95 <= 30 ms at 20,000.
2. The real bot in a child process (bench/_bot_process.py) against the fakes, with N chunks already in
   one channel's knowledge in its database: its RSS once ready, then after the first question there
   (which loads the index), and how long questions take from the prompt to Ollama's /api/chat request
   in that channel (first one cold, then warm) and in a channel without knowledge.
3. Indexing throughput: `/knowledge add` of a large Markdown file through the bot, against the fake
   Ollama's /api/embed (hashed bags of words, computed in this process), from the command to the final
   "Added" message: chunks/s and KB/s of text.

Figures are printed, never asserted: the exit code is 1 only if the bot crashed or an answer lacked
its excerpt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_relay import TOKEN, BotCrashed, BotProcess  # noqa: E402

from bot.channel_settings.store import DATABASE_FILENAME, Scope, SqliteSettingsStore  # noqa: E402
from bot.knowledge.index import ScopeIndex, VectorRows, normalize_rows, vector_bytes  # noqa: E402
from bot.knowledge.records import ChunkRecord, DocumentKind, DocumentRecord, KnowledgeTarget  # noqa: E402
from bot.knowledge.sqlite_store import SqliteKnowledgeStore  # noqa: E402
from tests.fakes.fake_discord import FakeDiscord  # noqa: E402
from tests.fakes.fake_ollama import EMBED_DIMENSIONS, EMBEDDING_MODEL, ChatScript, FakeOllama  # noqa: E402

MODEL = "nomic-embed-text"
KNOWLEDGE_CHANNEL = 500
PLAIN_CHANNEL = 501
INDEXING_CHANNEL = 502
SEARCH_TARGET_MS = 30.0
# The fact the benchmark questions look for, planted in one chunk of the big index.
FACT = "The rollback code word for the payments service is PAPAYA-42."
QUESTION = "what is the rollback code word for the payments service?"
CHUNKS_PER_DOCUMENT = 1000
FILLER = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt. " * 11


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- 1. search


def random_index(chunks: int, dimensions: int, seed: int = 7) -> ScopeIndex:
    rng = np.random.default_rng(seed)
    matrix = normalize_rows(rng.standard_normal((chunks, dimensions), dtype=np.float32))
    target = KnowledgeTarget(Scope.channel(KNOWLEDGE_CHANNEL), 400)
    document = _document("bench", target, chunks)
    rows = VectorRows(
        documents=[document],
        doc_rows=np.zeros(chunks, dtype=np.int32),
        positions=np.arange(chunks, dtype=np.int32),
        matrix=matrix,
    )
    return ScopeIndex(MODEL, rows)


async def bench_search(chunks: int, queries: int) -> dict[str, float]:
    index = random_index(chunks, EMBED_DIMENSIONS)
    rng = np.random.default_rng(11)
    vectors = normalize_rows(rng.standard_normal((queries, EMBED_DIMENSIONS), dtype=np.float32))
    for vector in vectors[:10]:  # warm up BLAS and the caches
        index.search(vector, limit=4, min_score=0.5)
    direct, threaded = [], []
    for vector in vectors:
        started = time.perf_counter()
        index.search(vector, limit=4, min_score=0.5)
        direct.append((time.perf_counter() - started) * 1000)
    for vector in vectors:
        started = time.perf_counter()
        await asyncio.to_thread(index.search, vector, limit=4, min_score=0.5)
        threaded.append((time.perf_counter() - started) * 1000)
    return {
        "matrix_mb": index.nbytes / 2**20,
        **{f"direct_p{int(q * 100)}": percentile(direct, q) for q in (0.5, 0.95, 0.99)},
        **{f"thread_p{int(q * 100)}": percentile(threaded, q) for q in (0.5, 0.95, 0.99)},
    }


# --------------------------------------------------------------------------- 2. a database with N chunks


def _document(document_id: str, target: KnowledgeTarget, chunks: int) -> DocumentRecord:
    return DocumentRecord(
        document_id=document_id,
        target=target,
        kind=DocumentKind.FILE,
        name=f"{document_id}.md",
        embed_model=MODEL,
        dimensions=EMBED_DIMENSIONS,
        chunk_count=chunks,
        chars=chunks * len(FILLER),
        content_hash=uuid.uuid4().hex,
        added_at=datetime.now(UTC),
        added_by=200,
    )


async def populate(data_dir: Path, chunks: int) -> None:
    """N chunks with random vectors in channel 500's knowledge, one of them the planted fact (real embedding)."""
    from tests.fakes.fake_ollama import hashed_embedding

    database = await SqliteSettingsStore.open(data_dir / DATABASE_FILENAME)
    store = SqliteKnowledgeStore(database)
    target = KnowledgeTarget(Scope.channel(KNOWLEDGE_CHANNEL), 400)
    rng = np.random.default_rng(3)
    try:
        made = 0
        number = 0
        while made < chunks:
            count = min(CHUNKS_PER_DOCUMENT, chunks - made)
            document = _document(f"handbook-{number:03d}", target, count)
            vectors = normalize_rows(rng.standard_normal((count, EMBED_DIMENSIONS), dtype=np.float32))
            records = []
            for position in range(count):
                text, vector = f"Part {made + position}. {FILLER}", vectors[position]
                if made + position == chunks // 2:
                    text = FACT
                    vector = normalize_rows([hashed_embedding(f"{MODEL}:latest", f"{document.name}\n{FACT}")])[0]
                records.append(ChunkRecord(document.document_id, position, None, text, vector_bytes(vector)))
            await store.save_knowledge_document(document, records)
            made += count
            number += 1
    finally:
        await database.close()


# --------------------------------------------------------------------------- 2 and 3 through the bot


async def ask(fake: FakeDiscord, ollama: FakeOllama, channel_id: int) -> tuple[float, str]:
    """Mention the bot; (ms from the prompt to the /api/chat request, the last user message Ollama got)."""
    before = len(ollama.chat_requests)
    sent_at = time.monotonic()
    await fake.send_user_message(QUESTION, mention_bot=True, channel_id=channel_id)
    requests = await ollama.wait_for_requests(before + 1, timeout=60)
    request = requests[before]
    await asyncio.wait_for(request.finished.wait(), 30)
    return (request.at - sent_at) * 1000, str(request.json["messages"][-1]["content"])


def big_markdown(chunks: int) -> bytes:
    """A file that chunks into about `chunks` chunks (one section each)."""
    sections = [f"## Section {i}\n\nSection {i} says: {FILLER}" for i in range(chunks)]
    return "\n\n".join(sections).encode()


async def bench_bot(args: argparse.Namespace, workdir: Path) -> dict[str, float | str]:
    data_dir = workdir / "data"
    started = time.perf_counter()
    await populate(data_dir, args.chunks)
    populate_s = time.perf_counter() - started
    fake = FakeDiscord(token=TOKEN, channels=(KNOWLEDGE_CHANNEL, PLAIN_CHANNEL, INDEXING_CHANNEL))
    await fake.start()
    ollama = FakeOllama()
    await ollama.start()
    ollama.add_model(replace(EMBEDDING_MODEL))
    ollama.default_script = ChatScript(tokens=["ok"])
    bot = BotProcess(fake, ollama, workdir, "bot-knowledge.log", "")
    figures: dict[str, float | str] = {"populate_s": populate_s}
    try:
        await bot.start()
        figures["rss_ready_mb"] = bot.rss_mb()[0]
        plain = [(await ask(fake, ollama, PLAIN_CHANNEL))[0] for _ in range(args.questions)]
        cold, prompt = await ask(fake, ollama, KNOWLEDGE_CHANNEL)
        warm_runs = [await ask(fake, ollama, KNOWLEDGE_CHANNEL) for _ in range(args.questions)]
        figures["rss_loaded_mb"], figures["rss_peak_mb"] = bot.rss_mb()
        figures["found"] = "yes" if FACT in prompt and all(FACT in p for _, p in warm_runs) else "NO"
        figures["plain_ms"] = statistics.median(plain)
        figures["cold_ms"] = cold
        figures["warm_ms"] = statistics.median(ms for ms, _ in warm_runs)
        figures["warm_max_ms"] = max(ms for ms, _ in warm_runs)

        document = big_markdown(args.index_chunks)
        token = await fake.send_slash_command_with_files(
            "knowledge", None, {"file": ("big.md", document, None)}, subcommand="add", channel_id=INDEXING_CHANNEL
        )
        began = time.monotonic()

        def added() -> bool:
            content = (fake.original_message(token) or {}).get("content", "")
            return content.startswith(("📚", "⚠️", "I can't")) or "KNOWLEDGE_" in content

        await fake.wait_for(added, timeout=600)
        elapsed = time.monotonic() - began
        final = (fake.original_message(token) or {})["content"]
        figures["indexing_result"] = final.split(":")[0]
        figures["indexing_chunks"] = args.index_chunks
        figures["indexing_s"] = elapsed
        figures["indexing_kb"] = len(document) / 1024
        figures["rss_after_indexing_mb"], figures["rss_peak_mb"] = bot.rss_mb()
        if not bot.alive():
            raise BotCrashed("the bot exited during the benchmark", bot.log_tail())
    finally:
        await bot.stop()
        await ollama.close()
        await fake.close()
    return figures


# --------------------------------------------------------------------------- report


def report(args: argparse.Namespace, search: dict[str, float], bot: dict[str, float | str]) -> None:
    print(f"ollacord knowledge benchmark · Python {platform.python_version()} · numpy {np.__version__}")
    print(f"\n1. search, {args.chunks:,} chunks x {EMBED_DIMENSIONS} dims ({search['matrix_mb']:.1f} MB of vectors):")
    print(
        f"   direct      p50 {search['direct_p50']:.2f} ms · p95 {search['direct_p95']:.2f} ms · "
        f"p99 {search['direct_p99']:.2f} ms"
    )
    print(
        f"   to_thread   p50 {search['thread_p50']:.2f} ms · p95 {search['thread_p95']:.2f} ms · "
        f"p99 {search['thread_p99']:.2f} ms   (target p95 <= {SEARCH_TARGET_MS:.0f} ms)"
    )
    filled = f"database filled in {bot['populate_s']:.1f} s"
    print(f"\n2. the bot with {args.chunks:,} chunks in one channel's knowledge ({filled}):")
    print(
        f"   RSS ready {bot['rss_ready_mb']:.1f} MB · after the index loaded {bot['rss_loaded_mb']:.1f} MB "
        f"(+{float(bot['rss_loaded_mb']) - float(bot['rss_ready_mb']):.1f} MB)"
    )
    print(
        f"   prompt -> /api/chat: no knowledge {bot['plain_ms']:.1f} ms · first question there (loads the index) "
        f"{bot['cold_ms']:.1f} ms · later ones {bot['warm_ms']:.1f} ms (max {bot['warm_max_ms']:.1f} ms)"
    )
    print(f"   the planted fact reached every prompt: {bot['found']}")
    chunks, seconds = float(bot["indexing_chunks"]), float(bot["indexing_s"])
    print(
        f"\n3. indexing {int(chunks):,} chunks ({float(bot['indexing_kb']):.0f} KB) through /knowledge add: "
        f"{seconds:.1f} s = {chunks / seconds:.0f} chunks/s, {float(bot['indexing_kb']) / seconds:.0f} KB/s "
        f"({bot['indexing_result']})"
    )
    print(f"   RSS after indexing {bot['rss_after_indexing_mb']:.1f} MB · peak {bot['rss_peak_mb']:.1f} MB")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark ollacord's team knowledge against the fakes.")
    parser.add_argument("--chunks", type=int, default=None, help="chunks in the searched index (default 20000)")
    parser.add_argument("--index-chunks", type=int, default=None, help="chunks indexed through /knowledge add")
    parser.add_argument("--queries", type=int, default=None, help="searches timed in part 1 (default 1000)")
    parser.add_argument("--questions", type=int, default=None, help="questions asked per channel (default 10)")
    parser.add_argument("--quick", action="store_true", help="a small run: 2,000 chunks, 100 indexed")
    parser.add_argument("--keep-logs", action="store_true", help="keep the bot's log (path is printed)")
    args = parser.parse_args(argv)
    args.chunks = args.chunks or (2000 if args.quick else 20_000)
    args.index_chunks = args.index_chunks or (100 if args.quick else 2000)
    args.queries = args.queries or (100 if args.quick else 1000)
    args.questions = args.questions or (3 if args.quick else 10)
    return args


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    search = await bench_search(args.chunks, args.queries)
    try:
        bot = await bench_bot(args, workdir)
    except BotCrashed as exc:
        print(f"the bot crashed: {exc}", file=sys.stderr)
        return 1
    report(args, search, bot)
    return 0 if bot["found"] == "yes" else 1


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ollacord-bench-knowledge-"))
    try:
        code = asyncio.run(main_async(args, workdir))
    finally:
        if args.keep_logs:
            print(f"logs kept in {workdir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    sys.exit(code)


if __name__ == "__main__":
    main()
