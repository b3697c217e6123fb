"""iMIP in, end to end: alice invites carol elsewhere over CalDAV (gunicorn), the invitation
leaves through the relay (an aiosmtpd sink), carol's client answers with a REPLY built from it
(our own itip/imip), which arrives through `manage.py lmtp` spoken to by smtplib.LMTP; alice's
event read back over CalDAV shows carol's answer. An Outlook-style invitation for bob arrives
through `manage.py deliver` on standard input, then its cancellation."""
from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import icalendar
import pytest
import requests

from calendars import itip
from submission.tests.sinks import sink
from tests.live import ROOT, free_port, live_server, stop_process, wait_until

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
MTA = "mx.example.org"
AUTH = f"Authentication-Results: {MTA}; dmarc=pass header.from=remote.example\r\n".encode()
ALICE_EVENT = "/dav/cal/alice%40example.org/default/meet.ics"
BOB_CAL = "/dav/cal/bob%40example.org/default/"

SETUP = """
from accounts import services
from accounts.models import Domain, SystemSettings
dom, _ = Domain.objects.get_or_create(name="example.org")
system = SystemSettings.load(); system.default_domain = dom; system.save()
result = {}
for name in ("alice", "bob"):
    result[name] = services.create_account({"name": name, "domain": dom.pk, "roles_mode": "user", "kind": "user"},
                                           "test", password=%r).pk
""" % PASSWORD

INVITE = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:live-meet",
    "DTSTAMP:20260101T000000Z", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z", "SUMMARY:Planning",
    "SEQUENCE:0", "ORGANIZER;CN=Alice:mailto:alice@example.org",
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org",
    "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@remote.example",
    "END:VEVENT", "END:VCALENDAR", ""])


def outlook(method: str, sequence: int, status: str = "") -> bytes:
    ics = "\r\n".join([
        "BEGIN:VCALENDAR", "PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN", "VERSION:2.0",
        f"METHOD:{method}", "BEGIN:VEVENT", "UID:040000008200E00074C5B7101A82E0080000000010",
        "DTSTAMP:20260102T000000Z", "DTSTART:20260110T090000Z", "DTEND:20260110T093000Z", "SUMMARY:Review",
        f"SEQUENCE:{sequence}", "ORGANIZER;CN=Dave:mailto:dave@remote.example",
        "ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:bob@example.org", *([status] if status else []),
        "END:VEVENT", "END:VCALENDAR", ""])
    return AUTH + (f"From: Dave <dave@remote.example>\r\nTo: bob@example.org\r\nSubject: {method} Review\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
                   "--b1\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\nWhen: Saturday\r\n"
                   f"--b1\r\nContent-Type: text/calendar; charset=\"utf-8\"; method={method}\r\n"
                   f"Content-Transfer-Encoding: 8bit\r\n\r\n{ics}\r\n--b1--\r\n").encode()


@pytest.fixture(scope="module")
def relay():
    with sink() as (handler, port):
        yield handler, port


@pytest.fixture(scope="module")
def server(relay):
    with live_server(workers=1, extra_env={"CALENDAR_IMIP_AUTHSERV_ID": MTA}) as server:
        server.shell_json(SETUP)
        server.manage("create", "mtaroute", "--json",
                      f'{{"name": "relay", "address": "127.0.0.1", "port": {relay[1]}, "startTls": "disable"}}')
        yield server


@pytest.fixture(scope="module")
def lmtp_port(server):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "lmtp", "--port", str(port)], cwd=ROOT,
                            env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close(), proc,
                   lambda: proc.stdout.read().decode(), errors=(OSError,), timeout=120)
        yield port
    finally:
        stop_process(proc)


def dav(server, method, path, who="alice", **kw):
    return requests.request(method, server.url + path, auth=(f"{who}@example.org", PASSWORD), timeout=30, **kw)


def test_a_remote_reply_over_lmtp_shows_in_the_organizers_caldav_event(server, relay, lmtp_port):
    handler, _ = relay
    put = dav(server, "PUT", ALICE_EVENT, data=INVITE.encode(), headers={"Content-Type": "text/calendar"})
    assert put.status_code == 201, put.text
    deadline = time.monotonic() + 30
    while not handler.received and time.monotonic() < deadline:
        time.sleep(0.1)
    (sent,) = handler.received
    assert sent.rcpt_tos == ["carol@remote.example"]
    mail = email.message_from_bytes(sent.content, policy=email.policy.default)
    part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REQUEST"
    # Carol's client: her copy of the request, answered, and the REPLY it sends.
    request = icalendar.Calendar.from_ical(part.get_content())
    request.pop("METHOD")
    answered = icalendar.Calendar.from_ical(request.to_ical().replace(b"PARTSTAT=NEEDS-ACTION", b"PARTSTAT=ACCEPTED"))
    reply = itip.attendee_reply(request, answered, own={"carol@remote.example"})
    before = dav(server, "GET", ALICE_EVENT)
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        client.ehlo("mx.example.org")
        refused = client.sendmail("carol@remote.example", ["alice@example.org"],
                                  AUTH + itip.imip(reply, "alice@example.org").as_bytes())
        assert refused == {}
    after = dav(server, "GET", ALICE_EVENT)
    assert after.status_code == 200 and after.headers["ETag"] != before.headers["ETag"]
    assert itip.attendees(icalendar.Calendar.from_ical(after.content))["carol@remote.example"] == "ACCEPTED"
    # The REPLY keeps the organizer's Schedule-Tag (RFC 6638 §3.2.10): her client's next PUT holds.
    assert after.headers.get("Schedule-Tag") == before.headers.get("Schedule-Tag")


def _bob_objects(server):
    got = dav(server, "PROPFIND", BOB_CAL, who="bob", headers={"Depth": "1"})
    assert got.status_code == 207, got.text
    hrefs = [h.text for h in ET.fromstring(got.content).iter("{DAV:}href")]
    return [h for h in hrefs if h.endswith(".ics")]


def test_an_invitation_through_deliver_then_its_cancellation(server):
    # An invitation from a stranger is added to the calendar only with autoAddInvitations on.
    server.manage("update", "calendarscheduling", "--field", "autoAddInvitations=true")
    env = server.env

    def deliver(data):
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "deliver", "-f", "dave@remote.example",
                               "--", "bob@example.org"], input=data, capture_output=True, env=env, cwd=ROOT,
                              timeout=300)
        assert done.returncode == 0, done.stderr

    deliver(outlook("REQUEST", 0))
    (href,) = _bob_objects(server)
    got = dav(server, "GET", href, who="bob")
    assert got.status_code == 200 and "SUMMARY:Review" in got.text and "METHOD" not in got.text
    assert itip.attendees(icalendar.Calendar.from_ical(got.content))["bob@example.org"] == "NEEDS-ACTION"
    deliver(outlook("CANCEL", 1, status="STATUS:CANCELLED"))
    got = dav(server, "GET", href, who="bob")
    assert "STATUS:CANCELLED" in got.text
