"""Team knowledge: documents and pinned messages, chunked, embedded through Ollama and searched per scope."""
