"""Tests for bot.attachments: classifying, planning and inlining message attachments."""

from __future__ import annotations

import base64
import codecs

import pytest

from bot.attachments import (
    AttachmentKind,
    AttachmentLimits,
    AttachmentPlan,
    AttachmentRecord,
    classify,
    encode_image,
    human_size,
    inline_text,
    plan_attachments,
)

IMAGE = AttachmentKind.IMAGE
TEXT = AttachmentKind.TEXT
OTHER = AttachmentKind.OTHER
MB = 1024 * 1024


def rec(filename: str, size: int = 1000, content_type: str | None = None) -> AttachmentRecord:
    return AttachmentRecord(filename=filename, size=size, content_type=content_type)


def png(name: str = "cat.png", size: int = 1000) -> AttachmentRecord:
    return rec(name, size, "image/png")


def txt(name: str = "notes.txt", size: int = 100) -> AttachmentRecord:
    return rec(name, size, "text/plain; charset=utf-8")


# --- classify ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type", "kind"),
    [
        # by content type, parameters and case ignored
        ("cat.png", "image/png", IMAGE),
        ("photo.jpg", "image/jpeg", IMAGE),
        ("photo", "IMAGE/JPEG", IMAGE),
        ("sticker.webp", "image/webp", IMAGE),
        ("funny.gif", "image/gif", IMAGE),
        ("notes.txt", "text/plain; charset=utf-8", TEXT),
        ("page", "text/html;charset=UTF-8", TEXT),
        ("data", "application/json", TEXT),
        ("data", "application/json; charset=utf-8", TEXT),
        ("feed", "application/xml", TEXT),
        ("config", "application/x-yaml", TEXT),
        ("manifest", "application/manifest+json", TEXT),
        ("drawing.svg", "image/svg+xml", TEXT),
        ("script", "application/javascript", TEXT),
        # an image format we do not send stays out even with a misleading name
        ("scan.bmp", "image/bmp", OTHER),
        ("photo.heic", "image/heic", OTHER),
        ("renamed.png", "image/tiff", OTHER),
        # no content type: extension, case-insensitive
        ("main.py", None, TEXT),
        ("MAIN.PY", None, TEXT),
        ("App.TSX", None, TEXT),
        ("cat.PNG", None, IMAGE),
        ("cat.jpeg", "", IMAGE),
        ("cat.png", "application/octet-stream", IMAGE),
        ("query.sql", None, TEXT),
        ("settings.yml", None, TEXT),
        ("deploy.ps1", None, TEXT),
        ("prod.env", None, TEXT),
        ("build.dockerfile", None, TEXT),
        ("change.patch", None, TEXT),
        ("archive.zip", None, OTHER),
        ("archive.zip", "application/zip", OTHER),
        ("report.pdf", "application/pdf", OTHER),
        ("noextension", None, OTHER),
        ("module.pyc", "application/x-python-code", OTHER),
        # well-known names
        ("Dockerfile", None, TEXT),
        ("dockerfile", "application/octet-stream", TEXT),
        ("Dockerfile.dev", None, TEXT),
        ("Makefile", None, TEXT),
        (".env", None, TEXT),
        (".gitignore", None, TEXT),
        # Discord's extension guess for TypeScript is an MPEG transport stream
        ("index.ts", "video/mp2t", TEXT),
        # a text extension never turns a non-image, non-text type into an image
        ("cat.png", "application/pdf", OTHER),
    ],
)
def test_classify(filename: str, content_type: str | None, kind: AttachmentKind) -> None:
    assert classify(rec(filename, content_type=content_type)) is kind


# --- plan_attachments --------------------------------------------------------------


def test_plan_for_no_attachments_is_empty() -> None:
    assert plan_attachments([], model="gemma3", vision=True) == AttachmentPlan([], [], [])


def test_plan_keeps_message_order_and_ignores_ref() -> None:
    records = [
        txt("b.txt"),
        png("2.png"),
        AttachmentRecord("a.py", 10, None, ref=object()),
        png("1.png"),
    ]
    plan = plan_attachments(records, model="gemma3", vision=True)
    assert plan.images == [records[1], records[3]]
    assert plan.texts == [records[0], records[2]]
    assert plan.notes == []


