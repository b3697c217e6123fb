"""Quota/get, changes, query, queryChanges (RFC 9425) over HTTP; the account's usage on x:Account
(usedDiskQuota) and on its admin page; the disk quota on every way into the blob store (upload,
Blob/upload, Blob/copy), one octet under and one octet over, with the attacker's tests."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from registry import ids
from tests.clients import STRONG_PASSWORD, basic
from tests.clients import Jmap as JmapClient

CORE = "urn:ietf:params:jmap:core"
BLOB = "urn:ietf:params:jmap:blob"
QUOTA = "urn:ietf:params:jmap:quota"
STALWART = "urn:stalwart:jmap"
USING = [CORE, BLOB, QUOTA]


class Who:
    def __init__(self, client, name, account):
        self.jmap = JmapClient(client, basic(f"{name}@example.org"))
        self.pk, self.id = account.pk, ids.encode(account.pk)

    def call(self, name, args, account=None, using=USING):
        return self.jmap.call(name, {"accountId": account or self.id, **args}, using=using)

    def ok(self, name, args, **kw):
        got = self.call(name, args, **kw)
        assert got[0] == name, got
        return got[1]

    def error(self, name, args, **kw):
        got = self.call(name, args, **kw)
        assert got[0] == "error", got
        return got[1]

    def upload(self, data: bytes, account=None):
        return self.jmap.client.generic("POST", f"/jmap/upload/{account or self.id}/", data,
                                        content_type="application/octet-stream", HTTP_AUTHORIZATION=self.jmap.auth)


@pytest.fixture
def alice(client, make_account):
    return Who(client, "alice", make_account("alice", description="Alice Example"))


@pytest.fixture
def mallory(client, make_account):
    return Who(client, "mallory", make_account("mallory"))


@pytest.fixture
def root(client, make_account):
    """An administrator who may act on any account (impersonate)."""
    return Who(client, "root", make_account("root", roles_mode=Account.RolesMode.ADMIN,
                                            enabled_permissions=["impersonate"], permissions_mode="merge"))


def set_limit(root: Who, who: Who, limit):
    """The account's disk quota through x:Account/set, as an administrator sets it."""
    got = root.ok("x:Account/set", {"update": {who.id: {"quotas/maxDiskQuota": limit}}}, account=root.id,
                  using=[CORE, STALWART])
    assert got["notUpdated"] is None, got


def used(who: Who) -> int:
    return who.ok("Quota/get", {"ids": None})["list"][0]["used"]


# --- the capability and Quota/get ---------------------------------------------------------------
def test_session_advertises_the_quota_capability(alice):
    session = alice.jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=alice.jmap.auth).json()
    assert session["capabilities"][QUOTA] == {}
    assert session["accounts"][alice.id]["accountCapabilities"][QUOTA] == {}
    # Without the capability in `using`, the methods are not there.
    assert alice.error("Quota/get", {"ids": None}, using=[CORE])["type"] == "unknownMethod"


def test_no_limit_no_quota(alice):
    got = alice.ok("Quota/get", {"ids": None})
    assert got["list"] == [] and got["accountId"] == alice.id
    assert alice.ok("Quota/get", {"ids": ["a", "zz"]})["notFound"] == ["a", "zz"]


def test_quota_get_shows_the_limit_and_the_live_usage(alice, root):
    set_limit(root, alice, 5000)
    got = alice.ok("Quota/get", {"ids": None})
    assert got["list"] == [{
        "id": "a", "resourceType": "octets", "used": 0, "hardLimit": 5000, "warnLimit": None, "softLimit": None,
        "scope": "account", "name": "alice@example.org", "description": "Alice Example",
        "types": ["Email", "Blob", "CalendarEvent", "ContactCard"]}]
    assert alice.upload(b"x" * 1200).status_code == 201
    assert used(alice) == 1200
    # Equal content is stored and counted once.
    assert alice.upload(b"x" * 1200).status_code == 201
    assert used(alice) == 1200
    got = alice.ok("Quota/get", {"ids": ["a"], "properties": ["used"]})
    assert got["list"] == [{"id": "a", "used": 1200}]
    for bad in ({"ids": "a"}, {"properties": ["nope"]}, {"ids": [1]}):
        assert alice.error("Quota/get", bad)["type"] == "invalidArguments", bad


