"""Who uses the GPUs: every finished answer's tokens and time, added up per day and kept for a bounded time."""

from bot.usage.ledger import Period, UsageLedger, UsageReport
from bot.usage.spend import Spend
from bot.usage.store import Dimension, MemoryUsageStore, UsageAmounts, UsageKey, UsageQuery, UsageStore, UsageTotal

__all__ = [
    "Dimension",
    "MemoryUsageStore",
    "Period",
    "Spend",
    "UsageAmounts",
    "UsageKey",
    "UsageLedger",
    "UsageQuery",
    "UsageReport",
    "UsageStore",
    "UsageTotal",
]
