"""The worker's push hub (jmapapi/push.py) in process: what one poll costs, whatever the number of
streams, which states a stream is told, and that the last stream to go stops the polling. The
streams over HTTP, across workers and with Redis are in tests/test_eventsource_live.py."""
from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jmapapi import push
from journal import services as journal


def run(coroutine_function) -> None:
    """asyncio.run() in a thread of its own: the browser tests' Playwright leaves an event loop
    running in the main thread of the session, where asyncio.run() refuses to start."""
    errors = []

    def target():
        try:
            asyncio.run(coroutine_function())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def accounts(make_account):
    return [make_account(f"hub{n}") for n in range(3)]


def test_one_query_reads_the_counters_of_every_account_with_a_stream(accounts, settings):
    journal.record(accounts[0].pk, "Mailbox", created=["a"])
    journal.record(accounts[1].pk, "Email", created=["b", "c"])
    with CaptureQueriesContext(connection) as queries:
        found = push.read_counters([a.pk for a in accounts])
    assert len(queries) == 1
    assert found[accounts[0].pk]["Mailbox"] >= 1 and found[accounts[1].pk]["Email"] >= 2
    assert accounts[2].pk not in found or "Email" not in found[accounts[2].pk]
    # 1,200 accounts with streams open: three queries of 500, not 1,200.
    with CaptureQueriesContext(connection) as queries:
        push.read_counters(list(range(10 ** 6, 10 ** 6 + 1200)))
    assert len(queries) == 3


def test_a_stream_is_told_only_of_its_types_and_only_of_newer_states():
    async def scenario():
        sub = push.Subscriber(7, ["Mailbox", "Email"], {"Mailbox": 5, "Email": 0})
        sub.offer({"Mailbox": 5, "Thread": 9})  # no move in its types
        assert not sub.wake.is_set()
        sub.offer({"Mailbox": 6, "Email": 2, "Thread": 10})
        assert sub.wake.is_set()
        assert sub.take() == {"Email": "2", "Mailbox": "6"}
        sub.offer({"Mailbox": 4})  # announced late: older than what it was told
        assert not sub.wake.is_set() and sub.take() == {}

    run(scenario)


def test_the_last_stream_to_close_stops_the_worker_listener(transactional_db, settings):
    settings.REDIS_URL = ""
    settings.EVENTSOURCE_POLL_MS = 10

    async def scenario():
        hub = push.Hub()
        subs = [push.Subscriber(n % 2 + 10 ** 6, ["Mailbox"], {}) for n in range(50)]
        for sub in subs:
            hub.add(sub)
        assert hub.count == 50
        task = hub._task
        await asyncio.sleep(0.2)
        reads = hub.reads
        assert 1 <= reads <= 25  # one read per round for the 50 streams, not one per stream
        for sub in subs:
            hub.remove(sub)
        assert hub.count == 0 and hub.subscribers == {}
        await asyncio.sleep(0.05)
        assert task.done() and hub._task is None
        await asyncio.sleep(0.1)
        assert hub.reads == reads  # nothing polls any more

    run(scenario)