def test_quota_changes_follow_the_usage_and_the_limit(alice, root):
    start = alice.ok("Quota/get", {"ids": None})["state"]
    set_limit(root, alice, 5000)
    got = alice.ok("Quota/changes", {"sinceState": start})
    assert got["created"] == ["a"] and got["updated"] == [] and got["destroyed"] == []
    before = got["newState"]
    assert alice.upload(b"y" * 10).status_code == 201
    got = alice.ok("Quota/changes", {"sinceState": before})
    assert got["updated"] == ["a"] and got["newState"] == alice.ok("Quota/get", {"ids": None})["state"]
    # Content already held moves nothing.
    after = got["newState"]
    assert alice.upload(b"y" * 10).status_code == 201
    assert alice.ok("Quota/changes", {"sinceState": after})["updated"] == []
    set_limit(root, alice, 6000)
    assert alice.ok("Quota/changes", {"sinceState": after})["updated"] == ["a"]
    set_limit(root, alice, None)
    got = alice.ok("Quota/changes", {"sinceState": after})
    assert got["destroyed"] == ["a"] and alice.ok("Quota/get", {"ids": None})["list"] == []
    assert alice.error("Quota/changes", {"sinceState": "999"})["type"] == "cannotCalculateChanges"


# --- Quota/query and /queryChanges --------------------------------------------------------------
def test_quota_query_filters_and_sorts(alice, root):
    set_limit(root, alice, 5000)
    everything = {"ids": ["a"], "position": 0, "canCalculateChanges": True}
    for filt in (None, {"name": "ALICE"}, {"scope": "account"}, {"resourceType": "octets"}, {"type": "Email"},
                 {"type": "CalendarEvent"}, {"type": "ContactCard"},
                 {"operator": "AND", "conditions": [{"scope": "account"}, {"type": "Blob"}]},
                 {"operator": "NOT", "conditions": [{"scope": "domain"}]}):
        got = alice.ok("Quota/query", {"filter": filt, "calculateTotal": True})
        assert {k: got[k] for k in everything} == everything and got["total"] == 1, filt
    for filt in ({"name": "bob"}, {"scope": "global"}, {"resourceType": "count"}, {"type": "Mailbox"},
                 {"operator": "OR", "conditions": []}):
        assert alice.ok("Quota/query", {"filter": filt})["ids"] == [], filt
    for sort in ([{"property": "name"}], [{"property": "used", "isAscending": False}]):
        assert alice.ok("Quota/query", {"sort": sort})["ids"] == ["a"]
    assert alice.error("Quota/query", {"filter": {"nope": 1}})["type"] == "unsupportedFilter"
    assert alice.error("Quota/query", {"filter": {"name": 5}})["type"] == "unsupportedFilter"
    assert alice.error("Quota/query", {"sort": [{"property": "hardLimit"}]})["type"] == "unsupportedSort"
    assert alice.error("Quota/query", {"anchor": "zz"})["type"] == "anchorNotFound"
    assert alice.error("Quota/query", {"limit": -1})["type"] == "invalidArguments"


def test_quota_query_changes(alice, root):
    set_limit(root, alice, 5000)
    state = alice.ok("Quota/query", {})["queryState"]
    assert alice.ok("Quota/queryChanges", {"sinceQueryState": state})["added"] == []
    assert alice.upload(b"z" * 30).status_code == 201
    got = alice.ok("Quota/queryChanges", {"sinceQueryState": state, "calculateTotal": True})
    assert got["removed"] == ["a"] and got["added"] == [{"id": "a", "index": 0}] and got["total"] == 1
    assert got["newQueryState"] == alice.ok("Quota/query", {})["queryState"]


def test_another_accounts_quota_is_not_reachable(alice, mallory, root):
    set_limit(root, alice, 5000)
    assert mallory.error("Quota/get", {"ids": None}, account=alice.id)["type"] == "accountNotFound"
    assert mallory.error("Quota/query", {}, account=alice.id)["type"] == "accountNotFound"
    assert mallory.ok("Quota/get", {"ids": ["a"]})["notFound"] == ["a"]


# --- usedDiskQuota and the admin page ----------------------------------------------------------
def test_account_object_shows_used_disk_quota(alice, mallory, root):
    assert alice.upload(b"q" * 321).status_code == 201
    got = root.ok("x:Account/get", {"ids": [alice.id, mallory.id], "properties": ["usedDiskQuota"]},
                  account=root.id, using=[CORE, STALWART])
    assert {a["id"]: a["usedDiskQuota"] for a in got["list"]} == {alice.id: 321, mallory.id: 0}
    # Listing accounts reads every usage in the same query, not one more per account.
    with CaptureQueriesContext(connection) as two:
        root.ok("x:Account/get", {"ids": [alice.id, mallory.id]}, account=root.id, using=[CORE, STALWART])
    with CaptureQueriesContext(connection) as three:
        root.ok("x:Account/get", {"ids": [alice.id, mallory.id, root.id]}, account=root.id, using=[CORE, STALWART])
    assert len(three) == len(two)
    # Server-set: a client cannot write it.
    got = root.ok("x:Account/set", {"update": {alice.id: {"usedDiskQuota": 0}}}, account=root.id,
                  using=[CORE, STALWART])
    assert alice.id in got["notUpdated"]


