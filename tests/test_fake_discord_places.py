"""The fake Discord's channel kinds, uncached threads and permission refusals, against the real discord.py."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from tests.fakes.fake_discord import FakeDiscord

TOKEN = "fake-token"
FORUM, NEWS, VOICE = 510, 520, 530


def make_client() -> discord.Client:
    intents = discord.Intents.default()
    intents.message_content = True
    return discord.Client(intents=intents, guild_ready_timeout=0.05, allowed_mentions=discord.AllowedMentions.none())


class World:
    """One fake with a forum, an announcement and a voice channel, and connected clients."""

    def __init__(self) -> None:
        self.fake = FakeDiscord(token=TOKEN, rate_limit=None)
        self.clients: list[discord.Client] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.seen: list[discord.Message] = []

    async def start(self) -> None:
        await self.fake.start()
        self.fake.patch_discord_py()
        await self.fake.add_channel(FORUM, "help-forum", kind=15, tags=["python", "rust"])
        await self.fake.add_channel(NEWS, "news", kind=5)
        await self.fake.add_channel(VOICE, "voice", kind=2)

    async def connect(self) -> discord.Client:
        client = make_client()
        seen = self.seen

        @client.event
        async def on_message(message: discord.Message) -> None:
            seen.append(message)

        self.clients.append(client)
        await client.login(TOKEN)
        self.tasks.append(asyncio.create_task(client.connect()))
        await asyncio.wait_for(client.wait_until_ready(), 5)
        return client

    async def close(self) -> None:
        crashed = [t for t in self.tasks if t.done() and not t.cancelled() and t.exception() is not None]
        for client in self.clients:
            await client.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.fake.restore_discord_py()
        await self.fake.close()
        assert not crashed, f"client task crashed: {crashed[0].exception()!r}"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    await w.start()
    yield w
    await w.close()


def bot_member(client: discord.Client) -> discord.Member:
    guild = client.get_guild(400)
    assert guild is not None
    return guild.me


async def test_forum_posts_are_threads_with_a_starter_message(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    forum = client.get_channel(FORUM)
    assert isinstance(forum, discord.ForumChannel) and [t.name for t in forum.available_tags] == ["python", "rust"]

    # The bot creates a post: one call, a public thread whose first message has the thread's id.
    post, starter = await forum.create_thread(name="Chat", content="welcome", allowed_mentions=None)
    assert post.parent_id == FORUM and post.type is discord.ChannelType.public_thread and post.owner_id == 100
    assert starter.id == post.id and starter.channel.id == post.id and starter.content == "welcome"
    assert fake.messages[post.id]["channel_id"] == str(post.id)
    await fake.wait_for(lambda: isinstance(client.get_channel(post.id), discord.Thread))
    assert fake.bot_messages(FORUM) == []  # no "started a thread" message: a forum holds no messages
    reply = await post.send("in the post")
    assert fake.messages[reply.id]["channel_id"] == str(post.id)

    # A forum has no messages of its own, and a post always needs its first message.
    with pytest.raises(discord.HTTPException) as direct:
        await client.http.send_message(FORUM, params=discord.http.handle_message_parameters(content="hi"))
    assert (direct.value.status, direct.value.code) == (400, 40058)
    with pytest.raises(discord.HTTPException) as bare:
        await client.http.start_thread_without_message(FORUM, name="x", auto_archive_duration=1440, type=11)
    assert (bare.value.status, bare.value.code) == (400, 50035)

    # A user's post: MESSAGE_CREATE of the starter message, in a thread whose parent is the forum.
    made = await fake.create_forum_post(FORUM, "how do I sort?", name="Sorting", mention_bot=True, tags=[800])
    await fake.wait_for(lambda: any(m.id == int(made["id"]) for m in world.seen))
    message = next(m for m in world.seen if m.id == int(made["id"]))
    assert isinstance(message.channel, discord.Thread) and message.channel.parent_id == FORUM
    assert message.channel.id == message.id and message.channel.owner_id == 200
    assert [u.id for u in message.mentions] == [100]
    assert fake.threads[message.id]["applied_tags"] == ["800"]


async def test_forum_requiring_a_tag_refuses_a_post_without_one(world: World) -> None:
    await world.fake.add_channel(511, "strict-forum", kind=15, tags=["question"], require_tag=True)
    client = await world.connect()
    forum = client.get_channel(511)
    assert isinstance(forum, discord.ForumChannel) and forum.flags.require_tag
    with pytest.raises(discord.HTTPException) as untagged:
        await forum.create_thread(name="Chat", content="hello")
    assert (untagged.value.status, untagged.value.code) == (400, 40067)
    post, _ = await forum.create_thread(name="Chat", content="hello", applied_tags=[forum.available_tags[0]])
    assert world.fake.threads[post.id]["applied_tags"] == ["800"]


async def test_announcement_channels_have_announcement_threads(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    news = client.get_channel(NEWS)
    assert isinstance(news, discord.TextChannel) and news.is_news()
    with pytest.raises(discord.HTTPException) as public:
        await news.create_thread(name="topic", type=discord.ChannelType.public_thread)
    assert (public.value.status, public.value.code) == (400, 50035)
    thread = await news.create_thread(name="topic", type=discord.ChannelType.news_thread)
    assert thread.type is discord.ChannelType.news_thread and thread.parent_id == NEWS

    posted = await fake.send_user_message("launch day", channel_id=NEWS)
    await fake.wait_for(lambda: any(m.id == int(posted["id"]) for m in world.seen))
    tid = await fake.create_thread(NEWS, "discussion", message_id=int(posted["id"]))
    assert fake.threads[tid]["type"] == 10
    await fake.wait_for(lambda: isinstance(client.get_channel(tid), discord.Thread))
    assert client.get_channel(tid).type is discord.ChannelType.news_thread  # type: ignore[union-attr]


async def test_voice_channels_have_a_text_chat_but_no_threads(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    voice = client.get_channel(VOICE)
    assert isinstance(voice, discord.VoiceChannel)
    sent = await voice.send("hello voice chat")
    assert fake.messages[sent.id]["channel_id"] == str(VOICE)
    with pytest.raises(discord.HTTPException) as thread:
        await client.http.start_thread_without_message(VOICE, name="x", auto_archive_duration=1440, type=11)
    assert (thread.value.status, thread.value.code) == (400, 50024)
    posted = await fake.send_user_message("hi", channel_id=VOICE, mention_bot=True)
    await fake.wait_for(lambda: any(m.id == int(posted["id"]) for m in world.seen))
    assert isinstance(world.seen[-1].channel, discord.VoiceChannel)


async def test_uncached_threads_reach_the_client_as_partial_channels(world: World) -> None:
    fake = world.fake
    tid = await fake.create_thread(500, "old thread", owner_id=100, cached=False)
    client = await world.connect()
    assert client.get_channel(tid) is None  # not in GUILD_CREATE, no THREAD_CREATE
    posted = await fake.send_user_message("anyone?", channel_id=tid)
    await fake.wait_for(lambda: any(m.id == int(posted["id"]) for m in world.seen))
    message = world.seen[-1]
    assert isinstance(message.channel, discord.PartialMessageable) and message.channel.id == tid
    assert message.guild is not None and message.guild.id == 400
    fetched = await client.fetch_channel(tid)
    assert isinstance(fetched, discord.Thread) and fetched.parent_id == 500 and fetched.owner_id == 100
    assert client.get_channel(tid) is None  # fetching does not cache it either
    post = await fake.create_forum_post(FORUM, "old post", cached=False)
    assert client.get_channel(int(post["id"])) is None and int(post["id"]) in fake.threads


async def test_denied_permissions_show_in_permissions_for_and_are_enforced(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    me = bot_member(client)
    assert channel.permissions_for(me).send_messages

    await fake.deny_permissions(500, "send_messages")
    await fake.wait_for(lambda: not channel.permissions_for(me).send_messages)
    with pytest.raises(discord.Forbidden) as send:
        await channel.send("hello")
    assert send.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await channel.typing()
    assert channel.permissions_for(me).send_messages_in_threads  # thread permission untouched

    thread = await channel.create_thread(name="still works", type=discord.ChannelType.public_thread)
    await thread.send("threads need Send Messages in Threads, not Send Messages")
    await fake.deny_permissions(500, "send_messages_in_threads", "create_public_threads")
    await fake.wait_for(lambda: not channel.permissions_for(me).create_public_threads)
    fetched = await client.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and not fetched.permissions_for(me).send_messages_in_threads
    with pytest.raises(discord.Forbidden) as in_thread:
        await thread.send("no")
    assert in_thread.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await channel.create_thread(name="no", type=discord.ChannelType.public_thread)
    other = client.get_channel(501)
    assert isinstance(other, discord.TextChannel)
    await other.send("other channels are not affected")

    await fake.deny_permissions(501, "view_channel")
    with pytest.raises(discord.Forbidden) as hidden:
        await other.send("no")
    assert hidden.value.code == 50001


async def test_read_message_history_embed_links_and_attach_files(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    channel = client.get_channel(500)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("first")
    await fake.deny_permissions(500, "read_message_history", "embed_links", "attach_files")
    me = bot_member(client)
    await fake.wait_for(lambda: not channel.permissions_for(me).read_message_history)

    assert [m async for m in channel.history(limit=10)] == []  # "no messages will be returned"
    with pytest.raises(discord.Forbidden) as fetch:
        await channel.fetch_message(first.id)
    assert fetch.value.code == 50001
    with pytest.raises(discord.Forbidden) as reply:
        await first.reply("a reply needs Read Message History")
    assert reply.value.code == 50013
    plain = await channel.send("a plain message does not")
    assert fake.messages[plain.id]["content"] == "a plain message does not"
    with pytest.raises(discord.Forbidden):
        await channel.send(embed=discord.Embed(description="embed"))
    with pytest.raises(discord.Forbidden):
        await channel.send(file=discord.File(io.BytesIO(b"x"), "x.txt"))
    with pytest.raises(discord.Forbidden):
        await plain.edit(embed=discord.Embed(description="embed"))


async def test_reactions_and_app_permissions(world: World) -> None:
    client = await world.connect()
    fake = world.fake
    reactions: list[discord.RawReactionActionEvent] = []

    @client.event
    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        reactions.append(payload)

    posted = await fake.send_user_message("react to me")
    await fake.wait_for(lambda: bool(world.seen))
    await world.seen[-1].add_reaction("🔇")
    assert fake.messages[int(posted["id"])]["reactions"][0]["emoji"]["name"] == "🔇"
    await fake.wait_for(lambda: bool(reactions))
    assert str(reactions[0].emoji) == "🔇" and reactions[0].user_id == 100

    await fake.deny_permissions(500, "add_reactions")
    await world.seen[-1].add_reaction("🔇")  # already there: Add Reactions is not needed to join it
    with pytest.raises(discord.Forbidden):
        await world.seen[-1].add_reaction("👀")
    await fake.deny_permissions(500, "read_message_history")
    with pytest.raises(discord.Forbidden):
        await world.seen[-1].add_reaction("🔇")

    seen_permissions: list[discord.Permissions] = []

    @client.event
    async def on_interaction(interaction: discord.Interaction[Any]) -> None:
        seen_permissions.append(interaction.app_permissions)
        await interaction.response.send_message("interaction responses need no channel permission")

    await fake.deny_permissions(500, "send_messages")
    token = await fake.send_slash_command("anything", channel_id=500)
    await fake.wait_for(lambda: bool((fake.original_message(token) or {}).get("content")))
    (permissions,) = seen_permissions
    assert not permissions.send_messages and not permissions.read_message_history and not permissions.add_reactions
    assert permissions.create_public_threads and not permissions.administrator
