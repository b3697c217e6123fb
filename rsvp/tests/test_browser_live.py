"""End to end against gunicorn: an organizer PUTs an event with an attendee elsewhere over
CalDAV, the invitation reaches a real SMTP sink, its Accept link opens in Chromium (desktop and
phone, with and without JavaScript), the answer is sent, and the organizer's calendar read back
over CalDAV carries PARTSTAT=ACCEPTED. The link's token never reaches the access log."""
from __future__ import annotations

import email
import re
import secrets
import time
from email import policy
from urllib.parse import quote

import pytest
import requests

from submission.tests.sinks import sink
from tests.browser import NOT_LOCAL
from tests.clients import STRONG_PASSWORD
from tests.live import live_server

from .conftest import links_of

DOMAIN = "rsvp.example"
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20270312T140000Z\r\nDTEND:20270312T150000Z\r\n"
         "SUMMARY:Design review\r\nLOCATION:Meeting room 2\r\nDESCRIPTION:Walk through the new layout.\r\n"
         "ORGANIZER;CN=Olga Organizer:mailto:{org}\r\n"
         "ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.net\r\n"
         "ATTENDEE;CN=Dan;PARTSTAT=TENTATIVE:mailto:dan@example.net\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture(scope="module")
def site():
    with sink() as (handler, port):
        def prepare(server):
            server.shell_json(f"""
import datetime as dt
from django.conf import settings
from accounts import services
from accounts.models import Domain
from registry import services as registry
from submission.models import MtaRoute
dom = registry.create(Domain._declaration, {{"name": {DOMAIN!r}, "description": "RSVP"}}, "test")
services.create_account({{"name": "olga", "domain": dom.pk, "roles_mode": "user", "kind": "user"}}, "test",
                        password={STRONG_PASSWORD!r})
MtaRoute.objects.create(name=settings.SUBMISSION_ROUTE, address="127.0.0.1", port={port},
                        start_tls="disable", timeout=dt.timedelta(seconds=5))
result = True
""")
        with live_server(workers=1, extra_env={"ACCESS_LOG": "-"}, prepare=prepare) as server:
            server.sink = handler
            yield server


def put_event(site, uid: str) -> str:
    login = f"olga@{DOMAIN}"
    url = f"{site.url}/dav/cal/{quote(login)}/default/{uid}.ics"
    resp = requests.put(url, data=EVENT.format(uid=uid, org=login).encode(), auth=(login, STRONG_PASSWORD),
                        headers={"Content-Type": "text/calendar"}, timeout=30)
    assert resp.status_code in (201, 204), resp.text
    return url


def invitation_to(site, rcpt: str, uid: str):
    """The invitation the server mailed after the PUT committed (sent by the worker, so polled)."""
    for _ in range(150):
        for got in list(site.sink.received):
            if got.rcpt_tos == [rcpt] and uid.encode() in got.content:
                return email.message_from_bytes(got.content, policy=policy.default)
        time.sleep(0.2)
    raise AssertionError("the invitation never reached the sink")


def organizer_copy(site, url: str) -> str:
    resp = requests.get(url, auth=(f"olga@{DOMAIN}", STRONG_PASSWORD), timeout=30)
    assert resp.status_code == 200
    return resp.text.replace("\r\n ", "")


def context(chromium, **options):
    ctx = chromium.browser.new_context(locale="en-US", **options)
    ctx.set_default_timeout(10_000)
    ctx.route(NOT_LOCAL, lambda route: route.abort())
    return ctx


def test_accept_in_chromium_and_read_back_over_caldav(site, chromium, tmp_path):
    uid = f"design-{secrets.token_hex(4)}"
    url = put_event(site, uid)
    links = links_of(invitation_to(site, "carol@example.net", uid))
    assert links["ACCEPTED"].startswith(site.url + "/calendar/rsvp?i=")

    ctx = context(chromium, viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    try:
        page = ctx.new_page()
        violations = []
        page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
        page.goto(links["ACCEPTED"])
        assert page.locator("h1").inner_text() == "Design review"
        assert page.locator("input[value=ACCEPTED]").is_checked()
        # The script shows the time in the visitor's zone too: 14:00 UTC is 23:00 in Tokyo.
        yours = page.locator("time.yours")
        assert yours.is_visible() and "11:00 PM" in yours.inner_text() and "Asia/Tokyo" in yours.inner_text()
        page.screenshot(path=str(tmp_path / "rsvp-desktop.png"), full_page=True)
        assert re.search(r"ATTENDEE;[^\n]*PARTSTAT=NEEDS-ACTION[^\n]*carol@example.net", organizer_copy(site, url)), \
            "the GET changed nothing"
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "Your answer has been recorded." in page.locator("main").inner_text()
        page.screenshot(path=str(tmp_path / "rsvp-recorded.png"), full_page=True)
        assert violations == []
    finally:
        ctx.close()
    copy = organizer_copy(site, url)
    assert "PARTSTAT=ACCEPTED" in copy and re.search(r"ATTENDEE;[^\n]*PARTSTAT=ACCEPTED[^\n]*carol@example.net", copy)
    assert re.search(r"ATTENDEE;[^\n]*PARTSTAT=TENTATIVE[^\n]*dan@example.net", copy)

    # The token went through the access log's request lines, never in clear.
    token = re.search(r"[?&]i=([^&]+)", links["ACCEPTED"]).group(1)
    log = (site.var_dir / "gunicorn.log").read_text()
    assert "/calendar/rsvp" in log and token[:30] not in log


def test_phone_without_javascript(site, chromium, tmp_path):
    uid = f"phone-{secrets.token_hex(4)}"
    url = put_event(site, uid)
    links = links_of(invitation_to(site, "carol@example.net", uid))
    ctx = context(chromium, viewport={"width": 375, "height": 740}, device_scale_factor=2, is_mobile=True,
                  has_touch=True, java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(links["DECLINED"])
        assert page.locator("input[value=DECLINED]").is_checked()
        # Nothing wider than the phone: no sideways scrolling.
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        assert not page.locator("time.yours").is_visible()  # no script: UTC is shown instead
        assert "14:00" in page.locator("main").inner_text() and "UTC" in page.locator("main").inner_text()
        box = page.locator("button[type=submit]").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
        page.screenshot(path=str(tmp_path / "rsvp-phone.png"), full_page=True)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "You declined this invitation." in page.locator("main").inner_text()
        page.screenshot(path=str(tmp_path / "rsvp-phone-recorded.png"), full_page=True)
    finally:
        ctx.close()
    assert re.search(r"ATTENDEE;[^\n]*PARTSTAT=DECLINED[^\n]*carol@example.net", organizer_copy(site, url))
