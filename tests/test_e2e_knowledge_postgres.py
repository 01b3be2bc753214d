"""End to end with DATABASE_URL=postgresql://…: team knowledge is kept in PostgreSQL, and a failed save is reported.

The bot runs in this process on the fakes, as in the other knowledge tests, with the test's own database
on the shared PostgreSQL (or on a server of its own, to stop it under the running bot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import Harness
from tests.knowledge_helpers import HANDBOOK, RUNBOOK, add_file, ask, knowledge, knowledge_base, start
from tests.postgres_server import PostgresServer
from tests.test_e2e_knowledge_pins import FREEZE, pinned_in_knowledge


@pytest.fixture
def own_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own, to stop and start again."""
    server = postgres_server.copy()
    server.start()
    try:
        yield server
    finally:
        server.remove()


async def stored_documents(url: str) -> list[tuple[str, int]]:
    """(name, chunks) of every document in the database, read without the bot."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT d.name, count(c.position) FROM knowledge_documents d "
            "LEFT JOIN knowledge_chunks c ON c.document_id = d.document_id GROUP BY d.name ORDER BY d.name"
        )
        return [(str(name), int(count)) for name, count in rows]
    finally:
        await conn.close()


async def test_knowledge_is_kept_in_postgresql_across_a_restart(harness: Harness, postgres_url: str) -> None:
    await start(harness, DATABASE_URL=postgres_url)
    await add_file(harness, "runbook.md", RUNBOOK)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))
    assert "1 pinned message of <#500>" in await knowledge(harness, "add-pins")
    await harness.stop_all()
    documents = await stored_documents(postgres_url)
    assert [name for name, _ in documents] == ["Alice", "runbook.md"] and all(count > 0 for _, count in documents)

    await harness.start_bot(harness.settings(DATABASE_URL=postgres_url))
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent and "`runbook.md` ›" in reply
    assert "March 3rd" in (await ask(harness, "when does the release freeze start?"))[0]
    listed = await knowledge(harness, "list")
    assert "`runbook.md`" in listed and "📌 pinned messages of <#500> · 1 message" in listed
    # The pins are still tracked after the restart.
    await harness.discord.unpin_message(int(freeze["id"]))
    await pinned_in_knowledge(harness, int(freeze["id"]), present=False)
    assert [name for name, _ in await stored_documents(postgres_url)] == ["runbook.md"]


async def test_a_file_added_while_the_database_is_down_is_reported_and_nothing_is_kept(
    harness: Harness, own_server: PostgresServer
) -> None:
    url = own_server.url(own_server.new_database())
    await start(harness, DATABASE_URL=url)
    await add_file(harness, "runbook.md", RUNBOOK)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))

    await asyncio.to_thread(own_server.stop, "fast")
    answer = await add_file(harness, "handbook.txt", HANDBOOK)
    assert answer.startswith("❌ Couldn't add `handbook.txt`") and "nothing was added" in answer
    pins = await knowledge(harness, "add-pins")
    assert pins.startswith("❌ Couldn't add the pinned messages") and "/knowledge add-pins" in pins
    await asyncio.to_thread(own_server.start)

    assert await stored_documents(url) == [("runbook.md", 2)]
    listed = await knowledge(harness, "list")
    assert "`runbook.md`" in listed and "handbook.txt" not in listed and "pinned messages" not in listed
    # Once the database is back, the same commands work.
    assert "handbook.txt" in await add_file(harness, "handbook.txt", HANDBOOK)
    assert "1 pinned message of <#500>" in await knowledge(harness, "add-pins")
    assert "TANGERINE-7" in (await ask(harness, "what is the office wifi password?"))[0]
    assert knowledge_base(harness).idle
