"""A /dav write that PostgreSQL rolls back to break a deadlock answers 503 with Retry-After
(nothing written; the same request a moment later succeeds), never a 500.

The deadlock is made as in mail/tests/test_deadlock.py: the test holds the account's journal
counters, a CalDAV PUT locks its calendar and then waits for a counter, and the test then asks
for the calendar. The PUT's connection checks for deadlocks after 3 s, the test's after 60 s, so
the PUT is the transaction rolled back."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

from accounts.models import Account
from calendars.models import Calendar
from journal.models import Counter
from submission.tests.test_concurrency import in_thread, wait_for_a_lock_wait

from .test_caldav import CAL, ics, put

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writers queue on the database lock: they cannot deadlock")


def _put(dav, path, data):
    with connection.cursor() as cursor:  # this thread's connection, the one the request uses
        cursor.execute("SET deadlock_timeout = '3s'")
    return put(dav, path, data)


def test_a_put_rolled_back_by_a_deadlock_answers_503_and_writes_nothing(alice):
    assert put(alice, CAL + "a.ics", ics("uid-a")).status_code == 201
    account = Account.objects.get(email_address="alice@example.org")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '60s'")
        list(Counter.objects.select_for_update().filter(account=account))
        thread, outcome = in_thread(lambda: _put(alice, CAL + "b.ics", ics("uid-b")))
        wait_for_a_lock_wait(outcome)
        list(Calendar.objects.select_for_update().filter(account=account))
    thread.join(30)
    assert "error" not in outcome, outcome
    response = outcome["value"]
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "1"
    assert alice.request("GET", CAL + "b.ics").status_code == 404
    assert put(alice, CAL + "b.ics", ics("uid-b")).status_code == 201
