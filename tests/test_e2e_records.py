"""End to end: every answer is a record that outlives the process (Regenerate, /ask replies, restarts, crashes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.answers.records import INTERRUPTED, AnswerKind, AnswerRecord, AnswerState
from bot.answers.sqlite_store import SqliteAnswerStore
from bot.channel_settings.store import DATABASE_FILENAME, StoreError
from bot.cogs.answer_records import AnswerRecords
from bot.conversation import join_split_answer
from bot.streaming import notes
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import TOKEN, Harness, RunningBot
from tests.fakes.fake_ollama import ChatScript

ROOT = Path(__file__).resolve().parents[1]
CUT_SHORT = notes.note(notes.INTERRUPTED)


def components_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row.get("components", [])]


def long_tokens(prefix: str, count: int) -> list[str]:
    return [f" {prefix}{i}" for i in range(count)]  # ~8 characters each: 300 of them need two messages


async def ask(harness: Harness, prompt: str) -> list[dict[str, Any]]:
    """Run /ask to the end; the answer's messages (original response first)."""
    token = await harness.discord.send_slash_command("ask", {"prompt": prompt})

    def finished() -> bool:
        parts = answer_parts(harness, token)
        return bool(parts) and harness.idle() and any("regenerate" in c for c in components_of(parts[-1]))

    await harness.discord.wait_for(finished, timeout=10)
    return answer_parts(harness, token)


def answer_parts(harness: Harness, token: str) -> list[dict[str, Any]]:
    original = harness.discord.original_message(token)
    return ([original] if original is not None else []) + harness.discord.followup_messages(token)


def interaction_key(message: dict[str, Any]) -> int:
    (custom_id,) = components_of(message)
    return int(custom_id.rsplit(":", 1)[1])


async def record_of(running: RunningBot, key: int) -> AnswerRecord:
    record = await running.services.answers.find_by_key(key)
    assert record is not None, f"no record for answer {key}"
    return record


async def finished_record(running: RunningBot, key: int, timeout: float = 10.0) -> AnswerRecord:
    """The record of answer `key` once it is finished (its final save follows the final Discord edit)."""
    async with asyncio.timeout(timeout):
        while (record := await running.services.answers.find_by_key(key)) is None or record.streaming:
            await asyncio.sleep(0.005)
    return record


# -- Regenerate and /ask --------------------------------------------------------------------------------------


async def test_regenerate_replaces_every_part_of_a_multi_part_ask_answer(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=long_tokens("first", 300)), ChatScript(tokens=["Short", " now."])])
    await harness.start_bot()
    parts = await ask(harness, "write a lot")
    assert len(parts) == 2
    old_ids = [int(p["id"]) for p in parts]
    key = interaction_key(parts[-1])

    await harness.discord.click_button(old_ids[-1], f"ollacord:regenerate:{key}")
    await harness.discord.wait_for(lambda: len(harness.ollama.chat_requests) == 2)
    await harness.discord.wait_for(
        lambda: harness.idle() and harness.discord.messages.get(old_ids[0], {}).get("content") == "Short now."
    )

    # No stale part is left: the old first part now holds the new answer, the old second part is gone.
    assert [m["id"] for m in harness.discord.bot_messages(500)] == [str(old_ids[0])]
    assert components_of(harness.discord.messages[old_ids[0]]) == [f"ollacord:regenerate:{key}"]
    assert harness.ollama.chat_requests[1].json["messages"] == [{"role": "user", "content": "Alice: write a lot"}]


async def test_reply_to_an_ask_answer_after_a_restart_continues_with_its_question(harness: Harness) -> None:
    first_answer = long_tokens("blue", 300)
    harness.ollama.scripts.extend([ChatScript(tokens=first_answer), ChatScript(tokens=["Rayleigh scattering."])])
    await harness.start_bot()
    parts = await ask(harness, "sky colour?")
    assert len(parts) == 2
    await harness.stop_all()

    await harness.start_bot()
    # A reply to the answer's second part: a follow-up that replies to nothing, so only the record links it.
    follow = await harness.discord.send_user_message("why?", reply_to=int(parts[-1]["id"]))
    assert await harness.wait_for_reply(int(follow["id"])) == ["Rayleigh scattering."]

    assert harness.ollama.chat_requests[1].json["messages"] == [
        {"role": "user", "content": "Alice: sky colour?"},
        {"role": "assistant", "content": "".join(first_answer).strip()},  # both parts
        {"role": "user", "content": "Alice: why?"},
    ]


