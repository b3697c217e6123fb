"""Races on PostgreSQL, made to happen rather than hoped for: a first Identity/get racing another
one that has inserted the default identity but not committed, and two deliveries claiming one
vacation reply. The second writer is seen waiting on the first one's row lock
(pg_stat_activity) before the first commits. SQLite serialises writers on its database lock, so
neither race exists there."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from journal import services as journal
from registry import ids
from submission import identities, vacation
from submission.models import Identity, VacationReply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writers queue on the database lock: no interleaving to test")


def wait_for_a_lock_wait(outcome: dict, timeout: float = 20) -> None:
    """Until another connection waits on a lock (the second writer reached the unique index)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline and not outcome:
            # The statistics views are read once per transaction unless the snapshot is dropped.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError(f"the second writer never waited on the first one's lock: {outcome}")


def in_thread(fn):
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_two_first_reads_make_one_default_identity(make_account):
    bob = make_account("bob")
    with transaction.atomic():
        first = Identity.objects.create(account=bob, email=bob.email_address, is_default=True)
        journal.record(bob.pk, identities.TYPE, created=[ids.encode(first.pk)])
        thread, outcome = in_thread(lambda: identities.ensure_default(bob.pk))
        wait_for_a_lock_wait(outcome)
    thread.join(30)
    assert "error" not in outcome, outcome
    assert list(Identity.objects.filter(account=bob).values_list("pk", flat=True)) == [first.pk]
    assert journal.state(bob.pk, identities.TYPE) == "1"


def test_two_deliveries_claim_one_vacation_reply_once(make_account):
    bob = make_account("bob")
    with transaction.atomic():
        assert vacation.claim_reply(bob.pk, "carol", 7 * 86400) is True
        thread, outcome = in_thread(lambda: vacation.claim_reply(bob.pk, "carol", 7 * 86400))
        wait_for_a_lock_wait(outcome)
    thread.join(30)
    assert outcome == {"value": False}
    assert VacationReply.objects.filter(account=bob).count() == 1
