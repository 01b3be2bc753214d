"""End to end: the smaller things a user notices (false history notes, reply pings, /status and /models
for non-admins, command failures that cannot be reported)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import discord
import pytest

from bot.answers.service import HISTORY_TRIMMED
from bot.cogs.chat import DMS_OFF, THREAD_WELCOME
from tests.conftest import Harness, command
from tests.fakes.fake_discord import FakeDiscord, Ping
from tests.fakes.fake_ollama import ChatScript

# View Channels, Send Messages, Read Message History: a member without Administrator.
MEMBER = str(1024 | 2048 | 65536)
DM_CHANNEL = 9200  # the fake's DM channel with user 200


# ---- a fresh /chat thread


async def test_first_answer_in_a_fresh_chat_thread_has_no_history_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["Sure", "."])
    await harness.start_bot()
    await command(harness, "chat", {"topic": "help"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))
    assert harness.discord.bot_messages(thread_id)[0]["content"] == THREAD_WELCOME

    first = await harness.discord.send_user_message("how do I sort a dict?", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["Sure."]
    second = await harness.discord.send_user_message("by value", channel_id=thread_id)
    assert await harness.wait_for_reply(int(second["id"])) == ["Sure."]

    assert HISTORY_TRIMMED not in "".join(m["content"] for m in harness.discord.bot_messages(thread_id))
    # The opening message is the bot's own invitation, not a turn of the conversation.
    assert [m["role"] for m in harness.ollama.chat_requests[-1].json["messages"]] == ["user", "assistant", "user"]


async def test_the_welcome_takes_no_place_in_the_history_limit(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "set", {"option": "history", "value": "3"})
    await command(harness, "chat", {"topic": "short"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))

    first = await harness.discord.send_user_message("one", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["ok"]
    # Three messages before this one (welcome, question, answer): the limit reads them all.
    second = await harness.discord.send_user_message("two", channel_id=thread_id)
    assert await harness.wait_for_reply(int(second["id"])) == ["ok"]
    assert [m["content"] for m in harness.ollama.chat_requests[-1].json["messages"]] == [
        "Alice: one",
        "ok",
        "Alice: two",
    ]


async def test_a_thread_that_outgrew_the_history_limit_still_gets_the_note(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "set", {"option": "history", "value": "2"})
    await command(harness, "chat", {"topic": "long"})
    (thread_id,) = harness.discord.threads
    await harness.discord.wait_for(lambda: bool(harness.discord.bot_messages(thread_id)))

    first = await harness.discord.send_user_message("one", channel_id=thread_id)
    assert await harness.wait_for_reply(int(first["id"])) == ["ok"]
    second = await harness.discord.send_user_message("two", channel_id=thread_id)
    parts = await harness.wait_for_reply(int(second["id"]))
    assert parts == [f"ok\n{HISTORY_TRIMMED}"]


# ---- a command failure that cannot be reported


@contextlib.contextmanager
def tasks_created() -> Iterator[list[asyncio.Task[Any]]]:
    """Every task created on the running loop meanwhile (discord.py runs each slash command in its own task)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()
    created: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    try:
        yield created
    finally:
        loop.set_task_factory(previous)


