"""Sharing calendars and address books with the ACL method, and lookups that never write on
someone else's behalf (issue 14)."""
from __future__ import annotations

import pytest

from accounts.models import Account
from calendars.models import Calendar
from contacts.models import AddressBook

from .helpers import Dav, body, hrefs
from .test_caldav import ics, query
from .test_carddav import vcard

CAL_HOME = "/dav/cal/alice%40example.org/"
CAL = CAL_HOME + "default/"
CARD_HOME = "/dav/card/alice%40example.org/"
BOOK = CARD_HOME + "default/"
BOB = "/dav/pal/bob%40example.org/"


def grant(principal: str, *privileges: str) -> str:
    privs = "".join(f"<D:privilege><D:{p}/></D:privilege>" for p in privileges)
    return (f'<D:acl xmlns:D="DAV:"><D:ace><D:principal><D:href>{principal}</D:href></D:principal>'
            f"<D:grant>{privs}</D:grant></D:ace></D:acl>")


def put_ics(who, path, data, **headers):
    return who.put(path, data, "text/calendar; charset=utf-8", **headers)


def put_vcf(who, path, data, **headers):
    return who.put(path, data, "text/vcard; charset=utf-8", **headers)


@pytest.fixture
def carol(client, make_account, builtin_role_rows):
    make_account("carol")
    return Dav(client, "carol@example.org")


@pytest.mark.django_db
def test_lookups_by_another_account_create_nothing(alice, bob):
    alice_pk = Account.objects.get(email_address="alice@example.org").pk
    for method, path in (("PROPFIND", CAL), ("GET", CAL + "x.ics"), ("PROPFIND", CAL_HOME), ("DELETE", CAL),
                         ("PROPFIND", BOOK), ("GET", BOOK + "x.vcf"), ("PROPFIND", CARD_HOME)):
        r = bob.request(method, path, Depth="1")
        assert r.status_code in (403, 404), (method, path, r.status_code)
    assert bob.report(CAL, query("20260101T000000Z", "20270101T000000Z")).status_code in (403, 404)
    assert put_ics(bob, CAL + "x.ics", ics("x")).status_code in (403, 404)
    assert put_vcf(bob, BOOK + "x.vcf", vcard("x", "X")).status_code in (403, 404)
    assert not Calendar.objects.filter(account_id=alice_pk).exists()
    assert not AddressBook.objects.filter(account_id=alice_pk).exists()
    # The owner's own first use still creates them.
    assert alice.propfind(CAL_HOME, ["D:resourcetype"]).status_code == 207
    assert alice.propfind(CARD_HOME, ["D:resourcetype"]).status_code == 207
    assert Calendar.objects.filter(account_id=alice_pk, slug="default").exists()
    assert AddressBook.objects.filter(account_id=alice_pk, slug="default").exists()


@pytest.mark.django_db
def test_a_calendar_shared_read_only(alice, bob, carol):
    assert put_ics(alice, CAL + "a.ics", ics("a", summary="Shared")).status_code == 201
    assert alice.request("MKCALENDAR", CAL_HOME + "private/").status_code == 201
    assert put_ics(alice, CAL_HOME + "private/p.ics", ics("p", summary="Private")).status_code == 201
    assert alice.request("ACL", CAL, grant(BOB, "read")).status_code == 200

    # Bob sees Alice's home among the calendar homes, and in it only the shared calendar.
    assert CAL_HOME in hrefs(bob.propfind("/dav/cal/", ["D:resourcetype"]))
    assert CAL_HOME not in hrefs(carol.propfind("/dav/cal/", ["D:resourcetype"]))
    listing = hrefs(bob.propfind(CAL_HOME, ["D:resourcetype"]))
    assert CAL in listing and CAL_HOME + "private/" not in listing
    assert CAL + "a.ics" in hrefs(bob.propfind(CAL, ["D:getetag"]))
    r = bob.request("GET", CAL + "a.ics")
    assert r.status_code == 200 and b"Shared" in body(r)
    r = bob.report(CAL, query("20260101T000000Z", "20270101T000000Z"))
    assert r.status_code == 207 and b"Shared" in body(r)

    # Read is not write: no PUT, DELETE, PROPPATCH or ACL.
    assert put_ics(bob, CAL + "b.ics", ics("b")).status_code == 403
    assert put_ics(bob, CAL + "a.ics", ics("a", summary="Changed")).status_code == 403
    assert bob.request("DELETE", CAL + "a.ics").status_code == 403
    assert bob.request("DELETE", CAL).status_code == 403
    assert bob.request("ACL", CAL, grant(BOB, "read", "write")).status_code == 403
    # The private calendar and its objects stay closed; Carol gets nothing at all.
    for who in (bob, carol):
        for path in (CAL_HOME + "private/", CAL_HOME + "private/p.ics"):
            r = who.request("GET" if path.endswith(".ics") else "PROPFIND", path, Depth="0")
            assert r.status_code in (403, 404) and b"Private" not in body(r)
    for method, path in (("GET", CAL + "a.ics"), ("PROPFIND", CAL)):
        r = carol.request(method, path, Depth="1")
        assert r.status_code in (403, 404) and b"Shared" not in body(r)
    assert alice.request("GET", CAL + "a.ics").status_code == 200

    # Revoking closes it again.
    assert alice.request("ACL", CAL, '<D:acl xmlns:D="DAV:"/>').status_code == 200
    assert bob.request("GET", CAL + "a.ics").status_code in (403, 404)
    assert CAL_HOME not in hrefs(bob.propfind("/dav/cal/", ["D:resourcetype"]))


