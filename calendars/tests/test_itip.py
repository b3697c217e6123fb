"""iTIP (RFC 5546) from one stored version to the next, on invitations shaped as Google, Outlook
and Apple write them; and their iMIP form (RFC 6047)."""
from __future__ import annotations

import email

import icalendar

from calendars import itip

GOOGLE = """BEGIN:VCALENDAR
PRODID:-//Google Inc//Google Calendar 70.9054//EN
VERSION:2.0
CALSCALE:GREGORIAN
BEGIN:VEVENT
DTSTART:20260310T150000Z
DTEND:20260310T160000Z
DTSTAMP:20260301T120000Z
ORGANIZER;CN=Alice:mailto:alice@example.org
UID:7kq0b3c0pf0m1@google.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=TRUE;CN=Alice;X-NUM-GUESTS=0:mailto:alice@example.org
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=bob@example.org;X-NUM-GUESTS=0:mailto:bob@example.org
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Carol;X-NUM-GUESTS=0:mailto:Carol@Elsewhere.example
SEQUENCE:0
STATUS:CONFIRMED
SUMMARY:Planning
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-P0DT0H10M0S
END:VALARM
END:VEVENT
END:VCALENDAR
"""

OUTLOOK = """BEGIN:VCALENDAR
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
ATTENDEE;CN=Bob;RSVP=TRUE:mailto:bob@example.org
ATTENDEE;CN=Dave;RSVP=TRUE;SCHEDULE-AGENT=CLIENT:mailto:dave@example.org
CLASS:PUBLIC
CREATED:20260301T100000Z
DTEND;TZID="W. Europe Standard Time":20260312T110000
DTSTAMP:20260301T100000Z
DTSTART;TZID="W. Europe Standard Time":20260312T100000
LAST-MODIFIED:20260301T100000Z
ORGANIZER;CN=Alice:mailto:alice@example.org
PRIORITY:5
SEQUENCE:2
SUMMARY;LANGUAGE=en-us:Weekly sync
TRANSP:OPAQUE
UID:040000008200E00074C5B7101A82E00800000000D0E1
X-MICROSOFT-CDO-BUSYSTATUS:BUSY
END:VEVENT
END:VCALENDAR
"""

