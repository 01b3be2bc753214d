"""Reading a knowledge file into text: plain text, Markdown, reStructuredText, code, HTML (text only) and PDF.

Text files in any encoding go through the same decoder as attachments (charset-normalizer for
Shift-JIS, GBK, Latin-1, UTF-16…). HTML keeps its headings (as Markdown `#` lines, so the chunker
sees its sections), lists and preformatted blocks and drops scripts, styles and markup. PDFs give
the text layer of each page through pypdf; a scan without one is refused with what to do about it.
Everything here is blocking CPU work: callers run it in a worker thread.
"""

from __future__ import annotations

import enum
import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from bot.attachments import AttachmentKind, AttachmentRecord, classify, decode_text, normalize_newlines
from bot.knowledge.refusals import UnreadableDocument

__all__ = ["DocumentFormat", "DocumentPart", "ExtractedDocument", "document_format", "extract_document"]

log = logging.getLogger(__name__)

# More replacement characters than this share of the text: the encoding was guessed wrong.
_MAX_REPLACEMENT_SHARE = 0.01


class DocumentFormat(enum.StrEnum):
    """How a file's text is read and split."""

    TEXT = "text"
    MARKDOWN = "markdown"
    RST = "rst"
    CODE = "code"
    HTML = "html"
    PDF = "pdf"


@dataclass(frozen=True, slots=True)
class DocumentPart:
    """A stretch of a document's text: the whole file, or one PDF page (`section` names it)."""

    text: str
    section: str | None = None


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    """A file's text, ready to be chunked."""

    format: DocumentFormat
    parts: list[DocumentPart]

    @property
    def chars(self) -> int:
        """Characters of text in the document."""
        return sum(len(part.text) for part in self.parts)


_MARKDOWN = frozenset({"md", "markdown", "mdx", "mkd"})
_RST = frozenset({"rst", "rest"})
_HTML = frozenset({"html", "htm", "xhtml"})
# Prose rather than code: split at paragraphs, not at blank lines between definitions.
_PLAIN = frozenset({"txt", "text", "log", "csv", "tsv", ""})


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    stem, dot, ext = name.rpartition(".")
    return ext if dot and stem else ""


def document_format(filename: str, content_type: str | None) -> DocumentFormat | None:
    """How to read a file, from its extension and content type; None when it is not a kind of text we read."""
    ext = _extension(filename)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if ext == "pdf" or media == "application/pdf":
        return DocumentFormat.PDF
    if ext in _HTML or media in ("text/html", "application/xhtml+xml"):
        return DocumentFormat.HTML
    if ext in _MARKDOWN or media == "text/markdown":
        return DocumentFormat.MARKDOWN
    if ext in _RST or media == "text/x-rst":
        return DocumentFormat.RST
    kind = classify(AttachmentRecord(filename=filename, size=0, content_type=content_type, ref=None))
    if kind is AttachmentKind.TEXT:
        return DocumentFormat.TEXT if ext in _PLAIN else DocumentFormat.CODE
    return None


def extract_document(filename: str, content_type: str | None, data: bytes) -> ExtractedDocument:
    """The text of a knowledge file; UnreadableDocument when there is none to be had."""
    fmt = document_format(filename, content_type)
    if fmt is None:
        kind = classify(AttachmentRecord(filename=filename, size=len(data), content_type=content_type, ref=None))
        if kind is AttachmentKind.IMAGE:
            raise UnreadableDocument.image(filename)
        # An unknown extension may still be text (a README without one, a .conf): read it if it is.
        fmt = DocumentFormat.TEXT
    if fmt is DocumentFormat.PDF:
        parts = _pdf_pages(filename, data)
    else:
        text = _decode(filename, data)
        if fmt is DocumentFormat.HTML:
            text = html_to_text(text)
        parts = [DocumentPart(text)]
    if not any(part.text.strip() for part in parts):
        raise UnreadableDocument.empty(filename)
    return ExtractedDocument(fmt, parts)


