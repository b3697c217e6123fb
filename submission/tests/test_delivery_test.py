"""The delivery test (/api/token/delivery, /api/live/delivery/<target>, spec http.md §8.5-8.7) in
process: who may run it and with which token, and each stage's outcome against real servers on
loopback (a DNS server, aiosmtpd exchangers with and without STARTTLS, a port that never greets,
one where nothing listens). The stream itself, read by an SSE client from gunicorn, is in
test_delivery_test_live.py.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
import json
import time

import pytest
from django.core import signing

from network import live_token
from submission import deliverytest
from tests.clients import basic
from tests.mailservers import DnsServer

from .delivery_servers import MX_TLS, Exchangers, authority, zone


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return authority(tmp_path_factory.mktemp("delivery-ca"))


@pytest.fixture(scope="module")
def exchangers(ca):
    with Exchangers(ca) as running:
        yield running


@pytest.fixture(scope="module")
def dns_server(ca, exchangers):
    with DnsServer(zone(exchangers.port, ca.spki_sha256)) as server:
        yield server


@pytest.fixture
def lab(settings, monkeypatch, ca, exchangers, dns_server):
    """The servers above as the test's world: loopback allowed, the CA trusted."""
    settings.DNS_SERVERS = [f"127.0.0.1:{dns_server.port}"]
    settings.DELIVERY_TEST_SMTP_PORT = exchangers.port
    settings.DELIVERY_TEST_ALLOW_PRIVATE = True
    settings.SUBMISSION_EHLO_NAME = "tester.example.org"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    exchangers.tls.commands.clear()
    exchangers.plain.commands.clear()
    return exchangers