SMALL = AttachmentLimits(max_image_bytes=1000, max_images=2, max_text_bytes=500, max_text_files=1)


@pytest.mark.parametrize(
    ("records", "vision", "limits", "images", "texts", "notes"),
    [
        pytest.param(
            [png("cat.png")],
            False,
            SMALL,
            [],
            [],
            ["`cat.png` was not sent: `llama3.2` can't see images (use a vision model such as gemma3 or qwen2.5vl)"],
            id="non-vision model",
        ),
        pytest.param(
            [png("a.png"), txt("t.txt"), png("b.png")],
            False,
            SMALL,
            [],
            ["t.txt"],
            [
                "`a.png` and `b.png` were not sent: `llama3.2` can't see images "
                "(use a vision model such as gemma3 or qwen2.5vl)"
            ],
            id="non-vision model groups images and still reads text",
        ),
        pytest.param(
            [png("huge.png", 5000)],
            False,
            SMALL,
            [],
            [],
            ["`huge.png` was not sent: `llama3.2` can't see images (use a vision model such as gemma3 or qwen2.5vl)"],
            id="non-vision reason wins over size",
        ),
        pytest.param(
            [png("a.png"), png("big.png", 3 * MB), png("b.png")],
            True,
            SMALL,
            ["a.png", "b.png"],
            [],
            ["`big.png` is too big to send (3 MB; the limit is 1000 B)"],
            id="oversized image",
        ),
        pytest.param(
            [png("a.png", 1000)],
            True,
            SMALL,
            ["a.png"],
            [],
            [],
            id="image exactly at the limit",
        ),
        pytest.param(
            [png("1.png"), png("2.png"), png("3.png"), png("4.png")],
            True,
            SMALL,
            ["1.png", "2.png"],
            [],
            ["only the first 2 images were sent; `3.png` and `4.png` were skipped"],
            id="too many images",
        ),
        pytest.param(
            [png("1.png"), png("2.png")],
            True,
            AttachmentLimits(max_images=1),
            ["1.png"],
            [],
            ["only the first image was sent; `2.png` was skipped"],
            id="one image allowed",
        ),
        pytest.param(
            [png("1.png")],
            True,
            AttachmentLimits(max_images=0),
            [],
            [],
            ["`1.png` was not sent: image attachments are turned off"],
            id="images turned off",
        ),
        pytest.param(
            [png("blank.png", 0)],
            True,
            SMALL,
            [],
            [],
            ["`blank.png` was not sent: the file is empty"],
            id="empty image",
        ),
        pytest.param(
            [txt("huge.log", 3_355_443)],
            True,
            AttachmentLimits(),
            [],
            [],
            ["`huge.log` is too big to read (3.2 MB; the limit is 195 KB)"],
            id="oversized text file",
        ),
        pytest.param(
            [txt("edge.log", 200_001)],
            True,
            AttachmentLimits(),
            [],
            [],
            ["`edge.log` is too big to read (200,001 bytes; the limit is 200,000 bytes)"],
            id="just over the limit shows exact bytes",
        ),
        pytest.param(
            [txt("a.txt"), txt("b.txt"), txt("c.txt")],
            True,
            SMALL,
            [],
            ["a.txt"],
            ["only the first text file was read; `b.txt` and `c.txt` were skipped"],
            id="too many text files",
        ),
        pytest.param(
            [txt(f"{i}.txt") for i in range(10)],
            True,
            AttachmentLimits(max_text_files=3),
            [],
            ["0.txt", "1.txt", "2.txt"],
            [
                "only the first 3 text files were read; "
                "`3.txt`, `4.txt`, `5.txt`, `6.txt`, `7.txt` and 2 more were skipped"
            ],
            id="long skip lists are shortened",
        ),
        pytest.param(
            [txt("a.txt")],
            True,
            AttachmentLimits(max_text_files=0),
            [],
            [],
            ["`a.txt` was not read: text file attachments are turned off"],
            id="text files turned off",
        ),
        pytest.param(
            [rec("archive.zip", content_type="application/zip")],
            True,
            SMALL,
            [],
            [],
            ["`archive.zip` was skipped: only images and text files can be read"],
            id="other file",
        ),
        pytest.param(
            [rec("a.zip"), rec("b.pdf", content_type="application/pdf")],
            True,
            SMALL,
            [],
            [],
            ["`a.zip` and `b.pdf` were skipped: only images and text files can be read"],
            id="other files grouped",
        ),
        pytest.param(
            [rec("scan.bmp", content_type="image/bmp"), rec("photo.HEIC")],
            True,
            SMALL,
            [],
            [],
            ["`scan.bmp` and `photo.HEIC` were skipped: only PNG, JPEG, WebP and GIF images can be sent"],
            id="unsupported image formats",
        ),
        pytest.param(
            [rec("x.zip"), txt("big.txt", 600), png("1.png"), png("huge.png", 2000), png("2.png"), png("3.png")],
            True,
            SMALL,
            ["1.png", "2.png"],
            [],
            [
                "`huge.png` is too big to send (2 KB; the limit is 1000 B)",
                "only the first 2 images were sent; `3.png` was skipped",
                "`big.txt` is too big to read (600 B; the limit is 500 B)",
                "`x.zip` was skipped: only images and text files can be read",
            ],
            id="notes come in a fixed order: images, texts, others",
        ),
    ],
)
def test_plan(
    records: list[AttachmentRecord],
    vision: bool,
    limits: AttachmentLimits,
    images: list[str],
    texts: list[str],
    notes: list[str],
) -> None:
    plan = plan_attachments(records, model="llama3.2", vision=vision, limits=limits)
    assert [r.filename for r in plan.images] == images
    assert [r.filename for r in plan.texts] == texts
    assert plan.notes == notes


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("we`ird.zip", "`we'ird.zip`"),
        ("line\nbreak.zip", "`line break.zip`"),
        ("x" * 200 + ".zip", "`" + "x" * 79 + "…`"),
        ("", "`unnamed`"),
    ],
)
def test_notes_cannot_break_out_of_inline_code(filename: str, shown: str) -> None:
    plan = plan_attachments([rec(filename, 10**9, "application/zip")], model="m", vision=True)
    assert plan.notes == [f"{shown} was skipped: only images and text files can be read"]


