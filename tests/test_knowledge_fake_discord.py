"""The fake Discord's pins and attachment options, checked against the real, unmodified discord.py client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from tests.test_fake_discord import Harness, make_client


@pytest.fixture
async def clients() -> AsyncIterator[Harness]:
    """Fake Discord servers with plain discord.py clients (not the bot)."""
    h = Harness()
    yield h
    await h.aclose()


async def test_pins_page_newest_first_through_discord_py(clients: Harness) -> None:
    fake, client = await clients.start()
    updates: list[tuple[int, object]] = []

    @client.event
    async def on_guild_channel_pins_update(channel: discord.abc.GuildChannel, last_pin: object) -> None:
        updates.append((channel.id, last_pin))

    ids = [int((await fake.send_user_message(f"fact {i}"))["id"]) for i in range(60)]
    for message_id in ids:
        await fake.pin_message(message_id)
    await fake.wait_for(lambda: len(updates) == 60)
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)

    pinned = [m async for m in channel.pins(limit=None)]
    assert [m.id for m in pinned] == ids[::-1]  # newest pin first, over two pages of 50
    assert all(m.pinned and m.pinned_at is not None for m in pinned)
    assert len(fake.calls_to("GET", r"^/channels/500/messages/pins$")) == 2
    # Each pin also posted Discord's "pinned a message" notice (type 6) referencing the message.
    notices = [m for m in fake.messages.values() if m["type"] == 6]
    assert len(notices) == 60 and notices[0]["message_reference"]["message_id"] == str(ids[0])

    await fake.unpin_message(ids[-1])
    await fake.wait_for(lambda: len(updates) == 61)
    assert updates[-1][1] is not None  # the newest remaining pin
    assert ids[-1] not in [m.id async for m in channel.pins(limit=None)]


async def test_the_bot_pins_and_unpins_and_needs_read_history_to_list(clients: Harness) -> None:
    fake, client = await clients.start()
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("pin me")
    await message.pin()
    assert [m.id async for m in channel.pins()] == [message.id]
    await fake.deny_permissions(500, "read_message_history")
    assert [m async for m in channel.pins()] == []  # Discord returns none without Read Message History
    await message.unpin()
    assert fake.pinned[500] == []


async def test_an_attachment_option_reaches_the_command_with_its_bytes(clients: Harness) -> None:
    fake = await clients.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]
    group = app_commands.Group(name="docs", description="Documents")
    got: list[tuple[str, int, bytes, str]] = []

    @group.command(name="add", description="Add a document")
    async def add(interaction: discord.Interaction, file: discord.Attachment, scope: str = "channel") -> None:
        got.append((file.filename, file.size, await file.read(), scope))
        await interaction.response.send_message("ok", ephemeral=True)

    tree.add_command(group)
    client.setup_hook = tree.sync  # type: ignore[assignment,method-assign]
    await clients.connect(client)
    token = await fake.send_slash_command_with_files(
        "docs", {"scope": "server"}, {"file": ("notes.md", b"# Notes\n", "text/markdown")}, subcommand="add"
    )
    await fake.wait_for(lambda: fake.original_message(token) is not None)
    assert got == [("notes.md", 8, b"# Notes\n", "server")]
