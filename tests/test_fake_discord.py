"""End-to-end tests of the fake Discord server against the real, unmodified discord.py client."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes.fake_discord import FakeDiscord

TOKEN = "fake-token"


def make_client(tree: bool = False) -> discord.Client:
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05, allowed_mentions=discord.AllowedMentions.none())
    if tree:
        client.tree = app_commands.CommandTree(client)  # type: ignore[attr-defined]
    return client


class Harness:
    """Starts fakes and clients; tears everything down and checks no client task crashed."""

    def __init__(self) -> None:
        self.fakes: list[FakeDiscord] = []
        self.clients: list[discord.Client] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def fake(self, **kwargs: Any) -> FakeDiscord:
        fake = FakeDiscord(**{"token": TOKEN, **kwargs})
        await fake.start()
        fake.patch_discord_py()
        self.fakes.append(fake)
        return fake

    async def connect(self, client: discord.Client, *, wait_ready: bool = True) -> asyncio.Task[None]:
        self.clients.append(client)
        await client.login(TOKEN)
        task = asyncio.create_task(client.connect())
        self.tasks.append(task)
        if wait_ready:
            await asyncio.wait_for(client.wait_until_ready(), 5)
        return task

    async def start(self, client: discord.Client | None = None, **kwargs: Any) -> tuple[FakeDiscord, discord.Client]:
        fake = await self.fake(**kwargs)
        client = client or make_client()
        await self.connect(client)
        return fake, client

    async def aclose(self) -> None:
        crashed = [t for t in self.tasks if t.done() and not t.cancelled() and t.exception() is not None]
        for client in self.clients:
            await client.close()
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for fake in self.fakes:
            fake.restore_discord_py()
            await fake.close()
        assert not crashed, f"client task crashed: {crashed[0].exception()!r}"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.aclose()


async def test_login_ready_and_guild_cache(harness: Harness) -> None:
    fake, client = await harness.start(channels=range(500, 520))
    assert client.user is not None and client.user.id == 100 and client.user.bot
    assert client.application_id == 300
    guild = client.get_guild(400)
    assert guild is not None and guild.name == "Test Guild"
    assert [c.name for c in guild.text_channels][:2] == ["general", "random"]
    assert len(guild.text_channels) == 20
    assert guild.me.id == 100
    assert fake.identified.is_set() and fake.identify_payloads[0]["intents"] & (1 << 15)
    assert [(c.method, c.path, c.status) for c in fake.calls] == [
        ("GET", "/users/@me", 200),
        ("GET", "/oauth2/applications/@me", 200),
    ]


async def test_bad_token_is_login_failure(harness: Harness) -> None:
    fake = await harness.fake(token="other")
    client = make_client()
    harness.clients.append(client)
    with pytest.raises(discord.LoginFailure):
        await client.login(TOKEN)
    assert fake.calls[0].status == 401


async def test_user_message_mentions_and_dm(harness: Harness) -> None:
    fake, client = await harness.start()
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    sent = await fake.send_user_message("hi <@201>", mention_bot=True)
    await fake.wait_for(lambda: len(seen) == 1)
    msg = seen[0]
    assert msg.id == int(sent["id"]) and msg.content == "<@100> hi <@201>"
    assert isinstance(msg.author, discord.Member) and msg.author.name == "alice"
    assert msg.author.display_name == "Alice"
    assert client.user is not None and client.user.mentioned_in(msg)
    assert {u.id for u in msg.mentions} == {100, 201}
    assert msg.guild is not None and msg.channel.id == 500 and msg.role_mentions == []

    await fake.send_user_message("private", author_id=201, guild=False)
    await fake.wait_for(lambda: len(seen) == 2)
    assert seen[1].guild is None and isinstance(seen[1].channel, discord.DMChannel)
    dm = await seen[1].channel.send("dm reply")
    assert fake.messages[dm.id]["channel_id"] == "9201" and "guild_id" not in fake.messages[dm.id]


def _collector(seen: list[discord.Message]) -> Any:
    async def on_message(message: discord.Message) -> None:
        if not message.author.bot:
            seen.append(message)

    return on_message


async def test_reference_modes(harness: Harness) -> None:
    fake, client = await harness.start()
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    root = await fake.send_user_message("root question")
    root_id = int(root["id"])
    for mode in ("full", "null", "absent"):
        await fake.send_user_message(f"reply {mode}", reply_to=root_id, reference_mode=mode)
    await fake.wait_for(lambda: len(seen) == 4)
    full, null, absent = (m.reference for m in seen[1:])
    assert full is not None and null is not None and absent is not None
    assert seen[1].type is discord.MessageType.reply
    assert isinstance(full.resolved, discord.Message) and full.resolved.content == "root question"
    assert isinstance(null.resolved, discord.DeletedReferencedMessage)
    assert absent.resolved is None and absent.message_id == root_id
    fetched = await seen[3].channel.fetch_message(root_id)
    assert fetched.content == "root question"
    assert fake.calls[-1].path == f"/channels/500/messages/{root_id}"


async def test_send_edit_recorded_and_echoed(harness: Harness) -> None:
    fake, client = await harness.start()
    events: list[tuple[str, int, str]] = []

    @client.event
    async def on_message(message: discord.Message) -> None:
        events.append(("create", message.id, message.content))

    @client.event
    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        events.append(("update", payload.message_id, payload.message.content))

    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    user_msg = await fake.send_user_message("question")
    await fake.wait_for(lambda: len(events) == 1)
    partial = channel.get_partial_message(int(user_msg["id"]))
    async with channel.typing():
        reply = await partial.reply("thinking", mention_author=False)
    await reply.edit(content="answer")
    await fake.wait_for(lambda: len(events) == 3)
    assert events[1:] == [("create", reply.id, "thinking"), ("update", reply.id, "answer")]

    post = fake.calls_to("POST", r"/channels/500/messages$")[0]
    assert post.json["message_reference"]["message_id"] == int(user_msg["id"])
    assert post.allowed_mentions == {"parse": [], "replied_user": False}
    assert fake.calls_to("PATCH", rf"/messages/{reply.id}$")[0].allowed_mentions == {"parse": []}
    assert fake.calls_to("POST", r"/typing$")[0].status == 204
    stored = fake.messages[reply.id]
    assert stored["content"] == "answer" and stored["type"] == 19
    assert stored["referenced_message"]["id"] == user_msg["id"]
    assert fake.message_history[reply.id] == ["thinking", "answer"]
    assert fake.bot_messages(500) == [stored] and fake.bot_messages(501) == []
    history = [m async for m in channel.history(limit=10)]
    assert [m.id for m in history] == [reply.id, int(user_msg["id"])]


async def test_limits(harness: Harness) -> None:
    fake, client = await harness.start()
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.status == 400 and too_long.value.code == 50035
    msg = await channel.send("x" * 2000)
    with pytest.raises(discord.HTTPException) as empty:
        await msg.edit(content="")
    assert empty.value.code == 50006
    assert fake.messages[msg.id]["content"] == "x" * 2000
    with_file = await channel.send("see file", file=discord.File(io.BytesIO(b"abc"), "a.txt"))
    upload = fake.calls[-1]
    assert upload.json["content"] == "see file" and upload.files == [("a.txt", b"abc")]
    assert with_file.attachments[0].filename == "a.txt" and with_file.attachments[0].size == 3


async def test_gateway_resume(harness: Harness) -> None:
    fake, client = await harness.start()
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    resumed = asyncio.create_task(client.wait_for("resumed"))
    await asyncio.sleep(0)
    await fake.drop_gateway(4000)
    await asyncio.wait_for(resumed, 5)
    assert len(fake.identify_payloads) == 1
    await fake.send_user_message("after resume")
    await fake.wait_for(lambda: len(seen) == 1)


async def test_channel_rate_limit_is_retried(harness: Harness) -> None:
    fake, client = await harness.start(rate_limit=(5, 0.3))
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("0")
    for i in range(1, 7):
        await msg.edit(content=str(i))
    assert fake.rate_limited >= 1 and fake.rate_limit_hits[0][0] == 500
    assert fake.message_history[msg.id] == [str(i) for i in range(7)]
    statuses = [c.status for c in fake.calls if c.path.startswith("/channels/500/messages")]
    assert statuses.count(429) == fake.rate_limited and statuses[-1] == 200
    other = client.get_channel(501)
    assert isinstance(other, discord.TextChannel)
    await other.send("other channels are not limited")
    assert fake.calls[-1].status == 200


async def test_inject_429_then_success(harness: Harness) -> None:
    fake, client = await harness.start(rate_limit=None)
    fake.inject_429("POST", r"^/channels/\d+/messages$", retry_after=0.01)
    channel = client.get_channel(501)
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("hello")
    assert [c.status for c in fake.calls[-2:]] == [429, 200]
    assert fake.rate_limited == 1 and fake.messages[msg.id]["content"] == "hello"


async def test_deleted_message_edit_is_not_found(harness: Harness) -> None:
    fake, client = await harness.start()
    deleted: list[int] = []

    @client.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        deleted.append(payload.message_id)

    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("soon gone")
    await fake.delete_message(msg.id)
    await fake.wait_for(lambda: deleted == [msg.id])
    with pytest.raises(discord.NotFound) as err:
        await msg.edit(content="too late")
    assert err.value.code == 10008
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(msg.id)


async def test_slash_commands(harness: Harness) -> None:
    fake = await harness.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]
    got: list[tuple[str, int]] = []

    @tree.command(name="ask", description="Ask a question")
    async def ask(interaction: discord.Interaction, question: str, count: int = 1) -> None:
        got.append((question, count))
        await interaction.response.send_message(f"you asked {question}", ephemeral=True)

    @tree.command(name="slow", description="Deferred answer")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("first part")
        await interaction.edit_original_response(content="final answer")
        await interaction.followup.send("extra", ephemeral=True)

    @ask.autocomplete("question")
    async def ask_complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"{current}{i}", value=f"{current}{i}") for i in range(30)][:25]

    client.setup_hook = tree.sync  # type: ignore[assignment,method-assign]
    await harness.connect(client)
    assert [c["name"] for c in fake.commands[None]] == ["ask", "slow"]

    token = await fake.send_slash_command("ask", {"question": "life", "count": 42})
    await fake.wait_for(lambda: fake.original_message(token) is not None)
    assert got == [("life", 42)]
    original = fake.original_message(token)
    assert original is not None and original["flags"] == 64 and original["content"] == "you asked life"
    callback = fake.interaction_responses(token)[0]
    assert callback.json["type"] == 4 and callback.query["with_response"] == "1" and callback.status == 200
    assert fake.bot_messages() == []  # ephemeral replies are not channel messages

    token = await fake.send_slash_command("slow")
    await fake.wait_for(lambda: len(fake.interaction_responses(token)) == 4)
    assert [c.status for c in fake.interaction_responses(token)] == [200, 200, 200, 200]
    original = fake.original_message(token)
    assert original is not None and original["content"] == "final answer" and original["flags"] == 0
    assert fake.message_history[int(original["id"])] == ["", "first part", "final answer"]
    assert [m["content"] for m in fake.followup_messages(token)] == ["extra"]
    assert fake.followup_messages(token)[0]["flags"] == 64

    token = await fake.send_autocomplete("ask", {}, "question")
    await fake.wait_for(lambda: len(fake.interaction_responses(token)) == 1)
    reply = fake.interaction_responses(token)[0]
    assert reply.json["type"] == 8 and len(reply.json["data"]["choices"]) == 25 and reply.status == 200


async def test_double_ack_and_too_many_choices(harness: Harness) -> None:
    fake = await harness.fake()
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]

    @tree.command(name="pick", description="Pick a model")
    async def pick(interaction: discord.Interaction, model: str) -> None:
        await interaction.response.defer(thinking=True)

    @pick.autocomplete("model")
    async def many(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=str(i), value=str(i)) for i in range(26)]

    await harness.connect(client)
    token = await fake.send_slash_command("pick", {"model": "a"})
    await fake.wait_for(lambda: fake.original_message(token) is not None)
    assert fake.original_message(token)["flags"] == 128  # type: ignore[index]
    iid = fake.interaction_responses(token)[0].path.split("/")[2]
    async with aiohttp.ClientSession() as session:  # a second acknowledgement, as a duplicate bot would send
        url = f"{fake.base_url}/interactions/{iid}/{token}/callback?with_response=1"
        async with session.post(url, json={"type": 4, "data": {"content": "late"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
    token = await fake.send_autocomplete("pick", {"model": "q"}, "model")
    await fake.wait_for(lambda: len(fake.interaction_responses(token)) == 1)
    assert fake.interaction_responses(token)[0].status == 400


async def test_button_click_reaches_view(harness: Harness) -> None:
    fake, client = await harness.start()
    clicks: list[int] = []

    class StopView(discord.ui.View):
        def __init__(self) -> None:
            super().__init__(timeout=None)

        @discord.ui.button(label="Stop", style=discord.ButtonStyle.danger, custom_id="stop")
        async def stop_button(self, interaction: discord.Interaction, button: discord.ui.Button[StopView]) -> None:
            clicks.append(interaction.user.id)
            await interaction.response.edit_message(content="stopped", view=None)

    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    msg = await channel.send("streaming…", view=StopView())
    assert fake.messages[msg.id]["components"][0]["components"][0]["custom_id"] == "stop"
    token = await fake.click_button(msg.id, "stop", user_id=201)
    await fake.wait_for(lambda: fake.messages[msg.id]["content"] == "stopped")
    assert clicks == [201]
    assert fake.messages[msg.id]["components"] == []
    assert fake.interaction_responses(token)[0].json["type"] == 7
    assert fake.original_message(token) == fake.messages[msg.id]


async def test_privileged_intents_close_4014(harness: Harness) -> None:
    fake = await harness.fake(allowed_intents=0)
    client = make_client()
    task = await harness.connect(client, wait_ready=False)
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await asyncio.wait_for(task, 5)
    assert fake.identify_payloads and not fake.identified.is_set()
    harness.tasks.remove(task)


async def test_wait_for_timeout_message(harness: Harness) -> None:
    fake = await harness.fake()
    with pytest.raises(AssertionError, match=r"not met within 0\.02s"):
        await fake.wait_for(lambda: False, timeout=0.02)


async def test_subcommands_guild_sync_and_unknown_routes(harness: Harness) -> None:
    fake = await harness.fake(channels=range(500, 520))
    client = make_client(tree=True)
    tree: app_commands.CommandTree[discord.Client] = client.tree  # type: ignore[attr-defined]
    model = app_commands.Group(name="model", description="Model settings")
    chosen: list[str] = []

    @model.command(name="set", description="Choose a model")
    async def model_set(interaction: discord.Interaction, name: str) -> None:
        chosen.append(name)
        await interaction.response.send_message(f"model is {name}")

    tree.add_command(model, guild=discord.Object(400))

    async def setup_hook() -> None:
        await tree.sync(guild=discord.Object(400))

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    await harness.connect(client)
    assert fake.calls_to("PUT", r"^/applications/300/guilds/400/commands$")[0].status == 200
    assert [c["name"] for c in fake.commands[400]] == ["model"]
    token = await fake.send_slash_command("model", {"name": "qwen3"}, subcommand="set", channel_id=519)
    await fake.wait_for(lambda: fake.original_message(token) is not None)
    assert chosen == ["qwen3"]
    assert fake.bot_messages(519)[0]["content"] == "model is qwen3"

    channels = [client.get_channel(c) for c in range(500, 520)]
    sends = [ch.send(f"hello {ch.id}") for ch in channels if isinstance(ch, discord.TextChannel)]
    await asyncio.gather(*sends)
    assert len(fake.bot_messages()) == 21 and fake.rate_limited == 0

    auth = {"Authorization": f"Bot {TOKEN}"}
    async with aiohttp.ClientSession(headers=auth) as session, session.get(f"{fake.base_url}/guilds/400/bans") as r:
        assert r.status == 404 and (await r.json()) == {"message": "404: Not Found", "code": 0}
    assert fake.calls[-1].path == "/guilds/400/bans" and fake.calls[-1].status == 404


async def test_threads_started_by_bot_and_by_user(harness: Harness) -> None:
    fake, client = await harness.start(rate_limit=(3, 0.5))
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    created: list[discord.Thread] = []

    @client.event
    async def on_thread_create(thread: discord.Thread) -> None:
        created.append(thread)

    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    # Without a message: a thread channel object comes back, THREAD_CREATE caches it.
    thread = await channel.create_thread(name="bot topic", type=discord.ChannelType.public_thread)
    start = fake.calls_to("POST", r"^/channels/500/threads$")[0]
    assert start.status == 201 and start.json["type"] == 11 and start.json["auto_archive_duration"] == 1440
    assert thread.parent_id == 500 and thread.owner_id == 100 and thread.type is discord.ChannelType.public_thread
    await fake.wait_for(lambda: client.get_channel(thread.id) is not None)
    assert [t.id for t in created] == [thread.id]
    cached = client.get_channel(thread.id)
    assert isinstance(cached, discord.Thread) and cached.me is not None and cached.name == "bot topic"
    note = fake.bot_messages(500)[-1]  # Discord's "started a thread" system message in the parent
    assert note["type"] == 18 and note["content"] == "bot topic"
    assert note["message_reference"]["channel_id"] == str(thread.id)

    async with thread.typing():
        inside = await thread.send("inside")
    stored = fake.messages[inside.id]
    assert stored["channel_id"] == str(thread.id) and stored["guild_id"] == "400"
    assert fake.calls_to("POST", rf"^/channels/{thread.id}/typing$")[0].status == 204
    await inside.edit(content="inside, edited")
    assert fake.threads[thread.id]["message_count"] == 1
    assert [m.content async for m in thread.history(limit=5)] == ["inside, edited"]
    fetched = await client.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.parent_id == 500 and fetched.message_count == 1

    # From a message: the thread id is the message id, the starter message links to it.
    question = await fake.send_user_message("long question")
    await fake.wait_for(lambda: len(seen) == 1)
    from_msg = await seen[0].create_thread(name="answer", auto_archive_duration=60)
    assert from_msg.id == int(question["id"]) and from_msg.parent_id == 500
    assert fake.threads[from_msg.id]["thread_metadata"]["auto_archive_duration"] == 60
    assert fake.messages[from_msg.id]["flags"] & 32 and fake.messages[from_msg.id]["thread"]["id"] == question["id"]
    with pytest.raises(discord.HTTPException) as twice:
        await seen[0].create_thread(name="again")
    assert twice.value.code == 160004
    await fake.wait_for(lambda: isinstance(client.get_channel(from_msg.id), discord.Thread))
    await from_msg.send("in the message thread")
    assert fake.bot_messages(from_msg.id)[0]["content"] == "in the message thread"

    # A thread a user started: user messages in it resolve to a discord.Thread channel.
    tid = await fake.create_thread(500, "user topic", owner_id=201)
    await fake.wait_for(lambda: client.get_channel(tid) is not None)
    await fake.send_user_message("hello thread", channel_id=tid, mention_bot=True)
    await fake.wait_for(lambda: len(seen) == 3)
    system, msg = seen[1:]
    assert system.type is discord.MessageType.thread_created and system.author.id == 201
    assert isinstance(msg.channel, discord.Thread) and msg.channel.parent_id == 500 and msg.channel.owner_id == 201
    assert msg.guild is not None and isinstance(msg.author, discord.Member) and msg.channel.me is None
    reply = await msg.reply("reply in thread")
    assert fake.messages[reply.id]["channel_id"] == str(tid)
    assert fake.messages[reply.id]["message_reference"]["channel_id"] == str(tid)
    private = await fake.create_thread(501, "secret", private=True)
    await fake.wait_for(lambda: isinstance(client.get_channel(private), discord.Thread))
    assert client.get_channel(private).type is discord.ChannelType.private_thread  # type: ignore[union-attr]

    # The per-channel rate limit counts each thread separately.
    await asyncio.gather(*(channel.send(f"parent {i}") for i in range(3)))
    assert fake.rate_limited == 0
    for i in range(4):
        await reply.edit(content=f"edit {i}")
    assert fake.rate_limit_hits and {cid for cid, _ in fake.rate_limit_hits} == {tid}
    assert fake.message_history[reply.id][-1] == "edit 3"

    # Active threads are in GUILD_CREATE, so a restarted client knows them.
    await client.close()
    again = make_client()
    await harness.connect(again)
    restored = again.get_channel(tid)
    assert isinstance(restored, discord.Thread) and restored.parent_id == 500 and restored.name == "user topic"


async def test_attachments_download_from_fake(harness: Harness) -> None:
    fake, client = await harness.start()
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big") + b"\0" * 9
    files = [("notes.txt", b"hello file", "text/plain; charset=utf-8"), ("pic.png", png, "image/png")]
    sent = await fake.send_user_message("see attached", attachments=[*files, ("raw data.bin", b"\x00\x01", None)])
    await fake.wait_for(lambda: len(seen) == 1)
    text, image, raw = seen[0].attachments
    assert [a["id"] for a in sent["attachments"]] == [str(text.id), str(image.id), str(raw.id)]
    assert text.filename == "notes.txt" and text.size == 10 and text.content_type == "text/plain; charset=utf-8"
    assert text.url.startswith(f"http://127.0.0.1:{fake.port}/attachments/500/{text.id}/notes.txt?")
    assert text.proxy_url == text.url and text.width is None
    assert (image.width, image.height, image.content_type) == (640, 480, "image/png")
    assert raw.content_type is None and "content_type" not in sent["attachments"][2]
    assert await text.read() == b"hello file"
    assert await image.read(use_cached=True) == png
    assert await raw.read() == b"\x00\x01"
    downloads = fake.calls_to("GET", r"^/attachments/")
    assert [(c.path, c.status) for c in downloads[:1]] == [(f"/attachments/500/{text.id}/notes.txt", 200)]
    assert len(downloads) == 3
    async with aiohttp.ClientSession() as session, session.get(text.url) as resp:  # no Authorization needed
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(discord.NotFound):
        await client.http.get_from_cdn(text.url.replace("notes.txt", "other.txt"))
    assert fake.calls[-1].status == 404

    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    upload = await channel.send(file=discord.File(io.BytesIO(b"a,b\n1,2\n"), "table.csv"))
    assert upload.attachments[0].content_type == "text/csv"
    assert await upload.attachments[0].read() == b"a,b\n1,2\n"


async def test_dm_round_trip(harness: Harness) -> None:
    fake, client = await harness.start(rate_limit=(2, 0.5))
    seen: list[discord.Message] = []
    client.event(_collector(seen))
    sent = await fake.send_user_message("hello in private", author_id=201, guild=False, mention_bot=False)
    await fake.wait_for(lambda: len(seen) == 1)
    msg = seen[0]
    assert msg.guild is None and isinstance(msg.channel, discord.DMChannel) and msg.channel.id == 9201
    assert isinstance(msg.author, discord.User) and msg.author.id == 201 and "guild_id" not in sent
    first = await msg.channel.send("reply one")
    second = await msg.reply("reply two")
    assert fake.calls_to("POST", r"^/channels/9201/messages$")[0].status == 200
    assert [m["id"] for m in fake.bot_messages(9201)] == [str(first.id), str(second.id)]
    assert all("guild_id" not in m for m in fake.bot_messages(9201))
    third = await msg.author.send("via create_dm")  # no cached DM channel for the user: POST /users/@me/channels
    dm_open = fake.calls_to("POST", r"^/users/@me/channels$")[0]
    assert dm_open.json == {"recipient_id": 201} and dm_open.status == 200
    assert third.channel.id == 9201 and fake.rate_limit_hits[0][0] == 9201  # 3 creates in 0.5 s in one DM
    await client.get_channel(500).send("other channels are not affected")  # type: ignore[union-attr]
    assert fake.calls[-1].status == 200 and len(fake.rate_limit_hits) == 1
    history = [m async for m in msg.channel.history(limit=10)]
    assert [m.id for m in history] == [third.id, second.id, first.id, msg.id]
    assert isinstance(await client.fetch_channel(9201), discord.DMChannel)
    user = await client.fetch_user(201)
    assert user.name == "bob"


async def test_dynamic_button_after_restart(harness: Harness) -> None:
    fake, first = await harness.start()
    clicks: list[tuple[int, str]] = []

    class StopButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=r"stop:(?P<id>[0-9]+)"):
        def __init__(self, target: int) -> None:
            button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
                label="Stop", style=discord.ButtonStyle.danger, custom_id=f"stop:{target}"
            )
            super().__init__(button)
            self.target = target

        @classmethod
        async def from_custom_id(
            cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any
        ) -> StopButton:
            return cls(int(match["id"]))

        async def callback(self, interaction: discord.Interaction) -> None:
            assert interaction.message is not None
            clicks.append((self.target, interaction.message.content))
            await interaction.response.edit_message(content="stopped", view=None)

    channel = first.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    view = discord.ui.View(timeout=None)
    view.add_item(StopButton(0))
    msg = await channel.send("streaming…", view=view)
    current = discord.ui.View(timeout=None)
    current.add_item(StopButton(msg.id))
    await msg.edit(content="still streaming…", view=current)  # the click must carry the current components
    await first.close()

    second = make_client()
    second.add_dynamic_items(StopButton)
    await harness.connect(second)
    token = await fake.click_button(msg.id, f"stop:{msg.id}")
    await fake.wait_for(lambda: fake.messages[msg.id]["content"] == "stopped")
    assert clicks == [(msg.id, "still streaming…")]
    assert fake.messages[msg.id]["components"] == []
    assert fake.interaction_responses(token)[0].json["type"] == 7
