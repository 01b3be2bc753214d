"""Splitting a document into chunks along its headings, paragraphs and code blocks, with a little overlap.

A chunk never spans two sections, so its source line can name the section it came from. Within a
section, paragraphs and code blocks are packed up to CHUNK_CHARS; a block longer than that is cut at
lines (code, which keeps its fence in every piece), then sentences, then words. A chunk that follows
another in the same section starts with the end of that one (CHUNK_OVERLAP characters, from a line,
sentence or word boundary), so a fact cut in two is still whole in one of them.

Headings: Markdown ATX (`## Title`) and setext (underlined with `=` or `-`) lines, and
reStructuredText titles (underlined, optionally overlined, levels in order of first appearance). PDF
pages and source files have no headings of their own: a page is its own section, a source file is
split at its blank lines. CHUNK_CHARS keeps every chunk well inside an embedding model's context
(nomic-embed-text: 2048 tokens; Ollama would otherwise cut a longer input silently).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bot.knowledge.documents import DocumentFormat, DocumentPart, ExtractedDocument

__all__ = ["CHUNK_CHARS", "CHUNK_OVERLAP", "Chunk", "chunk_document", "chunk_text", "embedding_input"]

CHUNK_CHARS = 1200
CHUNK_OVERLAP = 150
SECTION_SEPARATOR = " › "
_MAX_SECTION_DEPTH = 3
_MAX_SECTION_CHARS = 120

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# reStructuredText section adornment: one punctuation character repeated.
_ADORNMENT = re.compile(r"^([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])\1{2,}[ \t]*$")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document and the section it belongs to (None: the document has no headings there)."""

    section: str | None
    text: str


@dataclass(slots=True)
class _Block:
    kind: str  # "heading", "paragraph" or "code"
    text: str
    level: int = 0


def chunk_document(
    document: ExtractedDocument, *, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP
) -> list[Chunk]:
    """Every chunk of an extracted document, in order."""
    chunks: list[Chunk] = []
    for part in document.parts:
        chunks.extend(_chunk_part(part, document.format, size=size, overlap=overlap))
    return chunks


def chunk_text(text: str, fmt: DocumentFormat, *, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    """The chunks of one text in a given format."""
    return _chunk_part(DocumentPart(text), fmt, size=size, overlap=overlap)


def embedding_input(document_name: str, chunk: Chunk) -> str:
    """What is embedded for a chunk: its document and section name, then its text.

    The names carry meaning the text may lack ("Rollback" in a heading, not repeated below it).
    """
    title = f"{document_name}{SECTION_SEPARATOR}{chunk.section}" if chunk.section else document_name
    return f"{title}\n{chunk.text}"


def _chunk_part(part: DocumentPart, fmt: DocumentFormat, *, size: int, overlap: int) -> list[Chunk]:
    if size < 100 or not 0 <= overlap < size // 2:
        raise ValueError(f"chunk size {size} and overlap {overlap} do not fit together")
    blocks = _code_blocks(part.text) if fmt is DocumentFormat.CODE else _prose_blocks(part.text, fmt)
    packer = _Packer(size, overlap, base=part.section)
    for block in blocks:
        if block.kind == "heading":
            packer.heading(block.level, block.text)
        else:
            # A block cut in pieces leaves room in each for the previous piece's tail (the overlap).
            room = size if len(block.text) <= size else size - overlap - 2
            for piece in _pieces(block, room):
                packer.add(piece)
    return packer.finish()


class _Packer:
    """Packs pieces into chunks, a new one at every heading, carrying an overlap between chunks of a section."""

    def __init__(self, size: int, overlap: int, *, base: str | None) -> None:
        self.size = size
        self.overlap = overlap
        self.base = base
        self.headings: list[tuple[int, str]] = []
        self.chunks: list[Chunk] = []
        self.pieces: list[str] = []
        self.carried = False  # the buffer starts with the previous chunk's tail

    @property
    def section(self) -> str | None:
        titles = [title for _, title in self.headings][-_MAX_SECTION_DEPTH:]
        if self.base:
            titles.insert(0, self.base)
        if not titles:
            return None
        text = SECTION_SEPARATOR.join(titles)
        return text if len(text) <= _MAX_SECTION_CHARS else "…" + text[-(_MAX_SECTION_CHARS - 1) :]

    def _length(self) -> int:
        return sum(len(p) for p in self.pieces) + 2 * max(0, len(self.pieces) - 1)

    def heading(self, level: int, title: str) -> None:
        self._flush(carry=False)
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, " ".join(title.split())))

    def add(self, piece: str) -> None:
        if self.pieces and self._length() + 2 + len(piece) > self.size:
            self._flush(carry=True)
            if self.pieces and self._length() + 2 + len(piece) > self.size:
                self.pieces.clear()  # the overlap and this piece do not fit together: no overlap
                self.carried = False
        self.pieces.append(piece)

    def _flush(self, *, carry: bool) -> None:
        if not self.pieces or (self.carried and len(self.pieces) == 1):
            self.pieces.clear()
            self.carried = False
            return
        text = "\n\n".join(self.pieces)
        self.chunks.append(Chunk(self.section, text))
        self.pieces.clear()
        self.carried = False
        if carry and self.overlap:
            tail = _tail(text, self.overlap)
            if tail:
                self.pieces.append(tail)
                self.carried = True

    def finish(self) -> list[Chunk]:
        self._flush(carry=False)
        return self.chunks


