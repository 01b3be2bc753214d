"""Retry delays that grow, stay bounded and are jittered, so many restarting bots do not retry in step."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays for successive retries: `first`, then `factor` times longer each time, never above `cap`.

    Each delay is shortened by a random part of up to `jitter` (0.5: between half and all of it), so
    processes that failed together (a network outage) do not all come back at the same moment.
    """

    def __init__(
        self,
        *,
        first: float,
        cap: float,
        factor: float = 2.0,
        jitter: float = 0.5,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < first <= cap or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("need 0 < first <= cap, factor >= 1 and 0 <= jitter <= 1")
        self._first = first
        self._cap = cap
        self._factor = factor
        self._jitter = jitter
        self._random_fraction = random_fraction
        self._attempts = 0

    def next_delay(self) -> float:
        """The delay before the next retry."""
        # min() before the power would overflow: growth stops once the cap is reached anyway.
        ceiling = self._first
        for _ in range(self._attempts):
            ceiling = min(ceiling * self._factor, self._cap)
            if ceiling == self._cap:
                break
        self._attempts += 1
        return ceiling * (1 - self._jitter * self._random_fraction())
