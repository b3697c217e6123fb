"""Identity/get|changes|set (RFC 8621 §6) over HTTP through the engine: the default identity,
the addresses an account may send as (its own, its aliases, `*@domain` for a catch-all alias),
forbiddenFrom, the immutable email, mayDelete, the journal-backed state, the session's
capability, and the attacker's view (another account's identities are notFound, its account
is accountNotFound)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Alias, Domain
from registry import ids
from submission.models import Identity, VacationResponse
from tests.clients import Jmap, basic

pytestmark = pytest.mark.django_db

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = ["urn:ietf:params:jmap:core", SUBMISSION]


@pytest.fixture
def bob(make_account):
    return make_account("bob", description="Bob Example")


@pytest.fixture
def mallory(make_account):
    return make_account("mallory")


@pytest.fixture
def bob_jmap(client, bob):
    return Jmap(client, basic("bob@example.org"))


@pytest.fixture
def mallory_jmap(client, mallory):
    return Jmap(client, basic("mallory@example.org"))


def call(jmap, name, args, account):
    return jmap.ok(name, {"accountId": ids.encode(account.pk), **args}, using=USING)


def test_the_session_advertises_submission_with_the_reference_values(bob_jmap, bob, client):
    session = client.get("/jmap/session", HTTP_AUTHORIZATION=bob_jmap.auth).json()
    account = ids.encode(bob.pk)
    assert session["capabilities"][SUBMISSION] == {}
    assert session["accounts"][account]["accountCapabilities"][SUBMISSION] == {
        "maxDelayedSend": 2592000,
        "submissionExtensions": {"FUTURERELEASE": [], "SIZE": [], "DSN": [], "DELIVERYBY": [],
                                 "MT-PRIORITY": ["MIXER"], "REQUIRETLS": []}}
    assert session["primaryAccounts"][SUBMISSION] == account


def test_methods_need_the_capability_in_using_and_an_account_id(bob_jmap, bob):
    got = bob_jmap.error("Identity/get", {"accountId": ids.encode(bob.pk)})
    assert got["type"] == "unknownMethod"
    for name in ("Identity/get", "Identity/set", "Identity/changes", "VacationResponse/get", "VacationResponse/set"):
        got = bob_jmap.call(name, {}, using=[*USING, "urn:ietf:params:jmap:vacationresponse"])
        assert got[0] == "error" and got[1]["type"] == "invalidArguments", got


def test_the_first_get_makes_the_default_identity_once(bob_jmap, bob):
    got = call(bob_jmap, "Identity/get", {}, bob)
    [identity] = got["list"]
    assert identity == {"id": identity["id"], "name": "Bob Example", "email": "bob@example.org", "replyTo": None,
                        "bcc": None, "textSignature": "", "htmlSignature": "", "mayDelete": False}
    assert got["state"] == "1" and got["notFound"] == []
    again = call(bob_jmap, "Identity/get", {}, bob)
    assert again["list"] == [identity] and again["state"] == "1"
    changes = call(bob_jmap, "Identity/changes", {"sinceState": "0"}, bob)
    assert changes["created"] == [identity["id"]] and changes["newState"] == "1"


def test_get_reads_in_a_bounded_number_of_queries(bob_jmap, bob):
    call(bob_jmap, "Identity/get", {}, bob)
    call(bob_jmap, "Identity/set", {"create": {str(i): {"email": "bob@example.org", "name": f"n{i}"}
                                               for i in range(10)}}, bob)
    with CaptureQueriesContext(connection) as queries:
        got = call(bob_jmap, "Identity/get", {}, bob)
    assert len(got["list"]) == 11
    jmap_queries = [q for q in queries.captured_queries if "submission_identity" in q["sql"]
                    or "journal_" in q["sql"]]
    # the default's existence, the identities, the state: whatever the number of identities
    assert len(jmap_queries) == 3, [q["sql"] for q in jmap_queries]


def test_create_with_the_own_address_an_alias_and_a_catch_all(bob_jmap, bob, domain):
    other = Domain.objects.create(name="example.net")
    Alias.objects.create(account=bob, name="robert", domain=domain)
    Alias.objects.create(account=bob, name="*", domain=other)
    got = call(bob_jmap, "Identity/set", {"create": {
        "own": {"email": "bob@example.org", "name": "Bob at work", "replyTo": [{"name": None, "email": "r@x.org"}],
                "textSignature": "-- \nBob", "mayDelete": True},
        "alias": {"email": "Robert@Example.org"},
        "any": {"email": "sales@example.net"},
        "wild": {"email": "*@example.net"},
    }}, bob)
    assert set(got["created"]) == {"own", "alias", "any", "wild"}, got
    assert all(c["mayDelete"] is True for c in got["created"].values())
    assert got["oldState"] == "0" and got["newState"] == "4"
    listed = call(bob_jmap, "Identity/get", {"ids": [got["created"]["own"]["id"], got["created"]["wild"]["id"]]}, bob)["list"]
    assert listed[0]["replyTo"] == [{"name": None, "email": "r@x.org"}]
    assert listed[0]["textSignature"] == "-- \nBob" and listed[1]["email"] == "*@example.net"


@pytest.mark.parametrize("email", ["mallory@example.org", "*@example.org", "bob@example.net", "root@localhost.x",
                                   "*@elsewhere.org"])
def test_an_address_the_account_does_not_own_is_forbidden_from(bob_jmap, bob, mallory, email):
    got = call(bob_jmap, "Identity/set", {"create": {"x": {"email": email}}}, bob)
    assert got["created"] is None
    assert got["notCreated"]["x"]["type"] == "forbiddenFrom"
    assert not Identity.objects.filter(email=email).exists()


def test_a_disabled_alias_does_not_count(bob_jmap, bob, domain):
    Alias.objects.create(account=bob, name="old", domain=domain, enabled=False)
    got = call(bob_jmap, "Identity/set", {"create": {"x": {"email": "old@example.org"}}}, bob)
    assert got["notCreated"]["x"]["type"] == "forbiddenFrom"


@pytest.mark.parametrize("body, prop", [
    ({}, "email"),
    ({"email": 7}, "email"),
    ({"email": "not an address"}, "email"),
    ({"email": "bob@example.org", "name": 3}, "name"),
    ({"email": "bob@example.org", "name": "x" * 256}, "name"),
    ({"email": "bob@example.org", "replyTo": "bob@example.org"}, "replyTo"),
    ({"email": "bob@example.org", "bcc": [{"email": "nope"}]}, "bcc"),
    ({"email": "bob@example.org", "bcc": [{"email": "a@b.org", "extra": 1}]}, "bcc"),
    ({"email": "bob@example.org", "htmlSignature": None}, "htmlSignature"),
    ({"email": "bob@example.org", "mayDelete": False}, "mayDelete"),
    ({"email": "bob@example.org", "id": "abc"}, "id"),
    ({"email": "bob@example.org", "colour": "red"}, "colour"),
])
def test_bad_properties_are_invalid_properties(bob_jmap, bob, body, prop):
    got = call(bob_jmap, "Identity/set", {"create": {"x": body}}, bob)
    assert got["notCreated"]["x"]["type"] == "invalidProperties", got
    assert got["notCreated"]["x"]["properties"] == [prop]
    assert not Identity.objects.filter(account=bob).exists()


def test_update_and_the_immutable_email(bob_jmap, bob):
    [default] = call(bob_jmap, "Identity/get", {}, bob)["list"]
    got = call(bob_jmap, "Identity/set", {"update": {default["id"]: {"name": "B.", "bcc": [
        {"name": "Archive", "email": "archive@example.org"}], "email": "bob@example.org", "mayDelete": False}}}, bob)
    assert got["updated"] == {default["id"]: None}, got
    refused = call(bob_jmap, "Identity/set", {"update": {default["id"]: {"email": "robert@example.org"}}}, bob)
    assert refused["notUpdated"][default["id"]]["type"] == "invalidProperties"
    refused = call(bob_jmap, "Identity/set", {"update": {default["id"]: {"mayDelete": True}}}, bob)
    assert refused["notUpdated"][default["id"]]["properties"] == ["mayDelete"]
    refused = call(bob_jmap, "Identity/set", {"update": {default["id"]: {"bcc/0/name": "x"}}}, bob)
    assert refused["notUpdated"][default["id"]]["type"] == "invalidProperties"
    [now] = call(bob_jmap, "Identity/get", {}, bob)["list"]
    assert now["name"] == "B." and now["email"] == "bob@example.org"
    assert now["bcc"] == [{"name": "Archive", "email": "archive@example.org"}]
    changes = call(bob_jmap, "Identity/changes", {"sinceState": "1"}, bob)
    assert changes["updated"] == [default["id"]]


def test_destroy_and_may_delete(bob_jmap, bob):
    [default] = call(bob_jmap, "Identity/get", {}, bob)["list"]
    created = call(bob_jmap, "Identity/set", {"create": {"a": {"email": "bob@example.org"}}}, bob)["created"]["a"]
    got = call(bob_jmap, "Identity/set", {"destroy": [default["id"], created["id"], "zzz", "#a"]}, bob)
    assert got["destroyed"] == [created["id"]]
    assert got["notDestroyed"][default["id"]]["type"] == "forbidden"
    assert got["notDestroyed"]["zzz"]["type"] == "notFound"
    assert got["notDestroyed"]["#a"]["type"] == "notFound"
    changes = call(bob_jmap, "Identity/changes", {"sinceState": "1"}, bob)
    # created then destroyed since state 1: it shows nowhere (RFC 8620 §5.2)
    assert changes["created"] == changes["updated"] == changes["destroyed"] == []


def test_if_in_state(bob_jmap, bob):
    call(bob_jmap, "Identity/get", {}, bob)
    got = bob_jmap.call("Identity/set", {"accountId": ids.encode(bob.pk), "ifInState": "0",
                                         "create": {"a": {"email": "bob@example.org"}}}, using=USING)
    assert got[0] == "error" and got[1]["type"] == "stateMismatch"
    ok = call(bob_jmap, "Identity/set", {"ifInState": "1", "create": {"a": {"email": "bob@example.org"}}}, bob)
    assert ok["oldState"] == "1" and ok["newState"] == "2"


@pytest.mark.parametrize("args", [{"create": []}, {"update": [1]}, {"destroy": "x"}, {"destroy": [1]},
                                  {"ifInState": 3}])
def test_bad_set_arguments(bob_jmap, bob, args):
    got = bob_jmap.call("Identity/set", {"accountId": ids.encode(bob.pk), **args}, using=USING)
    assert got[0] == "error" and got[1]["type"] == "invalidArguments"


@pytest.mark.parametrize("args", [{"ids": "x"}, {"ids": [1]}, {"properties": ["email", "password"]}])
def test_bad_get_arguments(bob_jmap, bob, args):
    got = bob_jmap.call("Identity/get", {"accountId": ids.encode(bob.pk), **args}, using=USING)
    assert got[0] == "error" and got[1]["type"] == "invalidArguments"


def test_another_accounts_identities_are_not_found(bob_jmap, bob, mallory_jmap, mallory):
    [bobs] = call(bob_jmap, "Identity/get", {}, bob)["list"]
    got = call(mallory_jmap, "Identity/get", {"ids": [bobs["id"]]}, mallory)
    assert got["list"] == [] and got["notFound"] == [bobs["id"]]
    assert bobs["id"] not in [i["id"] for i in call(mallory_jmap, "Identity/get", {}, mallory)["list"]]
    got = call(mallory_jmap, "Identity/set", {"update": {bobs["id"]: {"name": "pwned"}}, "destroy": [bobs["id"]]},
               mallory)
    assert got["notUpdated"][bobs["id"]]["type"] == "notFound"
    assert got["notDestroyed"][bobs["id"]]["type"] == "notFound"
    assert Identity.objects.get(pk=ids.decode(bobs["id"])).name == "Bob Example"
    # Bob's account itself is out of reach.
    for name in ("Identity/get", "Identity/set", "Identity/changes"):
        err = mallory_jmap.call(name, {"accountId": ids.encode(bob.pk), "sinceState": "0"}, using=USING)
        assert err[0] == "error" and err[1]["type"] == "accountNotFound"


def test_forbidden_without_the_permissions(bob_jmap, bob):
    bob.permissions_mode = "merge"
    bob.disabled_permissions = ["jmapIdentityCreate", "jmapIdentityGet"]
    bob.save()
    got = bob_jmap.call("Identity/get", {"accountId": ids.encode(bob.pk)}, using=USING)
    assert got[0] == "error" and got[1]["type"] == "forbidden"
    got = call(bob_jmap, "Identity/set", {"create": {"a": {"email": "bob@example.org"}}}, bob)
    assert got["notCreated"]["a"]["type"] == "forbidden"


def test_an_account_destroyed_takes_its_identities_and_vacation_with_it(bob_jmap, bob, jmap):
    call(bob_jmap, "Identity/get", {}, bob)
    bob_jmap.ok("VacationResponse/set", {"accountId": ids.encode(bob.pk), "update": {"singleton": {"isEnabled": True}}},
                using=[*USING, "urn:ietf:params:jmap:vacationresponse"])
    got = jmap.ok("x:Account/set", {"destroy": [ids.encode(bob.pk)]})
    assert got["destroyed"] == [ids.encode(bob.pk)], got
    assert not Identity.objects.filter(account_id=bob.pk).exists()
    assert not VacationResponse.objects.filter(account_id=bob.pk).exists()
