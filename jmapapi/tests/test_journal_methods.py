"""The JMAP glue over the change journal (jmapapi/journal_methods.py), driven over HTTP through
the engine: `Note/changes` and `Note/queryChanges` of a type that exists only in this test (no
mail method is registered yet), with RFC 8620 §5.2/§5.6 argument checks and errors, and the
attacker's view: another account's journal answers accountNotFound."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jmapapi import journal_methods
from jmapapi.engine import CORE, METHODS
from jmapapi.models import Jmap as JmapLimits
from journal import services as journal
from registry import ids

pytestmark = pytest.mark.django_db

# The "query" of the test type: every id its journal lists as existing, newest first.
NOTES: dict[int, list[str]] = {}


def note_results(ctx, args):
    return list(NOTES.get(journal_methods.account_of(ctx, args), []))


@pytest.fixture(autouse=True)
def note_methods():
    journal_methods.changes_method("Note/changes", "Note", CORE)
    journal_methods.query_changes_method("Note/queryChanges", "Note", CORE, note_results,
                                         immutable=lambda args: args.get("sort") == [{"property": "id"}])
    yield
    METHODS.pop("Note/changes")
    METHODS.pop("Note/queryChanges")
    NOTES.clear()


@pytest.fixture
def bob(make_account):
    return make_account("bob")


@pytest.fixture
def bob_jmap(client, bob):
    from tests.clients import Jmap, basic

    return Jmap(client, basic("bob@example.org"))


def test_changes_over_http(bob_jmap, bob):
    account = ids.encode(bob.pk)
    start = bob_jmap.ok("Note/changes", {"accountId": account, "sinceState": "0"})
    assert start == {"accountId": account, "oldState": "0", "newState": "0", "hasMoreChanges": False,
                     "created": [], "updated": [], "destroyed": []}
    journal.record(bob.pk, "Note", created=["n1", "n2", "n3"])
    journal.record(bob.pk, "Note", updated=["n1"], destroyed=["n2"])
    got = bob_jmap.ok("Note/changes", {"accountId": account, "sinceState": "0", "maxChanges": 2})
    assert got["hasMoreChanges"] is True and got["created"] == ["n1", "n2"] and got["newState"] == "2"
    got = bob_jmap.ok("Note/changes", {"accountId": account, "sinceState": got["newState"], "maxChanges": 2})
    assert (got["created"], got["updated"], got["destroyed"], got["hasMoreChanges"]) == (["n3"], ["n1"], [], True)
    got = bob_jmap.ok("Note/changes", {"accountId": account, "sinceState": got["newState"]})
    assert (got["destroyed"], got["hasMoreChanges"], got["newState"]) == (["n2"], False, "5")


def test_the_server_limit_caps_max_changes(bob_jmap, bob):
    limits = JmapLimits.load()
    limits.changes_max_results = 2
    limits.save()
    journal.record(bob.pk, "Note", created=["a", "b", "c"])
    got = bob_jmap.ok("Note/changes", {"accountId": ids.encode(bob.pk), "sinceState": "0", "maxChanges": 100})
    assert got["created"] == ["a", "b"] and got["hasMoreChanges"] is True


@pytest.mark.parametrize("args, error", [
    ({}, "invalidArguments"),
    ({"sinceState": 0}, "invalidArguments"),
    ({"sinceState": None}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": 0}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": -3}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": "5"}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": True}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": 2**53}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": 1.5}, "invalidArguments"),
    ({"sinceState": "nonsense"}, "cannotCalculateChanges"),
    ({"sinceState": "99"}, "cannotCalculateChanges"),
    ({"sinceState": "9" * 40}, "cannotCalculateChanges"),
    # The audit's hostile pass: other scripts' digits, signs, spaces, exponents, the largest
    # number of digits a state has (beyond bigint once more are allowed), NUL.
    ({"sinceState": "\u0661"}, "cannotCalculateChanges"),
    ({"sinceState": "+1"}, "cannotCalculateChanges"),
    ({"sinceState": " 0"}, "cannotCalculateChanges"),
    ({"sinceState": "1e3"}, "cannotCalculateChanges"),
    ({"sinceState": "-0"}, "cannotCalculateChanges"),
    ({"sinceState": "9" * 18}, "cannotCalculateChanges"),
    ({"sinceState": "9" * 19}, "cannotCalculateChanges"),
    ({"sinceState": "0\u0000"}, "invalidArguments"),
    ({"sinceState": "0", "maxChanges": 2**63}, "invalidArguments"),
    ({"sinceState": ["0"]}, "invalidArguments"),
])
def test_bad_changes_arguments_get_the_rfc_error(bob_jmap, bob, args, error):
    got = bob_jmap.error("Note/changes", {"accountId": ids.encode(bob.pk), **args})
    assert got["type"] == error


def test_account_id_is_required(bob_jmap):
    assert bob_jmap.error("Note/changes", {"sinceState": "0"})["type"] == "invalidArguments"


def test_another_account_s_journal_is_not_found(bob_jmap, make_account):
    alice = make_account("alice")
    journal.record(alice.pk, "Note", created=["alice-secret"])
    for name, args in (("Note/changes", {"sinceState": "0"}), ("Note/queryChanges", {"sinceQueryState": "0"})):
        got = bob_jmap.error(name, {"accountId": ids.encode(alice.pk), **args})
        assert got["type"] == "accountNotFound" and "alice-secret" not in str(got)


def test_query_changes_over_http(bob_jmap, bob):
    account = ids.encode(bob.pk)
    journal.record(bob.pk, "Note", created=["a", "b", "c"])
    NOTES[bob.pk] = ["c", "b", "a"]
    since = journal.state(bob.pk, "Note")
    journal.record(bob.pk, "Note", created=["d"], destroyed=["b"])
    NOTES[bob.pk] = ["d", "c", "a"]
    got = bob_jmap.ok("Note/queryChanges", {"accountId": account, "sinceQueryState": since, "calculateTotal": True})
    assert got == {"accountId": account, "oldQueryState": since, "newQueryState": journal.state(bob.pk, "Note"),
                   "removed": ["b"], "added": [{"id": "d", "index": 0}], "total": 3}
    got = bob_jmap.ok("Note/queryChanges", {"accountId": account, "sinceQueryState": since})
    assert "total" not in got


@pytest.mark.parametrize("args, error", [
    ({}, "invalidArguments"),
    ({"sinceQueryState": 1}, "invalidArguments"),
    ({"sinceQueryState": "0", "maxChanges": -1}, "invalidArguments"),
    ({"sinceQueryState": "0", "upToId": 5}, "invalidArguments"),
    ({"sinceQueryState": "0", "calculateTotal": "yes"}, "invalidArguments"),
    ({"sinceQueryState": "x"}, "cannotCalculateChanges"),
    ({"sinceQueryState": "0", "maxChanges": 1}, "tooManyChanges"),
    ({"sinceQueryState": "9" * 19}, "cannotCalculateChanges"),
    ({"sinceQueryState": "0", "upToId": "a\u0000"}, "invalidArguments"),
    ({"sinceQueryState": "0", "maxChanges": 2**64}, "invalidArguments"),
    ({"sinceQueryState": "0", "calculateTotal": None}, "invalidArguments"),
])
def test_bad_query_changes_arguments_get_the_rfc_error(bob_jmap, bob, args, error):
    journal.record(bob.pk, "Note", created=["a", "b"])
    NOTES[bob.pk] = ["a", "b"]
    got = bob_jmap.error("Note/queryChanges", {"accountId": ids.encode(bob.pk), **args})
    assert got["type"] == error


def test_up_to_id_applies_only_to_an_immutable_query(bob_jmap, bob):
    account = ids.encode(bob.pk)
    journal.record(bob.pk, "Note", created=["a", "c"])
    since = journal.state(bob.pk, "Note")
    journal.record(bob.pk, "Note", created=["b", "d"])
    NOTES[bob.pk] = ["a", "b", "c", "d"]
    args = {"accountId": account, "sinceQueryState": since, "upToId": "c"}
    assert bob_jmap.ok("Note/queryChanges", {**args, "sort": [{"property": "id"}]})["added"] == [
        {"id": "b", "index": 1}]
    assert len(bob_jmap.ok("Note/queryChanges", args)["added"]) == 2


def test_a_changes_request_costs_one_query_more_than_echo_whatever_the_journal_size(bob_jmap, bob):
    args = {"accountId": ids.encode(bob.pk), "sinceState": "0", "maxChanges": 50}
    bob_jmap.ok("Core/echo", {})  # warm the worker's caches (login verdict, limits)
    with CaptureQueriesContext(connection) as echo:
        bob_jmap.ok("Core/echo", {})
    counts = []
    for size in (100, 3000):
        journal.record(bob.pk, "Note", created=[f"n{size}-{i}" for i in range(size)])
        with CaptureQueriesContext(connection) as changes:
            got = bob_jmap.ok("Note/changes", args)
        assert len(got["created"]) == 50
        counts.append(len(changes))
    assert counts == [len(echo) + 1] * 2
