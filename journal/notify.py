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


def publish_on_commit(account_id: int, states: dict[str, int]) -> None:
    """Publish `states` of `account_id` once the current transaction commits (Redis only)."""
    if not settings.REDIS_URL or not states:
        return
    message = json.dumps({"a": account_id, "s": states}, separators=(",", ":"))
    transaction.on_commit(lambda: _publish(message))


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
