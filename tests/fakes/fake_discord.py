"""Loopback fake of the Discord gateway and REST API for end-to-end tests.

``FakeDiscord`` serves the gateway websocket and the v10 REST API on one random 127.0.0.1 port so that an
unmodified discord.py client can log in, receive dispatches and call REST endpoints. It records every REST
call, stores every message (with its content history), enforces the Discord limits a bot is likely to hit
(2000-character content, empty messages, 25 autocomplete choices, per-channel create/edit rate limit,
double acknowledgement) and lets a test inject user messages, slash commands, autocomplete and button
clicks. It also models threads (started by the bot or by a user, with THREAD_CREATE), DMs and attachments on user
messages, served over HTTP from the same port so that ``Attachment.read()`` works. See
/work/shared/notes/discord-protocol.md for the protocol details this mirrors.
It also enforces Discord's global limit of 50 requests per second per bot token (interaction routes exempt).
"""

from __future__ import annotations

import asyncio
import json
import math
import mimetypes
import re
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import BodyPartReader, WSMsgType, web

JOINED_AT = "2026-01-01T00:00:00.000000+00:00"
ALL_PERMISSIONS = "2251799813685247"
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message_content
CONTENT_LIMIT = 2000
MESSAGE_ROUTE = re.compile(r"/channels/(\d+)/messages(?:/(\d+))?")
MENTION_RE = re.compile(r"<@!?(\d+)>")
ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")
EVERYONE_RE = re.compile(r"@(?:everyone|here)\b")
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)  # minutes
HAS_THREAD = 1 << 5  # message flag set on a thread's starter message
# Channel kinds (Discord's channel types, resources/channel "Channel Types"): text chat in voice and stage channels;
# forum and media channels hold only threads ("posts"), see topics/threads "Forums" and "Media Channels".
ANNOUNCEMENT = 5
VOICE_TYPES = (2, 13)
FORUM_TYPES = (15, 16)
REQUIRE_TAG = 1 << 4  # forum channel flag: every post needs one of the forum's tags
ADMINISTRATOR = 1 << 3
# Real servers never give @everyone Administrator, which would bypass every channel overwrite.
EVERYONE_PERMISSIONS = str(int(ALL_PERMISSIONS) & ~ADMINISTRATOR)
# Permission bits (topics/permissions "Bitwise Permission Flags") a test can deny the bot in a channel.
PERMISSION_BITS = {
    "add_reactions": 1 << 6,
    "view_channel": 1 << 10,
    "send_messages": 1 << 11,
    "embed_links": 1 << 14,
    "attach_files": 1 << 15,
    "read_message_history": 1 << 16,
    "connect": 1 << 20,
    "manage_threads": 1 << 34,
    "create_public_threads": 1 << 35,
    "create_private_threads": 1 << 36,
    "send_messages_in_threads": 1 << 38,
}
CHANNEL_ROUTE = re.compile(r"/channels/(\d+)(/.*)?")
# Application command types (interactions/application-commands "Application Command Types"): context menu
# commands on a user (2) and on a message (3), beside CHAT_INPUT (1).
USER_COMMAND = 2
MESSAGE_COMMAND = 3
# Snowflakes carry their creation time: milliseconds since Discord's epoch, 2015-01-01, in the top 42 bits
# (reference "Snowflakes"). discord.py reads a message's created_at from its id.
DISCORD_EPOCH_MS = 1_420_070_400_000
# Modal limits (interactions/receiving-and-responding "Modal"; components "Text Input"): title 45, custom_id 100,
# 1 to 5 components; a text input's label 45, min_length 0-4000, max_length 1-4000.
MODAL_TITLE_MAX = 45
TEXT_INPUT_MAX = 4000

Json = dict[str, Any]
Result = tuple[int, Any]  # (status, JSON payload or None for an empty body)
FileSpec = tuple[str, bytes] | tuple[str, bytes, str | None]  # (filename, data[, content type])


@dataclass
class RestCall:
    """One REST request received by the fake, with the status it was answered with."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0
    at: float = 0.0
    files: list[tuple[str, bytes]] = field(default_factory=list, repr=False)

    @property
    def allowed_mentions(self) -> Any:
        """The ``allowed_mentions`` object of the request body, if any."""
        return self.json.get("allowed_mentions") if isinstance(self.json, dict) else None


@dataclass(frozen=True)
class Ping:
    """A notification a bot's message sent: ``target`` is ``user:<id>``, ``role:<id>`` or ``everyone``."""

    message_id: int
    target: str
    on: str  # "create" or "edit"


@dataclass
class ErrorInjection:
    """Answer matching requests with a chosen Discord error (see ``FakeDiscord.inject_error``)."""

    method: str
    path: re.Pattern[str]
    status: int
    code: int
    message: str
    remaining: int | None  # None: every matching request until removed
    match: Callable[[RestCall], bool] | None = None
    hits: int = 0


@dataclass
class _Interaction:
    id: int
    token: str
    type: int
    channel_id: int
    guild_id: int | None
    user_id: int
    message_id: int | None = None  # the clicked message for component interactions
    acked: bool = False
    response_type: int | None = None
    original_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    created_at: float = field(default_factory=time.monotonic)  # when INTERACTION_CREATE was sent (token lifetime)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _error(status: int, code: int, message: str, errors: Json | None = None) -> Result:
    body: Json = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return status, body


def _field_error(code: str, message: str) -> Json:
    return {"_errors": [{"code": code, "message": message}]}


def _thread_form_errors(body: Json) -> Json:
    """Discord's checks on a new thread's name (1-100 characters) and auto-archive duration."""
    errors: Json = {}
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 100:
        errors["name"] = _field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    if (body.get("auto_archive_duration") or 1440) not in ARCHIVE_DURATIONS:
        errors["auto_archive_duration"] = _field_error("BASE_TYPE_CHOICES", "Value must be one of (60, 1440, ...).")
    return errors


def _option_type(value: Any) -> int:
    return {bool: 5, int: 4, float: 10}.get(type(value), 3)  # STRING, INTEGER, BOOLEAN and NUMBER options


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG or GIF (Discord reports them for images); 64x64 for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:4] == b"GIF8" and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    return 64, 64


