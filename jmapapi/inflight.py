"""Per-account counters of requests in flight (maxConcurrentRequests, maxConcurrentUpload), in the
shared cache so that every worker counts against one limit; and the event stream that holds one
(the EventSource, the delivery test) for as long as it is open."""
from __future__ import annotations

from django.core.cache import cache
from django.http import StreamingHttpResponse

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


class SlotStream(StreamingHttpResponse):
    """A server-sent event stream holding the account's slot of `kind` (taken with acquire():
    `taken` is its answer), given back when the response is closed: the ASGI handler closes
    every streaming response once it ends, however (stalwart_site.asgi), even one whose stream
    never started because its client left at once."""

    def __init__(self, body, kind: str, account_id: int, taken: bool | None):
        super().__init__(body, content_type="text/event-stream")
        self._slot = (kind, account_id) if taken else None
        self["Cache-Control"] = "no-store"
        # A buffering proxy (nginx) would hold the frames back.
        self["X-Accel-Buffering"] = "no"

    def close(self):
        try:
            super().close()
        finally:
            if self._slot is not None:
                slot, self._slot = self._slot, None
                release(*slot)
