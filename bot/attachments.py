"""Attachments: decide which files a message's attachments become, and turn their bytes into prompt parts.

Pure and standard library only. The Discord adapter converts each ``discord.Attachment`` into an
:class:`AttachmentRecord`, asks :func:`plan_attachments` which ones to download, downloads those
itself, then passes image bytes to :func:`encode_image` and text bytes to :func:`inline_text`.
Every skipped file gets a short user-facing note (plain text; the adapter adds the note prefix).

Images go to Ollama as bare standard base64 (a ``data:`` URL prefix makes the server answer 400).
The server does not reject images sent to a model without the ``vision`` capability, it silently
ignores them, so the caller must pass ``vision`` from the model's capabilities.
"""

from __future__ import annotations

import base64
import codecs
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

__all__ = [
    "DEFAULT_LIMITS",
    "AttachmentKind",
    "AttachmentLimits",
    "AttachmentPlan",
    "AttachmentRecord",
    "classify",
    "encode_image",
    "human_size",
    "inline_text",
    "plan_attachments",
]


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


def _decode(data: bytes) -> str | None:
    """The text in ``data``, or None when it looks binary."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            # A byte order mark is strong evidence of text: repair rather than refuse.
            return data.decode(encoding, errors="replace").lstrip("\ufeff")
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy Windows files are the common non-UTF-8 text; latin-1 accepts any byte as a last resort.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in _TEXT_CONTROLS)
    if controls * 10 > len(text):
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
    name = _display(filename)
    text = _decode(data)
    if text is None:
        return "", f"{name} was skipped: it looks like a binary file, not text"
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    if not text.strip():
        return f"Attached file {name} (empty).", None

    note: str | None = None
    marker = ""
    if len(text) > max_chars:
        cut = max_chars
        # End on a whole line when one ends near the limit, so the model does not see half a line.
        newline = text.rfind("\n", max_chars - max_chars // 4, max_chars + 1)
        if newline > 0:
            cut = newline
        marker = f"\n[… truncated: {len(text) - cut:,} more characters]"
        note = f"{name} was cut to the first {cut:,} characters"
        text = text[:cut]

    language = _text_language(filename) or ""
    fence = _fence_for(text)
    return f"Attached file {name}:\n{fence}{language}\n{text}\n{fence}{marker}", note


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
