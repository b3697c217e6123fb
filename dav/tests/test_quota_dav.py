"""Calendar objects and vCards count toward the account's one disk quota, with mail and files
(issue 14): a PUT past the limit is 507 DAV:quota-not-exceeded (RFC 4331), exactly at the limit
accepted; a replacement counts the difference, a delete frees; JMAP Quota/get, x:Account and the
DAV quota properties all read the same usage; two PUTs racing for the last octets do not both
pass (PostgreSQL)."""
from __future__ import annotations


import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from blobs import services as blobs
from calendars.models import CalendarObject
from contacts.models import Card
from registry import ids
from tests.clients import STRONG_PASSWORD, Jmap, basic
from tests.threads import run_together, skip_on_memory_sqlite

from .helpers import Dav, NS, prop, xml
from .test_caldav import ics
from .test_carddav import vcard

CAL = "/dav/cal/alice%40example.org/default/"
BOOK = "/dav/card/alice%40example.org/default/"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:quota"]
STALWART = "urn:stalwart:jmap"


def put_event(dav, name, data, **headers):
    return dav.put(CAL + name, data, content_type="text/calendar; charset=utf-8", **headers)


def put_card(dav, name, data, **headers):
    return dav.put(BOOK + name, data, content_type="text/vcard; charset=utf-8", **headers)


def account():
    return Account.objects.get(email_address="alice@example.org")


def limit(value):
    Account.objects.filter(email_address="alice@example.org").update(max_disk_quota=value)


def refused(response):
    assert response.status_code == 507, response.content
    assert xml(response).find("D:quota-not-exceeded", NS) is not None


def quota_get(client, pk):
    got = Jmap(client, basic("alice@example.org")).call("Quota/get", {"accountId": ids.encode(pk), "ids": None},
                                                       using=USING)
    assert got[0] == "Quota/get", got
    return got[1]


@pytest.mark.django_db
def test_calendar_put_at_the_limit_passes_one_octet_over_is_refused(alice):
    assert put_event(alice, "a.ics", ics("a")).status_code == 201
    assert put_event(alice, "b.ics", ics("b", summary="Lunch")).status_code == 201
    pk = account().pk
    sizes = dict(CalendarObject.objects.filter(account_id=pk).values_list("name", "size"))
    assert blobs.usage(pk) == sizes["a.ics"] + sizes["b.ics"]
    assert alice.request("DELETE", CAL + "b.ics").status_code == 204
    assert blobs.usage(pk) == sizes["a.ics"]
    limit(sizes["a.ics"] + sizes["b.ics"] - 1)
    refused(put_event(alice, "b.ics", ics("b", summary="Lunch")))
    assert not CalendarObject.objects.filter(account_id=pk, name="b.ics").exists()  # nothing written
    limit(sizes["a.ics"] + sizes["b.ics"])
    assert put_event(alice, "b.ics", ics("b", summary="Lunch")).status_code == 201
    # Full: a replacement one octet larger is refused, one of equal or smaller size passes
    # (the difference is counted, not the whole object again).
    refused(put_event(alice, "a.ics", ics("a", summary="Meetingx")))
    assert put_event(alice, "a.ics", ics("a", summary="Meetinx")).status_code == 204
    assert put_event(alice, "a.ics", ics("a", summary="Meet")).status_code == 204
    # Deletes free space: what was refused fits now.
    assert alice.request("DELETE", CAL + "b.ics").status_code == 204
    assert put_event(alice, "a.ics", ics("a", summary="Meetingx")).status_code == 204


@pytest.mark.django_db
def test_card_put_at_the_limit_passes_one_octet_over_is_refused(alice):
    first, second = vcard("a", "Ann"), vcard("b", "Bob")
    assert put_card(alice, "a.vcf", first).status_code == 201
    pk = account().pk
    assert blobs.usage(pk) == len(first)
    limit(len(first) + len(second) - 1)
    refused(put_card(alice, "b.vcf", second))
    assert not Card.objects.filter(name="b.vcf").exists()
    limit(len(first) + len(second))
    assert put_card(alice, "b.vcf", second).status_code == 201
    assert blobs.usage(pk) == len(first) + len(second)
    refused(put_card(alice, "a.vcf", vcard("a", "Anne")))  # one octet more than stored
    assert put_card(alice, "a.vcf", vcard("a", "Al")).status_code == 204  # one less: passes
    assert put_card(alice, "a.vcf", vcard("a", "Ann")).status_code == 204  # back to full
    assert alice.request("DELETE", BOOK + "b.vcf").status_code == 204
    assert blobs.usage(pk) == len(first)


@pytest.mark.django_db
def test_mail_files_events_and_cards_share_one_quota(alice, client):
    pk = account().pk
    limit(10_000)
    card = vcard("a", "Ann")
    assert put_card(alice, "a.vcf", card).status_code == 201
    assert put_event(alice, "a.ics", ics("a")).status_code == 201
    event = CalendarObject.objects.get(account_id=pk).size
    assert alice.put(alice.home + "f.txt", b"x" * 100).status_code == 201
    total = len(card) + event + 100
    assert blobs.usage(pk) == total
    # A file that fits alone does not fit beside the events and cards.
    refused(alice.put(alice.home + "g.txt", b"y" * (10_000 - total + 1)))
    # The DAV quota properties of every tree, the JMAP Quota and x:Account read the same usage.
    for home in (alice.home, "/dav/cal/alice%40example.org/", "/dav/card/alice%40example.org/"):
        got = alice.propfind(home, ["D:quota-used-bytes", "D:quota-available-bytes"], depth="0")
        assert prop(got, home, "D:quota-used-bytes").text == str(total), home
        assert prop(got, home, "D:quota-available-bytes").text == str(10_000 - total), home
    quota = quota_get(client, pk)["list"][0]
    assert quota["used"] == total and quota["hardLimit"] == 10_000
    assert {"CalendarEvent", "ContactCard"} <= set(quota["types"])
    # One query for the usage, whatever the number of stores counted.
    with CaptureQueriesContext(connection) as queries:
        blobs.usage(pk)
    assert len(queries) == 1


