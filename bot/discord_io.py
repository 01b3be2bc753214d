"""Discord adapters for the pure core: discord.py objects to plain records, and reply sinks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord

from bot.attachments import AttachmentLimits, AttachmentPlan, AttachmentRecord, plan_attachments
from bot.clock import Clock
from bot.cogs.reply_buttons import controls_view
from bot.conversation import ChatRecord, clean_prompt
from bot.discord_errors import NETWORK_ERRORS, NoChannelAccess, TokenRejected, attempt_write, describe_discord_error
from bot.ollama.catalog import ModelCatalog
from bot.ollama.errors import OllamaError
from bot.streaming import notes
from bot.streaming.relay import Controls, ReplyGone, ReplyRefused

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
# Discord's normal reply ping and nothing else: model text still pings no user, role or @everyone.
REPLY_PING = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)

T = TypeVar("T")


def to_record(message: discord.Message, *, bot_id: int) -> ChatRecord:
    """A plain record of `message` for conversation building."""
    from_bot = message.author.id == bot_id
    if from_bot:
        content = message.content
    else:
        names = {user.id: user.display_name for user in message.mentions}
        content = clean_prompt(message.content, bot_id=bot_id, names=names)
    return ChatRecord(
        id=message.id,
        author_id=message.author.id,
        author_name=message.author.display_name,
        content=content,
        from_bot=from_bot,
    )


def message_id(handle: object) -> int | None:
    """The id of a message a reply sink posted (channel, interaction and webhook messages alike)."""
    return handle.id if isinstance(handle, discord.Message) else None


async def plan_message_attachments(
    message: discord.Message, model: str, *, catalog: ModelCatalog, limits: AttachmentLimits
) -> tuple[AttachmentPlan | None, list[str]]:
    """Which attachments of `message` to send to `model` (None: none), and notes for the rest.

    Nothing is downloaded here: that waits until the request has passed the rate limit and the queue.
    """
    if not message.attachments:
        return None, []
    files = [
        AttachmentRecord(filename=a.filename, size=a.size, content_type=a.content_type, ref=a)
        for a in message.attachments
    ]
    try:
        vision = "vision" in await catalog.capabilities(model)
    except OllamaError:
        vision = False  # the request itself will explain what is wrong with the model
    plan = plan_attachments(files, model=model, vision=vision, limits=limits)
    return (plan if plan.images or plan.texts else None), [notes.note(n) for n in plan.notes]


async def download_attachment(file: AttachmentRecord) -> bytes | None:
    """The bytes of a planned attachment from Discord's CDN; None if Discord would not give them."""
    attachment = file.ref
    assert isinstance(attachment, discord.Attachment)
    try:
        return await attachment.read()
    except discord.HTTPException:
        return None


class _Typing:
    """Holds discord.py's typing context open between start_waiting and stop_waiting."""

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self._context: Any = channel.typing()
        self._active = False

    async def start(self) -> None:
        if not self._active:
            await self._context.__aenter__()
            self._active = True

    async def stop(self) -> None:
        if self._active:
            self._active = False
            with contextlib.suppress(discord.HTTPException):
                await self._context.__aexit__(None, None, None)


