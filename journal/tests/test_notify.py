"""journal.notify: each commit's new states on the Redis push channel, after the commit and only
then; a Redis outage never fails the write."""
from __future__ import annotations

import json
import os
import socket

import pytest
from django.db import transaction

from journal import notify
from journal import services as journal

REDIS = os.environ.get("REDIS_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _fresh_client():
    notify._local.client = None
    yield
    notify._local.client = None


@pytest.mark.django_db(transaction=True)
def test_a_redis_outage_never_fails_a_committed_write(settings, make_account, caplog):
    account = make_account("outage")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with transaction.atomic():
        state = journal.record(account.pk, "Mailbox", created=["m1"])
    assert journal.state(account.pk, "Mailbox") == state
    assert "could not publish a journal change" in caplog.text


@pytest.mark.skipif(not REDIS, reason="needs REDIS_URL")
@pytest.mark.django_db(transaction=True)
def test_the_states_are_published_after_the_commit_and_not_for_a_rollback(settings, make_account):
    import redis

    account = make_account("published")
    settings.PUSH_CHANNEL = f"test-{os.getpid()}:journal"
    listener = redis.Redis.from_url(REDIS).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(notify.channel())
    try:
        listener.get_message(timeout=1)  # the subscription's confirmation
        with transaction.atomic():
            state = journal.record(account.pk, "Mailbox", created=["m1"])
            assert listener.get_message(timeout=0.3) is None  # not before the commit
        message = listener.get_message(timeout=2)
        assert json.loads(message["data"]) == {"a": account.pk, "s": {"Mailbox": int(state)}}
        assert notify.decode(message["data"]) == (account.pk, {"Mailbox": int(state)})
        with pytest.raises(RuntimeError), transaction.atomic():
            journal.record(account.pk, "Mailbox", created=["m2"])
            raise RuntimeError("rolled back")
        assert listener.get_message(timeout=0.5) is None
    finally:
        listener.close()


def test_anything_else_on_the_channel_is_ignored():
    for raw in (b"", b"null", b"[]", b'{"a": "1", "s": {}}', b'{"a": 1}', b'{"a": 1, "s": {"Email": "x"}}', b"\xff"):
        assert notify.decode(raw) is None, raw
