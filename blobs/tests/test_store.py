"""The blob store itself: hashing while spooling, deduplication, references, quota, collection."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from blobs import services as blobs
from blobs.models import AccountBlob, Blob, Hold


@pytest.fixture
def two(make_account):
    return make_account("alice").pk, make_account("bob").pk


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run what waits for the commit (file deletions), as the test's transaction never commits."""
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def test_spool_hashes_what_it_writes_and_stops_at_the_limit():
    sp = blobs.spool(iter([b"ab", b"", b"cd"]))
    assert (sp.digest, sp.size) == (hashlib.sha256(b"abcd").hexdigest(), 4)
    with open(sp.path, "rb") as fh:
        assert fh.read() == b"abcd"
    sp.discard()

    consumed = []

    def endless():
        while True:
            consumed.append(1)
            yield b"x" * 1000

    with pytest.raises(blobs.TooLarge):
        blobs.spool(endless(), max_size=2500)
    assert len(consumed) == 3  # refused as soon as the limit is passed; the rest is never read


def test_the_spool_is_moved_into_place_not_left_behind(two):
    a, _ = two
    sp = blobs.spool_bytes(b"moved")
    blobs.ingest(a, sp, "upload", "1")
    with pytest.raises(FileNotFoundError):
        open(sp.path, "rb")


def test_one_content_one_file_whoever_holds_it(two):
    a, b = two
    va = blobs.put(a, b"same", "upload", "1")
    vb = blobs.put(b, b"same", "upload", "2")
    again = blobs.put(a, b"same", "upload", "3")
    assert Blob.objects.count() == 1
    assert va.jmap_id != vb.jmap_id and again.jmap_id == va.jmap_id
    assert list(blobs._walk(blobs.storage())) == [Blob.objects.get().name]
    assert blobs.read(va.blob) == b"same"
    assert blobs.read(va.blob, 1, 3) == b"am"


def test_resolve_is_per_account_and_one_query(two, django_assert_num_queries):
    a, b = two
    mine = blobs.put(a, b"a", "upload", "1").jmap_id
    theirs = blobs.put(b, b"b", "upload", "1").jmap_id
    with django_assert_num_queries(1):
        found = blobs.resolve(a, [mine, theirs, "garbage", "x" * 500])
    assert list(found) == [mine]


def test_hold_release_and_collection(two, commit):
    a, _ = two
    view = blobs.put(a, b"kept", "upload", "u1", expires_at=timezone.now() - timedelta(seconds=1))
    # An expired upload can no longer be referenced...
    with pytest.raises(blobs.NotFound):
        blobs.hold(a, view.jmap_id, "email", "1")
    fresh = blobs.put(a, b"kept", "upload", "u2", expires_at=timezone.now() + timedelta(hours=1))
    blobs.hold(a, fresh.jmap_id, "email", "42")
    done = commit(blobs.collect)
    assert (done.holds, done.views, done.blobs) == (1, 0, 0)
    # ...and the email holds it once the upload has expired.
    Hold.objects.filter(owner_kind="upload").update(expires_at=timezone.now() - timedelta(seconds=1))
    commit(blobs.collect)
    assert blobs.read(Blob.objects.get()) == b"kept"
    assert blobs.release(a, fresh.jmap_id, "email", "42")
    name = Blob.objects.get().name
    done = commit(blobs.collect)
    assert (done.views, done.blobs) == (1, 1)
    assert not Blob.objects.exists() and not AccountBlob.objects.exists()
    assert not blobs.storage().exists(name)


def test_release_owner_drops_every_reference_of_an_owner(two):
    a, _ = two
    blobs.hold(a, blobs.put(a, b"1", "upload", "u").jmap_id, "email", "7")
    blobs.hold(a, blobs.put(a, b"2", "upload", "u").jmap_id, "email", "7")
    assert blobs.release_owner("email", "7") == 2
    assert not Hold.objects.filter(owner_kind="email").exists()


