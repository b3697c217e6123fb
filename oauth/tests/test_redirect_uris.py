"""Issue 10 item 3: where codes may be sent.

A registered client gets codes only at its registered redirect URIs, whoever signs in (an
administrator too); a client that registered nothing only at https URIs and loopback http URIs
(RFC 8252 §7.3). The login page names the destination before sign-in and refuses a bad one
without showing the form, and the pages carry a Content-Security-Policy forbidding inline script.
"""
import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from oauth2_provider.models import Grant

from conftest import STRONG_PASSWORD
from oauth.models import OAuthClient, OidcProvider

pytestmark = pytest.mark.django_db

VERIFIER = "q" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")

HOSTILE = [
    "javascript:alert(document.getElementById('accountSecret').value)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript://example.org/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/cb",
    "/relative/cb",
    "cb",
    "http://evil.example/cb",                 # plain http off the loopback, PKCE or not
    "http://localhost.evil.example/cb",
    "http://127.0.0.1.evil.example/cb",
    "http://127.0.0.1:80@evil.example/cb",
    "https://trusted.example@evil.example/cb",
    "https:\\\\evil.example/cb",
    "https:///cb",
    "https://app.example.net/cb#frag",
    "https://app.example.net:99999/cb",
    "ftp://files.example.net/cb",
    "com.example.app:/cb",                    # private schemes need a registered client
    "https://app.example.net/\x00cb",
    "https://app.example.net/" + "a" * 2100,
]
ACCEPTED = ["https://app.example.net/cb?x=1", "http://127.0.0.1:53682/cb", "http://[::1]/cb",
            "http://localhost:8080/callback", "http://127.0.0.1"]


def auth(client, redirect, *, client_id="some-app", user="alice@example.org"):
    body = {"type": "authCode", "accountName": user, "accountSecret": STRONG_PASSWORD, "clientId": client_id,
            "redirectUri": redirect, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}
    return client.post("/api/auth", json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("redirect", HOSTILE)
def test_unregistered_clients_get_no_code_for_hostile_redirects(client, make_account, redirect):
    make_account("alice")
    resp = auth(client, redirect)
    assert resp.status_code == 400 and resp["Content-Type"] == "application/problem+json", resp.content
    assert "client_code" not in resp.json()
    assert not Grant.objects.exists()
    page = client.get("/login", {"client_id": "some-app", "redirect_uri": redirect})
    assert page.status_code == 400
    html = page.content.decode()
    assert 'id="refusal"' in html and 'id="login"' not in html and "login.js" not in html


@pytest.mark.parametrize("redirect", ACCEPTED)
def test_unregistered_clients_get_codes_for_https_and_loopback(client, make_account, redirect):
    make_account("alice")
    resp = auth(client, redirect)
    assert resp.status_code == 200 and resp.json()["client_code"], resp.content


def test_hostile_redirects_are_refused_also_with_registration_required(client, admin_account):
    # the holder of oAuthClientOverride may use unknown client ids, but not hostile destinations
    OidcProvider.objects.update(require_client_registration=True)
    resp = auth(client, "javascript:alert(1)", user="admin@example.org")
    assert resp.status_code == 400 and not Grant.objects.exists()
    assert auth(client, "https://app.example.net/cb", user="admin@example.org").status_code == 200


def test_registered_client_only_at_its_registered_uris_even_for_an_administrator(client, jmap, make_account):
    make_account("alice")
    got = jmap.ok("x:OAuthClient/set", {"create": {"c": {
        "clientId": "webmail", "redirectUris": {"https://mail.example.net/cb": True, "com.example.mail:/cb": True,
                                                "http://127.0.0.1/cb": True}}}})
    assert got["notCreated"] is None
    for user in ("alice@example.org", "admin@example.org"):
        for redirect in ("https://mail.example.net/cb2", "https://mail.example.net/cb?x", "https://evil.example/cb",
                         "https://mail.example.net/CB", "com.example.mail:/other", "javascript:alert(1)"):
            resp = auth(client, redirect, client_id="webmail", user=user)
            assert resp.status_code == 400, (user, redirect)
            assert resp.json()["detail"] == "The redirect URI is not registered for this client."
        for redirect in ("https://mail.example.net/cb", "com.example.mail:/cb", "http://127.0.0.1:4321/cb"):
            assert auth(client, redirect, client_id="webmail", user=user).status_code == 200, (user, redirect)
    assert client.get("/login", {"client_id": "webmail", "redirect_uri": "https://evil.example/cb"}).status_code == 400


def test_an_ephemeral_client_follows_the_unregistered_rules(client, make_account):
    make_account("alice")
    assert auth(client, "https://app.example.net/cb").status_code == 200
    assert OAuthClient.objects.get(client_id="some-app").ephemeral
    assert auth(client, "javascript:alert(1)").status_code == 400


def test_the_login_page_names_the_destination_before_sign_in(client, jmap):
    page = client.get("/login", {"client_id": "x", "redirect_uri": "https://app.example.net:8443/cb?a=1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'id="destination-host">https://app\.example\.net:8443<', html)
    assert 'id="login"' in html
    jmap.ok("x:OAuthClient/set", {"create": {"c": {"clientId": "native", "description": "Example <Mail>",
                                                   "redirectUris": {"com.example.mail:/cb": True}}}})
    html = client.get("/login", {"client_id": "native", "redirect_uri": "com.example.mail:/cb"}).content.decode()
    assert "Example &lt;Mail&gt;" in html and 'id="destination-host">com.example.mail:<' in html


class _Inline(HTMLParser):
    """Inline script and style: <script> without src, on* handlers, style attributes and elements."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style" or (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}")


def _pages(client, make_account):
    make_account("carol")
    client.login(username="carol@example.org", password=STRONG_PASSWORD)
    yield "/login?client_id=x&redirect_uri=https://app.example.net/cb"
    yield "/login?client_id=x&redirect_uri=javascript:alert(1)"
    yield "/device"
    yield "/device/?code=ABCD-EFGH"
    yield "/account/"
    yield "/account/password/"
    client.post("/account/two-factor/")        # a pending enrolment: the page shows a QR code
    yield "/account/"


def test_the_pages_send_a_strict_csp_and_have_no_inline_script_or_style(client, make_account):
    for path in _pages(client, make_account):
        resp = client.get(path)
        assert resp.status_code in (200, 400), path
        csp = resp["Content-Security-Policy"]
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives["script-src"] == ["'self'"], csp
        assert directives["frame-ancestors"] == ["'none'"] and directives["base-uri"] == ["'none'"]
        assert directives["form-action"] == ["'self'"] and directives["default-src"] == ["'none'"]
        assert "unsafe" not in csp
        parser = _Inline()
        parser.feed(resp.content.decode())
        assert parser.found == [], (path, parser.found)
