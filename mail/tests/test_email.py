"""Email/import, get, set, query, queryChanges, changes, copy, parse and Thread/get over HTTP
(RFC 8621 §3, §4), with the attacker's tests and the query counts of the hot paths."""
from __future__ import annotations

import email
import email.policy

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from mail import mime, store
from mail.models import Email

from .conftest import CORPUS, Who, message

HTML_MESSAGE = (b"From: Carol <carol@example.com>\r\nTo: alice@example.org\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\n"
                b"Date: Tue, 01 Dec 2026 09:30:00 +0100\r\nMessage-ID: <html@x>\r\nX-Tag: one\r\nX-Tag: two\r\n"
                b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                b"Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\n"
                b"Plain words here\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Html <b>words</b></p>\r\n--a--\r\n"
                b"--b\r\nContent-Type: application/pdf; name=doc.pdf\r\nContent-Disposition: attachment; "
                b"filename=doc.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n")


def test_import_and_get_every_property(alice):
    created = alice.import_(HTML_MESSAGE, keywords={"$Seen": True}, received_at="2026-12-01T10:00:00Z")
    assert set(created) == {"id", "blobId", "threadId", "size"} and created["size"] == len(HTML_MESSAGE)
    got = alice.ok("Email/get", {"ids": [created["id"]], "properties": [
        "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "from", "to",
        "subject", "sentAt", "hasAttachment", "preview", "textBody", "htmlBody", "attachments", "bodyStructure",
        "bodyValues", "header:X-Tag:all", "header:Subject:asText", "header:From:asAddresses"],
        "fetchAllBodyValues": True, "bodyProperties": ["partId", "blobId", "type", "name"]})
    e = got["list"][0]
    assert e["keywords"] == {"$seen": True} and e["receivedAt"] == "2026-12-01T10:00:00Z"
    assert e["mailboxIds"] == {alice.mailboxes()["inbox"]: True}
    assert e["subject"] == "Café" and e["header:Subject:asText"] == "Café"
    assert e["sentAt"] == "2026-12-01T09:30:00+01:00" and e["messageId"] == ["html@x"]
    assert e["from"] == [{"name": "Carol", "email": "carol@example.com"}] == e["header:From:asAddresses"]
    assert e["header:X-Tag:all"] == [" one", " two"]
    assert e["hasAttachment"] is True and e["preview"] == "Plain words here"
    assert [p["type"] for p in e["textBody"]] == ["text/plain"]
    assert [p["type"] for p in e["htmlBody"]] == ["text/html"]
    assert e["attachments"][0]["name"] == "doc.pdf" and e["attachments"][0]["blobId"]
    assert e["bodyStructure"]["type"] == "multipart/mixed" and len(e["bodyStructure"]["subParts"]) == 2
    values = e["bodyValues"]
    assert values[e["textBody"][0]["partId"]]["value"].startswith("Plain words here")
    assert "<b>words</b>" in values[e["htmlBody"][0]["partId"]]["value"]
    # The raw message downloads byte for byte.
    resp = alice.jmap.client.get(f"/jmap/download/{alice.account_id}/{e['blobId']}/m.eml",
                                 HTTP_AUTHORIZATION=alice.jmap.auth)
    assert b"".join(resp.streaming_content) == HTML_MESSAGE


