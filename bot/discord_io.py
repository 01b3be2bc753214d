"""Discord adapters for the pure core: discord.py objects to plain records, and reply sinks."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord

from bot.cogs.reply_buttons import controls_view
from bot.conversation import ChatRecord, clean_prompt
from bot.streaming.relay import Controls, ReplyGone

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
# Discord's normal reply ping and nothing else: model text still pings no user, role or @everyone.
REPLY_PING = discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=True)


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
        try:
            if view is None:
                return await self._prompt.channel.send(content, allowed_mentions=mentions, **replying)
            return await self._prompt.channel.send(content, allowed_mentions=mentions, view=view, **replying)
        except (discord.NotFound, discord.Forbidden) as exc:
            raise ReplyGone(str(exc)) from exc

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Edit a posted part (its buttons too)."""
        assert isinstance(handle, discord.Message)
        try:
            await handle.edit(content=content, allowed_mentions=NO_PINGS, view=controls_view(controls, self._key))
        except (discord.NotFound, discord.Forbidden) as exc:
            raise ReplyGone(str(exc)) from exc

    async def delete(self, handle: object) -> None:
        """Delete a part that is no longer needed."""
        assert isinstance(handle, discord.Message)
        with contextlib.suppress(discord.NotFound):
            await handle.delete()


class InteractionReplySink:
    """Shows a slash-command reply: the deferred original response first, then follow-ups."""

    def __init__(self, interaction: discord.Interaction[Any], *, key: int) -> None:
        self._interaction = interaction
        self._key = key
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
        """Fill the original response, or add a follow-up for later parts."""
        view = controls_view(controls, self._key)
        try:
            if after is None and self.first_message_id is None:
                message: discord.Message = await self._interaction.edit_original_response(
                    content=content, allowed_mentions=NO_PINGS, view=view
                )
                self.first_message_id = message.id
                return message
            if view is None:
                return await self._interaction.followup.send(content, wait=True, allowed_mentions=NO_PINGS)
            return await self._interaction.followup.send(content, wait=True, allowed_mentions=NO_PINGS, view=view)
        except (discord.NotFound, discord.Forbidden) as exc:
            raise ReplyGone(str(exc)) from exc

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Edit the original response or a follow-up."""
        assert isinstance(handle, discord.InteractionMessage | discord.WebhookMessage)
        try:
            await handle.edit(content=content, allowed_mentions=NO_PINGS, view=controls_view(controls, self._key))
        except (discord.NotFound, discord.Forbidden) as exc:
            raise ReplyGone(str(exc)) from exc

    async def delete(self, handle: object) -> None:
        """Delete a follow-up that is no longer needed."""
        assert isinstance(handle, discord.InteractionMessage | discord.WebhookMessage)
        with contextlib.suppress(discord.NotFound):
            await handle.delete()