def test_disk_quota_counts_distinct_content_once(make_account):
    pk = make_account("carol", max_disk_quota=10).pk
    blobs.put(pk, b"12345", "upload", "1")
    blobs.put(pk, b"12345", "upload", "2")  # the same bytes: no more usage
    assert blobs.usage(pk) == 5
    blobs.put(pk, b"67890", "upload", "3")
    with pytest.raises(blobs.OverQuota):
        blobs.put(pk, b"x", "upload", "4")
    assert blobs.usage(pk) == 10
    # Refused: nothing recorded, no file left behind.
    assert Blob.objects.count() == 2
    assert sum(1 for _ in blobs._walk(blobs.storage())) == 2


def test_copy_charges_the_target_account(make_account):
    a = make_account("alice").pk
    b = make_account("bob", max_disk_quota=3).pk
    view = blobs.put(a, b"four", "upload", "1")
    with pytest.raises(blobs.OverQuota):
        blobs.copy(a, b, view.jmap_id, "upload", "c")
    with pytest.raises(blobs.NotFound):
        blobs.copy(b, a, view.jmap_id, "upload", "c")


def test_orphan_files_are_collected_after_the_grace_period(two, commit):
    a, _ = two
    st = blobs.storage()
    kept = blobs.put(a, b"named", "upload", "1").blob.name
    orphan = st.save("ab/cd/orphan.0", ContentFile(b"left by a crash"))
    done = commit(blobs.collect)
    assert done.files == 0 and st.exists(orphan)  # young: it may be an upload in flight
    done = commit(blobs.collect, now=timezone.now() + blobs.ORPHAN_GRACE + timedelta(minutes=1))
    assert done.files == 1 and not st.exists(orphan) and st.exists(kept)


def _files() -> list[str]:
    return sorted(blobs._walk(blobs.storage()))


def test_staged_bytes_are_filed_in_the_transaction_after_their_file(two):
    a, b = two
    with blobs.staging(b"delivered") as staged:
        assert _files() == [staged.name]  # written before any transaction
        with transaction.atomic():
            blob_id = blobs.attach(a, staged, "email", "1", unlimited=True)
            assert blobs.attach(a, staged, "email", "2") == blob_id  # a second copy: the same view
    assert _files() == [Blob.objects.get().name] == [staged.name]
    assert blob_id == blobs.jmap_id(a, staged.digest)
    assert sorted(Hold.objects.values_list("owner_id", flat=True)) == ["1", "2"]
    assert blobs.read(blobs.resolve(a, [blob_id])[blob_id].blob) == b"delivered"
    # Content stored already: the row keeps its file and the staged copy goes.
    first = Blob.objects.get().name
    with blobs.staging(b"delivered") as staged:
        with transaction.atomic():
            other = blobs.attach(b, staged, "email", "3", unlimited=True)
    assert _files() == [first] and Blob.objects.count() == 1
    assert other != blob_id and set(blobs.resolve(b, [blob_id, other])) == {other}


def test_a_failed_transaction_leaves_no_staged_file_and_no_row(two):
    a, _ = two
    with pytest.raises(RuntimeError):
        with blobs.staging(b"lost") as staged:
            with transaction.atomic():
                blobs.attach(a, staged, "email", "1", unlimited=True)
                raise RuntimeError("the rest of the delivery failed")
    assert _files() == [] and not Blob.objects.exists() and not AccountBlob.objects.exists()


def test_attach_keeps_the_disk_quota(make_account):
    pk = make_account("carol", max_disk_quota=10).pk
    blobs.put(pk, b"12345", "upload", "1")
    with blobs.staging(b"12345") as staged, transaction.atomic():  # held already: no more usage
        blobs.attach(pk, staged, "email", "1")
    with pytest.raises(blobs.OverQuota):
        with blobs.staging(b"678901") as staged:
            with transaction.atomic():
                blobs.attach(pk, staged, "email", "2")
    assert blobs.usage(pk) == 5 and Blob.objects.count() == 1 and len(_files()) == 1
