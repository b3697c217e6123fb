"""Values built from the database, kept in this worker under the states they were built from.

A value is stored under a key (what it is: "the network configuration", "the Authentication
singleton") together with a token: the states of the object types it was read from
(registry.ObjectState). A caller that reads newer states gets a token that no longer matches
and the value is built again, so every worker sees every change on its next request without
any message between workers. A time-to-live bounds what the states cannot see (an expiry
passing without a change).

This is the one such memo of the project: the tests' set-up calls clear() once, since the
database rows (and with them the states) roll back between tests while the worker stays.

A value built inside a transaction that has moved a state (bump_state calls changed()) was
read from rows no other connection sees yet, under a state number that a rollback hands out
again, later, for other contents. Such a value is kept only as long as its transaction may
still commit: it carries the transaction's marker, an on_commit callback, and counts only once
the marker has run (committed) or, for the connection that built it, while the marker is still
pending (not rolled back). Django itself drops the callbacks of a rolled-back transaction or
savepoint, so a rollback needs no hook of ours.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.db import connection, transaction

T = TypeVar("T")


class _Pending:
    """The on_commit marker of a transaction that moved a state: true once it committed."""

    __slots__ = ("committed",)

    def __init__(self):
        self.committed = False

    def __call__(self):
        self.committed = True


_entries: dict[Hashable, tuple[Hashable, float | None, object, _Pending | None]] = {}


def _pending() -> _Pending | None:
    """The innermost uncommitted marker of this connection's transaction, if it moved a state."""
    if not connection.in_atomic_block:
        return None
    for _sids, func, _robust in reversed(connection.run_on_commit):
        if isinstance(func, _Pending):
            return func
    return None


def changed() -> None:
    """Called inside the transaction of every state change (registry.services.bump_state)."""
    if not connection.in_atomic_block:
        return
    current = set(connection.savepoint_ids)
    for sids, func, _robust in connection.run_on_commit:
        if isinstance(func, _Pending) and sids == current:
            return
    transaction.on_commit(_Pending())


def _valid(marker: _Pending | None) -> bool:
    if marker is None or marker.committed:
        return True
    # Not committed: good only for the transaction that built it, until it rolls back.
    return connection.in_atomic_block and any(func is marker for _s, func, _r in connection.run_on_commit)


def _fresh(entry, token: Hashable) -> bool:
    return (entry is not None and entry[0] == token and (entry[1] is None or entry[1] > time.monotonic())
            and _valid(entry[3]))


def get(key: Hashable, token: Hashable, build: Callable[[], T], ttl: float | None = None) -> T:
    """The value kept under `key` for `token`, built (and kept) when missing, stale or expired.

    Values are shared by every request of the worker: callers must treat them as read-only.
    """
    entry = _entries.get(key)
    # The check of _fresh(), inline: this is on every request's path.
    if (entry is not None and entry[0] == token and (entry[1] is None or entry[1] > time.monotonic())
            and _valid(entry[3])):
        return entry[2]  # type: ignore[return-value]
    value = build()
    _entries[key] = (token, time.monotonic() + ttl if ttl else None, value, _pending())
    return value


def peek(key: Hashable, token: Hashable):
    """The value kept under `key` for `token`, or None when there is none (or it is stale): never
    built here, for a caller that must not query (it falls back on the slower path)."""
    entry = _entries.get(key)
    return entry[2] if _fresh(entry, token) else None  # type: ignore[index]


def forget(key: Hashable) -> None:
    """Drop one value, so that the next get() builds it again whatever the token."""
    _entries.pop(key, None)


def clear() -> None:
    """Drop every value (the tests' set-up: their database states roll back between tests)."""
    _entries.clear()