@pytest.mark.django_db
def test_a_calendar_shared_for_writing(alice, bob):
    alice.propfind(CAL_HOME, ["D:resourcetype"])
    assert alice.request("ACL", CAL, grant(BOB, "read", "write")).status_code == 200
    assert put_ics(bob, CAL + "b.ics", ics("b", summary="From Bob")).status_code == 201
    assert b"From Bob" in body(alice.request("GET", CAL + "b.ics"))
    assert bob.request("DELETE", CAL + "b.ics").status_code == 204
    assert alice.request("GET", CAL + "b.ics").status_code == 404
    # write is not write-acl: Bob cannot pass it on.
    assert bob.request("ACL", CAL, grant(BOB, "read", "write", "write-acl")).status_code == 403


@pytest.mark.django_db
def test_an_address_book_shared_with_a_group(alice, bob, carol, make_account):
    team = make_account("team", kind="group", roles_mode=Account.RolesMode.DEFAULT)
    Account.objects.get(email_address="bob@example.org").member_groups.add(team)
    assert put_vcf(alice, BOOK + "c.vcf", vcard("c", "Shared Card")).status_code == 201
    assert alice.request("ACL", BOOK, grant("/dav/pal/team%40example.org/", "read")).status_code == 200
    assert CARD_HOME in hrefs(bob.propfind("/dav/card/", ["D:resourcetype"]))
    assert BOOK + "c.vcf" in hrefs(bob.propfind(BOOK, ["D:getetag"]))
    r = bob.request("GET", BOOK + "c.vcf")
    assert r.status_code == 200 and b"Shared Card" in body(r)
    assert put_vcf(bob, BOOK + "d.vcf", vcard("d", "D")).status_code == 403
    assert bob.request("DELETE", BOOK + "c.vcf").status_code == 403
    assert bob.request("ACL", BOOK, grant(BOB, "read")).status_code == 403
    # Carol is not in the group.
    r = carol.request("GET", BOOK + "c.vcf")
    assert r.status_code in (403, 404) and b"Shared Card" not in body(r)
    assert CARD_HOME not in hrefs(carol.propfind("/dav/card/", ["D:resourcetype"]))
    # An ACL on a single card is refused: grants live on the book.
    assert alice.request("ACL", BOOK + "c.vcf", grant(BOB, "read")).status_code == 403


def _sync(who, path, token=""):
    text = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1'
            '</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>')
    r = who.report(path, text)
    assert r.status_code == 207, body(r)
    from .helpers import xml
    root = xml(r)
    gone = [resp.findtext("{DAV:}href") for resp in root.findall("{DAV:}response")
            if "404" in (resp.findtext("{DAV:}status") or "")]
    return hrefs(r), gone, root.findtext("{DAV:}sync-token")


@pytest.mark.django_db
@pytest.mark.parametrize("home, make", [(CAL_HOME, "MKCALENDAR"), (CARD_HOME, "MKCOL")])
def test_home_sync_reports_created_and_removed_collections(alice, home, make):
    alice.propfind(home, ["D:resourcetype"])  # the default collection, made on first use
    listed, _, token = _sync(alice, home)
    assert home + "default/" in listed
    assert alice.request(make, home + "work/", (
        '<D:mkcol xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
        '<D:collection/><B:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>') if make == "MKCOL"
        else b"").status_code == 201
    listed, gone, token2 = _sync(alice, home, token)
    assert listed == [home + "work/"] and gone == []
    assert alice.request("DELETE", home + "work/").status_code == 204
    listed, gone, token3 = _sync(alice, home, token2)
    assert gone == [home + "work/"] and home + "work/" not in [h for h in listed if h not in gone]
    # Nothing changed since: an empty answer; a forged collection state is refused.
    listed, gone, _ = _sync(alice, home, token3)
    assert listed == [] and gone == []
    forged = token3.rpartition("-")[0] + "-fffff"
    r = alice.report(home, f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{forged}</D:sync-token>'
                           '<D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>')
    assert r.status_code == 403 and b"valid-sync-token" in body(r)


