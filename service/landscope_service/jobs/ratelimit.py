"""Per-tenant submission rate limit: a fixed one-minute window counted in Redis.

The clock is injected (``clock``: UNIX seconds), so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from .errors import TooManyRequestsError

__all__ = ["SubmitRateLimiter"]


@dataclass
class SubmitRateLimiter:
    """At most ``limit_per_min`` submissions per tenant per clock minute (0: off)."""

    client: redis.Redis
    limit_per_min: int
    clock: Callable[[], float] = field(default=time.time)

    def hit(self, tenant: str) -> None:
        """Count one submission; raise :class:`TooManyRequestsError` above the limit."""
        limit = self.limit_per_min
        if limit <= 0:
            return
        now = self.clock()
        window = int(now // 60)
        key = f"ls:rate:{tenant}:{window}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
        if count > limit:
            retry = max(1, int(60 - now % 60))
            raise TooManyRequestsError(
                f"More than {limit} submissions in this minute for this API key; retry in "
                f"{retry} s.", code="rate_limited", retry_after=retry)