def test_limits_reject_negative_values() -> None:
    with pytest.raises(ValueError, match="max_images"):
        AttachmentLimits(max_images=-1)


# --- inline_text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "block"),
    [
        ("main.py", b"print('hi')\n", "Attached file `main.py`:\n```python\nprint('hi')\n```"),
        ("App.TSX", b"<App />", "Attached file `App.TSX`:\n```tsx\n<App />\n```"),
        ("notes.txt", b"hello", "Attached file `notes.txt`:\n```\nhello\n```"),
        ("unknown.xyz", b"hello", "Attached file `unknown.xyz`:\n```\nhello\n```"),
        ("Dockerfile", b"FROM python", "Attached file `Dockerfile`:\n```dockerfile\nFROM python\n```"),
        ("Makefile", b"all:\n\techo", "Attached file `Makefile`:\n```makefile\nall:\n\techo\n```"),
        ("a.yml", b"a: 1\r\nb: 2\r\n", "Attached file `a.yml`:\n```yaml\na: 1\nb: 2\n```"),
        ("README.md", b"x ``` y", "Attached file `README.md`:\n````markdown\nx ``` y\n````"),
        (
            "doc.md",
            b"```py\ncode\n```\n`````",
            "Attached file `doc.md`:\n``````markdown\n```py\ncode\n```\n`````\n``````",
        ),
        ("empty.txt", b"", "Attached file `empty.txt` (empty)."),
        ("blank.txt", b"\n \n", "Attached file `blank.txt` (empty)."),
        ("bom.txt", codecs.BOM_UTF8 + "héllo".encode(), "Attached file `bom.txt`:\n```\nhéllo\n```"),
        ("u16le.txt", "héllo ✓".encode("utf-16"), "Attached file `u16le.txt`:\n```\nhéllo ✓\n```"),
        (
            "u16be.txt",
            codecs.BOM_UTF16_BE + "héllo".encode("utf-16-be"),
            "Attached file `u16be.txt`:\n```\nhéllo\n```",
        ),
        ("u32.txt", "héllo".encode("utf-32"), "Attached file `u32.txt`:\n```\nhéllo\n```"),
        ("win.txt", "café “quoted”".encode("cp1252"), "Attached file `win.txt`:\n```\ncafé “quoted”\n```"),
        # UTF-16 without a byte order mark used to be refused as binary (NUL bytes).
        ("utf16-no-bom.txt", "hello".encode("utf-16-le"), "Attached file `utf16-no-bom.txt`:\n```\nhello\n```"),
        ("color.log", b"\x1b[31mred\x1b[0m\tok", "Attached file `color.log`:\n```\n\x1b[31mred\x1b[0m\tok\n```"),
    ],
)
def test_inline_text_blocks(filename: str, data: bytes, block: str) -> None:
    assert inline_text(filename, data, max_chars=1000) == (block, None)


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("nul.txt", b"hello\x00world"),
        ("controls.bin.txt", bytes(range(1, 32)) * 4),
    ],
)
def test_inline_text_refuses_binary(filename: str, data: bytes) -> None:
    block, note = inline_text(filename, data, max_chars=1000)
    assert block == ""
    assert note == f"`{filename}` was skipped: it looks like a binary file, not text"


