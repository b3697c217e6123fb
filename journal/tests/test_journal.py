"""The change journal's API: record, state, changes (RFC 8620 §5.2), query_changes (§5.6),
the caller's transaction, query counts, and the attacker's view (another account's journal)."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from journal import services as journal
from journal.models import Entry
from journal.services import CannotCalculateChanges, Change, TooManyChanges
from registry import ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_account):
    return make_account("alice").pk


@pytest.fixture
def bob(make_account):
    return make_account("bob").pk


def test_a_new_account_is_at_state_zero_and_has_no_changes(alice):
    assert journal.state(alice, "Email") == "0"
    got = journal.changes(alice, "Email", "0", 10)
    assert (got.created, got.updated, got.destroyed, got.new_state, got.has_more_changes) == ([], [], [], "0", False)


def test_record_returns_the_new_state_and_changes_lists_each_kind(alice):
    s1 = journal.record(alice, "Mailbox", created=["a", "b"])
    s2 = journal.record(alice, "Mailbox", updated=["a"], destroyed=["c"])
    assert int(s2) > int(s1) and journal.state(alice, "Mailbox") == s2
    got = journal.changes(alice, "Mailbox", s1, 10)
    assert (got.created, got.updated, got.destroyed) == ([], ["a"], ["c"])
    assert (got.old_state, got.new_state, got.has_more_changes) == (s1, s2, False)
    assert journal.changes(alice, "Mailbox", s2, 10).created == []


def test_folding_follows_rfc8620_section_5_2(alice):
    start = journal.state(alice, "Email")
    journal.record(alice, "Email", created=["made-then-changed", "made-then-gone", "gone-then-back"])
    mid = journal.record(alice, "Email", updated=["made-then-changed", "old-changed-then-gone"])
    journal.record(alice, "Email", destroyed=["made-then-gone", "old-changed-then-gone", "gone-then-back"])
    journal.record(alice, "Email", created=["gone-then-back"])
    got = journal.changes(alice, "Email", start, 100)
    # created+updated: only created; created+destroyed: nowhere; updated+destroyed: only destroyed.
    assert got.created == ["made-then-changed", "gone-then-back"]
    assert got.updated == []
    assert got.destroyed == ["old-changed-then-gone"]
    # From a state after the creation, an id destroyed then created again is an update.
    got = journal.changes(alice, "Email", mid, 100)
    assert sorted(got.destroyed) == ["made-then-gone", "old-changed-then-gone"]
    assert (got.created, got.updated) == ([], ["gone-then-back"])


def test_an_id_destroyed_and_created_again_from_an_earlier_state_is_updated(alice):
    journal.record(alice, "CalendarEvent", created={"e1": "/dav/cal/alice/default/e1.ics"})
    since = journal.state(alice, "CalendarEvent")
    journal.record(alice, "CalendarEvent", destroyed={"e1": "/dav/cal/alice/default/e1.ics"})
    journal.record(alice, "CalendarEvent", created={"e1": "/dav/cal/alice/default/e1.ics"})
    got = journal.changes(alice, "CalendarEvent", since, 10)
    assert (got.created, got.updated, got.destroyed) == ([], ["e1"], [])


def test_tombstones_keep_the_href_a_dav_client_needs(alice):
    journal.record(alice, "ContactCard", created={"c1": "/dav/card/alice/default/c1.vcf", "c2": "/x/c2.vcf"})
    since = journal.state(alice, "ContactCard")
    journal.record(alice, "ContactCard", destroyed={"c1": "/dav/card/alice/default/c1.vcf"})
    got = journal.changes(alice, "ContactCard", since, 10)
    assert got.destroyed == ["c1"] and got.hrefs == {"c1": "/dav/card/alice/default/c1.vcf"}


def test_max_changes_gives_intermediate_states_a_client_resumes_from(alice):
    start = journal.state(alice, "Email")
    journal.record(alice, "Email", created=[f"m{i}" for i in range(7)])
    journal.record(alice, "Email", updated=["m1", "m2"], destroyed=["m3"])
    journal.record(alice, "Email", created=["n1", "n2"])
    seen_created, seen_updated, seen_destroyed = set(), set(), set()
    state, calls = start, 0
    while True:
        got = journal.changes(alice, "Email", state, 3)
        calls += 1
        assert len(got.created) + len(got.updated) + len(got.destroyed) <= 3
        seen_created |= set(got.created)
        seen_updated |= set(got.updated)
        seen_destroyed |= set(got.destroyed)
        assert int(got.new_state) > int(state)
        state = got.new_state
        if not got.has_more_changes:
            break
    assert state == journal.state(alice, "Email") and calls == 4
    # Every object the client must know about is known, in the list matching what it holds.
    assert seen_created == {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "n1", "n2"}
    assert seen_destroyed == {"m3"} and seen_updated <= {"m1", "m2"}


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1.0", " 1", "1" * 19, "٣", None, 3])
def test_a_state_that_is_not_one_cannot_calculate_changes(alice, bad):
    journal.record(alice, "Email", created=["m"])
    with pytest.raises(CannotCalculateChanges):
        journal.changes(alice, "Email", bad, 10)


def test_a_state_from_the_future_cannot_calculate_changes(alice):
    with pytest.raises(CannotCalculateChanges):
        journal.changes(alice, "Email", "1", 10)  # nothing recorded yet
    state = journal.record(alice, "Email", created=["m"])
    with pytest.raises(CannotCalculateChanges):
        journal.changes(alice, "Email", str(int(state) + 1), 10)


def test_another_account_s_changes_are_not_seen_and_its_states_do_not_apply(alice, bob):
    journal.record(bob, "Email", created=["bobs-secret"])
    bob_state = journal.record(bob, "Email", created=["more"])
    assert journal.state(alice, "Email") == "0"
    assert journal.changes(alice, "Email", "0", 10).created == []
    with pytest.raises(CannotCalculateChanges):  # bob's state is in alice's future
        journal.changes(alice, "Email", bob_state, 10)
    journal.record(alice, "Email", created=["a"])
    assert journal.changes(alice, "Email", "0", 10).created == ["a"]


def test_types_are_separate(alice):
    journal.record(alice, "Email", created=["x"])
    assert journal.state(alice, "Mailbox") == "0"
    assert journal.changes(alice, "Mailbox", "0", 10).created == []


def test_a_rolled_back_write_leaves_no_journal_row(alice):
    before = journal.record(alice, "Email", created=["kept"])
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            journal.record_many(alice, {"Email": Change(created=["lost"]), "Thread": Change(created=["t"])})
            raise RuntimeError("the write failed after the journal was recorded")
    assert journal.state(alice, "Email") == before and journal.state(alice, "Thread") == "0"
    assert not Entry.objects.filter(object_id__in=["lost", "t"]).exists()
    # The change ids of the rolled-back write are handed out again: no gap, no reuse of a seen id.
    after = journal.record(alice, "Email", created=["next"])
    assert int(after) == int(before) + 1
    assert journal.changes(alice, "Email", before, 10).created == ["next"]


def test_record_many_moves_several_types_and_leaves_empty_ones(alice):
    journal.record(alice, "Mailbox", created=["inbox"])
    mailbox = journal.state(alice, "Mailbox")
    got = journal.record_many(alice, {"Email": Change(created=["m1"]), "Thread": Change(created=["t1"]),
                                      "Mailbox": Change(updated=["inbox"]), "Identity": Change()})
    assert got == {"Email": "1", "Thread": "1", "Mailbox": str(int(mailbox) + 1), "Identity": "0"}
    assert journal.changes(alice, "Mailbox", mailbox, 10).updated == ["inbox"]


def test_bad_arguments_are_refused_before_anything_is_written(alice):
    for bad in ({"created": "abc"}, {"created": [""]}, {"created": [7]}, {"created": ["x" * 256]},
                {"destroyed": {"x": "/" * 3000}}, {"created": ["a\0b"]}, {"destroyed": {"x": "/a\0"}}):
        with pytest.raises((TypeError, ValueError)):
            journal.record(alice, "Email", **bad)
    with pytest.raises(ValueError):
        journal.record(alice, "", created=["x"])
    for bad in (0, -1, True, "10"):
        with pytest.raises(ValueError):
            journal.changes(alice, "Email", "0", bad)
    assert not Entry.objects.exists()


def test_record_and_changes_cost_a_fixed_number_of_queries_whatever_the_journal_size(alice):
    journal.record(alice, "Email", created=["first"])  # the counter exists from here on
    with CaptureQueriesContext(connection) as small_record:
        journal.record(alice, "Email", created=[f"a{i}" for i in range(50)])
    since = journal.state(alice, "Email")
    journal.record(alice, "Email", updated=[f"a{i}" for i in range(10)])
    with CaptureQueriesContext(connection) as small_changes:
        journal.changes(alice, "Email", since, 100)
    for n in range(20):
        journal.record(alice, "Email", created=[f"b{n}-{i}" for i in range(100)])
    since = journal.state(alice, "Email")
    with CaptureQueriesContext(connection) as big_record:
        journal.record_many(alice, {"Email": Change(updated=[f"b0-{i}" for i in range(10)]),
                                    "Thread": Change(updated=["t"]), "Mailbox": Change(updated=["x"])})
    with CaptureQueriesContext(connection) as big_changes:
        got = journal.changes(alice, "Email", since, 100)
    assert got.updated
    assert len(small_record) == len(big_record) == 2  # one UPDATE of the counters, one INSERT
    assert len(small_changes) == len(big_changes) == 1
    with CaptureQueriesContext(connection) as one:
        journal.state(alice, "Email")
    assert len(one) == 1


def test_the_first_write_of_a_type_creates_its_counter_in_the_same_queries(alice):
    journal.record(alice, "Thread", created=["t0"])
    with CaptureQueriesContext(connection) as first:
        got = journal.record_many(alice, {"Email": Change(created=["m"]), "Thread": Change(created=["t"])})
    assert got == {"Email": "1", "Thread": "2"}
    assert len(first) == 2  # one upsert of both counters, one INSERT of the entries


# --- /queryChanges ---------------------------------------------------------------------------

def test_query_changes_reports_removed_and_added_with_positions(alice):
    journal.record(alice, "Email", created=["a", "b", "c", "d"])
    since = journal.state(alice, "Email")
    journal.record(alice, "Email", created=["e"], updated=["b"], destroyed=["c"])
    journal.record(alice, "Email", created=["f"], destroyed=["f"])
    order = ["e", "a", "b", "d"]  # the query layer's current results, recomputed
    got = journal.query_changes(alice, "Email", since, lambda: order)
    assert got.new_state == journal.state(alice, "Email") and got.total == 4
    assert sorted(got.removed) == ["b", "c"]
    assert got.added == [("e", 0), ("b", 2)]
    # Applied to the client's old list, the answer gives exactly the new one (RFC 8620 §5.6).
    old = ["a", "b", "c", "d"]
    new = [i for i in old if i not in got.removed]
    for object_id, index in got.added:
        new.insert(index, object_id)
    assert new == order


def test_query_changes_with_up_to_id_on_an_immutable_query_leaves_out_later_additions(alice):
    journal.record(alice, "Email", created=["a", "b"])
    since = journal.state(alice, "Email")
    journal.record(alice, "Email", created=["c", "z"])
    got = journal.query_changes(alice, "Email", since, lambda: ["a", "c", "b", "z"], up_to_id="b", immutable=True)
    assert got.added == [("c", 1)]
    got = journal.query_changes(alice, "Email", since, lambda: ["a", "c", "b", "z"], up_to_id="b")
    assert got.added == [("c", 1), ("z", 3)]


def test_query_changes_refuses_too_many_and_bad_states(alice, settings):
    journal.record(alice, "Email", created=["a", "b", "c"])
    with pytest.raises(TooManyChanges):
        journal.query_changes(alice, "Email", "0", lambda: ["a", "b", "c"], max_changes=2)
    with pytest.raises(CannotCalculateChanges):
        journal.query_changes(alice, "Email", "99", lambda: [])
    settings.JOURNAL_QUERY_CHANGES_MAX = 2
    with pytest.raises(CannotCalculateChanges):
        journal.query_changes(alice, "Email", "0", lambda: ["a", "b", "c"])


def test_query_changes_reads_the_journal_before_the_results(alice):
    """A write between the two reads is in the results now and in the journal next time."""
    since = journal.record(alice, "Email", created=["a"])

    def results():
        journal.record(alice, "Email", created=["late"])
        return ["a", "late"]

    got = journal.query_changes(alice, "Email", since, results)
    assert got.new_state == since  # the late write is not claimed as seen
    assert "late" in journal.changes(alice, "Email", got.new_state, 10).created


def test_destroying_an_account_takes_its_journal_and_only_its_own(jmap, alice, bob):
    journal.record(alice, "Email", created=["a"], destroyed={"z": "/dav/z"})
    journal.record(bob, "Email", created=["b"])
    got = jmap.ok("x:Account/set", {"destroy": [ids.encode(alice)]})
    assert got["destroyed"] == [ids.encode(alice)], got
    assert not Entry.objects.filter(account_id=alice).exists()
    assert journal.state(alice, "Email") == "0"
    assert journal.changes(bob, "Email", "0", 10).created == ["b"]
