"""Concurrent writers of one address book (PostgreSQL, where they really overlap): a UID taken by
two PUTs at once is stored once and the other gets no-uid-conflict (never a database error);
the default book is created once however many first uses race; a sync client sees every card."""
from __future__ import annotations

import pytest

from contacts import services
from contacts.models import AddressBook, Card
from tests.threads import run_together, skip_on_memory_sqlite

from .conftest import simple_card

WRITERS = 6


@pytest.mark.django_db(transaction=True)
def test_first_uses_race_to_one_default_book(builtin_role_rows, make_account):
    skip_on_memory_sqlite()
    account = make_account("alice").pk
    results = run_together(lambda n: services.books(account)[0].pk, WRITERS)
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1 and AddressBook.objects.filter(account_id=account).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_uid_raced_by_several_puts_is_stored_once(builtin_role_rows, make_account):
    skip_on_memory_sqlite()
    account = make_account("alice").pk
    book = services.default_book(account)
    start = services.sync_state(account)

    def put(n: int):
        services.put_card(book, f"unique-{n}.vcf", simple_card(f"u{n}"))
        return services.put_card(book, f"same-{n}.vcf", simple_card("contested"))

    results = run_together(put, WRITERS)
    winners = [r for r in results if isinstance(r, services.PutResult)]
    losers = [r for r in results if isinstance(r, services.Precondition)]
    assert len(winners) == 1 and len(losers) == WRITERS - 1, results
    assert {loser.condition for loser in losers} == {"no-uid-conflict"}
    assert {loser.href for loser in losers} == {winners[0].card.name}
    assert Card.objects.filter(book=book, uid="contested").count() == 1
    got = services.changes(book, start)
    assert sorted(c.name for c in got.cards) == sorted([f"unique-{n}.vcf" for n in range(WRITERS)]
                                                       + [winners[0].card.name])
    book.refresh_from_db()
    assert book.revision >= WRITERS + 1
