"""The usage ledger: every finished answer added to its day's totals, totals read back per period, old days pruned.

Like the answer book, a failing or slow store never holds up an answer: a write waits at most
`write_timeout` seconds, and failures are logged (once per outage at WARNING).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.answers.records import AnswerRecord, utc_now
from bot.usage.store import DM_GUILD, Dimension, UsageAmounts, UsageKey, UsageQuery, UsageStore, UsageTotal

__all__ = ["DEFAULT_RETENTION_DAYS", "Period", "UsageLedger", "UsageReport"]

log = logging.getLogger(__name__)

# Three months of daily rows: enough for monthly figures and a look back, and small (one row per active
# user, channel and model a day).
DEFAULT_RETENTION_DAYS = 90
WRITE_TIMEOUT = 5.0


class Period(enum.StrEnum):
    """How far back /usage looks: today, or the last 7 or 30 days (UTC days, today included)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def days(self) -> int:
        """How many UTC days the period covers."""
        return {Period.DAY: 1, Period.WEEK: 7, Period.MONTH: 30}[self]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """The totals of one query and the days they cover."""

    since: date
    until: date
    by: Dimension
    totals: list[UsageTotal]

    @property
    def overall(self) -> UsageAmounts:
        """Everything in the report added up."""
        total = UsageAmounts()
        for row in self.totals:
            total += row.amounts
        return total


class UsageLedger:
    """Adds finished answers to the daily totals and reads them back."""

    def __init__(
        self,
        store: UsageStore,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        default_host: str = "",
        now: Callable[[], datetime] = utc_now,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        self.store = store
        self.retention_days = retention_days
        # The host an answer ran on when its record does not say (one Ollama server: OLLAMA_HOST).
        self.default_host = default_host
        self.now = now
        self.write_timeout = write_timeout
        self._failing = False

    def today(self) -> date:
        """The current UTC day."""
        return self.now().date()

    async def add_answer(self, record: AnswerRecord, *, prompt_tokens: int, answer_tokens: int, seconds: float) -> bool:
        """Add one finished answer to its day (the day it finished); False if the store did not take it."""
        day = (record.finished_at or self.now()).date()
        key = UsageKey(
            day=day,
            guild_id=record.guild_id if record.guild_id is not None else DM_GUILD,
            channel_id=record.channel_id,
            user_id=record.requester_id,
            model=record.model,
            host=record.host or self.default_host,
        )
        amounts = UsageAmounts(answers=1, prompt_tokens=prompt_tokens, answer_tokens=answer_tokens, seconds=seconds)
        try:
            await asyncio.wait_for(self.store.add_usage(key, amounts), self.write_timeout)
        except Exception as exc:
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(
                level, "could not add answer %s to the usage figures: %s", record.key, str(exc) or type(exc).__name__
            )
            self._failing = True
            return False
        if self._failing:
            log.info("usage figures are being saved again")
            self._failing = False
        return True

    async def report(self, *, guild_id: int, period: Period, by: Dimension, user_id: int | None = None) -> UsageReport:
        """The totals for `period` in a server, grouped `by`; one user's only when `user_id` is set.

        Raises what the store raises: the command tells the user the figures can't be read.
        """
        until = self.today()
        since = until - timedelta(days=period.days - 1)
        query = UsageQuery(guild_id=guild_id, since=since, until=until, by=by, user_id=user_id)
        totals = await self.store.usage_totals(query)
        return UsageReport(since=since, until=until, by=by, totals=totals)

    async def prune(self) -> int:
        """Delete the days older than the retention period; return how many rows went (0 if the store fails)."""
        before = self.today() - timedelta(days=self.retention_days - 1)
        try:
            removed = await asyncio.wait_for(self.store.prune_usage(before), self.write_timeout)
        except Exception as exc:
            log.warning("could not prune old usage figures: %s", str(exc) or type(exc).__name__)
            return 0
        if removed:
            log.info("pruned %d usage row(s) older than %d days", removed, self.retention_days)
        return removed
