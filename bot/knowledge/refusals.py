"""Why knowledge could not be added, searched or used: exceptions whose str() is a sentence fit to show the user.

Every user-facing sentence of the knowledge core lives here (the cog's own texts sit in
bot/cogs/knowledge_commands.py, and the notes under answers in bot/streaming/notes.py).
"""

from __future__ import annotations

from bot.attachments import display_name, human_size

__all__ = [
    "KNOWLEDGE_STORE_FAILED",
    "SUPPORTED_FORMATS",
    "DocumentTooLarge",
    "EmbeddingFailed",
    "EmbeddingModelMissing",
    "EmbeddingUnavailable",
    "KnowledgeNotSaved",
    "KnowledgeRefusal",
    "ScopeFull",
    "UnreadableDocument",
]

SUPPORTED_FORMATS = "text, Markdown, reStructuredText, code, HTML or PDF (with a text layer)"
# The database could not be read while answering (the log has the details).
KNOWLEDGE_STORE_FAILED = "the knowledge database could not be read (see the bot's log)."


class KnowledgeRefusal(Exception):
    """Knowledge could not be added or used; str() tells the user why and, where there is one, what to do."""


class KnowledgeNotSaved(KnowledgeRefusal):
    """The database did not take the change (unreachable, restarting, refusing writes); the log has why."""

    @classmethod
    def file(cls, name: str) -> KnowledgeNotSaved:
        """A file: its document and chunks are one transaction, so none of it was kept."""
        return cls(
            f"❌ Couldn't add {display_name(name)}: the knowledge database can't be reached right now, "
            "so nothing was added. Try again in a moment."
        )

    @classmethod
    def pins(cls) -> KnowledgeNotSaved:
        """Pinned messages: each is saved on its own, so some may be in; the next update brings in the rest."""
        return cls(
            "❌ Couldn't add the pinned messages: the knowledge database can't be reached right now. "
            "Run `/knowledge add-pins` again in a moment."
        )


class DocumentTooLarge(KnowledgeRefusal):
    """The file is over KNOWLEDGE_MAX_FILE_MB."""

    def __init__(self, name: str, size: int, limit: int) -> None:
        super().__init__(
            f"{display_name(name)} is {human_size(size)}; knowledge files can be at most {human_size(limit)} "
            "(KNOWLEDGE_MAX_FILE_MB). Split it, or add only the parts that matter."
        )


class UnreadableDocument(KnowledgeRefusal):
    """The file's text could not be read."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"I can't read {display_name(name)}: {reason}.")
        self.reason = reason

    @classmethod
    def image(cls, name: str) -> UnreadableDocument:
        """An image: there is no text to index."""
        return cls(name, f"it is an image. Knowledge files are {SUPPORTED_FORMATS}")

    @classmethod
    def binary(cls, name: str) -> UnreadableDocument:
        """Bytes that are not text in any encoding."""
        return cls(name, f"it looks like a binary file, not text. Knowledge files are {SUPPORTED_FORMATS}")

    @classmethod
    def unknown_encoding(cls, name: str) -> UnreadableDocument:
        """Text whose encoding could not be recognised."""
        return cls(name, "its text encoding could not be recognised. Save it as UTF-8 and add it again")

    @classmethod
    def empty(cls, name: str) -> UnreadableDocument:
        """A file with no text at all."""
        return cls(name, "it contains no text")

    @classmethod
    def scanned_pdf(cls, name: str) -> UnreadableDocument:
        """A PDF whose pages are pictures of text."""
        return cls(
            name,
            "the PDF has no text layer (it looks like a scan). Run it through OCR first, e.g. "
            "`ocrmypdf in.pdf out.pdf`, and add the result",
        )

    @classmethod
    def encrypted_pdf(cls, name: str) -> UnreadableDocument:
        """A password-protected PDF."""
        return cls(name, "the PDF is password-protected. Add a copy without the password")

    @classmethod
    def broken_pdf(cls, name: str) -> UnreadableDocument:
        """Not a PDF a reader can open."""
        return cls(name, "it is not a readable PDF (the file may be damaged)")


class ScopeFull(KnowledgeRefusal):
    """A scope's files or chunks limit would be passed."""

    @classmethod
    def files(cls, *, server: bool, limit: int) -> ScopeFull:
        """KNOWLEDGE_MAX_FILES."""
        return cls(
            f"{_where(server).capitalize()} already holds {limit} files, the most it can (KNOWLEDGE_MAX_FILES). "
            "Remove one with `/knowledge remove` first."
        )

    @classmethod
    def chunks(cls, name: str, chunks: int, *, server: bool, used: int, limit: int) -> ScopeFull:
        """KNOWLEDGE_MAX_CHUNKS."""
        return cls(
            f"{display_name(name)} makes {chunks:,} chunks, and {_where(server)} already holds {used:,} of at most "
            f"{limit:,} (KNOWLEDGE_MAX_CHUNKS). Remove something with `/knowledge remove`, or add a shorter file."
        )


def _where(server: bool) -> str:
    return "the server's knowledge" if server else "this channel's knowledge"


class EmbeddingModelMissing(KnowledgeRefusal):
    """The embedding model is not installed on the Ollama server."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The embedding model `{model}` is not installed on the Ollama server. Install it with "
            f"`ollama pull {model}` (or pick another with `/set option:embed_model`), then try again."
        )
        self.model = model


class EmbeddingFailed(KnowledgeRefusal):
    """Ollama refused to embed with the model (e.g. it is not an embedding model)."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(
            f"Ollama could not make embeddings with `{model}`: {message}. Is it an embedding model? "
            "`nomic-embed-text` is a good one (`/set option:embed_model`)."
        )
        self.model = model


class EmbeddingUnavailable(KnowledgeRefusal):
    """Ollama could not be asked (down, busy, timed out); the text says which."""

    def __init__(self, explanation: str) -> None:
        super().__init__(explanation)

    @classmethod
    def unreachable(cls) -> EmbeddingUnavailable:
        """Ollama does not answer; where it runs is the operator's business (admins see it in /status)."""
        return cls("⚠️ The bot can't reach its Ollama server right now. Please try again later.")

    @classmethod
    def unusable(cls, model: str, detail: str) -> EmbeddingUnavailable:
        """Ollama answered with vectors that can't be used."""
        return cls(f"⚠️ Ollama returned unusable embeddings from `{model}` ({detail}).")