APPLE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 14.0//EN
CALSCALE:GREGORIAN
BEGIN:VEVENT
UID:5B0C3D1E-9F62-4A47-8E54-1D2C3B4A5F60
DTSTAMP:20260301T090000Z
DTSTART;TZID=Europe/Paris:20260315T090000
DTEND;TZID=Europe/Paris:20260315T093000
RRULE:FREQ=WEEKLY;COUNT=4
SEQUENCE:0
SUMMARY:Standup
ORGANIZER;CN="Alice";EMAIL="alice@example.org":mailto:alice@example.org
ATTENDEE;CN="Alice";CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:alice@example.org
ATTENDEE;CN="Bob";CUTYPE=INDIVIDUAL;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE;SCHEDULE-STATUS=1.2:mailto:bob@example.org
END:VEVENT
BEGIN:VEVENT
UID:5B0C3D1E-9F62-4A47-8E54-1D2C3B4A5F60
DTSTAMP:20260301T090000Z
RECURRENCE-ID;TZID=Europe/Paris:20260322T090000
DTSTART;TZID=Europe/Paris:20260322T100000
DTEND;TZID=Europe/Paris:20260322T103000
SEQUENCE:1
SUMMARY:Standup (moved)
ORGANIZER;CN="Alice":mailto:alice@example.org
ATTENDEE;CN="Alice";PARTSTAT=ACCEPTED:mailto:alice@example.org
ATTENDEE;CN="Bob";PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.org
END:VEVENT
END:VCALENDAR
"""

ALICE = {"alice@example.org"}
BOB = {"bob@example.org"}


def cal(text: str) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(text.replace("\n", "\r\n"))


def test_google_invitation_is_a_request_to_every_other_attendee_without_alarms():
    [msg] = itip.organizer_messages(None, cal(GOOGLE), own=ALICE)
    assert msg.method == "REQUEST"
    assert msg.sender == "alice@example.org"
    assert msg.recipients == ["bob@example.org", "carol@elsewhere.example"]
    text = msg.to_ical().decode()
    assert "METHOD:REQUEST" in text and "VALARM" not in text
    assert "UID:7kq0b3c0pf0m1@google.com" in text


def test_outlook_schedule_agent_client_is_left_to_the_client_and_never_sent_on():
    [msg] = itip.organizer_messages(None, cal(OUTLOOK), own=ALICE)
    assert msg.recipients == ["bob@example.org"]
    text = msg.to_ical().decode()
    assert "SCHEDULE-AGENT" not in text
    assert "BEGIN:VTIMEZONE" in text and "W. Europe Standard Time" in text


def test_organizer_scheduled_by_the_client_sends_nothing():
    text = GOOGLE.replace("ORGANIZER;CN=Alice:", "ORGANIZER;CN=Alice;SCHEDULE-AGENT=CLIENT:")
    assert itip.organizer_messages(None, cal(text), own=ALICE) == []


def test_apple_recurring_request_carries_the_overrides_and_drops_schedule_status():
    [msg] = itip.organizer_messages(None, cal(APPLE), own=ALICE)
    comps = itip.components(msg.calendar)
    assert len(comps) == 2
    assert "SCHEDULE-STATUS" not in msg.to_ical().decode()


def test_someone_elses_event_sends_nothing_as_organizer():
    assert itip.organizer_messages(None, cal(GOOGLE), own=BOB) == []


def test_removed_attendee_gets_a_cancel_with_a_higher_sequence():
    old = cal(GOOGLE)
    new = cal(GOOGLE.replace(
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Carol;"
        "X-NUM-GUESTS=0:mailto:Carol@Elsewhere.example\n", ""))
    msgs = {m.method: m for m in itip.organizer_messages(old, new, own=ALICE)}
    assert msgs["REQUEST"].recipients == ["bob@example.org"]
    assert msgs["CANCEL"].recipients == ["carol@elsewhere.example"]
    [comp] = itip.components(msgs["CANCEL"].calendar)
    assert int(comp["SEQUENCE"]) == 1 and str(comp["STATUS"]) == "CANCELLED"
    assert itip.address(comp["ATTENDEE"]) == "carol@elsewhere.example"


def test_deleting_is_a_cancel_to_all_attendees():
    [msg] = itip.organizer_messages(cal(GOOGLE), None, own=ALICE)
    assert msg.method == "CANCEL"
    assert msg.recipients == ["bob@example.org", "carol@elsewhere.example"]


def test_attendee_accepting_sends_a_reply_with_only_its_own_attendee():
    old = cal(GOOGLE)
    new = cal(GOOGLE.replace("PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=bob@example.org",
                             "PARTSTAT=ACCEPTED;RSVP=TRUE;CN=bob@example.org"))
    reply = itip.attendee_reply(old, new, own=BOB)
    assert reply.method == "REPLY" and reply.recipients == ["alice@example.org"]
    [comp] = itip.components(reply.calendar)
    assert itip.address(comp["ATTENDEE"]) == "bob@example.org"
    assert comp["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    # The organizer's copy takes the answer; an unchanged PARTSTAT sends nothing.
    organizer_copy = cal(GOOGLE)
    assert itip.apply_reply(organizer_copy, reply) is True
    assert itip.attendees(organizer_copy)["bob@example.org"] == "ACCEPTED"
    assert itip.attendee_reply(new, new, own=BOB) is None


def test_reply_from_a_stranger_changes_nothing():
    stranger = GOOGLE.replace("mailto:bob@example.org", "mailto:eve@example.org").replace(
        "PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=eve", "PARTSTAT=ACCEPTED;RSVP=TRUE;CN=eve")
    reply = itip.attendee_reply(None, cal(stranger), own={"eve@example.org"})
    organizer_copy = cal(GOOGLE)
    assert itip.apply_reply(organizer_copy, reply) is False
    assert "eve@example.org" not in itip.attendees(organizer_copy)


def test_organizer_update_without_new_sequence_keeps_the_attendees_answer():
    answered = cal(GOOGLE.replace("PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=bob@example.org",
                                  "PARTSTAT=DECLINED;RSVP=TRUE;CN=bob@example.org"))
    [msg] = itip.organizer_messages(None, cal(GOOGLE.replace("SUMMARY:Planning", "SUMMARY:Planning!")), own=ALICE)
    copy = itip.attendee_copy(msg)
    itip.keep_partstat(answered, copy, "bob@example.org")
    assert itip.attendees(copy)["bob@example.org"] == "DECLINED"
    assert "METHOD" not in copy


def test_imip_has_the_method_part_and_the_ics_attached():
    [msg] = itip.organizer_messages(None, cal(GOOGLE), own=ALICE)
    mail = email.message_from_bytes(itip.imip(msg, "carol@elsewhere.example").as_bytes())
    assert mail["To"] == "carol@elsewhere.example" and mail["Subject"] == "Invitation: Planning"
    parts = {p.get_content_type(): p for p in mail.walk()}
    assert parts["text/calendar"].get_param("method") == "REQUEST"
    assert b"METHOD:REQUEST" in parts["text/calendar"].get_payload(decode=True)
    assert parts["application/ics"].get_filename() == "invite.ics"


def test_remote_recipients_without_a_sender_are_marked_not_sent():
    [msg] = itip.organizer_messages(None, cal(GOOGLE), own=ALICE)
    itip.register_sender(None)
    assert itip.send_remote(msg, ["carol@elsewhere.example"]) == {"carol@elsewhere.example": "5.3"}
