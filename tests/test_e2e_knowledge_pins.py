"""End to end: pinned messages as team knowledge, kept current as pins change, and knowledge across a restart."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Harness
from tests.knowledge_helpers import (
    RUNBOOK,
    add_file,
    ask,
    eventually,
    knowledge,
    knowledge_base,
    start,
)

FREEZE = "Decision: when does the release freeze start? The release freeze starts on March 3rd."
LUNCH = "Decision: where is the team lunch? The team lunch is at the noodle bar on Fridays."


async def pinned_in_knowledge(harness: Harness, message_id: int, present: bool) -> None:
    """Wait until the bot has (or no longer has) that pinned message in some knowledge scope."""
    kb = knowledge_base(harness)

    async def check() -> bool:
        documents = await kb.library.store.knowledge_documents(guild_id=harness.discord.guild_id)
        there = any(d.pin_message_id == message_id for d in documents)
        return there == present and kb.idle

    await eventually(check)


async def test_a_pinned_message_is_added_kept_current_and_dropped_when_unpinned(harness: Harness) -> None:
    await start(harness)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))
    added = await knowledge(harness, "add-pins")
    assert "1 pinned message of <#500> is now in this channel's knowledge" in added

    sent, reply = await ask(harness, "when does the release freeze start?")
    assert "March 3rd" in sent
    link = f"https://discord.com/channels/400/500/{freeze['id']}"
    assert reply.splitlines()[-1] == f"-# 📚 Sources: [1] [pinned message by Alice](<{link}>)"

    # Pinned later: picked up from the pins update, without any command.
    lunch = await harness.discord.send_user_message(LUNCH, author_id=201)
    await harness.discord.pin_message(int(lunch["id"]))
    await pinned_in_knowledge(harness, int(lunch["id"]), present=True)
    assert "noodle bar" in (await ask(harness, "where is the team lunch?"))[0]

    await harness.discord.unpin_message(int(freeze["id"]))
    await pinned_in_knowledge(harness, int(freeze["id"]), present=False)
    sent, reply = await ask(harness, "when does the release freeze start?")
    assert "March 3rd" not in sent and "Sources" not in reply
    listed = await knowledge(harness, "list")
    assert "📌 pinned messages of <#500> · 1 message" in listed


async def test_pins_of_a_channel_can_go_to_the_server_and_be_removed(harness: Harness) -> None:
    await start(harness)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))
    assert "the server's knowledge" in await knowledge(harness, "add-pins", {"scope": "server"})
    assert "March 3rd" in (await ask(harness, "when does the release freeze start?", channel_id=501))[0]

    removed = await knowledge(harness, "remove", {"document": "pins:guild:400:500"})
    assert "no longer in the server's knowledge (1 removed)" in removed
    assert "March 3rd" not in (await ask(harness, "when does the release freeze start?", channel_id=501))[0]
    # No longer tracked: a new pin in that channel adds nothing.
    lunch = await harness.discord.send_user_message(LUNCH)
    await harness.discord.pin_message(int(lunch["id"]))
    assert "noodle bar" not in (await ask(harness, "where is the team lunch?", channel_id=501))[0]


async def test_without_read_message_history_pins_are_refused_and_never_erased(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await start(harness)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))
    await knowledge(harness, "add-pins")
    await harness.discord.deny_permissions(500, "read_message_history")
    # Discord now lists no pins at all; a pins update must not be taken for "everything was unpinned".
    lunch = await harness.discord.send_user_message(LUNCH)
    with caplog.at_level(logging.WARNING, logger="bot.cogs.knowledge_commands"):
        await harness.discord.pin_message(int(lunch["id"]))
        await harness.discord.wait_for(lambda: "can't read the pins of channel" in caplog.text)
    refused = await knowledge(harness, "add-pins")
    assert "Read Message History" in refused
    documents = await knowledge_base(harness).library.store.knowledge_documents(guild_id=400)
    assert [d.pin_message_id for d in documents] == [int(freeze["id"])]


async def test_a_restart_keeps_documents_pins_and_their_tracking(harness: Harness) -> None:
    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK)
    freeze = await harness.discord.send_user_message(FREEZE)
    await harness.discord.pin_message(int(freeze["id"]))
    await knowledge(harness, "add-pins")
    await harness.stop_all()

    await harness.start_bot()
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent and "`runbook.md` ›" in reply
    assert "March 3rd" in (await ask(harness, "when does the release freeze start?"))[0]
    listed = await knowledge(harness, "list")
    assert "`runbook.md`" in listed and "📌 pinned messages of <#500> · 1 message" in listed
    # Still tracked after the restart.
    await harness.discord.unpin_message(int(freeze["id"]))
    await pinned_in_knowledge(harness, int(freeze["id"]), present=False)
    assert "March 3rd" not in (await ask(harness, "when does the release freeze start?"))[0]