async def test_a_command_failure_that_cannot_be_reported_is_logged_and_nothing_escapes(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.start_bot()
    # The network fails while /status acknowledges the command, and again while the bot reports that.
    harness.discord.inject_disconnect("POST", r"^/interactions/\d+/[^/]+/callback$", count=2)
    with tasks_created() as created, caplog.at_level(logging.WARNING, logger="bot"):
        token = await harness.discord.send_slash_command("status")
        await harness.discord.wait_for(lambda: len(harness.discord.interaction_responses(token)) == 2)
        await harness.discord.wait_for(lambda: any(t.get_name() == "CommandTree-invoker" for t in created))
        invokers = [t for t in created if t.get_name() == "CommandTree-invoker"]
        await asyncio.wait(invokers, timeout=10)

    assert all(t.done() for t in invokers)
    # Nothing escapes the error handler: no "Task exception was never retrieved" with a traceback.
    assert [t.exception() for t in invokers] == [None]
    failures = [r for r in caplog.records if r.name == "bot.app" and r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "/status" in failures[0].getMessage()
    warnings = [r for r in caplog.records if r.name == "bot.app" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ServerDisconnectedError" in warnings[0].getMessage()
    assert warnings[0].exc_info is None


# ---- /status and /models: the Ollama URL is for admins


async def test_status_and_models_show_the_ollama_url_only_to_admins(harness: Harness) -> None:
    await harness.start_bot()
    url = harness.ollama.url
    member_status = (await command(harness, "status", user_id=201, permissions=MEMBER))["content"]
    member_models = (await command(harness, "models", user_id=201, permissions=MEMBER))["content"]
    assert url not in member_status and "127.0.0.1" not in member_status
    assert url not in member_models and "127.0.0.1" not in member_models
    assert "🟢 Ollama 0.32.15" in member_status and "`llama3.2:latest`" in member_models

    assert url in (await command(harness, "status"))["content"]  # Administrator
    assert url in (await command(harness, "models"))["content"]


async def test_an_unreachable_ollama_is_explained_to_members_without_its_url(
    harness: Harness, unused_tcp_port: int
) -> None:
    dead = f"http://127.0.0.1:{unused_tcp_port}"
    await harness.start_bot(harness.settings(OLLAMA_HOST=dead))
    member_status = (await command(harness, "status", user_id=201, permissions=MEMBER))["content"]
    member_models = (await command(harness, "models", user_id=201, permissions=MEMBER))["content"]
    assert "🔴" in member_status and "⚠️" in member_models
    assert str(unused_tcp_port) not in member_status + member_models
    assert f"🔴 Ollama unreachable at {dead}" in (await command(harness, "status"))["content"]


async def test_status_and_models_in_dms_follow_allow_dms(harness: Harness) -> None:
    harness.discord.dm_channels[DM_CHANNEL] = 200
    await harness.start_bot()
    for name in ("status", "models"):
        assert (await command(harness, name, channel_id=DM_CHANNEL))["content"] == DMS_OFF
    assert not harness.ollama.requests
    await harness.stop_all()

    await harness.start_bot(harness.settings(ALLOW_DMS="true", ADMIN_USER_IDS="201"))
    status = (await command(harness, "status", channel_id=DM_CHANNEL))["content"]
    assert "🟢 Ollama 0.32.15" in status and harness.ollama.url not in status  # no Administrator in a DM
    harness.discord.dm_channels[9201] = 201
    assert harness.ollama.url in (await command(harness, "status", user_id=201, channel_id=9201))["content"]


# ---- the reply ping


def pings(harness: Harness) -> list[tuple[str, str]]:
    return [(p.target, p.on) for p in harness.discord.pings]


async def test_an_answer_notifies_the_asker_once_and_nobody_else(harness: Harness) -> None:
    harness.ollama.scripts.append(
        ChatScript(tokens=["@everyone ", "look, <@201> and ", "<@&400> ", "@here", " " + "x" * 2500], token_delay=0.01)
    )
    await harness.start_bot()
    prompt = await harness.discord.send_user_message("ping people", mention_bot=True)
    parts = await harness.wait_for_reply(int(prompt["id"]))

    assert len(parts) == 2  # the continuation replies to the first part: the bot, nobody to notify
    first = harness.replies_to(int(prompt["id"]))[0]
    assert harness.discord.pings == [Ping(int(first["id"]), "user:200", "create")]
    post = harness.discord.calls_to("POST", r"^/channels/500/messages$")[0]
    assert post.allowed_mentions == {"parse": [], "replied_user": True}
    edits = harness.discord.calls_to("PATCH", rf"^/channels/500/messages/{first['id']}$")
    assert edits and all(e.allowed_mentions == {"parse": []} for e in edits)


async def test_reply_ping_off_answers_without_a_notification(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["quiet"])
    await harness.start_bot()
    await command(harness, "set", {"option": "reply_ping", "value": "off"})
    prompt = await harness.discord.send_user_message("hi", mention_bot=True)
    assert await harness.wait_for_reply(int(prompt["id"])) == ["quiet"]
    assert pings(harness) == []

    shown = (await command(harness, "settings"))["content"]
    assert "`reply_ping` = off · *channel*" in shown


async def test_auto_reply_answers_notify_only_when_asked_or_switched_on(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()
    await command(harness, "set", {"option": "auto_reply", "value": "on"})
    shown = (await command(harness, "settings"))["content"]
    assert "`reply_ping` = (not set: on, off for auto-reply answers) · *default*" in shown

    unasked = await harness.discord.send_user_message("nice weather today")
    await harness.wait_for_reply(int(unasked["id"]))
    assert pings(harness) == []  # the bot answered on its own: no notification
    asked = await harness.discord.send_user_message("what do you think?", mention_bot=True)
    await harness.wait_for_reply(int(asked["id"]))
    assert pings(harness) == [("user:200", "create")]

    await command(harness, "set", {"option": "reply_ping", "value": "on"})
    again = await harness.discord.send_user_message("and tomorrow?", author_id=201)
    await harness.wait_for_reply(int(again["id"]))
    assert pings(harness) == [("user:200", "create"), ("user:201", "create")]


async def test_fake_discord_pings_like_discord(discord_server: FakeDiscord) -> None:
    """The fake's mention rules, through the real discord.py: defaults ping, allowed_mentions limits, edits re-parse."""
    fake = discord_server
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)  # no client-wide allowed_mentions
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        channel = client.get_channel(500)
        assert isinstance(channel, discord.TextChannel)
        asked = channel.get_partial_message(int((await fake.send_user_message("question"))["id"]))

        plain = await asked.reply("hi <@201> @everyone")  # no allowed_mentions: everything pings
        assert {(p.target, p.on) for p in fake.pings} == {
            ("user:201", "create"),
            ("user:200", "create"),
            ("everyone", "create"),
        }
        fake.pings.clear()
        quiet = await asked.reply("hi <@201>", allowed_mentions=discord.AllowedMentions.none())
        await quiet.edit(content="hi <@201> again", allowed_mentions=discord.AllowedMentions.none())
        assert fake.pings == []
        await quiet.edit(content="hi <@201> once more")  # allowed_mentions is not kept: this edit pings
        assert {(p.target, p.on) for p in fake.pings} == {("user:201", "edit"), ("user:200", "edit")}
        fake.pings.clear()
        await plain.edit(content="hi <@201> @everyone, edited")  # already mentioned: no new notification
        assert fake.pings == []
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_mention_while_the_settings_database_fails_is_told_so(harness: Harness) -> None:
    from bot.cogs.chat import DATABASE_TROUBLE

    running = await harness.start_bot()
    await running.services.store.close()  # every later read fails with StoreError, like a database outage

    prompt = await harness.discord.send_user_message("hello?", mention_bot=True)
    await harness.discord.wait_for(lambda: bool(harness.replies_to(int(prompt["id"]))) and harness.idle())
    assert [m["content"] for m in harness.replies_to(int(prompt["id"]))] == [DATABASE_TROUBLE]
