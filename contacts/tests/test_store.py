"""The contact store's services: address books, PUT with its RFC 6352 preconditions, GET with
version conversion, DELETE, listings, the journal and sync, query counts, and the attacker's
view (another account's books and cards, huge cards)."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.test.utils import CaptureQueriesContext

from blobs import services as blobs
from blobs.models import StoreUsage
from contacts import services
from contacts.models import AddressBook, Card, CardProperty
from contacts.services import Precondition, PreconditionFailed
from journal import services as journal
from journal.models import Entry

from .conftest import STORABLE, card_bytes, simple_card

pytestmark = pytest.mark.django_db


def test_default_book_is_created_on_first_use_once(alice):
    assert not AddressBook.objects.filter(account_id=alice.pk).exists()
    books = services.books(alice.pk)
    assert [b.slug for b in books] == ["default"]
    assert books[0].display_name == "Stalwart Address Book (alice@example.org)"
    assert services.books(alice.pk)[0].pk == books[0].pk
    assert services.get_book(alice.pk, "default").pk == books[0].pk
    created = Entry.objects.filter(account_id=alice.pk, type="AddressBook")
    assert [(e.kind, e.href) for e in created] == [(Entry.Kind.CREATED, "default/")]


def test_create_update_delete_book_journaled(alice):
    book = services.create_book(alice.pk, "work", display_name="Work", description="Colleagues")
    with pytest.raises(services.Exists):
        services.create_book(alice.pk, "work")
    for bad in ("", "a/b", ".", "..", "x" * 256, "tab\there", "nul\0"):
        with pytest.raises(services.Invalid):
            services.create_book(alice.pk, bad)
    before = services.ctag(book)
    services.update_book(book, display_name="Work stuff", properties={"{http://apple.com/ns/ical/}color": "#fff"})
    book.refresh_from_db()
    assert book.display_name == "Work stuff" and services.ctag(book) != before
    services.put_card(book, "a.vcf", simple_card("a"))
    services.delete_book(book)
    assert not Card.objects.exists() and not CardProperty.objects.exists()
    kinds = list(Entry.objects.filter(account_id=alice.pk).order_by("pk").values_list("type", "kind", "href"))
    assert kinds == [("AddressBook", 1, "work/"), ("AddressBook", 2, "work/"), ("ContactCard", 1, "work/a.vcf"),
                     ("AddressBook", 3, "work/"), ("ContactCard", 3, "work/a.vcf")]


def test_book_limit(alice, settings):
    settings.CONTACTS_MAX_BOOKS = 2
    services.create_book(alice.pk, "one")
    services.create_book(alice.pk, "two")
    with pytest.raises(services.LimitReached):
        services.create_book(alice.pk, "three")


@pytest.mark.parametrize("name", STORABLE)
def test_real_world_cards_are_stored_as_sent(alice, name):
    book = services.default_book(alice.pk)
    data = card_bytes(name)
    result = services.put_card(book, name, data, if_none_match="*")
    assert result.created and result.changed
    card = services.get_card(book, name)
    assert card.data.encode() == data and card.size == len(data) and card.etag.startswith('"')
    assert services.card_text(card) == data.decode()
    assert CardProperty.objects.filter(card=card).exists()


def test_put_update_same_content_and_conditions(alice):
    book = services.default_book(alice.pk)
    first = services.put_card(book, "x.vcf", simple_card("x", "One")).card
    state = services.sync_state(alice.pk)
    again = services.put_card(book, "x.vcf", simple_card("x", "One"))
    assert not again.changed and again.card.etag == first.etag and services.sync_state(alice.pk) == state
    with pytest.raises(PreconditionFailed):
        services.put_card(book, "x.vcf", simple_card("x", "Two"), if_none_match="*")
    with pytest.raises(PreconditionFailed):
        services.put_card(book, "x.vcf", simple_card("x", "Two"), if_match='"nope"')
    with pytest.raises(PreconditionFailed):
        services.put_card(book, "y.vcf", simple_card("y"), if_match="*")
    with pytest.raises(PreconditionFailed):
        services.put_card(book, "x.vcf", simple_card("x", "Two"), if_match=f"W/{first.etag}")
    second = services.put_card(book, "x.vcf", simple_card("x", "Two"), if_match=[first.etag, '"other"'])
    assert not second.created and second.card.etag != first.etag
    assert list(CardProperty.objects.filter(card=second.card, name="FN").values_list("value", flat=True)) == ["Two"]
    with pytest.raises(PreconditionFailed):
        services.delete_card(book, "x.vcf", if_match=first.etag)
    services.delete_card(book, "x.vcf", if_match=second.card.etag)
    with pytest.raises(services.NotFound):
        services.get_card(book, "x.vcf")
    with pytest.raises(services.NotFound):
        services.delete_card(book, "x.vcf")


def test_uid_conflicts_name_the_other_card(alice):
    book = services.default_book(alice.pk)
    services.put_card(book, "a.vcf", simple_card("same"))
    with pytest.raises(Precondition) as caught:
        services.put_card(book, "b.vcf", simple_card("same"))
    assert (caught.value.condition, caught.value.href) == ("no-uid-conflict", "a.vcf")
    with pytest.raises(Precondition) as caught:
        services.put_card(book, "a.vcf", simple_card("changed"))
    assert caught.value.condition == "no-uid-conflict"
    # The same UID in another book, or another account, is no conflict.
    services.put_card(services.create_book(alice.pk, "other"), "b.vcf", simple_card("same"))
    assert Card.objects.filter(uid="same").count() == 2


@pytest.mark.parametrize(("data", "condition"), [
    (b"garbage", "valid-address-data"),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n", "valid-address-data"),
    (b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nEND:VCARD\r\n", "supported-address-data"),
    (simple_card("big", extra="NOTE:" + "x" * 600_000 + "\r\n"), "max-resource-size"),
])
def test_refusals_name_their_precondition_and_write_nothing(alice, data, condition):
    book = services.default_book(alice.pk)
    state = services.sync_state(alice.pk)
    with pytest.raises(Precondition) as caught:
        services.put_card(book, "bad.vcf", data)
    assert caught.value.condition == condition
    assert not Card.objects.exists() and services.sync_state(alice.pk) == state
    book.refresh_from_db()
    assert book.revision == 0


def test_max_size_is_checked_before_parsing(alice, settings):
    settings.CONTACTS_MAX_VCARD_SIZE = 2048
    book = services.default_book(alice.pk)
    with pytest.raises(Precondition) as caught:
        services.put_card(book, "a.vcf", b"\xff" * 4096)  # not even UTF-8: the size speaks first
    assert caught.value.condition == "max-resource-size"


def test_bad_card_names(alice):
    book = services.default_book(alice.pk)
    for bad in ("", "a/b.vcf", "..", "x" * 256, "a\nb", "nul\0"):
        with pytest.raises(services.Invalid):
            services.put_card(book, bad, simple_card("n"))


def test_version_negotiation_on_get(alice):
    book = services.default_book(alice.pk)
    card = services.put_card(book, "tb.vcf", card_bytes("thunderbird.vcf")).card
    v3 = services.card_text(card, version="3.0")
    assert "VERSION:3.0" in v3 and "ENCODING=b" in v3
    assert services.card_text(card, version="4.0") == card.data
    with pytest.raises(Precondition) as caught:
        services.card_text(card, version="2.1")
    assert caught.value.condition == "supported-address-data-conversion"
    # A card converted and sent back by a vCard 3 client keeps its UID: an update, not a clash.
    again = services.put_card(book, "tb.vcf", v3.encode(), if_match=card.etag)
    assert not again.created and again.card.version == "3.0"


def test_listing_and_multiget_query_counts(alice):
    book = services.default_book(alice.pk)
    for i in range(30):
        services.put_card(book, f"{i:02}.vcf", simple_card(f"u{i}", f"Person {i}"))
    with CaptureQueriesContext(connection) as queries:
        listed = services.listing(book)
    assert len(queries) == 1 and [row[0] for row in listed][:3] == ["00.vcf", "01.vcf", "02.vcf"]
    with CaptureQueriesContext(connection) as queries:
        got = services.multiget(book, ["03.vcf", "07.vcf", "missing.vcf", "x\0"])
    assert len(queries) == 1 and sorted(got) == ["03.vcf", "07.vcf"]


def test_put_costs_the_same_whatever_the_book_size(alice):
    book = services.default_book(alice.pk)
    services.put_card(book, "first.vcf", simple_card("first"))
    with CaptureQueriesContext(connection) as small:
        services.put_card(book, "new1.vcf", simple_card("new1", extra="EMAIL:a@example.org\r\nEMAIL:b@example.org\r\n"))
    for i in range(100):
        services.put_card(book, f"{i}.vcf", simple_card(f"bulk{i}"))
    with CaptureQueriesContext(connection) as large:
        services.put_card(book, "new2.vcf", simple_card("new2", extra="EMAIL:a@example.org\r\nEMAIL:b@example.org\r\n"))
    # 11: the account's row, locked for the disk quota the card counts toward.
    assert len(small) == len(large) <= 11


def test_changes_per_book_with_tombstones_and_paging(alice):
    book = services.default_book(alice.pk)
    other = services.create_book(alice.pk, "other")
    start = services.sync_state(alice.pk)
    for i in range(5):
        services.put_card(book, f"{i}.vcf", simple_card(f"c{i}"))
    services.put_card(other, "elsewhere.vcf", simple_card("e"))
    services.delete_card(book, "0.vcf")
    services.put_card(book, "1.vcf", simple_card("c1", "Renamed"))
    got = services.changes(book, start)
    assert sorted(c.name for c in got.cards) == ["1.vcf", "2.vcf", "3.vcf", "4.vcf"]
    assert got.removed == [] and not got.has_more  # created and deleted since: never seen
    mid = got.new_state
    services.delete_card(book, "2.vcf")
    services.put_card(book, "2.vcf", simple_card("c2-new"))  # a new card at the same href
    services.delete_card(book, "3.vcf")
    got = services.changes(book, mid)
    assert [c.name for c in got.cards] == ["2.vcf"] and got.removed == ["3.vcf"]
    paged, state, seen = None, start, []
    for _ in range(20):
        paged = services.changes(book, state, max_changes=2)
        seen += [c.name for c in paged.cards]
        state = paged.new_state
        if not paged.has_more:
            break
    assert not paged.has_more and {"1.vcf", "2.vcf", "4.vcf"} <= set(seen)
    with pytest.raises(services.SyncStateInvalid):
        services.changes(book, "999999")
    with pytest.raises(services.SyncStateInvalid):
        services.changes(book, "garbage")


def test_move_and_copy_keep_uid_rules_and_leave_tombstones(alice):
    book = services.default_book(alice.pk)
    work = services.create_book(alice.pk, "work")
    services.put_card(book, "a.vcf", simple_card("a"))
    state = services.sync_state(alice.pk)
    moved = services.move_card(book, "a.vcf", work, "a.vcf")
    assert moved.created and moved.card.book_id == work.pk
    assert services.changes(book, state).removed == ["a.vcf"]
    services.move_card(work, "a.vcf", book, "copy.vcf", copy=True)
    with pytest.raises(Precondition):
        services.move_card(work, "a.vcf", book, "copy2.vcf", copy=True)  # UID taken in the target book
    with pytest.raises(PreconditionFailed):
        services.move_card(work, "a.vcf", book, "copy.vcf", overwrite=False)


# --- the attacker's view -------------------------------------------------------------------

def test_another_accounts_books_and_cards_are_out_of_reach(alice, bob):
    alice_book = services.create_book(alice.pk, "private")
    services.put_card(alice_book, "secret.vcf", simple_card("secret-uid", "Secret"))
    with pytest.raises(services.NotFound):
        services.get_book(bob.pk, "private")
    bob_book = services.default_book(bob.pk)
    assert bob_book.account_id == bob.pk
    with pytest.raises(services.NotFound):
        services.get_card(bob_book, "secret.vcf")
    assert services.multiget(bob_book, ["secret.vcf"]) == {}
    # Bob's UID space is his own: the same UID is no conflict, and leaks no href.
    assert services.put_card(bob_book, "mine.vcf", simple_card("secret-uid")).created
    with pytest.raises(services.Invalid):
        services.move_card(alice_book, "secret.vcf", bob_book, "stolen.vcf")
    # Bob's journal says nothing of Alice's cards.
    assert not Entry.objects.filter(account_id=bob.pk, href__contains="secret").exists()
    assert journal.state(bob.pk, "ContactCard") == "1"


def test_a_deleted_book_refuses_writes(alice):
    book = services.create_book(alice.pk, "gone")
    stale = AddressBook.objects.get(pk=book.pk)
    services.delete_book(book)
    with pytest.raises(services.NotFound):
        services.put_card(stale, "a.vcf", simple_card("a"))
    assert not Card.objects.exists()


def test_ten_thousand_properties_are_stored_and_indexed_in_batches(alice):
    book = services.default_book(alice.pk)
    lines = "".join(f"EMAIL;TYPE=work:user{i}@example.org\r\n" for i in range(10_000))
    data = simple_card("many", "Many Mails", lines)
    assert len(data) < 524_288
    with CaptureQueriesContext(connection) as queries:
        services.put_card(book, "many.vcf", data)
    assert CardProperty.objects.filter(name="EMAIL").count() == 10_000
    assert len(queries) < 100  # the index rows go in batches (SQLite: as many as its parameter limit allows)


def test_hostile_names_and_properties_never_reach_the_database_as_errors(alice):
    book = services.default_book(alice.pk)
    for name in ("a\0b", "", "x" * 300, None, 7):
        with pytest.raises(services.NotFound):
            services.get_card(book, name)
        with pytest.raises(services.NotFound):
            services.delete_card(book, name)
    with pytest.raises(services.NotFound):
        services.get_book(alice.pk, "a\0b")
    for bad in ({"{DAV:}x": "a\0"}, {"{DAV:}x": 1}, ["not", "a", "mapping"], {"{DAV:}x": "y" * 70_000}):
        with pytest.raises(services.Invalid):
            services.update_book(book, properties=bad)
        with pytest.raises(services.Invalid):
            services.create_book(alice.pk, "new", properties=bad)
    for bad in ("x" * 256, "nul\0", 5):
        with pytest.raises(services.Invalid):
            services.update_book(book, display_name=bad)
    book.refresh_from_db()
    assert book.properties == {} and book.revision == 0


def test_deleting_an_account_takes_its_books_cards_and_index(alice, bob):
    services.put_card(services.default_book(alice.pk), "a.vcf", card_bytes("google.vcf"))
    services.put_card(services.default_book(bob.pk), "b.vcf", card_bytes("google.vcf"))
    alice.delete()
    assert list(AddressBook.objects.values_list("account_id", flat=True)) == [bob.pk]
    assert list(Card.objects.values_list("name", flat=True)) == ["b.vcf"]
    assert set(CardProperty.objects.values_list("card__name", flat=True)) == {"b.vcf"}


def test_the_usage_row_follows_every_write(alice):
    def check():
        real = Card.objects.filter(book__account=alice).aggregate(octets=Sum("size"), items=Count("pk"))
        assert blobs.counted_items(alice.pk, "ContactCard") == real["items"]
        assert blobs.usage(alice.pk) == (real["octets"] or 0)

    book = services.default_book(alice.pk)
    other = services.create_book(alice.pk, "other")
    services.put_card(book, "a.vcf", simple_card("a"))
    services.put_card(book, "b.vcf", simple_card("b"))
    services.put_card(book, "a.vcf", simple_card("a", fn="Somebody with a longer name"))
    check()
    services.move_card(book, "a.vcf", other, "a.vcf")
    services.move_card(other, "a.vcf", book, "c.vcf", copy=True)
    services.delete_card(book, "b.vcf")
    check()
    StoreUsage.objects.filter(account=alice).delete()
    assert blobs.usage(alice.pk) == Card.objects.filter(book__account=alice).aggregate(s=Sum("size"))["s"]
    services.put_card(book, "d.vcf", simple_card("d"))
    check()
    services.delete_book(other)
    check()
    assert StoreUsage.objects.get(account=alice).items == 2