def test_part_blobs_download_and_an_attached_message_parses(alice, mallory):
    raw = (CORPUS / "09-rfc822-attachment.eml").read_bytes()
    eid = alice.import_(raw)["id"]
    e = alice.ok("Email/get", {"ids": [eid], "properties": ["attachments", "bodyStructure"]})["list"][0]
    attached = next(p for p in e["attachments"] if p["type"] == "message/rfc822")
    part = mime.parse(raw).parts()[attached["partId"]]
    resp = alice.jmap.client.get(f"/jmap/download/{alice.account_id}/{attached['blobId']}/m.eml?accept=message/rfc822",
                                 HTTP_AUTHORIZATION=alice.jmap.auth)
    content = b"".join(resp.streaming_content)
    assert resp.status_code == 200 and content == mime.decoded_content(raw, part)
    assert resp["Content-Type"] == "message/rfc822"
    got = alice.ok("Email/parse", {"blobIds": [attached["blobId"]], "properties": ["subject", "blobId"]})
    assert got["parsed"][attached["blobId"]] == {"subject": mime.parse(content).subject,
                                                 "blobId": attached["blobId"]}
    # Another account cannot read it, even knowing the id; a made-up part is 404.
    resp = mallory.jmap.client.get(f"/jmap/download/{mallory.account_id}/{attached['blobId']}/m.eml",
                                   HTTP_AUTHORIZATION=mallory.jmap.auth)
    assert resp.status_code == 404
    for bad in (attached["blobId"] + "9", "m_zzzz_1", "m__", "m_" + eid + "_x"):
        resp = alice.jmap.client.get(f"/jmap/download/{alice.account_id}/{bad}/m.eml",
                                     HTTP_AUTHORIZATION=alice.jmap.auth)
        assert resp.status_code == 404, bad


def test_body_value_options(alice):
    eid = alice.import_(HTML_MESSAGE)["id"]
    base = {"ids": [eid], "properties": ["bodyValues", "textBody", "htmlBody"]}
    assert alice.ok("Email/get", base)["list"][0]["bodyValues"] == {}
    text = alice.ok("Email/get", {**base, "fetchTextBodyValues": True})["list"][0]
    assert list(text["bodyValues"]) == [text["textBody"][0]["partId"]]
    html = alice.ok("Email/get", {**base, "fetchHTMLBodyValues": True, "maxBodyValueBytes": 4})["list"][0]
    value = html["bodyValues"][html["htmlBody"][0]["partId"]]
    assert value == {"value": "<p>H", "isEncodingProblem": False, "isTruncated": True}
    for bad in ({"maxBodyValueBytes": -1}, {"fetchAllBodyValues": "yes"}, {"bodyProperties": ["nope"]},
                {"properties": ["header:From:asText"]}, {"properties": ["nope"]}):
        assert alice.error("Email/get", {**base, **bad})["type"] == "invalidArguments", bad


def test_corpus_imports_and_reads_back_exactly(alice):
    for path in sorted(CORPUS.glob("*.eml")):
        raw = path.read_bytes()
        created = alice.import_(raw)
        got = alice.ok("Email/get", {"ids": [created["id"]], "properties": [
            "blobId", "size", "subject", "from", "to", "preview", "hasAttachment", "textBody", "attachments",
            "bodyValues"], "fetchAllBodyValues": True})["list"][0]
        parsed = mime.parse(raw)
        assert got["size"] == len(raw) and got["subject"] == parsed.subject, path.name
        assert got["from"] == parsed.from_ and got["preview"] == parsed.preview, path.name
        assert [p["partId"] for p in got["textBody"]] == parsed.textBody, path.name
        parts = parsed.parts()
        for part_id, value in got["bodyValues"].items():
            assert value == mime.body_value(raw, parts[part_id]), (path.name, part_id)
        resp = alice.jmap.client.get(f"/jmap/download/{alice.account_id}/{got['blobId']}/m.eml",
                                     HTTP_AUTHORIZATION=alice.jmap.auth)
        assert b"".join(resp.streaming_content) == raw, path.name


def test_threads_by_references_and_subject(alice):
    a = alice.import_(message("Plans", message_id="a@x"), received_at="2026-12-01T10:00:00Z")
    b = alice.import_(message("Re: Plans", message_id="b@x", in_reply_to="a@x"), received_at="2026-12-01T11:00:00Z")
    c = alice.import_(message("Other topic", message_id="c@x", in_reply_to="a@x"))
    d = alice.import_(message("Plans", message_id="d@x"))
    assert a["threadId"] == b["threadId"]
    assert c["threadId"] != a["threadId"]  # shares a reference but not the base subject
    assert d["threadId"] != a["threadId"]  # same subject, no shared reference
    got = alice.ok("Thread/get", {"ids": [a["threadId"], "zzz"]})
    assert got["list"] == [{"id": a["threadId"], "emailIds": [a["id"], b["id"]]}] and got["notFound"] == ["zzz"]
    state = got["state"]
    alice.ok("Email/set", {"destroy": [a["id"], b["id"]]})
    changes = alice.ok("Thread/changes", {"sinceState": state})
    assert changes["destroyed"] == [a["threadId"]]


