"""Attachments: decide which files a message's attachments become, and turn their bytes into prompt parts.

Pure (no Discord). The Discord adapter converts each ``discord.Attachment`` into an
:class:`AttachmentRecord` and asks :func:`plan_attachments` which ones to use; only once the request
has been admitted (rate limit and queue) does :func:`fetch_attachments` download them through a
callable the adapter supplies, turning image bytes into base64 and text bytes into :class:`TextFile`.
Every skipped file gets a short user-facing note (plain text; the adapter adds the note prefix).

Text files in other encodings than UTF-8 (Shift-JIS, GBK, Latin-1, UTF-16 without a byte order
mark…) are recognised with charset-normalizer rather than decoded into mojibake or refused.

Images go to Ollama as bare standard base64 (a ``data:`` URL prefix makes the server answer 400).
The server does not reject images sent to a model without the ``vision`` capability, it silently
ignores them, so the caller must pass ``vision`` from the model's capabilities.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import enum
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields

import charset_normalizer

__all__ = [
    "DEFAULT_LIMITS",
    "AttachmentKind",
    "AttachmentLimits",
    "AttachmentPlan",
    "AttachmentRecord",
    "FetchedAttachments",
    "ImageMemoryBudget",
    "TextFile",
    "classify",
    "cut_point",
    "decode_text",
    "display_name",
    "encode_image",
    "fetch_attachments",
    "human_size",
    "inline_text",
    "normalize_newlines",
    "plan_attachments",
    "quote_text_file",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """One attachment as the planner needs it (no bytes: those are downloaded only if planned)."""

    filename: str
    size: int
    content_type: str | None
    ref: object = None


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """Operator-configurable caps on what one message may bring in."""

    max_image_bytes: int = 10 * 1024 * 1024
    max_images: int = 4
    max_text_bytes: int = 200_000
    max_text_chars: int = 50_000
    max_text_files: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"{f.name} must be 0 or more, not {value}")


DEFAULT_LIMITS = AttachmentLimits()


class AttachmentKind(enum.StrEnum):
    """What the bot can do with an attachment."""

    IMAGE = "image"
    TEXT = "text"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class AttachmentPlan:
    """Which attachments to download and use, in message order, and notes about the rest."""

    images: list[AttachmentRecord] = field(default_factory=list)
    texts: list[AttachmentRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# PNG and JPEG are safe everywhere; Ollama converts WebP server-side; GIF depends on the runtime but
# is common enough on Discord to try. Anything else (BMP, HEIC, AVIF…) is refused up front rather
# than failing the whole request.
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/webp", "image/gif"})
_IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "jfif", "webp", "gif"})
_UNSUPPORTED_IMAGE_EXTENSIONS = frozenset({"bmp", "tif", "tiff", "heic", "heif", "avif", "ico", "jxl", "psd"})
# A type that says nothing about the content: fall back to the filename.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})

_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-toml",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/typescript",
        "application/x-typescript",
        "application/x-sh",
        "application/x-shellscript",
        "application/sql",
        "application/x-sql",
        "application/x-httpd-php",
        "application/x-php",
        "application/x-ruby",
        "application/x-python",
        "application/x-perl",
        "application/x-tex",
        "application/x-latex",
        "application/graphql",
        "application/x-diff",
        "application/x-patch",
    }
)
_TEXT_TYPE_SUFFIXES = ("+json", "+xml", "+yaml")

# Extension -> code fence language tag ("" when a tag would not help).
_TEXT_EXTENSIONS: dict[str, str] = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "ts": "typescript",
    "tsx": "tsx",
    "jsx": "jsx",
    "java": "java",
    "c": "c",
    "h": "c",
    "cpp": "cpp",
    "hpp": "cpp",
    "cs": "csharp",
    "go": "go",
    "rs": "rust",
    "rb": "ruby",
    "php": "php",
    "swift": "swift",
    "kt": "kotlin",
    "kts": "kotlin",
    "scala": "scala",
    "dart": "dart",
    "lua": "lua",
    "pl": "perl",
    "r": "r",
    "jl": "julia",
    "zig": "zig",
    "ex": "elixir",
    "exs": "elixir",
    "hs": "haskell",
    "sh": "bash",
    "bash": "bash",
    "zsh": "bash",
    "ps1": "powershell",
    "bat": "bat",
    "cmd": "bat",
    "sql": "sql",
    "html": "html",
    "css": "css",
    "scss": "scss",
    "vue": "vue",
    "svelte": "svelte",
    "xml": "xml",
    "svg": "xml",
    "json": "json",
    "jsonl": "json",
    "ndjson": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "ini": "ini",
    "cfg": "ini",
    "conf": "",
    "properties": "properties",
    "env": "",
    "tf": "hcl",
    "hcl": "hcl",
    "graphql": "graphql",
    "proto": "protobuf",
    "gradle": "groovy",
    "cmake": "cmake",
    "mk": "makefile",
    "tex": "latex",
    "md": "markdown",
    "rst": "rst",
    "txt": "",
    "csv": "csv",
    "tsv": "",
    "log": "",
    "diff": "diff",
    "patch": "diff",
    "dockerfile": "dockerfile",
}
# Well-known names without a (meaningful) extension, lowercased -> language tag.
_TEXT_NAMES: dict[str, str] = {
    "dockerfile": "dockerfile",
    "containerfile": "dockerfile",
    "makefile": "makefile",
    "gnumakefile": "makefile",
    "justfile": "",
    "procfile": "",
    "license": "",
    "readme": "",
    ".env": "",
    ".gitignore": "",
    ".gitattributes": "",
    ".dockerignore": "",
    ".editorconfig": "ini",
    ".bashrc": "bash",
    ".zshrc": "bash",
    ".profile": "bash",
}

_VISION_HINT = "use a vision model such as gemma3 or qwen2.5vl"
_MAX_LISTED_NAMES = 5
_MAX_DISPLAY_NAME = 80


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _name_parts(filename: str) -> tuple[str, str, str]:
    """(lowercased base name, stem, extension); a dotfile like ``.env`` has no extension."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, name, ""
    return name, stem, ext