@pytest.mark.django_db
def test_a_usage_change_journals_the_quota(alice, client):
    pk = account().pk
    limit(100_000)
    jmap = Jmap(client, basic("alice@example.org"))
    args = {"accountId": ids.encode(pk)}

    def changes(since):
        got = jmap.call("Quota/changes", {**args, "sinceState": since}, using=USING)
        assert got[0] == "Quota/changes", got
        return got[1]

    state = quota_get(client, pk)["state"]
    assert put_card(alice, "a.vcf", vcard("a", "Ann")).status_code == 201
    got = changes(state)
    assert got["updated"] == [blobs.DISK_QUOTA_ID]
    state = got["newState"]
    assert put_event(alice, "a.ics", ics("a")).status_code == 201
    got = changes(state)
    assert got["updated"] == [blobs.DISK_QUOTA_ID]
    state = got["newState"]
    # The same text again moves nothing.
    assert put_card(alice, "a.vcf", vcard("a", "Ann")).status_code == 204
    assert changes(state)["updated"] == []
    assert alice.request("DELETE", CAL + "a.ics").status_code == 204
    got = changes(state)
    assert got["updated"] == [blobs.DISK_QUOTA_ID]
    state = got["newState"]
    # A whole address book deleted frees its cards' octets.
    team = "/dav/card/alice%40example.org/team/"
    mkcol = ('<D:mkcol xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
             '<D:collection/><B:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
    assert alice.request("MKCOL", team, mkcol).status_code == 201
    assert alice.put(team + "b.vcf", vcard("b", "Bob"), content_type="text/vcard").status_code == 201
    before = blobs.usage(pk)
    state = changes(state)["newState"]
    assert alice.request("DELETE", team).status_code == 204
    assert changes(state)["updated"] == [blobs.DISK_QUOTA_ID]
    assert blobs.usage(pk) == before - len(vcard("b", "Bob"))


@pytest.mark.django_db
def test_used_disk_quota_of_the_account_object_counts_events_and_cards(alice, client, make_account):
    root = make_account("root", roles_mode=Account.RolesMode.ADMIN, enabled_permissions=["impersonate"],
                        permissions_mode="merge")
    card = vcard("a", "Ann")
    assert put_card(alice, "a.vcf", card).status_code == 201
    pk = account().pk
    got = Jmap(client, basic("root@example.org")).call(
        "x:Account/get", {"accountId": ids.encode(root.pk), "ids": [ids.encode(pk)], "properties": ["usedDiskQuota"]},
        using=["urn:ietf:params:jmap:core", STALWART])
    assert got[1]["list"][0]["usedDiskQuota"] == len(card), got


@pytest.mark.django_db
def test_another_account_cannot_fill_or_read_the_quota(alice, bob):
    limit(10)
    # Bob writes into Alice's calendar: refused for want of rights, not counted against her.
    assert put_event(bob, "x.ics", ics("x")).status_code in (403, 404)
    assert blobs.usage(account().pk) == 0


# --- concurrency ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_two_puts_racing_for_the_last_octets_do_not_both_pass(builtin_role_rows, make_account):
    skip_on_memory_sqlite()
    make_account("alice")
    writers = 4
    cards = [vcard(f"u{n}", f"Person {n}") for n in range(writers)]
    # Room for exactly one of them.
    limit(max(len(c) for c in cards) + 1)
    # Each writer in a book of its own: the book's row lock does not order them, only the
    # account's row does.
    home = "/dav/card/alice%40example.org/"
    mkcol = ('<D:mkcol xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
             '<D:collection/><B:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
    owner = Dav(Client(), "alice@example.org")
    for n in range(writers):
        assert owner.request("MKCOL", f"{home}b{n}/", mkcol).status_code == 201
    def put(n):
        dav = Dav(Client(), "alice@example.org")
        return dav.put(f"{home}b{n}/c.vcf", cards[n], content_type="text/vcard").status_code

    results = run_together(put, writers)
    assert sorted(results) == [201] + [507] * (writers - 1), results
    assert Card.objects.count() == 1
    assert blobs.usage(account().pk) <= account().max_disk_quota


@pytest.mark.django_db
def test_a_deleted_calendar_frees_its_objects_and_the_admin_page_shows_the_usage(alice, client, make_account):
    pk = account().pk
    team = "/dav/cal/alice%40example.org/team/"
    assert alice.request("MKCALENDAR", team, b"").status_code == 201
    assert alice.put(team + "a.ics", ics("a"), content_type="text/calendar").status_code == 201
    size = CalendarObject.objects.get(account_id=pk).size
    assert blobs.usage(pk) == size
    make_account("root", roles_mode=Account.RolesMode.ADMIN)
    assert client.login(username="root@example.org", password=STRONG_PASSWORD)
    html = client.get(f"/admin/accounts/account/{pk}/change/").content.decode()
    assert f"{size} bytes (no limit)" in html
    assert alice.request("DELETE", team).status_code == 204
    assert blobs.usage(pk) == 0
