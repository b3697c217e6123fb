"""Values built from the database, kept in this worker under the states they were built from.

A value is stored under a key (what it is: "the network configuration", "the Authentication
singleton") together with a token: the states of the object types it was read from
(registry.ObjectState). A caller that reads newer states gets a token that no longer matches
and the value is built again, so every worker sees every change on its next request without
any message between workers. A time-to-live bounds what the states cannot see (an expiry
passing without a change).

This is the one such memo of the project: the tests' set-up calls clear() once, since the
database rows (and with them the states) roll back between tests while the worker stays.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_entries: dict[Hashable, tuple[Hashable, float | None, object]] = {}


def get(key: Hashable, token: Hashable, build: Callable[[], T], ttl: float | None = None) -> T:
    """The value kept under `key` for `token`, built (and kept) when missing, stale or expired.

    Values are shared by every request of the worker: callers must treat them as read-only.
    """
    entry = _entries.get(key)
    if entry is not None and entry[0] == token and (entry[1] is None or entry[1] > time.monotonic()):
        return entry[2]  # type: ignore[return-value]
    value = build()
    _entries[key] = (token, time.monotonic() + ttl if ttl else None, value)
    return value


def forget(key: Hashable) -> None:
    """Drop one value, so that the next get() builds it again whatever the token."""
    _entries.pop(key, None)


def clear() -> None:
    """Drop every value (the tests' set-up: their database states roll back between tests)."""
    _entries.clear()
