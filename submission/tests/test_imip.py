"""iMIP through the relay: an invitation to an attendee elsewhere reaches a real SMTP sink as a
text/calendar METHOD=REQUEST part with the .ics attached."""
from __future__ import annotations

import datetime as dt
import email

import pytest

from calendars import services
from submission.models import MtaRoute

from .sinks import sink

INVITE = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:imip-1\r\n"
          "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
          "SUMMARY:Review\r\nORGANIZER:mailto:alice@example.org\r\n"
          "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.net\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.mark.django_db
def test_invitation_to_an_attendee_elsewhere_goes_through_the_relay(make_account, settings,
                                                                   django_capture_on_commit_callbacks):
    settings.SUBMISSION_EHLO_NAME = "mail.example.org"
    alice = make_account("alice")
    calendar = services.default_calendar(alice)
    with sink() as (handler, port):
        MtaRoute.objects.create(name=settings.SUBMISSION_ROUTE, address="127.0.0.1", port=port,
                                start_tls="disable", timeout=dt.timedelta(seconds=5))
        with django_capture_on_commit_callbacks(execute=True):
            services.put_object(calendar, "r.ics", INVITE.encode())
    [got] = handler.received
    assert got.mail_from == "alice@example.org" and got.rcpt_tos == ["carol@example.net"]
    mail = email.message_from_bytes(got.content)
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"
    assert b"UID:imip-1" in part.get_payload(decode=True)
    assert any(p.get_filename() == "invite.ics" for p in mail.walk())