def _decode(filename: str, data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise UnreadableDocument.binary(filename)
    if text.count("\ufffd") > _MAX_REPLACEMENT_SHARE * max(len(text), 1):
        raise UnreadableDocument.unknown_encoding(filename)
    return normalize_newlines(text)


def _pdf_pages(filename: str, data: bytes) -> list[DocumentPart]:
    """Each page's text layer, as a part named after the page."""
    # Imported here: pypdf is only needed when someone adds a PDF.
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            # Many PDFs are "encrypted" with an empty user password only to set permissions; those open.
            raise UnreadableDocument.encrypted_pdf(filename)
        parts = []
        for number, page in enumerate(reader.pages, start=1):
            text = _tidy_pdf_text(page.extract_text() or "")
            if text.strip():
                parts.append(DocumentPart(text, section=f"page {number}"))
    except UnreadableDocument:
        raise
    except FileNotDecryptedError:
        raise UnreadableDocument.encrypted_pdf(filename) from None
    # A damaged or hostile PDF makes pypdf raise nearly anything (its own errors, ValueError, KeyError,
    # RecursionError…); whatever it is, the answer to the user is the same.
    except Exception as exc:
        log.info("could not read PDF %r: %s: %s", filename, type(exc).__name__, exc)
        raise UnreadableDocument.broken_pdf(filename) from None
    if not parts:
        raise UnreadableDocument.scanned_pdf(filename)
    return parts


_SPACES = re.compile(r"[ \t\u00a0]+")
_HYPHENATED = re.compile(r"(\w)-\n(\w)")


def _tidy_pdf_text(text: str) -> str:
    """Join words hyphenated at line ends and squeeze the spacing pypdf leaves between layout fragments."""
    text = normalize_newlines(text)
    text = _HYPHENATED.sub(r"\1\2", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n")).strip()


# ---- HTML

_SKIPPED = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object", "canvas"})
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "footer",
        "nav",
        "aside",
        "blockquote",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "table",
        "tr",
        "figure",
        "figcaption",
        "form",
        "fieldset",
        "details",
        "summary",
        "hr",
        "address",
    }
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


class _TextOfHtml(HTMLParser):
    """Collects the visible text of an HTML page, with headings as Markdown lines and <pre> as code fences."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping = 0
        self._pre = 0

    def _newlines(self, count: int) -> None:
        # Separate blocks by (at most) one blank line.
        text = "".join(self.out[-4:])
        have = len(text) - len(text.rstrip("\n")) if text.strip() else count
        self.out.append("\n" * max(0, count - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open a block, heading, list item or preformatted section."""
        if tag in _SKIPPED:
            self._skipping += 1
        elif self._skipping:
            return
        elif tag in _HEADINGS:
            self._newlines(2)
            self.out.append("#" * _HEADINGS[tag] + " ")
        elif tag == "pre":
            self._newlines(2)
            self.out.append("```\n")
            self._pre += 1
        elif tag == "li":
            self._newlines(1)
            self.out.append("- ")
        elif tag == "br":
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" | ")
        elif tag in _BLOCKS:
            self._newlines(2)

    def handle_endtag(self, tag: str) -> None:
        """Close what handle_starttag opened."""
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif self._skipping:
            return
        elif tag in _HEADINGS or tag in _BLOCKS:
            self._newlines(2)
        elif tag == "pre" and self._pre:
            self._pre -= 1
            self.out.append("\n```")
            self._newlines(2)
        elif tag == "li":
            self._newlines(1)

    def handle_data(self, data: str) -> None:
        """Text: whitespace collapsed, except inside <pre>."""
        if self._skipping:
            return
        if self._pre:
            self.out.append(data)
            return
        text = " ".join(data.split())
        if not text:
            if data and self.out and not self.out[-1].endswith((" ", "\n")):
                self.out.append(" ")
            return
        if data[:1].isspace() and self.out and not self.out[-1].endswith((" ", "\n", "# ", "- ")):
            text = " " + text
        if data[-1:].isspace():
            text += " "
        self.out.append(text)


def html_to_text(html: str) -> str:
    """The readable text of an HTML document (headings as `#` lines, <pre> as fenced code)."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = [line.rstrip() for line in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