def _text_language(filename: str) -> str | None:
    """The fence tag for a text file name ("" for text without a tag), or None if the name is not text."""
    name, stem, ext = _name_parts(filename)
    if name in _TEXT_NAMES:
        return _TEXT_NAMES[name]
    if ext in _TEXT_EXTENSIONS:
        return _TEXT_EXTENSIONS[ext]
    # "Dockerfile.dev", "Makefile.local"
    return _TEXT_NAMES.get(stem)


def _is_text_type(media: str) -> bool:
    return media.startswith("text/") or media in _TEXT_APPLICATION_TYPES or media.endswith(_TEXT_TYPE_SUFFIXES)


def classify(record: AttachmentRecord) -> AttachmentKind:
    """Image, text or other: by content type first, then by extension or well-known file name."""
    media = _media_type(record.content_type)
    if media in _IMAGE_TYPES:
        return AttachmentKind.IMAGE
    if _is_text_type(media):
        return AttachmentKind.TEXT
    if media.startswith("image/"):
        # A real image in a format we do not send: a renamed extension must not smuggle it in.
        return AttachmentKind.OTHER
    # Discord guesses types from extensions, and some guesses are wrong for code (".ts" becomes
    # video/mp2t), so a text extension wins over any non-text type; binary content is still caught
    # when the bytes are decoded.
    if _text_language(record.filename) is not None:
        return AttachmentKind.TEXT
    if media in _GENERIC_TYPES and _name_parts(record.filename)[2] in _IMAGE_EXTENSIONS:
        return AttachmentKind.IMAGE
    return AttachmentKind.OTHER


def _is_unsupported_image(record: AttachmentRecord) -> bool:
    media = _media_type(record.content_type)
    if media.startswith("image/"):
        return True
    return media in _GENERIC_TYPES and _name_parts(record.filename)[2] in _UNSUPPORTED_IMAGE_EXTENSIONS


def display_name(name: str) -> str:
    """A file name as notes show it: in inline code, without backticks or control characters."""
    return _display(name)


def _display(name: str) -> str:
    """A name safe to show inside inline code: no backticks, no control characters, not too long."""
    cleaned = "".join(" " if ch.isspace() or ord(ch) < 32 or ord(ch) == 127 else ch for ch in name)
    cleaned = " ".join(cleaned.replace("`", "'").split()) or "unnamed"
    if len(cleaned) > _MAX_DISPLAY_NAME:
        cleaned = cleaned[: _MAX_DISPLAY_NAME - 1] + "…"
    return f"`{cleaned}`"


def _names(records: Sequence[AttachmentRecord]) -> str:
    shown = [_display(r.filename) for r in records[:_MAX_LISTED_NAMES]]
    hidden = len(records) - len(shown)
    if hidden:
        return f"{', '.join(shown)} and {hidden} more"
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def _was(records: Sequence[AttachmentRecord]) -> str:
    return "was" if len(records) == 1 else "were"


