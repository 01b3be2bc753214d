"""Split a growing model answer into Discord-sized messages, stably.

The relay calls :func:`split_reply` on every update with the whole answer so far.
All parts but the last are final: once a later part exists the relay never edits
them again, so for any text ``T`` and extension ``T + X`` every non-final part of
``split_reply(T)`` equals the same-index part of ``split_reply(T + X)``.

How that is guaranteed: a part starting at ``start`` is the last one exactly when
*every* prefix of the remaining text would render within the limit (a monotone
test: extending the text only adds prefixes). Otherwise let ``first_fail`` be the
shortest prefix end that would not fit; the cut is chosen by looking only at
``text[:first_fail]``, which is identical in every extension. Fence state at a
cut depends only on the complete lines before it (the cut never lands inside a
fence line), so ``open_fence`` and the next part's ``reopen`` are stable too.
A consequence: a text whose full render fits can still be split when a shorter
prefix of it would not have fit (say an almost full message whose last line
turns a pending closing repair into a real closing fence).

Split rules ("fill" is the share of the room for raw text in the part that a cut
uses); the first rule with a candidate wins, and within a rule the latest one:

1. paragraph break outside code (cut after the blank line), or a block boundary
   (just before a fence opener line, just after a closing fence line), fill >= 1/2;
2. any newline (outside or inside code), fill >= 1/2;
3. a space outside code, fill >= 1/2;
4. a block boundary, fill >= 1/4 (rather than cutting a code block at a space);
5. any newline, fill >= 1/4;
6. a space (outside or inside code), fill >= 1/4;
7. a newline inside code that would leave an empty code block (right after the
   opener, right before the closer), fill >= 1/4;
8. otherwise a hard cut at the window end, moved back so a combining mark /
   emoji modifier / ZWJ sequence stays with its base character, and moved to the
   start of the line when it would land inside a fence line.

Space and hard cuts are never taken inside a fence line, nor where the next part
would begin with something that looks like a fence.

Fences follow Discord's flavour: a line whose first non-space characters (at most
three spaces of indentation) are three or more backticks opens a block when its
info string has no backtick (a line like "```x```" is inline code, not an opener),
and while a block is open any such line closes it. Backticks mid-line are never
fences. A cut inside an open block closes it in :meth:`ReplyPart.render` and the
next part reopens it with the same opener (indentation and trailing spaces
dropped; an opener longer than 100 characters or a quarter of ``limit - reserve``
is reopened as a bare fence). A fence line longer than a whole message is the one
case where a cut must land inside a fence line; the split then stays within the
limit and stable, but that part's fences may not balance.

Standard library only; one forward pass over the lines plus O(window) work per
part, so a call is O(len(text)).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["MESSAGE_LIMIT", "ReplyPart", "split_reply"]

MESSAGE_LIMIT = 2000
"""Discord's maximum message length, in characters."""

_FENCE = "```"
_FENCE_PREFIXES = tuple(" " * indent + _FENCE for indent in range(4))  # a fence line starts with one
_CLOSE_MAX = len("\n" + _FENCE)  # the longest closing repair render() can add
_MIN_BUDGET = 16  # limit - reserve below this cannot hold reopen + close + text
_MAX_LABEL = 100  # longest opener line reopened verbatim
_ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class ReplyPart:
    """One Discord message worth of the answer.

    ``raw`` is an exact slice of the model's text (the raws of all parts join to
    the text). ``reopen`` is a fence repair shown before ``raw`` (``""`` or e.g.
    ``"```python\\n"``, reopening a code block cut by the previous split).
    ``open_fence`` is the opener (e.g. ``"```python"`` or ``"```"``) of a block
    still open at the end of this part, else ``None``.
    """

    raw: str
    reopen: str = ""
    open_fence: str | None = None

    def render(self, suffix: str = "") -> str:
        """The message content: reopen + raw + closing fence if a block is open + suffix."""
        if self.open_fence is None:
            return self.reopen + self.raw + suffix
        close = _FENCE if self.raw.endswith("\n") else "\n" + _FENCE
        return self.reopen + self.raw + close + suffix


