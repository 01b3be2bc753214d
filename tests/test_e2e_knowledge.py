"""End to end: team knowledge through /knowledge, the real discord.py and the fake Ollama's /api/embed."""

from __future__ import annotations

from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript
from tests.knowledge_helpers import (
    CHANNEL_MANAGER,
    HANDBOOK,
    MEMBER,
    RUNBOOK,
    add_file,
    ask,
    install_embedder,
    knowledge,
    scanned_pdf,
    start,
    text_pdf,
)


async def test_a_fact_only_in_a_document_reaches_the_prompt_and_the_sources_line_names_it(harness: Harness) -> None:
    await start(harness)
    added = await add_file(harness, "runbook.md", RUNBOOK)
    assert "runbook.md" in added and "this channel's knowledge" in added

    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" in sent
    assert "[1] Payments runbook" not in reply  # the model's text is what it is; the footer names the source
    sources = reply.splitlines()[-1]
    assert sources.startswith("-# 📚 Sources: [1] `runbook.md` › ")
    assert "Rollback" in sources
    # The question was embedded with the default embedding model.
    assert harness.ollama.embed_requests[-1].json["model"] == "nomic-embed-text"


async def test_after_remove_the_document_no_longer_reaches_the_prompt(harness: Harness) -> None:
    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK)
    assert "PAPAYA-42" in (await ask(harness, "what is the rollback code word?"))[0]

    removed = await knowledge(harness, "remove", {"document": "runbook.md"})
    assert "Removed `runbook.md`" in removed
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" not in sent
    assert "Sources" not in reply
    listed = await knowledge(harness, "list")
    assert "runbook.md" not in listed


async def test_nothing_relevant_means_the_usual_answer_and_no_sources_line(harness: Harness) -> None:
    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK)
    sent, reply = await ask(harness, "tell me a joke about cats")
    assert sent == "Alice: tell me a joke about cats"
    assert reply == "ok"


async def test_server_knowledge_applies_everywhere_channel_knowledge_only_in_its_channel_and_threads(
    harness: Harness,
) -> None:
    await start(harness)
    await add_file(harness, "handbook.txt", HANDBOOK, scope="server", channel_id=501)
    await add_file(harness, "runbook.md", RUNBOOK, channel_id=500)
    thread = await harness.discord.create_thread(500, "payments chat")

    for channel in (500, 501, thread):
        assert "TANGERINE-7" in (await ask(harness, "what is the office wifi password?", channel_id=channel))[0]
    assert "PAPAYA-42" in (await ask(harness, "what is the rollback code word?", channel_id=500))[0]
    assert "PAPAYA-42" in (await ask(harness, "what is the rollback code word?", channel_id=thread))[0]
    sent, reply = await ask(harness, "what is the rollback code word?", channel_id=501)
    assert "PAPAYA-42" not in sent and "Sources" not in reply


async def test_a_channel_without_knowledge_never_waits_for_an_embedding(harness: Harness) -> None:
    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK, channel_id=500)
    embeds = len(harness.ollama.embed_requests)
    sent, _ = await ask(harness, "what is the rollback code word?", channel_id=501)
    assert sent == "Alice: what is the rollback code word?"
    assert len(harness.ollama.embed_requests) == embeds


async def test_changing_knowledge_needs_the_same_permissions_as_settings(harness: Harness) -> None:
    await start(harness)
    refused = await add_file(harness, "runbook.md", RUNBOOK, user_id=201, permissions=MEMBER)
    assert "Manage Channels" in refused
    refused = await add_file(harness, "runbook.md", RUNBOOK, scope="server", user_id=201, permissions=CHANNEL_MANAGER)
    assert "Manage Server" in refused
    refused = await knowledge(harness, "add-pins", user_id=201, permissions=MEMBER)
    assert "Manage Channels" in refused
    assert harness.ollama.embed_requests == []  # nothing was indexed

    allowed = await add_file(harness, "runbook.md", RUNBOOK, user_id=201, permissions=CHANNEL_MANAGER)
    assert "Added `runbook.md`" in allowed
    # Everyone may list and search, and nobody without the permission may remove.
    assert "runbook.md" in await knowledge(harness, "list", user_id=201, permissions=MEMBER)
    found = await knowledge(harness, "search", {"query": "rollback code word"}, user_id=201, permissions=MEMBER)
    assert "PAPAYA-42" in found and "`runbook.md`" in found
    refused = await knowledge(harness, "remove", {"document": "runbook.md"}, user_id=201, permissions=MEMBER)
    assert "Manage Channels" in refused
    assert "PAPAYA-42" in (await ask(harness, "what is the rollback code word?"))[0]


async def test_a_missing_embedding_model_gets_the_exact_pull_command(harness: Harness) -> None:
    harness.ollama.default_script = ChatScript(tokens=["ok"])
    await harness.start_bot()  # nomic-embed-text is not installed
    refused = await add_file(harness, "runbook.md", RUNBOOK)
    assert "`ollama pull nomic-embed-text`" in refused
    assert "runbook.md" not in await knowledge(harness, "list")

    install_embedder(harness)
    assert "Added `runbook.md`" in await add_file(harness, "runbook.md", RUNBOOK)
    # Deleted from Ollama later: answers still come, with a note saying what to do.
    del harness.ollama.models["nomic-embed-text:latest"]
    sent, reply = await ask(harness, "what is the rollback code word?")
    assert "PAPAYA-42" not in sent
    assert reply.startswith("ok\n-# 📚 Answered without this channel's knowledge")
    assert "`ollama pull nomic-embed-text`" in reply


