"""normalize_ollama_host follows Ollama's own OLLAMA_HOST rules."""

from __future__ import annotations

import pytest

from bot.ollama.host import DEFAULT_OLLAMA_URL, normalize_ollama_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", DEFAULT_OLLAMA_URL),
        ("   ", DEFAULT_OLLAMA_URL),
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("  127.0.0.1:11434\n", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("ollama", "http://ollama:11434"),
        ("ollama:11434", "http://ollama:11434"),
        ("my_ollama", "http://my_ollama:11434"),
        ("Ollama.Example.COM:9000", "http://ollama.example.com:9000"),
        # An explicit scheme without a port means the scheme's port, as in Ollama.
        ("http://ollama", "http://ollama:80"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("HTTPS://ollama.example.com:8443", "https://ollama.example.com:8443"),
        ("http://127.0.0.1:11434/", "http://127.0.0.1:11434"),
        (":8080", "http://127.0.0.1:8080"),
        ("http://:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434"),
        ("host:", "http://host:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("::1", "http://[::1]:11434"),
        ("http://[::]:1234", "http://[::1]:1234"),
        ("https://[2001:DB8::1]", "https://[2001:db8::1]:443"),
        ("example.com/ollama", "http://example.com:11434/ollama"),
        ("https://example.com/proxy/ollama/", "https://example.com:443/proxy/ollama"),
        ("[::1]:8080/path", "http://[::1]:8080/path"),
    ],
)
def test_normalize(value: str, expected: str) -> None:
    assert normalize_ollama_host(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ftp://ollama", "unsupported scheme"),
        ("unix:///tmp/ollama.sock", "unsupported scheme"),
        ("ollama:abc", "bad port"),
        ("ollama:99999", "bad port"),
        ("ollama:0", "bad port"),
        ("ollama:-1", "bad port"),
        ("my ollama", "whitespace"),
        ("http://", "missing host"),
        ("user:pw@ollama", "credentials"),
        ("[::1", "unclosed"),
        ("[nope]:80", "IPv6"),
        ("[::1]x", "after ']'"),
        ("ollama?x=1", "query"),
        ("-ollama", "bad host name"),
        ("a..b", "bad host name"),
        ("ho$t", "bad host name"),
    ],
)
def test_rejects_garbage(value: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid Ollama host") as info:
        normalize_ollama_host(value)
    assert fragment in str(info.value)