def _snowflake(when: datetime) -> int:
    """The lowest snowflake of the millisecond `when` (as discord.utils.time_snowflake)."""
    return (int(when.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22


def _bad_context_menu(cmd: Json) -> bool:
    """Whether Discord refuses a USER or MESSAGE command: unlike slash commands their names may have capitals and
    spaces (1-32 characters), and they take no description and no options ("Application Command Naming")."""
    name = cmd.get("name", "")
    return not 1 <= len(name) <= 32 or bool(cmd.get("description")) or bool(cmd.get("options"))


def _text_inputs(components: Sequence[Json]) -> list[Json]:
    """The text inputs of a modal: in action rows (type 1) or labels (type 18, with one `component`)."""
    found: list[Json] = []
    for component in components:
        if component.get("type") == 1:
            found += _text_inputs(component.get("components") or [])
        elif component.get("type") == 18 and isinstance(component.get("component"), dict):
            found += _text_inputs([component["component"]])
        elif component.get("type") == 4:
            found.append(component)
    return found


def _modal_errors(data: Json) -> Json:
    """Discord's form checks of a MODAL callback's data (see MODAL_TITLE_MAX)."""
    errors: Json = {}
    if not 1 <= len(data.get("title") or "") <= MODAL_TITLE_MAX:
        errors["title"] = _field_error("BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MODAL_TITLE_MAX} in length.")
    if not 1 <= len(data.get("custom_id") or "") <= 100:
        errors["custom_id"] = _field_error("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    components = data.get("components") or []
    inputs = _text_inputs(components)
    bad_input = any(
        not 1 <= len(i.get("custom_id") or "") <= 100
        or len(i.get("label") or "") > MODAL_TITLE_MAX
        or i.get("style") not in (1, 2)
        or not 0 <= int(i.get("min_length") or 0) <= TEXT_INPUT_MAX
        or not 1 <= int(i.get("max_length") or TEXT_INPUT_MAX) <= TEXT_INPUT_MAX
        for i in inputs
    )
    if not 1 <= len(components) <= 5 or not inputs or bad_input:
        errors["components"] = _field_error("BASE_TYPE_BAD_LENGTH", "Invalid components.")
    return errors


def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    if payload is None:
        return web.Response(status=status, headers=headers)
    # Never web.json_response: discord.py compares the Content-Type header with == "application/json".
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=json.dumps(payload).encode(), status=status, headers=hdrs)


class FakeDiscord:
    """A fake Discord (gateway + REST) for one bot, one guild and two human users."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        bot_id: int = 100,
        bot_name: str = "ollacord",
        application_id: int = 300,
        guild_id: int = 400,
        guild_name: str = "Test Guild",
        channels: Sequence[int] = (500, 501),
        allowed_intents: int | None = None,
        rate_limit: tuple[int, float] | None = (5, 5.0),
        global_limit: tuple[int, float] | None = (50, 1.0),
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.application_id = application_id
        self.guild_id = guild_id
        self.guild_name = guild_name
        self.allowed_intents = allowed_intents
        self.rate_limit = rate_limit
        # Seconds every REST answer is held back, like a real round trip to Discord (50-150 ms).
        self.rest_latency = 0.0
        # Discord's global limit: 50 requests per second per bot token, every route except the interaction
        # callbacks and interaction webhooks (discord-protocol.md §8 and §12). None turns it off.
        self.global_limit = global_limit
        self.global_rate_limited = 0
        self._global_window: deque[float] = deque()
        names = {500: "general", 501: "random"}
        self.channel_ids: list[int] = list(dict.fromkeys([*channels]))
        self.channel_names: dict[int, str] = {c: names.get(c, f"channel-{c}") for c in self.channel_ids}
        self.bot_user: Json = self._user(bot_id, bot_name, None, bot=True)
        self.users: dict[int, Json] = {
            bot_id: self.bot_user,
            200: self._user(200, "alice", "Alice"),
            201: self._user(201, "bob", "Bob"),
        }
        self.dm_channels: dict[int, int] = {}  # DM channel id -> user id
        self.threads: dict[int, Json] = {}  # thread id -> thread channel object (as Discord returns it)
        self.channel_types: dict[int, int] = {}  # guild channel id -> channel type (absent: 0, a text channel)
        self.forum_tags: dict[int, list[Json]] = {}  # forum channel id -> its available_tags
        self.channel_flags: dict[int, int] = {}  # guild channel id -> channel flags (e.g. REQUIRE_TAG)
        self.denied: dict[int, int] = {}  # guild channel id -> permission bits denied to the bot (its threads too)
        self.uncached_threads: set[int] = set()  # threads left out of GUILD_CREATE (discord.py never cached them)

        self.port: int = 0
        self.calls: list[RestCall] = []
        self.messages: dict[int, Json] = {}
        self.message_history: dict[int, list[str]] = {}
        self.rate_limited: int = 0
        self.rate_limit_hits: list[tuple[int, float]] = []
        self.pings: list[Ping] = []  # notifications sent by the bot's channel messages, see _apply_mentions
        self._notified: dict[int, set[str]] = {}  # message id -> targets it has notified
        self.commands: dict[int | None, list[Json]] = {}  # guild id (None = global) -> synced commands
        self.identify_payloads: list[Json] = []
        self.gateway_connected = asyncio.Event()
        self.identified = asyncio.Event()
        # How new gateway connections are met: "accept", or "refuse" during an outage (the websocket upgrade is
        # answered 503 by Discord's edge; discord.py then waits out its reconnect backoff and tries again).
        self.gateway_mode = "accept"
        self.gateway_attempts = 0  # gateway connections tried, whatever their mode
        # While set, every REST request is answered with this 5xx status and an HTML page, like Discord's
        # edge during an outage. discord.py raises DiscordServerError at once for 503 and retries 500, 502,
        # 504 and 524 after 1, 3, 5... s (protocol notes, section 12).
        self.rest_outage: int | None = None
        # Sharding (Discord's gateway docs, "Sharding" and "Get Gateway Bot"): how many shards GET /gateway/bot
        # recommends; each connection's [shard_id, num_shards] from its IDENTIFY (absent: [0, 1]). Guild events
        # go only to the shard with shard_id = (guild_id >> 22) % num_shards, DMs only to shard 0.
        self.recommended_shards = 1
        self._shard_of: dict[web.WebSocketResponse, tuple[int, int]] = {}
        # The most sessions one shard ever had at once: Discord allows several, and sends each of them every event.
        self.max_sessions_per_shard = 0
        self._session_shard: dict[str, tuple[int, int]] = {}

        self._next_message_id = 10000
        self._next_interaction_id = 70000
        self._next_attachment_id = 90000
        self._next_command_id = 600
        self._blobs: dict[int, tuple[int, str, bytes, str | None]] = {}  # attachment id -> (channel, name, data, type)
        self._seq = 0
        self._sessions = 0
        self._sockets: set[web.WebSocketResponse] = set()  # identified (or resumed) connections
        self._open: set[web.WebSocketResponse] = set()  # every open connection
        self._send_lock = asyncio.Lock()
        self._windows: dict[int, deque[float]] = {}
        self._injected: list[list[Any]] = []  # [method, compiled regex, remaining, retry_after]
        self._disconnects: list[list[Any]] = []  # [method, compiled regex, remaining]
        self._interactions: dict[str, _Interaction] = {}
        # Discord: an interaction token is valid for 15 minutes; afterwards every /webhooks/{app}/{token} route
        # answers 401 with code 50027 (discord-api-docs #6851). Tests shorten it to seconds.
        self.interaction_token_lifetime: float = 900.0
        # Whether the bot has Manage Threads: needed to unarchive a locked thread (see _edit_channel).
        self.bot_can_manage_threads: bool = True
        self.reactions: dict[int, list[tuple[int, str]]] = {}  # message id -> (user id, emoji) added via REST
        self._error_injections: list[ErrorInjection] = []
        self._runner: web.AppRunner | None = None
        self._saved: tuple[str, yarl.URL] | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[[RestCall, re.Match[str]], Awaitable[Result]]]] = [
            (m, re.compile(p), h)
            for m, p, h in [
                ("GET", r"/users/@me", self._get_me),
                ("GET", r"/gateway/bot", self._get_gateway_bot),
                ("GET", r"/oauth2/applications/@me", self._get_application),
                ("POST", r"/users/@me/channels", self._create_dm),
                ("GET", r"/users/(\d+)", self._get_user),
                ("PUT", r"/applications/(\d+)/commands", self._put_commands),
                ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
                ("GET", r"/applications/(\d+)/commands", self._get_commands),
                ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
                ("GET", r"/channels/(\d+)", self._get_channel),
                ("PATCH", r"/channels/(\d+)", self._edit_channel),
                ("PUT", r"/channels/(\d+)/messages/(\d+)/reactions/([^/]+)/@me", self._add_reaction),
                ("POST", r"/channels/(\d+)/threads", self._start_thread),
                ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._start_thread),
                ("POST", r"/channels/(\d+)/typing", self._typing),
                ("POST", r"/channels/(\d+)/messages", self._create_message),
                ("GET", r"/channels/(\d+)/messages", self._list_messages),
                ("GET", r"/channels/(\d+)/messages/(\d+)", self._get_message),
                ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._edit_message),
                ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._delete_message),
                ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
                ("POST", r"/webhooks/(\d+)/([^/]+)", self._followup),
                *[
                    (method, r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._webhook_message)
                    for method in ("GET", "PATCH", "DELETE")
                ],
            ]
        ]
        # Pinned messages per channel, newest pin first: (message id, pinned_at). See "pins" below.
        self.pinned: dict[int, list[tuple[int, str]]] = {}
        self._routes += [
            ("GET", re.compile(r"/channels/(\d+)/messages/pins"), self._list_pins),
            ("PUT", re.compile(r"/channels/(\d+)/messages/pins/(\d+)"), self._put_pin),
            ("DELETE", re.compile(r"/channels/(\d+)/messages/pins/(\d+)"), self._delete_pin),
        ]

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:PORT/api/v10``."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Gateway websocket URL."""
        return f"ws://127.0.0.1:{self.port}/gateway-ws"

    async def start(self, port: int = 0) -> None:
        """Start serving on 127.0.0.1, on a random port unless told which (a bot may already be knocking)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway-ws", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._download)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close open websockets and stop the server."""
        self._sockets.clear()
        for ws in list(self._open):
            await ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def patch_discord_py(self) -> None:
        """Point discord.py's REST base and default gateway at this server."""
        if self._saved is None:
            self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.base_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)

    def restore_discord_py(self) -> None:
        """Undo ``patch_discord_py``."""
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    # ------------------------------------------------------------------ world objects

    @staticmethod
    def _user(uid: int, username: str, global_name: str | None, *, bot: bool = False) -> Json:
        user: Json = {"id": str(uid), "username": username, "discriminator": "0", "global_name": global_name}
        user.update(avatar=None, public_flags=0, flags=0)
        if bot:
            user["bot"] = True
        return user

    def _user_of(self, uid: int) -> Json:
        return self.users.get(uid) or self._user(uid, f"user{uid}", None)

    def _member(self, uid: int | None = None, *, permissions: str | None = None) -> Json:
        member: Json = {"roles": [], "joined_at": JOINED_AT, "flags": 0, "deaf": False, "mute": False, "nick": None}
        member.update(avatar=None, premium_since=None, pending=False)
        if uid is not None:
            member["user"] = self._user_of(uid)
        if permissions is not None:
            member["permissions"] = permissions
        return member

    def _channel(self, cid: int) -> Json:
        if cid in self.threads:
            return dict(self.threads[cid])
        if cid in self.dm_channels:
            return {"id": str(cid), "type": 1, "recipients": [self._user_of(self.dm_channels[cid])]}
        return {
            "id": str(cid),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.channel_names[cid],
            "position": self.channel_ids.index(cid),
            "permission_overwrites": self._overwrites(cid),
            "nsfw": False,
            "parent_id": None,
            **self._kind_fields(cid),
        }

    def _guild_payload(self) -> Json:
        members = [self._member(uid) for uid in self.users]
        everyone = {"id": str(self.guild_id), "name": "@everyone", "permissions": EVERYONE_PERMISSIONS, "position": 0}
        everyone.update(color=0, hoist=False, managed=False, mentionable=False, flags=0)
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "unavailable": False,
            "owner_id": "200",
            "member_count": len(members),
            "roles": [everyone],
            "channels": [self._channel(c) for c in self.channel_ids],
            "threads": [
                dict(t)
                for tid, t in self.threads.items()
                if not t["thread_metadata"]["archived"] and tid not in self.uncached_threads
            ],
            "members": members,
            "preferred_locale": "en-US",
            **{key: [] for key in ("emojis", "stickers", "features", "voice_states", "presences")},
        }

    def _known_channel(self, cid: int) -> bool:
        return cid in self.channel_names or cid in self.dm_channels or cid in self.threads

    def _guild_of(self, cid: int) -> int | None:
        return None if cid in self.dm_channels else self.guild_id

    # ------------------------------------------------------------------ messages

    def _new_message(
        self,
        channel_id: int,
        author_id: int,
        body: Json,
        *,
        msg_type: int = 0,
        files: Sequence[FileSpec] = (),
        message_id: int | None = None,
    ) -> Json:
        mid = self._next_message_id if message_id is None else message_id  # a forum post's message has its id
        if message_id is None:
            self._next_message_id += 1
        msg: Json = {
            "id": str(mid),
            "type": msg_type,
            "channel_id": str(channel_id),
            "author": self._user_of(author_id),
            "content": body.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self._attachments(files, channel_id),
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        self.messages[mid] = msg
        self.message_history[mid] = [msg["content"]]
        thread = self.threads.get(channel_id)
        if thread is not None:
            thread["message_count"] += 1
            thread["total_message_sent"] += 1
            thread["last_message_id"] = str(mid)
        return msg

    def _attachments(self, files: Sequence[FileSpec], channel_id: int) -> list[Json]:
        """Attachment objects for uploaded files; the bytes are served at their ``url`` by ``_download``."""
        out = []
        for name, data, *rest in files:
            ctype = rest[0] if rest else mimetypes.guess_type(name)[0]  # Discord sniffs bot uploads by name
            aid = self._next_attachment_id
            self._next_attachment_id += 1
            self._blobs[aid] = (channel_id, name, data, ctype)
            path = f"/attachments/{channel_id}/{aid}/{quote(name, safe='')}"
            signed = f"?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}&hm={aid:064x}&"  # like CDN URLs
            url = f"http://127.0.0.1:{self.port}{path}{signed}"
            att: Json = {"id": str(aid), "filename": name, "size": len(data), "url": url, "proxy_url": url}
            if ctype is not None:
                att["content_type"] = ctype
            if ctype is not None and ctype.startswith("image/"):
                att["width"], att["height"] = _image_size(data)
            out.append(att)
        return out

    def _reference(self, ref: Json, channel_id: int, mode: str = "full") -> Json:
        """message_reference + referenced_message fields for a reply to ``ref['message_id']``."""
        target = int(ref["message_id"])
        ref_channel = int(ref.get("channel_id") or channel_id)
        reference: Json = {"type": 0, "message_id": str(target), "channel_id": str(ref_channel)}
        if self._guild_of(ref_channel) is not None:
            reference["guild_id"] = str(self._guild_of(ref_channel))
        out: Json = {"message_reference": reference}
        if mode == "full":
            stored = self.messages.get(target)
            out["referenced_message"] = (
                None if stored is None else {k: v for k, v in stored.items() if k != "referenced_message"}
            )
        elif mode == "null":
            out["referenced_message"] = None
        elif mode != "absent":
            raise ValueError(f"reference_mode must be full, null or absent, not {mode!r}")
        return out

    def _apply_edit(self, msg: Json, body: Json, files: Sequence[FileSpec] = ()) -> None:
        for key in ("content", "components", "embeds"):
            if key in body:
                msg[key] = body[key] or ("" if key == "content" else [])
        if "flags" in body and body["flags"] is not None:
            msg["flags"] = (int(body["flags"]) & ~128) | (msg["flags"] & 64)
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            msg["attachments"] = [a for a in msg["attachments"] if a["id"] in keep]
        msg["attachments"] = msg["attachments"] + self._attachments(files, int(msg["channel_id"]))
        msg["edited_timestamp"] = _now_iso()
        if "content" in body:
            self.message_history.setdefault(int(msg["id"]), []).append(msg["content"])

    def _validate(self, body: Json, *, resulting: Json | None = None, files: int = 0) -> Result | None:
        """Discord's form checks: 400/50035 for over-limit fields, 400/50006 for an empty message."""
        errors: Json = {}
        content = body.get("content") or ""
        if not isinstance(content, str):
            errors["content"] = _field_error("STRING_TYPE_CONVERT", "Could not interpret value as string.")
        elif len(content) > CONTENT_LIMIT:
            errors["content"] = _field_error("BASE_TYPE_MAX_LENGTH", f"Must be {CONTENT_LIMIT} or fewer in length.")
        embeds = body.get("embeds") or []
        if len(embeds) > 10:
            errors["embeds"] = _field_error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        for i, embed in enumerate(embeds):
            for key, limit in (("title", 256), ("description", 4096)):
                if len(embed.get(key) or "") > limit:
                    msg = f"Must be {limit} or fewer in length."
                    errors.setdefault("embeds", {})[str(i)] = {key: _field_error("BASE_TYPE_MAX_LENGTH", msg)}
        total = sum(len(e.get("title") or "") + len(e.get("description") or "") for e in embeds)
        total += sum(len(f.get("name", "")) + len(f.get("value", "")) for e in embeds for f in e.get("fields") or [])
        if total > 6000:
            errors.setdefault(
                "embeds", _field_error("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
            )
        rows = body.get("components") or []
        too_many = len(rows) > 5 or any(len(r.get("components") or []) > 5 for r in rows)
        long_id = any(len(c.get("custom_id") or "") > 100 for r in rows for c in r.get("components") or [])
        if too_many or long_id:
            errors["components"] = _field_error("BASE_TYPE_BAD_LENGTH", "Invalid components.")
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        state = body if resulting is None else {**resulting, **{k: v for k, v in body.items() if k in resulting}}
        keys = ("content", "embeds", "components", "attachments", "sticker_ids", "poll")
        if not files and not any(state.get(k) for k in keys):
            return _error(400, 50006, "Cannot send an empty message")
        return None

    def bot_messages(self, channel_id: int | None = None) -> list[Json]:
        """Messages authored by the bot (ephemeral interaction replies excluded), in creation order."""
        return [
            m
            for m in self.messages.values()
            if m["author"]["id"] == str(self.bot_id)
            and not m["flags"] & 64
            and (channel_id is None or m["channel_id"] == str(channel_id))
        ]

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self.gateway_attempts += 1
        if self.gateway_mode == "refuse":
            return web.Response(status=503, text="503 Service Unavailable")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        self._open.add(ws)
        self.gateway_connected.set()
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op, data = payload.get("op"), payload.get("d")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
                elif op == 2:
                    await self._identify(ws, data)
                elif op == 6:
                    if data.get("token") != self.token:
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    self._shard_of[ws] = self._session_shard.get(str(data.get("session_id")), (0, 1))
                    self._sockets.add(ws)
                    await self._send(ws, "RESUMED", {})
        finally:
            self._sockets.discard(ws)
            self._open.discard(ws)
            self._shard_of.pop(ws, None)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> None:
        self.identify_payloads.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        denied = int(data.get("intents", 0)) & PRIVILEGED_INTENTS
        if self.allowed_intents is not None and denied & ~self.allowed_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard_id, shard_count = data.get("shard") or (0, 1)
        if not 0 <= shard_id < shard_count:
            await ws.close(code=4010, message=b"Invalid shard.")
            return
        self._sessions += 1
        session_id = f"fake-session-{self._sessions}"
        self._shard_of[ws] = self._session_shard[session_id] = (shard_id, shard_count)
        on_shard = self.shard_for(self.guild_id, shard_count) == shard_id
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if on_shard else [],
            "session_id": session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "shard": [shard_id, shard_count],
            **{key: [] for key in ("private_channels", "presences", "relationships")},
        }
        self._sockets.add(ws)
        same_shard = sum(1 for other in self._sockets if self._shard_of.get(other) == (shard_id, shard_count))
        self.max_sessions_per_shard = max(self.max_sessions_per_shard, same_shard)
        await self._send(ws, "READY", ready)
        if on_shard:
            await self._send(ws, "GUILD_CREATE", self._guild_payload())
        self.identified.set()

    @staticmethod
    def shard_for(guild_id: int | None, shard_count: int) -> int:
        """The shard that receives a guild's events; DMs (no guild) go to shard 0."""
        return 0 if guild_id is None else (guild_id >> 22) % shard_count

    def shards_connected(self) -> list[tuple[int, int]]:
        """[shard_id, num_shards] of every identified (or resumed) connection."""
        return sorted(self._shard_of[ws] for ws in self._sockets if ws in self._shard_of)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Json) -> None:
        async with self._send_lock:
            self._seq += 1
            if not ws.closed:
                await ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway connection with ``code`` (4000 makes discord.py reconnect and RESUME)."""
        for ws in list(self._sockets):
            self._sockets.discard(ws)
            await ws.close(code=code, message=b"dropped by test")

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a DISPATCH event to every identified client whose shard receives it (every client, unsharded).

        Discord sends an event to every session of its shard: two sessions of one shard both get it.
        """
        raw_guild = (
            data.get("id") if event in ("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE") else data.get("guild_id")
        )
        guild_id = int(raw_guild) if raw_guild is not None else None
        for ws in list(self._sockets):
            shard_id, shard_count = self._shard_of.get(ws, (0, 1))
            if self.shard_for(guild_id, shard_count) == shard_id:
                await self._send(ws, event, data)

    async def _dispatch_message(self, event: str, msg: Json) -> None:
        payload = dict(msg)
        if "guild_id" in payload and "member" not in payload:
            payload["member"] = self._member()
        await self.dispatch(event, payload)

    # ------------------------------------------------------------------ REST plumbing

    def inject_429(self, method: str, path_regex: str, count: int = 1, retry_after: float = 0.05) -> None:
        """Answer the next ``count`` requests matching method and path (regex search) with a 429."""
        self._injected.append([method.upper(), re.compile(path_regex), count, retry_after])

    def inject_disconnect(self, method: str, path_regex: str, count: int = 1) -> None:
        """Drop the connection, without an answer, on the next ``count`` requests matching method and path.

        What a network failure looks like to the client (the issue 8 run saw it while a command reported an
        error): aiohttp raises ``ServerDisconnectedError``, a ``ClientError`` that discord.py passes on as is
        (it retries only OSError 54/10054, connection reset).
        """
        self._disconnects.append([method.upper(), re.compile(path_regex), count])

    def inject_error(
        self,
        method: str,
        path_regex: str,
        status: int,
        code: int = 0,
        message: str = "",
        *,
        count: int | None = 1,
        match: Callable[[RestCall], bool] | None = None,
    ) -> ErrorInjection:
        """Answer the next ``count`` requests matching method and path (regex search) with a Discord error.

        ``count=None`` keeps answering until ``remove_injection``; ``match`` narrows it to calls it accepts
        (e.g. only bodies with a ``message_reference``). The body is Discord's ``{"message", "code"}``.
        Remember how discord.py reacts (discord-protocol.md §5 and §12): on bot-token routes 500/502/504/524
        are retried after 1 s, 3 s, 5 s… but 503 raises at once; the webhook and interaction routes retry
        every 5xx that way. 401/400 and the other 4xx raise at once everywhere.
        """
        injection = ErrorInjection(method.upper(), re.compile(path_regex), status, code, message, count, match)
        self._error_injections.append(injection)
        return injection

    def remove_injection(self, injection: ErrorInjection) -> None:
        """Stop an ``inject_error`` answering."""
        if injection in self._error_injections:
            self._error_injections.remove(injection)

    def _injected_error(self, call: RestCall) -> Result | None:
        for inj in self._error_injections:
            if inj.remaining == 0 or inj.method != call.method or not inj.path.search(call.path):
                continue
            if inj.match is not None and not inj.match(call):
                continue
            if inj.remaining is not None:
                inj.remaining -= 1
            inj.hits += 1
            return _error(inj.status, inj.code, inj.message or f"{inj.status}: injected by the test")
        return None

    def _too_many(self, retry_after: float) -> web.Response:
        self.rate_limited += 1
        retry_after = math.ceil(retry_after * 1000) / 1000  # never tell the client to retry too early
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        headers = {"Via": "1.1 google", "Retry-After": str(max(1, int(retry_after + 0.999)))}
        return _json_response(429, body, {**headers, "X-RateLimit-Scope": "user"})

    def _check_global_limit(self, call: RestCall) -> float | None:
        """Seconds to wait if this request would be over the global limit in the sliding window, else None.

        Interaction callbacks and interaction webhook routes are not bound by it (Discord's "Receiving and
        Responding" page); every other route counts, typing indicators included.
        """
        if self.global_limit is None or call.path.startswith(("/interactions/", "/webhooks/")):
            return None
        limit, window = self.global_limit
        stamps = self._global_window
        while stamps and stamps[0] <= call.at - window:
            stamps.popleft()
        if len(stamps) >= limit:
            return max(stamps[0] + window - call.at, 0.001)
        stamps.append(call.at)
        return None

    def _too_many_globally(self, retry_after: float) -> web.Response:
        """A global 429: it stops every request of the bot until retry_after has passed (discord.py obeys)."""
        self.rate_limited += 1
        self.global_rate_limited += 1
        retry_after = math.ceil(retry_after * 1000) / 1000
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": True}
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, int(retry_after + 0.999))),
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
        }
        return _json_response(429, body, headers)

    def busiest_window(self, window: float = 1.0) -> int:
        """The most requests (subject to the global limit) that arrived within any `window` seconds."""
        exempt = ("/interactions/", "/webhooks/", "/attachments/")  # the last one is the CDN, not the API
        times = sorted(c.at for c in self.calls if not c.path.startswith(exempt))
        most = 0
        start = 0
        for end, at in enumerate(times):
            while times[start] <= at - window:
                start += 1
            most = max(most, end - start + 1)
        return most

    def _check_rate_limit(self, call: RestCall) -> float | None:
        """Seconds to wait if this channel message create/edit exceeds the sliding window, else None."""
        m = MESSAGE_ROUTE.fullmatch(call.path)
        if self.rate_limit is None or m is None or call.method not in ("POST", "PATCH"):
            return None
        if (call.method == "POST") == bool(m.group(2)):
            return None
        limit, window = self.rate_limit
        channel = int(m.group(1))
        stamps = self._windows.setdefault(channel, deque())
        while stamps and stamps[0] <= call.at - window:
            stamps.popleft()
        if len(stamps) >= limit:
            self.rate_limit_hits.append((channel, call.at))
            return max(stamps[0] + window - call.at, 0.001)
        stamps.append(call.at)
        return None

    async def _read_body(self, request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.read()
            return (json.loads(raw) if raw else None), []
        if ctype.startswith("multipart/"):
            body: Any = None
            files: list[tuple[str, bytes]] = []
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read()
                if part.name == "payload_json":
                    body = json.loads(data)
                else:
                    files.append((part.filename or part.name or "file", bytes(data)))
            return body, files
        await request.read()
        return None, []

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        call = RestCall(request.method, path, dict(request.query), None, at=time.monotonic())
        self.calls.append(call)
        call.json, call.files = await self._read_body(request)
        if self.rest_latency > 0:
            await asyncio.sleep(self.rest_latency)
        if (wait := self._check_global_limit(call)) is not None:
            call.status = 429
            return self._too_many_globally(wait)
        for drop in self._disconnects:
            if drop[2] > 0 and drop[0] == call.method and drop[1].search(path):
                drop[2] -= 1
                call.status = -1  # no answer at all
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)  # never sent: the connection is already gone
        for inj in self._injected:
            if inj[2] > 0 and inj[0] == call.method and inj[1].search(path):
                inj[2] -= 1
                call.status = 429
                return self._too_many(inj[3])
        if self.rest_outage is not None:
            call.status = self.rest_outage
            page = f"<html><body><h1>{self.rest_outage} Service Unavailable</h1></body></html>"
            return web.Response(status=self.rest_outage, text=page, content_type="text/html")
        if (injected := self._injected_error(call)) is not None:
            call.status = injected[0]
            return _json_response(*injected)
        public = path.startswith(("/webhooks/", "/interactions/"))
        if not public and request.headers.get("Authorization") != f"Bot {self.token}":
            status, payload = _error(401, 0, "401: Unauthorized")
        elif (wait := self._check_rate_limit(call)) is not None:
            call.status = 429
            return self._too_many(wait)
        elif (refused := self._permission_refusal(call)) is not None:
            status, payload = refused
        else:
            status, payload = _error(404, 0, "404: Not Found")
            for method, pattern, handler in self._routes:
                match = pattern.fullmatch(path)
                if match and method == call.method:
                    status, payload = await handler(call, match)
                    break
        call.status = status
        return _json_response(status, payload)

    async def _download(self, request: web.Request) -> web.Response:
        """Attachment "CDN": the stored bytes with their content type; no auth, like Discord's signed URLs."""
        call = RestCall("GET", request.path, dict(request.query), None, at=time.monotonic())
        self.calls.append(call)
        info = request.match_info
        blob = self._blobs.get(int(info["id"])) if info["id"].isdigit() else None
        if blob is None or str(blob[0]) != info["channel"] or blob[1] != info["filename"]:
            call.status = 404
            return web.Response(status=404, text="404: Not Found")
        call.status = 200
        return web.Response(body=blob[2], headers={"Content-Type": blob[3] or "application/octet-stream"})

    # ------------------------------------------------------------------ REST handlers

    async def _get_gateway_bot(self, call: RestCall, m: re.Match[str]) -> Result:
        # Discord's "Get Gateway Bot" (events/gateway): the URL, the recommended shard count, the identify budget.
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}

    async def _get_me(self, call: RestCall, m: re.Match[str]) -> Result:
        return 200, {**self.bot_user, "verified": True, "mfa_enabled": False}

    async def _get_application(self, call: RestCall, m: re.Match[str]) -> Result:
        app: Json = {"id": str(self.application_id), "name": self.bot_user["username"], "description": ""}
        app.update(icon=None, bot_public=True, bot_require_code_grant=False, verify_key="0" * 64, flags=0)
        app.update(owner=self.users[200], team=None, interactions_endpoint_url=None, bot=self.bot_user)
        return 200, app

    async def _get_user(self, call: RestCall, m: re.Match[str]) -> Result:
        uid = int(m.group(1))
        return (200, self.users[uid]) if uid in self.users else _error(404, 10013, "Unknown User")

    async def _create_dm(self, call: RestCall, m: re.Match[str]) -> Result:
        user_id = int(call.json["recipient_id"])
        self.dm_channels[9000 + user_id] = user_id
        return 200, self._channel(9000 + user_id)

    async def _put_commands(self, call: RestCall, m: re.Match[str]) -> Result:
        if int(m.group(1)) != self.application_id:
            return _error(403, 50001, "Missing Access")
        guild = int(m.group(2)) if m.lastindex == 2 else None
        previous = {c["name"]: c["id"] for c in self.commands.get(guild, [])}
        errors: Json = {}
        for i, cmd in enumerate(call.json or []):
            name, desc = cmd.get("name", ""), cmd.get("description", "")
            bad = not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower() or len(desc) > 100
            if int(cmd.get("type") or 1) in (USER_COMMAND, MESSAGE_COMMAND):
                bad = _bad_context_menu(cmd)
            if bad or len(cmd.get("options") or []) > 25:
                errors[str(i)] = _field_error("APPLICATION_COMMAND_INVALID", "Invalid application command")
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        stored = []
        for cmd in call.json or []:
            if cmd["name"] not in previous:
                previous[cmd["name"]] = str(self._next_command_id)
                self._next_command_id += 1
            out = {"type": 1, "options": [], "description": "", **cmd, "id": previous[cmd["name"]], "version": "1"}
            out["application_id"] = str(self.application_id)
            if guild is not None:
                out["guild_id"] = str(guild)
            stored.append(out)
        self.commands[guild] = stored
        return 200, stored

    async def _get_commands(self, call: RestCall, m: re.Match[str]) -> Result:
        return 200, self.commands.get(int(m.group(2)) if m.lastindex == 2 else None, [])

    async def _get_channel(self, call: RestCall, m: re.Match[str]) -> Result:
        cid = int(m.group(1))
        return (200, self._channel(cid)) if self._known_channel(cid) else _error(404, 10003, "Unknown Channel")

    async def _start_thread(self, call: RestCall, m: re.Match[str]) -> Result:
        """``POST /channels/{c}/threads`` and ``POST /channels/{c}/messages/{m}/threads`` (201 + thread channel)."""
        parent = int(m.group(1))
        kind = self.channel_types.get(parent, 0)
        if parent not in self.channel_names or kind in VOICE_TYPES:
            if self._known_channel(parent):
                return _error(400, 50024, "Cannot execute action on this channel type")
            return _error(404, 10003, "Unknown Channel")
        body: Json = call.json or {}
        starter = int(m.group(2)) if m.lastindex == 2 else None
        if kind in FORUM_TYPES:
            if starter is not None:  # "Does not work on a GUILD_FORUM or a GUILD_MEDIA channel"
                return _error(400, 50024, "Cannot execute action on this channel type")
            return await self._start_forum_post(call, parent)
        errors = _thread_form_errors(body)
        name, duration = body.get("name"), body.get("auto_archive_duration") or 1440
        # The thread's type matches its parent: announcement channels have announcement threads (10) and no
        # private ones (topics/threads "Public & Private Threads"); text channels have 11 and 12.
        allowed = (10,) if kind == ANNOUNCEMENT else (11, 12)
        thread_type = allowed[0] if starter is not None else int(body.get("type") or 12)
        if thread_type not in allowed:
            errors["type"] = _field_error("BASE_TYPE_CHOICES", f"Value must be one of {set(allowed)}.")
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        if starter is not None:
            if self._lookup(parent, starter) is None:
                return _error(404, 10008, "Unknown Message")
            if starter in self.threads:
                return _error(400, 160004, "A thread has already been created for this message")
        thread = await self._open_thread(
            parent,
            str(name),
            thread_type,
            self.bot_id,
            duration,
            starter=starter,
            slowmode=int(body.get("rate_limit_per_user") or 0),
            invitable=bool(body.get("invitable", True)),
        )
        return 201, thread

    async def _open_thread(
        self,
        parent: int,
        name: str,
        thread_type: int,
        owner_id: int,
        duration: int,
        *,
        starter: int | None = None,
        slowmode: int = 0,
        invitable: bool = True,
        cached: bool = True,
    ) -> Json:
        """Create and store a thread, dispatch THREAD_CREATE and the messages Discord emits with it.

        ``cached=False`` dispatches nothing and leaves the thread out of GUILD_CREATE: a thread the client has
        never seen (created before it connected, or evicted from its cache), so its messages reach discord.py
        with a channel it cannot resolve.
        """
        if starter is None:
            tid = self._next_message_id  # threads and messages share the snowflake sequence
            self._next_message_id += 1
        else:
            tid = starter  # a thread started from a message has the message's id
        now = _now_iso()
        metadata: Json = {"archived": False, "auto_archive_duration": duration, "archive_timestamp": now}
        metadata.update(locked=False, create_timestamp=now)
        if thread_type == 12:
            metadata["invitable"] = invitable
        thread: Json = {
            "id": str(tid),
            "type": thread_type,
            "guild_id": str(self.guild_id),
            "parent_id": str(parent),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "total_message_sent": 0,
            "member_count": 1,
            "rate_limit_per_user": slowmode,
            "flags": 0,
            "thread_metadata": metadata,
        }
        self.threads[tid] = thread
        if not cached:
            self.uncached_threads.add(tid)
            return dict(thread)
        event: Json = {**thread, "newly_created": True}
        if owner_id == self.bot_id:  # the creator joins its thread; the bot learns its own membership
            event["member"] = {"id": str(tid), "user_id": str(owner_id), "join_timestamp": now, "flags": 1}
        await self.dispatch("THREAD_CREATE", event)
        if starter is not None:  # the starter message now links to its thread
            msg = self.messages[starter]
            msg["flags"] |= HAS_THREAD
            msg["thread"] = thread
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        elif thread_type == 11 and self.channel_types.get(parent, 0) not in FORUM_TYPES:
            # "X started a thread: name" system message in the parent channel (a forum has no messages)
            note = self._new_message(parent, owner_id, {"content": name}, msg_type=18)
            note["message_reference"] = {"type": 0, "channel_id": str(tid), "guild_id": str(self.guild_id)}
            await self._dispatch_message("MESSAGE_CREATE", note)
        return dict(thread)

    async def _typing(self, call: RestCall, m: re.Match[str]) -> Result:
        return (204, None) if self._known_channel(int(m.group(1))) else _error(404, 10003, "Unknown Channel")

    async def _create_message(self, call: RestCall, m: re.Match[str]) -> Result:
        cid = int(m.group(1))
        if not self._known_channel(cid):
            return _error(404, 10003, "Unknown Channel")
        if self.channel_types.get(cid, 0) in FORUM_TYPES:  # "Messages cannot be sent directly in forum channels"
            return _error(400, 40058, "Cannot send a message in a forum channel")
        body: Json = call.json or {}
        if (bad := self._validate(body, files=len(call.files))) is not None:
            return bad
        if (refused := await self._post_into_archived(cid)) is not None:
            return refused
        ref = body.get("message_reference")
        msg = self._new_message(cid, self.bot_id, body, msg_type=19 if ref else 0, files=call.files)
        if ref:
            msg.update(self._reference(ref, cid))
        self._apply_mentions(msg, body, on="create")
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return 200, msg

    def _apply_mentions(self, msg: Json, body: Json, *, on: str) -> None:
        """Discord's mention parsing of a bot's message create or content edit, and the pings it sends.

        Without ``allowed_mentions`` every user, role and @everyone/@here in the content is pinged, and a reply
        pings the author of the message it replies to. With it, only what it allows is, and ``replied_user``
        defaults to false (discord-api-docs PR #2246, "Allowed Mentions Object"). Discord does not keep
        ``allowed_mentions``: an edit is parsed again under its own, so an edit without one pings
        (discord-api-docs #2474). A mention already made by the message does not notify again.
        """
        if on == "edit" and "content" not in body:
            return
        allowed = body.get("allowed_mentions")
        if allowed is None:
            parse, users_ok, roles_ok, replied = {"users", "roles", "everyone"}, set(), set(), True
        else:
            parse = set(allowed.get("parse") or [])
            users_ok = {int(uid) for uid in allowed.get("users") or []}
            roles_ok = {int(rid) for rid in allowed.get("roles") or []}
            replied = bool(allowed.get("replied_user", False))
        content = msg["content"]
        users = [
            uid
            for uid in dict.fromkeys(int(u) for u in MENTION_RE.findall(content))
            if "users" in parse or uid in users_ok
        ]
        roles = [
            rid
            for rid in dict.fromkeys(int(r) for r in ROLE_MENTION_RE.findall(content))
            if "roles" in parse or rid in roles_ok
        ]
        everyone = "everyone" in parse and EVERYONE_RE.search(content) is not None
        replied_to = int(((msg.get("referenced_message") or {}).get("author") or {}).get("id") or 0)
        if replied and replied_to and replied_to != self.bot_id and replied_to not in users:
            users.append(replied_to)
        targets = [f"user:{u}" for u in users] + [f"role:{r}" for r in roles] + (["everyone"] if everyone else [])
        already = self._notified.setdefault(int(msg["id"]), set())
        self.pings += [Ping(int(msg["id"]), target, on) for target in targets if target not in already]
        already.update(targets)
        msg["mentions"] = [self._user_of(uid) for uid in users]
        msg["mention_roles"] = [str(rid) for rid in roles]
        msg["mention_everyone"] = everyone

    async def _list_messages(self, call: RestCall, m: re.Match[str]) -> Result:
        cid = str(m.group(1))
        limit = max(1, min(100, int(call.query.get("limit", 50))))
        before, after = int(call.query.get("before", 1 << 63)), int(call.query.get("after", 0))
        found = [
            msg
            for mid, msg in sorted(self.messages.items(), reverse=True)
            if msg["channel_id"] == cid and not msg["flags"] & 64 and after < mid < before
        ]
        page = found[-limit:] if "after" in call.query and "before" not in call.query else found[:limit]
        return 200, [self._as_read(msg) for msg in page]

    def _as_read(self, msg: Json) -> Json:
        """A stored message as a read returns it: `referenced_message` is the parent as it is now.

        Discord resolves the reference when the message is read: the parent's current content, or null
        once the parent is deleted ("Message Object", referenced_message: "if the field exists but is
        null, the referenced message was deleted").
        """
        reference = msg.get("message_reference")
        if reference is None or "referenced_message" not in msg:
            return msg
        parent = self.messages.get(int(reference["message_id"]))
        current = None if parent is None else {k: v for k, v in parent.items() if k != "referenced_message"}
        return {**msg, "referenced_message": current}

    def _lookup(self, cid: int, mid: int) -> Json | None:
        msg = self.messages.get(mid)
        return msg if msg is not None and msg["channel_id"] == str(cid) else None

    async def _get_message(self, call: RestCall, m: re.Match[str]) -> Result:
        msg = self._lookup(int(m.group(1)), int(m.group(2)))
        return (200, self._as_read(msg)) if msg is not None else _error(404, 10008, "Unknown Message")

    async def _edit_message(self, call: RestCall, m: re.Match[str]) -> Result:
        msg = self._lookup(int(m.group(1)), int(m.group(2)))
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if msg["author"]["id"] != str(self.bot_id) and set(call.json or {}) - {"flags"}:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        if msg["flags"] & 64:  # an ephemeral message exists only for its interaction's token, not on channel routes
            return _error(404, 10008, "Unknown Message")
        if self._archived(int(m.group(1))):
            return _error(400, 50083, "Thread is archived")
        body: Json = call.json or {}
        if (bad := self._validate(body, resulting=msg, files=len(call.files))) is not None:
            return bad
        self._apply_edit(msg, body, call.files)
        self._apply_mentions(msg, body, on="edit")
        await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg

    async def _delete_message(self, call: RestCall, m: re.Match[str]) -> Result:
        if self._lookup(int(m.group(1)), int(m.group(2))) is None:
            return _error(404, 10008, "Unknown Message")
        if self._archived(int(m.group(1))):
            return _error(400, 50083, "Thread is archived")
        await self.delete_message(int(m.group(2)))
        return 204, None

    # ------------------------------------------------------------------ interactions (REST side)

    def _interaction_for(self, app_or_id: int, token: str, *, by_id: bool) -> _Interaction | None:
        it = self._interactions.get(token)
        if it is None or (by_id and it.id != app_or_id) or (not by_id and app_or_id != self.application_id):
            return None
        return it

    def _create_response_message(self, it: _Interaction, body: Json) -> Json:
        msg_type = 20 if it.type == 2 else 0
        msg = self._new_message(it.channel_id, self.bot_id, body, msg_type=msg_type)
        msg["webhook_id"] = str(self.application_id)
        msg["application_id"] = str(self.application_id)
        meta = {
            "id": str(it.id),
            "type": it.type,
            "user": self._user_of(it.user_id),
            "authorizing_integration_owners": {},
        }
        msg["interaction_metadata"] = meta
        return msg

    async def _callback(self, call: RestCall, m: re.Match[str]) -> Result:
        it = self._interaction_for(int(m.group(1)), m.group(2), by_id=True)
        if it is None:
            return _error(404, 10062, "Unknown interaction")
        if it.acked:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body: Json = call.json or {}
        rtype, data = int(body.get("type", 0)), body.get("data") or {}
        message: Json | None = None
        target = self.messages.get(it.message_id or -1) if rtype == 7 else None
        if rtype in (4, 7) and (bad := self._validate(data, resulting=target)) is not None:
            return bad
        if rtype == 8 and len(data.get("choices") or []) > 25:
            errors = {"data": {"choices": _field_error("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")}}
            return _error(400, 50035, "Invalid Form Body", errors)
        if rtype in (6, 7) and it.message_id is None:
            return _error(400, 50035, "Invalid Form Body", {"type": _field_error("INTERACTION_TYPE", "Invalid type")})
        if rtype == 9:  # MODAL: "Not available for MODAL_SUBMIT and PING interactions" (receiving-and-responding)
            modal_errors = _modal_errors(data)
            if it.type == 5:
                modal_errors["type"] = _field_error("INTERACTION_TYPE", "Invalid type")
            if modal_errors:
                return _error(400, 50035, "Invalid Form Body", modal_errors)
        if rtype == 4:
            message = self._create_response_message(it, data)
            message["flags"] = int(data.get("flags") or 0) & (64 | 4 | 4096)
        elif rtype == 5:
            message = self._create_response_message(
                it, {"content": "", "flags": 128 | int(data.get("flags") or 0) & 64}
            )
        elif rtype in (6, 7):
            it.original_id = it.message_id
            if target is not None:
                self._apply_edit(target, data)
                message = target
        it.acked, it.response_type = True, rtype
        if message is not None and rtype in (4, 5):
            it.original_id = int(message["id"])
        if message is not None and not message["flags"] & 64:
            await self._dispatch_message("MESSAGE_CREATE" if rtype in (4, 5) else "MESSAGE_UPDATE", message)
        if call.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        meta: Json = {"id": str(it.id), "type": it.type, "activity_instance_id": None}
        if message is not None:
            meta["response_message_id"] = message["id"]
            meta["response_message_loading"] = rtype == 5
            meta["response_message_ephemeral"] = bool(message["flags"] & 64)
        resource: Json = {"type": rtype}
        if message is not None and rtype in (4, 7):
            resource["message"] = message
        return 200, {"interaction": meta, "resource": resource}

    async def _followup(self, call: RestCall, m: re.Match[str]) -> Result:
        it = self._interaction_for(int(m.group(1)), m.group(2), by_id=False)
        if it is not None and self._token_expired(it):
            return _error(401, 50027, "Invalid Webhook Token")
        if it is None or not it.acked:
            return _error(404, 10015, "Unknown Webhook")
        body: Json = call.json or {}
        if (bad := self._validate(body, files=len(call.files))) is not None:
            return bad
        # An ephemeral followup is not posted in the channel, so an archived thread does not stop it.
        if not int(body.get("flags") or 0) & 64 and (refused := await self._post_into_archived(it.channel_id)):
            return refused
        original = self.messages.get(it.original_id or -1)
        if original is not None and original["flags"] & 128:
            # Like Discord: the first followup after a deferred response replaces the "thinking" message.
            original["flags"] &= ~128
            self._apply_edit(original, {**body, "flags": original["flags"]}, call.files)
            original["edited_timestamp"] = None
            msg, event = original, "MESSAGE_UPDATE"
        else:
            msg, event = self._create_response_message(it, body), "MESSAGE_CREATE"
            msg["flags"] = int(body.get("flags") or 0) & (64 | 4 | 4096)
            msg["attachments"] = self._attachments(call.files, it.channel_id)
            it.followup_ids.append(int(msg["id"]))
        if not msg["flags"] & 64:
            await self._dispatch_message(event, msg)
        return (200, msg) if call.query.get("wait") in ("1", "true", "True") else (204, None)

    async def _webhook_message(self, call: RestCall, m: re.Match[str]) -> Result:
        it = self._interaction_for(int(m.group(1)), m.group(2), by_id=False)
        if it is not None and self._token_expired(it):
            return _error(401, 50027, "Invalid Webhook Token")
        if it is None:
            return _error(404, 10015, "Unknown Webhook")
        mid = it.original_id if m.group(3) == "@original" else int(m.group(3))
        msg = self.messages.get(mid) if mid is not None and (mid == it.original_id or mid in it.followup_ids) else None
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if call.method == "GET":
            return 200, msg
        if not msg["flags"] & 64 and self._archived(it.channel_id):
            return _error(400, 50083, "Thread is archived")
        if call.method == "DELETE":
            await self.delete_message(int(msg["id"]))
            return 204, None
        body: Json = call.json or {}
        if (bad := self._validate(body, resulting=msg, files=len(call.files))) is not None:
            return bad
        was_loading = bool(msg["flags"] & 128)
        msg["flags"] &= ~128
        self._apply_edit(msg, {k: v for k, v in body.items() if k != "flags"}, call.files)
        if was_loading:  # completing a deferred response does not mark the message as edited
            msg["edited_timestamp"] = None
        if not msg["flags"] & 64:
            await self._dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg

    # ------------------------------------------------------------------ token expiry, archived threads, reactions

    def _token_expired(self, it: _Interaction) -> bool:
        return time.monotonic() - it.created_at >= self.interaction_token_lifetime

    def _archived(self, cid: int) -> bool:
        thread = self.threads.get(cid)
        return thread is not None and bool(thread["thread_metadata"]["archived"])

    async def _post_into_archived(self, cid: int) -> Result | None:
        """Posting into an archived thread: 400/50083 if the bot may not unarchive it, else it unarchives it.

        Discord unarchives a thread automatically when a message is sent in it (discord-api-docs #2855), but
        only a member with Manage Threads may reopen a locked one (Channel.md, thread metadata ``locked``).
        Editing, deleting and reacting in an archived thread always answer 50083 (discord-api-docs #2855, #4302).
        """
        thread = self.threads.get(cid)
        if thread is None or not thread["thread_metadata"]["archived"]:
            return None
        if thread["thread_metadata"]["locked"] and not self.bot_can_manage_threads:
            return _error(400, 50083, "Thread is archived")
        await self._set_archived(thread, archived=False)
        return None

    async def _set_archived(self, thread: Json, *, archived: bool, locked: bool | None = None) -> None:
        meta = thread["thread_metadata"]
        if meta["archived"] != archived:
            meta["archive_timestamp"] = _now_iso()
        meta["archived"] = archived
        if locked is not None:
            meta["locked"] = locked
        await self.dispatch("THREAD_UPDATE", dict(thread))

    async def _edit_channel(self, call: RestCall, m: re.Match[str]) -> Result:
        """``PATCH /channels/{id}``; modelled for threads only (archive, unarchive, lock, rename).

        Discord's Modify Channel, JSON params (Thread): setting ``archived`` to false on an unlocked thread needs
        only Send Messages; on a locked thread, and any change of ``locked``, it needs Manage Threads; any other
        edit needs the thread to be unarchived or unarchived by the same request (discord-api-docs PR #3108).
        Other channels: answered with the unchanged channel.
        """
        cid = int(m.group(1))
        if not self._known_channel(cid):
            return _error(404, 10003, "Unknown Channel")
        thread = self.threads.get(cid)
        if thread is None:
            return 200, self._channel(cid)
        body: Json = call.json or {}
        meta = thread["thread_metadata"]
        archived = bool(body.get("archived", meta["archived"]))
        locked = bool(body.get("locked", meta["locked"]))
        if meta["archived"] and archived:
            return _error(400, 50083, "Thread is archived")
        if not self.bot_can_manage_threads and (locked != meta["locked"] or (meta["archived"] and meta["locked"])):
            return _error(403, 50013, "Missing Permissions")
        if isinstance(body.get("name"), str):
            thread["name"] = body["name"]
        await self._set_archived(thread, archived=archived, locked=locked)
        return 200, dict(thread)

    async def _add_reaction(self, call: RestCall, m: re.Match[str]) -> Result:
        """``PUT /channels/{c}/messages/{m}/reactions/{emoji}/@me``: 204 and MESSAGE_REACTION_ADD."""
        cid, mid = int(m.group(1)), int(m.group(2))
        msg = self._lookup(cid, mid)
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if self._archived(cid):
            return _error(400, 50083, "Thread is archived")
        emoji = unquote(m.group(3))
        self.reactions.setdefault(mid, []).append((self.bot_id, emoji))
        # The message object lists its reactions, with `me` for the bot's own ("Reaction Object").
        reactions: list[Json] = msg.setdefault("reactions", [])
        mine = next((r for r in reactions if r["emoji"]["name"] == emoji), None)
        if mine is None:
            mine = {"count": 0, "me": False, "emoji": {"id": None, "name": emoji}, "burst_colors": []}
            reactions.append(mine)
        if not mine["me"]:
            mine["count"] += 1
            mine["me"] = True
        event: Json = {"user_id": str(self.bot_id), "channel_id": str(cid), "message_id": str(mid)}
        event.update(emoji={"id": None, "name": emoji}, burst=False, type=0, message_author_id=msg["author"]["id"])
        if (guild_id := self._guild_of(cid)) is not None:
            event.update(guild_id=str(guild_id), member=self._member(self.bot_id))
        await self.dispatch("MESSAGE_REACTION_ADD", event)
        return 204, None

    async def archive_thread(self, thread_id: int, *, locked: bool = False) -> None:
        """Archive a thread (and lock it) as a moderator or Discord's auto-archive would; THREAD_UPDATE."""
        await self._set_archived(self.threads[thread_id], archived=True, locked=locked)

    # ------------------------------------------------------------------ test-side actions

    async def send_user_message(
        self,
        content: str,
        *,
        author_id: int = 200,
        channel_id: int = 500,
        mention_bot: bool = False,
        reply_to: int | None = None,
        reference_mode: str = "full",
        guild: bool = True,
        attachments: Sequence[tuple[str, bytes, str | None]] = (),
    ) -> Json:
        """Store a message from a human user and dispatch MESSAGE_CREATE; returns the message dict.

        ``channel_id`` may be a thread id (see ``create_thread``). ``guild=False`` sends a DM instead (channel
        ``9000 + author_id``). ``attachments`` are ``(filename, data, content_type)``; the bytes are served at
        each attachment's ``url`` so that ``Attachment.read()`` works.
        """
        if mention_bot:
            content = f"<@{self.bot_id}> {content}"
        if not guild:
            channel_id = 9000 + author_id
            self.dm_channels[channel_id] = author_id
        msg = self._new_message(
            channel_id, author_id, {"content": content}, msg_type=19 if reply_to else 0, files=attachments
        )
        mentioned = dict.fromkeys(int(uid) for uid in MENTION_RE.findall(content))
        msg["mentions"] = [self._user_of(uid) for uid in mentioned]
        if reply_to is not None:
            msg.update(self._reference({"message_id": reply_to}, channel_id, reference_mode))
        if guild:
            msg["member"] = self._member()
        await self._dispatch_message("MESSAGE_CREATE", msg)
        return msg

    def seed_message(
        self, content: str, *, author_id: int = 200, channel_id: int = 500, reply_to: int | None = None
    ) -> Json:
        """Store a message without dispatching it: history from before the bot connected (never in its cache)."""
        msg = self._new_message(channel_id, author_id, {"content": content}, msg_type=19 if reply_to else 0)
        if reply_to is not None:
            msg.update(self._reference({"message_id": reply_to}, channel_id))
        return msg

    async def create_thread(
        self,
        parent_id: int = 500,
        name: str = "topic",
        *,
        owner_id: int = 200,
        message_id: int | None = None,
        private: bool = False,
        auto_archive_duration: int = 1440,
        cached: bool = True,
    ) -> int:
        """A user starts a thread (THREAD_CREATE with ``newly_created``); returns the thread id.

        With ``message_id`` the thread is started from that message (thread id = message id, the message gets
        ``thread`` and the HAS_THREAD flag, MESSAGE_UPDATE). Without it, a public thread also posts Discord's
        "started a thread" system message (type 18, author ``owner_id``) in the parent channel. In an
        announcement channel the thread is an announcement thread (type 10). ``owner_id`` may be the bot's id
        (a thread it opened earlier). ``cached=False``: see ``_open_thread``.
        """
        kind = self.channel_types.get(parent_id, 0)
        if parent_id not in self.channel_names or kind in (*VOICE_TYPES, *FORUM_TYPES):
            raise KeyError(f"no text or announcement channel {parent_id} (forums: create_forum_post)")
        if message_id is not None and (message_id in self.threads or self._lookup(parent_id, message_id) is None):
            raise KeyError(f"no thread-less message {message_id} in channel {parent_id}")
        thread_type = 10 if kind == ANNOUNCEMENT else 12 if private and message_id is None else 11
        thread = await self._open_thread(
            parent_id, name, thread_type, owner_id, auto_archive_duration, starter=message_id, cached=cached
        )
        return int(thread["id"])

    async def delete_message(self, message_id: int) -> None:
        """Delete a stored message (its ``message_history`` is kept) and dispatch MESSAGE_DELETE."""
        msg = self.messages.pop(message_id, None)
        if msg is None:
            return
        data: Json = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if "guild_id" in msg:
            data["guild_id"] = msg["guild_id"]
        await self.dispatch("MESSAGE_DELETE", data)

    def _new_interaction(
        self, itype: int, data: Json, user_id: int, channel_id: int, permissions: str, message_id: int | None = None
    ) -> tuple[_Interaction, Json]:
        iid = self._next_interaction_id
        self._next_interaction_id += 1
        token = f"itok{iid}"
        guild_id = self._guild_of(channel_id)
        it = _Interaction(iid, token, itype, channel_id, guild_id, user_id, message_id=message_id)
        self._interactions[token] = it
        payload: Json = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "token": token,
            "version": 1,
            "attachment_size_limit": 8388608,
            "channel_id": str(channel_id),
            "channel": self._channel(channel_id) if self._known_channel(channel_id) else {"id": str(channel_id)},
            "app_permissions": self._app_permissions(channel_id),
            "locale": "en-US",
            "entitlements": [],
            "context": 0 if guild_id else 1,
        }
        if guild_id is not None:
            payload.update(guild_id=str(guild_id), guild_locale="en-US")
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["member"] = self._member(user_id, permissions=permissions)
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        else:
            payload["user"] = self._user_of(user_id)
            payload["authorizing_integration_owners"] = {"1": str(user_id)}
        if message_id is not None:
            payload["message"] = self.messages[message_id]
        return it, payload

    def _command_data(
        self, name: str, options: dict[str, Any] | None, subcommand: str | None, focused: str | None
    ) -> Json:
        opts: list[Json] = []
        for key, value in (options or {}).items():
            opts.append({"name": key, "type": _option_type(value), "value": value})
        if focused is not None:
            if not any(o["name"] == focused for o in opts):
                opts.append({"name": focused, "type": 3, "value": ""})
            next(o for o in opts if o["name"] == focused)["focused"] = True
        if subcommand:
            *group, sub = subcommand.split()
            opts = [{"name": sub, "type": 1, "options": opts}]
            if group:
                opts = [{"name": group[0], "type": 2, "options": opts}]
        known = [c for cmds in self.commands.values() for c in cmds if c["name"] == name]
        cmd_id = known[0]["id"] if known else "600"
        return {"id": cmd_id, "name": name, "type": 1, "options": opts, "guild_id": str(self.guild_id)}

    async def send_slash_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int = 200,
        channel_id: int = 500,
        permissions: str = ALL_PERMISSIONS,
        subcommand: str | None = None,
    ) -> str:
        """Dispatch a chat-input command (INTERACTION_CREATE type 2); returns the interaction token."""
        data = self._command_data(name, options, subcommand, None)
        it, payload = self._new_interaction(2, data, user_id, channel_id, permissions)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    async def send_autocomplete(
        self,
        name: str,
        options: dict[str, Any] | None,
        focused: str,
        *,
        user_id: int = 200,
        channel_id: int = 500,
        permissions: str = ALL_PERMISSIONS,
        subcommand: str | None = None,
    ) -> str:
        """Dispatch an autocomplete request (type 4) with ``focused`` marked; returns the token."""
        data = self._command_data(name, options, subcommand, focused)
        it, payload = self._new_interaction(4, data, user_id, channel_id, permissions)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    async def click_button(
        self, message_id: int, custom_id: str, *, user_id: int = 200, permissions: str = ALL_PERMISSIONS
    ) -> str:
        """Dispatch a button click (type 3) on a stored message; returns the interaction token."""
        return await self._component(message_id, {"custom_id": custom_id, "component_type": 2}, user_id, permissions)

    async def select_option(
        self,
        message_id: int,
        custom_id: str,
        values: list[str],
        *,
        user_id: int = 200,
        permissions: str = ALL_PERMISSIONS,
    ) -> str:
        """Dispatch a string-select choice (type 3, component_type 3); returns the interaction token."""
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return await self._component(message_id, data, user_id, permissions)

    async def _component(self, message_id: int, data: Json, user_id: int, permissions: str) -> str:
        msg = self.messages.get(message_id)
        if msg is None:
            raise KeyError(f"no stored message {message_id}")
        it, payload = self._new_interaction(3, data, user_id, int(msg["channel_id"]), permissions, message_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    # ------------------------------------------------------------------ message commands, modals, user options, history

    async def send_message_command(
        self, name: str, message_id: int, *, user_id: int = 200, permissions: str = ALL_PERMISSIONS
    ) -> str:
        """Dispatch a message context-menu command (right-click a message > Apps); returns the interaction token.

        INTERACTION_CREATE type 2 whose ``data`` has ``type`` 3 (MESSAGE), ``target_id`` and the message itself in
        ``resolved.messages`` (interactions/receiving-and-responding "Application Command Data Structure"), which
        discord.py hands to the callback (app_commands/tree.py ``_call_context_menu``). A global command carries
        no ``data.guild_id``. The command must have been synced: Discord shows no other.
        """
        msg = self.messages.get(message_id)
        if msg is None:
            raise KeyError(f"no stored message {message_id}")
        synced = [c for cmds in self.commands.values() for c in cmds if c["name"] == name and c.get("type") == 3]
        if not synced:
            raise KeyError(f"no message command {name!r} was synced")
        resolved = {k: v for k, v in msg.items() if k != "member"}
        data: Json = {
            "id": synced[0]["id"],
            "name": name,
            "type": MESSAGE_COMMAND,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): resolved}},
        }
        it, payload = self._new_interaction(2, data, user_id, int(msg["channel_id"]), permissions)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    def modal_shown(self, token: str) -> Json | None:
        """The modal the bot answered the interaction ``token`` with (its MODAL callback's data), if any."""
        for call in self.interaction_responses(token):
            body = call.json if isinstance(call.json, dict) else {}
            if call.path.endswith("/callback") and call.status == 200 and body.get("type") == 9:
                return dict(body.get("data") or {})
        return None

    async def submit_modal(
        self, token: str, values: dict[str, str], *, user_id: int | None = None, permissions: str = ALL_PERMISSIONS
    ) -> str:
        """The user fills in and submits the modal shown for interaction ``token``; returns the new token.

        INTERACTION_CREATE type 5 (MODAL_SUBMIT) with the modal's ``custom_id`` and its components, each text input
        carrying the ``value`` typed ("Modal Submit Data Structure"); keyed by text input ``custom_id``. Like the
        Discord client, it refuses to submit a required input left empty or a value outside min/max_length.
        """
        modal = self.modal_shown(token)
        origin = self._interactions.get(token)
        if modal is None or origin is None:
            raise KeyError(f"interaction {token} showed no modal")

        def filled(component: Json) -> Json:
            kind = component.get("type")
            if kind == 1:
                return {"type": 1, "components": [filled(c) for c in component.get("components") or []]}
            if kind == 18:
                return {"type": 18, "component": filled(component["component"])}
            custom_id = component["custom_id"]
            value = values.get(custom_id, "")
            low, high = int(component.get("min_length") or 0), int(component.get("max_length") or TEXT_INPUT_MAX)
            if (component.get("required", True) and not value) or (value and not low <= len(value) <= high):
                raise ValueError(f"the client would not submit {value!r} for {custom_id}")
            return {"type": 4, "custom_id": custom_id, "value": value}

        data = {"custom_id": modal["custom_id"], "components": [filled(c) for c in modal.get("components") or []]}
        who = origin.user_id if user_id is None else user_id
        it, payload = self._new_interaction(5, data, who, origin.channel_id, permissions, origin.message_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    async def send_slash_command_with_members(
        self,
        name: str,
        options: dict[str, Any] | None,
        members: dict[str, int],
        *,
        user_id: int = 200,
        channel_id: int = 500,
        permissions: str = ALL_PERMISSIONS,
    ) -> str:
        """A slash command with USER options (type 6): ``members`` maps option names to user ids.

        Discord sends the id as the option's value and the user and member in ``data.resolved`` (users, members
        without ``user``); discord.py builds the Member from them (app_commands/namespace.py).
        """
        data = self._command_data(name, options, None, None)
        for option, uid in members.items():
            data["options"].append({"name": option, "type": 6, "value": str(uid)})
        data["resolved"] = {
            "users": {str(uid): self._user_of(uid) for uid in members.values()},
            "members": {str(uid): self._member() for uid in members.values()},
        }
        it, payload = self._new_interaction(2, data, user_id, channel_id, permissions)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token

    def post_history(
        self, channel_id: int, entries: Sequence[tuple[int, str]], *, start: datetime, spacing: timedelta
    ) -> list[Json]:
        """Messages people posted earlier: ``(author id, content)``, ``spacing`` apart from ``start``.

        Their ids are real snowflakes of those times (so discord.py's ``created_at`` and history reads by date
        work) and nothing is dispatched: the bot finds them only by reading the channel's history. Every message
        created later gets a larger id, as it would.
        """
        out: list[Json] = []
        for index, (author_id, content) in enumerate(entries):
            when = start + index * spacing
            mid = max(self._next_message_id, _snowflake(when))
            self._next_message_id = mid + 1
            msg = self._new_message(channel_id, author_id, {"content": content}, message_id=mid)
            msg["timestamp"] = when.isoformat()
            msg["mentions"] = [self._user_of(int(uid)) for uid in dict.fromkeys(MENTION_RE.findall(content))]
            if self._guild_of(channel_id) is not None:
                msg["member"] = self._member()
            out.append(msg)
        return out

    # ------------------------------------------------------------------ channel kinds and bot permissions

    async def add_channel(
        self,
        channel_id: int,
        name: str | None = None,
        *,
        kind: int = 0,
        tags: Sequence[str] = (),
        require_tag: bool = False,
    ) -> None:
        """Add a guild channel of Discord channel type ``kind`` (0 text, 2 voice, 5 announcement, 13 stage,
        15 forum, 16 media); CHANNEL_CREATE if a client is connected, else it comes with GUILD_CREATE.

        Forum and media channels take ``tags`` (their ``available_tags``, ids 800, 801, …) and ``require_tag``
        (the REQUIRE_TAG flag: a post without a tag is refused with 40067).
        """
        if self._known_channel(channel_id):
            raise KeyError(f"channel {channel_id} exists")
        self.channel_ids.append(channel_id)
        self.channel_names[channel_id] = name or f"channel-{channel_id}"
        self.channel_types[channel_id] = kind
        if kind in FORUM_TYPES:
            self.forum_tags[channel_id] = [
                {"id": str(800 + i), "name": tag, "moderated": False, "emoji_id": None, "emoji_name": None}
                for i, tag in enumerate(tags)
            ]
            self.channel_flags[channel_id] = REQUIRE_TAG if require_tag else 0
        await self.dispatch("CHANNEL_CREATE", self._channel(channel_id))

    async def deny_permissions(self, channel_id: int, *names: str) -> None:
        """Deny the bot these permissions (``PERMISSION_BITS`` names) in a guild channel and its threads.

        The denial is a member permission overwrite on the channel, so discord.py's
        ``channel.permissions_for(guild.me)`` sees it (CHANNEL_UPDATE if a client is connected), interactions
        carry it in ``app_permissions``, and REST refuses what it forbids (see ``_permission_refusal``).
        """
        if channel_id not in self.channel_names:
            raise KeyError(f"no guild channel {channel_id} (threads take their parent's permissions)")
        for name in names:
            self.denied[channel_id] = self.denied.get(channel_id, 0) | PERMISSION_BITS[name]
        await self.dispatch("CHANNEL_UPDATE", self._channel(channel_id))

    async def create_forum_post(
        self,
        forum_id: int,
        content: str,
        *,
        name: str = "post",
        author_id: int = 200,
        mention_bot: bool = False,
        tags: Sequence[int] = (),
        cached: bool = True,
    ) -> Json:
        """A user creates a post in a forum: a public thread plus its starter message (id = thread id).

        THREAD_CREATE then MESSAGE_CREATE, as for ``POST /channels/{forum}/threads``; returns the thread object
        with the starter ``message`` nested, like Discord's response.
        """
        if self.channel_types.get(forum_id) not in FORUM_TYPES:
            raise KeyError(f"no forum channel {forum_id}")
        if mention_bot:
            content = f"<@{self.bot_id}> {content}"
        return await self._open_forum_post(
            forum_id, name, author_id, {"content": content}, tags=tags, duration=1440, cached=cached
        )

    async def _start_forum_post(self, call: RestCall, forum: int) -> Result:
        """``POST /channels/{forum}/threads`` on a forum or media channel: a post with its first message.

        Per "Start Thread in Forum or Media Channel" (resources/channel): ``message`` is required, the thread is
        a PUBLIC_THREAD, and the response is the thread with the message nested.
        """
        body: Json = call.json or {}
        errors = _thread_form_errors(body)
        name, duration = body.get("name"), body.get("auto_archive_duration") or 1440
        message = body.get("message")
        if not isinstance(message, dict):
            errors["message"] = _field_error("BASE_TYPE_REQUIRED", "This field is required")
        tags = [int(t) for t in body.get("applied_tags") or []]
        known = {int(t["id"]) for t in self.forum_tags.get(forum, [])}
        if not set(tags) <= known:
            errors["applied_tags"] = _field_error("BASE_TYPE_CHOICES", "Unknown tag.")
        if errors:
            return _error(400, 50035, "Invalid Form Body", errors)
        assert isinstance(message, dict)
        if (bad := self._validate(message, files=len(call.files))) is not None:
            return bad
        if self.channel_flags.get(forum, 0) & REQUIRE_TAG and not tags:
            return _error(400, 40067, "A tag is required to create a forum post in this channel")
        post = await self._open_forum_post(
            forum, str(name), self.bot_id, message, tags=tags, duration=duration, files=call.files
        )
        return 201, post

    async def _open_forum_post(
        self,
        forum: int,
        name: str,
        author_id: int,
        body: Json,
        *,
        tags: Sequence[int],
        duration: int,
        files: Sequence[FileSpec] = (),
        cached: bool = True,
    ) -> Json:
        thread = await self._open_thread(forum, name, 11, author_id, duration, cached=cached)
        tid = int(thread["id"])
        self.threads[tid]["applied_tags"] = [str(t) for t in tags]
        msg = self._new_message(tid, author_id, body, files=files, message_id=tid)
        msg["mentions"] = [self._user_of(int(uid)) for uid in dict.fromkeys(MENTION_RE.findall(msg["content"]))]
        if author_id != self.bot_id:
            msg["member"] = self._member()
        if cached:
            await self._dispatch_message("MESSAGE_CREATE", msg)
        return {**self.threads[tid], "message": msg}

    def _denied_bits(self, cid: int) -> int:
        """Permission bits denied to the bot in a channel; a thread inherits its parent's (topics/threads)."""
        thread = self.threads.get(cid)
        return self.denied.get(int(thread["parent_id"]) if thread else cid, 0)

    def _overwrites(self, cid: int) -> list[Json]:
        denied = self.denied.get(cid, 0)
        return [{"id": str(self.bot_id), "type": 1, "allow": "0", "deny": str(denied)}] if denied else []

    def _kind_fields(self, cid: int) -> Json:
        """The type of a guild channel and the fields discord.py needs for that type."""
        kind = self.channel_types.get(cid, 0)
        fields: Json = {"type": kind}
        if kind in VOICE_TYPES:
            fields.update(bitrate=64000, user_limit=0, rtc_region=None)
        if kind in FORUM_TYPES:
            fields.update(available_tags=self.forum_tags.get(cid, []), flags=self.channel_flags.get(cid, 0))
            fields.update(default_reaction_emoji=None, default_sort_order=None, default_forum_layout=0)
        return fields

    def _app_permissions(self, cid: int) -> str:
        """``app_permissions`` of an interaction: the bot's computed permissions in its channel."""
        if cid in self.dm_channels or not self._known_channel(cid):
            return ALL_PERMISSIONS
        return str(int(EVERYONE_PERMISSIONS) & ~self._denied_bits(cid))

    def _permission_refusal(self, call: RestCall) -> Result | None:
        """Discord's answer when the bot lacks a permission for this channel request, else None.

        Sources: resources/message "Create Message" limitations (SEND_MESSAGES; READ_MESSAGE_HISTORY to reply),
        "Get Channel Messages" (without READ_MESSAGE_HISTORY no messages are returned; a voice channel also needs
        CONNECT), "Get Channel Message" (VIEW_CHANNEL and READ_MESSAGE_HISTORY), "Create Reaction"
        (READ_MESSAGE_HISTORY, and ADD_REACTIONS unless the emoji is already there); topics/threads (SEND_MESSAGES
        has no effect in threads, SEND_MESSAGES_IN_THREADS does; a forum post needs only SEND_MESSAGES);
        topics/permissions "Implicit Permissions" (no VIEW_CHANNEL, nothing else). Codes from
        topics/opcodes-and-status-codes: 50001 Missing Access, 50013 Missing Permissions. Files and embeds without
        ATTACH_FILES / EMBED_LINKS are refused with 50013 too (discord-api-docs #2601). Interaction and webhook
        routes are not channel routes and need none of these.
        """
        m = CHANNEL_ROUTE.fullmatch(call.path)
        if m is None:
            return None
        cid, rest = int(m.group(1)), m.group(2) or ""
        denied = self._denied_bits(cid) if self._known_channel(cid) else 0
        if not denied:
            return None
        if denied & PERMISSION_BITS["view_channel"]:
            return _error(403, 50001, "Missing Access")
        in_thread = cid in self.threads
        parent_kind = self.channel_types.get(int(self.threads[cid]["parent_id"]) if in_thread else cid, 0)
        send = "send_messages_in_threads" if in_thread else "send_messages"
        body: Json = call.json if isinstance(call.json, dict) else {}
        needed: list[str] = []
        if call.method == "POST" and rest in ("/messages", "/typing"):
            needed.append(send)
            if rest == "/messages" and body.get("message_reference"):
                needed.append("read_message_history")
        elif call.method == "POST" and rest == "/threads":
            private = parent_kind not in FORUM_TYPES and int(body.get("type") or 12) == 12
            forum = "send_messages" if parent_kind in FORUM_TYPES else None
            needed.append(forum or ("create_private_threads" if private else "create_public_threads"))
        elif call.method == "POST" and re.fullmatch(r"/messages/\d+/threads", rest):
            needed.append("create_public_threads")
        elif call.method == "GET" and rest == "/messages":
            reading = ("read_message_history", "connect") if parent_kind in VOICE_TYPES else ("read_message_history",)
            if any(denied & PERMISSION_BITS[name] for name in reading):
                return 200, []
        elif call.method == "GET" and re.fullmatch(r"/messages/\d+", rest):
            if denied & PERMISSION_BITS["read_message_history"]:
                return _error(403, 50001, "Missing Access")
        elif call.method == "PUT" and (reaction := re.fullmatch(r"/messages/(\d+)/reactions/([^/]+)/@me", rest)):
            needed.append("read_message_history")
            target = self.messages.get(int(reaction.group(1))) or {}
            if not any(r["emoji"]["name"] == reaction.group(2) for r in target.get("reactions", [])):
                needed.append("add_reactions")
        if call.method in ("POST", "PATCH") and rest.startswith("/messages"):
            if call.files:
                needed.append("attach_files")
            if body.get("embeds"):
                needed.append("embed_links")
        if any(denied & PERMISSION_BITS[name] for name in needed):
            return _error(403, 50013, "Missing Permissions")
        return None

    # ------------------------------------------------------------------ inspection

    def interaction_responses(self, token: str) -> list[RestCall]:
        """Callback and webhook REST calls made for the interaction with this token, in order."""
        return [c for c in self.calls if f"/{token}/" in c.path + "/"]

    def original_message(self, token: str) -> Json | None:
        """Current state of the interaction's ``@original`` message (None if none or deleted)."""
        it = self._interactions.get(token)
        return None if it is None or it.original_id is None else self.messages.get(it.original_id)

    def followup_messages(self, token: str) -> list[Json]:
        """Current state of the interaction's followup messages (excluding one that replaced a deferral)."""
        it = self._interactions.get(token)
        return [] if it is None else [self.messages[i] for i in it.followup_ids if i in self.messages]

    def calls_to(self, method: str, path_regex: str) -> list[RestCall]:
        """Recorded calls with this method whose path matches the regex (search)."""
        pattern = re.compile(path_regex)
        return [c for c in self.calls if c.method == method.upper() and pattern.search(c.path)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate`` every 5 ms until true; AssertionError with recent REST calls on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                recent = "\n".join(f"  {c.method} {c.path} -> {c.status}" for c in self.calls[-10:])
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise AssertionError(f"condition {name} not met within {timeout}s; last REST calls:\n{recent}")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ pins

    # Discord's limit on pinned messages per channel (resources/message "Pin Message": 250, raised from 50).
    MAX_PINS = 250

    async def pin_message(self, message_id: int, *, by: int = 200) -> None:
        """A user pins a message: Discord stores it, posts the "pinned a message" notice and sends the event.

        Per resources/message "Pin Message" and topics/gateway-events "Channel Pins Update": a
        CHANNEL_PINNED_MESSAGE system message (type 6) referencing the pinned one, then CHANNEL_PINS_UPDATE
        with the time of the newest pin.
        """
        msg = self.messages[message_id]
        channel_id = int(msg["channel_id"])
        await self._pin(channel_id, message_id, by)

    async def unpin_message(self, message_id: int) -> None:
        """A user unpins a message: CHANNEL_PINS_UPDATE with the newest remaining pin's time (null if none)."""
        msg = self.messages[message_id]
        await self._unpin(int(msg["channel_id"]), message_id)

    async def _pin(self, channel_id: int, message_id: int, by: int) -> Result:
        pins = self.pinned.setdefault(channel_id, [])
        if any(mid == message_id for mid, _ in pins):
            return 204, None
        if len(pins) >= self.MAX_PINS:
            return _error(400, 30003, "Maximum number of pins reached (250)")
        self.messages[message_id]["pinned"] = True
        pinned_at = _now_iso()
        pins.insert(0, (message_id, pinned_at))
        notice = self._new_message(channel_id, by, {"content": ""}, msg_type=6)
        notice["message_reference"] = {"type": 0, "message_id": str(message_id), "channel_id": str(channel_id)}
        if self._guild_of(channel_id) is not None:
            notice["message_reference"]["guild_id"] = str(self.guild_id)
        await self._dispatch_message("MESSAGE_CREATE", notice)
        await self._pins_update(channel_id)
        return 204, None

    async def _unpin(self, channel_id: int, message_id: int) -> Result:
        pins = self.pinned.get(channel_id, [])
        if not any(mid == message_id for mid, _ in pins):
            return 204, None
        self.pinned[channel_id] = [(mid, at) for mid, at in pins if mid != message_id]
        if message_id in self.messages:
            self.messages[message_id]["pinned"] = False
        await self._pins_update(channel_id)
        return 204, None

    async def _pins_update(self, channel_id: int) -> None:
        pins = self.pinned.get(channel_id, [])
        event: Json = {"channel_id": str(channel_id), "last_pin_timestamp": pins[0][1] if pins else None}
        if self._guild_of(channel_id) is not None:
            event["guild_id"] = str(self.guild_id)
        await self.dispatch("CHANNEL_PINS_UPDATE", event)

    async def _list_pins(self, call: RestCall, m: re.Match[str]) -> Result:
        """``GET /channels/{c}/messages/pins?limit=&before=`` (resources/message "Get Channel Pins").

        Newest pin first, at most ``limit`` (1-50, default 50) pinned before ``before`` (an ISO 8601 time):
        ``{"items": [{"pinned_at", "message"}], "has_more"}``. Like Get Channel Messages, a bot without Read
        Message History gets no pins at all (and without View Channel, 50001 from ``_permission_refusal``).
        """
        cid = int(m.group(1))
        if not self._known_channel(cid):
            return _error(404, 10003, "Unknown Channel")
        if self._denied_bits(cid) & PERMISSION_BITS["read_message_history"]:
            return 200, {"items": [], "has_more": False}
        try:
            limit = int(call.query.get("limit", 50))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 50:
            return _error(400, 50035, "Invalid Form Body", {"limit": _field_error("NUMBER_TYPE_MAX", "1 to 50")})
        before = call.query.get("before")
        pins = [(mid, at) for mid, at in self.pinned.get(cid, []) if mid in self.messages]
        if before:
            cutoff = datetime.fromisoformat(before)
            pins = [(mid, at) for mid, at in pins if datetime.fromisoformat(at) < cutoff]
        items = [{"pinned_at": at, "message": self.messages[mid]} for mid, at in pins[:limit]]
        return 200, {"items": items, "has_more": len(pins) > limit}

    async def _put_pin(self, call: RestCall, m: re.Match[str]) -> Result:
        """``PUT /channels/{c}/messages/pins/{m}``: the bot pins a message (204)."""
        cid, mid = int(m.group(1)), int(m.group(2))
        if self._lookup(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        return await self._pin(cid, mid, self.bot_id)

    async def _delete_pin(self, call: RestCall, m: re.Match[str]) -> Result:
        """``DELETE /channels/{c}/messages/pins/{m}``: the bot unpins a message (204)."""
        cid, mid = int(m.group(1)), int(m.group(2))
        if self._lookup(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        return await self._unpin(cid, mid)

    # ------------------------------------------------------------------ slash commands with attachments

    async def send_slash_command_with_files(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        files: dict[str, FileSpec] | None = None,
        *,
        user_id: int = 200,
        channel_id: int = 500,
        permissions: str = ALL_PERMISSIONS,
        subcommand: str | None = None,
    ) -> str:
        """A chat-input command with ATTACHMENT options (type 11); returns the interaction token.

        Per interactions/receiving-and-responding "Interaction Data": an attachment option's value is the
        attachment's id, and the attachment object itself is in ``data.resolved.attachments``. The bytes are
        served at the attachment's ``url`` like message attachments.
        """
        files = files or {}
        uploaded = {key: self._attachments([spec], channel_id)[0] for key, spec in files.items()}
        values = {**(options or {}), **{key: att["id"] for key, att in uploaded.items()}}
        data = self._command_data(name, values, subcommand, None)
        level = data["options"]
        while level and level[0].get("type") in (1, 2):
            level = level[0]["options"]
        for option in level:
            if option["name"] in uploaded:
                option["type"] = 11
        data["resolved"] = {"attachments": {att["id"]: att for att in uploaded.values()}}
        it, payload = self._new_interaction(2, data, user_id, channel_id, permissions)
        await self.dispatch("INTERACTION_CREATE", payload)
        return it.token
