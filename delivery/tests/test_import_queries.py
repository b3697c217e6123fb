"""The queries of one delivery: a new message costs a fixed, small number of statements,
whatever the mailbox holds (mail.store's before-only counting of a new email, no savepoint per
copy, no look-up of a full-text row that cannot exist yet)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from delivery import services
from mail import store
from mail.models import Mailbox

from .conftest import message

pytestmark = pytest.mark.django_db

# SQLite; PostgreSQL has no FTS5 statement and the same count minus one. 37, then 31 before the
# blob store's, the full-text index's and the counters' upserts without savepoints (2026-12-07).
NEW_THREAD = 20


def _deliver(raw):
    with CaptureQueriesContext(connection) as ctx:
        got = services.deliver(raw, "carol@example.net", ["alice@example.org"])
    assert [o.status for o in got] == ["delivered"]
    return len(ctx.captured_queries)


def _check_counters(pk):
    boxes = list(Mailbox.objects.filter(account_id=pk).values_list("pk", flat=True))
    stored = {b.pk: {name: getattr(b, column) for name, column in store.COUNTS}
              for b in Mailbox.objects.filter(pk__in=boxes)}
    assert stored == store.mailbox_counts(pk, boxes)


def test_one_delivery_runs_a_fixed_number_of_queries(alice):
    _deliver(message(subject="Warm-up", body="fills the per-process caches"))
    budget = NEW_THREAD - (connection.vendor != "sqlite")
    first = [_deliver(message(subject=f"Note {n}", body=f"Body {n}")) for n in range(3)]
    assert first == [budget] * 3
    _check_counters(alice.pk)


def test_a_reply_counts_against_its_thread_with_the_same_budget(alice):
    root = message(subject="Plans", body="Shall we?")
    root_id = root.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    _deliver(message(subject="Warm-up", body="fills the per-process caches"))
    _deliver(root)
    reply = message(subject="Re: Plans", body="Yes", extra=f"In-Reply-To: {root_id}\r\nReferences: {root_id}\r\n")
    budget = NEW_THREAD - (connection.vendor != "sqlite")
    # The thread exists: no thread row is inserted, its "before" counts are read instead (the
    # "after" never is).
    assert _deliver(reply) == budget
    (box,) = Mailbox.objects.filter(account_id=alice.pk, role="inbox")
    assert (box.total_emails, box.total_threads) == (3, 2)
    _check_counters(alice.pk)
