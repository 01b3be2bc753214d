"""End to end: many replies streaming at once stay under Discord's global limit, which the fake enforces.

The fake Discord answers the request over its global limit with a global 429 (`"global": true`,
`X-RateLimit-Global: true`, `X-RateLimit-Scope: global`), the way Discord does. A scaled-down limit (10
requests per second instead of 50) keeps the test short: the bot is given the same rate, as the composition
root would give it its share of the real one.
"""

from __future__ import annotations

import functools

import pytest

from bot.__main__ import build_services
from bot.streaming.relay import STREAMING_MARKER
from tests.conftest import Harness
from tests.fakes.fake_ollama import ChatScript

RATE = 10
CHANNELS = range(500, 508)


@pytest.fixture
def scaled_down(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> Harness:
    harness.discord.global_limit = (RATE, 1.0)
    monkeypatch.setattr("tests.conftest.build_services", functools.partial(build_services, discord_rate=RATE))
    return harness


def tokens(channel: int) -> list[str]:
    return [f"Answer {channel}:", *(f" w{i}" for i in range(40))]


async def test_many_replies_at_once_earn_no_global_429(scaled_down: Harness) -> None:
    harness = scaled_down
    for channel in CHANNELS:
        if channel not in harness.discord.channel_ids:
            await harness.discord.add_channel(channel)

    def script(body: dict[str, object]) -> ChatScript:
        messages = body.get("messages")
        assert isinstance(messages, list)
        channel = int(str(messages[-1]["content"]).rsplit(" ", 1)[-1])
        return ChatScript(tokens=tokens(channel), token_delay=0.05)

    harness.ollama.script_for = script
    await harness.start_bot(harness.settings(MAX_CONCURRENT_REQUESTS="16", USER_REQUESTS_PER_MINUTE="0"))

    prompts = [
        await harness.discord.send_user_message(f"go {channel}", mention_bot=True, channel_id=channel)
        for channel in CHANNELS
    ]
    for channel, prompt in zip(CHANNELS, prompts, strict=True):
        parts = await harness.wait_for_reply(int(prompt["id"]), timeout=30)
        assert parts == ["".join(tokens(channel))]

    assert harness.discord.global_rate_limited == 0
    assert harness.discord.busiest_window(1.0) <= RATE
    assert harness.discord.rate_limited == 0  # the per-channel budget still holds inside the global one
    assert not any(m["content"].endswith(STREAMING_MARKER) for m in harness.discord.bot_messages())


async def test_the_fake_answers_a_global_429_like_discord(harness: Harness) -> None:
    import aiohttp

    harness.discord.global_limit = (2, 1.0)
    headers = {"Authorization": "Bot fake-token"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(2):
            async with session.get(f"{harness.discord.base_url}/users/@me") as response:
                assert response.status == 200
        async with session.get(f"{harness.discord.base_url}/users/@me") as response:
            assert response.status == 429
            assert response.headers["X-RateLimit-Global"] == "true"
            assert response.headers["X-RateLimit-Scope"] == "global"
            assert "Via" in response.headers
            body = await response.json()
            assert body["global"] is True and 0 < body["retry_after"] <= 1.0
        # Interaction callbacks are not bound by the global limit.
        async with session.post(f"{harness.discord.base_url}/interactions/1/none/callback") as response:
            assert response.status != 429
    assert harness.discord.global_rate_limited == 1
