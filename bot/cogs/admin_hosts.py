"""The texts of the admin commands when there are several Ollama hosts: which host, and what each one did.

Pure functions (no Discord, no I/O), used by admin_commands.py. Hosts are named by their address to
admins and by their number in OLLAMA_HOST to everyone else, as the addresses are the operator's business.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.ollama.client import ModelInfo
from bot.ollama.host import normalize_ollama_host
from bot.ollama.pool_host import HostSnapshot, PoolHost, model_key
from bot.ollama.pull_progress import PullTracker

ALL_HOSTS = "all"
STATUS_UNREACHABLE_FOR_MEMBERS = "🔴 Ollama is not answering right now (the bot's admins see why in `/status`)."
UNKNOWN_HOST = "There is no Ollama host `{host}`. The hosts are: {hosts}."
MESSAGE_LIMIT = 2000


def host_label(url: str, index: int, *, admin: bool) -> str:
    """`gpu-a:11434` for admins, `host 2` for everyone else."""
    return url.split("://", 1)[-1] if admin else f"host {index + 1}"


def pick_hosts(hosts: Sequence[PoolHost], wanted: str | None) -> list[PoolHost] | None:
    """The hosts a command should act on: all of them by default, or the one named (None: no such host)."""
    if wanted is None or not wanted.strip() or wanted.strip().lower() == ALL_HOSTS:
        return list(hosts)
    text = wanted.strip()
    try:
        url = normalize_ollama_host(text)
    except ValueError:
        url = None
    for host in hosts:
        if host.url == url or host_label(host.url, host.index, admin=True) == text:
            return [host]
    return None


def unknown_host(wanted: str, hosts: Sequence[PoolHost]) -> str:
    """The answer to a host option that names no host."""
    names = ", ".join(f"`{host_label(h.url, h.index, admin=True)}`" for h in hosts)
    return UNKNOWN_HOST.format(host=wanted.replace("`", "'"), hosts=names)


def models_by_host(
    installed: Sequence[ModelInfo], hosts: Sequence[HostSnapshot], *, admin: bool
) -> dict[str, tuple[list[str], list[str]]]:
    """For each installed model (by name): the hosts that have it, and those that have it loaded."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for model in installed:
        key = model_key(model.name)
        having: list[str] = []
        loaded: list[str] = []
        for index, host in enumerate(hosts):
            label = host_label(host.url, index, admin=admin)
            if host.models is not None and key in {model_key(name) for name in host.models}:
                having.append(label)
            if key in host.loaded:
                loaded.append(label)
        found[model.name] = (having, loaded)
    return found


def status_line(host: HostSnapshot, index: int, *, admin: bool, several: bool) -> str:
    """One host in /status: whether it answers, its version, how busy it is, what it has loaded."""
    busy = f"{host.active}/{host.capacity} busy"
    if host.up is False:
        if admin:
            return f"🔴 Ollama unreachable at {host.url}: {host.problem or 'no answer'} · {busy}"
        if several:
            return f"🔴 {host_label(host.url, index, admin=False)} is not answering right now · {busy}"
        return STATUS_UNREACHABLE_FOR_MEMBERS
    where = f" at {host.url}" if admin else (f" ({host_label(host.url, index, admin=False)})" if several else "")
    loaded = ", ".join(f"`{name}`" for name in host.loaded) or "none"
    return f"🟢 Ollama {host.version or '?'}{where} · {busy} · loaded: {loaded}"


def pull_text(
    model: str,
    hosts: Sequence[PoolHost],
    trackers: dict[str, PullTracker],
    outcomes: dict[str, str | None],
    now: float,
) -> str:
    """The /pull message: one tracker's own text for one host; a header and a line per host for several.

    `outcomes` holds each finished host's error (None: it succeeded).
    """
    if len(hosts) == 1:
        host = hosts[0]
        tracker = trackers[host.url]
        if host.url in outcomes:
            return tracker.finished(outcomes[host.url], now=now)
        return tracker.render(now)
    name = model.strip().replace("`", "'")
    lines = []
    for host in hosts:
        label = f"`{host_label(host.url, host.index, admin=True)}`"
        tracker = trackers[host.url]
        if host.url in outcomes:
            lines.append(f"{label} {tracker.finished(outcomes[host.url], now=now)}")
        else:
            progress = tracker.render(now).split("\n")[1:]
            lines.append(f"{label} {' · '.join(progress) or 'Starting…'}")
    if len(outcomes) < len(hosts):
        header = f"⬇️ Pulling `{name}` on {len(hosts)} hosts"
    else:
        pulled = sum(1 for error in outcomes.values() if error is None)
        if pulled == len(hosts):
            header = f"✅ Pulled `{name}` on all {len(hosts)} hosts"
        elif pulled:
            header = f"⚠️ Pulled `{name}` on {pulled} of {len(hosts)} hosts"
        else:
            header = f"❌ Pull of `{name}` failed on every host"
    return clip_lines(header, lines)


def clip_lines(header: str, lines: Sequence[str], limit: int = MESSAGE_LIMIT) -> str:
    """The header and as many lines as fit Discord's limit, saying how many were left out."""
    text = header
    for index, line in enumerate(lines):
        rest = len(lines) - index
        tail = f"\n…and {rest - 1} more" if rest > 1 else ""
        if len(text) + 1 + len(line) + len(tail) > limit:
            return text + f"\n…and {rest} more"
        text += "\n" + line
    return text
