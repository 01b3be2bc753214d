"""The flow of one answer, free of Discord: admitted, queued, prompted, relayed, recorded and measured.

Adapters (the cogs) decide whether and where the bot answers: they build an `AnswerRequest` from
Discord objects and a `MessageSink` that shows the reply. Everything after that happens here, the same
way for a mention, a reply, a thread message, a DM, an /ask or a Regenerate:

1. admit: the per-user limit and the shutdown check;
2. queue: a turn on Ollama, with the position shown while waiting;
3. prompt: attachments downloaded and the conversation fitted to the model's context, only once the
   turn has come (so a queued request holds no image bytes);
4. relay: the stream into the sink, paced under the channel budget;
5. record and measure: the answer record, metrics and one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.answers.book import AnswerBook, LiveAnswer
from bot.answers.records import AnswerKind, AnswerRecord
from bot.answers.request import AnswerRequest
from bot.answers.sink import RecordingSink
from bot.answers.usage import UsageMeter
from bot.attachments import AttachmentLimits, AttachmentRecord
from bot.clock import Clock
from bot.config import Settings
from bot.metrics import Metrics, error_kind
from bot.ollama.client import ChatChunk, OllamaClient
from bot.ollama.fair_share import QueuePosition, UserRateLimiter
from bot.ollama.pool import Lease, OllamaPool
from bot.ollama.think_gate import stream_without_rejected_think
from bot.prompt_preparation import PromptPreparer
from bot.streaming import notes
from bot.streaming.pacing import ChannelWriteBudget
from bot.streaming.relay import SHUTDOWN_CANCEL, MessageSink, RelayOptions, RelayResult, StatusLine, relay_reply
from bot.summaries.engine import summarize
from bot.usage.ledger import UsageLedger
from bot.usage.spend import Spend

__all__ = ["HISTORY_TRIMMED", "RATE_WINDOW", "AnswerService", "MessageId"]

log = logging.getLogger(__name__)

HISTORY_TRIMMED = notes.note("Earlier messages were left out of the conversation to fit the history limit.")
RATE_WINDOW = 60.0

# The Discord message id of a handle a sink returned (None when it has none).
MessageId = Callable[[object], int | None]


@dataclass
class _ActiveAnswer:
    """An answer being streamed, so Stop can find it and shutdown can wait for it."""

    task: asyncio.Task[RelayResult]
    requester_id: int


class AnswerService:
    """Answers requests one fair queue at a time in front of Ollama; one instance per process."""

    def __init__(
        self,
        *,
        settings: Settings,
        ollama: OllamaPool,
        prompts: PromptPreparer,
        answers: AnswerBook,
        clock: Clock,
        budget: ChannelWriteBudget,
        metrics: Metrics,
        attachment_limits: AttachmentLimits,
        usage: UsageLedger | None = None,
    ) -> None:
        self.settings = settings
        self.ollama = ollama
        self.prompts = prompts
        self.answers = answers
        self.clock = clock
        self.budget = budget
        self.metrics = metrics
        self.attachment_limits = attachment_limits
        self.usage = usage
        self._answered_by: dict[int, str] = {}  # request key -> the Ollama host that answered it
        self.rate_limiter = UserRateLimiter(settings.user_requests_per_minute, RATE_WINDOW)
        self.accepting = True
        self._active: dict[int, _ActiveAnswer] = {}

    # ---- what adapters ask

    @property
    def streaming(self) -> int:
        """Answers registered as streaming (or queued for Ollama)."""
        return len(self._active)

    def is_streaming(self, key: int) -> bool:
        """Whether the answer keyed `key` is being generated right now."""
        return key in self._active

    def requester_of(self, key: int) -> int | None:
        """Who asked the answer keyed `key`, while it is being generated (None otherwise)."""
        active = self._active.get(key)
        return active.requester_id if active is not None else None

    def stop(self, key: int) -> bool:
        """Cancel the answer keyed `key` (it keeps its partial text); False if it is not being generated."""
        active = self._active.get(key)
        if active is None:
            return False
        active.task.cancel()
        return True

    def rate_limited(self, user_id: int) -> float:
        """Seconds until `user_id` may ask again (0: now, and the question is counted)."""
        now = self.clock.now()
        retry = self.rate_limiter.retry_after(user_id, now)
        if retry <= 0:
            self.rate_limiter.record(user_id, now)
        return retry

    async def drain(self, grace: float) -> None:
        """Stop taking new work, give answers `grace` seconds to finish, then cut the rest short."""
        self.accepting = False
        tasks = [active.task for active in self._active.values()]
        if not tasks:
            return
        log.info("waiting up to %.0f s for %d reply(ies) to finish", grace, len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel(SHUTDOWN_CANCEL)
        if pending:
            log.info("cut %d reply(ies) short for shutdown", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    # ---- one answer

    async def answer(
        self,
        request: AnswerRequest,
        sink: MessageSink,
        *,
        message_id: MessageId,
        reuse: Sequence[object] = (),
        status: str | None = None,
        previous: AnswerRecord | None = None,
    ) -> RelayResult | None:
        """Stream an answer to `request` into `sink` and record it; None if shutdown had already begun.

        The caller has admitted the request (`rate_limited`). `reuse` are the messages of an earlier
        generation to overwrite (Regenerate, with `previous` its record).
        """
        if not self.accepting:
            return None  # shutting down: the question arrived after the drain began
        settings = self.settings
        effective = request.effective
        status_line = StatusLine()
        status_line.set(status)
        result = RelayResult()
        options = RelayOptions(
            edit_interval=settings.edit_interval,
            show_thinking=effective.show_thinking,
            stop_button=True,
            regenerate_button=True,
        )
        # The conversation is built once the request has its turn (attachments are downloaded then);
        # what had to be left out arrives as result.notes.
        spend = Spend()
        source = self._queued_stream(request, status_line, result.notes, spend)
        chunks = UsageMeter(_with_header(source, request.header) if request.header else source)
        answer = self._start_record(request, sink, [message_id(handle) for handle in reuse], previous)
        task = asyncio.create_task(
            relay_reply(
                chunks,
                RecordingSink(sink, answer, message_id),
                clock=self.clock,
                budget=self.budget,
                options=options,
                extra_notes=list(request.notes),
                status=status_line,
                reuse=reuse,
                result=result,
            ),
            name=f"reply-{request.key}",
        )
        self._active[request.key] = _ActiveAnswer(task=task, requester_id=request.requester_id)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves (shutdown), not just this answer
        finally:
            self._active.pop(request.key, None)
            _log_reply(result, guild_id=request.guild_id, channel_id=request.channel_id, model=effective.model)
            self._record_metrics(result)
            await answer.finish(
                outcome=result.outcome.value,
                done_reason=result.done_reason,
                eval_count=result.tokens,
                prompt_eval_count=chunks.prompt_eval_count,
                text=result.text,
                host=self._answered_by.pop(request.key, None),
            )
            spend.add(prompt_tokens=chunks.prompt_eval_count, answer_tokens=result.tokens)
            await self._count_usage(answer.record, spend, end=result.final_edit_at or self.clock.now())
        return result

    def _start_record(
        self, request: AnswerRequest, sink: MessageSink, reused_ids: list[int | None], previous: AnswerRecord | None
    ) -> LiveAnswer:
        """The answer's record, in state streaming; it is saved before the answer's first message."""
        values = request.effective.values
        return self.answers.start(
            key=request.key,
            kind=request.kind or (AnswerKind.ASK if request.ask is not None else AnswerKind.MESSAGE),
            guild_id=request.guild_id,
            channel_id=request.channel_id if request.channel_id is not None else sink.channel_key,
            requester_id=request.requester_id,
            model=request.effective.model,
            settings={key: value for key, value in values.items() if value is not None},
            prompt=request.ask,
            message_ids=[message for message in reused_ids if message is not None],
            previous=previous,
        )

    def _record_metrics(self, result: RelayResult) -> None:
        metrics = self.metrics
        metrics.replies.inc(outcome=result.outcome.value)
        metrics.tokens.inc(result.tokens)
        if result.first_token_at is not None:
            metrics.time_to_first_token.observe(result.first_token_at - result.started_at)
        if result.final_edit_at is not None:
            metrics.reply_duration.observe(result.final_edit_at - result.started_at)
        if result.error is not None:
            metrics.ollama_errors.inc(kind=error_kind(result.error))

    async def _queued_stream(
        self, request: AnswerRequest, status: StatusLine, late_notes: list[str], spend: Spend
    ) -> AsyncGenerator[ChatChunk, None]:
        """Wait for a turn on Ollama (showing the queue position), then stream, retrying 'server busy'.

        Attachments are downloaded and the conversation fitted to the model's context only once the
        turn has come, so a queued request holds no image bytes.
        """

        effective = request.effective
        initial = status.text

        async def on_wait(position: QueuePosition) -> None:
            status.set(notes.queue_status(position.position, position.waiting))

        async def on_retry(attempt: int, delay: float) -> None:
            status.set(notes.busy_retry_status(delay))

        lease_turn = self.ollama.lease(effective.model, conversation=request.channel_id, on_wait=on_wait)
        async with lease_turn as lease:
            status.set(initial)  # the queue position is no longer news
            spend.turn_started_at = self.clock.now()
            if request.summary is not None:
                async for chunk in self._summary_stream(request, status, on_retry, spend, lease):
                    yield chunk
                return
            prepared = await self.prompts.prepare(
                request.records,
                chain_cut=request.cut,
                effective=effective,
                attachments=request.attachments,
                download=request.download or _nothing_to_download,
                conversation=request.channel_id,
                place=request.place,
                query=request.knowledge_query,
            )
            try:
                late_notes.extend(notes.note(text) for text in prepared.notes)
                if prepared.history_limited:
                    late_notes.insert(0, HISTORY_TRIMMED)

                def open_on(client: OllamaClient) -> AsyncGenerator[ChatChunk, None]:
                    def open_with(think_value: bool | str | None) -> AsyncGenerator[ChatChunk, None]:
                        return client.chat_stream(
                            effective.model,
                            prepared.messages,
                            options=effective.options or None,
                            think=think_value,
                            keep_alive=effective.keep_alive,
                            batch=True,  # the relay edits about once a second: no need to wake per token
                        )

                    return stream_without_rejected_think(
                        open_with, prepared.think, on_rejected=lambda: self.prompts.forget(effective.model)
                    )

                # The pool retries "server busy" and moves the request to another host on a failure before the
                # first token (bot/ollama/pool.py).
                async with contextlib.aclosing(lease.stream(open_on, on_retry=on_retry)) as stream:
                    async for chunk in stream:
                        # The host is fixed once the first chunk came (failover happens only before it).
                        if request.key not in self._answered_by and lease.url is not None:
                            self._answered_by[request.key] = lease.url
                        if chunk.done and chunk.prompt_eval_count:
                            self.prompts.observe(prepared, effective.model, request.channel_id, chunk.prompt_eval_count)
                        yield chunk
            finally:
                self.prompts.release(prepared)

    async def _summary_stream(
        self,
        request: AnswerRequest,
        status: StatusLine,
        on_retry: Callable[[int, float], Awaitable[None]],
        spend: Spend,
        lease: Lease,
    ) -> AsyncGenerator[ChatChunk, None]:
        """A summary: map-reduce within the model's context, the final combine streamed (bot/summaries/).

        Every part is asked on the host the turn was leased on (the pool may move a part that fails before its
        first token to another host).
        """
        assert request.summary is not None
        effective = request.effective
        room = await self.prompts.model_room(effective, request.channel_id)

        def open_chat(messages: list[dict[str, object]]) -> AsyncGenerator[ChatChunk, None]:
            def open_on(client: OllamaClient) -> AsyncGenerator[ChatChunk, None]:
                def open_with(think_value: bool | str | None) -> AsyncGenerator[ChatChunk, None]:
                    return client.chat_stream(
                        effective.model,
                        messages,
                        options=effective.options or None,
                        think=think_value,
                        keep_alive=effective.keep_alive,
                    )

                return stream_without_rejected_think(
                    open_with, room.think, on_rejected=lambda: self.prompts.forget(effective.model)
                )

            return lease.stream(open_on, on_retry=on_retry)

        summary = summarize(
            request.summary,
            budget=room.budget,
            system=effective.system,
            open_chat=open_chat,
            progress=status.set,
            spend=spend,
        )
        async with contextlib.aclosing(summary) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _count_usage(self, record: AnswerRecord, spend: Spend, *, end: float) -> None:
        """Per-model token counters, and the answer added to the usage figures."""
        model = record.model
        self.metrics.model_tokens.inc(spend.prompt_tokens, model=model, kind="prompt")
        self.metrics.model_tokens.inc(spend.answer_tokens, model=model, kind="answer")
        if self.usage is not None:
            await self.usage.add_answer(
                record,
                prompt_tokens=spend.prompt_tokens,
                answer_tokens=spend.answer_tokens,
                seconds=spend.seconds_until(end),
            )


async def _with_header(stream: AsyncGenerator[ChatChunk, None], header: str) -> AsyncGenerator[ChatChunk, None]:
    """`stream` with `header` as answer text just before the model's first words (after its reasoning)."""
    shown = False
    async with contextlib.aclosing(stream) as chunks:
        async for chunk in chunks:
            if not shown and chunk.content:
                shown = True
                yield ChatChunk(content=header, thinking="", done=False)
            yield chunk


async def _nothing_to_download(file: AttachmentRecord) -> bytes | None:
    """A request without a downloader has no attachments to fetch."""
    return None


def _log_reply(result: RelayResult, *, guild_id: int | None, channel_id: int | None, model: str) -> None:
    """The one INFO line per finished reply (never its text)."""
    ttft = (result.first_token_at - result.started_at) if result.first_token_at is not None else None
    end = result.final_edit_at if result.final_edit_at is not None else result.started_at
    log.info(
        "reply finished guild=%s channel=%s model=%s outcome=%s tokens=%d chars=%d messages=%d ttft=%s "
        "duration=%.2fs%s",
        guild_id or "-",
        channel_id,
        model,
        result.outcome.value,
        result.tokens,
        len(result.text),
        result.message_count,
        f"{ttft:.2f}s" if ttft is not None else "-",
        end - result.started_at,
        f" error={type(result.error).__name__}" if result.error else "",
    )
