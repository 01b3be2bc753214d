"""The fake Discord's error behaviours (token expiry, injected errors, archived threads) against real discord.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from tests.test_fake_discord import Harness, make_client


@pytest.fixture
async def fakes() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.aclose()


async def test_interaction_token_expires_on_every_webhook_route(fakes: Harness) -> None:
    fake = await fakes.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]
    seen: list[discord.Interaction] = []

    @tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("first")
        await interaction.followup.send("a followup")
        seen.append(interaction)

    client.setup_hook = tree.sync  # type: ignore[assignment,method-assign]
    await fakes.connect(client)
    token = await fake.send_slash_command("ask")
    await fake.wait_for(lambda: bool(seen))
    interaction = seen[0]
    original = await interaction.original_response()
    followup_id = fake.followup_messages(token)[0]["id"]

    fake.interaction_token_lifetime = 0.0
    attempts = [
        interaction.edit_original_response(content="late"),
        interaction.followup.send("late followup"),
        interaction.followup.edit_message(int(followup_id), content="late edit"),
        interaction.followup.fetch_message(int(followup_id)),
        interaction.delete_original_response(),
    ]
    for attempt in attempts:
        with pytest.raises(discord.HTTPException) as refused:
            await attempt
        assert refused.value.status == 401 and refused.value.code == 50027
    webhook_calls = [c for c in fake.interaction_responses(token) if c.path.startswith("/webhooks/")]
    assert [c.status for c in webhook_calls[-5:]] == [401] * 5

    # The same (non-ephemeral) message stays editable through the channel route with the bot token.
    channel = client.get_partial_messageable(500)
    edited = await channel.get_partial_message(original.id).edit(content="edited with the bot token")
    assert edited.content == "edited with the bot token"
    assert fake.messages[original.id]["content"] == "edited with the bot token"


async def test_ephemeral_messages_are_not_reachable_through_channel_routes(fakes: Harness) -> None:
    fake = await fakes.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]

    @tree.command(name="secret", description="Ephemeral")
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you", ephemeral=True)

    client.setup_hook = tree.sync  # type: ignore[assignment,method-assign]
    await fakes.connect(client)
    token = await fake.send_slash_command("secret")
    await fake.wait_for(lambda: fake.original_message(token) is not None)
    message = fake.original_message(token)
    assert message is not None
    with pytest.raises(discord.NotFound) as missing:
        await client.get_partial_messageable(500).get_partial_message(int(message["id"])).edit(content="x")
    assert missing.value.code == 10008


async def test_injected_errors_reach_discord_py_as_documented(fakes: Harness) -> None:
    fake, client = await fakes.start(rate_limit=None)
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    message = await channel.send("hello")

    fake.inject_error("PATCH", r"^/channels/500/messages/\d+$", 503, message="Service Unavailable")
    with pytest.raises(discord.DiscordServerError) as unavailable:
        await message.edit(content="one")  # 503 is not retried on bot-token routes
    assert unavailable.value.status == 503
    await message.edit(content="two")  # the injection was used up

    fake.inject_error("PATCH", r"^/channels/500/messages/\d+$", 400, 50035, "Invalid Form Body", count=2)
    for _ in range(2):
        with pytest.raises(discord.HTTPException) as invalid:
            await message.edit(content="three")
        assert invalid.value.status == 400 and invalid.value.code == 50035
    await message.edit(content="four")

    # count=None keeps refusing until removed; `match` narrows it to chosen requests.
    refusal = fake.inject_error(
        "POST",
        r"^/channels/500/messages$",
        400,
        160002,
        "Cannot reply without permission to read message history",
        count=None,
        match=lambda call: "message_reference" in (call.json or {}),
    )
    for _ in range(3):
        with pytest.raises(discord.HTTPException) as no_history:
            await message.reply("a reply")
        assert no_history.value.code == 160002
    await channel.send("a plain message still works")
    assert refusal.hits == 3
    fake.remove_injection(refusal)
    await message.reply("now replies work")

    fake.inject_error("PATCH", r"^/channels/500/messages/\d+$", 500)
    await message.edit(content="five")  # 500 is retried once after 1 s by discord.py, then succeeds
    assert [c.status for c in fake.calls_to("PATCH", r"^/channels/500/messages/")][-2:] == [500, 200]
    assert fake.messages[message.id]["content"] == "five"


async def test_archived_thread_refuses_writes_until_unarchived(fakes: Harness) -> None:
    fake, client = await fakes.start(rate_limit=None)
    updates: list[tuple[bool, bool]] = []

    @client.event
    async def on_raw_thread_update(payload: discord.RawThreadUpdateEvent) -> None:
        meta = payload.data["thread_metadata"]
        updates.append((meta["archived"], meta.get("locked", False)))

    tid = await fake.create_thread(500, "user topic", owner_id=201)
    await fake.wait_for(lambda: isinstance(client.get_channel(tid), discord.Thread))
    thread = client.get_channel(tid)
    assert isinstance(thread, discord.Thread)
    message = await thread.send("before")

    await fake.archive_thread(tid)
    await fake.wait_for(lambda: updates == [(True, False)])
    assert client.get_channel(tid) is None  # discord.py drops archived threads from its cache
    for write in (message.edit(content="edited"), message.add_reaction("⚠️"), message.delete()):
        with pytest.raises(discord.HTTPException) as archived:
            await write
        assert archived.value.status == 400 and archived.value.code == 50083

    # Sending unarchives an unlocked thread (THREAD_UPDATE); the bot may unarchive it with PATCH as well.
    await thread.send("a new message reopens it")
    await fake.wait_for(lambda: updates[-1] == (False, False))
    await message.edit(content="edited")
    await message.add_reaction("⚠️")
    assert fake.reactions[message.id] == [(100, "⚠️")]
    await fake.archive_thread(tid)
    await thread.edit(archived=False)
    assert fake.calls_to("PATCH", rf"^/channels/{tid}$")[-1].status == 200
    assert not fake.threads[tid]["thread_metadata"]["archived"]

    # Locked: only Manage Threads reopens it.
    fake.bot_can_manage_threads = False
    await fake.archive_thread(tid, locked=True)
    await fake.wait_for(lambda: updates[-1] == (True, True))
    with pytest.raises(discord.HTTPException) as closed:
        await thread.send("no")
    assert closed.value.code == 50083
    with pytest.raises(discord.Forbidden) as forbidden:
        await thread.edit(archived=False)
    assert forbidden.value.code == 50013
    fake.bot_can_manage_threads = True
    await thread.edit(archived=False)
    await fake.wait_for(lambda: updates[-1] == (False, True))
    await message.edit(content="after the moderator reopened it")


async def test_archived_thread_refuses_interaction_edits_but_not_ephemeral_followups(fakes: Harness) -> None:
    fake = await fakes.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]
    seen: list[discord.Interaction] = []

    @tree.command(name="ask", description="Ask")
    async def ask(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("answer")
        seen.append(interaction)

    client.setup_hook = tree.sync  # type: ignore[assignment,method-assign]
    await fakes.connect(client)
    tid = await fake.create_thread(500, "topic", owner_id=201)
    token = await fake.send_slash_command("ask", channel_id=tid)
    await fake.wait_for(lambda: bool(seen))
    fake.bot_can_manage_threads = False
    await fake.archive_thread(tid, locked=True)
    with pytest.raises(discord.HTTPException) as archived:
        await seen[0].edit_original_response(content="more")
    assert archived.value.code == 50083
    await seen[0].followup.send("only you can see this", ephemeral=True)
    assert [m["flags"] & 64 for m in fake.followup_messages(token)] == [64]