async def test_regenerate_an_ask_answer_after_a_restart(harness: Harness) -> None:
    harness.ollama.scripts.extend([ChatScript(tokens=["Blue."]), ChatScript(tokens=["Blue, mostly."])])
    await harness.start_bot()
    (answer,) = await ask(harness, "sky colour?")
    key = interaction_key(answer)
    await harness.stop_all()

    running = await harness.start_bot()
    await harness.discord.click_button(int(answer["id"]), f"ollacord:regenerate:{key}")
    await harness.discord.wait_for(
        lambda: harness.idle() and harness.discord.messages[int(answer["id"])]["content"] == "Blue, mostly."
    )

    assert harness.ollama.chat_requests[1].json["messages"] == [{"role": "user", "content": "Alice: sky colour?"}]
    record = await record_of(running, key)
    assert (record.kind, record.generation, record.message_ids) == (AnswerKind.ASK, 1, (int(answer["id"]),))
    assert record.prompt is not None and record.prompt.text == "sky colour?"


async def test_every_answer_gets_a_record(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Fine", " thanks."])
    running = await harness.start_bot(harness.settings(ALLOW_DMS="true"))
    token = await harness.discord.send_slash_command("set", {"option": "temperature", "value": "0.3"})
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))

    mention = await harness.discord.send_user_message("how are you?", mention_bot=True)
    await harness.wait_for_reply(int(mention["id"]))
    dm = await harness.discord.send_user_message("and you?", guild=False, author_id=201)
    await harness.wait_for_reply(int(dm["id"]))
    (asked,) = await ask(harness, "and now?")

    by_mention = await record_of(running, int(mention["id"]))
    assert by_mention.kind is AnswerKind.MESSAGE and by_mention.prompt is None
    assert (by_mention.guild_id, by_mention.channel_id, by_mention.requester_id) == (400, 500, 200)
    assert by_mention.message_ids == (int(harness.replies_to(int(mention["id"]))[0]["id"]),)
    assert (by_mention.model, by_mention.settings["temperature"]) == ("llama3.2", 0.3)
    assert (by_mention.state, by_mention.outcome, by_mention.done_reason) == (AnswerState.FINISHED, "done", "stop")
    assert by_mention.eval_count == 2 and (by_mention.prompt_eval_count or 0) > 0
    assert by_mention.finished_at is not None and by_mention.finished_at >= by_mention.created_at

    by_dm = await record_of(running, int(dm["id"]))
    assert (by_dm.guild_id, by_dm.channel_id, by_dm.requester_id) == (None, 9201, 201)
    by_ask = await record_of(running, interaction_key(asked))
    assert by_ask.kind is AnswerKind.ASK and by_ask.message_ids == (int(asked["id"]),)
    assert by_ask.prompt is not None and (by_ask.prompt.author_name, by_ask.prompt.text) == ("Alice", "and now?")


async def test_a_failing_record_store_never_breaks_an_answer(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: SqliteAnswerStore, record: AnswerRecord) -> None:
        raise StoreError("settings database: could not save an answer record (disk I/O error)")

    monkeypatch.setattr(SqliteAnswerStore, "save_answer", broken)
    harness.ollama.scripts.append(ChatScript(tokens=long_tokens("w", 300)))
    await harness.start_bot()
    with caplog.at_level(logging.WARNING, logger="bot.answers.book"):
        prompt = await harness.discord.send_user_message("talk", mention_bot=True)
        parts = await harness.wait_for_reply(int(prompt["id"]))

    assert join_split_answer(parts) == "".join(long_tokens("w", 300))
    assert any("could not save answer record" in r.getMessage() for r in caplog.records)


