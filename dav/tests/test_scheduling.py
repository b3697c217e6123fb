"""Implicit scheduling over CalDAV (RFC 6638): alice invites bob, bob answers by PUT, alice's copy
shows it; alice cancels; iMIP for attendees elsewhere; and who cannot schedule in whose name."""
from __future__ import annotations

import icalendar
import pytest

from calendars import itip
from calendars.models import CalendarObject, ScheduleMessage

from .helpers import body, hrefs

ALICE_CAL = "/dav/cal/alice%40example.org/default/"
BOB_CAL = "/dav/cal/bob%40example.org/default/"


def invitation(uid="meet-1", organizer="alice@example.org", extra="", sequence=0, bob_partstat="NEEDS-ACTION",
               carol=False) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z",
             "SUMMARY:Planning", f"SEQUENCE:{sequence}", f"ORGANIZER:mailto:{organizer}",
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org",
             f"ATTENDEE;PARTSTAT={bob_partstat};RSVP=TRUE:mailto:bob@example.org"]
    if carol:
        lines.append("ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@elsewhere.example")
    lines += [line for line in extra.splitlines() if line] + ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def put(dav, path, data, **headers):
    return dav.put(path, data, content_type="text/calendar; charset=utf-8", **headers)


def bob_copy():
    return CalendarObject.objects.get(account__email_address="bob@example.org", uid="meet-1")


def partstats(obj) -> dict:
    return itip.attendees(icalendar.Calendar.from_ical(obj.data))


@pytest.mark.django_db
def test_alice_invites_bob_bob_accepts_alice_sees_it_then_cancels(alice, bob):
    r = put(alice, ALICE_CAL + "meet.ics", invitation())
    assert r.status_code == 201, body(r)
    copy = bob_copy()
    assert copy.calendar.slug == "default"
    assert partstats(copy)["bob@example.org"] == "NEEDS-ACTION"
    assert "METHOD" not in copy.data
    assert ScheduleMessage.objects.filter(account__email_address="bob@example.org", method="REQUEST").count() == 1

    href = BOB_CAL + copy.name
    got = bob.request("GET", href)
    assert got.status_code == 200
    answered = got.content.decode().replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED")
    r = put(bob, href, answered.encode(), IF_MATCH=got["ETag"])
    assert r.status_code == 204, body(r)
    mine = CalendarObject.objects.get(account__email_address="alice@example.org", uid="meet-1")
    assert partstats(mine)["bob@example.org"] == "ACCEPTED"
    assert ScheduleMessage.objects.filter(account__email_address="alice@example.org", method="REPLY").count() == 1

    # An update by alice at the same SEQUENCE keeps bob's answer in his copy.
    r = put(alice, ALICE_CAL + "meet.ics", invitation(extra="LOCATION:Room 1"))
    assert r.status_code == 204, body(r)
    assert partstats(bob_copy())["bob@example.org"] == "ACCEPTED"
    assert "Room 1" in bob_copy().data

    r = alice.request("DELETE", ALICE_CAL + "meet.ics")
    assert r.status_code == 204
    assert "STATUS:CANCELLED" in bob_copy().data


@pytest.mark.django_db
def test_naming_another_account_as_organizer_reaches_nobody(alice, bob):
    # Alice claims bob organizes an event and invites carol-at-home... as bob: nothing is sent.
    r = put(alice, ALICE_CAL + "fake.ics", invitation(uid="fake", organizer="bob@example.org",
                                                      bob_partstat="ACCEPTED"))
    assert r.status_code == 201, body(r)
    assert not CalendarObject.objects.filter(account__email_address="bob@example.org").exists()
    assert not ScheduleMessage.objects.filter(account__email_address="bob@example.org").exists()