class ChannelReplySink:
    """Shows a reply as channel messages: the first replies to the prompt, later parts to the previous part."""

    def __init__(self, prompt: discord.Message, *, key: int, reply: bool = True, ping_author: bool = False) -> None:
        self._prompt = prompt
        self._key = key
        # Replying needs Read Message History; without it the parts are posted as plain messages.
        self._reply = reply
        self._ping_author = ping_author
        self._typing = _Typing(prompt.channel)

    @property
    def channel_key(self) -> int:
        """The prompt's channel id."""
        return self._prompt.channel.id

    async def start_waiting(self) -> None:
        """Show the typing indicator."""
        await self._typing.start()

    async def stop_waiting(self) -> None:
        """Stop the typing indicator."""
        await self._typing.stop()

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        """Post a part, as a reply so the chain of parts stays walkable."""
        target = self._prompt if after is None else after
        assert isinstance(target, discord.Message)
        view = controls_view(controls, self._key)
        replying: dict[str, Any] = {"reference": target.to_reference(fail_if_not_exists=False)} if self._reply else {}
        # Only the first part notifies the asker; edits and later parts never ping (allowed_mentions is not
        # kept by Discord, so every later write sends NO_PINGS again).
        mentions = REPLY_PING if after is None and self._ping_author else NO_PINGS

        async def post() -> discord.Message:
            if view is None:
                return await self._prompt.channel.send(content, allowed_mentions=mentions, **replying)
            return await self._prompt.channel.send(content, allowed_mentions=mentions, view=view, **replying)

        return await self._attempt(post)

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Edit a posted part (its buttons too)."""
        assert isinstance(handle, discord.Message)
        view = controls_view(controls, self._key)
        await self._attempt(lambda: handle.edit(content=content, allowed_mentions=NO_PINGS, view=view))

    async def delete(self, handle: object) -> None:
        """Delete a part that is no longer needed."""
        assert isinstance(handle, discord.Message)
        with contextlib.suppress(ReplyGone):
            await self._attempt(handle.delete)

    async def report_failure(self, reason: str, *, posted: bool) -> None:
        """A short plain message about the failure; if even that is refused, a ⚠️ reaction on the question."""
        text = notes.reply_failed(reason, posted=posted, link=self._prompt.jump_url)
        try:
            await self._prompt.channel.send(text, allowed_mentions=NO_PINGS)
            return
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("could not post a note about the failed reply (%s)", describe_discord_error(exc))
        try:
            await self._prompt.add_reaction(notes.FAILED_REACTION)
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("could not mark the question with a reaction either (%s)", describe_discord_error(exc))

    async def _attempt(self, write: Callable[[], Awaitable[T]]) -> T:
        return await attempt_write(write, channel=self._prompt.channel, guild=self._prompt.guild)


# Discord: an interaction token works for 15 minutes (discord-protocol.md §8 and §12).
INTERACTION_TOKEN_LIFETIME = 900.0


def token_switch_margin(lifetime: float) -> float:
    """How long before an interaction token ends its answer moves to the channel routes.

    Early enough that no edit races the deadline, and that the answer can still be finished through the
    token if the channel routes turn out to be closed to the bot: a streaming answer is edited every 1-2 s,
    so one of its edits falls in this window. (A minute of Discord's 15; half a short test lifetime.)
    """
    return min(60.0, lifetime / 2)


class InteractionReplySink:
    """Shows a slash-command reply: the deferred original response first, then follow-ups.

    Discord takes edits through an interaction token for 15 minutes only, then answers 401/50027. Shortly
    before that (measured on the clock from when the command arrived), and at once on a 401, the reply
    moves to the channel routes with the bot token: the same non-ephemeral messages are edited there and
    later parts are posted as normal channel messages. Should the channel be closed to the bot, the
    answer is finished through the token while it still works.
    """

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        *,
        key: int,
        clock: Clock,
        arrived_at: float | None = None,
        token_lifetime: float = INTERACTION_TOKEN_LIFETIME,
        ephemeral: bool = False,
    ) -> None:
        self._interaction = interaction
        # A private answer (only the asker sees it): follow-ups are ephemeral too, and since Discord keeps
        # ephemeral messages off the channel routes, it lives and ends with the token.
        self._ephemeral = ephemeral
        self._key = key
        self._clock = clock
        arrived = clock.now() if arrived_at is None else arrived_at
        self._expires_at = arrived + token_lifetime
        self._switch_at = self._expires_at - token_switch_margin(token_lifetime)
        self._via_channel = False  # edits go through the channel routes with the bot token
        self._token_dead = False  # Discord refused the token
        self._channel_closed = False  # the channel routes refused the bot: back to the token while it lives
        self.first_message_id: int | None = None

    @property
    def channel_key(self) -> int:
        """The channel the command was used in."""
        return self._interaction.channel_id or self._interaction.id

    async def start_waiting(self) -> None:
        """The deferred response already shows "thinking"."""

    async def stop_waiting(self) -> None:
        """Nothing to stop."""

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        """Fill the original response, or add a follow-up (a channel message once the token is over)."""
        view = controls_view(controls, self._key)
        if after is None and self.first_message_id is None:
            message = await self._write(
                lambda: self._interaction.edit_original_response(content=content, allowed_mentions=NO_PINGS, view=view),
                lambda: self._post(content, after=None, view=view),
            )
            self.first_message_id = message.id
            return message

        async def followup() -> discord.Message:
            private = self._ephemeral
            if view is None:
                return await self._interaction.followup.send(
                    content, wait=True, allowed_mentions=NO_PINGS, ephemeral=private
                )
            return await self._interaction.followup.send(
                content, wait=True, allowed_mentions=NO_PINGS, view=view, ephemeral=private
            )

        return await self._write(followup, lambda: self._post(content, after=after, view=view))

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Edit the original response or a follow-up (through the channel once the token is over)."""
        assert isinstance(handle, discord.Message)
        view = controls_view(controls, self._key)
        via_token = None
        if isinstance(handle, discord.InteractionMessage | discord.WebhookMessage):
            webhook_message = handle
            via_token = lambda: webhook_message.edit(content=content, allowed_mentions=NO_PINGS, view=view)  # noqa: E731
        await self._write(
            via_token,
            lambda: self._in_channel(handle.id).edit(content=content, allowed_mentions=NO_PINGS, view=view),
        )

    async def delete(self, handle: object) -> None:
        """Delete a part that is no longer needed."""
        assert isinstance(handle, discord.Message)
        via_token = handle.delete if isinstance(handle, discord.InteractionMessage | discord.WebhookMessage) else None
        with contextlib.suppress(ReplyGone):
            await self._write(via_token, self._in_channel(handle.id).delete)

    async def report_failure(self, reason: str, *, posted: bool) -> None:
        """Say why in a message only the user sees, while the token works; else a plain channel message."""
        text = notes.reply_failed(reason, posted=posted)
        if self._ephemeral and not self._token_alive():
            log.warning("could not tell the user why their private reply failed: its token has expired")
            return  # a channel message would make a private answer public
        if self._token_alive():
            try:
                await self._interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
                return
            except (discord.HTTPException, *NETWORK_ERRORS) as exc:
                log.warning("could not tell the user why the reply failed (%s)", describe_discord_error(exc))
        try:
            await self._channel().send(text, allowed_mentions=NO_PINGS)
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("could not post a note about the failed reply (%s)", describe_discord_error(exc))

    # ---- routes

    async def _write(self, via_token: Callable[[], Awaitable[T]] | None, via_channel: Callable[[], Awaitable[T]]) -> T:
        channel, guild = self._interaction.channel, self._interaction.guild
        if self._ephemeral:
            return await self._write_privately(via_token)
        if via_token is not None and self._use_token():
            try:
                return await attempt_write(via_token, channel=channel, guild=guild, token_route=True)
            except TokenRejected as rejected:
                self._token_dead = self._via_channel = True
                log.info(
                    "interaction %s: Discord no longer takes its token (%s); going on through the channel",
                    self._interaction.id,
                    rejected,
                )
        try:
            return await attempt_write(via_channel, channel=channel, guild=guild)
        except NoChannelAccess as closed:
            if via_token is None or not self._token_alive():
                raise ReplyGone(str(closed), reason=notes.COMMAND_ANSWER_TIMED_OUT) from closed
            self._channel_closed = True
            log.warning(
                "interaction %s: the bot can't edit messages in channel %s (%s); finishing through the token",
                self._interaction.id,
                self._interaction.channel_id,
                closed,
            )
            raise ReplyRefused(str(closed), reason=notes.COMMAND_ANSWER_TIMED_OUT) from closed

    async def _write_privately(self, via_token: Callable[[], Awaitable[T]] | None) -> T:
        """Only the token reaches an ephemeral message, so a private answer ends shortly before the token does.

        Refusing the first write past the switch time makes the relay stop and make its final edit while the
        token still works, so the answer says why it stops instead of showing its marker forever.
        """
        if via_token is None or self._token_dead:
            raise ReplyGone("the interaction token no longer works", reason=notes.PRIVATE_ANSWER_TIMED_OUT)
        if not self._channel_closed and self._clock.now() >= self._switch_at:
            self._channel_closed = True  # from here on only the final edits, through the token while it lives
            log.info("interaction %s: its token expires soon; ending the private answer", self._interaction.id)
            raise ReplyRefused("the interaction token expires soon", reason=notes.PRIVATE_ANSWER_TIMED_OUT)
        try:
            return await attempt_write(
                via_token, channel=self._interaction.channel, guild=self._interaction.guild, token_route=True
            )
        except TokenRejected as rejected:
            self._token_dead = True
            raise ReplyGone(str(rejected), reason=notes.PRIVATE_ANSWER_TIMED_OUT) from rejected

    def _use_token(self) -> bool:
        if self._channel_closed:
            return self._token_alive()
        if not self._via_channel and self._clock.now() >= self._switch_at:
            self._via_channel = True
            log.info("interaction %s: its token expires soon; going on through the channel", self._interaction.id)
        return not self._via_channel

    def _token_alive(self) -> bool:
        return not self._token_dead and self._clock.now() < self._expires_at

    def _channel(self) -> discord.PartialMessageable:
        channel_id = self._interaction.channel_id
        assert channel_id is not None
        client: discord.Client = self._interaction.client
        return client.get_partial_messageable(channel_id, guild_id=self._interaction.guild_id)

    def _in_channel(self, message_id: int) -> discord.PartialMessage:
        return self._channel().get_partial_message(message_id)

    async def _post(self, content: str, *, after: object | None, view: discord.ui.View | None) -> discord.Message:
        """A part as a normal channel message, replying to the previous part like a channel reply does."""
        options: dict[str, Any] = {"allowed_mentions": NO_PINGS}
        if view is not None:
            options["view"] = view
        if isinstance(after, discord.Message):
            options["reference"] = discord.MessageReference(
                message_id=after.id,
                channel_id=after.channel.id,
                guild_id=self._interaction.guild_id,
                fail_if_not_exists=False,
            )
        return await self._channel().send(content, **options)