def _sizes(size: int, limit: int) -> str:
    shown, cap = human_size(size), human_size(limit)
    if shown == cap:
        # "195 KB; the limit is 195 KB" would read as a bug.
        return f"{size:,} bytes; the limit is {limit:,} bytes"
    return f"{shown}; the limit is {cap}"


def _overflow_note(kept: int, noun: str, verb: str, skipped: Sequence[AttachmentRecord]) -> str:
    head = f"only the first {noun} was {verb}" if kept == 1 else f"only the first {kept} {noun}s were {verb}"
    return f"{head}; {_names(skipped)} {_was(skipped)} skipped"


def plan_attachments(
    records: Sequence[AttachmentRecord],
    *,
    model: str,
    vision: bool,
    limits: AttachmentLimits = DEFAULT_LIMITS,
) -> AttachmentPlan:
    """Choose the images and text files to download, in message order, with a note for each skipped file or group."""
    images: list[AttachmentRecord] = []
    texts: list[AttachmentRecord] = []
    blind: list[AttachmentRecord] = []
    images_off: list[AttachmentRecord] = []
    empty_images: list[AttachmentRecord] = []
    big_images: list[AttachmentRecord] = []
    extra_images: list[AttachmentRecord] = []
    texts_off: list[AttachmentRecord] = []
    big_texts: list[AttachmentRecord] = []
    extra_texts: list[AttachmentRecord] = []
    odd_images: list[AttachmentRecord] = []
    others: list[AttachmentRecord] = []

    for record in records:
        kind = classify(record)
        if kind is AttachmentKind.IMAGE:
            if not vision:
                blind.append(record)
            elif limits.max_images == 0:
                images_off.append(record)
            elif record.size <= 0:
                # Ollama fails the whole request on an image it cannot decode.
                empty_images.append(record)
            elif record.size > limits.max_image_bytes:
                big_images.append(record)
            elif len(images) >= limits.max_images:
                extra_images.append(record)
            else:
                images.append(record)
        elif kind is AttachmentKind.TEXT:
            if limits.max_text_files == 0:
                texts_off.append(record)
            elif record.size > limits.max_text_bytes:
                big_texts.append(record)
            elif len(texts) >= limits.max_text_files:
                extra_texts.append(record)
            else:
                texts.append(record)
        elif _is_unsupported_image(record):
            odd_images.append(record)
        else:
            others.append(record)

    notes: list[str] = []
    if blind:
        notes.append(f"{_names(blind)} {_was(blind)} not sent: {_display(model)} can't see images ({_VISION_HINT})")
    if images_off:
        notes.append(f"{_names(images_off)} {_was(images_off)} not sent: image attachments are turned off")
    if empty_images:
        notes.append(f"{_names(empty_images)} {_was(empty_images)} not sent: the file is empty")
    notes.extend(
        f"{_display(r.filename)} is too big to send ({_sizes(r.size, limits.max_image_bytes)})" for r in big_images
    )
    if extra_images:
        notes.append(_overflow_note(limits.max_images, "image", "sent", extra_images))
    if odd_images:
        notes.append(
            f"{_names(odd_images)} {_was(odd_images)} skipped: only PNG, JPEG, WebP and GIF images can be sent"
        )
    if texts_off:
        notes.append(f"{_names(texts_off)} {_was(texts_off)} not read: text file attachments are turned off")
    notes.extend(
        f"{_display(r.filename)} is too big to read ({_sizes(r.size, limits.max_text_bytes)})" for r in big_texts
    )
    if extra_texts:
        notes.append(_overflow_note(limits.max_text_files, "text file", "read", extra_texts))
    if others:
        notes.append(f"{_names(others)} {_was(others)} skipped: only images and text files can be read")
    return AttachmentPlan(images=images, texts=texts, notes=notes)