async def test_an_unreadable_pdf_binary_or_image_gets_a_clear_message(harness: Harness) -> None:
    await start(harness)
    scanned = await add_file(harness, "scan.pdf", scanned_pdf())
    assert "`scan.pdf`" in scanned and "no text layer" in scanned and "OCR" in scanned
    binary = await add_file(harness, "data.bin", bytes(range(256)) * 8)
    assert "binary" in binary
    image = await add_file(harness, "diagram.png", b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert "image" in image
    assert harness.ollama.embed_requests == []

    added = await add_file(harness, "manual.pdf", text_pdf("Intro page", "The door code for the lab is 8142."))
    assert "Added `manual.pdf`" in added
    sent, reply = await ask(harness, "what is the door code for the lab?")
    assert "8142" in sent
    assert "`manual.pdf` › page 2" in reply


async def test_html_rst_and_code_files_are_read_as_text(harness: Harness) -> None:
    await start(harness)
    # FAQ-style documents: the fake's embeddings are bags of words, without a real model's sense of meaning.
    html = (
        b"<html><head><style>p{}</style></head><body><h1>Oncall</h1>"
        b"<p>When does the pager rotation change? The pager rotation changes on Mondays.</p>"
    )
    await add_file(harness, "oncall.html", html + b"<script>var secret = 1;</script></body></html>")
    rst = b"Billing\n=======\n\nWhen are invoices sent? Invoices are sent on the first of the month.\n"
    await add_file(harness, "billing.rst", rst)
    await add_file(harness, "retry.py", b"def retry_budget():\n    # the retry budget is five attempts\n    return 5\n")

    sent, reply = await ask(harness, "when does the pager rotation change?")
    assert "The pager rotation changes on Mondays." in sent and "secret" not in sent
    assert "`oncall.html` › Oncall" in reply
    sent, reply = await ask(harness, "when are invoices sent?")
    assert "first of the month" in sent and "`billing.rst` › Billing" in reply
    assert "return 5" in (await ask(harness, "what is the retry budget?"))[0]


async def test_limits_are_refused_with_an_explanation(harness: Harness) -> None:
    await start(harness, KNOWLEDGE_MAX_FILES="1", KNOWLEDGE_MAX_CHUNKS="3", KNOWLEDGE_MAX_FILE_MB="0.01")
    assert "Added" in await add_file(harness, "runbook.md", RUNBOOK)
    too_many = await add_file(harness, "handbook.txt", HANDBOOK)
    assert "KNOWLEDGE_MAX_FILES" in too_many
    # Another version of the same file replaces it rather than counting as a second one.
    assert "Replaced `runbook.md`" in await add_file(harness, "runbook.md", RUNBOOK + b"\nUpdated.\n")

    long_text = "\n\n".join(f"Paragraph {i}: " + "words " * 150 for i in range(6)).encode()
    too_long = await add_file(harness, "long.txt", long_text, scope="server")
    assert "KNOWLEDGE_MAX_CHUNKS" in too_long and "`long.txt`" in too_long
    before = len(harness.discord.calls)
    too_big = await add_file(harness, "big.txt", b"x " * 10_000, scope="server")
    assert "KNOWLEDGE_MAX_FILE_MB" in too_big and "big.txt" in too_big
    # Refused before downloading anything.
    assert not [c for c in harness.discord.calls[before:] if c.path.startswith("/attachments/")]


async def test_search_shows_the_best_excerpts_with_their_sources(harness: Harness) -> None:
    await start(harness)
    assert "No knowledge applies here yet" in await knowledge(harness, "search", {"query": "anything"})
    await add_file(harness, "runbook.md", RUNBOOK)
    await add_file(harness, "handbook.txt", HANDBOOK, scope="server")
    found = await knowledge(harness, "search", {"query": "office wifi password"})
    assert found.startswith("🔎 **Best matches**")
    assert "**[1]** `handbook.txt`" in found and "TANGERINE-7" in found
    nothing = await knowledge(harness, "search", {"query": "zebra migration patterns"})
    assert "even close" in nothing
    listed = await knowledge(harness, "list")
    assert "**This channel** · `nomic-embed-text` · 1/100 files" in listed
    assert "**Server**" in listed and "`handbook.txt`" in listed


async def test_an_explain_draws_on_the_channels_knowledge_like_a_mention(harness: Harness) -> None:
    from bot.cogs.message_actions import EXPLAIN

    await start(harness)
    await add_file(harness, "runbook.md", RUNBOOK)
    target = await harness.discord.send_user_message("what is the rollback code word?")
    await harness.discord.send_message_command(EXPLAIN, int(target["id"]), user_id=201)
    await harness.discord.wait_for(lambda: bool(harness.ollama.chat_requests))
    await harness.wait_for_reply(int(target["id"]))
    assert "PAPAYA-42" in harness.ollama.chat_requests[-1].json["messages"][-1]["content"]
