"""Text attachments in legacy encodings, and downloading only what was planned within the image memory budget."""

from __future__ import annotations

import base64

import pytest

from bot.attachments import (
    AttachmentPlan,
    AttachmentRecord,
    ImageMemoryBudget,
    TextFile,
    decode_text,
    fetch_attachments,
)

TEXTS = [
    pytest.param(
        "日本語のテキストファイルです。\n文字コードはシフトJISで保存されています。\n", "shift_jis", id="shift-jis"
    ),
    pytest.param("日本語のテキストです。EUC-JPで保存されています。今日は晴れです。\n", "euc_jp", id="euc-jp"),
    pytest.param("这是一个中文文本文件。\n它使用GBK编码保存。\n你好，世界！\n", "gbk", id="gbk"),
    pytest.param("繁體中文的文字檔案。你好，世界！今天天氣很好。\n", "big5", id="big5"),
    pytest.param("안녕하세요, 세계! 이것은 텍스트 파일입니다.\n", "euc_kr", id="euc-kr"),
    pytest.param(
        "Café au lait, crème brûlée et déjà vu.\nÜber Größe und Maß: naïve façade.\n", "latin-1", id="latin-1"
    ),
    pytest.param("Déjà vu\n", "latin-1", id="latin-1 short"),
    pytest.param("¿Qué tal? ¡Muy bien! El niño comió.\n", "latin-1", id="spanish"),
    pytest.param("“Smart quotes” – and an em dash — cost 5€.\n", "cp1252", id="windows-1252"),
    pytest.param("Привет, мир! Это текстовый файл в кодировке Windows-1251.\nВторая строка.\n", "cp1251", id="cp1251"),
    pytest.param("Hello from UTF-16 without a byte order mark.\nSecond line: café.\n", "utf-16-le", id="utf-16-le"),
    pytest.param("Hello from big endian UTF-16.\n", "utf-16-be", id="utf-16-be"),
    pytest.param("こんにちは世界。これはテストです。\n", "utf-16-le", id="utf-16-le japanese"),
    pytest.param("plain ascii\n", "ascii", id="ascii"),
    pytest.param("ünïcödé ✓\n", "utf-8", id="utf-8"),
]


@pytest.mark.parametrize(("text", "encoding"), TEXTS)
def test_legacy_encodings_are_decoded(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), id="png"),
        pytest.param(b"PK\x03\x04" + bytes(100), id="zip"),
        pytest.param(bytes(range(256)) * 4, id="all bytes"),
        pytest.param(b"hello\x00world", id="stray nul"),
    ],
)
def test_binary_stays_binary(data: bytes) -> None:
    assert decode_text(data) is None


def test_image_memory_budget() -> None:
    budget = ImageMemoryBudget(100)
    assert budget.try_reserve(60)
    assert not budget.try_reserve(50)
    assert budget.used == 60
    budget.release(60)
    assert budget.try_reserve(100)
    with pytest.raises(ValueError, match="size"):
        budget.try_reserve(-1)


async def test_fetch_downloads_only_what_fits_and_reports_the_rest() -> None:
    a = AttachmentRecord("a.png", 60, "image/png", ref="a")
    b = AttachmentRecord("b.png", 60, "image/png", ref="b")
    text = AttachmentRecord("t.txt", 10, "text/plain", ref="t")
    binary = AttachmentRecord("x.txt", 10, "text/plain", ref="x")
    gone = AttachmentRecord("gone.txt", 10, "text/plain", ref="gone")
    blobs = {
        "a": b"AAA",
        "b": b"BBB",
        "t": "Un été à Paris.".encode("latin-1"),
        "x": b"\x00\x01\x02\x03\x04",
        "gone": None,
    }
    fetched_refs: list[object] = []

    async def download(record: AttachmentRecord) -> bytes | None:
        fetched_refs.append(record.ref)
        return blobs[str(record.ref)]

    budget = ImageMemoryBudget(100)
    plan = AttachmentPlan(images=[a, b], texts=[text, binary, gone])
    fetched = await fetch_attachments(plan, download, image_memory=budget)

    assert fetched_refs == ["a", "t", "x", "gone"]  # b never downloaded: no room
    assert fetched.images == [base64.b64encode(b"AAA").decode()]
    assert fetched.files == [TextFile("t.txt", "Un été à Paris.")]
    assert fetched.reserved == 60 and budget.used == 60
    assert fetched.notes == [
        "`x.txt` was skipped: it looks like a binary file, not text",
        "`gone.txt` could not be downloaded from Discord.",
        "`b.png` was not sent: the bot is holding as many images as it may for other answers right now; "
        "please send it again in a moment",
    ]
