"""Upload, download and the Blob/* methods over HTTP (RFC 8620 §6, RFC 9404), with the
attacker's tests: another account's accountId and blob ids, hostile names, Range abuse, bodies
beyond the limits."""
from __future__ import annotations

import base64
import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from blobs import services as blobs
from blobs.models import AccountBlob, Blob, Hold
from jmapapi.models import Jmap
from jmapapi.objects import JMAP
from registry import services as registry_services
from registry import ids
from tests.clients import Jmap as JmapClient
from tests.clients import basic

CORE = "urn:ietf:params:jmap:core"
BLOB = "urn:ietf:params:jmap:blob"
USING = [CORE, BLOB]


@pytest.fixture
def alice(client, make_account):
    account = make_account("alice")
    return JmapClient(client, basic("alice@example.org")), ids.encode(account.pk)


@pytest.fixture
def mallory(client, make_account):
    account = make_account("mallory")
    return JmapClient(client, basic("mallory@example.org")), ids.encode(account.pk)


def set_limits(**values):
    """Change the Jmap limits through the registry (the state moves, so every reader sees it)."""
    registry_services.update(JMAP, Jmap.load().pk, values, "test")


def upload(who, data: bytes, content_type="application/octet-stream", account=None, **extra):
    jmap, account_id = who
    return jmap.client.generic("POST", f"/jmap/upload/{account or account_id}/", data, content_type=content_type,
                               HTTP_AUTHORIZATION=jmap.auth, **extra)


def download(who, blob_id, name="file.bin", account=None, accept=None, **extra):
    jmap, account_id = who
    query = f"?accept={accept}" if accept is not None else ""
    return jmap.client.get(f"/jmap/download/{account or account_id}/{blob_id}/{name}{query}",
                           HTTP_AUTHORIZATION=jmap.auth, **extra)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def call(who, name, args, using=USING):
    jmap, account_id = who
    return jmap.call(name, {"accountId": account_id, **args}, using=using)


# --- session ---------------------------------------------------------------------------------
def test_session_advertises_the_blob_capability_and_working_urls(alice):
    jmap, account_id = alice
    doc = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()
    assert doc["capabilities"][BLOB] == {}
    cap = doc["accounts"][account_id]["accountCapabilities"][BLOB]
    limits = Jmap.load()
    assert cap == {"maxSizeBlobSet": limits.max_request_size * 3 // 4 - 512, "maxDataSources": 64,
                   "supportedTypeNames": sorted(blobs.DATA_TYPES), "supportedDigestAlgorithms": ["sha", "sha-256", "sha-512"]}
    assert doc["primaryAccounts"][BLOB] == account_id
    got = upload(alice, b"hello")
    assert got.status_code == 201
    url = doc["downloadUrl"].format(accountId=account_id, blobId=got.json()["blobId"], name="a.txt",
                                    type="text/plain")
    assert body(jmap.client.get(url, HTTP_AUTHORIZATION=jmap.auth)) == b"hello"


def test_an_account_without_jmapBlobGet_is_not_offered_the_capability(client, make_account):
    account = make_account("carol", enabled_permissions=[], disabled_permissions=["jmapBlobGet"],
                           permissions_mode="merge")
    doc = client.get("/jmap/session", HTTP_AUTHORIZATION=basic("carol@example.org")).json()
    assert BLOB not in doc["accounts"][ids.encode(account.pk)]["accountCapabilities"]
    assert BLOB not in doc["primaryAccounts"]


# --- upload ----------------------------------------------------------------------------------
def test_upload_answers_rfc8620_fields_and_stores_once(alice):
    got = upload(alice, b"x" * 1000, "image/png")
    assert got.status_code == 201
    answer = got.json()
    assert answer == {"accountId": alice[1], "blobId": answer["blobId"], "type": "image/png", "size": 1000}
    again = upload(alice, b"x" * 1000, "image/png").json()
    assert again["blobId"] == answer["blobId"]
    assert Blob.objects.count() == 1
    blob = Blob.objects.get()
    assert blob.digest == hashlib.sha256(b"x" * 1000).hexdigest()
    assert blobs.storage().exists(blob.name)


