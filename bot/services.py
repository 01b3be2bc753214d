"""The services the Discord adapters receive: built once by the composition root (bot/__main__.py).

Kept in their own module so the app class and the cogs both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.answers.book import AnswerBook
from bot.answers.service import AnswerService
from bot.channel_settings.store import SettingsStore
from bot.clock import Clock
from bot.config import Settings
from bot.knowledge.base import KnowledgeBase
from bot.metrics import Metrics
from bot.ollama.catalog import ModelCatalog
from bot.ollama.pool import OllamaPool
from bot.streaming.pacing import ChannelWriteBudget
from bot.usage.ledger import UsageLedger

__all__ = ["Services"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the Discord adapters need, built once by the composition root."""

    settings: Settings
    ollama: OllamaPool  # every Ollama host (a single one is a pool of one)
    clock: Clock
    budget: ChannelWriteBudget
    store: SettingsStore
    catalog: ModelCatalog
    metrics: Metrics
    answers: AnswerBook
    answering: AnswerService
    usage: UsageLedger
    knowledge: KnowledgeBase | None = None