@pytest.mark.django_db
def test_a_request_cannot_overwrite_an_event_someone_else_organizes(alice, bob):
    # Bob's own event, UID "meet-1", organized by bob.
    own = (invitation(organizer="bob@example.org").replace(b"SUMMARY:Planning", b"SUMMARY:Mine")
           .replace(b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\n", b""))
    assert put(bob, BOB_CAL + "mine.ics", own).status_code == 201
    # Alice sends an invitation with the same UID: bob's event stays his.
    assert put(alice, ALICE_CAL + "meet.ics", invitation()).status_code == 201
    assert "SUMMARY:Mine" in bob_copy().data
    assert not ScheduleMessage.objects.filter(account__email_address="bob@example.org").exists()


@pytest.mark.django_db
def test_a_forged_reply_does_not_change_the_organizers_copy(alice, bob, make_account):
    assert put(alice, ALICE_CAL + "meet.ics", invitation()).status_code == 201
    # Bob forges a reply as if he were carol-on-this-server: he is only ever himself.
    forged = invitation().replace(b"mailto:bob@example.org", b"mailto:eve@example.org")
    forged = forged.replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=ACCEPTED")
    assert put(bob, BOB_CAL + "forged.ics", forged.replace(b"UID:meet-1", b"UID:meet-2")).status_code == 201
    mine = CalendarObject.objects.get(account__email_address="alice@example.org", uid="meet-1")
    assert partstats(mine) == {"alice@example.org": "ACCEPTED", "bob@example.org": "NEEDS-ACTION"}


@pytest.mark.django_db
def test_attendees_elsewhere_get_imip_after_the_commit(alice, bob, django_capture_on_commit_callbacks):
    sent = []
    before = itip._sender
    itip.register_sender(lambda mail, sender, rcpt: sent.append((mail, sender, rcpt)))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            assert put(alice, ALICE_CAL + "meet.ics", invitation(carol=True)).status_code == 201
    finally:
        itip.register_sender(before)
    [(mail, sender, rcpt)] = sent
    assert (sender, rcpt) == ("alice@example.org", "carol@elsewhere.example")
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"


INBOX = "/dav/itip/bob%40example.org/inbox/"


@pytest.mark.django_db
def test_the_invitation_is_in_bobs_schedule_inbox_and_only_bob_reads_it(alice, bob):
    r = bob.propfind("/dav/pal/bob%40example.org/", ["A:schedule-inbox-URL"], depth="0")
    assert INBOX.encode() in body(r)
    assert put(alice, ALICE_CAL + "meet.ics", invitation()).status_code == 201
    r = bob.propfind(INBOX, ["D:resourcetype", "D:getetag"])
    assert r.status_code == 207, body(r)
    assert b"schedule-inbox" in body(r)
    [msg] = ScheduleMessage.objects.filter(account__email_address="bob@example.org")
    href = INBOX + msg.name
    assert href in hrefs(r)
    got = bob.request("GET", href)
    assert got.status_code == 200 and b"METHOD:REQUEST" in got.content
    # Alice cannot read bob's inbox, nor anyone write into it.
    assert alice.request("GET", href).status_code in (403, 404)
    assert put(alice, INBOX + "x.ics", invitation()).status_code in (403, 404)
    assert put(bob, INBOX + "x.ics", invitation()).status_code == 403
    assert bob.request("DELETE", href).status_code == 204
    assert not ScheduleMessage.objects.filter(pk=msg.pk).exists()


@pytest.mark.django_db
def test_schedule_tag_survives_a_reply_and_guards_the_organizers_put(alice, bob):
    r = put(alice, ALICE_CAL + "meet.ics", invitation())
    assert r.status_code == 201
    tag = r["Schedule-Tag"]
    assert tag and alice.request("GET", ALICE_CAL + "meet.ics")["Schedule-Tag"] == tag
    href = BOB_CAL + bob_copy().name
    answered = bob.request("GET", href).content.replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=ACCEPTED")
    assert put(bob, href, answered).status_code == 204
    # The REPLY changed alice's copy (new etag) but not its schedule-tag: her client's update
    # conditioned on the tag still goes through; a stale tag is refused.
    got = alice.request("GET", ALICE_CAL + "meet.ics")
    assert got["Schedule-Tag"] == tag and b"PARTSTAT=ACCEPTED" in got.content
    r = put(alice, ALICE_CAL + "meet.ics", invitation(extra="LOCATION:Room 2"), IF_SCHEDULE_TAG_MATCH=tag)
    assert r.status_code == 204, body(r)
    assert r["Schedule-Tag"] != tag
    r = put(alice, ALICE_CAL + "meet.ics", invitation(extra="LOCATION:Room 3"), IF_SCHEDULE_TAG_MATCH=tag)
    assert r.status_code == 412
    # An object without organizer has no schedule-tag.
    plain = invitation(uid="plain").replace(b"ORGANIZER:mailto:alice@example.org\r\n", b"")
    assert "Schedule-Tag" not in put(alice, ALICE_CAL + "plain.ics", plain)
