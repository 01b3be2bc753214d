"""ollacord: a Discord bot that streams answers from local Ollama models."""
