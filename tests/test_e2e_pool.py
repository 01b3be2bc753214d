"""End to end with several Ollama hosts: routing, stickiness, failover, dying and returning hosts, admin commands.

Each host is its own FakeOllama on its own port, with its own models, loaded set, capacity and faults; the
bot gets them all in OLLAMA_HOST (`url*N` gives a host its capacity).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.channel_settings.store import Scope
from bot.ollama.pool import OllamaPool
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness, RunningBot
from tests.fakes.fake_ollama import DEFAULT_MODELS, PULLABLE_EXTRA, ChatScript, FakeModel, FakeOllama

LLAMA, QWEN, GEMMA = DEFAULT_MODELS


class Hosts:
    """Fake Ollama hosts started for one test (closed at its end)."""

    def __init__(self) -> None:
        self.all: list[FakeOllama] = []

    async def add(self, *models: FakeModel, parallel: int | None = None, answer: str | None = None) -> FakeOllama:
        host = FakeOllama(models=list(models), parallel=parallel)
        if answer is not None:
            host.default_script = ChatScript(tokens=answer_tokens(answer))
        await host.start()
        self.all.append(host)
        return host

    def setting(self, *hosts: FakeOllama, capacity: int = 2) -> str:
        return ", ".join(f"{h.url}*{capacity}" for h in hosts)


def answer_tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0], *(f" {w}" for w in words[1:])]


def by_prompt(scripts: dict[str, ChatScript]) -> Callable[[dict[str, Any]], ChatScript | None]:
    """FakeOllama.script_for: the script whose key appears in the last message."""

    def choose(body: dict[str, Any]) -> ChatScript | None:
        messages = body.get("messages") or []
        last = str(messages[-1].get("content", "")) if messages else ""
        return next((script for key, script in scripts.items() if key in last), None)

    return choose


def asked(host: FakeOllama, text: str) -> bool:
    """Whether a chat request with `text` in its last message reached this host."""
    return any(text in str((r.json or {}).get("messages", [{}])[-1].get("content", "")) for r in host.chat_requests)


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    started = Hosts()
    try:
        yield started
    finally:
        for host in started.all:
            await host.close()


async def start(harness: Harness, setting: str, **env: str) -> RunningBot:
    return await harness.start_bot(harness.settings(OLLAMA_HOST=setting, OLLAMA_CHECK_INTERVAL="1", **env))


def pool_of(running: RunningBot) -> OllamaPool:
    return running.services.ollama


async def ask(harness: Harness, text: str, *, channel_id: int = 500, timeout: float = 15.0) -> list[str]:
    prompt = await harness.discord.send_user_message(text, mention_bot=True, channel_id=channel_id)
    return await harness.wait_for_reply(int(prompt["id"]), timeout=timeout)


# ---- routing


async def test_a_model_goes_to_the_only_host_that_has_it(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, answer="From A.")
    b = await hosts.add(QWEN, answer="From B.")
    running = await start(harness, hosts.setting(a, b), OLLAMA_MODEL="qwen3:8b")

    prompt = await harness.discord.send_user_message("which host?", mention_bot=True)
    assert await harness.wait_for_reply(int(prompt["id"])) == ["From B."]

    assert not a.chat_requests and len(b.chat_requests) == 1
    record = await running.services.answers.find_by_key(int(prompt["id"]))
    assert record is not None and record.host == b.url


async def test_a_host_with_the_model_loaded_is_preferred(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, answer="Cold start.")
    b = await hosts.add(LLAMA, answer="Already warm.")
    b.mark_loaded("llama3.2")
    running = await start(harness, hosts.setting(a, b))
    await pool_of(running).check_all()  # the pool reads /api/ps of every host

    assert await ask(harness, "hello") == ["Already warm."]
    assert not a.chat_requests


async def test_a_conversation_sticks_to_the_host_that_answered_it(harness: Harness, hosts: Hosts) -> None:
    long_answer = ChatScript(tokens=[f" w{i}" for i in range(60)], token_delay=0.1)
    scripts = {"long story": long_answer, "first question": ChatScript(tokens=["One."])}
    scripts["second question"] = ChatScript(tokens=["Two."])
    a = await hosts.add(LLAMA)
    b = await hosts.add(LLAMA)
    for host in (a, b):
        host.script_for = by_prompt(scripts)
        host.mark_loaded("llama3.2")
    # A serves four at once and B two, so "least busy for its capacity" tells them apart.
    running = await start(harness, f"{a.url}*4, {b.url}*2")
    await pool_of(running).check_all()

    await harness.discord.send_user_message("long story 1", mention_bot=True, channel_id=501)
    await a.wait_for_requests(1)  # both idle: the first host takes it; A is now 1/4 busy
    assert await finished_reply(harness, "first question") == ["One."]
    assert asked(b, "first question")  # B was idle
    await harness.discord.send_user_message("long story 2", mention_bot=True, channel_id=501)
    await b.wait_for_requests(2)  # B (0/2) was less busy than A (1/4); now B is 1/2, A 1/4

    # A is the less busy now, but channel 500's conversation was answered by B, which still has the model loaded.
    assert await finished_reply(harness, "second question") == ["Two."]
    assert asked(b, "second question") and not asked(a, "second question")
    assert len(a.chat_requests) == 1  # both long stories are still being told


async def test_no_head_of_line_blocking_and_positions_count_only_competitors(harness: Harness, hosts: Hosts) -> None:
    slow = ChatScript(tokens=[f" s{i}" for i in range(30)], token_delay=0.1)
    a = await hosts.add(LLAMA)
    a.script_for = by_prompt({"busy": slow, "queued": ChatScript(tokens=["Queued", " one."])})
    b = await hosts.add(QWEN, answer="Straight through.")
    running = await start(harness, hosts.setting(a, b, capacity=1))
    await running.services.store.set_many(Scope.channel(501), {"model": "qwen3:8b"})

    await harness.discord.send_user_message("busy", mention_bot=True)
    await a.wait_for_requests(1)
    waiting = await harness.discord.send_user_message("queued", mention_bot=True)
    await harness.discord.wait_for(lambda: _shows(harness, waiting, "you are next in line"))

    # A request for the other model does not wait behind the one queued for host A.
    assert await finished_reply(harness, "other model", channel_id=501) == ["Straight through."]
    assert len(a.chat_requests) == 1  # "queued" is still waiting for A
    assert await harness.wait_for_reply(int(waiting["id"]), timeout=15) == ["Queued one."]


async def finished_reply(harness: Harness, text: str, *, channel_id: int = 500) -> list[str]:
    """Ask, and wait for that reply to be final while other replies may still stream."""
    prompt = await harness.discord.send_user_message(text, mention_bot=True, channel_id=channel_id)

    def final() -> bool:
        parts = harness.replies_to(int(prompt["id"]))
        return bool(parts) and not any(p["content"].endswith(STREAMING_MARKER) for p in parts)

    await harness.discord.wait_for(final, 15)
    return [p["content"] for p in harness.replies_to(int(prompt["id"]))]


def _shows(harness: Harness, prompt: dict[str, Any], text: str) -> bool:
    parts = harness.replies_to(int(prompt["id"]))
    return bool(parts) and text in parts[0]["content"]


# ---- failover before the first token


async def _prefer_a(harness: Harness, hosts: Hosts, **env: str) -> tuple[FakeOllama, FakeOllama, RunningBot]:
    """Two hosts with the model; A has it loaded, so A gets the next question."""
    a = await hosts.add(LLAMA, answer="A answered.")
    b = await hosts.add(LLAMA, answer="B answered instead.")
    a.mark_loaded("llama3.2")
    running = await start(harness, hosts.setting(a, b), **env)
    await pool_of(running).check_all()
    return a, b, running


@pytest.mark.parametrize(
    "failure",
    [
        ChatScript(status=500, error="llama-server process has terminated: exit status 2"),
        ChatScript(status=503),  # "server busy, please try again.  maximum pending requests exceeded"
        ChatScript(status=404),  # model 'llama3.2' not found (on this host only)
        ChatScript(first_token_delay=30.0),  # past OLLAMA_FIRST_TOKEN_TIMEOUT
        ChatScript(tokens=[], error_after=0),  # an error line before any token
    ],
    ids=["5xx", "503-busy", "404-model-missing-here", "first-token-timeout", "error-before-first-token"],
)
async def test_a_failure_before_the_first_token_moves_the_request_to_another_host(
    harness: Harness, hosts: Hosts, failure: ChatScript
) -> None:
    a, b, _ = await _prefer_a(harness, hosts, OLLAMA_FIRST_TOKEN_TIMEOUT="1")
    a.scripts.append(failure)

    assert await ask(harness, "hello") == ["B answered instead."]  # and no error note at all
    assert len(a.chat_requests) == 1 and len(b.chat_requests) == 1


async def test_a_refused_connection_moves_the_request_and_takes_the_host_out(harness: Harness, hosts: Hosts) -> None:
    a, b, running = await _prefer_a(harness, hosts)
    await a.kill()  # the bot still believes A is up and has the model loaded

    assert await ask(harness, "hello") == ["B answered instead."]
    assert len(b.chat_requests) == 1
    status = next(s for s in pool_of(running).snapshots() if s.url == a.url)
    assert status.up is False and "refused" in (status.problem or "")


async def test_a_model_missing_here_only_is_forgotten_for_this_host(harness: Harness, hosts: Hosts) -> None:
    a, b, running = await _prefer_a(harness, hosts)
    del a.models["llama3.2:latest"]  # deleted behind the bot's back

    assert await ask(harness, "one") == ["B answered instead."]
    assert await ask(harness, "two", channel_id=501) == ["B answered instead."]
    assert len(a.chat_requests) == 1 and len(b.chat_requests) == 2  # A asked once; then the pool knew better
    assert pool_of(running).hosts[0].has("llama3.2") is False


async def test_when_no_host_can_answer_the_reply_names_each_host_and_why(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(LLAMA)
    a.default_script = ChatScript(status=500, error="unable to load full model on GPU")
    await start(harness, hosts.setting(a, b))
    await b.kill()

    [reply] = await ask(harness, "anyone?")
    assert "No Ollama host could answer with `llama3.2`" in reply
    assert f"{a.url}: error 500 (unable to load full model on GPU)" in reply
    assert f"{b.url}: connection refused" in reply


async def test_a_model_no_host_has_is_reported_as_missing_everywhere(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(GEMMA)
    await start(harness, hosts.setting(a, b), OLLAMA_MODEL="mistral")

    [reply] = await ask(harness, "anyone?")
    assert "Model `mistral` is not installed on any Ollama host" in reply
    assert f"{a.url}: model not installed" in reply and f"{b.url}: model not installed" in reply


# ---- hosts dying and coming back


async def test_a_host_dying_mid_answer_ends_the_reply_with_a_note_and_regenerate_uses_a_healthy_host(
    harness: Harness, hosts: Hosts
) -> None:
    a, b, running = await _prefer_a(harness, hosts)
    a.scripts.append(ChatScript(tokens=[f" part{i}" for i in range(100)], token_delay=0.05))
    prompt = await harness.discord.send_user_message("tell me", mention_bot=True)
    await harness.discord.wait_for(
        lambda: " part3" in "".join(p["content"] for p in harness.replies_to(int(prompt["id"])))
    )

    await a.kill()

    [reply] = await harness.wait_for_reply(int(prompt["id"]))
    assert reply.startswith(" part0 part1 part2 part3")  # the partial answer stays
    assert "The answer ended early" in reply and not reply.endswith(STREAMING_MARKER)
    assert pool_of(running).hosts[0].up is False

    message = harness.replies_to(int(prompt["id"]))[-1]
    buttons = {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}
    await harness.discord.click_button(int(message["id"]), buttons["Regenerate"])
    await harness.discord.wait_for(
        lambda: harness.discord.messages[int(message["id"])]["content"] == "B answered instead."
    )
    assert len(b.chat_requests) == 1


async def test_a_host_that_comes_back_is_probed_back_into_the_pool(harness: Harness, hosts: Hosts) -> None:
    a, b, running = await _prefer_a(harness, hosts)
    pool = pool_of(running)
    await a.kill()
    assert await ask(harness, "while A is down") == ["B answered instead."]
    assert pool.hosts[0].up is False and len(b.chat_requests) == 1

    await a.revive()
    a.mark_loaded("llama3.2")
    # Probes back off from about a second, at most OLLAMA_CHECK_INTERVAL (1 s here) apart.
    await harness.discord.wait_for(lambda: pool.hosts[0].up is True, timeout=10)
    assert await ask(harness, "and now?", channel_id=501) == ["A answered."]  # 500 sticks to B now


# ---- operations


async def test_status_lists_every_host(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, QWEN)
    b = await hosts.add(LLAMA)
    a.mark_loaded("qwen3:8b")
    await start(harness, f"{a.url}*4, {b.url}*2")
    await b.kill()

    text = await _command_answer(harness, "status")
    assert f"🟢 Ollama 0.32.15 at {a.url} · 0/4 busy · loaded: `qwen3:8b`" in text
    assert f"🔴 Ollama unreachable at {b.url}: connection refused · 0/2 busy" in text

    member = await _command_answer(harness, "status", user_id=201, permissions=str(1024 | 2048 | 65536))
    assert a.url not in member and b.url not in member
    assert "🟢 Ollama 0.32.15 (host 1) · 0/4 busy" in member and "🔴 host 2 is not answering right now" in member


async def test_models_says_which_hosts_have_each_model(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, QWEN)
    b = await hosts.add(LLAMA, GEMMA)
    b.mark_loaded("llama3.2")
    await start(harness, hosts.setting(a, b))
    label_a, label_b = (h.url.removeprefix("http://") for h in (a, b))

    text = await _command_answer(harness, "models")
    lines = {line.split(" ")[0]: line for line in text.splitlines()[1:]}
    assert lines["`llama3.2:latest`"].endswith(f"· on {label_a}, {label_b} · 🟢 loaded on {label_b}")
    assert lines["`qwen3:8b`"].endswith(f"· on {label_a}")
    assert lines["`gemma3:4b`"].endswith(f"· on {label_b}")
    assert text.startswith("**3 model(s) on 2 Ollama hosts**")


async def test_model_autocomplete_offers_every_hosts_models(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(QWEN)
    await start(harness, hosts.setting(a, b))

    token = await harness.discord.send_autocomplete("model", {"name": ""}, focused="name")

    def choices() -> list[dict[str, Any]] | None:
        for call in harness.discord.interaction_responses(token):
            if call.path.endswith("/callback") and call.json and call.json.get("type") == 8:
                found: list[dict[str, Any]] = call.json["data"]["choices"]
                return found
        return None

    await harness.discord.wait_for(lambda: choices() is not None)
    assert {c["value"] for c in choices() or []} == {"llama3.2:latest", "qwen3:8b"}


async def test_pull_goes_to_every_host_with_progress_per_host(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(QWEN)
    c = await hosts.add(LLAMA)
    for host in (a, b, c):
        host.pull_delay = 0.3  # about 3 s of progress lines
    await c.kill()
    await start(harness, hosts.setting(a, b, c), EDIT_INTERVAL="0.2")

    token = await harness.discord.send_slash_command("pull", {"name": "tinyllama"})
    await harness.discord.wait_for(lambda: (harness.discord.original_message(token) or {}).get("content"), 5)
    message_id = int(harness.discord.original_message(token)["id"])  # type: ignore[index]
    seen: list[str] = []

    def finished() -> bool:
        content = harness.discord.messages[message_id]["content"]
        seen.append(content)
        return content.startswith(("✅", "⚠️", "❌"))

    await harness.discord.wait_for(finished, 20)
    final = harness.discord.messages[message_id]["content"]
    label = {h: h.url.removeprefix("http://") for h in (a, b, c)}
    assert final.startswith("⚠️ Pulled `tinyllama` on 2 of 3 hosts")
    assert f"`{label[a]}` ✅ Pulled `tinyllama`" in final and f"`{label[b]}` ✅ Pulled `tinyllama`" in final
    assert f"`{label[c]}` ❌ Pull of `tinyllama` failed: cannot reach Ollama at {c.url}" in final
    assert any("⬇️ Pulling `tinyllama` on 3 hosts" in text and "%" in text for text in seen)  # live progress
    assert PULLABLE_EXTRA.name in a.models and PULLABLE_EXTRA.name in b.models


async def test_pull_onto_one_host(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(LLAMA)
    await start(harness, hosts.setting(a, b))

    token = await harness.discord.send_slash_command(
        "pull", {"name": "tinyllama", "host": b.url.removeprefix("http://")}
    )
    await harness.discord.wait_for(
        lambda: ((harness.discord.original_message(token) or {}).get("content") or "").startswith("✅"), 20
    )
    assert PULLABLE_EXTRA.name in b.models and PULLABLE_EXTRA.name not in a.models


async def test_pull_to_an_unknown_host_is_refused(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA)
    b = await hosts.add(LLAMA)
    await start(harness, hosts.setting(a, b))

    text = await _command_answer(harness, "pull", {"name": "tinyllama", "host": "gpu-z:11434"})
    assert text.startswith("There is no Ollama host `gpu-z:11434`.")
    assert not [r for h in (a, b) for r in h.requests if r.path == "/api/pull"]


async def _command_answer(harness: Harness, name: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    token = await harness.discord.send_slash_command(name, options, **kw)
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("content")))
    message = harness.discord.original_message(token)
    assert message is not None
    content: str = message["content"]
    return content


async def test_delete_from_every_host_that_has_the_model(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, GEMMA)
    b = await hosts.add(LLAMA)
    await start(harness, hosts.setting(a, b))
    label_a, label_b = (h.url.removeprefix("http://") for h in (a, b))

    token = await harness.discord.send_slash_command("delete", {"name": "gemma3:4b"})
    await harness.discord.wait_for(lambda: bool((harness.discord.original_message(token) or {}).get("components")))
    original = harness.discord.original_message(token)
    assert original is not None
    assert original["content"].startswith("Delete `gemma3:4b` from every Ollama host that has it (2 hosts)?")
    buttons = {c["label"]: c["custom_id"] for row in original["components"] for c in row["components"]}
    await harness.discord.click_button(int(original["id"]), buttons["Delete"])
    await harness.discord.wait_for(lambda: not (harness.discord.original_message(token) or {}).get("components"))

    text = (harness.discord.original_message(token) or {})["content"]
    assert text == f"🗑️ Deleted `gemma3:4b` from `{label_a}`.\n`gemma3:4b` was not installed on `{label_b}`."
    assert "gemma3:4b" not in a.models and "llama3.2:latest" in a.models


async def test_check_reports_every_host(harness: Harness, hosts: Hosts) -> None:
    import io

    from bot.__main__ import run_check

    a = await hosts.add(LLAMA)
    b = await hosts.add(QWEN)
    c = await hosts.add(LLAMA)
    await c.kill()
    out = io.StringIO()
    assert await run_check(harness.settings(OLLAMA_HOST=f"{a.url}*4, {b.url}, {c.url}"), out) == 1
    report = out.getvalue()
    assert f"✅ Ollama 0.32.15 answers at {a.url} (4 at once; has llama3.2:latest)" in report
    assert f"✅ Ollama 0.32.15 answers at {b.url} (1 at once; does not have llama3.2)" in report
    assert f"❌ Can't reach Ollama at {c.url}" in report
    assert "✅ default model llama3.2:latest is installed on 1 of 3 hosts" in report


async def test_metrics_are_labelled_by_host(harness: Harness, hosts: Hosts) -> None:
    a = await hosts.add(LLAMA, answer="From A.")
    b = await hosts.add(LLAMA)
    b.default_script = ChatScript(status=500, error="unable to load full model on GPU")
    running = await start(harness, f"{a.url}*3, {b.url}*2")
    pool_of(running).hosts[1].loaded.add("llama3.2:latest")  # B looks best, so it is tried first and fails over

    assert await ask(harness, "count me") == ["From A."]
    text = running.services.metrics.render()
    assert f'ollacord_ollama_host_requests_total{{host="{a.url}"}} 1.0' in text
    assert f'ollacord_ollama_host_requests_total{{host="{b.url}"}} 1.0' in text
    assert f'ollacord_ollama_host_errors_total{{host="{b.url}",kind="http"}} 1.0' in text
    assert f'ollacord_ollama_host_capacity{{host="{a.url}"}} 3.0' in text
    assert f'ollacord_ollama_host_up{{host="{a.url}"}} 1.0' in text
    assert f'ollacord_ollama_host_active{{host="{a.url}"}} 0.0' in text
    assert f'ollacord_ollama_host_queue{{host="{b.url}"}} 0.0' in text