def test_same_bytes_in_two_accounts_share_storage_not_ids(alice, mallory):
    a = upload(alice, b"shared secret").json()["blobId"]
    m = upload(mallory, b"shared secret").json()["blobId"]
    assert a != m
    assert Blob.objects.count() == 1 and AccountBlob.objects.count() == 2
    # Mallory knows the bytes, and still cannot read Alice's id, in any face.
    assert download(mallory, a).status_code == 404
    assert call(mallory, "Blob/get", {"ids": [a]})[1]["notFound"] == [a]


def test_upload_without_content_type_is_octet_stream_and_empty_body_is_an_empty_blob(alice):
    jmap, account_id = alice
    got = jmap.client.generic("POST", f"/jmap/upload/{account_id}/", b"", content_type="",
                              HTTP_AUTHORIZATION=jmap.auth)
    assert got.status_code == 201
    assert got.json()["type"] == "application/octet-stream" and got.json()["size"] == 0
    assert body(download(alice, got.json()["blobId"])) == b""


def test_hostile_content_type_is_not_echoed(alice):
    got = upload(alice, b"x", content_type="text/html\r\nX-Evil: 1")
    assert got.status_code in (201, 400)
    if got.status_code == 201:
        assert got.json()["type"] == "application/octet-stream"


def test_upload_beyond_max_size_upload_is_the_limit_problem(alice):
    set_limits(max_upload_size=100)
    got = upload(alice, b"x" * 101)
    assert got.status_code == 400
    assert got["Content-Type"] == "application/problem+json"
    assert got.json()["type"] == "urn:ietf:params:jmap:error:limit" and got.json()["limit"] == "maxSizeUpload"
    assert Blob.objects.count() == 0
    assert upload(alice, b"x" * 100).status_code == 201


def test_a_huge_content_length_is_refused_before_reading(alice):
    got = upload(alice, b"x", CONTENT_LENGTH=str(10 ** 15))
    assert got.status_code == 400 and got.json()["limit"] == "maxSizeUpload"
    bad = upload(alice, b"x", CONTENT_LENGTH="12abc")
    assert bad.status_code == 400 and bad["Content-Type"] == "application/problem+json"


def test_disk_quota_is_enforced_on_upload(alice):
    from accounts.models import Account

    Account.objects.filter(pk=ids.decode(alice[1])).update(max_disk_quota=1500)
    assert upload(alice, b"a" * 1000).status_code == 201
    over = upload(alice, b"b" * 1000)
    assert over.status_code == 403
    assert over.json()["title"] == "Quota exceeded"
    # The same content again costs nothing: it is held already.
    assert upload(alice, b"a" * 1000).status_code == 201
    assert Blob.objects.count() == 1


def test_upload_quota_per_window(alice):
    set_limits(max_upload_count=2)
    assert upload(alice, b"1").status_code == 201
    assert upload(alice, b"2").status_code == 201
    got = upload(alice, b"3")
    assert got.status_code == 429
    assert got["Retry-After"] and "blob-upload-files" in got["RateLimit-Policy"]


def test_another_accounts_upload_url_is_404_and_writes_nothing(alice, mallory):
    got = upload(mallory, b"planted", account=alice[1])
    assert got.status_code == 404
    assert got["Content-Type"] == "application/problem+json"
    for garbage in ("not-an-id", "zzzzzzzzzzzzzzzz", "a" * 300):
        assert upload(mallory, b"x", account=garbage).status_code == 404
    assert not AccountBlob.objects.filter(account_id=ids.decode(alice[1])).exists()


