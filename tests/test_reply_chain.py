"""Walking reply chains with as few Discord requests as possible (the pure walker, with a scripted reader)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.answers.reply_chain import ChainLink, walk_reply_chain
from bot.conversation import ChatRecord

CHANNEL = 500
PARENT_CHANNEL = 400


def link(i: int, parent: int | None, *, bot: bool = False, channel: int = CHANNEL, **extra: object) -> ChainLink:
    record = ChatRecord(
        id=i, author_id=100 if bot else 200, author_name="b" if bot else "a", content=f"m{i}", from_bot=bot
    )
    return ChainLink(record=record, channel_id=channel, parent_id=parent, **extra)  # type: ignore[arg-type]


@dataclass
class ScriptedReader:
    """Messages in a channel, of which the newest `window` are returned by one bulk read."""

    messages: dict[int, ChainLink]
    window: int = 100
    cached: set[int] = field(default_factory=set)
    records: dict[int, ChainLink] = field(default_factory=dict)
    starter: ChainLink | None = None
    calls: list[str] = field(default_factory=list)

    def known(self, message_id: int) -> ChainLink | None:
        return self.messages.get(message_id) if message_id in self.cached else None

    async def recorded(self, message_id: int) -> ChainLink | None:
        return self.records.get(message_id)

    async def read_window(self) -> Iterable[ChainLink]:
        self.calls.append("window")
        ids = sorted(i for i, m in self.messages.items() if m.channel_id == CHANNEL)[-self.window :]
        return [self.messages[i] for i in ids]

    async def fetch(self, channel_id: int, message_id: int) -> Iterable[ChainLink]:
        self.calls.append(f"get {message_id}")
        found = self.messages.get(message_id)
        if found is None or found.channel_id != channel_id:
            return []
        parent = self.messages.get(found.parent_id) if found.parent_id else None
        return [found, *([parent] if parent else [])]

    def thread_starter(self, top: ChainLink) -> tuple[int, int] | None:
        return None if self.starter is None else (self.starter.channel_id, self.starter.record.id)


def linear_chain(length: int, *, first: int = 1) -> dict[int, ChainLink]:
    """first <- first+1 <- ... alternating user and bot messages, each replying to the previous one."""
    out: dict[int, ChainLink] = {}
    for n in range(length):
        i = first + n
        out[i] = link(i, i - 1 if n else None, bot=n % 2 == 1)
    return out


async def test_cold_chain_within_the_window_costs_one_request() -> None:
    messages = linear_chain(25)
    prompt = link(26, 25)
    reader = ScriptedReader(messages)
    chain = await walk_reply_chain(prompt, reader, limit=50)
    assert [r.id for r in chain.records] == list(range(1, 27))
    assert chain.requests == 1 and reader.calls == ["window"]
    assert not chain.cut


async def test_warm_cache_and_embedded_parents_cost_nothing() -> None:
    messages = linear_chain(12)
    reader = ScriptedReader(messages, cached=set(messages))
    chain = await walk_reply_chain(link(13, 12), reader, limit=50, seen=[messages[12]])
    assert [r.id for r in chain.records] == list(range(1, 14))
    assert chain.requests == 0 and reader.calls == []


async def test_branch_follows_parents_not_channel_order() -> None:
    # 1 <- 2 <- 3 <- 4 ; a reply to the old answer 2 starts a branch: 5 <- 6 replies to 2.
    messages = linear_chain(4)
    messages[5] = link(5, 2)
    messages[6] = link(6, 5, bot=True)
    reader = ScriptedReader(messages)
    chain = await walk_reply_chain(link(7, 6), reader, limit=50)
    assert [r.id for r in chain.records] == [1, 2, 5, 6, 7]


async def test_parent_older_than_the_window_is_fetched_singly() -> None:
    messages = linear_chain(4)
    # 150 unrelated messages push the chain out of a 100-message window.
    for i in range(10, 160):
        messages[i] = link(i, None)
    messages[200] = link(200, 4, bot=True)
    reader = ScriptedReader(messages)
    chain = await walk_reply_chain(link(201, 200), reader, limit=50)
    assert [r.id for r in chain.records] == [1, 2, 3, 4, 200, 201]
    # One window (brings 200), then GET 4 (brings 3 embedded), GET 2 (brings 1 embedded).
    assert reader.calls == ["window", "get 4", "get 2"]


async def test_deleted_message_ends_the_chain_without_asking_twice() -> None:
    messages = linear_chain(6)
    del messages[3]
    reader = ScriptedReader(messages)
    chain = await walk_reply_chain(link(7, 6), reader, limit=50)
    assert [r.id for r in chain.records] == [4, 5, 6, 7]
    assert reader.calls == ["window", "get 3"]


async def test_parent_known_deleted_costs_nothing() -> None:
    reader = ScriptedReader({})
    chain = await walk_reply_chain(link(7, 6, parent_deleted=True), reader, limit=50)
    assert [r.id for r in chain.records] == [7] and reader.calls == []


async def test_answer_records_replace_requests_and_carry_ask_questions() -> None:
    question = ChatRecord(id=900, author_id=200, author_name="a", content="the /ask question", from_bot=False)
    answer = link(901, None, bot=True, question=question)
    reader = ScriptedReader({}, records={901: answer})
    chain = await walk_reply_chain(link(902, 901), reader, limit=50)
    assert [r.content for r in chain.records] == ["the /ask question", "m901", "m902"]
    assert reader.calls == []


async def test_history_limit_keeps_the_newest_and_says_so() -> None:
    reader = ScriptedReader(linear_chain(30))
    chain = await walk_reply_chain(link(31, 30), reader, limit=10)
    assert [r.id for r in chain.records] == list(range(22, 32))
    assert chain.cut


async def test_chain_crosses_into_the_thread_starter_message() -> None:
    starter = link(50, 49, bot=True, channel=PARENT_CHANNEL)
    question = link(49, None, channel=PARENT_CHANNEL)
    reader = ScriptedReader({49: question, 50: starter}, starter=starter)
    chain = await walk_reply_chain(link(60, None), reader, limit=50)
    assert [r.id for r in chain.records] == [49, 50, 60]
    # The thread's window does not hold the parent channel's messages: one GET brings the starter and its parent.
    assert reader.calls == ["get 50"]


async def test_ask_answer_part_without_parent_finds_its_question_in_the_records() -> None:
    question = ChatRecord(id=900, author_id=200, author_name="a", content="the /ask question", from_bot=False)
    whole = ChainLink(
        record=ChatRecord(902, 100, "b", "part one part two", True), channel_id=CHANNEL, question=question
    )
    reader = ScriptedReader({902: link(902, None, bot=True)}, cached={902}, records={902: whole})
    chain = await walk_reply_chain(link(903, 902), reader, limit=50)
    assert [r.content for r in chain.records] == ["the /ask question", "part one part two", "m903"]
    assert reader.calls == []
