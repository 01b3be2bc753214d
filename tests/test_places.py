"""bot.places: permission names, channel kinds and what the bot may do where (real discord.py objects)."""

from __future__ import annotations

import discord
import pytest

from bot.places import PERMISSION_NAMES, Place, ReplyAccess, bold_list, missing_permissions, place_of, reply_access
from tests.conftest import Harness


@pytest.mark.parametrize("name", list(PERMISSION_NAMES))
def test_each_missing_permission_is_named_as_discord_names_it(name: str) -> None:
    everything = discord.Permissions.all()
    lacking = discord.Permissions(everything.value & ~getattr(discord.Permissions, name).flag)
    assert missing_permissions(lacking, PERMISSION_NAMES) == [PERMISSION_NAMES[name]]
    assert missing_permissions(everything, PERMISSION_NAMES) == []


def test_embed_links_and_attach_files_have_their_discord_names() -> None:
    only_send = discord.Permissions(send_messages=True)
    assert missing_permissions(only_send, ["send_messages", "embed_links", "attach_files"]) == [
        "Embed Links",
        "Attach Files",
    ]


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["Send Messages"], "**Send Messages**"),
        (["Send Messages", "Connect"], "**Send Messages** and **Connect**"),
        (["A", "B", "C"], "**A**, **B** and **C**"),
    ],
)
def test_bold_list(names: list[str], text: str) -> None:
    assert bold_list(names) == text


async def test_kinds_and_access_of_real_channels(harness: Harness) -> None:
    fake = harness.discord
    await fake.add_channel(510, "forum", kind=15)
    await fake.add_channel(516, "media", kind=16)
    await fake.add_channel(520, "news", kind=5)
    await fake.add_channel(530, "voice", kind=2)
    await fake.add_channel(531, "stage", kind=13)
    await fake.deny_permissions(530, "connect")
    await fake.deny_permissions(501, "send_messages", "add_reactions")
    thread_id = await fake.create_thread(500, "thread")
    post = await fake.create_forum_post(510, "hello")
    running = await harness.start_bot()
    bot = running.bot
    await fake.wait_for(lambda: bot.get_channel(thread_id) is not None and bot.get_channel(int(post["id"])) is not None)
    guild = bot.get_guild(400)
    assert guild is not None
    me = guild.me

    kinds = {cid: place_of(bot.get_channel(cid)) for cid in (500, 510, 516, 520, 530, 531, thread_id, int(post["id"]))}
    assert kinds == {
        500: Place.TEXT,
        510: Place.FORUM,
        516: Place.FORUM,
        520: Place.ANNOUNCEMENT,
        530: Place.VOICE,
        531: Place.VOICE,
        thread_id: Place.THREAD,
        int(post["id"]): Place.FORUM_POST,
    }
    assert place_of(bot.get_partial_messageable(999, guild_id=400)) is Place.OTHER

    assert reply_access(bot.get_channel(500), me) == ReplyAccess()
    voice = reply_access(bot.get_channel(530), me)
    assert voice.can_post and voice.missing_for_history == ("Connect",)  # a voice chat's history needs Connect
    muted = reply_access(bot.get_channel(501), me)
    assert muted.missing_to_post == ("Send Messages",) and not muted.may_react and muted.reads_history
    # Unknown channels and unknown members: nothing can be known, so nothing is refused up front.
    assert reply_access(bot.get_partial_messageable(999, guild_id=400), me) == ReplyAccess()
    assert reply_access(bot.get_channel(500), None) == ReplyAccess()

    await fake.deny_permissions(500, "send_messages_in_threads")
    await fake.wait_for(lambda: not reply_access(bot.get_channel(thread_id), me).can_post)
    assert reply_access(bot.get_channel(thread_id), me).missing_to_post == ("Send Messages in Threads",)
    assert reply_access(bot.get_channel(500), me).can_post  # Send Messages in Threads is for threads only