@pytest.mark.django_db
def test_copy_and_move_of_events(alice, bob):
    work = CAL_HOME + "work/"
    alice.propfind(CAL_HOME, ["D:resourcetype"])  # the default calendar, made on first use
    assert alice.request("MKCALENDAR", work).status_code == 201
    assert put_ics(alice, CAL + "a.ics", ics("a", summary="Alpha")).status_code == 201
    assert alice.request("COPY", CAL + "a.ics", Destination=work + "a.ics").status_code == 201
    assert b"Alpha" in body(alice.request("GET", work + "a.ics"))
    assert alice.request("GET", CAL + "a.ics").status_code == 200
    assert alice.request("COPY", CAL + "a.ics", Destination=work + "a.ics", Overwrite="F").status_code == 412
    # One UID per calendar: a second copy in the same calendar, or a move onto another name of
    # a calendar that holds it, is refused and changes nothing.
    r = alice.request("COPY", CAL + "a.ics", Destination=CAL + "b.ics")
    assert r.status_code in (403, 409) and b"no-uid-conflict" in body(r)
    r = alice.request("MOVE", CAL + "a.ics", Destination=work + "other.ics")
    assert r.status_code in (403, 409) and b"no-uid-conflict" in body(r)
    assert alice.request("GET", CAL + "a.ics").status_code == 200
    assert alice.request("GET", work + "other.ics").status_code == 404
    # A move onto the copy replaces it (204) and removes the source.
    assert alice.request("MOVE", CAL + "a.ics", Destination="http://testserver" + work + "a.ics").status_code == 204
    assert alice.request("GET", CAL + "a.ics").status_code == 404
    assert alice.request("MOVE", work + "a.ics", Destination=CAL + "m.ics").status_code == 201
    assert b"Alpha" in body(alice.request("GET", CAL + "m.ics"))
    # Hostile destinations: nowhere, deeper than a calendar, the object itself, another account.
    assert alice.request("MOVE", CAL + "m.ics", Destination=CAL_HOME + "nope/m.ics").status_code == 409
    assert alice.request("MOVE", CAL + "m.ics", Destination=CAL + "m.ics").status_code == 403
    assert alice.request("MOVE", CAL + "m.ics", Destination=CAL + "x/y.ics").status_code in (403, 409)
    bob.propfind("/dav/cal/bob%40example.org/", ["D:resourcetype"])
    assert alice.request("COPY", CAL + "m.ics",
                         Destination="/dav/cal/bob%40example.org/default/m.ics").status_code == 403
    # A reader may not move; nobody copies out of another account into their own.
    assert alice.request("ACL", CAL, grant(BOB, "read")).status_code == 200
    assert bob.request("MOVE", CAL + "m.ics", Destination=work + "m.ics").status_code == 403
    assert bob.request("COPY", CAL + "m.ics", Destination=work + "m2.ics").status_code == 403
    assert bob.request("COPY", CAL + "m.ics",
                       Destination="/dav/cal/bob%40example.org/default/m.ics").status_code == 403
    assert alice.request("GET", CAL + "m.ics").status_code == 200


@pytest.mark.django_db
def test_copy_and_move_of_cards(alice):
    other = CARD_HOME + "other/"
    alice.propfind(CARD_HOME, ["D:resourcetype"])
    assert alice.request("MKCOL", other, (
        '<D:mkcol xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
        '<D:collection/><B:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')).status_code == 201
    assert put_vcf(alice, BOOK + "c.vcf", vcard("c", "Card C")).status_code == 201
    assert alice.request("COPY", BOOK + "c.vcf", Destination=other + "c.vcf").status_code == 201
    r = alice.request("COPY", BOOK + "c.vcf", Destination=BOOK + "d.vcf")
    assert r.status_code == 403 and b"no-uid-conflict" in body(r)
    assert alice.request("COPY", BOOK + "c.vcf", Destination=other + "c.vcf", Overwrite="F").status_code == 412
    assert alice.request("MOVE", BOOK + "c.vcf", Destination=other + "c.vcf").status_code == 204
    assert alice.request("GET", BOOK + "c.vcf").status_code == 404
    assert b"Card C" in body(alice.request("GET", other + "c.vcf"))
    assert alice.request("MOVE", other + "c.vcf", Destination=CARD_HOME + "missing/c.vcf").status_code == 409
