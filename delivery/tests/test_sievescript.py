"""SieveScript/get, set, query, queryChanges, changes, validate (RFC 9661) over HTTP, the
capability, Blob/lookup of a script's blob, and what another account may not do."""
from __future__ import annotations

import pytest

from blobs.models import Hold
from delivery.models import SieveScript

from .conftest import SIEVE

pytestmark = pytest.mark.django_db

GOOD = 'require ["fileinto"];\r\nif header :contains "subject" "invoice" { fileinto "Invoices"; }\r\n'
BAD = 'require ["fileinto"];\r\nif header :contains "subject" "x" {\r\n  fileinto "A"\r\n}\r\n'


def test_the_session_advertises_sieve_with_its_limits(alice):
    session = alice.jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=alice.jmap.auth).json()
    assert session["capabilities"][SIEVE] == {"implementation": "Stalwart v1.0.0"}
    cap = session["accounts"][alice.account_id]["accountCapabilities"][SIEVE]
    assert cap["maxSizeScriptName"] == 512 and cap["maxSizeScript"] == 102400
    assert cap["maxNumberScripts"] == 100 and cap["maxNumberRedirects"] == 1
    assert "fileinto" in cap["sieveExtensions"] and "vacation" in cap["sieveExtensions"]
    assert cap["notificationMethods"] is None and cap["externalLists"] is None
    assert session["primaryAccounts"][SIEVE] == alice.account_id


def test_create_get_activate_and_the_blob_is_held(alice):
    blob = alice.upload(GOOD)
    got = alice.ok("SieveScript/set", {"create": {"s": {"name": "rules", "blobId": blob}},
                                       "onSuccessActivateScript": "#s"})
    created = got["created"]["s"]
    assert created["isActive"] is True and created["blobId"] == blob and created["name"] == "rules"
    listed = alice.ok("SieveScript/get", {"ids": None})
    assert listed["list"] == [{"id": created["id"], "name": "rules", "blobId": blob, "isActive": True}]
    assert listed["state"] == got["newState"] != got["oldState"]
    # The script holds its blob: it outlives the upload, and Blob/lookup names the script.
    assert Hold.objects.filter(owner_kind="sievescript", account_blob__jmap_id=blob).count() == 1
    lookup = alice.ok("Blob/lookup", {"typeNames": ["SieveScript"], "ids": [blob]})
    assert lookup["list"] == [{"id": blob, "matchedIds": {"SieveScript": [created["id"]]}}]
    download = alice.jmap.client.get(f"/jmap/download/{alice.account_id}/{blob}/s.sieve?accept=application/sieve",
                                     HTTP_AUTHORIZATION=alice.jmap.auth)
    assert b"".join(download.streaming_content if download.streaming else [download.content]) == GOOD.encode()


def test_an_invalid_script_is_refused_with_its_line_and_column(alice):
    got = alice.ok("SieveScript/set", {"create": {"s": {"name": "bad", "blobId": alice.upload(BAD)}}})
    error = got["notCreated"]["s"]
    assert error["type"] == "invalidSieve" and error["description"].startswith("line 4, column 1:"), error
    assert not SieveScript.objects.exists()
    unsupported = alice.ok("SieveScript/set", {"create": {"s": {"blobId": alice.upload('require "enotify";')}}})
    assert unsupported["notCreated"]["s"]["type"] == "invalidSieve"
    assert "enotify" in unsupported["notCreated"]["s"]["description"]
    not_text = alice.ok("SieveScript/set", {"create": {"s": {"blobId": alice.upload(b"\xff\xfe keep;")}}})
    assert not_text["notCreated"]["s"]["type"] == "invalidSieve"


def test_validate(alice, mallory):
    assert alice.ok("SieveScript/validate", {"blobId": alice.upload(GOOD)})["error"] is None
    error = alice.ok("SieveScript/validate", {"blobId": alice.upload(BAD)})["error"]
    assert error["type"] == "invalidSieve" and "line 4, column 1" in error["description"]
    # Another account's blob is not one this account can read.
    theirs = mallory.upload(GOOD)
    assert alice.error("SieveScript/validate", {"blobId": theirs})["type"] == "invalidArguments"
    assert alice.error("SieveScript/validate", {})["type"] == "invalidArguments"


