"""OLLAMA_HOST: one Ollama address or a list of them, each with an optional capacity.

One address is written in Ollama's own forms (`[scheme://]host[:port][/path]`). Several hosts are
separated by commas, and each may end in `*N`: the requests that host serves at once (its
OLLAMA_NUM_PARALLEL, which Ollama does not report over its API):

    OLLAMA_HOST=http://gpu-a:11434*4, http://gpu-b:11434*2, gpu-c:11434
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_OLLAMA_URL",
    "MAX_HOSTS",
    "MAX_HOST_CAPACITY",
    "HostSpec",
    "normalize_ollama_host",
    "parse_ollama_hosts",
]

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
# Far above any real deployment; the bounds only catch typos (an extra zero) before they cost memory.
MAX_HOSTS = 64
MAX_HOST_CAPACITY = 4096
_CAPACITY = re.compile(r"(.*)\*\s*([0-9]+)")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_SCHEME_PORT = 11434
_HOSTNAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_PATH = re.compile(r"[A-Za-z0-9._~!$'()*+,;=:@%/-]*")


def normalize_ollama_host(value: str) -> str:
    """Turn an OLLAMA_HOST value (`[scheme://]host[:port][/path]`) into a dialable base URL."""
    raw = value.strip()
    if not raw:
        return DEFAULT_OLLAMA_URL
    if any(ch.isspace() for ch in raw):
        raise ValueError(f"invalid Ollama host {value!r}: contains whitespace")

    scheme, sep, rest = raw.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"invalid Ollama host {value!r}: unsupported scheme {scheme!r} (use http or https)")
        # Ollama's rule: an explicit scheme without a port means the scheme's port, not 11434.
        default_port = _DEFAULT_PORTS[scheme]
    else:
        scheme, rest, default_port = "http", raw, _NO_SCHEME_PORT

    if not rest:
        raise ValueError(f"invalid Ollama host {value!r}: missing host")
    if "?" in rest or "#" in rest:
        raise ValueError(f"invalid Ollama host {value!r}: query strings and fragments are not allowed")
    hostport, slash, path = rest.partition("/")
    if "@" in hostport:
        # Credentials would end up in every log line that names the URL.
        raise ValueError(f"invalid Ollama host {value!r}: credentials in the URL are not supported")

    host, port_text = _split_host_port(hostport, value)
    port = _parse_port(port_text, default_port, value)

    path = path.strip("/")
    if path and not _PATH.fullmatch(path):
        raise ValueError(f"invalid Ollama host {value!r}: bad path {path!r}")
    suffix = f"/{path}" if slash and path else ""
    return f"{scheme}://{host}:{port}{suffix}"


def _split_host_port(hostport: str, original: str) -> tuple[str, str]:
    """Split `host[:port]` (IPv6 in brackets, or a bare IPv6 address without a port)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"invalid Ollama host {original!r}: unclosed '[' in IPv6 address")
        host = _ipv6(hostport[1:end], original)
        after = hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise ValueError(f"invalid Ollama host {original!r}: unexpected text after ']'")
        return host, after[1:]

    if hostport.count(":") > 1:
        # Like Ollama, accept a bare IPv6 address when no port is given.
        return _ipv6(hostport, original), ""

    host, _, port_text = hostport.partition(":")
    host = host.lower()
    if not host or host == "0.0.0.0":  # noqa: S104 - mapped to loopback for dialling, never bound
        return "127.0.0.1", port_text
    if not _HOSTNAME.fullmatch(host) or ".." in host:
        raise ValueError(f"invalid Ollama host {original!r}: bad host name {host!r}")
    return host, port_text


def _ipv6(text: str, original: str) -> str:
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"invalid Ollama host {original!r}: bad IPv6 address {text!r}") from None
    if addr.is_unspecified:
        return "[::1]"
    return f"[{addr.compressed}]"


def _parse_port(text: str, default: int, original: str) -> int:
    if not text:
        return default
    if not _PORT.fullmatch(text) or not 0 < int(text) <= 65535:
        raise ValueError(f"invalid Ollama host {original!r}: bad port {text!r} (expected 1-65535)")
    return int(text)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One Ollama host of the pool: its base URL and, if given, how many requests it serves at once."""

    url: str
    capacity: int | None = None


def parse_ollama_hosts(value: str) -> tuple[HostSpec, ...]:
    """Parse OLLAMA_HOST into one or more hosts; ValueError (a sentence saying what to fix) on any mistake."""
    raw = value.strip()
    if not raw:
        return (HostSpec(DEFAULT_OLLAMA_URL),)
    entries = [entry.strip() for entry in raw.split(",")]
    if len(entries) > MAX_HOSTS:
        raise ValueError(f"{len(entries)} hosts listed; at most {MAX_HOSTS} are supported")
    specs: list[HostSpec] = []
    for number, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"host {number} of {len(entries)} is empty (a stray comma?)")
        specs.append(_parse_entry(entry))
    _reject_duplicates(specs)
    return tuple(specs)


def _parse_entry(entry: str) -> HostSpec:
    capacity: int | None = None
    match = _CAPACITY.fullmatch(entry)
    if match is not None:
        address, digits = match.group(1).strip(), match.group(2)
        capacity = int(digits)
        if not 1 <= capacity <= MAX_HOST_CAPACITY:
            raise ValueError(
                f"{entry!r}: the capacity after '*' must be a whole number from 1 to {MAX_HOST_CAPACITY} "
                "(how many requests that host serves at once, its OLLAMA_NUM_PARALLEL)"
            )
        if not address:
            raise ValueError(f"{entry!r}: an address is missing before '*{digits}'")
    elif "*" in entry:
        raise ValueError(f"{entry!r}: write a host's capacity as a whole number at the end, e.g. gpu-a:11434*4")
    else:
        address = entry
    return HostSpec(normalize_ollama_host(address), capacity)


def _reject_duplicates(specs: Sequence[HostSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.url in seen:
            raise ValueError(f"{spec.url} is listed more than once")
        seen.add(spec.url)
