"""The blobs' counted usage (StoreUsage "blobs"): after every kind of write it equals the SUM
it replaces (the content an account holds by a lasting reference, once per content), the
usage adds the live uploads as before, and a quota is refused at the exact octet."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from accounts.models import Account
from blobs import services as blobs
from blobs.models import AccountBlob, Hold, StoreUsage

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(make_account):
    return make_account("alice").pk, make_account("bob").pk


def _summed(account_id: int, *, live: bool) -> tuple[int, int]:
    """What the row stands for, summed as the usage did before it (`live`: uploads included)."""
    lasting = Q(expires_at__isnull=True)
    held = Hold.objects.filter(lasting | Q(expires_at__gt=timezone.now()) if live else lasting,
                               account_blob=OuterRef("pk"))
    rows = AccountBlob.objects.filter(account_id=account_id).filter(Exists(held))
    return rows.aggregate(total=Sum("blob__size"))["total"] or 0, rows.count()


def _check(*accounts: int) -> None:
    for account_id in accounts:
        row = StoreUsage.objects.filter(account_id=account_id, data_type=blobs.BLOB_USAGE).first()
        if row is not None:
            assert (row.octets, row.items) == _summed(account_id, live=False)
        assert blobs.usage(account_id) == _summed(account_id, live=True)[0]


def _row(account_id: int) -> tuple[int, int] | None:
    return (StoreUsage.objects.filter(account_id=account_id, data_type=blobs.BLOB_USAGE)
            .values_list("octets", "items").first())


def _deliver(account_id: int, data: bytes, owner: str, **kwargs) -> str:
    with blobs.staging(data) as staged:
        with transaction.atomic():
            return blobs.attach(account_id, staged, "email", owner, **kwargs)


def _limit(account_id: int, octets: int | None) -> None:
    Account.objects.filter(pk=account_id).update(max_disk_quota=octets)


def test_attach_counts_each_content_once_with_or_without_a_limit(two):
    a, b = two
    _deliver(a, b"x" * 10, "1", unlimited=True)
    assert _row(a) == (10, 1)
    _deliver(a, b"x" * 10, "2", unlimited=True)  # the same content again: counted already
    _deliver(a, b"y" * 7, "3", unlimited=True)
    assert _row(a) == (17, 2)
    _limit(b, 1000)
    _deliver(b, b"x" * 10, "4")
    _deliver(b, b"x" * 10, "5")
    _deliver(b, b"z" * 3, "6")
    assert _row(b) == (13, 2)
    _check(a, b)


def test_uploads_count_live_and_a_lasting_hold_moves_them_into_the_row(two):
    a, _ = two
    upload = blobs.put(a, b"u" * 20, blobs.UPLOAD, "up1", expires_at=timezone.now() + timedelta(hours=1))
    assert _row(a) is None and blobs.usage(a) == 20
    _check(a)
    blobs.hold(a, upload.jmap_id, "email", "1")  # Email/import of the upload
    assert _row(a) == (20, 1) and blobs.usage(a) == 20
    _check(a)
    # The upload expires (no write): the email still holds the content, counted once.
    Hold.objects.filter(owner_kind=blobs.UPLOAD).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert blobs.usage(a) == 20
    _check(a)
    # An upload alone, expired: it counts no more, before any collection.
    other = blobs.put(a, b"v" * 5, blobs.UPLOAD, "up2", expires_at=timezone.now() + timedelta(hours=1))
    assert blobs.usage(a) == 25
    Hold.objects.filter(account_blob=other).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert blobs.usage(a) == 20
    done = blobs.collect(orphans=False)
    assert done.holds == 2 and done.views == 1
    assert _row(a) == (20, 1)
    _check(a)


def test_a_lasting_hold_given_an_expiry_leaves_the_row(two):
    a, _ = two
    view = blobs.put(a, b"k" * 9, "note", "1")
    assert _row(a) == (9, 1)
    blobs.hold(a, view.jmap_id, "note", "1", expires_at=timezone.now() + timedelta(hours=1))
    assert _row(a) == (0, 0) and blobs.usage(a) == 9  # still held, now as an upload is
    _check(a)
    blobs.hold(a, view.jmap_id, "note", "1")
    assert _row(a) == (9, 1)
    _check(a)


def test_release_and_release_owners_and_release_owner(two):
    a, b = two
    first = blobs.put(a, b"1" * 11, "note", "1")
    blobs.hold(a, first.jmap_id, "note", "2")
    blobs.put(a, b"2" * 13, "davfile", "10")
    blobs.put(a, b"3" * 17, "davfile", "11")
    shared = blobs.put(a, b"4" * 19, "davfile", "12")
    blobs.hold(a, shared.jmap_id, "note", "3")
    blobs.put(b, b"1" * 11, "note", "1")  # the same content in another account
    assert _row(a) == (60, 4) and _row(b) == (11, 1)
    assert blobs.release(a, first.jmap_id, "note", "1")
    assert _row(a) == (60, 4)  # "note 2" still holds it
    assert blobs.release(a, first.jmap_id, "note", "2")
    assert _row(a) == (49, 3) and _row(b) == (11, 1)
    assert not blobs.release(a, first.jmap_id, "note", "2")
    _check(a, b)
    assert blobs.release_owners(a, "davfile", ["10", "11", "12", "99"]) == 3
    assert _row(a) == (19, 1)  # the third is still a note's
    _check(a, b)
    assert blobs.release_owner("note", "1") == 1  # bob's
    assert _row(a) == (19, 1) and _row(b) == (0, 0)
    assert blobs.release_owner("note", "3") == 1
    assert _row(a) == (0, 0)
    _check(a, b)


def test_copy_between_accounts_counts_in_the_target(two):
    a, b = two
    source = blobs.put(a, b"c" * 30, "note", "1")
    blobs.copy(a, b, source.jmap_id, "email", "copy:1")
    assert _row(a) == (30, 1) and _row(b) == (30, 1)
    blobs.copy(a, b, source.jmap_id, "email", "copy:2")
    assert _row(b) == (30, 1)
    blobs.copy(a, b, source.jmap_id, blobs.UPLOAD, "up", expires_at=timezone.now() + timedelta(hours=1))
    assert _row(b) == (30, 1)
    _check(a, b)


def test_a_deleted_account_takes_its_row_and_leaves_the_others(two):
    a, b = two
    blobs.put(a, b"d" * 8, "note", "1")
    blobs.put(b, b"d" * 8, "note", "1")
    blobs.put(b, b"e" * 4, "note", "2")
    Account.objects.filter(pk=a).delete()
    assert _row(a) is None and not AccountBlob.objects.filter(account_id=a).exists()
    assert _row(b) == (12, 2)
    _check(b)


def test_a_missing_row_is_measured_by_the_first_write(two):
    a, _ = two
    for n in range(3):
        blobs.put(a, bytes([65 + n]) * (n + 1), "note", str(n))
    StoreUsage.objects.filter(account_id=a).delete()  # as before this row existed
    assert blobs.usage(a) == 6  # measured while there is none
    _deliver(a, b"new" * 3, "9", unlimited=True)
    assert _row(a) == (15, 4)
    StoreUsage.objects.filter(account_id=a).delete()
    blobs.release(a, blobs.jmap_id(a, hashlib.sha256(b"A").hexdigest()), "note", "0")
    assert _row(a) == (14, 3)
    _check(a)


@pytest.mark.parametrize("counted", [True, False])
def test_the_quota_is_refused_at_the_exact_octet(two, counted):
    a, _ = two
    blobs.put(a, b"h" * 40, "note", "1")
    if not counted:
        StoreUsage.objects.filter(account_id=a).delete()
    _limit(a, 100)
    with pytest.raises(blobs.OverQuota):
        _deliver(a, b"o" * 61, "2")
    with pytest.raises(blobs.OverQuota):
        blobs.put(a, b"o" * 61, "note", "2")
    with pytest.raises(blobs.OverQuota):
        blobs.check_quota(a, 61)
    blobs.check_quota(a, 60)
    _deliver(a, b"o" * 60, "2")  # exactly the limit
    assert blobs.usage(a) == 100
    with pytest.raises(blobs.OverQuota):
        blobs.put(a, b"p", "note", "3")
    _deliver(a, b"o" * 60, "4")  # the same content: nothing more
    _check(a)


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_the_uploads_stored_before_it_their_latest_expiry(make_account):
    a = make_account("olduploads").pk
    soon, later = timezone.now() + timedelta(hours=1), timezone.now() + timedelta(hours=5)
    upload = blobs.put(a, b"u" * 7, "upload", "u1", expires_at=soon)
    blobs.hold(a, upload.jmap_id, "upload", "u2", expires_at=later)
    kept = blobs.put(a, b"k" * 11, "email", "e1")
    executor = MigrationExecutor(connection)
    target = [("blobs", "0002_store_usage")]
    executor.migrate(target)
    try:
        old = executor.loader.project_state(target).apps.get_model("blobs", "AccountBlob")
        assert old.objects.filter(account_id=a).count() == 2  # the views survive the way back
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    held = dict(AccountBlob.objects.filter(account_id=a).values_list("pk", "held_until"))
    assert held == {upload.pk: later, kept.pk: None}
    assert blobs.usage(a) == 7 + 11  # the upload is found through the new index
