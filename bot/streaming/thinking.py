"""Streaming removal of ``<think>…</think>`` reasoning that leaks into ``message.content``.

Ollama normally puts reasoning in ``message.thinking``, but old servers, stale model templates and
models that think despite ``think:false`` still write ``<think>…</think>`` into the content, one
small delta at a time (see the Ollama API notes, §7). :class:`ThinkTagFilter` routes the text inside
such blocks to ``reasoning`` and the rest to ``content`` as the deltas arrive.

Caller protocol, per :class:`Filtered` returned by ``feed``/``finish``::

    if out.retract:                       # the answer so far was reasoning after all
        reasoning += content
        content = ""
    reasoning += out.reasoning
    content += out.content

Applied like this, the totals never depend on how the stream was cut into deltas.

Rules:

* Tags are ``<think>``, ``</think>``, ``<thinking>`` and ``</thinking>``, ASCII case-insensitive.
  Only the shortest tail that could still grow into a tag the filter would act on is held back
  (``"<"``, ``"<th"``, ``"</thi"``…, at most 10 characters); everything else is returned at once.
* Blocks do not nest: inside a block an opening tag is reasoning text, and either closing tag ends it.
* Reasoning is returned verbatim (an empty ``<think>\\n\\n</think>`` yields reasoning ``"\\n\\n"``;
  strip it when rendering). Content drops the whitespace right after a closing tag, so an empty block
  and the blank lines after it vanish from the answer.
* A closing tag with no open block, before any block was seen and while at most
  ``max_retract_chars`` of content came before it, means the stream opened in reasoning (the
  template put ``<think>`` in the prompt): everything before it becomes reasoning, with
  ``retract=True`` when part of it was already returned as content. Any later stray closing tag is
  literal text.
* A tag right after a backtick (inline code such as `` `<think>` ``) is literal, and so is a tag in
  the answer inside a fenced code block (Discord flavour, as in :mod:`bot.streaming.splitter`).
  Known limitation: fences are tracked in content only, so when the stream opens in reasoning that
  contains an unbalanced fence, the closing tag that ends it is taken as literal code.

One pass over the input with constant work per character: O(total length).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Filtered", "ThinkTagFilter"]

_OPEN = ("<think>", "<thinking>")
_CLOSE = ("</think>", "</thinking>")
_LONGEST = max(len(tag) for tag in _OPEN + _CLOSE)


@dataclass(frozen=True, slots=True)
class Filtered:
    """What one delta contributed: answer text, reasoning text, and whether to retract the answer so far."""

    content: str
    reasoning: str
    retract: bool = False


# Line states of the fence tracker.
_LEAD, _TICKS, _INFO, _PLAIN = range(4)


class _Fences:
    """Whether the answer produced so far ends inside a fenced code block."""

    __slots__ = ("_spaces", "_state", "_ticks", "inside")

    def __init__(self) -> None:
        self.inside = False
        self._state = _LEAD
        self._spaces = 0
        self._ticks = 0

    def feed(self, text: str) -> None:
        start = 0
        while (newline := text.find("\n", start)) >= 0:
            self._scan(text, start, newline)
            if self._state == _INFO or (self._state == _TICKS and self._ticks >= 3):
                self.inside = not self.inside
            self._state, self._spaces, self._ticks = _LEAD, 0, 0
            start = newline + 1
        self._scan(text, start, len(text))

    def _scan(self, text: str, i: int, end: int) -> None:
        # Character by character only through the indentation and the backtick run; the rest of a
        # line is settled with one find, so a line costs O(its length) however it is delivered.
        while i < end:
            state = self._state
            if state == _PLAIN:
                return
            if state == _INFO:
                if not self.inside and text.find("`", i, end) >= 0:
                    self._state = _PLAIN  # ```code``` on its own line is inline code, not an opener
                return
            ch = text[i]
            if state == _LEAD:
                if ch == " " and self._spaces < 3:
                    self._spaces += 1
                elif ch == "`":
                    self._state, self._ticks = _TICKS, 1
                else:
                    self._state = _PLAIN
            elif ch == "`":
                self._ticks += 1
            elif self._ticks >= 3:
                self._state = _INFO
                continue
            else:
                self._state = _PLAIN
            i += 1


class ThinkTagFilter:
    """Streaming-aware removal of <think>…</think> from content deltas."""

    __slots__ = (
        "_before",
        "_block_seen",
        "_content_len",
        "_drop_space",
        "_fences",
        "_in_block",
        "_pending",
        "max_retract_chars",
    )

    def __init__(self, max_retract_chars: int = 20_000) -> None:
        self.max_retract_chars = max_retract_chars
        self._pending = ""  # a possible tag start held back from the end of the input so far
        self._before = ""  # the input character just before _pending
        self._in_block = False
        self._block_seen = False  # once true, a stray closing tag is literal
        self._drop_space = False
        self._content_len = 0  # content produced so far; it only matters until the first block
        self._fences = _Fences()

    def feed(self, delta: str) -> Filtered:
        """Filter the next content delta."""
        return self._run(self._pending + delta, final=False)

    def finish(self) -> Filtered:
        """Flush what was held back at the end of the stream (a partial tag is plain text)."""
        return self._run(self._pending, final=True)

    def _run(self, buf: str, *, final: bool) -> Filtered:
        content: list[str] = []
        reasoning: list[str] = []
        returned_before = self._content_len
        retract = False
        start = pos = 0  # start: first character not routed yet; pos: where to look for the next "<"
        held = False
        while (j := buf.find("<", pos)) >= 0:
            # Route the text before "<" first: the decision below depends on the state it leaves.
            self._route(buf[start:j], content, reasoning)
            start = j
            tags = self._active_tags(buf[j - 1] if j else self._before)
            head = buf[j : j + _LONGEST]
            low = head.lower()
            tag = next((t for t in tags if low.startswith(t) and head[: len(t)].isascii()), None)
            if tag is None:
                if not final and j + len(head) == len(buf) and head.isascii() and any(t.startswith(low) for t in tags):
                    held = True
                    break
                pos = j + 1  # a literal "<": it goes out with the next routed text
                continue
            start = pos = j + len(tag)
            if tag in _OPEN:
                self._in_block = self._block_seen = True
            elif self._in_block:
                self._in_block = False
                self._drop_space = True
            else:  # a stray close the stream opened with: all content so far was reasoning
                reasoning.extend(content)
                content.clear()
                retract = returned_before > 0
                self._block_seen = self._drop_space = True
                self._fences = _Fences()
        if held:
            self._pending = buf[start:]
            if start:
                self._before = buf[start - 1]
        else:
            self._route(buf[start:], content, reasoning)
            self._pending = ""
            if buf:
                self._before = buf[-1]
        return Filtered("".join(content), "".join(reasoning), retract)

    def _active_tags(self, before: str) -> tuple[str, ...]:
        """The tags a "<" preceded by ``before`` could start and that would be acted on."""
        if before == "`":
            return ()
        if self._in_block:
            return _CLOSE
        if self._fences.inside:
            return ()
        if self._block_seen or self._content_len > self.max_retract_chars:
            return _OPEN
        return _OPEN + _CLOSE

    def _route(self, text: str, content: list[str], reasoning: list[str]) -> None:
        if not text:
            return
        if self._in_block:
            reasoning.append(text)
            return
        if self._drop_space:
            text = text.lstrip()
            if not text:
                return
            self._drop_space = False
        content.append(text)
        self._content_len += len(text)
        self._fences.feed(text)