def test_set_keywords_and_mailboxes_whole_and_by_patch(alice):
    boxes = alice.mailboxes()
    eid = alice.import_(message())["id"]
    state = alice.ok("Email/get", {"ids": []})["state"]
    got = alice.ok("Email/set", {"update": {eid: {"keywords/$flagged": True, "keywords/$seen": True,
                                                  f"mailboxIds/{boxes['archive']}": True,
                                                  f"mailboxIds/{boxes['inbox']}": None}}})
    assert got["updated"] == {eid: None}, got
    e = alice.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]})["list"][0]
    assert e["keywords"] == {"$flagged": True, "$seen": True} and e["mailboxIds"] == {boxes["archive"]: True}
    alice.ok("Email/set", {"update": {eid: {"keywords": {"custom": True}, "mailboxIds": {boxes["trash"]: True}}}})
    e = alice.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]})["list"][0]
    assert e["keywords"] == {"custom": True} and e["mailboxIds"] == {boxes["trash"]: True}
    assert alice.ok("Email/changes", {"sinceState": state})["updated"] == [eid]


@pytest.mark.parametrize("patch, error", [
    ({"keywords/a/b": True}, "invalidPatch"),
    ({"subject": "x"}, "invalidProperties"),
    ({"subject/x": "x"}, "invalidPatch"),
    ({"nope": 1}, "invalidProperties"),
    ({"keywords/$seen": False}, "invalidPatch"),
    ({"keywords/bad(kw": True}, "invalidPatch"),
    ({"keywords": {"$seen": True}, "keywords/$draft": True}, "invalidPatch"),
    ({"keywords": {"x" * 300: True}}, "invalidProperties"),
    ({"keywords": ["$seen"]}, "invalidProperties"),
    ({"mailboxIds": {}}, "invalidProperties"),
    ({"mailboxIds/zzzzzzz": True}, "invalidProperties"),
    ({"mailboxIds": {"a": False}}, "invalidProperties"),
    ({"mailboxIds/~1..~1": True}, "invalidProperties"),
])
def test_hostile_patches_are_set_errors(alice, patch, error):
    boxes = alice.mailboxes()
    eid = alice.import_(message())["id"]
    got = alice.ok("Email/set", {"update": {eid: patch}})
    assert got["notUpdated"][eid]["type"] == error, got
    e = alice.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]})["list"][0]
    assert e == {"id": eid, "keywords": {}, "mailboxIds": {boxes["inbox"]: True}}


def test_removing_the_last_mailbox_is_refused(alice):
    boxes = alice.mailboxes()
    eid = alice.import_(message())["id"]
    got = alice.ok("Email/set", {"update": {eid: {f"mailboxIds/{boxes['inbox']}": None}}})
    assert got["notUpdated"][eid]["type"] == "invalidProperties"