_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters real text files do contain: tab, newlines, form feed, vertical tab, and ESC
# (coloured terminal logs).
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def decode_text(data: bytes) -> str | None:
    """The text in ``data`` whatever its encoding, or None when it looks binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            # A byte order mark is strong evidence of text: repair rather than refuse.
            return data.decode(encoding, errors="replace").lstrip("\ufeff")
    text = _decode_without_bom(data)
    if text is None:
        return None
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in _TEXT_CONTROLS)
    if controls * 10 > len(text):
        return None
    return text


def _decode_without_bom(data: bytes) -> str | None:
    if b"\x00" in data:
        # Text has no NUL characters, but UTF-16 has NUL bytes (and ASCII in UTF-16 is even valid UTF-8).
        found = _utf16_without_bom(data)
        if found is None:
            # Mostly non-Latin UTF-16 (e.g. Japanese) has only the odd NUL: let the detector judge,
            # among the UTF-16 byte orders only (binary data rarely passes its checks).
            best = charset_normalizer.from_bytes(data, cp_isolation=["utf_16_le", "utf_16_be"]).best()
            found = str(best) if best is not None else None
        return found
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Checked before the detector: on short Western text it often guesses a Baltic or Central
    # European code page, which turns "crème brûlée" into "crčme brűlée".
    western = _western_text(data)
    if western is not None:
        return western
    best = charset_normalizer.from_bytes(data).best()
    if best is not None:
        log.debug("attachment decoded as %s", best.encoding)
        return str(best)
    return data.decode("cp1252", errors="replace")


# UTF-16 without a byte order mark: text mostly in the first 256 code points has a NUL in every
# other byte (odd positions for little endian, even ones for big endian). Text entirely outside
# that range (e.g. all Japanese) has no such pattern and is left to charset-normalizer.
_UTF16_ZERO_SHARE = 0.4
_UTF16_STRAY_ZERO_SHARE = 0.1


def _utf16_without_bom(data: bytes) -> str | None:
    pairs = len(data) // 2
    if pairs < 2 or len(data) % 2:
        return None
    even_zeros = data[0::2].count(0)
    odd_zeros = data[1::2].count(0)
    if odd_zeros >= _UTF16_ZERO_SHARE * pairs and even_zeros <= _UTF16_STRAY_ZERO_SHARE * pairs:
        encoding = "utf-16-le"
    elif even_zeros >= _UTF16_ZERO_SHARE * pairs and odd_zeros <= _UTF16_STRAY_ZERO_SHARE * pairs:
        encoding = "utf-16-be"
    else:
        return None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


# Western European text in Windows-1252 (a superset of the printable part of Latin-1, and what
# "Latin-1" files from Windows really are): accented letters are a small share of the letters and
# never come in long runs. Cyrillic, Greek or CJK bytes read as cp1252 also give "letters", but
# whole words of them, so they fail this test and go to the detector.
_WESTERN_PUNCTUATION = frozenset("\u00a0«»°§£©®±µ·¿¡€‘’‚“”„–—…•†‡‰™")
_WESTERN_LETTER_SHARE = 0.5
_WESTERN_RUN = 3


def _western_text(data: bytes) -> str | None:
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    letters = accented = run = 0
    for ch in text:
        if ord(ch) < 128:
            run = 0
            letters += ch.isalpha()
            continue
        run += 1
        if run > _WESTERN_RUN:
            return None
        if ch in _WESTERN_PUNCTUATION:
            continue
        if not ch.isalpha() or not unicodedata.name(ch, "").startswith("LATIN "):
            return None
        letters += 1
        accented += 1
    if accented > _WESTERN_LETTER_SHARE * max(letters, 1):
        return None
    return text


def _fence_for(content: str) -> str:
    longest = run = 0
    for ch in content:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def inline_text(filename: str, data: bytes, *, max_chars: int) -> tuple[str, str | None]:
    """A prompt block quoting a text file in a code fence, and a note if it was cut or could not be read."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be 0 or more, not {max_chars}")
    text = decode_text(data)
    if text is None:
        return "", _binary_note(filename)
    return quote_text_file(filename, text, max_chars=max_chars)


def _binary_note(filename: str) -> str:
    return f"{_display(filename)} was skipped: it looks like a binary file, not text"


def quote_text_file(filename: str, text: str, *, max_chars: int) -> tuple[str, str | None]:
    """A prompt block quoting already decoded text in a code fence, cut to `max_chars`, and a note if it was cut."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be 0 or more, not {max_chars}")
    name = _display(filename)
    text = normalize_newlines(text)
    if not text.strip():
        return f"Attached file {name} (empty).", None

    note: str | None = None
    marker = ""
    if len(text) > max_chars:
        cut = cut_point(text, max_chars)
        marker = f"\n[… truncated: {len(text) - cut:,} more characters]"
        note = f"{name} was cut to the first {cut:,} characters"
        text = text[:cut]

    language = _text_language(filename) or ""
    fence = _fence_for(text)
    return f"Attached file {name}:\n{fence}{language}\n{text}\n{fence}{marker}", note


def normalize_newlines(text: str) -> str:
    """Unix line ends and no trailing blank lines, as files are quoted into the prompt."""
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def cut_point(text: str, max_chars: int) -> int:
    """How much of normalised `text` a quote cut to `max_chars` keeps: all, the limit, or up to a line end near it."""
    if len(text) <= max_chars:
        return len(text)
    # End on a whole line when one ends near the limit, so the model does not see half a line.
    newline = text.rfind("\n", max_chars - max_chars // 4, max_chars + 1)
    return newline if newline > 0 else max_chars


def encode_image(data: bytes) -> str:
    """Bare standard base64 of the image bytes, as Ollama's ``images`` list wants (no ``data:`` prefix)."""
    return base64.b64encode(data).decode("ascii")