@pytest.mark.parametrize(
    ("data", "max_chars", "kept", "more"),
    [
        pytest.param(b"abcdefghij", 4, "abcd", 6, id="hard cut without newlines"),
        pytest.param(b"line1\nline2\nline3", 14, "line1\nline2", 6, id="cut at a line end near the limit"),
        pytest.param(b"a\n" + b"b" * 100, 50, "a\n" + "b" * 48, 52, id="newline too far back"),
        pytest.param("é" * 10_000, 9_999, "é" * 9_999, 1, id="counts characters, not bytes"),
    ],
)
def test_inline_text_truncates(data: bytes | str, max_chars: int, kept: str, more: int) -> None:
    raw = data.encode() if isinstance(data, str) else data
    block, note = inline_text("f.txt", raw, max_chars=max_chars)
    assert block == f"Attached file `f.txt`:\n```\n{kept}\n```\n[… truncated: {more:,} more characters]"
    assert note == f"`f.txt` was cut to the first {len(kept):,} characters"


def test_inline_text_fits_exactly_at_the_limit() -> None:
    assert inline_text("f.txt", b"abcd", max_chars=4) == ("Attached file `f.txt`:\n```\nabcd\n```", None)


def test_inline_text_fence_accounts_for_the_truncated_part_only() -> None:
    block, _ = inline_text("f.md", b"short\n" + b"`" * 10, max_chars=5)
    assert block.startswith("Attached file `f.md`:\n```markdown\nshort\n```\n")


def test_inline_text_rejects_negative_limit() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        inline_text("f.txt", b"x", max_chars=-1)


# --- encode_image / human_size ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        b"\xff\xd8\xff\xe0" + b"\xfb\xff" * 100,
    ],
)
def test_encode_image_is_bare_standard_base64(data: bytes) -> None:
    encoded = encode_image(data)
    assert isinstance(encoded, str)
    assert encoded.isascii()
    assert not encoded.startswith("data:")
    assert "\n" not in encoded
    assert "-" not in encoded and "_" not in encoded
    assert base64.b64decode(encoded, validate=True) == data


def test_encode_image_known_value() -> None:
    assert encode_image(b"\xfb\xff") == "+/8="


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1 KB"),
        (1536, "1.5 KB"),
        (10_188, "9.9 KB"),
        (10_200, "10 KB"),
        (200_000, "195 KB"),
        (1024 * 1024 - 1, "1 MB"),
        (3_355_443, "3.2 MB"),
        (10 * MB, "10 MB"),
        (5 * 1024**3, "5 GB"),
        (3 * 1024**4, "3 TB"),
        (2000 * 1024**4, "2000 TB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


def test_human_size_rejects_negative() -> None:
    with pytest.raises(ValueError, match="size"):
        human_size(-1)
