"""iMIP in: invitations, replies and cancellations arriving by mail (delivery.services.deliver,
the function LMTP and `manage.py deliver` run), applied to the recipient's calendars under the
trust rules, with the mail always kept. Mails are shaped as Google and Outlook send them (RFC
6047 §4 examples written out by hand) and as our own `itip.imip` writes them."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import icalendar
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calendars import itip
from calendars import services as calendars
from calendars.models import CalendarObject, CalendarScheduling, ScheduleMessage
from contacts import services as contacts
from delivery import services
from registry import services as registry

from .conftest import Who

pytestmark = pytest.mark.django_db

MTA = "mx.example.org"
AUTH_OK = f"Authentication-Results: {MTA}; spf=pass smtp.mailfrom=remote.example; dkim=pass header.d=remote.example; " \
          "dmarc=pass (p=reject) header.from=remote.example\r\n"


@pytest.fixture(autouse=True)
def trusted_mta(settings):
    settings.CALENDAR_IMIP_AUTHSERV_ID = MTA
    settings.CALENDAR_IMIP_REQUIRE_DMARC = True
    settings.CALENDAR_IMIP_INBOUND = True


def scheduling(**values):
    """Set x:CalendarScheduling fields as an administrator would (its state moves, so the
    cached settings are read again)."""
    registry.update(CalendarScheduling._declaration, None, values, "test")


def event(uid="meet-1", organizer="alice@example.org", sequence=0, summary="Planning", carol="NEEDS-ACTION",
          bob="NEEDS-ACTION", method=None, attendees=None, extra="", dtstamp="20260101T000000Z") -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    if method:
        lines.append(f"METHOD:{method}")
    lines += ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{dtstamp}", "DTSTART:20260105T100000Z",
              "DTEND:20260105T110000Z", f"SUMMARY:{summary}", f"SEQUENCE:{sequence}"]
    if organizer:
        lines.append(f"ORGANIZER;CN=Org:mailto:{organizer}")
    if attendees is None:
        attendees = [f"ATTENDEE;CN=Carol;PARTSTAT={carol};RSVP=TRUE:mailto:carol@remote.example",
                     f"ATTENDEE;CN=Bob;PARTSTAT={bob};RSVP=TRUE:mailto:bob@remote.example"]
    lines += attendees + [x for x in extra.splitlines() if x] + ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


def google_reply(ics: str, sender="carol@remote.example", to="alice@example.org", auth=AUTH_OK) -> bytes:
    """Google Calendar's shape: multipart/mixed > multipart/alternative (text, html,
    text/calendar; method=REPLY in base64) and invite.ics in base64."""
    data = base64.encodebytes(ics.encode()).decode().replace("\n", "\r\n")
    return (f"{auth}From: Carol <{sender}>\r\nTo: {to}\r\nSubject: Accepted: Planning\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
            "--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
            "--alt\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\nCarol has accepted.\r\n"
            "--alt\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n<p>Carol has accepted.</p>\r\n"
            "--alt\r\nContent-Type: text/calendar; charset=\"UTF-8\"; method=REPLY\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{data}--alt--\r\n"
            "--outer\r\nContent-Type: application/ics; name=\"invite.ics\"\r\n"
            "Content-Disposition: attachment; filename=\"invite.ics\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{data}--outer--\r\n").encode()


def outlook_request(ics: str, sender="dave@remote.example", to="alice@example.org", auth=AUTH_OK) -> bytes:
    """Outlook's shape: multipart/alternative with text/calendar; method=REQUEST, quoted-printable
    off (8bit), no attachment."""
    return (f"{auth}From: Dave <{sender}>\r\nTo: {to}\r\nSubject: Review\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
            "--b1\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\nWhen: Monday\r\n"
            "--b1\r\nContent-Type: text/calendar; charset=\"utf-8\"; method=REQUEST\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n{ics}\r\n--b1--\r\n").encode()


def store(account, ics: str, name="meet.ics"):
    calendar = calendars.default_calendar(account)
    calendars.put_object(calendar, name, ics.encode(), schedule=False)


def copy_of(account, uid="meet-1"):
    obj = CalendarObject.objects.filter(account=account, uid=uid).first()
    return None if obj is None else icalendar.Calendar.from_ical(obj.data)


def partstats(account, uid="meet-1"):
    return itip.attendees(copy_of(account, uid), server_only=False)


def delivered(raw, rcpt="alice@example.org", envelope="carol@remote.example"):
    (outcome,) = services.deliver(raw, envelope, [rcpt])
    assert outcome.reply() == "250 2.0.0 Delivered"


# --- REPLY ------------------------------------------------------------------------------------
def test_google_reply_sets_the_senders_partstat_and_nothing_else(alice):
    store(alice.account, event())
    # The reply also claims bob's answer and a new summary: only carol's own PARTSTAT counts.
    reply = event(method="REPLY", summary="Hijacked", attendees=[
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"])
    delivered(google_reply(reply))
    assert partstats(alice.account) == {"carol@remote.example": "ACCEPTED", "bob@remote.example": "NEEDS-ACTION"}
    assert str(copy_of(alice.account).walk("VEVENT")[0]["SUMMARY"]) == "Planning"
    assert ScheduleMessage.objects.filter(account=alice.account, method="REPLY").count() == 1  # not twice
    assert len(alice.emails("inbox")) == 1


def test_a_reply_revises_the_organizers_dtstamp_never_its_sequence(alice):
    store(alice.account, event(sequence=4, extra="LAST-MODIFIED:20260101T000000Z"))
    before = CalendarObject.objects.get(account=alice.account)
    delivered(google_reply(event(method="REPLY", sequence=4, dtstamp="20260102T000000Z", attendees=[
        "ATTENDEE;PARTSTAT=TENTATIVE:mailto:carol@remote.example"])))
    comp = copy_of(alice.account).walk("VEVENT")[0]
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    # The store's time of the revision (RFC 5545 §3.8.7.2, §3.8.7.3), not the reply's DTSTAMP.
    assert comp["DTSTAMP"].dt > start and comp["LAST-MODIFIED"].dt > start
    assert int(comp["SEQUENCE"]) == 4
    after = CalendarObject.objects.get(account=alice.account)
    assert after.schedule_tag == before.schedule_tag and after.etag != before.etag
    # The same answer again revises nothing.
    delivered(google_reply(event(method="REPLY", sequence=4, dtstamp="20260103T000000Z", attendees=[
        "ATTENDEE;PARTSTAT=TENTATIVE:mailto:carol@remote.example"])))
    assert CalendarObject.objects.get(account=alice.account).etag == after.etag


def test_a_reply_naming_another_attendee_too_is_ignored(alice):
    store(alice.account, event())
    reply = event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example",
                                             "ATTENDEE;PARTSTAT=DECLINED:mailto:bob@remote.example"])
    delivered(google_reply(reply))
    assert set(partstats(alice.account).values()) == {"NEEDS-ACTION"}
    assert not ScheduleMessage.objects.exists()


def test_a_forged_reply_from_another_address_changes_nothing(alice):
    store(alice.account, event())
    reply = event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=DECLINED:mailto:carol@remote.example"])
    # mallory's own (authenticated) domain, replying in carol's name.
    auth = f"Authentication-Results: {MTA}; dmarc=pass header.from=evil.example\r\n"
    delivered(google_reply(reply, sender="mallory@evil.example", auth=auth), envelope="mallory@evil.example")
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"
    assert not ScheduleMessage.objects.exists()
    assert len(alice.emails("inbox")) == 1  # the mail itself is delivered


@pytest.mark.parametrize("auth", [
    "",                                                                              # no verdict at all
    "Authentication-Results: other.example; dmarc=pass header.from=remote.example\r\n",  # not our MTA
    f"Authentication-Results: {MTA}; dmarc=fail header.from=remote.example\r\n",
    f"Authentication-Results: {MTA}; dmarc=pass header.from=elsewhere.example\r\n",   # another domain
    # The sender's own header below ours: only the topmost of our MTA counts.
    f"Authentication-Results: {MTA}; dmarc=fail header.from=remote.example\r\n" + AUTH_OK,
    f"Authentication-Results: {MTA}; garbage;;; ==\r\n",
])
def test_a_reply_without_our_mtas_dmarc_pass_changes_nothing(alice, auth):
    store(alice.account, event())
    delivered(google_reply(event(method="REPLY", attendees=[
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"]), auth=auth))
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"
    assert len(alice.emails("inbox")) == 1


def test_dmarc_can_be_waived_but_the_envelope_must_still_match(alice, settings):
    settings.CALENDAR_IMIP_REQUIRE_DMARC = False
    store(alice.account, event())
    reply = google_reply(event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=TENTATIVE:mailto:carol@remote.example"]),
                         auth="")
    delivered(reply, envelope="bounce@attacker.example")
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"
    delivered(reply, envelope="bounces+srs@mail.remote.example")  # a subdomain is aligned
    assert partstats(alice.account)["carol@remote.example"] == "TENTATIVE"


def test_our_own_imip_reply_is_understood(alice):
    """A REPLY as this server's itip/imip write it, from a copy of the invitation elsewhere."""
    store(alice.account, event())
    invited = icalendar.Calendar.from_ical(event())
    answered = icalendar.Calendar.from_ical(event(carol="DECLINED"))
    reply = itip.attendee_reply(invited, answered, own={"carol@remote.example"})
    mail = itip.imip(reply, "alice@example.org")
    delivered(AUTH_OK.encode() + mail.as_bytes())
    assert partstats(alice.account)["carol@remote.example"] == "DECLINED"


