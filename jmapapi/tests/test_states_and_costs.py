"""States, change logs and ids of every type (issue 10, item 13), and the cost of the largest
requests a plain user may send (item 21), through /jmap/ as a client sends them."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import ids
from tests.clients import Jmap, basic


def _state(j, name):
    return j.ok(f"x:{name}/get", {"ids": []})["state"]


@pytest.mark.parametrize("name", ["ApiKey", "AppPassword"])
def test_credential_states_move_and_changes_report_every_kind(user_jmap, name):
    s0 = _state(user_jmap, name)
    made = user_jmap.ok(f"x:{name}/set", {"create": {"a": {"description": "one"}}})
    first = made["created"]["a"]["id"]
    assert made["newState"] != made["oldState"] == s0
    s1 = made["newState"]
    got = user_jmap.ok(f"x:{name}/changes", {"sinceState": s0})
    assert (got["created"], got["updated"], got["destroyed"], got["newState"]) == ([first], [], [], s1)
    up = user_jmap.ok(f"x:{name}/set", {"update": {first: {"description": "renamed"}}})
    assert up["newState"] != s1
    assert user_jmap.ok(f"x:{name}/changes", {"sinceState": s1})["updated"] == [first]
    gone = user_jmap.ok(f"x:{name}/set", {"destroy": [first]})
    got = user_jmap.ok(f"x:{name}/changes", {"sinceState": up["newState"]})
    assert got["destroyed"] == [first] and got["newState"] == gone["newState"] != up["newState"]
    # Created and destroyed since s0: nothing to report.
    got = user_jmap.ok(f"x:{name}/changes", {"sinceState": s0})
    assert got["created"] == got["updated"] == got["destroyed"] == []


@pytest.mark.parametrize("name", ["ApiKey", "AppPassword"])
def test_destroyed_credential_ids_are_never_reused(user_jmap, name):
    seen = set()
    for _ in range(3):
        new = user_jmap.ok(f"x:{name}/set", {"create": {"a": {"description": "k"}}})["created"]["a"]["id"]
        assert new not in seen
        seen.add(new)
        assert user_jmap.ok(f"x:{name}/set", {"destroy": [new]})["destroyed"] == [new]


def test_changes_show_only_the_callers_own_credentials(client, make_account):
    make_account("bob")
    make_account("carol")
    bob, carol = Jmap(client, basic("bob@example.org")), Jmap(client, basic("carol@example.org"))
    s0 = _state(bob, "ApiKey")
    carol.ok("x:ApiKey/set", {"create": {"a": {"description": "carol's"}}})
    got = bob.ok("x:ApiKey/changes", {"sinceState": s0})
    assert got["created"] == [] and got["newState"] != s0


def test_account_state_moves_with_its_aliases_and_credentials(jmap, make_account, domain):
    bob = make_account("bob")
    bob_id = ids.encode(bob.pk)
    s0 = _state(jmap, "Account")
    jmap.ok("x:Account/set", {"update": {bob_id: {"aliases": {"0": {"name": "robert", "domainId": ids.encode(domain.pk)}}}}})
    s1 = _state(jmap, "Account")
    assert s1 != s0
    assert jmap.ok("x:Account/changes", {"sinceState": s0})["updated"] == [bob_id]
    Jmap(jmap.client, basic("bob@example.org")).ok("x:AppPassword/set", {"create": {"a": {"description": "x"}}})
    assert _state(jmap, "Account") != s1


def test_destroyed_object_ids_are_never_reused(jmap):
    seen = set()
    for _ in range(3):
        got = jmap.ok("x:Domain/set", {"create": {"d": {"name": "reuse.example"}}})
        new = got["created"]["d"]["id"]
        assert new not in seen
        seen.add(new)
        assert jmap.ok("x:Domain/set", {"destroy": [new]})["destroyed"] == [new]


def test_a_repeated_ban_is_in_the_change_log(jmap, db):
    from datetime import timedelta

    from security.services import ban

    ban("203.0.113.9", "authFailure", timedelta(minutes=5))
    s1 = _state(jmap, "BlockedIp")
    ban("203.0.113.9", "authFailure", timedelta(minutes=10))
    got = jmap.ok("x:BlockedIp/changes", {"sinceState": s1})
    assert len(got["updated"]) == 1 and got["newState"] != s1


# --- costs: the number of queries must not grow with the size of the request ---------------------
def _queries(j, name, args):
    with CaptureQueriesContext(connection) as captured:
        j.ok(name, args)
    return len(captured)


def _unknown(n):
    return [ids.encode(10_000 + i) for i in range(n)]


def test_get_of_many_ids_is_one_query(user_jmap):
    user_jmap.ok("x:ApiKey/set", {"create": {"a": {"description": "k"}}})
    _queries(user_jmap, "x:ApiKey/get", {"ids": _unknown(1)})  # warm the verdict cache
    one = _queries(user_jmap, "x:ApiKey/get", {"ids": _unknown(1)})
    many = _queries(user_jmap, "x:ApiKey/get", {"ids": _unknown(500)})
    assert many == one, (one, many)


def test_get_of_many_accounts_costs_what_a_few_cost(jmap, make_account):
    made = [ids.encode(make_account(f"user{i}").pk) for i in range(12)]
    _queries(jmap, "x:Account/get", {"ids": made[:2]})
    few = _queries(jmap, "x:Account/get", {"ids": made[:2]})
    many = _queries(jmap, "x:Account/get", {"ids": made})
    assert many == few, (few, many)
    listed = jmap.ok("x:Account/get", {"ids": made})["list"]
    assert [a["id"] for a in listed] == made and all("credentials" in a for a in listed)


def test_creates_past_the_quota_stop_costing(user_jmap):
    def creates(n):
        return {"create": {f"c{i}": {"description": f"k{i}"} for i in range(n)}}

    user_jmap.ok("x:ApiKey/set", creates(5))  # the default quota of 5
    _queries(user_jmap, "x:ApiKey/set", creates(1))
    one = _queries(user_jmap, "x:ApiKey/set", creates(1))
    many = _queries(user_jmap, "x:ApiKey/set", creates(500))
    got = user_jmap.ok("x:ApiKey/set", creates(500))
    assert len(got["notCreated"]) == 500 and {e["type"] for e in got["notCreated"].values()} == {"overQuota"}
    assert many == one, (one, many)


def test_updates_and_destroys_of_unknown_ids_cost_one_lookup(user_jmap):
    _queries(user_jmap, "x:ApiKey/set", {"destroy": _unknown(1)})
    one = _queries(user_jmap, "x:ApiKey/set", {"update": {i: {"description": "x"} for i in _unknown(1)},
                                                "destroy": _unknown(1)})
    many = _queries(user_jmap, "x:ApiKey/set", {"update": {i: {"description": "x"} for i in _unknown(250)},
                                                 "destroy": _unknown(250)})
    assert many == one, (one, many)
