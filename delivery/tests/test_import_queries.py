"""The queries of one delivery: a new message costs a fixed, small number of statements,
whatever the mailbox holds (mail.store's before-only counting of a new email, no savepoint per
copy, no look-up of a full-text row that cannot exist yet)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from blobs import services as blobs
from blobs.models import AccountBlob, StoreUsage
from delivery import services
from mail import store
from mail.models import Mailbox

from .conftest import message

pytestmark = pytest.mark.django_db

# SQLite; PostgreSQL has no FTS5 statement and the same count minus one. 37, then 31 before the
# blob store's, the full-text index's and the counters' upserts without savepoints (2026-12-07);
# 20 before the blobs' counted usage row (its UPDATE).
NEW_THREAD = 21
# With a disk quota: the account's row lock, whether the view holds the content already, the
# usage (one query: the counted row), the Quota's journal entry (2). 25 before the counted row,
# the same at any size but its SUM over every blob the account held.
QUOTA_NEW_THREAD = 26


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


def test_a_delivery_under_a_quota_costs_the_same_at_one_and_fifty_blobs_held(alice):
    # The quota check reads the account's counted row (blobs.StoreUsage), not a SUM over what it
    # holds: the statements are the same whatever the mailbox's size.
    Account.objects.filter(pk=alice.pk).update(max_disk_quota=10**9)
    _deliver(message(subject="Warm-up", body="fills the per-process caches"))
    assert AccountBlob.objects.filter(account_id=alice.pk).count() == 1
    one = _deliver(message(subject="At one", body="one blob held"))
    for n in range(48):
        blobs.put(alice.pk, f"stored {n}".encode(), "note", str(n))
    assert AccountBlob.objects.filter(account_id=alice.pk).count() == 50
    fifty = _deliver(message(subject="At fifty", body="fifty blobs held"))
    assert one == fifty == QUOTA_NEW_THREAD - (connection.vendor != "sqlite"), (one, fifty)
    assert blobs.usage(alice.pk) == sum(AccountBlob.objects.filter(account_id=alice.pk)
                                        .values_list("blob__size", flat=True))
    # What the check reads is the row: one octet short of the limit there refuses the next one.
    StoreUsage.objects.filter(account_id=alice.pk, data_type=blobs.BLOB_USAGE).update(octets=10**9 - 1)
    got = services.deliver(message(subject="Over", body="x"), "carol@example.net", ["alice@example.org"])
    assert [o.reply() for o in got] == ["452 4.2.2 Mailbox over quota."]
