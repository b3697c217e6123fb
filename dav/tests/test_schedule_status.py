"""RFC 6638 §3.2.9 over CalDAV: after the server schedules an organizer's PUT, the stored copy
carries each attendee's SCHEDULE-STATUS, so the PUT answers without an ETag; an attendee's answer
updates the organizer's copy with a new DTSTAMP and the same SEQUENCE; `x:CalendarScheduling`
`enable` and `maxRecipients` decide whether and to how many the server sends."""
from __future__ import annotations

from datetime import datetime, timezone

import icalendar
import pytest

from calendars import itip
from calendars.models import CalendarObject, CalendarScheduling, ScheduleMessage
from registry import services as registry

from .helpers import body

pytestmark = pytest.mark.django_db

ALICE_CAL = "/dav/cal/alice%40example.org/default/"
BOB_CAL = "/dav/cal/bob%40example.org/default/"
CAROL = "carol@elsewhere.example"
GHOST = "ghost@example.org"  # a domain of this server, nobody's address


def invitation(uid="meet-1", attendees=("bob@example.org",), extra="", sequence=3) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20260101T000000Z", "DTSTART:20270105T100000Z", "DTEND:20270105T110000Z",
             "SUMMARY:Planning", f"SEQUENCE:{sequence}", "ORGANIZER;CN=Alice:mailto:alice@example.org",
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org"]
    lines += [f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}" for a in attendees]
    lines += [line for line in extra.splitlines() if line] + ["END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def put(dav, path, data, **headers):
    return dav.put(path, data, content_type="text/calendar; charset=utf-8", **headers)


def scheduling(**values):
    registry.update(CalendarScheduling._declaration, None, values, "test")


def schedule_statuses(data) -> dict[str, str | None]:
    cal = icalendar.Calendar.from_ical(data)
    out = {}
    for comp in itip.components(cal):
        props = comp.get("ATTENDEE")
        for prop in props if isinstance(props, list) else [props]:
            out[itip.address(prop)] = prop.params.get("SCHEDULE-STATUS")
    return out


def vevent(data):
    return itip.components(icalendar.Calendar.from_ical(data))[0]


@pytest.fixture
def relay():
    """A registered iMIP sender that records instead of sending."""
    sent, before = [], itip._sender
    itip.register_sender(lambda mail, sender, rcpt: sent.append(rcpt))
    yield sent
    itip.register_sender(before)


def test_the_organizers_copy_records_how_each_invitation_went_and_the_put_has_no_etag(
        alice, bob, relay, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = put(alice, ALICE_CAL + "meet.ics", invitation(attendees=("bob@example.org", CAROL, GHOST)))
    assert r.status_code == 201, body(r)
    # RFC 4791 §5.3.4 / RFC 6638 §3.2.9: the stored object is not the one sent, so no ETag.
    assert "ETag" not in r and r["Schedule-Tag"]
    got = alice.request("GET", ALICE_CAL + "meet.ics")
    assert got.status_code == 200
    assert schedule_statuses(got.content) == {
        "alice@example.org": None,   # the organizer sends nothing to herself
        "bob@example.org": "1.2",    # delivered to his calendar here
        CAROL: "1.1",                # handed to the relay (iMIP)
        GHOST: "3.7",                # this server's domain, nobody's address: not sent at all
    }
    assert got["Schedule-Tag"] == r["Schedule-Tag"]
    assert relay == [CAROL]
    assert CalendarObject.objects.filter(account__email_address="bob@example.org", uid="meet-1").exists()
    # Bob's copy and the message in his inbox carry none of it (SCHEDULE-STATUS is never sent on).
    bobs = CalendarObject.objects.get(account__email_address="bob@example.org", uid="meet-1")
    assert "SCHEDULE-STATUS" not in bobs.data
    assert "SCHEDULE-STATUS" not in ScheduleMessage.objects.get(account=bobs.account).data
    # The client stores back what it fetched: nothing to change, so the answer has its ETag.
    again = put(alice, ALICE_CAL + "meet.ics", got.content, IF_MATCH=got["ETag"])
    assert again.status_code == 204 and again["ETag"] == got["ETag"]


def test_a_client_cannot_write_a_schedule_status_of_its_own(alice, bob):
    forged = invitation(extra="LOCATION:Room 1").replace(
        b"RSVP=TRUE:mailto:bob@example.org", b"RSVP=TRUE;SCHEDULE-STATUS=2.0:mailto:bob@example.org")
    r = put(alice, ALICE_CAL + "meet.ics", forged)
    assert r.status_code == 201 and "ETag" not in r
    got = alice.request("GET", ALICE_CAL + "meet.ics")
    assert schedule_statuses(got.content)["bob@example.org"] == "1.2"


def test_without_a_relay_an_attendee_elsewhere_is_5_3(alice):
    before = itip._sender
    itip.register_sender(None)
    try:
        assert put(alice, ALICE_CAL + "meet.ics", invitation(attendees=(CAROL,))).status_code == 201
    finally:
        itip.register_sender(before)
    got = alice.request("GET", ALICE_CAL + "meet.ics")
    assert schedule_statuses(got.content)[CAROL] == "5.3"


def test_a_put_that_schedules_nothing_keeps_its_etag(alice):
    r = put(alice, ALICE_CAL + "solo.ics", invitation(uid="solo", attendees=()))
    assert r.status_code == 201 and r["ETag"]
    got = alice.request("GET", ALICE_CAL + "solo.ics")
    assert got["ETag"] == r["ETag"] and b"SCHEDULE-STATUS" not in got.content


def test_an_answer_bumps_the_organizers_dtstamp_not_its_sequence(alice, bob):
    assert put(alice, ALICE_CAL + "meet.ics", invitation()).status_code == 201
    organizer_before = alice.request("GET", ALICE_CAL + "meet.ics")
    copy = CalendarObject.objects.get(account__email_address="bob@example.org", uid="meet-1")
    href = BOB_CAL + copy.name
    got = bob.request("GET", href)
    started = datetime.now(timezone.utc).replace(microsecond=0)
    r = put(bob, href, got.content.replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=ACCEPTED"), IF_MATCH=got["ETag"])
    assert r.status_code == 204, body(r)
    # Bob's copy records how his REPLY went, on ORGANIZER: changed by the server, so no ETag.
    assert "ETag" not in r
    assert vevent(bob.request("GET", href).content)["ORGANIZER"].params["SCHEDULE-STATUS"] == "1.2"
    after = alice.request("GET", ALICE_CAL + "meet.ics")
    comp = vevent(after.content)
    assert itip.attendees(icalendar.Calendar.from_ical(after.content))["bob@example.org"] == "ACCEPTED"
    # RFC 5545 §3.8.7.2: DTSTAMP says when the store last revised it; RFC 5546: a reply never
    # moves the SEQUENCE; RFC 6638 §3.2.10: nor the organizer's Schedule-Tag.
    assert comp["DTSTAMP"].dt >= started
    assert int(comp["SEQUENCE"]) == 3
    assert after["Schedule-Tag"] == organizer_before["Schedule-Tag"]
    assert after["ETag"] != organizer_before["ETag"]


def test_max_recipients_refuses_the_whole_change(alice, bob):
    scheduling(max_recipients=2)
    r = put(alice, ALICE_CAL + "meet.ics", invitation(attendees=("bob@example.org", CAROL, "dan@elsewhere.example")))
    assert r.status_code == 403, body(r)
    assert b"max-attendees-per-instance" in body(r) and b"urn:ietf:params:xml:ns:caldav" in body(r)
    # Nothing written, nothing sent.
    assert not CalendarObject.objects.exists() and not ScheduleMessage.objects.exists()
    r = put(alice, ALICE_CAL + "meet.ics", invitation(attendees=("bob@example.org", CAROL)))
    assert r.status_code == 201, body(r)
    # An update adding a third recipient is refused too; the stored copy stays as it was.
    stored = CalendarObject.objects.get(account__email_address="alice@example.org").data
    r = put(alice, ALICE_CAL + "meet.ics", invitation(attendees=("bob@example.org", CAROL, "dan@elsewhere.example")))
    assert r.status_code == 403
    assert CalendarObject.objects.get(account__email_address="alice@example.org").data == stored
    # A delete still cancels everyone invited.
    scheduling(max_recipients=1)
    assert alice.request("DELETE", ALICE_CAL + "meet.ics").status_code == 204
    assert "STATUS:CANCELLED" in CalendarObject.objects.get(account__email_address="bob@example.org").data


def test_scheduling_off_sends_nothing_and_stores_what_was_sent(alice, bob):
    scheduling(enable=False)
    r = put(alice, ALICE_CAL + "meet.ics", invitation(attendees=("bob@example.org", CAROL)))
    assert r.status_code == 201 and r["ETag"]
    got = alice.request("GET", ALICE_CAL + "meet.ics")
    assert got["ETag"] == r["ETag"] and b"SCHEDULE-STATUS" not in got.content
    assert not CalendarObject.objects.filter(account__email_address="bob@example.org").exists()
    assert not ScheduleMessage.objects.exists()
    assert alice.request("DELETE", ALICE_CAL + "meet.ics").status_code == 204
    assert not ScheduleMessage.objects.exists()


def test_the_settings_are_the_references_fields(jmap):
    [got] = jmap.ok("x:CalendarScheduling/get", {"ids": ["singleton"]})["list"]
    assert (got["enable"], got["autoAddInvitations"], got["itipMaxSize"], got["maxRecipients"]) == \
        (True, False, 524_288, 100)
    for bad in ({"itipMaxSize": 99}, {"maxRecipients": 0}, {"enable": "yes"}):
        res = jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": bad}})
        # A wrong type is invalidPatch, a value below the bound the reference's validationFailed.
        assert res["notUpdated"]["singleton"]["type"] in ("invalidPatch", "validationFailed"), (bad, res)
    stored = CalendarScheduling.load()
    assert (stored.itip_max_size, stored.max_recipients, stored.enable) == (524_288, 100, True)
    res = jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"maxRecipients": 5, "enable": False}}})
    assert "singleton" in res["updated"], res
    assert str(CalendarScheduling.load()) == "Calendar scheduling settings"


def test_the_admin_page_names_the_object_and_shows_the_fields(admin_client):
    CalendarScheduling.load()
    page = admin_client.get("/admin/calendars/calendarscheduling/1/change/", follow=True)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Calendar scheduling settings" in text and "object (1)" not in text
    for name in ("enable", "auto_add_invitations", "itip_max_size", "max_recipients", "http_rsvp_enable"):
        assert f'name="{name}"' in text, name
