"""End to end, in Chromium against gunicorn: two-factor login.

A user enrols TOTP on /account/ (the secret is read from the page and the codes computed with
pyotp, as an authenticator app would), logs out, and signs in again on the OAuth /login page,
which asks for the one-time code and then sends the browser to the client's redirect URI with
the code and the issuer; the code is then exchanged for tokens. The /device page and the
administration login page ask for the code too, and removing TOTP brings back password logins.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import requests
from playwright.sync_api import expect

from tests.browser import log_in_admin_form
from tests.clients import STRONG_PASSWORD
from tests.live import LiveServer

DOMAIN = "totp.example"


def make_user(server: LiveServer) -> str:
    """A fresh ordinary user of its own domain; returns its login."""
    name = f"tina{secrets.token_hex(3)}"
    return server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "TOTP tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user",
                                 "description": "Tina Two-Factor"}}, "test", password={STRONG_PASSWORD!r})
result = acct.email_address
""")


def otp_url_of(server: LiveServer, login: str) -> str:
    return server.shell_json(f"""
from accounts.models import Credential
result = Credential.objects.get(account__email_address={login!r}, kind="password").otp_url
""")


def fresh_code(secret: str) -> str:
    """The current code, not within two seconds of a step change (so that it is still valid when
    the server checks it, even without the ±1 step the server allows)."""
    totp = pyotp.TOTP(secret)
    if totp.interval - time.time() % totp.interval < 2:
        time.sleep(2.5)
    return totp.now()


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def enrol_on_account_page(page, base_url: str, login: str) -> str:
    """Log in, enrol TOTP on /account/ through the page; returns the secret it showed."""
    log_in_admin_form(page, base_url, login, STRONG_PASSWORD)
    expect(page).to_have_url(base_url + "/account/")
    section = page.locator("#two-factor")
    expect(section.locator("h2")).to_have_text("Two-factor login")
    expect(page.locator("#totp-status")).to_contain_text("Two-factor login is off")
    with page.expect_navigation():
        section.get_by_role("button", name="Set up two-factor login").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32,}", secret), secret
    expect(page.locator("#two-factor .qr svg")).to_be_visible()
    page.locator("#two-factor details summary").click()
    url = page.locator("#totp-url").inner_text().strip()
    assert url.startswith("otpauth://totp/") and pyotp.parse_uri(url).secret == secret, url

    # A wrong first code: an inline error, nothing enrolled, the same secret still shown.
    page.fill("#totp_current_password", STRONG_PASSWORD)
    page.fill("#totp_code", wrong_code(secret))
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.locator("#totp-confirm .errorlist")).to_contain_text("The code does not match")
    expect(page.locator("#totp-secret")).to_have_text(secret)
    expect(page.locator("#totp-status")).to_contain_text("Two-factor login is off")

    page.fill("#totp_current_password", STRONG_PASSWORD)
    page.fill("#totp_code", fresh_code(secret))
    with page.expect_navigation():
        page.get_by_role("button", name="Turn on two-factor login").click()
    expect(page.locator("#totp-status")).to_contain_text("Two-factor login is on")
    expect(page.locator("ul.messages li.success")).to_contain_text("Two-factor login is on.")
    expect(page.locator("#totp-secret")).to_have_count(0)
    return secret


def log_out(page) -> None:
    with page.expect_navigation():
        page.locator("header").get_by_role("button", name="Log out").click()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@pytest.fixture
def user(live):
    return make_user(live)


