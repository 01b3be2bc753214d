"""Where the bot is asked something: the real channel behind an uncached thread, its kind, and what the bot may do.

discord.py only knows the threads Discord announced to it. A thread it never saw (or evicted: archived threads
leave its cache) reaches it as a bare `PartialMessageable`, without a kind, parent or owner, and without
permissions (`permissions_for` on it answers "none"). `ChannelResolver` fetches such a channel once.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import discord

log = logging.getLogger(__name__)

# Channels fetched because discord.py had not cached them. A channel's kind, parent and owner never change,
# so a remembered one stays right; permissions are computed from the (cached) parent each time.
REMEMBERED_CHANNELS = 512

# Discord's own names for the permissions (as in Server Settings), so a message can tell an admin what to grant.
PERMISSION_NAMES = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "send_messages_in_threads": "Send Messages in Threads",
    "create_public_threads": "Create Public Threads",
    "read_message_history": "Read Message History",
    "embed_links": "Embed Links",
    "attach_files": "Attach Files",
    "add_reactions": "Add Reactions",
    "connect": "Connect",
}

GuildPlace = discord.abc.GuildChannel | discord.Thread
ChatChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread


class Place(enum.Enum):
    """The kinds of channel that matter for answering and for /chat."""

    TEXT = "text"
    ANNOUNCEMENT = "announcement"
    FORUM = "forum"  # forum or media channel: it holds only posts (threads), no messages
    FORUM_POST = "forum post"
    THREAD = "thread"  # a thread in a text or announcement channel
    VOICE = "voice"  # the text chat of a voice or stage channel
    OTHER = "other"


def place_of(channel: object) -> Place:
    """The kind of `channel` (OTHER for anything the bot does not know, e.g. a partial channel)."""
    if isinstance(channel, discord.Thread):
        forum_post = channel.parent_id is not None and isinstance(channel.parent, discord.ForumChannel)
        return Place.FORUM_POST if forum_post else Place.THREAD
    if isinstance(channel, discord.TextChannel):
        return Place.ANNOUNCEMENT if channel.is_news() else Place.TEXT
    if isinstance(channel, discord.ForumChannel):
        return Place.FORUM
    if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
        return Place.VOICE
    return Place.OTHER


def missing_permissions(permissions: discord.Permissions, needed: Iterable[str]) -> list[str]:
    """Discord's names of the `needed` permissions (`PERMISSION_NAMES` keys) that `permissions` lacks."""
    return [PERMISSION_NAMES[name] for name in needed if not getattr(permissions, name)]


def bold_list(names: list[str]) -> str:
    """`**A**`, `**A** and **B**`, `**A**, **B** and **C**`."""
    bold = [f"**{name}**" for name in names]
    return bold[0] if len(bold) == 1 else f"{', '.join(bold[:-1])} and {bold[-1]}"


@dataclass(frozen=True, slots=True)
class ReplyAccess:
    """What the bot may do to answer a message in a channel, from its permissions there."""

    missing_to_post: tuple[str, ...] = ()  # nothing can be posted without these
    missing_for_history: tuple[str, ...] = ()  # without these: no earlier messages, and no replying to one
    may_react: bool = True

    @property
    def can_post(self) -> bool:
        """Whether the bot can post its answer at all."""
        return not self.missing_to_post

    @property
    def reads_history(self) -> bool:
        """Whether the bot can read earlier messages and reply to a message (both need Read Message History)."""
        return not self.missing_for_history


def reply_access(channel: object, me: discord.Member | None) -> ReplyAccess:
    """What the bot may do in `channel`; everything, when its permissions there cannot be known.

    Threads take their permissions from their parent, where Send Messages in Threads (not Send Messages) is
    what lets anyone post in them. Reading a voice channel's text chat also takes Connect.
    """
    if me is None or not isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return ReplyAccess()
    try:
        permissions = channel.permissions_for(me)
    except discord.ClientException:  # a thread whose parent discord.py does not know
        return ReplyAccess()
    thread = isinstance(channel, discord.Thread)
    post = ["view_channel", "send_messages_in_threads" if thread else "send_messages"]
    history = ["read_message_history"]
    if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
        history.append("connect")
    return ReplyAccess(
        missing_to_post=tuple(missing_permissions(permissions, post)),
        missing_for_history=tuple(missing_permissions(permissions, history)),
        # Reacting needs Read Message History too (Discord's "Create Reaction").
        may_react=permissions.add_reactions and permissions.read_message_history,
    )


class ChannelResolver:
    """Fetches the channels discord.py has not cached, remembering the last few."""

    def __init__(self, client: discord.Client, *, size: int = REMEMBERED_CHANNELS) -> None:
        self._client = client
        self._size = size
        self._fetched: OrderedDict[int, GuildPlace] = OrderedDict()

    async def resolve(self, channel_id: int) -> GuildPlace | None:
        """The channel with this id (from discord.py's cache, else fetched); None if Discord won't say."""
        cached = self._client.get_channel(channel_id)
        if isinstance(cached, discord.abc.GuildChannel | discord.Thread):
            return cached
        remembered = self._fetched.get(channel_id)
        if remembered is not None:
            self._fetched.move_to_end(channel_id)
            return remembered
        try:
            fetched = await self._client.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("could not fetch uncached channel %s (HTTP %s, code %s)", channel_id, exc.status, exc.code)
            return None
        if not isinstance(fetched, discord.abc.GuildChannel | discord.Thread):
            return None
        log.debug("fetched channel %s, which discord.py had not cached", channel_id)
        self._fetched[channel_id] = fetched
        while len(self._fetched) > self._size:
            self._fetched.popitem(last=False)
        return fetched
