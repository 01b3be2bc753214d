"""Turning an admitted request into what is sent to Ollama: attachments, conversation, context budget, think.

Runs once a request has passed the per-user limit and has its turn in the queue: only then are
attachments downloaded (through a callable the Discord adapter supplies), so requests waiting in
line hold no file bytes. The conversation is then fitted to the context the model will really run
with, and `think` is sent only to models that can think.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace

from bot.attachments import AttachmentLimits, AttachmentPlan, AttachmentRecord, ImageMemoryBudget, fetch_attachments
from bot.channel_settings.resolve import EffectiveSettings
from bot.context_budget import ContextBudget, TokenCalibration, answer_reserve, context_window, fit_to_context
from bot.conversation import ChatRecord, build_conversation
from bot.knowledge.base import KnowledgeBase, Retrieval
from bot.knowledge.prompt import sources_note
from bot.knowledge.records import KnowledgePlace
from bot.ollama.catalog import OLD_DEFAULT_NUM_CTX, ModelCatalog, ModelProfile
from bot.ollama.errors import OllamaError
from bot.ollama.think_gate import Think, think_for_model

__all__ = ["ModelRoom", "PreparedPrompt", "PromptPreparer"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PreparedPrompt:
    """Messages for /api/chat and what the user should be told about them."""

    messages: list[dict[str, object]]
    # Plain note texts (no prefix): files that could not be read, what was left out for the context, and
    # the sources line of the team-knowledge excerpts (or why knowledge could not be used).
    notes: list[str] = field(default_factory=list)
    # The history limit (message count or HISTORY_MAX_CHARS) left older messages out.
    history_limited: bool = False
    window: int = 0
    estimated_tokens: float = 0.0
    has_images: bool = False
    # Image bytes held in the process-wide budget until the request is done.
    held_bytes: int = 0
    # The `think` value to send (None: leave the field out).
    think: Think = None


@dataclass(frozen=True, slots=True)
class ModelRoom:
    """The context a request with these settings will run in, and the `think` value to send."""

    budget: ContextBudget
    think: Think = None


class PromptPreparer:
    """Builds prompts within the model's context; holds the token calibration and the image memory budget."""

    def __init__(
        self,
        catalog: ModelCatalog,
        *,
        limits: AttachmentLimits,
        image_memory_bytes: int,
        history_max_messages: int,
        history_max_chars: int,
        knowledge: KnowledgeBase | None = None,
    ) -> None:
        self._catalog = catalog
        self._knowledge = knowledge
        self._limits = limits
        self._history_max_messages = history_max_messages
        self._history_max_chars = history_max_chars
        # One image always fits, whatever the two limits say.
        self.image_memory = ImageMemoryBudget(max(image_memory_bytes, limits.max_image_bytes))
        self.calibration = TokenCalibration()

    async def prepare(
        self,
        records: Sequence[ChatRecord],
        *,
        chain_cut: bool,
        effective: EffectiveSettings,
        attachments: AttachmentPlan | None,
        download: Callable[[AttachmentRecord], Awaitable[bytes | None]],
        conversation: Hashable,
        place: KnowledgePlace | None = None,
        query: str | None = None,
    ) -> PreparedPrompt:
        """Download the planned attachments, build the conversation and fit it to the model's context.

        With a `place` (where the question was asked, in a server), the team knowledge that applies there
        is searched for the question (`query`, else the last turn's text) and the best excerpts go into the
        prompt, with a sources line.
        The caller must :meth:`release` the result once the request is done.
        """
        chain = list(records)
        files = []
        download_notes: list[str] = []
        held = 0
        if attachments is not None and chain:
            fetched = await fetch_attachments(attachments, download, image_memory=self.image_memory)
            held = fetched.reserved
            files = fetched.files
            download_notes = fetched.notes
            if fetched.images:
                chain[-1] = replace(chain[-1], images=tuple(fetched.images))
        try:
            built = build_conversation(
                chain,
                max_messages=effective.history or self._history_max_messages,
                max_chars=self._history_max_chars,
                system=effective.system,
                chain_cut=chain_cut,
            )
            profile = await self._profile(effective.model)
            budget = await self._budget(effective, profile, conversation)
            retrieval = await self._retrieve(place, chain, query)
            fitted = fit_to_context(
                built.messages, files, budget, max_file_chars=self._limits.max_text_chars, excerpts=retrieval.excerpts
            )
        except BaseException:
            self.image_memory.release(held)
            raise
        sources = sources_note(fitted.excerpts)
        return PreparedPrompt(
            messages=fitted.messages,
            notes=[*fitted.notes, *download_notes, *retrieval.notes, *([sources] if sources else [])],
            # One note is enough: when the context already left turns out, it says so more precisely.
            history_limited=built.trimmed and not fitted.dropped_turns,
            window=budget.window,
            estimated_tokens=fitted.estimated_tokens,
            has_images=fitted.has_images,
            held_bytes=held,
            think=think_for_model(effective.think, profile.capabilities if profile is not None else None),
        )

    async def _retrieve(
        self, place: KnowledgePlace | None, chain: Sequence[ChatRecord], query: str | None
    ) -> Retrieval:
        """Excerpts of the knowledge that applies where the question was asked (none in DMs or without knowledge)."""
        if self._knowledge is None or place is None or not chain:
            return Retrieval()
        return await self._knowledge.retrieve(place, query or chain[-1].content)

    async def model_room(self, effective: EffectiveSettings, conversation: Hashable) -> ModelRoom:
        """The context budget and `think` for a prompt built elsewhere (a summary's several requests)."""
        profile = await self._profile(effective.model)
        return ModelRoom(
            budget=await self._budget(effective, profile, conversation),
            think=think_for_model(effective.think, profile.capabilities if profile is not None else None),
        )

    def release(self, prepared: PreparedPrompt) -> None:
        """Give back the image memory the prompt held."""
        self.image_memory.release(prepared.held_bytes)
        prepared.held_bytes = 0

    def observe(self, prepared: PreparedPrompt, model: str, conversation: Hashable, prompt_eval_count: int) -> None:
        """Calibrate the token estimate with the prompt size Ollama reported for this prompt."""
        if prepared.has_images:
            return  # image token costs vary by model; they would distort the text calibration
        self.calibration.observe(
            model, conversation, estimated=prepared.estimated_tokens, counted=prompt_eval_count, window=prepared.window
        )

    def forget(self, model: str) -> None:
        """Ollama contradicted what is cached about `model` (e.g. refused think): ask again next time."""
        self._catalog.forget(model)

    async def _profile(self, model: str) -> ModelProfile | None:
        try:
            return await self._catalog.profile(model)
        except OllamaError as exc:
            # The chat request will fail too, and explain itself; budget with defaults meanwhile.
            log.debug("no /api/show for %s: %s", model, type(exc).__name__)
            return None

    async def _budget(
        self, effective: EffectiveSettings, profile: ModelProfile | None, conversation: Hashable
    ) -> ContextBudget:
        options = effective.options
        configured = _positive_int(options.get("num_ctx"))
        loaded = modelfile = None
        server_default = OLD_DEFAULT_NUM_CTX
        # Without /api/show Ollama is unreachable or lacks the model: the request will fail and say so,
        # so do not make it wait for more lookups.
        if profile is not None and not configured:
            loaded = await self._catalog.loaded_context(effective.model)
            modelfile = profile.modelfile_num_ctx
            if not (loaded or modelfile):
                server_default = await self._catalog.default_num_ctx()
        window = context_window(
            configured=configured,
            loaded=loaded,
            modelfile=modelfile,
            trained=profile.trained_context if profile is not None else None,
            server_default=server_default,
        )
        return ContextBudget(
            window=window,
            reserve=answer_reserve(window, _positive_int(options.get("num_predict"))),
            factor=self.calibration.factor(effective.model, conversation),
        )


def _positive_int(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    return None