def test_names_are_unique_and_checked(alice):
    first = alice.install(GOOD, name="rules")
    got = alice.ok("SieveScript/set", {"create": {"s": {"name": "rules", "blobId": alice.upload(GOOD)}}})
    assert got["notCreated"]["s"]["type"] == "alreadyExists"
    assert got["notCreated"]["s"]["existingId"] == first
    for bad in ("", "a\r\nb", "x" * 513, 7):
        got = alice.ok("SieveScript/set", {"create": {"s": {"name": bad, "blobId": alice.upload(GOOD)}}})
        assert got["notCreated"]["s"]["type"] == "invalidProperties", bad
    unnamed = alice.ok("SieveScript/set", {"create": {"s": {"blobId": alice.upload(GOOD)}}})
    assert unnamed["created"]["s"]["name"]
    server_set = alice.ok("SieveScript/set", {"create": {"s": {"blobId": alice.upload(GOOD), "isActive": True}}})
    assert server_set["notCreated"]["s"] == {"type": "invalidProperties", "description": "isActive is set by the server.",
                                             "properties": ["isActive"]}
    renamed = alice.ok("SieveScript/set", {"update": {unnamed["created"]["s"]["id"]: {"name": "rules"}}})
    assert renamed["notUpdated"][unnamed["created"]["s"]["id"]]["type"] == "alreadyExists"


def test_update_replaces_the_blob_and_releases_the_old_one(alice):
    script_id = alice.install(GOOD)
    old = SieveScript.objects.get().blob_id
    new = alice.upload(GOOD + "keep;\r\n")
    got = alice.ok("SieveScript/set", {"update": {script_id: {"blobId": new, "name": "renamed"}}})
    assert got["updated"] == {script_id: None}
    row = SieveScript.objects.get()
    assert (row.blob_id, row.name, row.is_active) == (new, "renamed", True)
    assert not Hold.objects.filter(owner_kind="sievescript", account_blob__jmap_id=old).exists()
    refused = alice.ok("SieveScript/set", {"update": {script_id: {"blobId": alice.upload(BAD)}}})
    assert refused["notUpdated"][script_id]["type"] == "invalidSieve"
    assert SieveScript.objects.get().blob_id == new


def test_the_active_script_cannot_be_destroyed_until_deactivated(alice):
    script_id = alice.install(GOOD)
    got = alice.ok("SieveScript/set", {"destroy": [script_id]})
    assert got["notDestroyed"][script_id]["type"] == "scriptIsActive"
    off = alice.ok("SieveScript/set", {"onSuccessDeactivateScript": True})
    assert off["updated"] == {script_id: {"isActive": False}}
    gone = alice.ok("SieveScript/set", {"destroy": [script_id]})
    assert gone["destroyed"] == [script_id]
    assert not Hold.objects.filter(owner_kind="sievescript").exists()


def test_activation_switches_and_waits_for_every_change_to_succeed(alice):
    first = alice.install(GOOD, name="one")
    second = alice.ok("SieveScript/set", {"create": {"s": {"name": "two", "blobId": alice.upload(GOOD)}}})
    second = second["created"]["s"]["id"]
    # A failed create in the same call: nothing is activated.
    got = alice.ok("SieveScript/set", {"create": {"bad": {"blobId": alice.upload(BAD)}},
                                       "onSuccessActivateScript": second})
    assert got["notCreated"]["bad"]["type"] == "invalidSieve" and got["updated"] is None
    assert SieveScript.objects.get(is_active=True).name == "one"
    got = alice.ok("SieveScript/set", {"onSuccessActivateScript": second})
    assert got["updated"] == {first: {"isActive": False}, second: {"isActive": True}}
    assert list(SieveScript.objects.filter(is_active=True).values_list("name", flat=True)) == ["two"]
    # An id that names nothing is ignored (RFC 9661 §2.2).
    got = alice.ok("SieveScript/set", {"onSuccessActivateScript": "nonexistent"})
    assert got["updated"] is None and SieveScript.objects.get(is_active=True).name == "two"


