"""Team knowledge, unit by unit: reading files, chunking, the vector index, the prompt and the model of a scope."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.channel_settings.store import MemorySettingsStore, Scope
from bot.context_budget import ContextBudget, fit_to_context
from bot.knowledge.base import Excerpt
from bot.knowledge.chunking import chunk_document, chunk_text, embedding_input
from bot.knowledge.documents import DocumentFormat, document_format, extract_document, html_to_text
from bot.knowledge.index import ScopeIndex, VectorRows, normalize_rows
from bot.knowledge.library import KnowledgeLibrary
from bot.knowledge.prompt import KNOWLEDGE_HEADER, knowledge_block, sources_note
from bot.knowledge.records import DocumentKind, DocumentRecord, KnowledgePlace, KnowledgeTarget
from bot.knowledge.refusals import UnreadableDocument
from bot.knowledge.store import MemoryKnowledgeStore
from tests.knowledge_helpers import scanned_pdf, text_pdf

T0 = datetime(2026, 3, 1, tzinfo=UTC)

# ---- reading files


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("guide.md", None, DocumentFormat.MARKDOWN),
        ("README.markdown", "text/plain", DocumentFormat.MARKDOWN),
        ("index.rst", None, DocumentFormat.RST),
        ("page.html", None, DocumentFormat.HTML),
        ("page", "text/html; charset=utf-8", DocumentFormat.HTML),
        ("manual.pdf", None, DocumentFormat.PDF),
        ("download", "application/pdf", DocumentFormat.PDF),
        ("notes.txt", None, DocumentFormat.TEXT),
        ("deploy.sh", None, DocumentFormat.CODE),
        ("main.py", "text/x-python", DocumentFormat.CODE),
        ("config.yaml", None, DocumentFormat.CODE),
        ("photo.png", "image/png", None),
        ("archive.zip", "application/zip", None),
    ],
)
def test_the_format_comes_from_the_name_and_type(name: str, content_type: str | None, expected: object) -> None:
    assert document_format(name, content_type) == expected


def test_text_in_legacy_encodings_is_decoded() -> None:
    latin = "Crème brûlée is served on Fridays at the café.".encode("cp1252")
    assert extract_document("menu.txt", None, latin).parts[0].text.startswith("Crème brûlée")
    japanese = "デプロイは火曜日です。ロールバックの合言葉はパパイヤです。".encode("shift_jis")
    assert "ロールバック" in extract_document("notes.txt", None, japanese).parts[0].text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("blob.bin", bytes(range(256)) * 4, "binary"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "image"),
        ("empty.md", b"  \n\n ", "no text"),
        ("scan.pdf", scanned_pdf(), "no text layer"),
        ("broken.pdf", b"%PDF-1.4\nnot really", "not a readable PDF"),
    ],
)
def test_unreadable_files_say_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableDocument) as caught:
        extract_document(name, None, data)
    assert reason in str(caught.value) and f"`{name}`" in str(caught.value)


def test_an_unknown_extension_that_is_text_is_read() -> None:
    assert extract_document("Procfile.custom", None, b"web: run the server").parts[0].text == "web: run the server"


def test_pdf_pages_are_sections_and_hyphenation_is_joined() -> None:
    document = extract_document("m.pdf", None, text_pdf("First page", "Second page with a hyph-\nenated word"))
    assert [(p.section, p.text) for p in document.parts] == [
        ("page 1", "First page"),
        ("page 2", "Second page with a hyphenated word"),
    ]


def test_html_keeps_headings_lists_and_code_and_drops_markup() -> None:
    html = (
        "<html><head><title>t</title><style>p {}</style></head><body><nav>Menu</nav><h2>A &amp; B</h2>"
        "<p>one<br>two</p><ul><li>x</li><li>y</li></ul><pre>code\n  indented</pre>"
        "<p>after <b>bold</b> text</p><script>alert(1)</script></body></html>"
    )
    assert (
        html_to_text(html)
        == "Menu\n\n## A & B\n\none\ntwo\n\n- x\n- y\n\n```\ncode\n  indented\n```\n\nafter bold text"
    )


# ---- chunking

MARKDOWN = """# Title

Intro paragraph.

## Install

Run this:

```bash
pip install x
```

Setext heading
--------------