def test_enrol_then_oauth_login_asks_for_the_code_and_redirects_with_code_and_iss(live, user, chromium):
    def body(page):
        secret = enrol_on_account_page(page, live.url, user)
        stored = otp_url_of(live, user)
        assert pyotp.parse_uri(stored).secret == secret
        log_out(page)

        verifier, challenge = pkce()
        redirect_uri = f"{live.url}/cb"
        page.goto(f"{live.url}/login?client_id=x&redirect_uri={redirect_uri}&code_challenge={challenge}"
                  "&code_challenge_method=S256&state=st-42&scope=openid")
        expect(page.locator("#mfa")).to_be_hidden()
        page.fill("#accountName", user)
        page.fill("#accountSecret", STRONG_PASSWORD)
        page.click("#submit")
        # mfaRequired: the page shows the code field and says what it needs.
        expect(page.locator("#mfaToken")).to_be_visible()
        expect(page.locator("#error")).to_have_text("Enter the one-time code from your authenticator.")
        expect(page.locator("#mfaToken")).to_be_focused()

        # A wrong code (six digits send the form by themselves): failure, the field is emptied.
        page.locator("#mfaToken").press_sequentially(wrong_code(secret))
        expect(page.locator("#error")).to_contain_text("one-time code is wrong")
        expect(page.locator("#mfaToken")).to_have_value("")
        assert urlsplit(page.url).path == "/login"

        # The right code: the browser goes to the redirect URI with code, state and iss.
        with page.expect_navigation(url=re.compile(r"/cb\?")):
            page.locator("#mfaToken").press_sequentially(fresh_code(secret))
        target = urlsplit(page.url)
        assert f"{target.scheme}://{target.netloc}{target.path}" == redirect_uri
        query = parse_qs(target.query)
        assert re.fullmatch(r"[A-Za-z0-9]{40}", query["code"][0]), query
        assert query["state"] == ["st-42"]
        assert query["iss"] == [live.url], query

        # The code is good: the token endpoint exchanges it, and the token opens the JMAP session.
        token = requests.post(live.url + "/auth/token", data={
            "grant_type": "authorization_code", "code": query["code"][0], "client_id": "x",
            "redirect_uri": redirect_uri, "code_verifier": verifier}, timeout=10)
        assert token.status_code == 200, token.text
        access = token.json()["access_token"]
        session = requests.get(live.url + "/jmap/session", headers={"Authorization": f"Bearer {access}"}, timeout=10)
        assert session.status_code == 200 and session.json()["username"] == user

        # Meanwhile the password alone is refused on Basic auth with 402.
        basic = requests.get(live.url + "/jmap/session", auth=(user, STRONG_PASSWORD), timeout=10)
        assert basic.status_code == 402 and basic.headers["Content-Type"] == "application/problem+json"
        assert basic.json()["title"] == "MFA code required"

    chromium.run(body)


def test_admin_login_page_asks_for_the_code_and_removal_restores_password_logins(live, user, chromium):
    def body(page):
        secret = enrol_on_account_page(page, live.url, user)
        log_out(page)

        log_in_admin_form(page, live.url, user, STRONG_PASSWORD)
        expect(page).to_have_url(re.compile(r"/admin/login/"))
        expect(page.locator(".errornote")).to_have_text("Enter the one-time code from your authenticator.")
        expect(page.locator("label[for=id_otp]")).to_have_text("One-time code:")

        log_in_admin_form(page, live.url, user, STRONG_PASSWORD, otp=wrong_code(secret))
        expect(page.locator(".errornote")).to_have_text("Please enter a correct login, password and one-time code.")

        log_in_admin_form(page, live.url, user, STRONG_PASSWORD, otp=fresh_code(secret))
        expect(page).to_have_url(live.url + "/account/")
        expect(page.locator("#totp-status")).to_contain_text("Two-factor login is on")

        # Removal needs the password and a current code.
        form = page.locator("#totp-remove")
        form.locator("#totp_current_password").fill(STRONG_PASSWORD)
        form.locator("#totp_code").fill(wrong_code(secret))
        with page.expect_navigation():
            form.get_by_role("button", name="Remove two-factor login").click()
        expect(page.locator("#totp-remove .errorlist")).to_contain_text("The current password or the code is incorrect.")
        expect(page.locator("#totp-status")).to_contain_text("Two-factor login is on")
        assert otp_url_of(live, user)

        form.locator("#totp_current_password").fill(STRONG_PASSWORD)
        form.locator("#totp_code").fill(fresh_code(secret))
        with page.expect_navigation():
            form.get_by_role("button", name="Remove two-factor login").click()
        expect(page.locator("#totp-status")).to_contain_text("Two-factor login is off")
        assert otp_url_of(live, user) == ""
        log_out(page)
        log_in_admin_form(page, live.url, user, STRONG_PASSWORD)
        expect(page).to_have_url(live.url + "/account/")
        assert requests.get(live.url + "/jmap/session", auth=(user, STRONG_PASSWORD), timeout=10).status_code == 200

    chromium.run(body)


def test_device_page_asks_for_the_code(live, user, chromium):
    def body(page):
        secret = enrol_on_account_page(page, live.url, user)
        log_out(page)
        start = requests.post(live.url + "/auth/device", data={"client_id": "tv", "scope": "openid"}, timeout=10).json()
        page.goto(start["verification_uri_complete"])
        expect(page.locator("#code")).to_have_value(start["user_code"])
        page.fill("#accountName", user)
        page.fill("#accountSecret", STRONG_PASSWORD)
        page.click("#submit")
        expect(page.locator("#error")).to_have_text("Enter the one-time code from your authenticator.")
        page.locator("#mfaToken").press_sequentially(fresh_code(secret))
        expect(page.locator("#done")).to_contain_text("Device authorized")
        tokens = requests.post(live.url + "/auth/token", data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": start["device_code"],
            "client_id": "tv"}, timeout=10)
        assert tokens.status_code == 200, tokens.text

    chromium.run(body)
