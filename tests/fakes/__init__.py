"""Test fakes: a loopback Discord server and a loopback Ollama server."""
