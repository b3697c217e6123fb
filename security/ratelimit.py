"""Fixed-window rate limits, as in the reference: one counter per subject and window in the
cache, so that every gunicorn worker (and every node, with REDIS_URL) shares it.

A window is `period` seconds long and aligned on multiples of it; every call counts, refused
ones included; the call is allowed while the count after it is at most `limit`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int  # events in this window, this one included
    limit: int
    remaining: int
    reset: int  # seconds until the window ends
    window: int  # the window length in seconds

    def headers(self) -> dict[str, str]:
        """The 429 headers of the reference (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "Retry-After": str(self.reset),
            "RateLimit-Policy": f'"requests";q={self.limit};w={self.window}',
            "RateLimit": f'"requests";r={self.remaining};t={self.reset}',
        }


def hit(key: str, limit: int, period_s: float, *, now: float | None = None) -> Verdict:
    """Count one event for `key` in its current window of `period_s` seconds."""
    window = max(1, int(period_s))
    now = time.time() if now is None else now
    index = int(now // window)
    reset = max(1, window - int(now % window))
    full = f"rl:{key}:{window}:{index}"
    # The counter expires with its window (plus a second, so it never vanishes mid-window).
    if cache.add(full, 1, reset + 1):
        count = 1
    else:
        try:
            count = cache.incr(full)
        except ValueError:  # expired between add and incr
            cache.add(full, 1, reset + 1)
            count = 1
    return Verdict(count <= limit, count, limit, max(0, limit - count), reset, window)