# -- a process that dies mid-answer ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bot_process(harness: Harness) -> AsyncIterator[asyncio.subprocess.Process]:
    """The real entry point in a child process on the harness's DATA_DIR, ready to answer."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DISCORD_TOKEN": TOKEN,
        "OLLAMA_HOST": harness.ollama.url,
        "DATA_DIR": str(harness.data_dir),
        "EDIT_INTERVAL": "0.2",
        "LOG_LEVEL": "INFO",
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "fakes" / "run_bot_against_fakes.py"),
        harness.discord.base_url,
        harness.discord.gateway_url,
        "run",
        cwd=harness.data_dir.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        # Ready to answer once it has the guild: the gateway delivers GUILD_CREATE before any later message.
        await asyncio.wait_for(harness.discord.identified.wait(), 30)
        yield child
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


def recorded_message_ids(harness: Harness, key: int) -> list[int]:
    """The message ids the child has committed for answer `key` (read-only, beside the running process)."""
    path = harness.data_dir / DATABASE_FILENAME
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT message_id FROM answer_messages JOIN answers USING (answer_id) WHERE answer_key = ? "
            "AND state = 'streaming' ORDER BY position",
            (key,),
        ).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()
    return [row[0] for row in rows]


async def kill_mid_answer(harness: Harness, tokens: list[str] | None = None, parts: int = 2) -> tuple[int, list[int]]:
    """A bot process streaming an answer in `parts` messages is killed (SIGKILL); its prompt id and the parts left."""
    # The model goes quiet after `tokens`, so the answer is still streaming, in exactly `parts` messages.
    tokens = tokens or long_tokens("word", 300)
    # All of it in one write, so the first publish already shows all of it.
    harness.ollama.scripts.append(ChatScript(tokens=tokens, lines_per_write=len(tokens), stall_after=len(tokens)))
    harness.data_dir.mkdir(parents=True, exist_ok=True)
    async with bot_process(harness) as child:
        prompt = await harness.discord.send_user_message("tell me everything", mention_bot=True)
        key = int(prompt["id"])

        def all_parts_recorded() -> bool:
            shown = harness.replies_to(key)
            return len(shown) == parts and recorded_message_ids(harness, key) == [int(p["id"]) for p in shown]

        await harness.discord.wait_for(all_parts_recorded, timeout=15)
        child.kill()
        await child.wait()
    part_ids = [int(p["id"]) for p in harness.replies_to(key)]
    last = harness.discord.messages[part_ids[-1]]
    assert last["content"].endswith(STREAMING_MARKER) and components_of(last) == [f"ollacord:stop:{key}"]
    return key, part_ids


async def test_an_answer_left_streaming_by_a_killed_process_is_finished_at_the_next_start(harness: Harness) -> None:
    key, (first_id, last_id) = await kill_mid_answer(harness)
    await harness.discord.delete_message(first_id)  # gone meanwhile: skipped

    running = await harness.start_bot()
    await harness.discord.wait_for(lambda: harness.discord.messages[last_id]["content"].endswith(CUT_SHORT))

    last = harness.discord.messages[last_id]
    assert components_of(last) == [f"ollacord:regenerate:{key}"]  # no Stop button; Regenerate instead
    assert STREAMING_MARKER not in last["content"]
    before_note = last["content"].removesuffix("\n" + CUT_SHORT)
    assert before_note == harness.discord.message_history[last_id][-2].removesuffix(STREAMING_MARKER)
    assert not any(m["content"].endswith(STREAMING_MARKER) for m in harness.discord.bot_messages())
    assert harness.discord.calls_to("GET", rf"/messages/{first_id}$")[-1].status == 404
    record = await finished_record(running, key)
    assert (record.outcome, record.message_ids) == (INTERRUPTED, (last_id,))
    assert await running.services.answers.left_behind() == []  # finished once: the next start leaves it alone


async def test_regenerate_replaces_every_part_of_an_answer_cut_short_by_a_crash(harness: Harness) -> None:
    key, part_ids = await kill_mid_answer(harness)
    harness.ollama.scripts.append(ChatScript(tokens=["All", " of", " it."]))
    await harness.start_bot()
    await harness.discord.wait_for(lambda: harness.discord.messages[part_ids[-1]]["content"].endswith(CUT_SHORT))

    await harness.discord.click_button(part_ids[-1], f"ollacord:regenerate:{key}")
    assert await harness.wait_for_reply(key, done=lambda parts: parts[0]["content"] == "All of it.") == ["All of it."]
    assert [int(p["id"]) for p in harness.replies_to(key)] == part_ids[:1]
    assert part_ids[1] not in harness.discord.messages
    assert harness.ollama.chat_requests[-1].json["messages"] == [
        {"role": "user", "content": "Alice: tell me everything"}
    ]


async def test_a_note_that_does_not_fit_the_last_part_comes_as_its_own_message(harness: Harness) -> None:
    key, (part_id,) = await kill_mid_answer(harness, ["x" * 1990], parts=1)
    harness.ollama.scripts.append(ChatScript(tokens=["Complete."]))
    running = await harness.start_bot()
    await harness.discord.wait_for(lambda: len(harness.replies_to(key)) == 2)

    part, note = harness.replies_to(key)
    assert (part["content"], components_of(part)) == ("x" * 1990, [])
    assert (note["content"], components_of(note)) == (CUT_SHORT, [f"ollacord:regenerate:{key}"])
    assert (await finished_record(running, key)).message_ids == (part_id, int(note["id"]))

    # Regenerate replaces both, the note included.
    await harness.discord.click_button(int(note["id"]), f"ollacord:regenerate:{key}")
    assert await harness.wait_for_reply(key, done=lambda shown: shown[0]["content"] == "Complete.") == ["Complete."]


async def test_finishing_old_answers_does_not_delay_new_questions(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discord being slow to let the bot fix old answers (here: never) must not hold up new ones."""
    running = await harness.start_bot()
    left = running.services.answers.start(
        key=1, kind=AnswerKind.MESSAGE, guild_id=400, channel_id=500, requester_id=200, model="m", settings={}
    )
    assert await left.saved()
    await harness.stop_all()
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_close_out(self: AnswerRecords, record: AnswerRecord) -> list[int]:
        entered.set()
        await release.wait()
        return []

    monkeypatch.setattr(AnswerRecords, "close_out", slow_close_out)
    harness.ollama.scripts.append(ChatScript(tokens=["Right", " away."]))
    running = await harness.start_bot()
    await asyncio.wait_for(entered.wait(), 10)

    prompt = await harness.discord.send_user_message("quick question", mention_bot=True)
    assert await harness.wait_for_reply(int(prompt["id"])) == ["Right away."]
    release.set()
    assert (await finished_record(running, 1)).outcome == INTERRUPTED