def test_query_changes_and_query_changes(alice):
    state = alice.ok("SieveScript/get", {"ids": []})["state"]
    a = alice.install(GOOD, name="beta")
    b = alice.ok("SieveScript/set", {"create": {"s": {"name": "alpha", "blobId": alice.upload(GOOD)}}})["created"]["s"]["id"]
    q = alice.ok("SieveScript/query", {"sort": [{"property": "name"}], "calculateTotal": True})
    assert q["ids"] == [b, a] and q["total"] == 2
    assert alice.ok("SieveScript/query", {"filter": {"isActive": True}})["ids"] == [a]
    assert alice.ok("SieveScript/query", {"filter": {"name": "ALP"}})["ids"] == [b]
    assert alice.error("SieveScript/query", {"filter": {"content": "x"}})["type"] == "unsupportedFilter"
    assert alice.error("SieveScript/query", {"sort": [{"property": "blobId"}]})["type"] == "unsupportedSort"
    changes = alice.ok("SieveScript/changes", {"sinceState": state})
    assert set(changes["created"]) == {a, b} and changes["destroyed"] == []
    query_state = q["queryState"]
    alice.ok("SieveScript/set", {"update": {b: {"name": "zulu"}}})
    qc = alice.ok("SieveScript/queryChanges", {"sinceQueryState": query_state, "sort": [{"property": "name"}]})
    assert qc["removed"] == [b] and qc["added"] == [{"id": b, "index": 1}]


def test_too_many_scripts_is_over_quota(alice, settings):
    settings.SIEVE_MAX_SCRIPTS = 1
    alice.install(GOOD)
    got = alice.ok("SieveScript/set", {"create": {"s": {"name": "two", "blobId": alice.upload(GOOD)}}})
    assert got["notCreated"]["s"]["type"] == "overQuota"


def test_another_accounts_scripts_and_blobs_are_out_of_reach(alice, mallory):
    script_id = alice.install(GOOD)
    alice_blob = SieveScript.objects.get().blob_id
    # Mallory names Alice's blob: not one of hers.
    got = mallory.ok("SieveScript/set", {"create": {"s": {"name": "stolen", "blobId": alice_blob}}})
    assert got["notCreated"]["s"]["type"] == "blobNotFound"
    # Alice's script id in Mallory's account is nothing.
    got = mallory.ok("SieveScript/set", {"update": {script_id: {"name": "x"}}, "destroy": [script_id],
                                         "onSuccessActivateScript": script_id})
    assert got["notUpdated"][script_id]["type"] == "notFound"
    assert got["notDestroyed"][script_id]["type"] == "notFound"
    assert mallory.ok("SieveScript/get", {"ids": [script_id]})["notFound"] == [script_id]
    assert mallory.ok("SieveScript/query", {})["ids"] == []
    # And Mallory cannot act in Alice's account.
    got = mallory.jmap.call("SieveScript/get", {"accountId": alice.account_id, "ids": None},
                            using=["urn:ietf:params:jmap:core", SIEVE])
    assert got[0] == "error" and got[1]["type"] in ("accountNotFound", "forbidden")
    row = SieveScript.objects.get()
    assert (row.name, row.is_active, row.account_id) == ("rules", True, alice.pk)


def test_hostile_arguments_are_refused_cleanly(alice):
    for args in ({"create": {"s": "not an object"}}, {"create": {"s": {"blobId": 5}}},
                 {"create": {"s": {"blobId": "a" * 5000}}}, {"update": {"#nope": {"name": "x"}}}):
        got = alice.call("SieveScript/set", args)
        assert got[0] == "SieveScript/set", got
        assert not got[1]["created"] and not got[1]["updated"], got
    # A NUL never reaches the store: the engine refuses the whole call.
    assert alice.error("SieveScript/set", {"create": {"s": {"blobId": "\x00"}}})["type"] == "invalidArguments"
    assert not SieveScript.objects.exists()
    assert alice.error("SieveScript/set", {"onSuccessActivateScript": 5})["type"] == "invalidArguments"
    assert alice.error("SieveScript/get", {"ids": "x"})["type"] == "invalidArguments"
