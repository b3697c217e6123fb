"""Two writers that lock the same mailboxes in opposite orders, on PostgreSQL: the database
breaks the deadlock by rolling one transaction back, and the JMAP engine runs that method call
again (stalwart_site/dbretry.py), so the client sees both emails created, never serverFail.

The deadlock is made, not hoped for: the test holds the Inbox's row lock, lets an Email/set
create one email in the Archive (locking it) and then one in the Inbox (waiting on the test),
and only then asks for the Archive itself. PostgreSQL checks for a deadlock once per wait, after
`deadlock_timeout`, and rolls back the transaction whose check finds it: the Email/set's
connection checks after 3 s and the test's after 60 s, so the Email/set is the one rolled back
however long the test took to start waiting (superuser settings: the tests connect as one).
SQLite takes its write lock at BEGIN, so writers queue and cannot deadlock."""
from __future__ import annotations

import pytest
from django.db import connection, transaction

from mail.models import Mailbox
from registry import ids
from submission.tests.test_concurrency import in_thread, wait_for_a_lock_wait

from .test_counters import _check

pytestmark = [pytest.mark.django_db(transaction=True),
              # An earlier transaction=True test may have emptied the roles that let alice log in.
              pytest.mark.usefixtures("builtin_role_rows")]


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writers queue on the database lock: they cannot deadlock")


def _draft(mailbox_id: str, subject: str) -> dict:
    return {"mailboxIds": {mailbox_id: True}, "subject": subject, "from": [{"email": "alice@example.org"}],
            "bodyValues": {"b": {"value": "Hi"}}, "textBody": [{"partId": "b", "type": "text/plain"}]}


def _email_set(who, create):
    with connection.cursor() as cursor:  # this thread's connection, the one the request uses
        cursor.execute("SET deadlock_timeout = '3s'")
    return who.call("Email/set", {"create": create})


def test_email_set_is_run_again_when_the_database_breaks_a_deadlock(alice):
    boxes = alice.mailboxes()
    inbox, archive = ids.decode(boxes["inbox"]), ids.decode(boxes["archive"])
    # Both creations in one call, the Archive's first: dicts keep their order in JSON.
    create = {"first": _draft(boxes["archive"], "into the archive"), "second": _draft(boxes["inbox"], "into the inbox")}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '60s'")
        list(Mailbox.objects.select_for_update().filter(pk=inbox))
        thread, outcome = in_thread(lambda: _email_set(alice, create))
        wait_for_a_lock_wait(outcome)
        # The Email/set holds the Archive and waits for the Inbox: asking for the Archive closes
        # the cycle, and PostgreSQL rolls the Email/set back, which lets this statement through.
        list(Mailbox.objects.select_for_update().filter(pk=archive))
    thread.join(30)
    assert "error" not in outcome, outcome
    name, result = outcome["value"][:2]
    assert name == "Email/set", outcome["value"]
    assert set(result["created"]) == {"first", "second"} and result["notCreated"] is None, result
    got = alice.ok("Email/query", {})
    assert len(got["ids"]) == 2
    _check(alice)
