"""The fake Discord's message commands, modals and dated history, against the real discord.py client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakes.fake_discord import FakeDiscord

TOKEN = "fake-token"


class Client(discord.Client):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, allowed_mentions=discord.AllowedMentions.none())
        self.tree = app_commands.CommandTree(self)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord(token=TOKEN)
    await server.start()
    server.patch_discord_py()
    yield server
    server.restore_discord_py()
    await server.close()


async def connect(client: Client) -> asyncio.Task[None]:
    await client.login(TOKEN)
    await client.tree.sync()
    task = asyncio.create_task(client.connect())
    await asyncio.wait_for(client.wait_until_ready(), 5)
    return task


async def stop(client: Client, task: asyncio.Task[None]) -> None:
    await client.close()
    await asyncio.gather(task, return_exceptions=True)


class Question(discord.ui.Modal, title="A question"):
    answer: discord.ui.TextInput[Question] = discord.ui.TextInput(label="Your question", max_length=50)

    def __init__(self, submitted: asyncio.Queue[tuple[discord.Interaction[Any], str]]) -> None:
        super().__init__()
        self.submitted = submitted

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.submitted.put((interaction, self.answer.value))


async def test_a_message_command_gets_the_selected_message_with_its_time(fake: FakeDiscord) -> None:
    when = datetime(2026, 3, 2, 14, 3, tzinfo=UTC)
    (posted,) = fake.post_history(500, [(201, "the build is red")], start=when, spacing=timedelta(minutes=1))
    client = Client()
    got: asyncio.Queue[discord.Message] = asyncio.Queue()

    async def explain(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        await interaction.response.send_message("ok", ephemeral=True)
        await got.put(message)

    client.tree.add_command(app_commands.ContextMenu(name="Explain this", callback=explain))
    task = await connect(client)
    try:
        (synced,) = fake.commands[None]
        assert (synced["name"], synced["type"], synced["description"]) == ("Explain this", 3, "")
        await fake.send_message_command("Explain this", int(posted["id"]))
        message = await asyncio.wait_for(got.get(), 5)
        assert (message.id, message.content, message.author.id) == (int(posted["id"]), "the build is red", 201)
        assert message.created_at == when
        with pytest.raises(KeyError, match="was synced"):
            await fake.send_message_command("Not synced", int(posted["id"]))
    finally:
        await stop(client, task)


async def test_a_modal_is_shown_filled_in_and_submitted(fake: FakeDiscord) -> None:
    client = Client()
    submitted: asyncio.Queue[tuple[discord.Interaction[Any], str]] = asyncio.Queue()

    @client.tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_modal(Question(submitted))

    task = await connect(client)
    try:
        token = await fake.send_slash_command("ask")
        await fake.wait_for(lambda: fake.modal_shown(token) is not None)
        modal = fake.modal_shown(token)
        assert modal is not None and modal["title"] == "A question"
        (field,) = [c["custom_id"] for row in modal["components"] for c in row["components"]]
        with pytest.raises(ValueError, match="would not submit"):
            await fake.submit_modal(token, {field: "x" * 51})  # longer than max_length
        await fake.submit_modal(token, {field: "why?"})
        interaction, value = await asyncio.wait_for(submitted.get(), 5)
        assert value == "why?" and interaction.type is discord.InteractionType.modal_submit

        # A modal can't answer a modal submission (Discord: "not available for MODAL_SUBMIT").
        with pytest.raises(discord.HTTPException) as refused:
            await interaction.response.send_modal(Question(submitted))
        assert (refused.value.status, refused.value.code) == (400, 50035)
    finally:
        await stop(client, task)


async def test_history_reads_by_date(fake: FakeDiscord) -> None:
    start = datetime.now(UTC) - timedelta(hours=5)
    fake.post_history(500, [(200, f"m{i}") for i in range(5)], start=start, spacing=timedelta(hours=1))
    client = Client()
    task = await connect(client)
    try:
        channel = client.get_channel(500)
        assert isinstance(channel, discord.TextChannel)
        recent = [m.content async for m in channel.history(after=start + timedelta(hours=2, minutes=30))]
        assert recent == ["m3", "m4"]
        newest = [m.content async for m in channel.history(limit=2, oldest_first=False)]
        assert newest == ["m4", "m3"]
    finally:
        await stop(client, task)