def test_admin_page_shows_used_and_limit(client, alice, root):
    Account.objects.filter(pk=alice.pk).update(max_disk_quota=5 * 1024 * 1024 * 1024)
    assert alice.upload(b"w" * 1536).status_code == 201
    assert client.login(username="root@example.org", password=STRONG_PASSWORD)
    html = client.get(f"/admin/accounts/account/{alice.pk}/change/").content.decode()
    assert 'id="disk-usage"' in html and "1.5 KiB of 5 GiB (0%)" in html
    Account.objects.filter(pk=alice.pk).update(max_disk_quota=None)
    html = client.get(f"/admin/accounts/account/{alice.pk}/change/").content.decode()
    assert "1.5 KiB (no limit)" in html


# --- the disk quota on every way in -------------------------------------------------------------
def test_upload_one_octet_over_the_quota_is_refused(alice, root):
    set_limit(root, alice, 1000)
    assert alice.upload(b"a" * 600).status_code == 201
    over = alice.upload(b"b" * 401)
    assert over.status_code == 403 and over["Content-Type"] == "application/problem+json"
    assert over.json()["title"] == "Quota exceeded"
    assert alice.upload(b"b" * 400).status_code == 201  # exactly full
    assert used(alice) == 1000


def test_blob_upload_method_one_octet_over(alice, root):
    set_limit(root, alice, 100)
    got = alice.ok("Blob/upload", {"create": {"x": {"data": [{"data:asText": "a" * 101}]}}})
    assert got["notCreated"]["x"]["type"] == "overQuota" and got["created"] is None
    got = alice.ok("Blob/upload", {"create": {"x": {"data": [{"data:asText": "a" * 100}]}}})
    assert got["created"]["x"]["size"] == 100
    assert used(alice) == 100


def test_blob_copy_cannot_escape_the_target_quota(alice, mallory, root):
    secret = alice.upload(b"s" * 500).json()["blobId"]
    set_limit(root, mallory, 499)
    got = root.ok("Blob/copy", {"fromAccountId": alice.id, "blobIds": [secret]}, account=mallory.id)
    assert got["notCopied"][secret]["type"] == "overQuota" and got["copied"] is None
    assert used(mallory) == 0
    set_limit(root, mallory, 500)
    got = root.ok("Blob/copy", {"fromAccountId": alice.id, "blobIds": [secret]}, account=mallory.id)
    assert got["copied"][secret] != secret and used(mallory) == 500
    # Mallory herself cannot name Alice's account as the source, nor use Alice's blob id.
    assert mallory.error("Blob/copy", {"fromAccountId": alice.id, "blobIds": [secret]})["type"] == "fromAccountNotFound"
    got = mallory.ok("Blob/copy", {"fromAccountId": mallory.id, "blobIds": [secret]})
    assert got["notCopied"][secret]["type"] == "notFound"
    assert mallory.ok("Blob/get", {"ids": [secret]})["notFound"] == [secret]


def test_released_and_expired_content_journal_the_quota(alice, root):
    from blobs import services as blobs
    from blobs.models import Hold

    set_limit(root, alice, 5000)
    view = blobs.put(alice.pk, b"k" * 10, "note", "1")
    state = alice.ok("Quota/get", {"ids": None})["state"]
    assert used(alice) == 10
    # A second reference to held content moves nothing; the last one released does.
    blobs.hold(alice.pk, view.jmap_id, "note", "2")
    blobs.release(alice.pk, view.jmap_id, "note", "1")
    assert alice.ok("Quota/changes", {"sinceState": state})["updated"] == []
    blobs.release(alice.pk, view.jmap_id, "note", "2")
    got = alice.ok("Quota/changes", {"sinceState": state})
    assert got["updated"] == ["a"] and used(alice) == 0
    assert alice.upload(b"e" * 7).status_code == 201
    state = alice.ok("Quota/get", {"ids": None})["state"]
    Hold.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert used(alice) == 0  # live: an expired upload counts no more
    blobs.collect(orphans=False)
    assert alice.ok("Quota/changes", {"sinceState": state})["updated"] == ["a"]


def test_check_quota_for_other_stores(alice, root):
    from blobs import services as blobs

    set_limit(root, alice, 100)
    assert alice.upload(b"c" * 60).status_code == 201
    blobs.check_quota(alice.pk, 40)
    with pytest.raises(blobs.OverQuota):
        blobs.check_quota(alice.pk, 41)
