"""Deliveries and releases of one account at once (PostgreSQL, where they really overlap): the
blobs' counted usage row (blobs.StoreUsage) ends equal to the SUM it stands for, whether the
writers race to create it or find it, and a content whose last references are released by
several writers at once leaves the row once."""
from __future__ import annotations

import pytest
from django.db.models import Exists, OuterRef, Sum

from accounts.models import Account
from blobs import services as blobs
from blobs.models import AccountBlob, Hold, StoreUsage
from delivery import services
from tests.threads import run_together, skip_on_memory_sqlite

from .conftest import message

WRITERS = 6


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", [True, False], ids=["no-row-yet", "row"])
@pytest.mark.parametrize("limit", [None, 10**9], ids=["no-quota", "quota"])
def test_concurrent_deliveries_and_releases_keep_the_row_equal_to_the_sum(builtin_role_rows, make_account, first,
                                                                          limit):
    skip_on_memory_sqlite()
    account = make_account("alice")
    a = account.pk
    shared = blobs.put(a, b"shared" * 10, "note", "base")
    for n in range(WRITERS):
        blobs.hold(a, shared.jmap_id, "note", f"h{n}")
    blobs.release(a, shared.jmap_id, "note", "base")
    if first:
        StoreUsage.objects.filter(account_id=a).delete()  # every writer races to measure it
    Account.objects.filter(pk=a).update(max_disk_quota=limit)  # the quota: the account's lock, then the row
    same = message(subject="To everyone", body="the same octets from every writer")

    def write(n: int):
        # A message of its own, the same message as every other writer, and the release of one
        # of the shared blob's holds: only the last of them may take it out of the row.
        for raw in (message(subject=f"Mine {n}", body=f"body {n}"), same):
            got = services.deliver(raw, "carol@example.net", ["alice@example.org"])
            assert [o.status for o in got] == ["delivered"], [o.reply() for o in got]
        return blobs.release(a, shared.jmap_id, "note", f"h{n}")

    results = run_together(write, WRITERS)
    assert results == [True] * WRITERS, results
    lasting = (AccountBlob.objects.filter(account_id=a)
               .filter(Exists(Hold.objects.filter(account_blob=OuterRef("pk"), expires_at__isnull=True))))
    row = StoreUsage.objects.get(account_id=a, data_type=blobs.BLOB_USAGE)
    assert (row.octets, row.items) == (lasting.aggregate(t=Sum("blob__size"))["t"], lasting.count())
    assert row.items == WRITERS + 1
