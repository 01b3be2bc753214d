"""The /usage answer: a compact table in a code block, within Discord's 2000 characters."""

from __future__ import annotations

from collections.abc import Callable

from bot.usage.ledger import Period, UsageReport
from bot.usage.store import Dimension, UsageAmounts, UsageTotal

__all__ = ["MAX_ROWS", "render_usage"]

MAX_ROWS = 20
MESSAGE_LIMIT = 2000
NAME_WIDTH = 22
PERIOD_WORDS = {Period.DAY: "today", Period.WEEK: "the last 7 days", Period.MONTH: "the last 30 days"}
TITLE = "📊 **{whose}** · {period} ({since} – {until}, UTC) · by {by}"
NO_USAGE = "No answers in that time."
MORE_ROWS = "… and {count} more"
LEGEND = (
    "-# prompt: tokens sent to the model (history, files, instructions); answer: tokens it generated; "
    "time: how long the answers held Ollama."
)
HEADINGS = ("answers", "prompt", "answer", "time")


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _clip(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"


def _row(name: str, amounts: UsageAmounts) -> str:
    cells = (
        f"{amounts.answers:,}",
        f"{amounts.prompt_tokens:,}",
        f"{amounts.answer_tokens:,}",
        _duration(amounts.seconds),
    )
    return f"{_clip(name):<{NAME_WIDTH}} {cells[0]:>7} {cells[1]:>9} {cells[2]:>8} {cells[3]:>8}"


def render_usage(
    report: UsageReport, *, whose: str, period: Period, name_of: Callable[[Dimension, int | str], str]
) -> str:
    """The table for `report`, heaviest rows first; `name_of` turns a user or channel id into a readable name."""
    title = TITLE.format(
        whose=whose, period=PERIOD_WORDS[period], since=report.since, until=report.until, by=report.by.value
    )
    if not report.totals:
        return f"{title}\n{NO_USAGE}"
    header = f"{report.by.value:<{NAME_WIDTH}} {HEADINGS[0]:>7} {HEADINGS[1]:>9} {HEADINGS[2]:>8} {HEADINGS[3]:>8}"
    rows: list[UsageTotal] = report.totals[:MAX_ROWS]
    while True:
        lines = [header, *(_row(name_of(report.by, t.key), t.amounts) for t in rows)]
        hidden = len(report.totals) - len(rows)
        if hidden:
            lines.append(MORE_ROWS.format(count=hidden))
        if len(report.totals) > 1:
            lines.append(_row("total", report.overall))
        text = f"{title}\n```\n" + "\n".join(lines) + f"\n```\n{LEGEND}"
        if len(text) <= MESSAGE_LIMIT or len(rows) <= 1:
            return text[:MESSAGE_LIMIT]
        rows = rows[:-1]