def human_size(n: int) -> str:
    """A byte count for people, in binary units: "512 B", "195 KB", "3.2 MB"."""
    if n < 0:
        raise ValueError(f"size must be 0 or more, not {n}")
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        shown = _one_decimal_below_ten(value)
        # 1023.7 KB rounds to "1024 KB": say "1 MB" instead.
        if float(shown) < 1024:
            return f"{shown} {unit}"
    return f"{_one_decimal_below_ten(value / 1024)} TB"


def _one_decimal_below_ten(value: float) -> str:
    shown = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
    return shown.removesuffix(".0")


@dataclass(frozen=True, slots=True)
class TextFile:
    """A text attachment, decoded, waiting to be quoted into the prompt (and cut to fit the context)."""

    filename: str
    text: str


class ImageMemoryBudget:
    """A process-wide cap on the bytes of downloaded images held for requests on their way to Ollama.

    Images are downloaded only once a request has its turn, so a long queue holds no image bytes;
    this bounds what the requests being sent at once hold together (each image also lives on as
    base64 and inside the request body while it is sent, so the memory used is about three times
    what is counted here). An image that does not fit is left out with a note instead of waiting,
    because waiting would hold an Ollama slot idle.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be 0 or more, not {capacity}")
        self._capacity = capacity
        self._used = 0

    @property
    def capacity(self) -> int:
        """Bytes that may be held at once."""
        return self._capacity

    @property
    def used(self) -> int:
        """Bytes held right now."""
        return self._used

    def try_reserve(self, size: int) -> bool:
        """Hold `size` bytes if they fit; False (nothing held) if not."""
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")
        if self._used + size > self._capacity:
            return False
        self._used += size
        return True

    def release(self, size: int) -> None:
        """Give back bytes held by :meth:`try_reserve`."""
        self._used = max(0, self._used - size)


@dataclass(slots=True)
class FetchedAttachments:
    """The planned attachments, downloaded: images as base64, text files decoded, notes for what failed."""

    images: list[str] = field(default_factory=list)
    files: list[TextFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Bytes held in the ImageMemoryBudget until the request is done: pass to its release().
    reserved: int = 0


async def fetch_attachments(
    plan: AttachmentPlan,
    download: Callable[[AttachmentRecord], Awaitable[bytes | None]],
    *,
    image_memory: ImageMemoryBudget,
) -> FetchedAttachments:
    """Download what `plan` chose; `download` returns None when a file could not be fetched.

    Call it only once the request may go to Ollama. Images are counted against `image_memory`
    (by their announced size, before downloading); the caller releases `reserved` afterwards.
    """
    fetched = FetchedAttachments()
    no_room: list[AttachmentRecord] = []
    try:
        for record in plan.images + plan.texts:
            is_image = record in plan.images
            if is_image:
                if not image_memory.try_reserve(record.size):
                    no_room.append(record)
                    continue
                fetched.reserved += record.size
            data = await download(record)
            if data is None:
                fetched.notes.append(f"{_display(record.filename)} could not be downloaded from Discord.")
                continue
            if is_image:
                fetched.images.append(encode_image(data))
                continue
            # Detection takes tens of milliseconds on a large file: keep it off the event loop.
            text = await asyncio.to_thread(decode_text, data)
            if text is None:
                fetched.notes.append(_binary_note(record.filename))
            else:
                fetched.files.append(TextFile(record.filename, text))
    except BaseException:
        # Cancelled (Stop, shutdown) or failed mid-way: nobody will release what was held.
        image_memory.release(fetched.reserved)
        raise
    if no_room:
        fetched.notes.append(
            f"{_names(no_room)} {_was(no_room)} not sent: the bot is holding as many images as it may for "
            "other answers right now; please send it again in a moment"
        )
    return fetched
