"""Tells the other workers and nodes that a journaled write committed, through Redis.

With REDIS_URL set, every commit that moved an account's states publishes one message on the
push channel: `{"a": <account id>, "s": {"<type>": <new state>, ...}}`. Each worker that holds
EventSource connections listens on the channel once (jmapapi.push), whatever the number of its
connections. Without Redis nothing is published: the listening workers read the counters
instead (the embedded default; docs/push.md).

The message is sent after the commit (transaction.on_commit), so a listener never announces a
state a reader cannot see yet; a failed publish is logged and never fails the write, whose
data is already committed (a listener that missed it catches up at its next re-read).
"""
from __future__ import annotations

import json
import logging
import threading

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

_local = threading.local()
_failing = False


def channel() -> str:
    return settings.PUSH_CHANNEL


# Called in the committing process, after the commit, with (account id, {type: state}): the
# layers above that act on changes (Web Push) register here, since the journal imports none of them.
_listeners: list = []


def listen(fn) -> None:
    """Have fn(account_id, states) called after every commit that moved an account's states.
    It runs in the committing thread right after the commit: it must only hand the work over."""
    if fn not in _listeners:
        _listeners.append(fn)


def publish_on_commit(account_id: int, states: dict[str, int]) -> None:
    """Publish `states` of `account_id` once the current transaction commits (Redis only), and
    tell this process's listeners."""
    if not states:
        return
    if _listeners:
        frozen = dict(states)
        transaction.on_commit(lambda: _tell(account_id, frozen))
    if not settings.REDIS_URL:
        return
    message = json.dumps({"a": account_id, "s": states}, separators=(",", ":"))
    transaction.on_commit(lambda: _publish(message))


def _tell(account_id: int, states: dict[str, int]) -> None:
    for fn in tuple(_listeners):
        try:
            fn(account_id, states)
        except Exception:  # a listener's bug must not turn a committed write into an error
            log.exception("journal: a change listener failed")


def decode(raw: bytes | str) -> tuple[int, dict[str, int]] | None:
    """A message's (account id, {type: state}), or None for anything else on the channel."""
    try:
        data = json.loads(raw)
        account_id, states = data["a"], data["s"]
        if not isinstance(account_id, int) or not isinstance(states, dict):
            return None
        return account_id, {str(t): int(v) for t, v in states.items()}
    except (ValueError, KeyError, TypeError):
        return None


def _client():
    client = getattr(_local, "client", None)
    if client is None:
        # why: redis is only needed when REDIS_URL is set; the embedded default never loads it.
        import redis

        client = _local.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                                      socket_connect_timeout=2)
    return client


def _publish(message: str) -> None:
    global _failing
    try:
        _client().publish(channel(), message)
    except Exception as exc:  # a Redis outage must not turn a committed write into an error
        if not _failing:
            log.warning("push: could not publish a journal change to Redis (%s); listeners will "
                        "catch up when it is back", exc.__class__.__name__)
        _failing = True
        _local.client = None
    else:
        _failing = False
