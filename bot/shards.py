"""Which of the bot's Discord shards this instance serves (SHARD_COUNT, SHARD_IDS), and what that implies.

Discord splits a bot's servers over shards by `shard_id = (guild_id >> 22) % shard_count`; DMs always go
to shard 0 (Discord's gateway docs, "Sharding"). Without SHARD_COUNT, discord.py's automatic sharding asks
Discord how many shards to run (GET /gateway/bot) and runs them all in this process. With SHARD_COUNT and
SHARD_IDS, instances split the shards between them; every group of shards has its own active/standby lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MAX_SHARDS", "ShardPlan", "parse_shard_ids"]

# Far beyond any bot's needs (Discord asks for one shard per 1,000–2,500 servers); bounds typos like 1e9.
MAX_SHARDS = 65_536


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """`count` None: as many shards as Discord recommends, all here. `ids` None: all `count` shards here."""

    count: int | None = None
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.ids is not None and self.count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT")
        if self.count is not None and not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"SHARD_COUNT must be between 1 and {MAX_SHARDS}")
        if self.ids is not None:
            assert self.count is not None
            if not self.ids:
                raise ValueError("SHARD_IDS names no shard")
            if len(set(self.ids)) != len(self.ids):
                raise ValueError("SHARD_IDS names a shard twice")
            if not all(0 <= shard < self.count for shard in self.ids):
                raise ValueError(f"shard ids go from 0 to SHARD_COUNT-1 ({self.count - 1})")

    @property
    def group(self) -> str:
        """A stable name of the shards this instance serves; instances with the same group are each other's standbys."""
        if self.count is None:
            return "auto"
        if self.ids is None:
            return f"{self.count}:all"
        return f"{self.count}:{','.join(str(shard) for shard in sorted(self.ids))}"

    @property
    def token_share(self) -> float:
        """The fraction of the token's shards this instance serves while active (1.0 when it serves them all)."""
        if self.count is None or self.ids is None:
            return 1.0
        return len(self.ids) / self.count

    @property
    def instances_sharing_token(self) -> int:
        """How many active instances use the same token at once, counting groups of this one's size.

        A process-wide Discord budget is divided by this (standbys don't talk to Discord, so they don't count).
        """
        return max(1, math.ceil(1 / self.token_share - 1e-9))

    def describe(self) -> str:
        """One line for the log."""
        if self.count is None:
            return "as many shards as Discord recommends"
        if self.ids is None:
            return f"all {self.count} shards"
        return f"shards {', '.join(str(shard) for shard in self.ids)} of {self.count}"


def parse_shard_ids(raw: str) -> tuple[int, ...]:
    """`0,1,2` or ranges like `0-3,8`; raise ValueError on anything else."""
    ids: list[int] = []
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"{part!r} is not a shard id or a range like 0-3")
        low, high = int(first), int(last) if dash else int(first)
        if high < low or high - low >= MAX_SHARDS:
            raise ValueError(f"{part!r} is not a range from a lower to a higher id")
        ids.extend(range(low, high + 1))
    return tuple(ids)
