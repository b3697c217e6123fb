"""Every authentication failure on every endpoint counts toward authBanRate (issue 10, item 7).

Each case fails three times from its own address with authBanRate {count: 2}: the third failure
bans (429), and the edge then refuses the address (403). Everything goes through HTTP.
"""
from __future__ import annotations

import base64
import json

import pytest

from security.models import BlockedIp
from tests.clients import STRONG_PASSWORD, basic

JMAP_BODY = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": []})


def _form(client, path, data, ip, **extra):
    from urllib.parse import urlencode

    return client.post(path, urlencode(data), content_type="application/x-www-form-urlencoded", REMOTE_ADDR=ip,
                       **extra)


CASES = {
    "garbage OAuth token on /jmap": lambda c, ip: c.post("/jmap/", JMAP_BODY, content_type="application/json",
                                                          HTTP_AUTHORIZATION="Bearer sw1.garbage", REMOTE_ADDR=ip),
    "garbage Bearer on /api/account": lambda c, ip: c.get("/api/account", HTTP_AUTHORIZATION="Bearer nonsense",
                                                          REMOTE_ADDR=ip),
    "garbage OAuth token on /auth/userinfo": lambda c, ip: c.get("/auth/userinfo",
                                                                 HTTP_AUTHORIZATION="Bearer sw1.x", REMOTE_ADDR=ip),
    "garbage Bearer on /auth/introspect": lambda c, ip: _form(c, "/auth/introspect", {"token": "x"}, ip,
                                                              HTTP_AUTHORIZATION="Bearer sw1.y"),
    "malformed Basic on /jmap/session": lambda c, ip: c.get("/jmap/session", HTTP_AUTHORIZATION="Basic !!!",
                                                            REMOTE_ADDR=ip),
    "unsupported scheme on /jmap/session": lambda c, ip: c.get("/jmap/session", HTTP_AUTHORIZATION="Negotiate x",
                                                               REMOTE_ADDR=ip),
    "wrong client_secret at /auth/token": lambda c, ip: _form(c, "/auth/token", {
        "grant_type": "refresh_token", "refresh_token": "sw1.r", "client_id": "conf", "client_secret": "wrong"}, ip),
    "wrong client_secret_basic at /auth/token": lambda c, ip: _form(
        c, "/auth/token", {"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://a.example/cb"},
        ip, HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"conf:wrong").decode()),
    "wrong client secret at /auth/device": lambda c, ip: _form(c, "/auth/device", {
        "client_id": "conf", "client_secret": "wrong"}, ip),
    "unknown device code at /auth/token": lambda c, ip: _form(c, "/auth/token", {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "guess", "client_id": "pub"}, ip),
    "unknown authorization code at /auth/token": lambda c, ip: _form(c, "/auth/token", {
        "grant_type": "authorization_code", "code": "guess", "client_id": "pub",
        "redirect_uri": "https://a.example/cb", "code_verifier": "v" * 43}, ip),
    "unknown user code at /api/auth": lambda c, ip: c.post("/api/auth", json.dumps({
        "type": "authDevice", "accountName": "bob@example.org", "accountSecret": STRONG_PASSWORD,
        "code": "ZZZZ-ZZZZ"}), content_type="application/json", REMOTE_ADDR=ip),
    "wrong password at /api/auth": lambda c, ip: c.post("/api/auth", json.dumps({
        "type": "authDevice", "accountName": "bob@example.org", "accountSecret": "wrong", "code": "ZZZZ-ZZZZ"}),
        content_type="application/json", REMOTE_ADDR=ip),
    "wrong password at the admin login": lambda c, ip: c.post("/admin/login/", {
        "username": "bob@example.org", "password": "wrong"}, REMOTE_ADDR=ip),
    "wrong Basic password on /jmap": lambda c, ip: c.post("/jmap/", JMAP_BODY, content_type="application/json",
                                                          HTTP_AUTHORIZATION=basic("bob@example.org", "wrong"),
                                                          REMOTE_ADDR=ip),
}


@pytest.fixture
def world(jmap, make_account):
    from oauth.models import OAuthClient

    make_account("bob")
    jmap.ok("x:Security/set", {"update": {"singleton": {"authBanRate": {"count": 2, "period": 3600000}}}})
    OAuthClient.objects.create(client_id="conf", name="conf", client_secret="Right-Secret-1234567890",
                               redirect_uris="https://a.example/cb",
                               authorization_grant_type=OAuthClient.GRANT_AUTHORIZATION_CODE)


@pytest.mark.parametrize("case", list(CASES))
def test_every_failure_counts_toward_a_ban(client, world, case):
    ip = f"203.0.113.{list(CASES).index(case) + 10}"
    statuses = [CASES[case](client, ip).status_code for _ in range(3)]
    assert statuses[2] == 429 or BlockedIp.objects.filter(address=ip).exists(), (case, statuses)
    assert BlockedIp.objects.filter(address=ip).exists(), (case, statuses)
    assert client.get("/.well-known/jmap", REMOTE_ADDR=ip).status_code == 403
    # Another address is untouched.
    assert client.get("/.well-known/jmap", REMOTE_ADDR="198.51.100.200").status_code == 307
