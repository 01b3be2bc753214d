"""A reply sink that keeps the answer's record in step with the messages the relay posts and deletes."""

from __future__ import annotations

from collections.abc import Callable

from bot.answers.book import LiveAnswer
from bot.streaming.relay import Controls, FailureReporter, MessageSink, ReplyGone


class RecordingSink:
    """Wraps any MessageSink; `message_id` tells the id of a handle the wrapped sink returns (None: unknown).

    Before the first Discord write the record's first save must have landed (or timed out), so a
    process that dies mid-answer leaves a record to finish its messages from.
    """

    def __init__(self, inner: MessageSink, answer: LiveAnswer, message_id: Callable[[object], int | None]) -> None:
        self._inner = inner
        self._answer = answer
        self._message_id = message_id
        self._saved_first = False

    @property
    def channel_key(self) -> int:
        """The wrapped sink's channel."""
        return self._inner.channel_key

    async def start_waiting(self) -> None:
        """Show the wrapped sink's waiting indicator."""
        await self._inner.start_waiting()

    async def stop_waiting(self) -> None:
        """Stop the wrapped sink's waiting indicator."""
        await self._inner.stop_waiting()

    async def send(self, content: str, *, after: object | None, controls: Controls) -> object:
        """Post through the wrapped sink and add the new message to the record."""
        await self._before_first_write()
        handle = await self._inner.send(content, after=after, controls=controls)
        message_id = self._message_id(handle)
        if message_id is not None:
            self._answer.posted(message_id)
        return handle

    async def edit(self, handle: object, content: str, *, controls: Controls) -> None:
        """Edit through the wrapped sink (a regenerated answer's first write is an edit)."""
        await self._before_first_write()
        await self._inner.edit(handle, content, controls=controls)

    async def delete(self, handle: object) -> None:
        """Delete through the wrapped sink and drop the message from the record."""
        await self._before_first_write()
        message_id = self._message_id(handle)
        try:
            await self._inner.delete(handle)
        except ReplyGone:
            self._removed(message_id)
            raise
        self._removed(message_id)

    async def report_failure(self, reason: str, *, posted: bool) -> None:
        """Pass a failure report on to the wrapped sink, when it can tell the user some other way."""
        if isinstance(self._inner, FailureReporter):
            await self._inner.report_failure(reason, posted=posted)

    def _removed(self, message_id: int | None) -> None:
        if message_id is not None:
            self._answer.removed(message_id)

    async def _before_first_write(self) -> None:
        if not self._saved_first:
            self._saved_first = True
            await self._answer.saved()
