"""Pruning by age and by count (`manage.py journal prune`): beyond what is kept, changes()
answers CannotCalculateChanges, never a shorter list; within it, the same answer as before."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from journal import services as journal
from journal.models import Counter, Entry
from journal.services import CannotCalculateChanges

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_account):
    return make_account("alice").pk


def age(account, type, days):
    """Make every entry of account+type recorded so far `days` old."""
    Entry.objects.filter(account_id=account, type=type).update(at=timezone.now() - timedelta(days=days))


def prune(*args) -> str:
    out = StringIO()
    call_command("journal", "prune", *args, stdout=out)
    return out.getvalue()


def test_prune_by_age_forgets_old_changes_and_refuses_states_before_them(alice, settings):
    settings.JOURNAL_MAX_AGE_DAYS = 30
    s0 = journal.state(alice, "Email")
    s1 = journal.record(alice, "Email", created=["old1", "old2"])
    age(alice, "Email", 31)
    s2 = journal.record(alice, "Email", created=["new"], updated=["old1"])
    before = journal.changes(alice, "Email", s1, 10)
    assert "Pruned 2 journal entries." in prune()
    for gone in (s0, "1"):
        with pytest.raises(CannotCalculateChanges):
            journal.changes(alice, "Email", gone, 10)
    assert journal.changes(alice, "Email", s1, 10) == before  # the state right after: still exact
    assert journal.changes(alice, "Email", s2, 10).created == []
    assert Entry.objects.filter(account_id=alice).count() == 2
    assert prune() == "Pruned 0 journal entries.\n"  # nothing more to do


def test_prune_by_count_keeps_the_newest_changes_of_each_account_and_type(alice, make_account):
    bob = make_account("bob").pk
    for n in range(5):
        journal.record(alice, "Email", created=[f"a{n}"])
        journal.record(bob, "Email", created=[f"b{n}"])
    journal.record(alice, "Mailbox", created=["inbox"])
    prune("--max-changes", "3", "--max-age-days", "0")
    assert sorted(Entry.objects.filter(account_id=alice, type="Email").values_list("object_id", flat=True)) == [
        "a2", "a3", "a4"]
    assert Entry.objects.filter(account_id=bob).count() == 3
    assert Entry.objects.filter(type="Mailbox").count() == 1
    with pytest.raises(CannotCalculateChanges):
        journal.changes(alice, "Email", "1", 10)
    assert journal.changes(alice, "Email", "2", 10).created == ["a2", "a3", "a4"]
    assert journal.changes(alice, "Mailbox", "0", 10).created == ["inbox"]


def test_prune_to_nothing_still_tells_the_current_state_apart_from_an_old_one(alice):
    state = journal.record(alice, "Email", created=["a"])
    age(alice, "Email", 400)
    prune("--max-age-days", "1")
    assert not Entry.objects.exists()
    assert journal.state(alice, "Email") == state
    assert journal.changes(alice, "Email", state, 10).created == []
    with pytest.raises(CannotCalculateChanges):
        journal.changes(alice, "Email", "0", 10)
    with pytest.raises(CannotCalculateChanges):
        journal.query_changes(alice, "Email", "0", lambda: ["a"])


def test_the_floor_only_rises(alice):
    journal.record(alice, "Email", created=["a", "b", "c", "d"])
    prune("--max-changes", "1", "--max-age-days", "0")
    prune("--max-changes", "3", "--max-age-days", "0")
    assert Counter.objects.get(account_id=alice, type="Email").pruned == 3


def test_prune_works_in_batches(alice):
    journal.record(alice, "Email", created=[f"m{i}" for i in range(25)])
    age(alice, "Email", 100)
    assert journal.prune(max_age=timedelta(days=1), batch=7) == 25


def test_a_negative_limit_is_refused(alice):
    with pytest.raises(CommandError):
        prune("--max-changes", "-1")
