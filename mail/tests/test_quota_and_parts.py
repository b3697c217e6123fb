"""The disk quota on the mail store's ways in (Email/import, Email/set drafts, Email/copy), one
octet under and one octet over; threads merged by a message that bridges them; Blob/lookup's
Mailbox; the derived blob ids of body parts in Blob/get, Blob/copy, Blob/upload, Email/set and
ranged downloads. With the attacker's tests: another account's ids, copies across accounts."""
from __future__ import annotations

import base64
import hashlib

import pytest

from accounts.models import Account
from blobs import services as blobs
from mail import mime
from mail.models import Email, Thread

from .conftest import MAIL, Who, message

CORE = "urn:ietf:params:jmap:core"
BLOB = "urn:ietf:params:jmap:blob"
WITH_BLOB = [CORE, MAIL, BLOB]
ATTACHED = (b"From: Carol <carol@example.com>\r\nTo: alice@example.org\r\nSubject: Report\r\n"
            b"Message-ID: <report@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            b"--b\r\nContent-Type: application/octet-stream; name=data.bin\r\nContent-Disposition: attachment; "
            b"filename=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(bytes(range(200))).replace(b"\n", b"\r\n") + b"--b--\r\n")


@pytest.fixture
def root(client, make_account):
    account = make_account("root", roles_mode=Account.RolesMode.ADMIN, enabled_permissions=["impersonate"],
                           permissions_mode="merge")
    return Who(client, "root", account)


def limit(who: Who, octets):
    Account.objects.filter(pk=who.pk).update(max_disk_quota=octets)


def usage(who: Who) -> int:
    return blobs.usage(who.pk)


# --- the disk quota ---------------------------------------------------------------------------
def test_import_past_the_quota_is_over_quota_and_writes_nothing(alice):
    raw = message("Big", body="x" * 500, message_id="big@x")
    blob_id = alice.upload(raw)
    inbox = alice.mailboxes()["inbox"]
    # The upload filled the account to the octet; the limit was then lowered by one.
    limit(alice, len(raw) - 1)
    state = alice.ok("Email/get", {"ids": []})["state"]
    got = alice.ok("Email/import", {"emails": {"k": {"blobId": blob_id, "mailboxIds": {inbox: True}}}})
    assert got["notCreated"]["k"]["type"] == "overQuota" and got["created"] is None
    assert Email.objects.count() == 0 and Thread.objects.count() == 0
    assert alice.ok("Email/get", {"ids": []})["state"] == state
    # Exactly full is allowed.
    limit(alice, len(raw))
    got = alice.ok("Email/import", {"emails": {"k": {"blobId": blob_id, "mailboxIds": {inbox: True}}}})
    assert got["created"]["k"]["size"] == len(raw)


def test_draft_one_octet_over_the_quota(alice):
    drafts = alice.mailboxes()["drafts"]
    draft = {"mailboxIds": {drafts: True}, "subject": "Draft", "from": [{"email": "alice@example.org"}],
             "bodyValues": {"t": {"value": "Hello " * 40}}, "textBody": [{"partId": "t", "type": "text/plain"}]}
    base = usage(alice)
    got = alice.ok("Email/set", {"create": {"d": draft}})
    size = got["created"]["d"]["size"]
    assert usage(alice) == base + size
    alice.ok("Email/set", {"destroy": [got["created"]["d"]["id"]]})
    assert usage(alice) == base
    limit(alice, base + size - 1)
    got = alice.ok("Email/set", {"create": {"d": draft}})
    assert got["notCreated"]["d"]["type"] == "overQuota" and got["created"] is None
    assert usage(alice) == base and Email.objects.count() == 0
    limit(alice, base + size)
    got = alice.ok("Email/set", {"create": {"d": draft}})
    assert got["created"]["d"]["size"] == size


def test_email_copy_cannot_escape_the_target_quota(alice, mallory, root):
    raw = message("Shared", body="y" * 300, message_id="shared@x")
    eid = alice.import_(raw)["id"]
    inbox = mallory.mailboxes()["inbox"]
    copy = {"fromAccountId": alice.account_id, "create": {"c": {"id": eid, "mailboxIds": {inbox: True}}}}
    limit(mallory, len(raw) - 1)
    got = root.ok("Email/copy", {**copy, "accountId": mallory.account_id})
    assert got["notCreated"]["c"]["type"] == "overQuota" and got["created"] is None
    assert usage(mallory) == 0 and not Email.objects.filter(account_id=mallory.pk).exists()
    limit(mallory, len(raw))
    got = root.ok("Email/copy", {**copy, "accountId": mallory.account_id})
    assert got["created"]["c"]["size"] == len(raw) and usage(mallory) == len(raw)
    # Mallory cannot name Alice's account as the source herself.
    assert mallory.error("Email/copy", copy)["type"] == "fromAccountNotFound"


# --- threads ----------------------------------------------------------------------------------
def test_a_message_referencing_two_threads_merges_them(alice):
    a = alice.import_(message("Plans", message_id="a@x"), received_at="2026-12-01T10:00:00Z")
    b = alice.import_(message("Plans", message_id="b@x"), received_at="2026-12-01T11:00:00Z")
    assert a["threadId"] != b["threadId"]
    threads = alice.ok("Thread/get", {"ids": [a["threadId"]]})["state"]
    emails = alice.ok("Email/get", {"ids": []})["state"]
    c = alice.import_(message("Re: Plans", message_id="c@x", extra="References: <a@x> <b@x>"))
    got = alice.ok("Email/get", {"ids": [a["id"], b["id"], c["id"]], "properties": ["threadId"]})
    merged = {e["threadId"] for e in got["list"]}
    assert len(merged) == 1
    survivor = merged.pop()
    gone = ({a["threadId"], b["threadId"]} - {survivor}).pop()
    assert survivor in (a["threadId"], b["threadId"]) and c["threadId"] == survivor
    got = alice.ok("Thread/get", {"ids": [survivor, gone]})
    assert got["notFound"] == [gone] and got["list"][0]["emailIds"] == [a["id"], b["id"], c["id"]]
    changed = alice.ok("Thread/changes", {"sinceState": threads})
    assert changed["destroyed"] == [gone] and changed["updated"] == [survivor] and changed["created"] == []
    moved = a["id"] if a["threadId"] == gone else b["id"]
    changed = alice.ok("Email/changes", {"sinceState": emails})
    assert changed["created"] == [c["id"]] and changed["updated"] == [moved]
    # Later replies to either side land in the merged thread.
    d = alice.import_(message("Re: Plans", message_id="d@x", in_reply_to="b@x"))
    assert d["threadId"] == survivor


# --- Blob/lookup ------------------------------------------------------------------------------
def test_blob_lookup_names_the_mailboxes_of_an_email(alice, mallory):
    boxes = alice.mailboxes()
    e = alice.import_(message("Filed", message_id="filed@x"))
    alice.ok("Email/set", {"update": {e["id"]: {f"mailboxIds/{boxes['archive']}": True}}})
    got = alice.ok("Blob/lookup", {"typeNames": ["Email", "Thread", "Mailbox"], "ids": [e["blobId"]]},
                   using=WITH_BLOB)
    matched = got["list"][0]["matchedIds"]
    assert matched["Email"] == [e["id"]] and matched["Thread"] == [e["threadId"]]
    assert sorted(matched["Mailbox"]) == sorted([boxes["inbox"], boxes["archive"]])
    got = mallory.ok("Blob/lookup", {"typeNames": ["Mailbox"], "ids": [e["blobId"]]}, using=WITH_BLOB)
    assert got["notFound"] == [e["blobId"]] and got["list"] == []


# --- body parts as blobs ----------------------------------------------------------------------
def _attachment(who: Who) -> tuple[dict, bytes]:
    eid = who.import_(ATTACHED)["id"]
    part = who.ok("Email/get", {"ids": [eid], "properties": ["attachments"]})["list"][0]["attachments"][0]
    return part, mime.decoded_content(ATTACHED, mime.parse(ATTACHED).parts()[part["partId"]])


def test_part_blobs_in_blob_get_with_ranges_and_digests(alice, mallory):
    part, data = _attachment(alice)
    assert data == bytes(range(200))
    got = alice.ok("Blob/get", {"ids": [part["blobId"]], "properties": ["data:asBase64", "size", "digest:sha",
                                                                        "digest:sha-256"]}, using=WITH_BLOB)
    blob = got["list"][0]
    assert blob["size"] == 200 and base64.b64decode(blob["data:asBase64"]) == data
    assert blob["digest:sha"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert blob["digest:sha-256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    got = alice.ok("Blob/get", {"ids": [part["blobId"]], "offset": 10, "length": 5,
                                "properties": ["data:asBase64", "digest:sha"]}, using=WITH_BLOB)
    assert base64.b64decode(got["list"][0]["data:asBase64"]) == data[10:15]
    assert got["list"][0]["digest:sha"] == base64.b64encode(hashlib.sha1(data[10:15]).digest()).decode()
    got = alice.ok("Blob/get", {"ids": [part["blobId"]], "offset": 190, "length": 50,
                                "properties": ["data:asBase64"]}, using=WITH_BLOB)
    assert base64.b64decode(got["list"][0]["data:asBase64"]) == data[190:] and got["list"][0]["isTruncated"]
    # Another account knows nothing of it.
    got = mallory.ok("Blob/get", {"ids": [part["blobId"]]}, using=WITH_BLOB)
    assert got["notFound"] == [part["blobId"]]


def test_part_blobs_download_by_range(alice, mallory):
    part, data = _attachment(alice)
    url = f"/jmap/download/{alice.account_id}/{part['blobId']}/data.bin"
    resp = alice.jmap.client.get(url, HTTP_AUTHORIZATION=alice.jmap.auth, HTTP_RANGE="bytes=1-3")
    assert resp.status_code == 206 and b"".join(resp.streaming_content) == data[1:4]
    assert resp["Content-Range"] == "bytes 1-3/200"
    resp = alice.jmap.client.get(url, HTTP_AUTHORIZATION=alice.jmap.auth, HTTP_RANGE="bytes=500-")
    assert resp.status_code == 416
    resp = mallory.jmap.client.get(f"/jmap/download/{mallory.account_id}/{part['blobId']}/data.bin",
                                   HTTP_AUTHORIZATION=mallory.jmap.auth)
    assert resp.status_code == 404


def test_part_blobs_copy_upload_and_attach(alice, mallory, root):
    part, data = _attachment(alice)
    got = alice.ok("Blob/copy", {"fromAccountId": alice.account_id, "blobIds": [part["blobId"]]}, using=WITH_BLOB)
    copied = got["copied"][part["blobId"]]
    got = alice.ok("Blob/get", {"ids": [copied], "properties": ["data:asBase64"]}, using=WITH_BLOB)
    assert base64.b64decode(got["list"][0]["data:asBase64"]) == data
    # A part as a data source of Blob/upload, with a range.
    got = alice.ok("Blob/upload", {"create": {"u": {"data": [{"blobId": part["blobId"], "offset": 5, "length": 10},
                                                             {"data:asText": "!"}]}}}, using=WITH_BLOB)
    new = got["created"]["u"]["id"]
    got = alice.ok("Blob/get", {"ids": [new], "properties": ["data:asBase64"]}, using=WITH_BLOB)
    assert base64.b64decode(got["list"][0]["data:asBase64"]) == data[5:15] + b"!"
    # Forwarded as the attachment of a draft.
    drafts = alice.mailboxes()["drafts"]
    got = alice.ok("Email/set", {"create": {"f": {
        "mailboxIds": {drafts: True}, "subject": "Fwd", "bodyValues": {"t": {"value": "fyi"}},
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "attachments": [{"blobId": part["blobId"], "type": "application/octet-stream", "name": "data.bin"}]}}})
    fid = got["created"]["f"]["id"]
    forwarded = alice.ok("Email/get", {"ids": [fid], "properties": ["attachments"]})["list"][0]["attachments"][0]
    got = alice.ok("Blob/get", {"ids": [forwarded["blobId"]], "properties": ["data:asBase64"]}, using=WITH_BLOB)
    assert base64.b64decode(got["list"][0]["data:asBase64"]) == data
    # Across accounts only by an impersonating administrator, under the target's quota.
    assert mallory.error("Blob/copy", {"fromAccountId": alice.account_id, "blobIds": [part["blobId"]]},
                         using=WITH_BLOB)["type"] == "fromAccountNotFound"
    got = mallory.ok("Blob/copy", {"fromAccountId": mallory.account_id, "blobIds": [part["blobId"]]},
                     using=WITH_BLOB)
    assert got["notCopied"][part["blobId"]]["type"] == "notFound"
    limit(mallory, 199)
    got = root.ok("Blob/copy", {"accountId": mallory.account_id, "fromAccountId": alice.account_id,
                                "blobIds": [part["blobId"]]}, using=WITH_BLOB)
    assert got["notCopied"][part["blobId"]]["type"] == "overQuota" and usage(mallory) == 0
    limit(mallory, 200)
    got = root.ok("Blob/copy", {"accountId": mallory.account_id, "fromAccountId": alice.account_id,
                                "blobIds": [part["blobId"]]}, using=WITH_BLOB)
    assert got["copied"][part["blobId"]] and usage(mallory) == 200