Under the setext heading.
"""


def test_markdown_chunks_follow_headings_and_keep_code_blocks() -> None:
    chunks = chunk_text(MARKDOWN, DocumentFormat.MARKDOWN)
    assert [(c.section, c.text) for c in chunks] == [
        ("Title", "Intro paragraph."),
        ("Title › Install", "Run this:\n\n```bash\npip install x\n```"),
        ("Title › Setext heading", "Under the setext heading."),
    ]


def test_rst_titles_take_their_level_from_the_order_of_their_adornment() -> None:
    rst = "=====\nGuide\n=====\n\nIntro.\n\nSetup\n-----\n\nDo things.\n\n"
    rst += "Details\n~~~~~~~\n\nMore.\n\nOther\n-----\n\nX.\n"
    assert [(c.section, c.text) for c in chunk_text(rst, DocumentFormat.RST)] == [
        ("Guide", "Intro."),
        ("Guide › Setup", "Do things."),
        ("Guide › Setup › Details", "More."),
        ("Guide › Other", "X."),
    ]


def test_a_long_paragraph_is_cut_at_sentences_with_overlap_and_within_size() -> None:
    text = "Para. " + " ".join(f"Sentence {i} is here." for i in range(120))
    chunks = chunk_text(text, DocumentFormat.TEXT, size=600, overlap=100)
    assert len(chunks) > 4
    assert all(len(c.text) <= 600 for c in chunks)
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.text.split(" is here.")[0]
        assert first_sentence in before.text  # the next chunk starts inside the previous one
    words = {w for c in chunks for w in c.text.split()}
    assert {f"{i}" for i in range(120)} <= words  # nothing lost


def test_a_long_code_block_is_split_at_lines_and_every_piece_is_fenced() -> None:
    code = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(300)) + "\n```"
    chunks = chunk_text(code, DocumentFormat.MARKDOWN, size=500, overlap=100)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text.startswith("```python\n") and chunk.text.endswith("\n```")
        assert len(chunk.text) <= 500


def test_source_files_split_at_blank_lines_and_headings_are_never_crossed() -> None:
    code = "def a():\n    return 1\n\n\n# not a heading\ndef b():\n    return 2\n"
    chunks = chunk_text(code, DocumentFormat.CODE, size=120, overlap=0)
    assert [c.section for c in chunks] == [None]
    assert chunks[0].text == "def a():\n    return 1\n\n# not a heading\ndef b():\n    return 2"


def test_pdf_parts_keep_their_page_as_the_section() -> None:
    chunks = chunk_document(extract_document("m.pdf", None, text_pdf("One", "Two")))
    assert [(c.section, c.text) for c in chunks] == [("page 1", "One"), ("page 2", "Two")]


def test_the_embedding_input_names_the_document_and_section() -> None:
    (chunk,) = chunk_text("## Rollback\n\nSay the word.", DocumentFormat.MARKDOWN)
    assert embedding_input("runbook.md", chunk) == "runbook.md › Rollback\nSay the word."


@pytest.mark.parametrize(("size", "overlap"), [(50, 0), (1000, 600), (1000, -1)])
def test_chunk_size_and_overlap_must_fit(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        chunk_text("text", DocumentFormat.TEXT, size=size, overlap=overlap)


# ---- the index


def record(document_id: str, chunks: int = 1, **changes: object) -> DocumentRecord:
    base = DocumentRecord(
        document_id=document_id,
        target=KnowledgeTarget(Scope.channel(500), 400),
        kind=DocumentKind.FILE,
        name=f"{document_id}.md",
        embed_model="m",
        dimensions=3,
        chunk_count=chunks,
        chars=10,
        content_hash="h",
        added_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def index_of(*documents: tuple[DocumentRecord, list[list[float]]]) -> ScopeIndex:
    index = ScopeIndex("m", VectorRows.empty())
    for document, rows in documents:
        index = index.with_document(document, normalize_rows(rows))
    return index


def test_search_returns_the_best_above_the_threshold_best_first() -> None:
    index = index_of((record("a", 2), [[1, 0, 0], [0.6, 0.8, 0]]), (record("b"), [[0, 0, 1]]))
    hits = index.search(normalize_rows([[1, 0.1, 0]])[0], limit=5, min_score=0.5)
    assert [(h.document.document_id, h.position) for h in hits] == [("a", 0), ("a", 1)]
    assert hits[0].score > hits[1].score >= 0.5
    assert [h.position for h in index.search(normalize_rows([[1, 0.1, 0]])[0], limit=1, min_score=-1)] == [0]
    assert index.search(np.zeros(4, dtype=np.float32), limit=5, min_score=-1) == []  # other dimensions


def test_documents_are_replaced_and_removed_without_touching_the_old_index() -> None:
    first = index_of((record("a"), [[1, 0, 0]]), (record("b"), [[0, 1, 0]]))
    replaced = first.with_document(record("a"), normalize_rows([[0, 0, 1]]))
    assert first.size == 2 and replaced.size == 2
    query = normalize_rows([[0, 0, 1]])[0]
    assert [h.document.document_id for h in replaced.search(query, limit=2, min_score=0.9)] == ["a"]
    assert first.search(query, limit=2, min_score=0.9) == []
    smaller = replaced.without_documents(["b"])
    assert smaller.size == 1 and [d.document_id for d in smaller.documents] == ["a"]
    assert smaller.without_documents(["nope"]) is smaller
    with pytest.raises(ValueError, match="dimensions"):
        smaller.with_document(record("c"), normalize_rows([[1, 0]]))


def test_normalising_leaves_zero_vectors_at_zero() -> None:
    rows = normalize_rows([[3, 4], [0, 0]])
    assert rows.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


# ---- the prompt


def excerpt(name: str, text: str, section: str | None = None, *, pin: bool = False) -> Excerpt:
    document = record(name, kind=DocumentKind.PIN if pin else DocumentKind.FILE, name=name)
    if pin:
        document = replace(document, link="https://discord.com/channels/1/2/3")
    return Excerpt(document, section, text, 0.9)


def test_the_block_numbers_excerpts_and_the_sources_line_matches() -> None:
    excerpts = [excerpt("runbook.md", "Say PAPAYA.", "Rollback"), excerpt("Alice", "Freeze on March 3rd.", pin=True)]
    assert knowledge_block(excerpts) == (
        f"{KNOWLEDGE_HEADER}\n\n[1] runbook.md › Rollback\nSay PAPAYA.\n\n"
        "[2] pinned message by Alice\nFreeze on March 3rd."
    )
    assert sources_note(excerpts) == (
        "📚 Sources: [1] `runbook.md` › Rollback · [2] [pinned message by Alice](<https://discord.com/channels/1/2/3>)"
    )
    assert sources_note([]) is None


def test_a_long_sources_line_is_cut_with_a_count() -> None:
    many = [excerpt(f"{'x' * 70}{i}.md", "t", "s" * 70) for i in range(10)]
    line = sources_note(many)
    assert line is not None and len(line) < 600 and line.endswith("more")


def test_excerpts_fit_within_their_share_of_the_context_and_keep_their_order() -> None:
    messages = [{"role": "user", "content": "Alice: the question"}]
    big = "word " * 400  # ~500 estimated tokens each
    excerpts = [excerpt("a.md", big), excerpt("b.md", "short and relevant"), excerpt("c.md", big)]
    fitted = fit_to_context(
        messages, [], ContextBudget(window=2048, reserve=256), max_file_chars=1000, excerpts=excerpts
    )
    assert [e.document.name for e in fitted.excerpts] == ["a.md", "b.md"]  # c.md is over the share
    content = fitted.messages[-1]["content"]
    assert isinstance(content, str)
    assert content.startswith("Alice: the question\n\n" + KNOWLEDGE_HEADER)
    assert "[2] b.md\nshort and relevant" in content and "c.md" not in content

    tiny = fit_to_context(messages, [], ContextBudget(window=600, reserve=256), max_file_chars=1000, excerpts=excerpts)
    assert [e.document.name for e in tiny.excerpts] == ["b.md"]
    assert "[1] b.md" in str(tiny.messages[-1]["content"])
    assert fit_to_context(messages, [], ContextBudget(window=2048, reserve=256), max_file_chars=10).excerpts == []


# ---- which embedding model a scope uses


async def test_the_embed_model_of_a_scope_resolves_like_a_setting() -> None:
    settings = MemorySettingsStore()
    library = KnowledgeLibrary(MemoryKnowledgeStore(), settings, default_model="nomic-embed-text")
    place = KnowledgePlace(guild_id=400, channel_id=700, parent_id=500)
    thread, parent, server = place.targets()
    assert set((await library.models(place.targets())).values()) == {"nomic-embed-text"}
    await settings.set_many(Scope.guild(400), {"embed_model": "mxbai-embed-large"})
    await settings.set_many(Scope.channel(500), {"embed_model": "bge-m3"})
    models = await library.models([thread, parent, server])
    assert models == {thread.scope: "bge-m3", parent.scope: "bge-m3", server.scope: "mxbai-embed-large"}
    await settings.set_many(Scope.channel(700), {"embed_model": "all-minilm"})
    assert (await library.models([thread]))[thread.scope] == "all-minilm"
