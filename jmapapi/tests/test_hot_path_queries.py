"""Query counts of the hot paths (issue 11 §2 and §3), through /jmap/ as a client sends them.

Counted Zulip style: every statement the request sends to the database, except the SAVEPOINT
and RELEASE statements of the transactions (which the test's own transaction turns BEGIN and
COMMIT into). The client comes from a documentation address, not loopback, so that the block
list is consulted as it is for any real client.
"""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Alias, Credential
from registry import ids
from registry.declaration import declarations
from tests.clients import Jmap, basic

CLIENT = {"REMOTE_ADDR": "203.0.113.40"}
TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
SINGLETONS = sorted(name for name, decl in declarations().items() if decl.singleton)


class Client(Jmap):
    def post(self, body, **extra):
        return super().post(body, **{**CLIENT, **extra})


def statements(j, name, args) -> list[str]:
    """The SQL one request sends, transaction control left out."""
    with CaptureQueriesContext(connection) as captured:
        j.ok(name, args)
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]


@pytest.fixture
def admin(client, admin_account):
    j = Client(client, basic("admin@example.org"))
    j.ok("Core/echo", {})  # the verdict is cached from here on, as for a client that re-sends its credentials
    return j


def test_core_echo_with_a_cached_verdict_reads_the_states_once(admin):
    sql = statements(admin, "Core/echo", {"hello": True})
    assert len(sql) <= 1, sql
    assert "registry_objectstate" in sql[0]


@pytest.mark.parametrize("name", SINGLETONS)
def test_a_singleton_get_is_at_most_one_query(admin, name):
    first = admin.ok(f"x:{name}/get", {"ids": None})  # encoded once per change of its state
    sql = statements(admin, f"x:{name}/get", {"ids": None})
    assert len(sql) <= 1, sql
    assert admin.ok(f"x:{name}/get", {"ids": ["singleton"]}) == first


def test_a_singleton_get_shows_a_change_at_once(admin):
    before = admin.ok("x:Authentication/get", {"ids": None, "properties": ["passwordMinLength"]})
    changed = admin.ok("x:Authentication/set", {"update": {"singleton": {"passwordMinLength": 11}}})
    after = admin.ok("x:Authentication/get", {"ids": None, "properties": ["passwordMinLength"]})
    assert after["list"][0]["passwordMinLength"] == 11 != before["list"][0]["passwordMinLength"]
    assert after["state"] == changed["newState"] != before["state"]


def test_a_get_after_a_set_in_the_same_request_sees_the_change(admin):
    resp = admin.post({"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"], "methodCalls": [
        ["x:Authentication/get", {"ids": None, "properties": ["passwordMinLength"]}, "a"],
        ["x:Authentication/set", {"update": {"singleton": {"passwordMinLength": 13}}}, "b"],
        ["x:Authentication/get", {"ids": None, "properties": ["passwordMinLength"]}, "c"],
    ]})
    (_, first, _), (_, changed, _), (_, second, _) = resp.json()["methodResponses"]
    assert second["list"][0]["passwordMinLength"] == 13 != first["list"][0]["passwordMinLength"]
    assert second["state"] == changed["newState"] != first["state"]


@pytest.mark.parametrize(("name", "patch"), [
    ("Authentication", {"passwordMinLength": 9}),
    ("Http", {"enableHsts": True}),
    ("Jmap", {"getMaxResults": 400}),
])
def test_a_one_field_singleton_set_is_at_most_twelve_queries(admin, name, patch):
    sql = statements(admin, f"x:{name}/set", {"update": {"singleton": patch}})
    assert len(sql) <= 12, "\n".join(sql)
    got = admin.ok(f"x:{name}/get", {"ids": None, "properties": list(patch)})["list"][0]
    assert {k: got[k] for k in patch} == patch


def test_account_get_of_500_costs_what_5_cost(admin, domain):
    # Written in bulk (the services would take a minute for 500): each account with a password
    # credential, a custom role and an alias, so that every relation a /get encodes is there.
    role = admin.ok("x:Role/set", {"create": {"r": {"name": "readers", "description": "r"}}})["created"]["r"]["id"]
    accounts = Account.objects.bulk_create(
        Account(name=f"user{i}", domain=domain, email_address=f"user{i}@{domain.name}",
                roles_mode=Account.RolesMode.CUSTOM) for i in range(500))
    Credential.objects.bulk_create(Credential(account=a, credential_id=0, kind=Credential.Kind.PASSWORD,
                                              secret_hash="never read by a /get") for a in accounts)
    Alias.objects.bulk_create(Alias(account=a, name=f"alias{i}", domain=domain) for i, a in enumerate(accounts))
    Account.roles.through.objects.bulk_create(Account.roles.through(account_id=a.pk, role_id=ids.decode(role))
                                              for a in accounts)
    made = [ids.encode(a.pk) for a in accounts]
    admin.ok("Core/echo", {})  # a role was made: the verdict is computed again, once
    few = statements(admin, "x:Account/get", {"ids": made[:5]})
    many = statements(admin, "x:Account/get", {"ids": made})
    assert len(many) == len(few), (len(few), len(many))
    listed = admin.ok("x:Account/get", {"ids": made})["list"]
    assert [a["id"] for a in listed] == made
    assert all(a["credentials"] and a["aliases"] and a["roles"]["roleIds"] for a in listed)
