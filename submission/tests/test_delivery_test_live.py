"""The delivery test end to end: gunicorn with the event-loop worker streams /api/live/delivery/<target>
to a real SSE client (httpx-sse), and Chromium runs Management › Test delivery, against a DNS
server and aiosmtpd mail exchangers on loopback (DELIVERY_TEST_ALLOW_PRIVATE, as in a lab).
"""
from __future__ import annotations

import secrets
from urllib.parse import quote

import httpx
import pytest
import requests
from httpx_sse import connect_sse
from playwright.sync_api import expect

from tests.browser import log_in_admin_form
from tests.clients import STRONG_PASSWORD, basic
from tests.live import live_server
from tests.mailservers import DnsServer

from .delivery_servers import MX_TLS, Exchangers, authority, zone

SEED = """
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name="ops.example").first() or registry.create(
    Domain._declaration, {{"name": "ops.example", "description": "delivery tests"}}, "test")
admin = services.create_account({{"name": {admin!r}, "domain": dom.pk, "roles_mode": "admin", "kind": "user"}},
                                "test", password={password!r})
user = services.create_account({{"name": {user!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                               "test", password={password!r})
result = [admin.email_address, user.email_address]
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    ca = authority(tmp_path_factory.mktemp("delivery-ca"))
    with Exchangers(ca) as exchangers, DnsServer(zone(exchangers.port, ca.spki_sha256)) as dns_server:
        env = {"DNS_SERVERS": f"127.0.0.1:{dns_server.port}", "DELIVERY_TEST_ALLOW_PRIVATE": "1",
               "DELIVERY_TEST_SMTP_PORT": str(exchangers.port), "SSL_CERT_FILE": str(ca.ca_file),
               "SUBMISSION_EHLO_NAME": "tester.ops.example"}
        with live_server(workers=1, extra_env=env) as server:
            tag = secrets.token_hex(3)
            server.admin, server.user = server.shell_json(
                SEED.format(admin=f"ops{tag}", user=f"usr{tag}", password=STRONG_PASSWORD))
            server.exchangers = exchangers
            yield server


def token(server, login: str, kind: str = "delivery") -> requests.Response:
    return requests.get(f"{server.url}/api/token/{kind}", headers={"Authorization": basic(login)}, timeout=30)


def stream(server, target: str, **params) -> list[tuple[str, list]]:
    """The frames of one delivery test, read with httpx-sse until the server ends the stream."""
    with httpx.Client(timeout=httpx.Timeout(30)) as client:
        with connect_sse(client, "GET", f"{server.url}/api/live/delivery/{quote(target, safe='@')}",
                         params=params) as source:
            assert source.response.status_code == 200, source.response.read()
            assert source.response.headers["cache-control"] == "no-store"
            return [(sse.event, sse.json()) for sse in source.iter_sse()]


def stage_types(frames) -> list[str]:
    assert {event for event, _ in frames} == {"event"}
    return [stage["type"] for _, data in frames for stage in data]


def test_the_stages_stream_in_order_to_an_sse_client(lab):
    lab.exchangers.tls.commands.clear()
    minted = token(lab, lab.admin)
    assert minted.status_code == 200 and minted.headers["cache-control"] == "no-store"
    kinds = stage_types(stream(lab, "jane@tls.test", token=minted.text, timeout=5))
    assert kinds == [
        "mxLookupStart", "mxLookupSuccess", "mtaStsFetchStart", "mtaStsNotFound", "tlsRptLookupStart",
        "tlsRptLookupSuccess", "deliveryAttemptStart", "tlsaLookupStart", "tlsaLookupSuccess", "ipLookupStart",
        "ipLookupSuccess", "connectionStart", "connectionSuccess", "readGreetingStart", "readGreetingSuccess",
        "ehloStart", "ehloSuccess", "startTlsStart", "startTlsSuccess", "daneVerifySuccess", "ehloStart",
        "ehloSuccess", "mailFromStart", "mailFromSuccess", "rcptToStart", "rcptToSuccess", "quitStart",
        "quitCompleted", "completed"]
    assert lab.exchangers.tls.commands == ["EHLO", "EHLO", "MAIL FROM:<>", "RCPT TO:<jane@tls.test>", "RSET", "QUIT"]


def test_failures_are_stages_of_a_200_stream(lab):
    token_text = token(lab, lab.admin).text
    refused = stage_types(stream(lab, "nobody@tls.test", token=token_text))
    assert refused[-5:] == ["rcptToStart", "rcptToError", "quitStart", "quitCompleted", "completed"]
    closed = stage_types(stream(lab, "jane@closed.test", token=token_text))
    assert closed[-3:] == ["connectionStart", "connectionError", "completed"]
    assert stage_types(stream(lab, "nomx.test", token=token_text)) == ["mxLookupStart", "mxLookupError", "completed"]


def test_header_authentication_and_refusals_on_the_live_server(lab):
    with httpx.Client(timeout=30) as client:
        with connect_sse(client, "GET", f"{lab.url}/api/live/delivery/plain.test",
                         headers={"Authorization": basic(lab.admin)}) as source:
            kinds = [stage["type"] for sse in source.iter_sse() for stage in sse.json()]
        assert kinds[-3:] == ["startTlsStart", "startTlsError", "completed"]
        assert token(lab, lab.user).status_code == 403
        assert client.get(f"{lab.url}/api/live/delivery/plain.test",
                          headers={"Authorization": basic(lab.user)}).status_code == 403
        eventsource = token(lab, lab.admin, "eventsource").text
        assert client.get(f"{lab.url}/api/live/delivery/plain.test", params={"token": eventsource}).status_code == 401
        delivery = token(lab, lab.admin).text
        assert client.get(f"{lab.url}/jmap/eventsource/", params={"token": delivery}).status_code == 401


def test_the_admin_page_shows_the_stages_as_they_arrive(lab, chromium):
    lab.exchangers.tls.commands.clear()

    def body(page):
        log_in_admin_form(page, lab.url, lab.admin, STRONG_PASSWORD)
        page.get_by_role("link", name="Test delivery").first.click()
        expect(page.locator("h1")).to_have_text("Test delivery")
        page.fill("#delivery-target", "jane@two.test")
        page.fill("#delivery-timeout", "5")
        page.click("#delivery-run")
        expect(page.locator("#delivery-stages li[data-type=completed]")).to_have_count(1, timeout=30_000)
        expect(page.locator("#delivery-status")).to_have_text("Finished.")
        kinds = page.eval_on_selector_all("#delivery-stages li", "items => items.map(i => i.dataset.type)")
        error = page.locator("#delivery-stages li[data-type=connectionError]").inner_text()
        success = page.locator("#delivery-stages li[data-type=rcptToSuccess]").get_attribute("class")
        attempts = page.locator("#delivery-stages li[data-type=deliveryAttemptStart]").all_inner_texts()
        # A target that is no address nor domain: refused before any stream opens.
        page.fill("#delivery-target", "not an address")
        page.click("#delivery-run")
        expect(page.locator("#delivery-status")).to_contain_text("not a valid")
        return kinds, error, success, attempts

    kinds, error, success, attempts = chromium.run(body)
    assert kinds[0] == "mxLookupStart" and kinds[-1] == "completed"
    assert kinds.index("connectionError") < kinds.index("rcptToSuccess")
    assert "Connection refused" in error
    assert "stage-ok" in success
    assert lab.exchangers.tls.commands[-4:] == ["MAIL FROM:<>", "RCPT TO:<jane@two.test>", "RSET", "QUIT"]
    assert len(attempts) == 2 and "down.two.test" in attempts[0] and MX_TLS in attempts[1]