def test_create_a_draft_from_structured_properties(alice):
    boxes = alice.mailboxes()
    blob = alice.upload(b"%PDF-1.4 attachment bytes")
    got = alice.ok("Email/set", {"create": {"d": {
        "mailboxIds": {boxes["drafts"]: True}, "keywords": {"$draft": True},
        "from": [{"name": "Alice Ä", "email": "alice@example.org"}], "to": [{"email": "bob@example.com"}],
        "subject": "Draft ☃", "inReplyTo": ["orig@x"], "references": ["orig@x"],
        "textBody": [{"partId": "t", "type": "text/plain"}], "htmlBody": [{"partId": "h", "type": "text/html"}],
        "bodyValues": {"t": {"value": "Hello Bob"}, "h": {"value": "<p>Hello <b>Bob</b></p>"}},
        "attachments": [{"blobId": blob, "type": "application/pdf", "name": "a.pdf"}],
    }}})
    assert "d" in got["created"], got
    eid = got["created"]["d"]["id"]
    e = alice.ok("Email/get", {"ids": [eid], "fetchTextBodyValues": True, "properties": [
        "from", "to", "subject", "inReplyTo", "hasAttachment", "textBody", "htmlBody", "attachments", "bodyValues",
        "keywords", "mailboxIds", "messageId", "blobId"]})["list"][0]
    assert e["from"] == [{"name": "Alice Ä", "email": "alice@example.org"}]
    assert e["subject"] == "Draft ☃" and e["inReplyTo"] == ["orig@x"] and e["hasAttachment"] is True
    assert e["bodyValues"][e["textBody"][0]["partId"]]["value"].strip() == "Hello Bob"
    assert e["attachments"][0]["name"] == "a.pdf" and e["messageId"][0].endswith("@example.org")
    # The stored message is a real RFC 5322 message Python reads back.
    raw = store.raw_message(Email.objects.get(pk=store.ids.decode(eid)))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Draft ☃" and parsed.get_body(("plain",)).get_content().strip() == "Hello Bob"


@pytest.mark.parametrize("values, error", [
    ({}, "invalidProperties"),
    ({"id": "x"}, "invalidProperties"),
    ({"subject": "line\r\nBcc: evil@x"}, "invalidProperties"),
    ({"from": [{"email": "a@b", "name": "x\r\nBcc: evil"}]}, "invalidProperties"),
    ({"from": "alice"}, "invalidProperties"),
    ({"textBody": [{"partId": "t"}]}, "invalidProperties"),
    ({"attachments": [{"blobId": "nope"}]}, "blobNotFound"),
    ({"headers": []}, "invalidProperties"),
    ({"messageId": ["a b"]}, "invalidProperties"),
])
def test_bad_drafts_are_set_errors(alice, values, error):
    boxes = alice.mailboxes()
    values = {"mailboxIds": {boxes["drafts"]: True}, **values} if values else {}
    got = alice.ok("Email/set", {"create": {"d": values}})
    assert got["notCreated"]["d"]["type"] == error, got
    assert Email.objects.filter(account_id=alice.pk).count() == 0


def test_over_quota_is_the_set_error(alice):
    boxes = alice.mailboxes()
    Account.objects.filter(pk=alice.pk).update(max_disk_quota=100)
    got = alice.ok("Email/set", {"create": {"d": {
        "mailboxIds": {boxes["drafts"]: True}, "subject": "big",
        "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x" * 500}}}}})
    assert got["notCreated"]["d"]["type"] == "overQuota"
    assert Email.objects.filter(account_id=alice.pk).count() == 0


def test_import_refusals(alice, mallory):
    boxes = alice.mailboxes()
    theirs = mallory.upload(message())
    got = alice.ok("Email/import", {"emails": {
        "a": {"blobId": theirs, "mailboxIds": {boxes["inbox"]: True}},
        "b": {"blobId": alice.upload(message()), "mailboxIds": {mallory.mailboxes()["inbox"]: True}},
        "c": {"blobId": alice.upload(message()), "mailboxIds": {boxes["inbox"]: True}, "receivedAt": "yesterday"},
        "d": {"mailboxIds": {boxes["inbox"]: True}},
        "e": "x",
    }})
    assert got["notCreated"]["a"]["type"] == "blobNotFound"
    for cid in "bcde":
        assert got["notCreated"][cid]["type"] == "invalidProperties", cid
    assert got["created"] is None
    assert alice.error("Email/import", {"emails": []})["type"] == "invalidArguments"


def test_another_accounts_emails_are_not_found(alice, mallory):
    theirs = mallory.import_(message("secret"))
    got = alice.ok("Email/get", {"ids": [theirs["id"]]})
    assert got["list"] == [] and got["notFound"] == [theirs["id"]]
    got = alice.ok("Email/set", {"update": {theirs["id"]: {"keywords/$seen": True}}, "destroy": [theirs["id"]]})
    assert got["notUpdated"][theirs["id"]]["type"] == "notFound"
    assert got["notDestroyed"][theirs["id"]]["type"] == "notFound"
    assert alice.ok("Thread/get", {"ids": [theirs["threadId"]]})["notFound"] == [theirs["threadId"]]
    assert alice.ok("Email/query", {"filter": {"inMailbox": mallory.mailboxes()["inbox"]}})["ids"] == []
    assert alice.ok("Email/parse", {"blobIds": [theirs["blobId"]]})["notFound"] == [theirs["blobId"]]
    got = alice.error("Email/copy", {"fromAccountId": mallory.account_id, "create": {"c": {
        "id": theirs["id"], "mailboxIds": {alice.mailboxes()["inbox"]: True}}}})
    assert got["type"] == "fromAccountNotFound"
    assert mallory.ok("Email/get", {"ids": [theirs["id"]], "properties": ["keywords"]})["list"][0]["keywords"] == {}


def test_copy_within_one_account_is_invalid_arguments(alice):
    eid = alice.import_(message())["id"]
    got = alice.error("Email/copy", {"fromAccountId": alice.account_id, "create": {"c": {
        "id": eid, "mailboxIds": {alice.mailboxes()["inbox"]: True}}}})
    assert got["type"] == "invalidArguments"


def test_parse_a_blob_without_storing(alice):
    blob = alice.upload(HTML_MESSAGE)
    got = alice.ok("Email/parse", {"blobIds": [blob, "nope"], "fetchTextBodyValues": True})
    parsed = got["parsed"][blob]
    assert parsed["subject"] == "Café" and parsed["bodyValues"][parsed["textBody"][0]["partId"]]["value"].startswith(
        "Plain")
    assert got["notFound"] == ["nope"]
    assert Email.objects.filter(account_id=alice.pk).count() == 0


def test_query_filters(alice):
    boxes = alice.mailboxes()
    old = alice.import_(message("Budget", body="numbers", sender="boss@corp.example", extra="X-Prio: high"),
                        received_at="2026-01-01T00:00:00Z", keywords={"$seen": True})
    new = alice.import_(HTML_MESSAGE, received_at="2026-06-01T00:00:00Z", keywords={"$flagged": True})
    arch = alice.import_(message("Archived", message_id="z@x"), mailbox="archive", received_at="2026-03-01T00:00:00Z")

    def q(filt, **kw):
        return alice.ok("Email/query", {"filter": filt, **kw})["ids"]

    assert q({"inMailbox": boxes["inbox"]}) == [new["id"], old["id"]]
    assert q({"inMailboxOtherThan": [boxes["inbox"]]}) == [arch["id"]]
    assert q({"before": "2026-02-01T00:00:00Z"}) == [old["id"]]
    assert q({"after": "2026-02-01T00:00:00Z"}) == [new["id"], arch["id"]]
    assert q({"minSize": len(HTML_MESSAGE)}) == [new["id"]]
    assert q({"maxSize": len(HTML_MESSAGE)}) == [arch["id"], old["id"]]
    assert q({"hasKeyword": "$SEEN"}) == [old["id"]]
    assert q({"inMailbox": boxes["inbox"], "notKeyword": "$seen"}) == [new["id"]]
    assert q({"hasAttachment": True}) == [new["id"]]
    assert q({"someInThreadHaveKeyword": "$flagged"}) == [new["id"]]
    assert q({"noneInThreadHaveKeyword": "$flagged"}) == [arch["id"], old["id"]]
    assert q({"allInThreadHaveKeyword": "$seen"}) == [old["id"]]
    assert q({"from": "boss@corp"}) == [old["id"]]
    assert q({"subject": "café"}) == [new["id"]]
    assert q({"body": "NUMBERS"}) == [old["id"]]
    assert q({"text": "carol"}) == [new["id"]]
    assert q({"header": ["X-Prio"]}) == [old["id"]]
    assert q({"header": ["x-prio", "HIGH"]}) == [old["id"]]
    assert q({"header": ["X-Prio", "low"]}) == []
    assert q({"operator": "OR", "conditions": [{"hasKeyword": "$seen"}, {"hasKeyword": "$flagged"}]}) == [
        new["id"], old["id"]]
    assert q({"operator": "NOT", "conditions": [{"inMailbox": boxes["inbox"]}]}) == [arch["id"]]
    for bad in ({"nope": 1}, {"before": "yesterday"}, {"hasKeyword": "a b"}, {"minSize": -1},
                {"header": []}, {"header": ["a:b"]}, {"operator": "XOR", "conditions": []}, {"inMailbox": 3}):
        assert alice.error("Email/query", {"filter": bad})["type"] == "unsupportedFilter", bad