def test_upload_needs_credentials_and_post(alice, client):
    _, account_id = alice
    anon = client.generic("POST", f"/jmap/upload/{account_id}/", b"x", content_type="text/plain")
    assert anon.status_code == 401 and "WWW-Authenticate" in anon
    wrong = client.get(f"/jmap/upload/{account_id}/", HTTP_AUTHORIZATION=alice[0].auth)
    assert wrong.status_code == 405
    preflight = client.options(f"/jmap/upload/{account_id}/")
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == "*"


# --- download --------------------------------------------------------------------------------
def test_download_type_name_and_caching(alice):
    blob_id = upload(alice, b"%PDF-1.7 data").json()["blobId"]
    got = download(alice, blob_id, "report.pdf", accept="application/pdf")
    assert got.status_code == 200 and body(got) == b"%PDF-1.7 data"
    assert got["Content-Type"] == "application/pdf"
    assert got["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert got["Cache-Control"] == "private, immutable, max-age=31536000"
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["Content-Length"] == "13"
    again = download(alice, blob_id, "report.pdf", HTTP_IF_NONE_MATCH=got["ETag"])
    assert again.status_code == 304
    plain = download(alice, blob_id)
    assert plain["Content-Type"] == "application/octet-stream"


# CR LF before ";" was taken as optional whitespace: Django then refused the header (a 500).
@pytest.mark.parametrize("accept", ["text/html\r\nSet-Cookie: x=1", "no-slash", "a/b; c=\"d\re\"",
                                    "text/plain\r\n;a=b", "text/plain;\ra=b"])
def test_hostile_accept_falls_back_to_octets(alice, accept):
    blob_id = upload(alice, b"<script>").json()["blobId"]
    got = download(alice, blob_id, accept=accept.replace("\r", "%0D").replace("\n", "%0A"))
    assert got.status_code == 200
    assert got["Content-Type"] == "application/octet-stream"
    assert "Set-Cookie" not in got


@pytest.mark.parametrize("name, expected", [
    ("a%0D%0ASet-Cookie:%20x=1.txt", 'attachment; filename="a  Set-Cookie: x=1.txt"'),
    ('quo%22te%22.txt', "attachment; filename=\"quo_te_.txt\"; filename*=UTF-8''quo%22te%22.txt"),
    ("..%2F..%2Fetc%2Fpasswd", 'attachment; filename="_.._etc_passwd"'),
    ("dir/sub/evil.sh", 'attachment; filename="dir_sub_evil.sh"'),
    ("r%C3%A9sum%C3%A9.pdf", "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
    ("back%5Cslash", 'attachment; filename="back_slash"'),
])
def test_content_disposition_of_hostile_names(alice, name, expected):
    blob_id = upload(alice, b"data").json()["blobId"]
    got = download(alice, blob_id, name)
    assert got.status_code == 200
    assert got["Content-Disposition"] == expected
    assert "\r" not in got["Content-Disposition"] and "\n" not in got["Content-Disposition"]
    assert "Set-Cookie" not in got


@pytest.mark.parametrize("range_header, status, content, content_range", [
    ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
    ("bytes=5-", 206, b"56789", "bytes 5-9/10"),
    ("bytes=-3", 206, b"789", "bytes 7-9/10"),
    ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
    ("bytes=10-", 416, None, "bytes */10"),
    ("bytes=99999999999999999999999-", 416, None, "bytes */10"),
    ("bytes=-0", 416, None, "bytes */10"),
    ("bytes=0-1,3-4", 200, b"0123456789", None),  # several ranges: the whole blob
    ("bytes=5-2", 200, b"0123456789", None),  # invalid: ignored
    ("items=0-1", 200, b"0123456789", None),
    ("bytes=-", 200, b"0123456789", None),
])
def test_range_requests(alice, range_header, status, content, content_range):
    blob_id = upload(alice, b"0123456789").json()["blobId"]
    got = download(alice, blob_id, HTTP_RANGE=range_header)
    assert got.status_code == status
    if content is not None:
        assert body(got) == content
        assert got["Content-Length"] == str(len(content))
    else:
        assert got["Content-Type"] == "application/problem+json"
    assert got.get("Content-Range") == content_range


def test_if_range_with_another_etag_sends_the_whole_blob(alice):
    blob_id = upload(alice, b"0123456789").json()["blobId"]
    got = download(alice, blob_id, HTTP_RANGE="bytes=0-1", HTTP_IF_RANGE='"other"')
    assert got.status_code == 200 and body(got) == b"0123456789"


def test_download_of_other_accounts_and_bad_ids_is_404(alice, mallory):
    blob_id = upload(alice, b"alice's").json()["blobId"]
    for who, account, blob in [(mallory, mallory[1], blob_id), (mallory, alice[1], blob_id),
                               (alice, alice[1], "nosuchblob"), (alice, alice[1], "a" * 300),
                               (alice, "bad-account", blob_id), (alice, mallory[1], blob_id)]:
        got = download(who, blob, account=account)
        assert got.status_code == 404, (account, blob)
        assert got["Content-Type"] == "application/problem+json"


def test_download_is_two_queries_when_the_verdict_is_cached(alice):
    blob_id = upload(alice, b"hot path").json()["blobId"]
    download(alice, blob_id)
    with CaptureQueriesContext(connection) as queries:
        assert body(download(alice, blob_id)) == b"hot path"
    # The edge's states and the blob's row; nothing per chunk.
    assert len(queries) <= 2, [q["sql"] for q in queries]


# --- Blob/upload -----------------------------------------------------------------------------
def test_blob_upload_concatenates_sources_and_resolves_creation_ids(alice):
    first = upload(alice, b"0123456789").json()["blobId"]
    jmap, account_id = alice
    resp = jmap.post({"using": USING, "methodCalls": [
        ["Blob/upload", {"accountId": account_id, "create": {
            "a": {"data": [{"data:asText": "héllo "}, {"data:asBase64": base64.b64encode(b"\x00\xff").decode()},
                           {"blobId": first, "offset": 2, "length": 3}], "type": "text/plain"},
            "b": {"data": [{"blobId": "#a"}, {"data:asText": "!"}]},
        }}, "u"],
        ["Blob/get", {"accountId": account_id, "ids": ["#a", "#b"], "properties": ["data:asBase64", "size"]}, "g"],
    ]})
    assert resp.status_code == 200, resp.content
    (_, created, _), (_, got, _) = resp.json()["methodResponses"]
    a = "héllo ".encode() + b"\x00\xff" + b"234"
    assert created["created"]["a"]["size"] == len(a) and created["created"]["a"]["type"] == "text/plain"
    assert [base64.b64decode(x["data:asBase64"]) for x in got["list"]] == [a, a + b"!"]


@pytest.mark.parametrize("obj, error", [
    ({"data": []}, "invalidProperties"),
    ({"data": "x"}, "invalidProperties"),
    ({}, "invalidProperties"),
    ({"data": [{"data:asText": "a", "data:asBase64": "YQ=="}]}, "invalidProperties"),
    ({"data": [{"data:asBase64": "!!!"}]}, "invalidProperties"),
    ({"data": [{"data:asText": "a", "offset": 1}]}, "invalidProperties"),
    ({"data": [{"blobId": "nosuch"}]}, "notFound"),
    ({"data": [{"blobId": "#nosuch"}]}, "notFound"),
    ({"data": [{"blobId": 5}]}, "invalidProperties"),
    ({"data": [{"data:asText": "x"}] * 65}, "tooManyDataSources"),
    ({"data": [{"data:asText": "x"}], "type": 3}, "invalidProperties"),
])
def test_blob_upload_refusals_are_set_errors(alice, obj, error):
    name, answer, _ = call(alice, "Blob/upload", {"create": {"x": obj}})
    assert name == "Blob/upload"
    assert answer["notCreated"]["x"]["type"] == error
    assert answer["created"] is None


def test_blob_upload_offsets_past_the_end_and_too_large(alice):
    first = upload(alice, b"0123").json()["blobId"]
    _, answer, _ = call(alice, "Blob/upload", {"create": {"x": {"data": [{"blobId": first, "offset": 3, "length": 5}]}}})
    assert answer["notCreated"]["x"]["type"] == "invalidProperties"
    set_limits(max_request_size=2048)
    big = "x" * (2048 * 3 // 4 - 511)
    _, answer, _ = call(alice, "Blob/upload", {"create": {"x": {"data": [{"data:asText": big}]}}})
    assert answer["notCreated"]["x"]["type"] == "tooLarge"


def test_blob_upload_cannot_read_another_accounts_blob(alice, mallory):
    secret = upload(alice, b"alice only").json()["blobId"]
    _, answer, _ = call(mallory, "Blob/upload", {"create": {"x": {"data": [{"blobId": secret}]}}})
    assert answer["notCreated"]["x"]["type"] == "notFound"
    # And into Alice's account: the engine refuses the accountId.
    _, answer, _ = mallory[0].call("Blob/upload", {"accountId": alice[1], "create": {"x": {"data": [
        {"data:asText": "planted"}]}}}, using=USING)
    assert answer["type"] == "accountNotFound"


def test_blob_upload_over_quota_and_request_too_large(alice):
    from accounts.models import Account

    Account.objects.filter(pk=ids.decode(alice[1])).update(max_disk_quota=3)
    _, answer, _ = call(alice, "Blob/upload", {"create": {"x": {"data": [{"data:asText": "four"}]}}})
    assert answer["notCreated"]["x"]["type"] == "overQuota"
    set_limits(set_max_objects=1)
    name, answer, _ = call(alice, "Blob/upload", {"create": {"a": {"data": [{"data:asText": "1"}]},
                                                             "b": {"data": [{"data:asText": "2"}]}}})
    assert name == "error" and answer["type"] == "requestTooLarge"


def test_blob_methods_need_the_capability_in_using(alice):
    name, answer, _ = call(alice, "Blob/get", {"ids": []}, using=[CORE])
    assert name == "error" and answer["type"] == "unknownMethod"


def test_blob_copy_answers_with_core_or_blob_in_using(alice):
    """RFC 8620 §6.3 puts Blob/copy in the core capability (a client such as jmaplib names only
    core); the reference files it under the blob capability. Either is enough, neither is not."""
    blob_id = upload(alice, b"mine").json()["blobId"]
    for using in ([CORE], [CORE, BLOB], [BLOB]):
        name, answer, _ = call(alice, "Blob/copy", {"fromAccountId": alice[1], "blobIds": [blob_id]}, using=using)
        assert name == "Blob/copy" and answer["copied"] == {blob_id: blob_id}, (using, answer)
    name, answer, _ = call(alice, "Blob/copy", {"fromAccountId": alice[1], "blobIds": [blob_id]},
                           using=["urn:ietf:params:jmap:mail"])
    assert name == "error" and answer["type"] == "unknownMethod"


# --- Blob/get --------------------------------------------------------------------------------
def test_blob_get_properties_ranges_and_digests(alice):
    data = "héllo wörld".encode()
    blob_id = upload(alice, data).json()["blobId"]
    _, answer, _ = call(alice, "Blob/get", {"ids": [blob_id, "missing"], "properties": [
        "data:asText", "data:asBase64", "digest:sha", "digest:sha-256", "digest:sha-512", "size"]})
    assert answer["notFound"] == ["missing"]
    [item] = answer["list"]
    assert item == {
        "id": blob_id, "size": len(data), "data:asText": data.decode(),
        "data:asBase64": base64.b64encode(data).decode(),
        "digest:sha": base64.b64encode(hashlib.sha1(data).digest()).decode(),
        "digest:sha-256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "digest:sha-512": base64.b64encode(hashlib.sha512(data).digest()).decode(),
    }
    _, answer, _ = call(alice, "Blob/get", {"ids": [blob_id], "properties": ["data", "digest:sha-256"],
                                            "offset": 7, "length": 100})
    [item] = answer["list"]
    assert item["data:asText"] == data[7:].decode() and item["isTruncated"] is True
    assert item["digest:sha-256"] == base64.b64encode(hashlib.sha256(data[7:]).digest()).decode()


def test_blob_get_binary_as_text_is_an_encoding_problem(alice):
    blob_id = upload(alice, b"\xff\xfe\x00").json()["blobId"]
    _, answer, _ = call(alice, "Blob/get", {"ids": [blob_id], "properties": ["data:asText"]})
    assert answer["list"][0] == {"id": blob_id, "data:asText": None, "isEncodingProblem": True}
    _, answer, _ = call(alice, "Blob/get", {"ids": [blob_id], "properties": ["data"]})
    assert answer["list"][0] == {"id": blob_id, "data:asBase64": "//4A"}


@pytest.mark.parametrize("args, error", [
    ({"ids": "x"}, "invalidArguments"),
    ({"ids": [1]}, "invalidArguments"),
    ({"ids": [], "properties": ["nope"]}, "invalidArguments"),
    ({"ids": [], "offset": -1}, "invalidArguments"),
    ({"ids": [], "length": "3"}, "invalidArguments"),
    ({"ids": [], "offset": True}, "invalidArguments"),
])
def test_blob_get_bad_arguments(alice, args, error):
    name, answer, _ = call(alice, "Blob/get", args)
    assert name == "error" and answer["type"] == error


def test_blob_get_is_one_query_for_many_ids(alice):
    made = [upload(alice, bytes([i])).json()["blobId"] for i in range(20)]
    jmap, account_id = alice
    with CaptureQueriesContext(connection) as queries:
        _, answer, _ = call(alice, "Blob/get", {"ids": made, "properties": ["size"]})
    assert len(answer["list"]) == 20
    assert len(queries) <= 3, [q["sql"] for q in queries]


# --- Blob/lookup -----------------------------------------------------------------------------
def test_blob_lookup_without_types_and_with_unknown_types(alice):
    blob_id = upload(alice, b"x").json()["blobId"]
    _, answer, _ = call(alice, "Blob/lookup", {"typeNames": [], "ids": [blob_id, "nope"]})
    assert answer["list"] == [{"id": blob_id, "matchedIds": {}}] and answer["notFound"] == ["nope"]
    name, answer, _ = call(alice, "Blob/lookup", {"typeNames": ["NoSuchType"], "ids": [blob_id]})
    assert name == "error" and answer["type"] == "unknownDataType"


def test_blob_lookup_answers_from_registered_types(alice, mallory, monkeypatch):
    monkeypatch.setitem(blobs.DATA_TYPES, "Note", blobs.DataType("Note", "note", lambda owners: [f"N{o}" for o in owners]))
    blob_id = upload(alice, b"referenced").json()["blobId"]
    pk = ids.decode(alice[1])
    blobs.hold(pk, blob_id, "note", "7")
    blobs.hold(pk, blob_id, "note", "9")
    _, answer, _ = call(alice, "Blob/lookup", {"typeNames": ["Note"], "ids": [blob_id]})
    assert answer["list"] == [{"id": blob_id, "matchedIds": {"Note": ["N7", "N9"]}}]
    # Mallory's same bytes know nothing of Alice's notes.
    other = upload(mallory, b"referenced").json()["blobId"]
    _, answer, _ = call(mallory, "Blob/lookup", {"typeNames": ["Note"], "ids": [other, blob_id]})
    assert answer["list"] == [{"id": other, "matchedIds": {"Note": []}}] and answer["notFound"] == [blob_id]
    jmap, account_id = alice
    doc = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()
    assert doc["accounts"][account_id]["accountCapabilities"][BLOB]["supportedTypeNames"] == sorted(blobs.DATA_TYPES)
    assert "Note" in blobs.DATA_TYPES


# --- Blob/copy -------------------------------------------------------------------------------
def test_blob_copy_between_accounts_needs_access_to_both(alice, mallory, make_account, client):
    secret = upload(alice, b"alice's file").json()["blobId"]
    # Mallory names Alice's account as the source: not hers.
    name, answer, _ = call(mallory, "Blob/copy", {"fromAccountId": alice[1], "blobIds": [secret]})
    assert name == "error" and answer["type"] == "fromAccountNotFound"
    # Her own account as the source, Alice's blob id: notFound.
    _, answer, _ = call(mallory, "Blob/copy", {"fromAccountId": mallory[1], "blobIds": [secret]})
    assert answer["notCopied"][secret]["type"] == "notFound" and answer["copied"] is None
    # An impersonating administrator copies from Alice to itself.
    from accounts.models import Account

    admin = make_account("root", enabled_permissions=["impersonate"], permissions_mode="merge")
    boss = (JmapClient(client, basic("root@example.org")), ids.encode(admin.pk))
    _, answer, _ = call(boss, "Blob/copy", {"fromAccountId": alice[1], "blobIds": [secret]})
    new_id = answer["copied"][secret]
    assert new_id != secret
    assert body(download(boss, new_id)) == b"alice's file"


def test_blob_copy_within_own_account_and_bad_arguments(alice):
    blob_id = upload(alice, b"mine").json()["blobId"]
    _, answer, _ = call(alice, "Blob/copy", {"fromAccountId": alice[1], "blobIds": [blob_id]})
    assert answer["copied"] == {blob_id: blob_id}
    for bad in ({"fromAccountId": 5, "blobIds": []}, {"blobIds": []}):
        name, answer, _ = call(alice, "Blob/copy", bad)
        assert name == "error" and answer["type"] == "fromAccountNotFound"
    name, answer, _ = call(alice, "Blob/copy", {"fromAccountId": alice[1], "blobIds": "x"})
    assert name == "error" and answer["type"] == "invalidArguments"


# --- expiry and collection -------------------------------------------------------------------
def test_an_expired_upload_is_gone_everywhere_and_collected(alice, django_capture_on_commit_callbacks):
    blob_id = upload(alice, b"short-lived").json()["blobId"]
    name = Blob.objects.get().name
    Hold.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert download(alice, blob_id).status_code == 404
    assert call(alice, "Blob/get", {"ids": [blob_id]})[1]["notFound"] == [blob_id]
    with django_capture_on_commit_callbacks(execute=True):
        done = blobs.collect()
    assert (done.holds, done.views, done.blobs) == (1, 1, 1)
    assert not blobs.storage().exists(name)


def test_upload_query_count_is_bounded(alice):
    upload(alice, b"warm the verdict cache")
    with CaptureQueriesContext(connection) as queries:
        assert upload(alice, b"a new blob").status_code == 201
    # The edge's states; the account's lock; the upload window; the content's lock and insert; the
    # view's lock and insert; the hold; and the savepoints (the outer one, the content insert's).
    assert len(queries) <= 12, [q["sql"] for q in queries]


def test_blob_get_default_properties_are_data_and_size(alice):
    text_id = upload(alice, b"plain text").json()["blobId"]
    binary_id = upload(alice, b"\xff\x00").json()["blobId"]
    _, answer, _ = call(alice, "Blob/get", {"ids": [text_id, binary_id]})
    assert answer["list"] == [{"id": text_id, "size": 10, "data:asText": "plain text"},
                              {"id": binary_id, "size": 2, "data:asBase64": "/wA="}]


# --- final hostile-input pass (audit of issue 10) ---------------------------------------------
@pytest.mark.parametrize("length", ["\u00b2", "\u0661", "\uff11"])
def test_a_content_length_of_non_ascii_digits_is_a_400(alice, length):
    # str.isdigit() takes these; int() fails on "²" (was a 500) and reads "١" as 1.
    got = upload(alice, b"x", CONTENT_LENGTH=length)
    assert got.status_code == 400 and got["Content-Type"] == "application/problem+json"
    assert Blob.objects.count() == 0


@pytest.mark.parametrize("blob_id", ["%00", "a%00b", "%ED%A0%80", "%C3%A9", "a-b"])
def test_download_of_ids_outside_the_alphabet_is_404_without_a_query(alice, blob_id):
    # A NUL reached PostgreSQL, which refuses it in text: a 500 there.
    upload(alice, b"x")
    jmap, account_id = alice
    with CaptureQueriesContext(connection) as queries:
        got = jmap.client.get(f"/jmap/download/{account_id}/{blob_id}/x", HTTP_AUTHORIZATION=jmap.auth)
    assert got.status_code == 404 and got["Content-Type"] == "application/problem+json"
    assert not any("blobs_accountblob" in q["sql"] for q in queries.captured_queries)


def test_blob_methods_refuse_ids_with_nul_without_a_server_error(alice):
    upload(alice, b"x")
    for method, args in (("Blob/copy", {"fromAccountId": alice[1], "blobIds": ["a\u0000"]}),
                         ("Blob/get", {"ids": ["a\u0000"]}), ("Blob/lookup", {"typeNames": [], "ids": ["\u0000"]})):
        name, answer, _ = call(alice, method, args)
        assert (name, answer["type"]) == ("error", "invalidArguments"), (method, answer)


@pytest.mark.parametrize("args", [{"offset": 2 ** 53}, {"length": 2 ** 70}, {"offset": -1}])
def test_blob_get_offsets_beyond_unsigned_int_are_invalid_arguments(alice, args):
    blob_id = upload(alice, b"0123").json()["blobId"]
    name, answer, _ = call(alice, "Blob/get", {"ids": [blob_id], **args})
    assert name == "error" and answer["type"] == "invalidArguments"
    assert call(alice, "Blob/get", {"ids": [blob_id], "offset": 2 ** 53 - 1})[1]["list"][0]["isTruncated"] is True


def test_blob_upload_offsets_beyond_unsigned_int_are_invalid_properties(alice):
    blob_id = upload(alice, b"0123").json()["blobId"]
    _, answer, _ = call(alice, "Blob/upload", {"create": {"x": {"data": [{"blobId": blob_id, "length": 2 ** 53}]}}})
    assert answer["notCreated"]["x"]["type"] == "invalidProperties"


@pytest.fixture
def spools(monkeypatch):
    """Every temporary file made (the blob store spools each creation and upload there)."""
    import tempfile

    made = []
    real = tempfile.mkstemp

    def counting(*args, **kwargs):
        made.append(kwargs.get("prefix"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", counting)
    return made


def test_creations_past_the_upload_quota_are_refused_before_they_are_spooled(alice, spools):
    # 50 creations of a 1,000-byte blob with a 3,000-byte window: each refused one was spooled
    # and stored before the refusal (a call of 500 could write 500 x maxSizeBlobSet bytes).
    set_limits(upload_quota=3000)
    source = upload(alice, b"z" * 1000).json()["blobId"]
    spools.clear()
    create = {f"c{i}": {"data": [{"blobId": source}]} for i in range(50)}
    _, answer, _ = call(alice, "Blob/upload", {"create": create})
    assert len(answer["created"]) == 2 and len(answer["notCreated"]) == 48
    assert {e["type"] for e in answer["notCreated"].values()} == {"overQuota"}
    assert len(spools) == 2


def test_an_upload_past_the_window_is_refused_before_its_body_is_read(alice, spools):
    set_limits(upload_quota=300_000)
    assert upload(alice, b"a" * 200_000).status_code == 201
    spools.clear()
    got = upload(alice, b"b" * 200_000)
    assert got.status_code == 429 and got["Retry-After"]
    assert spools == []
    assert upload(alice, b"c" * 100_000).status_code == 201