def in_own_loop(coro):
    """asyncio.run() in a thread of its own: the session's browser (tests/browser.py) keeps a
    running loop in the main thread once any browser test has run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run(target: str, timeout: float = 3) -> list[dict]:
    async def collect():
        return [stage async for stage in deliverytest.run(target, timeout)]
    return in_own_loop(collect())


def types(stages: list[dict]) -> list[str]:
    return [stage["type"] for stage in stages]


def one(stages: list[dict], kind: str) -> dict:
    found = [stage for stage in stages if stage["type"] == kind]
    assert len(found) == 1, (kind, types(stages))
    return found[0]


CONVERSATION = ["connectionStart", "connectionSuccess", "readGreetingStart", "readGreetingSuccess",
                "ehloStart", "ehloSuccess", "startTlsStart", "startTlsSuccess", "daneVerifySuccess",
                "ehloStart", "ehloSuccess", "mailFromStart", "mailFromSuccess", "rcptToStart"]


# --- the stages ----------------------------------------------------------------------------------
def test_an_address_behind_starttls_and_dane_is_accepted_and_no_message_is_sent(lab):
    stages = run("Jane@TLS.test")
    assert types(stages) == [
        "mxLookupStart", "mxLookupSuccess", "mtaStsFetchStart", "mtaStsNotFound", "tlsRptLookupStart",
        "tlsRptLookupSuccess", "deliveryAttemptStart", "tlsaLookupStart", "tlsaLookupSuccess", "ipLookupStart",
        "ipLookupSuccess", *CONVERSATION, "rcptToSuccess", "quitStart", "quitCompleted"]
    assert stages[0] == {"type": "mxLookupStart", "domain": "tls.test"}
    assert one(stages, "mxLookupSuccess")["mxs"] == [{"exchanges": [MX_TLS], "preference": 10}]
    assert one(stages, "tlsRptLookupSuccess")["rua"] == [{"type": "mail", "email": "tlsrpt@tls.test"},
                                                         {"type": "http", "url": "https://reports.tls.test/v1"}]
    assert one(stages, "deliveryAttemptStart") == {"type": "deliveryAttemptStart", "hostname": MX_TLS}
    assert one(stages, "tlsaLookupSuccess")["record"]["entries"] == [
        {"usage": 3, "selector": 1, "matchingType": 1, "data": lab.ca.spki_sha256}]
    assert one(stages, "ipLookupSuccess")["remoteIps"] == ["127.0.0.1"]
    assert one(stages, "connectionStart")["remoteIp"] == "127.0.0.1"
    assert all(isinstance(s["elapsed"], int) and s["elapsed"] >= 0 for s in stages if "elapsed" in s)
    # The exchanger saw the whole envelope check and never a DATA.
    assert lab.tls.commands == ["EHLO", "EHLO", "MAIL FROM:<>", "RCPT TO:<jane@tls.test>", "RSET", "QUIT"]


def test_a_domain_target_stops_after_tls_without_mail_from(lab):
    stages = run("tls.test")
    assert types(stages)[-6:] == ["startTlsSuccess", "daneVerifySuccess", "ehloStart", "ehloSuccess",
                                  "quitStart", "quitCompleted"]
    assert lab.tls.commands == ["EHLO", "EHLO", "QUIT"]


def test_a_refused_recipient_is_reported_with_the_servers_reply(lab):
    stages = run("nobody@tls.test")
    assert types(stages)[-4:] == ["rcptToStart", "rcptToError", "quitStart", "quitCompleted"]
    assert one(stages, "rcptToError")["reason"] == "550 5.1.1 No such user here"
    assert "DATA" not in lab.tls.commands


def test_an_exchanger_without_starttls_is_reported_and_left(lab):
    stages = run("jane@plain.test")
    assert types(stages)[-4:] == ["ehloStart", "ehloSuccess", "startTlsStart", "startTlsError"]
    assert one(stages, "startTlsError")["reason"] == "STARTTLS not advertised by host"
    assert one(stages, "tlsaNotFound")["reason"] == "No TLSA records found for MX"
    assert lab.plain.commands == ["EHLO", "QUIT"]


def test_a_certificate_that_does_not_verify_is_a_starttls_error(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    stages = run("jane@tls.test")
    error = one(stages, "startTlsError")
    assert error["reason"].startswith("Certificate verification failed"), error
    assert "mailFromStart" not in types(stages)


def test_connection_refused_then_the_next_exchanger(lab):
    stages = run("jane@two.test")
    attempts = [s["hostname"] for s in stages if s["type"] == "deliveryAttemptStart"]
    assert attempts == ["down.two.test", MX_TLS]  # by preference
    assert one(stages, "connectionError")["reason"] == "Connection refused"
    assert types(stages)[-3:] == ["rcptToSuccess", "quitStart", "quitCompleted"]


def test_a_silent_exchanger_times_out_at_the_greeting(lab):
    started = time.monotonic()
    stages = run("jane@silent.test", timeout=1)
    assert types(stages)[-2:] == ["readGreetingStart", "readGreetingError"]
    assert one(stages, "readGreetingError")["reason"] == "Timed out"
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("target, reason", [
    ("jane@nomx.test", "No MX records found"),
    ("nullmx.test", "Null MX record"),
    ("nowhere.test", "Domain not found (NXDOMAIN)"),
])
def test_no_mail_exchanger(lab, target, reason):
    stages = run(target)
    assert types(stages) == ["mxLookupStart", "mxLookupError"]
    assert stages[1]["reason"] == reason


def test_an_mta_sts_policy_that_cannot_be_fetched(lab):
    stages = run("sts.test")
    assert types(stages)[2:4] == ["mtaStsFetchStart", "mtaStsFetchError"]
    assert stages[3]["reason"]


def test_mta_sts_policy_parsing_and_matching():
    policy = deliverytest.parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                                       "mx: *.example.net\r\nmax_age: 86400\r\n")
    assert policy == {"mode": "enforce", "mx": ["mx1.example.com", "*.example.net"], "maxAge": 86400}
    assert deliverytest.policy_allows(policy, "mx1.example.com")
    assert deliverytest.policy_allows(policy, "a.example.net")
    assert not deliverytest.policy_allows(policy, "a.b.example.net")  # one label only
    assert not deliverytest.policy_allows(policy, "example.net")
    for bad in ("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", "version: STSv1\nmode: strict\nmax_age: 1\n",
                "version: STSv1\nmode: enforce\nmax_age: 1\n", "<html>"):
        with pytest.raises(ValueError):
            deliverytest.parse_policy(bad)


# --- what an attacker can make of it -------------------------------------------------------------
def test_private_and_loopback_exchangers_are_refused_by_default(lab, settings):
    settings.DELIVERY_TEST_ALLOW_PRIVATE = False
    stages = run("jane@tls.test")
    assert types(stages)[-2:] == ["connectionStart", "connectionError"]
    assert one(stages, "connectionError")["reason"].startswith("Refused to connect to 127.0.0.1")
    assert lab.tls.commands == []  # nothing reached the exchanger
    # The MTA-STS policy host is an address like any other.
    stages = run("sts.test")
    assert one(stages, "mtaStsFetchError")["reason"].startswith("Refused to connect to 127.0.0.4")


@pytest.mark.parametrize("address, public", [
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("::1", False), ("fd00::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("192.0.2.1", False), ("8.8.8.8", True), ("2001:4860::8888", True),
])
def test_which_addresses_are_public(settings, address, public):
    import ipaddress

    settings.DELIVERY_TEST_ALLOW_PRIVATE = False
    assert deliverytest.public_destination(ipaddress.ip_address(address)) is public


def test_the_number_of_exchangers_tried_is_bounded(lab, settings, dns_server):
    settings.DELIVERY_TEST_MAX_MX = 1
    stages = run("jane@two.test")
    assert [s["hostname"] for s in stages if s["type"] == "deliveryAttemptStart"] == ["down.two.test"]


@pytest.mark.parametrize("target", ["jane@", "@tls.test", "a b@tls.test", "jane@tls.test\r\nDATA", "127.0.0.1",
                                    "[127.0.0.1]", "localhost", "x" * 300 + ".test", "-bad.test", "a..b.test"])
def test_targets_that_are_no_address_or_domain(target):
    with pytest.raises(deliverytest.TargetError):
        deliverytest.parse_target(target)


# --- the endpoints: permission and tokens ---------------------------------------------------------
@pytest.fixture
def users(make_account):
    from accounts.models import Account

    make_account("admin", roles_mode=Account.RolesMode.ADMIN)
    make_account("bob")
    return basic("admin@example.org"), basic("bob@example.org")


def mint(client, auth, kind="delivery"):
    response = client.get(f"/api/token/{kind}", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_the_token_endpoint(client, users):
    admin, bob = users
    response = client.get("/api/token/delivery", HTTP_AUTHORIZATION=admin)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"  # a credential: as every kind of network.live_token
    assert client.get("/api/token/delivery", HTTP_AUTHORIZATION=bob).status_code == 403
    assert client.get("/api/token/delivery").status_code == 401
    assert client.get("/api/token/nosuchkind", HTTP_AUTHORIZATION=admin).status_code == 404


def test_without_the_permission_the_stream_is_403(client, users):
    _admin, bob = users
    response = client.get("/api/live/delivery/tls.test", HTTP_AUTHORIZATION=bob)
    assert response.status_code == 403
    assert "liveDeliveryTest" in response.json()["detail"]
    assert client.get("/api/live/delivery/tls.test").status_code == 401


def test_tokens_of_one_kind_open_no_other_stream(client, users):
    admin, _bob = users
    delivery = mint(client, admin)
    eventsource = mint(client, admin, "eventsource")
    assert client.get(f"/jmap/eventsource/?token={delivery}").status_code == 401
    response = client.get(f"/api/live/delivery/tls.test?token={eventsource}")
    assert response.status_code == 401
    assert response.json()["detail"] == "The token is not valid."
    # Nor is it a credential anywhere else.
    assert client.get("/api/account", HTTP_AUTHORIZATION=f"Bearer {delivery}").status_code == 401
    assert client.get(f"/api/live/delivery/tls.test?token={delivery}x").status_code == 401


def test_an_expired_token_is_refused(client, users, monkeypatch):
    admin, _bob = users
    real = signing.TimestampSigner.timestamp
    monkeypatch.setattr(signing.TimestampSigner, "timestamp",
                        lambda self: signing.b62_encode(int(time.time()) - 61))
    old = mint(client, admin)
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", real)
    response = client.get(f"/api/live/delivery/tls.test?token={old}")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_dies_with_the_permission(client, users):
    from accounts.models import Account
    from registry import services as registry

    admin, _bob = users
    token = mint(client, admin)
    account = Account.objects.get(name="admin")
    registry.update(Account._declaration, account.pk, {"roles_mode": Account.RolesMode.USER}, "test")
    response = client.get(f"/api/live/delivery/tls.test?token={token}")
    assert response.status_code == 403
    assert "no longer has the liveDeliveryTest permission" in response.json()["detail"]


def test_a_token_minted_for_one_account_names_it():
    token = live_token.mint(live_token.KINDS["delivery"], 7)
    assert signing.loads(token, salt="stalwart.api.live-delivery-token")["a"] == 7
    with pytest.raises(signing.BadSignature):
        signing.loads(token, salt="stalwart.jmap.eventsource-token")


def test_bad_requests_are_4xx_never_5xx(client, users):
    admin, _bob = users
    assert client.post("/api/live/delivery/tls.test", HTTP_AUTHORIZATION=admin).status_code == 404
    response = client.get("/api/live/delivery/127.0.0.1", HTTP_AUTHORIZATION=admin)
    assert response.status_code == 400
    assert client.get("/api/live/delivery/a%20b@tls.test", HTTP_AUTHORIZATION=admin).status_code == 400
    assert client.options("/api/live/delivery/tls.test").status_code == 204


def read_frames(response) -> list[tuple[str, list]]:
    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])
    body = in_own_loop(collect()).decode()
    frames = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines:
            frames.append((lines["event"], json.loads(lines["data"])))
    return frames


def test_the_stream_over_http_in_process(client, users, lab, settings):
    admin, _bob = users
    settings.DELIVERY_TEST_ALLOW_PRIVATE = False
    token = mint(client, admin)
    response = client.get(f"/api/live/delivery/Jane%40tls.test?token={token}&timeout=2")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-store"
    frames = read_frames(response)
    assert {event for event, _ in frames} == {"event"}
    assert all(len(data) == 1 for _, data in frames)
    kinds = [data[0]["type"] for _, data in frames]
    assert kinds[0] == "mxLookupStart" and kinds[-1] == "completed"
    assert "connectionError" in kinds and "connectionSuccess" not in kinds


# --- the admin page --------------------------------------------------------------------------
def test_the_admin_page_mints_a_token_for_its_session_only(make_account):
    from django.test import Client

    from accounts.models import Account
    from tests.clients import STRONG_PASSWORD

    admin = make_account("admin", roles_mode=Account.RolesMode.ADMIN)
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="admin@example.org", password=STRONG_PASSWORD)
    page = browser.get("/admin/delivery-test/")
    assert page.status_code == 200
    assert b'id="delivery-test-form"' in page.content and b"delivery-test.js" in page.content
    assert b'href="/admin/delivery-test/"' in browser.get("/admin/").content  # in the menu
    # Another site's form cannot have the browser mint one: no CSRF token, no token.
    assert browser.post("/admin/delivery-test/token/", {"target": "tls.test"}).status_code == 403
    csrf = {"HTTP_X_CSRFTOKEN": browser.cookies["csrftoken"].value}
    assert browser.get("/admin/delivery-test/token/", **csrf).status_code == 405
    refused = browser.post("/admin/delivery-test/token/", {"target": "127.0.0.1"}, **csrf)
    assert refused.status_code == 400 and "not a valid" in refused.json()["error"]
    minted = browser.post("/admin/delivery-test/token/", {"target": "jane@tls.test"}, **csrf)
    assert minted.status_code == 200 and "no-store" in minted["Cache-Control"]
    assert live_token.verify("delivery", minted.json()["token"]).account.pk == admin.pk


def test_an_administrator_without_the_permission_has_no_page(make_account):
    from django.test import Client

    from accounts.models import Account
    from tests.clients import STRONG_PASSWORD

    make_account("ops", roles_mode=Account.RolesMode.ADMIN, permissions_mode="merge",
                 disabled_permissions=["liveDeliveryTest"])
    browser = Client()
    assert browser.login(username="ops@example.org", password=STRONG_PASSWORD)
    dashboard = browser.get("/admin/")
    assert dashboard.status_code == 200
    assert b'href="/admin/delivery-test/"' not in dashboard.content  # not in the menu
    assert browser.get("/admin/delivery-test/").status_code == 403
    assert browser.post("/admin/delivery-test/token/", {"target": "tls.test"}).status_code == 403