def _tail(text: str, length: int) -> str:
    """The end of `text`, about `length` characters, starting at a line, sentence or word boundary."""
    if "```" in text[-length:] or "~~~" in text[-length:]:
        return ""  # half a code fence would read as an unclosed block
    start = len(text) - length
    if start <= 0:
        return ""
    window = text[start:]
    for boundary in ("\n", ". ", " "):
        cut = window.find(boundary)
        if 0 <= cut < len(window) - 1:
            return window[cut + len(boundary) :].strip()
    return window.strip()


# ---- blocks


def _prose_blocks(text: str, fmt: DocumentFormat) -> list[_Block]:
    lines = text.split("\n")
    blocks: list[_Block] = []
    paragraph: list[str] = []
    rst_styles: list[tuple[str, bool]] = []  # adornment styles in order of first appearance = levels
    markdown = fmt is not DocumentFormat.RST

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(_Block("paragraph", "\n".join(paragraph).strip("\n")))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            end_paragraph()
            marker = fence.group(1)
            body = [line]
            index += 1
            while index < len(lines):
                body.append(lines[index])
                index += 1
                closing = _FENCE.match(body[-1])
                if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker):
                    break
            else:
                body.append(marker)  # an unclosed fence runs to the end of the document
            blocks.append(_Block("code", "\n".join(body)))
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if markdown and (atx := _ATX.match(line)):
            end_paragraph()
            blocks.append(_Block("heading", atx.group(2).strip(), len(atx.group(1))))
            index += 1
            continue
        if not line.strip():
            end_paragraph()
            index += 1
            continue
        if markdown and not paragraph and _SETEXT.match(following) and not _SETEXT.match(line):
            blocks.append(_Block("heading", line.strip(), 1 if following.strip()[0] == "=" else 2))
            index += 2
            continue
        if not markdown:
            title = _rst_title(lines, index, rst_styles)
            if title is not None:
                end_paragraph()
                text_line, level, used = title
                blocks.append(_Block("heading", text_line, level))
                index += used
                continue
        paragraph.append(line)
        index += 1
    end_paragraph()
    return blocks


def _rst_title(lines: Sequence[str], index: int, styles: list[tuple[str, bool]]) -> tuple[str, int, int] | None:
    """A reStructuredText section title at `index`: (title, level, lines used), or None."""
    line = lines[index]
    after = lines[index + 1] if index + 1 < len(lines) else ""
    over = _ADORNMENT.match(line)
    if over and index + 2 < len(lines):
        title, under = lines[index + 1], _ADORNMENT.match(lines[index + 2])
        if under and under.group(1) == over.group(1) and title.strip() and not _ADORNMENT.match(title):
            return title.strip(), _rst_level(styles, (over.group(1), True)), 3
    under = _ADORNMENT.match(after)
    if under and line.strip() and not over and len(after.rstrip()) >= len(line.rstrip()):
        return line.strip(), _rst_level(styles, (under.group(1), False)), 2
    return None


def _rst_level(styles: list[tuple[str, bool]], style: tuple[str, bool]) -> int:
    if style not in styles:
        styles.append(style)
    return styles.index(style) + 1


def _code_blocks(text: str) -> list[_Block]:
    """A source file's blank-line separated groups of lines, indentation kept."""
    blocks: list[_Block] = []
    group: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            group.append(line.rstrip())
        elif group:
            blocks.append(_Block("code", "\n".join(group)))
            group = []
    if group:
        blocks.append(_Block("code", "\n".join(group)))
    return blocks


# ---- cutting one block to size


def _pieces(block: _Block, size: int) -> Iterator[str]:
    text = block.text
    if len(text) <= size:
        yield text
        return
    fence = _FENCE.match(text.split("\n", 1)[0]) if block.kind == "code" else None
    if fence:
        yield from _fenced_pieces(text, size)
    elif block.kind == "code":
        yield from _line_pieces(text.split("\n"), size)
    else:
        yield from _prose_pieces(text, size)


def _fenced_pieces(text: str, size: int) -> Iterator[str]:
    """A fenced code block cut at lines, each piece closed and reopened with the same fence."""
    lines = text.split("\n")
    opening = lines[0]
    marker = _FENCE.match(opening)
    closing = marker.group(1) if marker else "```"
    body = lines[1:-1] if len(lines) > 1 and _FENCE.match(lines[-1]) else lines[1:]
    room = size - len(opening) - len(closing) - 2
    for piece in _line_pieces(body, max(room, 40)):
        yield f"{opening}\n{piece}\n{closing}"


def _line_pieces(lines: Sequence[str], size: int) -> Iterator[str]:
    current: list[str] = []
    length = 0
    for line in lines:
        for part in [line[i : i + size] for i in range(0, len(line), size)] or [""]:
            if current and length + 1 + len(part) > size:
                yield "\n".join(current)
                current, length = [], 0
            current.append(part)
            length += len(part) + (1 if length else 0)
    if current:
        yield "\n".join(current)


def _prose_pieces(text: str, size: int) -> Iterator[str]:
    """A long paragraph cut at sentences, then words, then anywhere."""
    units = [s for s in _SENTENCE_END.split(text) if s]
    current = ""
    for unit in units:
        for word_piece in _words(unit, size) if len(unit) > size else [unit]:
            if current and len(current) + 1 + len(word_piece) > size:
                yield current
                current = word_piece
            else:
                current = f"{current} {word_piece}" if current else word_piece
    if current:
        yield current


def _words(text: str, size: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split():
        for part in [word[i : i + size] for i in range(0, len(word), size)]:
            if current and len(current) + 1 + len(part) > size:
                pieces.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces
