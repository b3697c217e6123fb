"""An account's enabled aliases are its addresses for scheduling: invited by an alias, it gets
the invitation (not an email to itself), answers as the alias, and organizes under an alias."""
from __future__ import annotations

import icalendar
import pytest

from accounts.models import Account, Alias
from calendars import itip
from calendars.models import CalendarObject, ScheduleMessage

from .helpers import body

ALICE_CAL = "/dav/cal/alice%40example.org/default/"
BOB_CAL = "/dav/cal/bob%40example.org/default/"


def invitation(organizer="alice@example.org", invitee="sales@example.org", partstat="NEEDS-ACTION") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:alias-meet",
             "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z", "SUMMARY:Planning",
             "SEQUENCE:0", f"ORGANIZER:mailto:{organizer}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{organizer}",
             f"ATTENDEE;PARTSTAT={partstat};RSVP=TRUE:mailto:{invitee}", "END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def put(dav, path, data, **headers):
    return dav.put(path, data, content_type="text/calendar; charset=utf-8", **headers)


def copy_of(email_address):
    return CalendarObject.objects.get(account__email_address=email_address, uid="alias-meet")


def partstats(obj):
    return itip.attendees(icalendar.Calendar.from_ical(obj.data))


@pytest.fixture
def sales(bob, domain):
    return Alias.objects.create(account=Account.objects.get(email_address="bob@example.org"), name="sales",
                                domain=domain)


@pytest.mark.django_db
def test_invited_by_an_alias_bob_gets_it_and_answers_as_the_alias(alice, bob, sales):
    assert put(alice, ALICE_CAL + "m.ics", invitation()).status_code == 201
    copy = copy_of("bob@example.org")
    assert partstats(copy)["sales@example.org"] == "NEEDS-ACTION"
    got = bob.request("GET", BOB_CAL + copy.name)
    r = put(bob, BOB_CAL + copy.name, got.content.replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=ACCEPTED"),
            IF_MATCH=got["ETag"])
    assert r.status_code == 204, body(r)
    assert partstats(copy_of("alice@example.org"))["sales@example.org"] == "ACCEPTED"


@pytest.mark.django_db
def test_bob_organizes_under_his_alias(alice, bob, sales):
    r = put(bob, BOB_CAL + "m.ics", invitation(organizer="sales@example.org", invitee="alice@example.org"))
    assert r.status_code == 201, body(r)
    assert ScheduleMessage.objects.filter(account__email_address="alice@example.org", method="REQUEST",
                                          sender="sales@example.org").count() == 1
    # And alice's answer reaches the organizer's copy at the alias.
    copy = copy_of("alice@example.org")
    got = alice.request("GET", ALICE_CAL + copy.name)
    assert put(alice, ALICE_CAL + copy.name, got.content.replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=DECLINED"),
               IF_MATCH=got["ETag"]).status_code == 204
    assert partstats(copy_of("bob@example.org"))["alice@example.org"] == "DECLINED"


@pytest.mark.django_db
def test_a_disabled_alias_or_a_catch_all_is_no_scheduling_address(alice, bob, sales, domain):
    sales.enabled = False
    sales.save()
    Alias.objects.create(account=Account.objects.get(email_address="bob@example.org"), name="*", domain=domain)
    assert put(alice, ALICE_CAL + "m.ics", invitation()).status_code == 201
    assert not CalendarObject.objects.filter(account__email_address="bob@example.org").exists()
    # Nor can bob organize under it: alice's calendar stays empty.
    r = put(bob, BOB_CAL + "m.ics", invitation(organizer="sales@example.org", invitee="alice@example.org"))
    assert r.status_code == 201
    assert not ScheduleMessage.objects.filter(account__email_address="alice@example.org").exists()
