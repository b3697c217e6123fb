"""Concurrent writers of one account+type, and a sync client reading while they write.

Each writer records its change first and commits later (the order a real write has: the object
rows, the journal, then whatever else the transaction does), so a change id handed out early
may commit late. A client polling /changes must still see every change exactly once: the
counter row's lock hands ids out in commit order. On PostgreSQL the writers really overlap; on
SQLite they queue on the database lock, and the same assertions hold.

The test was tried against the approach it rules out: with change ids taken from a PostgreSQL
sequence (no lock held to the commit) and the state read as the highest committed id, the
polling client missed 22 of the 90 changes.
"""
from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, transaction

from journal import services as journal
from journal.models import Entry
from journal.services import Change

WRITERS = 6
WRITES = 15


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_share_a_change_id_and_a_polling_client_misses_nothing(make_account):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        pytest.skip("the in-memory test database shares one cache between threads (table locks, no busy wait)")
    account = make_account("alice").pk
    journal.record(account, "Thread", created=["seed"])  # related type, counters exist or not
    done = threading.Event()
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS + 1)

    def writer(n: int):
        rng = random.Random(n)
        try:
            start.wait()
            for i in range(WRITES):
                with transaction.atomic():
                    journal.record_many(account, {"Email": Change(created=[f"w{n}-{i}"]),
                                                  "Thread": Change(updated=[f"t{n % 2}"])})
                    # Hold the transaction open after recording, as a write that goes on does:
                    # this is what makes commit order differ from id order without the lock.
                    time.sleep(rng.random() / 200)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    seen: list[str] = []

    def client():
        state = "0"
        try:
            start.wait()
            while True:
                finished = done.is_set()  # read before the call: one more full pass after the end
                got = journal.changes(account, "Email", state, 4)
                assert not got.updated and not got.destroyed
                seen.extend(got.created)
                assert int(got.new_state) >= int(state)
                state = got.new_state
                if finished and not got.has_more_changes:
                    break
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    reader = threading.Thread(target=client)
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    reader.join(120)
    assert not errors, errors
    expected = {f"w{n}-{i}" for n in range(WRITERS) for i in range(WRITES)}
    assert len(seen) == len(set(seen)) and set(seen) == expected
    changes = sorted(Entry.objects.filter(account_id=account, type="Email").values_list("change", flat=True))
    assert changes == list(range(1, WRITERS * WRITES + 1))  # unique, and no gap
    assert journal.state(account, "Email") == str(WRITERS * WRITES)
    assert journal.state(account, "Thread") == str(WRITERS * WRITES + 1)
