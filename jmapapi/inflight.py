"""Per-account counters of requests in flight (maxConcurrentRequests, maxConcurrentUpload), in the
shared cache so that every worker counts against one limit."""
from __future__ import annotations

from django.core.cache import cache

# A slot a crashed worker never gave back ends with this; a request lasting longer is not counted.
TTL = 300


def acquire(kind: str, account_id: int, limit: int | None) -> bool | None:
    """Take a slot: True when taken, False when `limit` slots are already taken, None when there
    is no limit (nothing to give back)."""
    if limit is None:
        return None
    key = _key(kind, account_id)
    cache.add(key, 0, TTL)
    try:
        current = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, TTL)
        current = 1
    if current > limit:
        release(kind, account_id)
        return False
    return True


def release(kind: str, account_id: int) -> None:
    try:
        cache.decr(_key(kind, account_id))
    except ValueError:
        pass


def _key(kind: str, account_id: int) -> str:
    return f"jmap-{kind}:{account_id}"