def test_query_sorts_windows_and_collapse(alice):
    boxes = alice.mailboxes()
    a = alice.import_(message("b subject", message_id="1@x", name="Zed"), received_at="2026-01-01T00:00:00Z")
    b = alice.import_(message("Re: b subject", message_id="2@x", in_reply_to="1@x", name="amy"),
                      received_at="2026-01-02T00:00:00Z", keywords={"$flagged": True})
    c = alice.import_(message("a subject", message_id="3@x", name="Bob", body="x" * 500),
                      received_at="2026-01-03T00:00:00Z")
    inbox = {"inMailbox": boxes["inbox"]}

    def q(sort, **kw):
        return alice.ok("Email/query", {"filter": inbox, "sort": sort, **kw})

    assert q([{"property": "receivedAt"}])["ids"] == [a["id"], b["id"], c["id"]]
    assert q([{"property": "size", "isAscending": False}])["ids"][0] == c["id"]
    assert q([{"property": "from"}])["ids"] == [b["id"], c["id"], a["id"]]
    assert q([{"property": "subject"}, {"property": "receivedAt"}])["ids"] == [c["id"], a["id"], b["id"]]
    assert q([{"property": "hasKeyword", "keyword": "$flagged", "isAscending": False},
              {"property": "receivedAt"}])["ids"] == [b["id"], a["id"], c["id"]]
    assert q([{"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
              {"property": "receivedAt"}])["ids"] == [a["id"], b["id"], c["id"]]
    newest = [{"property": "receivedAt", "isAscending": False}]
    assert q(newest, collapseThreads=True)["ids"] == [c["id"], b["id"]]
    got = q(newest, collapseThreads=True, calculateTotal=True, position=1)
    assert got["ids"] == [b["id"]] and got["total"] == 2 and got["position"] == 1
    got = q(newest, anchor=b["id"], anchorOffset=-1, limit=2)
    assert got["ids"] == [c["id"], b["id"]] and got["position"] == 0
    got = q(newest, position=-1, calculateTotal=True)
    assert got["ids"] == [a["id"]] and got["total"] == 3
    got = q(newest, position=1, limit=1, calculateTotal=True)
    assert got["ids"] == [b["id"]] and got["total"] == 3
    assert alice.error("Email/query", {"anchor": "zzz"})["type"] == "anchorNotFound"
    assert alice.error("Email/query", {"sort": [{"property": "preview"}]})["type"] == "unsupportedSort"
    assert alice.error("Email/query", {"sort": [{"property": "hasKeyword"}]})["type"] == "unsupportedFilter"
    assert alice.error("Email/query", {"limit": -1})["type"] == "invalidArguments"


def test_query_with_result_references_and_query_changes(alice):
    boxes = alice.mailboxes()
    first = alice.import_(message("one"), received_at="2026-01-01T00:00:00Z")
    responses = alice.request([
        ["Email/query", {"accountId": alice.account_id, "filter": {"inMailbox": boxes["inbox"]},
                         "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 10}, "q"],
        ["Email/get", {"accountId": alice.account_id, "#ids": {"resultOf": "q", "name": "Email/query",
                                                                "path": "/ids"}, "properties": ["subject"]}, "g"],
    ])
    assert responses[1][1]["list"] == [{"id": first["id"], "subject": "one"}]
    state = responses[0][1]["queryState"]
    second = alice.import_(message("two"), received_at="2026-02-01T00:00:00Z")
    alice.ok("Email/set", {"destroy": [first["id"]]})
    got = alice.ok("Email/queryChanges", {"sinceQueryState": state, "filter": {"inMailbox": boxes["inbox"]},
                                          "sort": [{"property": "receivedAt", "isAscending": False}],
                                          "calculateTotal": True})
    assert got["removed"] == [first["id"]] or set(got["removed"]) == {first["id"]}
    assert got["added"] == [{"id": second["id"], "index": 0}] and got["total"] == 1


def _fill(account_pk, mailbox_pk, n, start=0):
    for i in range(start, start + n):
        store.import_raw(account_pk, message(f"Message {i}", message_id=f"{i}@bulk",
                                             in_reply_to=f"{i - 1}@bulk" if i % 3 else None),
                         [mailbox_pk], keywords={"$seen": True} if i % 2 else {})


def test_query_and_get_query_counts_do_not_grow(alice):
    boxes = alice.mailboxes()
    inbox = store.ids.decode(boxes["inbox"])
    args = {"filter": {"inMailbox": boxes["inbox"], "notKeyword": "$seen"},
            "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}
    counts = []
    for n in (10, 60):
        _fill(alice.pk, inbox, n - (counts and 10 or 0), start=counts and 10 or 0)
        page = []
        with CaptureQueriesContext(connection) as query_ctx:
            page = alice.ok("Email/query", args)["ids"]
        with CaptureQueriesContext(connection) as collapsed_ctx:
            alice.ok("Email/query", {**args, "collapseThreads": True})
        with CaptureQueriesContext(connection) as get_ctx:
            got = alice.ok("Email/get", {"ids": page, "properties": [
                "threadId", "mailboxIds", "keywords", "from", "subject", "receivedAt", "preview", "size"]})
        assert len(got["list"]) == len(page)
        counts.append((len(query_ctx), len(collapsed_ctx), len(get_ctx)))
    assert counts[0] == counts[1], counts


def test_email_get_of_ids_null_is_bounded(alice):
    alice.import_(message())
    got = alice.ok("Email/get", {"ids": None, "properties": ["subject"]})
    assert [e["subject"] for e in got["list"]] == ["Hello"]


def test_huge_inputs_are_refused_properly(alice):
    too_many = [f"id{i}" for i in range(100_000)]
    assert alice.error("Email/get", {"ids": too_many})["type"] == "requestTooLarge"
    assert alice.error("Email/set", {"destroy": too_many})["type"] == "requestTooLarge"
    deep = {"hasKeyword": "x"}
    for _ in range(40):
        deep = {"operator": "NOT", "conditions": [deep]}
    assert alice.error("Email/query", {"filter": deep})["type"] in ("unsupportedFilter", "invalidArguments")
    got = alice.ok("Email/query", {"filter": {"text": "y" * 1000}})
    assert got["ids"] == []
    assert alice.error("Email/query", {"filter": {"text": "y" * 10_000}})["type"] == "unsupportedFilter"


@pytest.mark.parametrize("method", ["Email/query", "Mailbox/query", "SearchSnippet/get"])
def test_a_wide_filter_is_refused_before_any_sql(alice, method):
    """A flat OR of thousands of conditions (well under maxSizeRequest) would compile to an SQL
    expression deeper than SQLite allows: refused as the advertised maxFilterConditions (100),
    like the management objects' /query, never a serverFail."""
    leaf = {"Mailbox/query": {"role": "inbox"}}.get(method, {"hasKeyword": "x"})
    extra = {"emailIds": []} if method == "SearchSnippet/get" else {}
    wide = {"operator": "OR", "conditions": [leaf] * 5000}
    got = alice.error(method, {"filter": wide, **extra})
    assert got["type"] == "unsupportedFilter" and "maxFilterConditions" in got["description"], got
    fits = {"operator": "OR", "conditions": [leaf] * 99}
    assert alice.call(method, {"filter": fits, **extra})[0] == method


def test_blob_lookup_finds_the_email_and_thread_of_a_message(alice):
    created = alice.import_(message())
    got = alice.ok("Blob/lookup", {"typeNames": ["Email", "Thread"], "ids": [created["blobId"]]},
                   using=["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:blob", "urn:ietf:params:jmap:mail"])
    assert got["list"] == [{"id": created["blobId"], "matchedIds": {"Email": [created["id"]],
                                                                    "Thread": [created["threadId"]]}}]


@pytest.mark.parametrize("values", [
    {"from": [{"email": "a b@c d", "name": "x"}]},
    {"from": [{"email": "@", "name": "\u0001\u007f"}]},
    {"to": [{"email": "a@b", "name": "\"" * 5000}]},
    {"from": [{"email": "a@b\r\nBcc: x@y"}]},
    {"subject": "\u2028" * 3000},
    {"sentAt": "2026-13-45T99:00:00Z"},
    {"attachments": [{"blobId": None}]},
    {"attachments": ["x"]},
    {"bodyValues": {"t": "x"}, "textBody": [{"partId": "t"}]},
    {"textBody": [{"partId": "t"}, {"partId": "u"}]},
    {"keywords": {"$seen": 1}},
    {"receivedAt": 5},
])
def test_hostile_drafts_never_fail_the_server(alice, values):
    boxes = alice.mailboxes()
    got = alice.call("Email/set", {"create": {"d": {"mailboxIds": {boxes["drafts"]: True}, **values}}})
    assert got[0] == "Email/set", got
    assert got[1]["created"] is None or "d" in got[1]["created"]
    if got[1]["created"] is None:
        assert got[1]["notCreated"]["d"]["type"] in ("invalidProperties", "blobNotFound"), got


def test_journal_entries_of_one_import_and_one_keyword_change(alice):
    boxes = alice.mailboxes()
    states = {t: alice.ok(f"{t}/get", {"ids": []})["state"] for t in ("Email", "Mailbox", "Thread")}
    created = alice.import_(message())
    assert alice.ok("Email/changes", {"sinceState": states["Email"]})["created"] == [created["id"]]
    assert alice.ok("Thread/changes", {"sinceState": states["Thread"]})["created"] == [created["threadId"]]
    assert alice.ok("Mailbox/changes", {"sinceState": states["Mailbox"]})["updated"] == [boxes["inbox"]]
    states = {t: alice.ok(f"{t}/get", {"ids": []})["state"] for t in ("Email", "Mailbox", "Thread")}
    alice.ok("Email/set", {"update": {created["id"]: {"keywords/$flagged": True}}})
    assert alice.ok("Email/changes", {"sinceState": states["Email"]})["updated"] == [created["id"]]
    # Neither the thread's emails nor a mailbox's counts moved.
    assert alice.ok("Thread/changes", {"sinceState": states["Thread"]})["newState"] == states["Thread"]
    assert alice.ok("Mailbox/changes", {"sinceState": states["Mailbox"]})["newState"] == states["Mailbox"]


def test_copy_from_an_account_the_caller_may_open(client, alice, admin_account):
    admin = Who(client, "admin", admin_account)
    source = alice.import_(HTML_MESSAGE, keywords={"$seen": True})
    target_box = admin.mailboxes()["archive"]
    got = admin.ok("Email/copy", {"fromAccountId": alice.account_id, "onSuccessDestroyOriginal": True,
                                  "create": {"c": {"id": source["id"], "mailboxIds": {target_box: True}},
                                             "x": {"id": "zzzz", "mailboxIds": {target_box: True}}}})
    assert got["notCreated"]["x"]["type"] == "notFound"
    copy = got["created"]["c"]
    assert copy["size"] == source["size"] and copy["blobId"] != source["blobId"]
    e = admin.ok("Email/get", {"ids": [copy["id"]], "properties": ["subject", "keywords", "mailboxIds"]})["list"][0]
    assert e == {"id": copy["id"], "subject": "Café", "keywords": {"$seen": True}, "mailboxIds": {target_box: True}}
    assert alice.ok("Email/get", {"ids": [source["id"]]})["notFound"] == [source["id"]]