def test_a_reply_for_one_instance_changes_that_instance(alice):
    series = event(extra="RRULE:FREQ=WEEKLY;COUNT=4").replace("END:VCALENDAR\r\n", "") + "\r\n".join([
        "BEGIN:VEVENT", "UID:meet-1", "DTSTAMP:20260101T000000Z", "RECURRENCE-ID:20260112T100000Z",
        "DTSTART:20260112T120000Z", "DTEND:20260112T130000Z", "SUMMARY:Planning (moved)", "SEQUENCE:0",
        "ORGANIZER;CN=Org:mailto:alice@example.org",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@remote.example",
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@remote.example", "END:VEVENT", "END:VCALENDAR", ""])
    store(alice.account, series)
    reply = event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=DECLINED:mailto:carol@remote.example"],
                  extra="RECURRENCE-ID:20260112T100000Z")
    delivered(google_reply(reply))
    master, moved = copy_of(alice.account).walk("VEVENT")
    carol = lambda comp: next(str(a.params["PARTSTAT"]) for a in comp["ATTENDEE"] if "carol" in str(a))  # noqa: E731
    assert (carol(master), carol(moved)) == ("NEEDS-ACTION", "DECLINED")


def test_a_reply_for_an_event_the_recipient_does_not_organize_is_ignored(alice):
    store(alice.account, event(organizer="dave@remote.example"))
    delivered(google_reply(event(method="REPLY", organizer="dave@remote.example",
                                 attendees=["ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"])))
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"
    assert not ScheduleMessage.objects.exists()


# --- REQUEST and CANCEL -----------------------------------------------------------------------
def invitation(**kw):
    kw.setdefault("organizer", "dave@remote.example")
    kw.setdefault("attendees", ["ATTENDEE;PARTSTAT=ACCEPTED:mailto:dave@remote.example",
                                "ATTENDEE;RSVP=TRUE:mailto:alice@example.org"])
    return event(method="REQUEST", **kw)


def test_an_invitation_from_a_stranger_is_not_added_unless_configured(alice, settings):
    delivered(outlook_request(invitation()), envelope="dave@remote.example")
    # autoAddInvitations off: the mail, and the invitation in the scheduling inbox, not the calendar.
    assert copy_of(alice.account) is None and len(alice.emails("inbox")) == 1
    (filed,) = ScheduleMessage.objects.filter(account=alice.account)
    assert (filed.method, filed.uid, filed.sender) == ("REQUEST", "meet-1", "dave@remote.example")
    assert "METHOD:REQUEST" in filed.data
    scheduling(auto_add_invitations=True)
    delivered(outlook_request(invitation()), envelope="dave@remote.example")
    assert partstats(alice.account)["alice@example.org"] == "NEEDS-ACTION"
    assert "METHOD" not in CalendarObject.objects.get(uid="meet-1").data
    assert ScheduleMessage.objects.filter(account=alice.account, method="REQUEST").count() == 2


def test_the_scheduling_inbox_lists_a_strangers_invitation_over_caldav(alice):
    delivered(outlook_request(invitation()), envelope="dave@remote.example")
    (filed,) = ScheduleMessage.objects.filter(account=alice.account)
    got = alice.jmap.client.generic("GET", f"/dav/itip/alice%40example.org/inbox/{filed.name}",
                                    HTTP_AUTHORIZATION=alice.jmap.auth)
    assert got.status_code == 200 and b"METHOD:REQUEST" in got.content and b"UID:meet-1" in got.content
    assert copy_of(alice.account) is None


def test_itip_max_size_is_the_objects(alice):
    scheduling(auto_add_invitations=True, itip_max_size=400)
    big = invitation(extra="DESCRIPTION:" + "x" * 500)
    delivered(outlook_request(big), envelope="dave@remote.example")
    assert copy_of(alice.account) is None and not ScheduleMessage.objects.exists()
    assert len(alice.emails("inbox")) == 1
    scheduling(itip_max_size=524_288)
    delivered(outlook_request(big), envelope="dave@remote.example")
    assert copy_of(alice.account) is not None


def test_scheduling_off_applies_nothing_by_mail(alice):
    store(alice.account, event())
    scheduling(enable=False, auto_add_invitations=True)
    delivered(google_reply(event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"])))
    delivered(outlook_request(invitation(uid="meet-2")), envelope="dave@remote.example")
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"
    assert not CalendarObject.objects.filter(uid="meet-2").exists() and not ScheduleMessage.objects.exists()
    assert len(alice.emails("inbox")) == 2


def test_an_invitation_from_a_contact_is_added(alice):
    book = contacts.default_book(alice.pk)
    contacts.put_card(book, "dave.vcf", b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:dave\r\nFN:Dave\r\n"
                                        b"EMAIL:Dave@Remote.example\r\nEND:VCARD\r\n")
    delivered(outlook_request(invitation()), envelope="dave@remote.example")
    assert partstats(alice.account)["alice@example.org"] == "NEEDS-ACTION"


def test_updates_follow_sequence_and_keep_the_answer_then_cancel(alice, settings):
    scheduling(auto_add_invitations=True)
    delivered(outlook_request(invitation(sequence=1)), envelope="dave@remote.example")
    # Once the invitation is in the calendar, its updates need no auto-add.
    scheduling(auto_add_invitations=False)
    # Alice accepts in her client.
    obj = CalendarObject.objects.get(account=alice.account, uid="meet-1")
    calendars.put_object(obj.calendar, obj.name, obj.data.replace("RSVP=TRUE", "PARTSTAT=ACCEPTED;RSVP=TRUE"),
                         schedule=False)
    # An older version arriving late changes nothing; nor an older DTSTAMP at the same SEQUENCE.
    delivered(outlook_request(invitation(sequence=0, summary="Old")), envelope="dave@remote.example")
    delivered(outlook_request(invitation(sequence=1, summary="Older", dtstamp="20251201T000000Z")),
              envelope="dave@remote.example")
    assert str(copy_of(alice.account).walk("VEVENT")[0]["SUMMARY"]) == "Planning"
    # The same SEQUENCE, newer: taken, alice's answer kept.
    delivered(outlook_request(invitation(sequence=1, summary="Room 2", dtstamp="20260102T000000Z")),
              envelope="dave@remote.example")
    assert str(copy_of(alice.account).walk("VEVENT")[0]["SUMMARY"]) == "Room 2"
    assert partstats(alice.account)["alice@example.org"] == "ACCEPTED"
    cancel = event(method="CANCEL", organizer="dave@remote.example", sequence=2,
                   attendees=["ATTENDEE:mailto:alice@example.org"], extra="STATUS:CANCELLED")
    delivered(outlook_request(cancel).replace(b"method=REQUEST", b"method=CANCEL"), envelope="dave@remote.example")
    assert str(copy_of(alice.account).walk("VEVENT")[0]["STATUS"]) == "CANCELLED"


def test_a_request_cannot_take_over_a_copy_someone_else_organizes(alice, settings):
    scheduling(auto_add_invitations=True)
    store(alice.account, event(organizer="dave@remote.example", attendees=["ATTENDEE:mailto:alice@example.org"]))
    auth = f"Authentication-Results: {MTA}; dmarc=pass header.from=evil.example\r\n"
    hijack = invitation(organizer="eve@evil.example", summary="Hijacked", sequence=9,
                        attendees=["ATTENDEE:mailto:alice@example.org"])
    delivered(outlook_request(hijack, sender="eve@evil.example", auth=auth), envelope="eve@evil.example")
    assert str(copy_of(alice.account).walk("VEVENT")[0]["SUMMARY"]) == "Planning"
    assert itip.organizer(copy_of(alice.account)) == "dave@remote.example"


def test_a_request_naming_a_local_user_as_organizer_does_not_overwrite_her_event(alice, settings):
    scheduling(auto_add_invitations=True)
    store(alice.account, event())  # alice organizes meet-1
    auth = f"Authentication-Results: {MTA}; dmarc=pass header.from=evil.example\r\n"
    forged = invitation(organizer="alice@example.org", summary="Hijacked", sequence=5,
                        attendees=["ATTENDEE:mailto:alice@example.org"])
    delivered(outlook_request(forged, sender="mallory@evil.example", auth=auth), envelope="mallory@evil.example")
    # Even with From forged as alice and DMARC not required: a local sender never schedules by mail.
    settings.CALENDAR_IMIP_REQUIRE_DMARC = False
    delivered(outlook_request(forged, sender="alice@example.org", auth=""), envelope="")
    assert str(copy_of(alice.account).walk("VEVENT")[0]["SUMMARY"]) == "Planning"
    assert not ScheduleMessage.objects.exists()


def test_a_request_that_does_not_invite_the_recipient_is_ignored(alice, settings):
    scheduling(auto_add_invitations=True)
    delivered(outlook_request(invitation(attendees=["ATTENDEE:mailto:someone@remote.example"])),
              envelope="dave@remote.example")
    assert copy_of(alice.account) is None


# --- hostile or broken parts, switches --------------------------------------------------------
@pytest.mark.parametrize("ics", [
    "not a calendar at all",
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n" + "BEGIN:VEVENT\r\n" * 50 + "END:VEVENT\r\n" * 50 + "END:VCALENDAR\r\n",
    invitation(extra="RRULE:FREQ=SECONDLY"),                               # endless, every second
    invitation(extra="RRULE:FREQ=DAILY;COUNT=1000000"),                    # a million instances
    invitation(extra="DESCRIPTION:" + "x" * 600_000),                      # past itipMaxSize
    invitation(extra="DTSTART:not-a-date"),
    invitation().replace("UID:meet-1", "UID:" + "u" * 300),                # UID too long for the store
])
def test_a_hostile_calendar_part_is_ignored_and_the_mail_kept(alice, settings, ics):
    scheduling(auto_add_invitations=True)
    delivered(outlook_request(ics), envelope="dave@remote.example")
    assert not CalendarObject.objects.filter(account=alice.account).exists()
    assert not ScheduleMessage.objects.exists()
    assert len(alice.emails("inbox")) == 1


def test_a_part_in_an_unknown_charset_is_ignored(alice, settings):
    scheduling(auto_add_invitations=True)
    raw = outlook_request(invitation()).replace(b'charset="utf-8"; method', b'charset="x-no-such"; method')
    delivered(raw, envelope="dave@remote.example")
    assert copy_of(alice.account) is None and len(alice.emails("inbox")) == 1


def test_ingestion_can_be_turned_off(alice, settings):
    settings.CALENDAR_IMIP_INBOUND = False
    store(alice.account, event())
    delivered(google_reply(event(method="REPLY", attendees=["ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"])))
    assert partstats(alice.account)["carol@remote.example"] == "NEEDS-ACTION"


def test_an_account_without_the_receive_permission_gets_only_the_mail(client, make_account, settings):
    zoe = Who(client, make_account("zoe", permissions_mode="merge", disabled_permissions=["calendarSchedulingReceive"]))
    store(zoe.account, event(organizer="zoe@example.org"))
    delivered(google_reply(event(method="REPLY", organizer="zoe@example.org", attendees=[
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@remote.example"]), to="zoe@example.org"), rcpt="zoe@example.org")
    assert partstats(zoe.account)["carol@remote.example"] == "NEEDS-ACTION"
    assert len(zoe.emails("inbox")) == 1


def test_mail_without_a_calendar_costs_no_calendar_query(alice):
    with CaptureQueriesContext(connection) as queries:
        delivered(b"From: carol@remote.example\r\nTo: alice@example.org\r\nSubject: Hi\r\n\r\nHello\r\n")
    assert not [q for q in queries.captured_queries if "calendars_" in q["sql"] or "contacts_" in q["sql"]]


def test_no_address_of_a_domain_hosted_here_schedules_by_mail(alice, settings):
    scheduling(auto_add_invitations=True)
    auth = f"Authentication-Results: {MTA}; dmarc=pass header.from=example.org\r\n"
    forged = invitation(organizer="nobody@example.org", attendees=["ATTENDEE:mailto:alice@example.org"])
    delivered(outlook_request(forged, sender="nobody@example.org", auth=auth), envelope="nobody@example.org")
    assert copy_of(alice.account) is None and len(alice.emails("inbox")) == 1


def test_one_changed_or_cancelled_instance_is_merged_into_the_series(alice):
    series = event(organizer="dave@remote.example", extra="RRULE:FREQ=WEEKLY;COUNT=4",
                   attendees=["ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org"])
    store(alice.account, series)
    moved = invitation(sequence=1, summary="Planning (moved)", attendees=["ATTENDEE;RSVP=TRUE:mailto:alice@example.org"],
                       extra="RECURRENCE-ID:20260112T100000Z").replace("DTSTART:20260105T100000Z",
                                                                       "DTSTART:20260112T150000Z")
    moved = moved.replace("DTEND:20260105T110000Z", "DTEND:20260112T160000Z")
    delivered(outlook_request(moved), envelope="dave@remote.example")
    master, override = copy_of(alice.account).walk("VEVENT")
    assert "RRULE" in master and str(override["SUMMARY"]) == "Planning (moved)"
    # Another instance at a lower SEQUENCE than that override is still news for its own instance.
    later = moved.replace("SEQUENCE:1", "SEQUENCE:0").replace("20260112", "20260126")
    delivered(outlook_request(later), envelope="dave@remote.example")
    assert len(copy_of(alice.account).walk("VEVENT")) == 3
    assert [str(a.params["PARTSTAT"]) for a in (master["ATTENDEE"], override["ATTENDEE"])] == \
        ["ACCEPTED", "NEEDS-ACTION"]
    # The third occurrence is cancelled: an EXDATE of the series, which lives on.
    cancel = event(method="CANCEL", organizer="dave@remote.example", sequence=1,
                   attendees=["ATTENDEE:mailto:alice@example.org"], extra="RECURRENCE-ID:20260119T100000Z")
    delivered(outlook_request(cancel).replace(b"method=REQUEST", b"method=CANCEL"), envelope="dave@remote.example")
    master, override, _ = copy_of(alice.account).walk("VEVENT")
    assert "STATUS" not in master and master["EXDATE"].dts[0].dt.isoformat() == "2026-01-19T10:00:00+00:00"
    # And a late copy of the first change (older SEQUENCE) changes nothing.
    delivered(outlook_request(moved.replace("SEQUENCE:1", "SEQUENCE:0").replace("(moved)", "(old)")),
              envelope="dave@remote.example")
    assert str(copy_of(alice.account).walk("VEVENT")[1]["SUMMARY"]) == "Planning (moved)"
    assert ScheduleMessage.objects.filter(account=alice.account).count() == 3
