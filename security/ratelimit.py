"""Fixed-window rate limits, as in the reference: one counter per subject and window.

A window is `period` seconds long and aligned on multiples of it; every call counts, refused
ones included; the call is allowed while the count after it is at most `limit`.

The counters are shared by every gunicorn worker: in Redis when REDIS_URL is set (and so by
every node), otherwise in a small SQLite file of their own under the var directory (one
atomic upsert per count; never the main database, whose writers they would queue behind).
Django's local-memory cache would give each worker its own counters, multiplying every limit
by the number of workers.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
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


class _SqliteCounters:
    PURGE_EVERY = 60.0

    def __init__(self):
        self._lock = threading.Lock()
        self._conn = None
        self._pid = None
        self._purged = 0.0
        self.path: Path | None = None  # default: <var dir>/ratelimit.sqlite3

    def use(self, path: Path) -> None:
        """Keep the counters in another file (the test suite: one of its own per run)."""
        with self._lock:
            self.path, self._conn = Path(path), None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked worker opens its own
            path = self.path or Path(settings.VAR_DIR) / "ratelimit.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # counters may be lost with the machine, not corrupted
            conn.execute("CREATE TABLE IF NOT EXISTS counter (key TEXT PRIMARY KEY, count INTEGER NOT NULL, "
                         "expires REAL NOT NULL) WITHOUT ROWID")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def incr(self, key: str, expires: float, now: float) -> int:
        with self._lock:
            conn = self._connection()
            (count,) = conn.execute(
                "INSERT INTO counter (key, count, expires) VALUES (?, 1, ?) "
                "ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count", (key, expires)).fetchone()
            if now - self._purged > self.PURGE_EVERY:
                self._purged = now
                conn.execute("DELETE FROM counter WHERE expires < ?", (now,))
            return count

    def reset(self) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM counter")


_sqlite = _SqliteCounters()


def _incr_cache(key: str, ttl: int) -> int:
    if cache.add(key, 1, ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, ttl)
        return 1


def hit(key: str, limit: int, period_s: float, *, now: float | None = None) -> Verdict:
    """Count one event for `key` in its current window of `period_s` seconds."""
    window = max(1, int(period_s))
    now = time.time() if now is None else now
    index = int(now // window)
    reset = max(1, window - int(now % window))
    full = f"rl:{key}:{window}:{index}"
    # The counter expires with its window (plus a second, so it never vanishes mid-window).
    if getattr(settings, "REDIS_URL", None):
        count = _incr_cache(full, reset + 1)
    else:
        count = _sqlite.incr(full, now + reset + 1, now)
    return Verdict(count <= limit, count, limit, max(0, limit - count), reset, window)


def reset() -> None:
    """Forget every counter of the SQLite store (with Redis, the counters expire with the cache)."""
    if not getattr(settings, "REDIS_URL", None):
        _sqlite.reset()
