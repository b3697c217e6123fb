"""An organizer on this server (alice) and an invitation to two attendees elsewhere, mailed
through a real SMTP sink (aiosmtpd) by the calendar store's scheduling."""
from __future__ import annotations

import datetime as dt
import email
from email import policy
import re
from html import unescape

import pytest
from django.test import Client

from calendars import services
from calendars.models import CalendarObject
from submission.models import MtaRoute
from submission.tests.sinks import sink

UID = "rsvp-event-1@example.org"
CAROL, DAN = "carol@example.net", "dan@example.net"
INVITE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSEQUENCE:2\r\n"
    "DTSTART;TZID=Europe/Berlin:20270105T100000\r\nDTEND;TZID=Europe/Berlin:20270105T110000\r\n"
    "SUMMARY:Quarterly review\r\nLOCATION:Room 4\r\nDESCRIPTION:Bring the figures.\r\n"
    "ORGANIZER;CN=Alice Organizer:mailto:alice@example.org\r\n"
    "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.net\r\n"
    "{more}END:VEVENT\r\nEND:VCALENDAR\r\n")
DAN_LINE = "ATTENDEE;CN=Dan;PARTSTAT=ACCEPTED:mailto:dan@example.net\r\n"


def invite(uid: str = UID, *, dan: bool = True) -> bytes:
    return INVITE.format(uid=uid, more=DAN_LINE if dan else "").encode()


def links_of(mail: email.message.Message) -> dict[str, str]:
    """{PARTSTAT: link} from the mail's HTML part (as a mail client shows the buttons)."""
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_content()
    found = {}
    for href in re.findall(r'href="([^"]+)"', html):
        href = unescape(href)
        found[re.search(r"[?&]m=([A-Z-]+)", href).group(1)] = href
    return found


@pytest.fixture
def alice(make_account):
    return make_account("alice")


@pytest.fixture
def relay(settings, db):
    settings.SUBMISSION_EHLO_NAME = "mail.example.org"
    with sink() as (handler, port):
        MtaRoute.objects.create(name=settings.SUBMISSION_ROUTE, address="127.0.0.1", port=port,
                                start_tls="disable", timeout=dt.timedelta(seconds=5))
        yield handler


@pytest.fixture
def invited(alice, relay, django_capture_on_commit_callbacks):
    """alice's event, stored; returns (the stored object, {recipient: mail})."""
    calendar = services.default_calendar(alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.put_object(calendar, "review.ics", invite())
    mails = {r.rcpt_tos[0]: email.message_from_bytes(r.content, policy=policy.default)
             for r in relay.received}
    return CalendarObject.objects.get(account=alice, uid=UID), mails


@pytest.fixture
def browser():
    """A client that enforces CSRF as a browser's request would meet it."""
    return Client(enforce_csrf_checks=True)
