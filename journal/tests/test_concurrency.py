"""Concurrent writers of one account+type, and a sync client reading while they write.

Each writer records its change first and commits later (the order a real write has: the object
rows, the journal, then whatever else the transaction does), so a change id handed out early
may commit late. A client polling /changes must still see every change exactly once: the
counter row's lock hands ids out in commit order. On PostgreSQL the writers really overlap; on
SQLite (a file of its own, in a process of its own: pytest's in-memory database cannot be
shared by threads) they queue on the database lock, and the same assertions hold.

The test was tried against the approach it rules out: with change ids taken from a PostgreSQL
sequence (no lock held to the commit) and the state read as the highest committed id, the
polling client missed 22 of the 90 changes.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from accounts.models import Account, Domain

from journal import services as journal
from journal.models import Entry
from journal.services import Change

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 6
WRITES = 15


def hammer(account: int) -> dict:
    """Run the writers and the polling client on `account`; what they saw, for check()."""
    journal.record(account, "Thread", created=["seed"])  # related type, counters exist or not
    done = threading.Event()
    errors: list[str] = []
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
            errors.append(repr(exc))
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
                assert not got.updated and not got.destroyed, got
                seen.extend(got.created)
                assert int(got.new_state) >= int(state), (got, state)
                state = got.new_state
                if finished and not got.has_more_changes:
                    break
        except BaseException as exc:  # noqa: BLE001
            errors.append(repr(exc))
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
    return {"errors": errors, "seen": seen,
            "changes": sorted(Entry.objects.filter(account_id=account, type="Email").values_list("change", flat=True)),
            "states": journal.states(account, ["Email", "Thread"])}


def check(result: dict) -> None:
    assert not result["errors"], result["errors"]
    seen = result["seen"]
    expected = {f"w{n}-{i}" for n in range(WRITERS) for i in range(WRITES)}
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert result["changes"] == list(range(1, WRITERS * WRITES + 1))  # unique, and no gap
    assert result["states"] == {"Email": str(WRITERS * WRITES), "Thread": str(WRITERS * WRITES + 1)}


def on_a_fresh_sqlite_file() -> None:
    """The SQLite run (in a process of its own: see the test below): migrate, hammer, print."""
    call_command("migrate", verbosity=0)
    domain = Domain.objects.create(name="example.org")
    account = Account.objects.create(name="alice", domain=domain)
    print(json.dumps(hammer(account.pk)))


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_share_a_change_id_and_a_polling_client_misses_nothing(make_account):
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        pytest.skip("the in-memory test database shares one cache between threads (table locks, no busy "
                    "wait): the SQLite run is the next test, on a file")
    check(hammer(make_account("alice").pk))


def test_the_same_on_a_sqlite_file(tmp_path):
    """On a SQLite file, as the server runs it (WAL, transactions that begin IMMEDIATE)."""
    script = ("import django; django.setup(); "
              "from journal.tests.test_concurrency import on_a_fresh_sqlite_file; on_a_fresh_sqlite_file()")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "STALWART_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "stalwart_site.settings"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    check(json.loads(done.stdout.strip().splitlines()[-1]))