def split_reply(text: str, *, limit: int = MESSAGE_LIMIT, reserve: int = 0) -> list[ReplyPart]:
    """Split ``text`` into parts whose ``render()`` plus ``reserve`` characters fit in ``limit``.

    ``reserve`` is room the caller keeps for a suffix passed to ``render``. Empty
    text gives one empty part. Raises ``ValueError`` if ``reserve`` is negative
    or ``limit - reserve`` is too small to hold fence repairs.
    """
    if reserve < 0:
        raise ValueError(f"reserve must be >= 0, got {reserve}")
    budget = limit - reserve
    if budget < _MIN_BUDGET:
        raise ValueError(f"limit - reserve must be >= {_MIN_BUDGET}, got {budget}")
    if not text:
        return [ReplyPart("", "", None)]

    # Longest opener reopened verbatim; keeps reopen <= budget // 4 so windows stay large.
    scan = _Scan(text, max(len(_FENCE), min(_MAX_LABEL, budget // 4 - 1)))
    parts: list[ReplyPart] = []
    start = 0
    reopen = ""
    while True:
        room = budget - len(reopen)  # raw + closing repair must fit in this
        first_fail = scan.first_overflow(start, room)
        if first_fail is None:
            parts.append(ReplyPart(text[start:], reopen, scan.state_at(len(text))))
            return parts
        cut = scan.choose_cut(start, first_fail)
        fence = scan.state_at(cut)
        parts.append(ReplyPart(text[start:cut], reopen, fence))
        start = cut
        reopen = "" if fence is None else fence + "\n"


# Cut categories (see the module docstring for the rules).
_PARA = 0  # paragraph break outside code
_BLOCK = 1  # just before a fence opener line or just after a closing fence line
_NL = 2  # other newline
_NL_BAD = 3  # newline inside code right after the opener / right before the closer
_SP_PROSE = 4  # space outside code
_SP_CODE = 5  # space inside code

# (categories, fill denominator): accept the latest such cut with fill >= 1/denominator.
_RULES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((_PARA, _BLOCK), 2),
    ((_PARA, _BLOCK, _NL), 2),
    ((_SP_PROSE,), 2),
    ((_BLOCK,), 4),
    ((_PARA, _BLOCK, _NL), 4),
    ((_SP_PROSE, _SP_CODE), 4),
    ((_NL_BAD,), 4),
)


def _fence_at(text: str, start: int, end: int) -> int:
    """Index of the backtick run if ``text[start:end]`` is a fence line, else -1."""
    i = start
    stop = min(start + 3, end)
    while i < stop and text[i] == " ":
        i += 1
    return i if text.startswith(_FENCE, i, end) else -1


def _step(state: str | None, text: str, start: int, end: int, max_label: int) -> str | None:
    """Fence state after the line ``text[start:end]``, given the state before it."""
    ticks = _fence_at(text, start, end)
    if ticks < 0:
        return state
    if state is not None:
        return None  # Discord: any fence line closes an open block
    label = text[ticks:end].rstrip()
    if "`" in label.lstrip("`"):
        return None  # ```code``` on its own line is inline code, not an opener
    return label if len(label) <= max_label else _FENCE


def _is_extender(ch: str) -> bool:
    """Whether ``ch`` belongs with the character before it (combining mark, emoji modifier, ...)."""
    o = ord(ch)
    return (
        o == 0x200D  # zero width joiner
        or 0xFE00 <= o <= 0xFE0F  # variation selectors
        or 0x1F3FB <= o <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= o <= 0xE007F  # tag characters (subdivision flags)
        or unicodedata.category(ch) in ("Mn", "Mc", "Me")
    )


class _Scan:
    """Line table and fence states of one text, from a single forward pass."""

    __slots__ = ("after_close", "after_open", "before", "max_label", "starts", "text")

    def __init__(self, text: str, max_label: int) -> None:
        self.text = text
        self.max_label = max_label
        self.starts: list[int] = []  # start index of every line
        self.before: list[str | None] = []  # open opener before every line
        self.after_open: list[bool] = []  # line opens a block
        self.after_close: list[bool] = []  # line closes a block
        state: str | None = None
        pos = 0
        for line in text.split("\n"):
            end = pos + len(line)
            new = _step(state, text, pos, end, max_label) if line.startswith(_FENCE_PREFIXES) else state
            self.starts.append(pos)
            self.before.append(state)
            self.after_open.append(state is None and new is not None)
            self.after_close.append(state is not None and new is None)
            state = new
            pos = end + 1

    def line_of(self, pos: int) -> int:
        """Index of the line containing ``pos`` (a line start belongs to its line)."""
        return bisect_right(self.starts, pos) - 1

    def state_at(self, pos: int) -> str | None:
        """Fence state after ``text[:pos]``, a trailing partial line counting as a line."""
        i = self.line_of(pos)
        line_start = self.starts[i]
        if pos == line_start:
            return self.before[i]
        return _step(self.before[i], self.text, line_start, pos, self.max_label)

    def maybe_fence(self, pos: int, visible_end: int) -> bool:
        """Whether a line starting at ``pos`` is, or judging by ``text[:visible_end]`` may become, a fence line."""
        text = self.text
        if pos < visible_end and text[pos] not in " `":
            return False
        stop = min(pos + 6, visible_end)
        newline = text.find("\n", pos, stop)
        end = stop if newline < 0 else newline
        i = pos
        while i < min(pos + 3, end) and text[i] == " ":
            i += 1
        if text.startswith(_FENCE, i, end):
            return True
        undecided = newline < 0 and stop == visible_end and stop < pos + 6
        return undecided and text[i:end].strip("`") == ""

    def first_overflow(self, start: int, room: int) -> int | None:
        """End of the shortest ``text[start:end]`` whose raw + closing repair exceeds ``room``.

        ``None`` when no prefix of the rest (including all of it) overflows: the part is the last.
        """
        text = self.text
        n = len(text)
        for end in range(max(start, start + room - _CLOSE_MAX + 1), min(n, start + room) + 1):
            if self.state_at(end) is None:
                close = 0
            elif end > start and text[end - 1] == "\n":
                close = len(_FENCE)
            else:
                close = _CLOSE_MAX
            if end - start + close > room:
                return end
        return None if n <= start + room else start + room + 1

    def choose_cut(self, start: int, first_fail: int) -> int:
        """Where the part starting at ``start`` ends; looks only at ``text[:first_fail]``."""
        text = self.text
        window_end = first_fail - 1  # every raw up to here fits
        width = window_end - start
        low = start + (width + 3) // 4  # earliest cut with fill >= 1/4 (> start since width >= 1)
        latest: dict[int, int] = {}

        # Latest newline cut of each category, scanning back only while an earlier cut could still win:
        # nothing earlier beats a block boundary, nor a paragraph break with fill >= 1/2 (rule 1).
        nl = text.rfind("\n", low - 1, window_end)
        while nl >= 0:
            cut = nl + 1
            category = self._newline_category(cut, start, first_fail)
            latest.setdefault(category, cut)
            if category == _BLOCK or (category == _PARA and (cut - start) * 2 >= width):
                break
            nl = text.rfind("\n", low - 1, nl)

        # Latest space cut outside code, and inside code if that is later (rules only take maxima).
        sp = text.rfind(" ", low - 1, window_end)
        line = self.line_of(sp) if sp >= 0 else 0
        checked_line, in_fence_line = -1, False
        while sp >= 0:
            cut = sp + 1
            if _SP_CODE in latest and (cut - start) * 2 < width:
                break  # an earlier space outside code could only matter for rule 3 (fill >= 1/2)
            while self.starts[line] > sp:
                line -= 1
            if line != checked_line:
                checked_line, in_fence_line = line, self.maybe_fence(self.starts[line], first_fail)
            if not in_fence_line and not self.maybe_fence(cut, first_fail):
                if self.before[line] is None:
                    latest[_SP_PROSE] = cut
                    break
                latest.setdefault(_SP_CODE, cut)
            sp = text.rfind(" ", low - 1, sp)

        for cats, denominator in _RULES:
            best = max((latest[cat] for cat in cats if cat in latest), default=-1)
            if best > start and (best - start) * denominator >= width:
                return best
        return self._hard_cut(start, window_end, first_fail)

    def _newline_category(self, cut: int, start: int, first_fail: int) -> int:
        """Category of a cut at line start ``cut`` (just after a newline)."""
        i = self.line_of(cut)
        next_is_fence = self.maybe_fence(cut, first_fail)
        if self.before[i] is None:
            if next_is_fence or (i > 0 and self.after_close[i - 1]):
                return _BLOCK
            if cut - 2 >= start and self.text[cut - 2] == "\n":
                return _PARA
            return _NL
        if next_is_fence or (i > 0 and self.after_open[i - 1]):
            return _NL_BAD
        return _NL

    def _hard_cut(self, start: int, window_end: int, first_fail: int) -> int:
        """Cut a single over-long token at the window end, nudged back where cheap."""
        text = self.text
        cut = window_end
        for pos in range(window_end, max(start, window_end - 16), -1):
            mid_line = text[pos - 1] != "\n"
            if not (
                _is_extender(text[pos]) or text[pos - 1] == _ZWJ or (mid_line and self.maybe_fence(pos, first_fail))
            ):
                cut = pos
                break
        i = self.line_of(cut)
        line_start = self.starts[i]
        if start < line_start < cut and self.maybe_fence(line_start, first_fail):
            cut = line_start  # never inside a fence line: move before it
        return cut
