"""A job-wide rate limit shared by array tasks that cannot talk to each other.

Each task takes ``limit / running_tasks`` of the budget, counting running tasks from the live
lease heartbeats in the run directory (so 2 tasks of a throttle-8 array use the whole budget),
times an AIMD multiplier: halved on a 429, raised a step every quiet second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Async token bucket; the rate may change between calls; at most ~1 s of burst."""

    def __init__(self, rate: Callable[[], float], clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = 1.0
        self.last = clock()
        self.lock = asyncio.Lock()  # first come, first served

    def _refill(self, rate: float) -> None:
        now = self.clock()
        self.tokens = min(max(1.0, rate), self.tokens + (now - self.last) * rate)
        self.last = now

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                rate = self.rate()
                self._refill(rate)
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await self.sleep((1.0 - self.tokens) / rate)


class SharedRate:
    """This task's share of a job-wide limit (AIMD on top of limit / running tasks)."""

    DECREASE = 0.5
    INCREASE = 0.05  # per quiet second
    FLOOR = 0.05

    def __init__(self, limit: float, running_tasks: Callable[[], int],
                 refresh_s: float = 2.0, clock: Clock = time.monotonic,
                 expected_tasks: int = 1) -> None:
        self.limit = limit
        self.running_tasks = running_tasks
        self.refresh_s = refresh_s
        self.clock = clock
        self.multiplier = 1.0
        # Tasks of an array start together and cannot yet see each other's leases: assume
        # the expected number is running until the first count says otherwise.
        self.tasks = max(1, running_tasks(), expected_tasks)
        self.counted_at = clock()
        self.last_throttle = -1e9
        self.last_raise = clock()
        self.throttles = 0

    def __call__(self) -> float:
        now = self.clock()
        if now - self.counted_at >= self.refresh_s:
            self.tasks = max(1, self.running_tasks())
            self.counted_at = now
        quiet = now - max(self.last_throttle, self.last_raise)
        if quiet >= 1.0 and self.multiplier < 1.0:
            self.multiplier = min(1.0, self.multiplier + self.INCREASE * int(quiet))
            self.last_raise = now
        return self.limit / self.tasks * self.multiplier

    def throttled(self) -> None:
        """A 429: back off multiplicatively (once per second: a burst of 429s is one signal)."""
        self.throttles += 1
        now = self.clock()
        if now - self.last_throttle >= 1.0:
            self.multiplier = max(self.FLOOR, self.multiplier * self.DECREASE)
        self.last_throttle = now
