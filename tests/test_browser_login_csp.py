"""End to end, in Chromium against gunicorn: the login, device and account pages under their
Content-Security-Policy (issue 10 items 3 and 4).

The pages work with inline script forbidden (sign-in reaches the redirect URI with a code, a
device is authorized, an app password is created), script injected into them does not run, the
script never navigates to a non-http(s) URL, a hostile redirect URI gets no form at all, and with
JavaScript off the password never appears in a URL.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from playwright.sync_api import expect

from tests.browser import NOT_LOCAL, log_in_admin_form
from tests.clients import STRONG_PASSWORD
from tests.live import LiveServer

DOMAIN = "csp.example"
WATCH = ("window.__csp = [];"
         "document.addEventListener('securitypolicyviolation',"
         " function (e) { window.__csp.push(e.violatedDirective); });")


def make_user(server: LiveServer) -> str:
    name = f"cleo{secrets.token_hex(3)}"
    return server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "CSP tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                               "test", password={STRONG_PASSWORD!r})
result = acct.email_address
""")


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def watched(chromium, **options):
    context = chromium.browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", **options)
    context.set_default_timeout(10_000)
    context.route(NOT_LOCAL, lambda route: route.abort())
    context.add_init_script(WATCH)
    return context


def injected_script_runs(page) -> bool:
    """Whether an inline script added to the page runs (Playwright's own evaluation is exempt
    from the page's policy; the element it adds is not)."""
    page.evaluate("""() => { const s = document.createElement('script');
                             s.textContent = 'window.__injected = 1'; document.body.appendChild(s); }""")
    return page.evaluate("() => window.__injected === 1")


@pytest.fixture
def user(live):
    return make_user(live)


def test_code_flow_under_the_policy(live, user, chromium):
    context = watched(chromium)
    try:
        page = context.new_page()
        verifier, challenge = pkce()
        redirect_uri = f"{live.url}/cb"
        page.goto(f"{live.url}/login?client_id=csp-app&redirect_uri={quote(redirect_uri)}&code_challenge={challenge}"
                  "&code_challenge_method=S256&state=s1")
        expect(page.locator("#destination-host")).to_have_text(live.url)
        assert page.evaluate("() => window.__csp") == []
        assert injected_script_runs(page) is False
        assert "script-src-elem" in page.evaluate("() => window.__csp")
        page.fill("#accountName", user)
        page.fill("#accountSecret", STRONG_PASSWORD)
        with page.expect_navigation(url=re.compile(r"/cb\?")):
            page.click("#submit")
        query = parse_qs(urlsplit(page.url).query)
        assert query["state"] == ["s1"] and query["iss"] == [live.url]
        token = requests.post(live.url + "/auth/token", data={
            "grant_type": "authorization_code", "code": query["code"][0], "client_id": "csp-app",
            "redirect_uri": redirect_uri, "code_verifier": verifier}, timeout=10)
        assert token.status_code == 200, token.text
    finally:
        context.close()


def test_hostile_redirects_get_no_form_and_private_schemes_are_not_navigated_to(live, user, chromium):
    live.shell_json("""
from oauth.models import OAuthClient
from registry import services as registry
if not OAuthClient.objects.filter(client_id="csp-native").exists():
    registry.create(OAuthClient._declaration, {"client_id": "csp-native", "redirect_uris": "com.example.csp:/cb"}, "test")
result = True
""")
    context = watched(chromium)
    try:
        page = context.new_page()
        for hostile in ("javascript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
                        "//evil.example/cb", "http://evil.example/cb"):
            resp = page.goto(f"{live.url}/login?client_id=csp-app&redirect_uri={quote(hostile, safe='')}")
            assert resp.status == 400
            expect(page.locator("#refusal")).to_be_visible()
            assert page.locator("#login").count() == 0
        _, challenge = pkce()
        page.goto(f"{live.url}/login?client_id=csp-native&redirect_uri={quote('com.example.csp:/cb', safe='')}"
                  f"&code_challenge={challenge}&code_challenge_method=S256")
        expect(page.locator("#destination-host")).to_have_text("com.example.csp:")
        page.fill("#accountName", user)
        page.fill("#accountSecret", STRONG_PASSWORD)
        page.click("#submit")
        expect(page.locator("#open-app")).to_be_visible()
        assert page.locator("#open-app-link").get_attribute("href").startswith("com.example.csp:/cb?code=")
        assert urlsplit(page.url).path == "/login"
        assert page.evaluate("() => window.__csp") == []
    finally:
        context.close()


def test_device_and_account_pages_work_under_the_policy(live, user, chromium):
    start = requests.post(live.url + "/auth/device", data={"client_id": "csp-tv"}, timeout=10).json()
    context = watched(chromium)
    try:
        page = context.new_page()
        resp = page.goto(f"{live.url}/device/?code={start['user_code']}")
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        page.fill("#accountName", user)
        page.fill("#accountSecret", STRONG_PASSWORD)
        page.click("#submit")
        expect(page.locator("#done")).to_contain_text("Device authorized")
        assert injected_script_runs(page) is False

        log_in_admin_form(page, live.url, user, STRONG_PASSWORD)
        expect(page).to_have_url(live.url + "/account/")
        page.fill("input[name=description]", "CSP laptop")
        with page.expect_navigation():
            page.get_by_role("button", name="Create").click()
        expect(page.locator("#new-secret")).to_contain_text("app_")
        resp = page.goto(live.url + "/account/")
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        assert injected_script_runs(page) is False
        assert page.evaluate("() => window.__csp") == ["script-src-elem"]
    finally:
        context.close()


def test_without_javascript_the_password_never_reaches_a_url(live, user, chromium):
    context = watched(chromium, java_script_enabled=False)
    try:
        page = context.new_page()
        for path in ("/login?client_id=csp-app&redirect_uri=https%3A%2F%2Fapp.example.net%2Fcb", "/device"):
            page.goto(live.url + path)
            page.fill("#accountName", user)
            page.fill("#accountSecret", STRONG_PASSWORD)
            if path == "/device":
                page.fill("#code", "ABCD-EFGH")
            with page.expect_navigation():
                page.click("#submit")
            assert STRONG_PASSWORD not in page.url and "accountSecret" not in page.url
            expect(page.locator("#refusal")).to_contain_text("needs JavaScript")
    finally:
        context.close()
