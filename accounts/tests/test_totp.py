"""Two-factor login (auth spec §6; OAuth spec §6.1-6.2): enrolment and removal on /account/,
the one-time code on /admin/login/ and /api/auth, fail-to-ban, and Basic auth of TOTP accounts.

Codes are computed with pyotp from the secret the page shows, as an authenticator app would.
Nothing of the project is mocked.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import time

import pyotp
import pytest
from django.test import Client

from accounts import credentials, login as account_login, totp as account_totp
from accounts.models import Account, Credential
from conftest import STRONG_PASSWORD
from registry import crypto
from registry import services as registry
from registry.models import AuditEvent
from security.models import BlockedIp, Security

IP = "203.0.113.9"
CB = "http://127.0.0.1:9999/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
PENDING = "_stalwart_totp_pending"


# --- helpers --------------------------------------------------------------------------------
def wrong_code(secret: str) -> str:
    """Six digits that no authenticator of `secret` would accept now (nor ±1 step)."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in valid)


def password_cred(account) -> Credential:
    return account.credentials.get(kind=Credential.Kind.PASSWORD)


def enrol(account) -> str:
    """Turn on TOTP through the service; returns the base32 secret."""
    url = account_totp.new_totp_url(account)
    secret = pyotp.parse_uri(url).secret
    account_totp.enable_totp(account, url, pyotp.TOTP(secret).now(), account)
    return secret


def page_secret(response) -> str:
    match = re.search(r'<code id="totp-secret"[^>]*>([A-Z2-7]+)</code>', response.content.decode())
    assert match, response.content.decode()
    return match.group(1)


def api_auth(client, **body):
    payload = {"type": "authCode", "clientId": "my-app", "redirectUri": CB, "codeChallenge": CHALLENGE,
               "codeChallengeMethod": "S256", **body}
    response = client.post("/api/auth", json.dumps(payload), content_type="application/json", REMOTE_ADDR=IP)
    assert response.status_code == 200, response.content
    return response.json()


def ban_after(count: int):
    registry.update(Security._declaration, 1, {"auth_ban_rate_count": count}, "test")


def basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


ECHO = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"x": 1}, "c"]]})


@pytest.fixture
def carol(make_account):
    return make_account("carol", description="Carol Example")


@pytest.fixture
def carol_client(carol):
    client = Client(REMOTE_ADDR=IP)
    assert client.login(username="carol@example.org", password=STRONG_PASSWORD)
    return client


def start(client):
    response = client.post("/account/two-factor/")
    assert response.status_code == 302 and response["Location"] == "/account/#two-factor"
    page = client.get("/account/")
    assert page.status_code == 200
    return page


# --- enrolment ------------------------------------------------------------------------------
class TestEnrolment:
    def test_page_says_off_and_offers_enrolment(self, carol_client):
        page = carol_client.get("/account/")
        html = page.content.decode()
        assert 'id="two-factor"' in html and "Two-factor login</h2>" in html
        assert re.search(r'id="totp-status".*?<strong>off</strong>', html, re.S)
        assert 'action="/account/two-factor/"' in html
        assert 'id="totp-secret"' not in html

    def test_start_shows_secret_url_and_qr_and_keeps_it_in_the_session_only(self, carol, carol_client):
        page = start(carol_client)
        html = page.content.decode()
        secret = page_secret(page)
        pending = carol_client.session[PENDING]
        assert pending["account"] == carol.pk
        # Encrypted in the session (issue 10, item 17): the session table never holds the seed.
        assert secret not in repr(pending) and pending["url"].startswith("fernet:")
        url = crypto.decrypt(pending["url"])
        parsed = pyotp.parse_uri(url)
        assert parsed.secret == secret and len(base64.b32decode(secret)) >= 16  # ≥128-bit secret
        assert parsed.digits == 6 and parsed.interval == 30
        assert url.startswith("otpauth://totp/")
        assert "carol%40example.org" in url or "carol@example.org" in url
        assert 'id="totp-url"' in html and secret in html
        assert "<svg" in html and 'class="qr"' in html  # the QR code, inline
        assert 'action="/account/two-factor/confirm/"' in html
        assert "no-store" in page["Cache-Control"]  # a page with a secret is never cached
        # Nothing stored yet: logins are unchanged.
        assert password_cred(carol).otp_url == ""
        account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP)
        # A reload shows the same pending secret; starting again makes a new one.
        assert page_secret(carol_client.get("/account/")) == secret
        assert page_secret(start(carol_client)) != secret

    def test_a_valid_first_code_turns_it_on(self, carol, carol_client):
        secret = page_secret(start(carol_client))
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        response = carol_client.post("/account/two-factor/confirm/", {
            "current_password": STRONG_PASSWORD, "code": pyotp.TOTP(secret).now()})
        assert response.status_code == 302 and response["Location"] == "/account/#two-factor"
        stored = password_cred(carol).otp_url
        assert stored and pyotp.parse_uri(stored).secret == secret
        assert PENDING not in carol_client.session
        page = carol_client.get("/account/")
        html = page.content.decode()
        assert re.search(r'id="totp-status".*?<strong>on</strong>', html, re.S)
        assert "Two-factor login is on." in html  # the message
        assert 'id="totp-secret"' not in html and secret not in html
        assert 'action="/account/two-factor/remove/"' in html
        events = list(AuditEvent.objects.filter(pk__gt=last).values_list("actor", "field", "old_value", "new_value"))
        assert events == [("carol@example.org", "otpAuth", None, "****")]
        # The password alone no longer logs in.
        with pytest.raises(account_login.MfaRequired):
            account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP)
        assert account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP,
                                     otp=pyotp.TOTP(secret).now()).account.pk == carol.pk

    def test_codes_with_spaces_are_accepted(self, carol, carol_client):
        secret = page_secret(start(carol_client))
        code = pyotp.TOTP(secret).now()
        carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                           "code": f"{code[:3]} {code[3:]}"})
        assert password_cred(carol).otp_url

    def test_a_wrong_first_code_enrols_nothing_and_says_so_inline(self, carol, carol_client):
        secret = page_secret(start(carol_client))
        response = carol_client.post("/account/two-factor/confirm/", {
            "current_password": STRONG_PASSWORD, "code": wrong_code(secret)})
        assert response.status_code == 200
        html = response.content.decode()
        assert "The code does not match" in html and 'class="errorlist"' in html
        assert page_secret(response) == secret  # the same secret, to try again
        assert password_cred(carol).otp_url == ""
        assert carol_client.session[PENDING]["url"]
        # ... and the right code afterwards works.
        carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                           "code": pyotp.TOTP(secret).now()})
        assert password_cred(carol).otp_url

    @pytest.mark.parametrize("code", ["", "12345", "abcdef", "123456789"])
    def test_malformed_codes_are_refused_by_the_form(self, carol, carol_client, code):
        start(carol_client)
        response = carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                                      "code": code})
        assert response.status_code == 200 and 'class="errorlist"' in response.content.decode()
        assert password_cred(carol).otp_url == ""

    def test_the_current_password_is_required_and_wrong_ones_count_towards_the_ban(self, carol, carol_client):
        ban_after(2)
        secret = page_secret(start(carol_client))
        for _ in range(2):
            response = carol_client.post("/account/two-factor/confirm/", {
                "current_password": "not-the-password", "code": pyotp.TOTP(secret).now()})
            assert response.status_code == 200
            assert "The current password is incorrect." in response.content.decode()
        assert password_cred(carol).otp_url == ""
        response = carol_client.post("/account/two-factor/confirm/", {
            "current_password": "not-the-password", "code": pyotp.TOTP(secret).now()})
        assert "Too Many Authentication Attempts" in response.content.decode()
        assert BlockedIp.objects.filter(address=IP).exists()
        assert password_cred(carol).otp_url == ""

    def test_an_app_password_is_no_current_password(self, carol, carol_client):
        _cred, app = credentials.create_secondary_credential(carol, Credential.Kind.APP_PASSWORD, carol,
                                                          description="phone")
        secret = page_secret(start(carol_client))
        response = carol_client.post("/account/two-factor/confirm/", {
            "current_password": app, "code": pyotp.TOTP(secret).now()})
        assert "The current password is incorrect." in response.content.decode()
        assert password_cred(carol).otp_url == ""

    def test_confirm_without_a_started_enrolment(self, carol, carol_client):
        response = carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                                      "code": "123456"}, follow=True)
        assert "Start the enrolment first" in response.content.decode()
        assert password_cred(carol).otp_url == ""

    def test_cancel_forgets_the_pending_secret(self, carol, carol_client):
        start(carol_client)
        response = carol_client.post("/account/two-factor/cancel/")
        assert response.status_code == 302
        assert PENDING not in carol_client.session
        assert 'id="totp-secret"' not in carol_client.get("/account/").content.decode()

    def test_a_pending_secret_of_another_account_is_ignored(self, carol, carol_client, make_account):
        start(carol_client)
        dave = make_account("dave")
        session = carol_client.session
        session[PENDING] = {"account": dave.pk, "url": session[PENDING]["url"]}
        session.save()
        response = carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                                      "code": "123456"}, follow=True)
        assert "Start the enrolment first" in response.content.decode()

    def test_start_when_already_on_is_refused(self, carol, carol_client):
        enrol(carol)
        url = password_cred(carol).otp_url
        response = carol_client.post("/account/two-factor/", follow=True)
        assert "already on" in response.content.decode()
        assert PENDING not in carol_client.session
        assert password_cred(carol).otp_url == url

    def test_the_secret_is_never_logged(self, carol, carol_client, caplog):
        caplog.set_level(logging.DEBUG)
        secret = page_secret(start(carol_client))
        carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                           "code": wrong_code(secret)})
        carol_client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                           "code": pyotp.TOTP(secret).now()})
        assert password_cred(carol).otp_url
        assert secret not in caplog.text
        assert not AuditEvent.objects.filter(new_value__icontains=secret).exists()

    def test_forms_need_csrf_tokens(self, carol):
        client = Client(enforce_csrf_checks=True, REMOTE_ADDR=IP)
        assert client.login(username="carol@example.org", password=STRONG_PASSWORD)
        for path in ("/account/two-factor/", "/account/two-factor/confirm/", "/account/two-factor/cancel/",
                     "/account/two-factor/remove/"):
            assert client.post(path, {"current_password": STRONG_PASSWORD, "code": "123456"}).status_code == 403
        assert PENDING not in client.session
        # With the token of the page, the same POST works.
        page = client.get("/account/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
        assert client.post("/account/two-factor/", {"csrfmiddlewaretoken": token}).status_code == 302
        assert client.session[PENDING]

    def test_get_is_not_allowed_and_anonymous_users_are_sent_to_log_in(self, carol, carol_client):
        assert carol_client.get("/account/two-factor/").status_code == 405
        anonymous = Client()
        response = anonymous.post("/account/two-factor/")
        assert response.status_code == 302 and "/admin/login/" in response["Location"]

    def test_recovery_admin_sees_no_two_factor_section(self, client, db, settings):
        settings.STALWART_RECOVERY_ADMIN = "recovery:Recovery-Secret-Phrase-42"
        assert client.login(username="recovery", password="Recovery-Secret-Phrase-42")
        response = client.post("/account/two-factor/", follow=True)
        assert response.status_code == 200
        assert PENDING not in client.session
        assert 'id="two-factor"' not in client.get("/account/").content.decode()


# --- removal --------------------------------------------------------------------------------
class TestRemoval:
    def test_password_and_current_code_remove_it(self, carol, carol_client):
        secret = enrol(carol)
        page = carol_client.get("/account/").content.decode()
        assert 'id="totp_current_password"' in page and 'id="totp_code"' in page
        response = carol_client.post("/account/two-factor/remove/", {
            "current_password": STRONG_PASSWORD, "code": pyotp.TOTP(secret).now()})
        assert response.status_code == 302
        assert password_cred(carol).otp_url == ""
        last = AuditEvent.objects.filter(field="otpAuth").order_by("-id").first()
        assert (last.actor, last.old_value, last.new_value) == ("carol@example.org", "****", None)
        html = carol_client.get("/account/").content.decode()
        assert "Two-factor login is off." in html
        assert re.search(r'id="totp-status".*?<strong>off</strong>', html, re.S)
        account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP)  # the password alone again

    @pytest.mark.parametrize("which", ["code", "password"])
    def test_a_wrong_code_or_password_removes_nothing(self, carol, carol_client, which):
        secret = enrol(carol)
        data = {"current_password": STRONG_PASSWORD, "code": pyotp.TOTP(secret).now()}
        data["code" if which == "code" else "current_password"] = (
            wrong_code(secret) if which == "code" else "not-the-password")
        response = carol_client.post("/account/two-factor/remove/", data)
        assert response.status_code == 200
        assert "The current password or the code is incorrect." in response.content.decode()
        assert password_cred(carol).otp_url

    def test_the_code_is_required(self, carol, carol_client):
        enrol(carol)
        response = carol_client.post("/account/two-factor/remove/", {"current_password": STRONG_PASSWORD})
        assert response.status_code == 200 and "This field is required." in response.content.decode()
        assert password_cred(carol).otp_url

    def test_an_app_password_does_not_remove_it(self, carol, carol_client):
        secret = enrol(carol)
        _cred, app = credentials.create_secondary_credential(carol, Credential.Kind.APP_PASSWORD, carol,
                                                          description="phone")
        response = carol_client.post("/account/two-factor/remove/", {"current_password": app,
                                                                     "code": wrong_code(secret)})
        assert response.status_code == 200
        assert password_cred(carol).otp_url

    def test_wrong_codes_count_towards_the_ban(self, carol, carol_client):
        ban_after(2)
        secret = enrol(carol)
        for _ in range(2):
            carol_client.post("/account/two-factor/remove/", {"current_password": STRONG_PASSWORD,
                                                              "code": wrong_code(secret)})
        response = carol_client.post("/account/two-factor/remove/", {"current_password": STRONG_PASSWORD,
                                                                     "code": wrong_code(secret)})
        assert "Too Many Authentication Attempts" in response.content.decode()
        assert BlockedIp.objects.filter(address=IP).exists()
        # Banned: the address is refused before any page now (403), even with the right code.
        response = carol_client.post("/account/two-factor/remove/", {"current_password": STRONG_PASSWORD,
                                                                      "code": pyotp.TOTP(secret).now()})
        assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
        assert password_cred(carol).otp_url


# --- the web admin login ----------------------------------------------------------------------
class TestAdminLogin:
    def post(self, client, **data):
        return client.post("/admin/login/", {"username": "carol@example.org", "password": STRONG_PASSWORD, **data},
                           REMOTE_ADDR=IP)

    def test_the_form_has_an_optional_code_field(self, client, carol):
        html = client.get("/admin/login/").content.decode()
        assert 'name="otp"' in html and 'autocomplete="one-time-code"' in html
        # Accounts without TOTP log in as before, with or without a code.
        assert self.post(client)["Location"] == "/account/"
        client.logout()
        assert self.post(client, otp="123456")["Location"] == "/account/"

    def test_totp_account_is_asked_for_the_code(self, client, carol):
        secret = enrol(carol)
        response = self.post(client)
        assert response.status_code == 200
        assert not response.wsgi_request.user.is_authenticated
        assert '<p class="errornote">\n    Enter the one-time code from your authenticator.' in \
            response.content.decode()
        response = self.post(client, otp=wrong_code(secret))
        assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
        assert "Please enter a correct login, password and one-time code." in response.content.decode()
        # A wrong password with a right code fails the same way.
        response = self.post(client, password="not-the-password", otp=pyotp.TOTP(secret).now())
        assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
        response = self.post(client, otp=pyotp.TOTP(secret).now())
        assert response.status_code == 302 and response["Location"] == "/account/"
        assert client.get("/account/").status_code == 200

    def test_a_wrong_password_does_not_reveal_that_a_code_is_needed(self, client, carol):
        enrol(carol)
        response = self.post(client, password="not-the-password")
        html = response.content.decode()
        assert "one-time code from your authenticator" not in html
        assert "Please enter a correct" in html

    def test_administrator_with_totp_reaches_the_admin(self, client, admin_account):
        secret = enrol(admin_account)
        response = client.post("/admin/login/", {"username": "admin", "password": STRONG_PASSWORD,
                                                 "otp": pyotp.TOTP(secret).now(), "next": "/admin/"})
        assert response.status_code == 302 and response["Location"] == "/admin/"

    def test_everyone_can_log_out(self, carol, admin_account):
        # The account page's "Log out" posts to the admin's logout, which Django refuses to those
        # without admin access unless the site says otherwise.
        for login in ("carol@example.org", "admin@example.org"):
            client = Client(enforce_csrf_checks=True)
            assert client.login(username=login, password=STRONG_PASSWORD)
            assert client.post("/admin/logout/").status_code == 403  # CSRF still applies
            client.get("/account/")
            response = client.post("/admin/logout/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
            assert response.status_code == 200 and "no-store" in response["Cache-Control"]
            assert client.get("/account/").status_code == 302

    def test_django_test_client_login_passes_the_code(self, client, carol):
        secret = enrol(carol)
        assert not client.login(username="carol@example.org", password=STRONG_PASSWORD)
        assert client.login(username="carol@example.org", password=STRONG_PASSWORD, otp=pyotp.TOTP(secret).now())

    def test_wrong_codes_count_towards_the_ban_and_missing_ones_do_not(self, client, carol):
        ban_after(2)
        secret = enrol(carol)
        for _ in range(5):  # mfaRequired: never counted
            assert "Enter the one-time code" in self.post(client).content.decode()
        assert not BlockedIp.objects.filter(address=IP).exists()
        for _ in range(2):
            self.post(client, otp=wrong_code(secret))
        assert not BlockedIp.objects.filter(address=IP).exists()
        response = self.post(client, otp=wrong_code(secret))
        assert "Too Many Authentication Attempts" in response.content.decode()
        assert BlockedIp.objects.filter(address=IP).exists()
        response = self.post(client, otp=pyotp.TOTP(secret).now())
        assert response.status_code == 403 and "_auth_user_id" not in client.session


# --- /api/auth (the /login and /device pages) ---------------------------------------------------
class TestApiAuth:
    def test_mfa_required_then_authenticated_with_the_code(self, client, carol):
        secret = enrol(carol)
        assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD) == {
            "type": "mfaRequired"}
        assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD,
                        mfaToken=None) == {"type": "mfaRequired"}
        assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD,
                        mfaToken=wrong_code(secret)) == {"type": "failure"}
        ok = api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD,
                      mfaToken=pyotp.TOTP(secret).now())
        assert ok["type"] == "authenticated" and re.fullmatch(r"[A-Za-z0-9]{40}", ok["client_code"])
        assert ok["iss"]

    def test_a_wrong_password_is_a_failure_not_mfa_required(self, client, carol):
        secret = enrol(carol)
        assert api_auth(client, accountName="carol@example.org", accountSecret="nope") == {"type": "failure"}
        assert api_auth(client, accountName="carol@example.org", accountSecret="nope",
                        mfaToken=pyotp.TOTP(secret).now()) == {"type": "failure"}

    def test_accounts_without_totp_ignore_a_code(self, client, carol):
        assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD,
                        mfaToken="123456")["type"] == "authenticated"

    def test_device_authorization_asks_for_the_code_too(self, client, carol):
        secret = enrol(carol)
        start_ = client.post("/auth/device", {"client_id": "tv", "scope": "openid"}).json()
        body = {"type": "authDevice", "accountName": "carol", "accountSecret": STRONG_PASSWORD,
                "code": start_["user_code"]}

        def post(**extra):
            return client.post("/api/auth", json.dumps({**body, **extra}), content_type="application/json",
                               REMOTE_ADDR=IP).json()

        assert post() == {"type": "mfaRequired"}
        assert post(mfaToken=wrong_code(secret)) == {"type": "failure"}
        assert post(mfaToken=pyotp.TOTP(secret).now()) == {"type": "verified"}

    def test_wrong_codes_count_towards_the_ban_and_mfa_required_does_not(self, client, carol):
        ban_after(2)
        secret = enrol(carol)
        for _ in range(6):
            assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD) == {
                "type": "mfaRequired"}
        assert not BlockedIp.objects.filter(address=IP).exists()
        for _ in range(3):
            assert api_auth(client, accountName="carol@example.org", accountSecret=STRONG_PASSWORD,
                            mfaToken=wrong_code(secret)) == {"type": "failure"}
        blocked = BlockedIp.objects.get(address=IP)
        assert blocked.reason == BlockedIp.Reason.AUTH_FAILURE
        # Banned: the address is refused before the endpoint, the right code no longer helps.
        response = client.post("/api/auth", {"type": "authCode", "accountName": "carol@example.org",
                                             "accountSecret": STRONG_PASSWORD, "mfaToken": pyotp.TOTP(secret).now()},
                               content_type="application/json", REMOTE_ADDR=IP)
        assert response.status_code == 403


class TestServices:
    def test_wrong_code_raises_auth_failed_and_counts(self, carol):
        ban_after(1)
        secret = enrol(carol)
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP, otp=wrong_code(secret))
        with pytest.raises(account_login.Banned):
            account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP, otp=wrong_code(secret))

    def test_mfa_required_is_402_and_does_not_count(self, carol):
        ban_after(1)
        enrol(carol)
        for _ in range(5):
            with pytest.raises(account_login.MfaRequired) as exc:
                account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP)
            assert exc.value.status == 402 and not exc.value.counts_towards_ban
        assert not BlockedIp.objects.filter(address=IP).exists()

    def test_disable_turns_it_off(self, carol):
        enrol(carol)
        account_totp.disable_totp(carol, carol)
        assert account_login.authenticate("carol@example.org", STRONG_PASSWORD, IP).account.pk == carol.pk


# --- HTTP Basic on the API ------------------------------------------------------------------------
class TestBasicAuth:
    def jmap(self, client, authorization):
        return client.post("/jmap/", ECHO, content_type="application/json", HTTP_AUTHORIZATION=authorization,
                           REMOTE_ADDR=IP)

    def test_password_gets_402_while_an_app_password_works(self, client, carol):
        header = basic("carol@example.org", STRONG_PASSWORD)
        assert self.jmap(client, header).status_code == 200  # before: works (and the verdict is cached)
        enrol(carol)
        response = self.jmap(client, header)
        assert response.status_code == 402
        assert response["Content-Type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == 402 and body["title"] == "MFA code required"
        assert body["detail"] == "MFA code required"
        assert client.get("/jmap/session", HTTP_AUTHORIZATION=header, REMOTE_ADDR=IP).status_code == 402
        _cred, app = credentials.create_secondary_credential(carol, Credential.Kind.APP_PASSWORD, carol,
                                                          description="Thunderbird")
        ok = self.jmap(client, basic("carol@example.org", app))
        assert ok.status_code == 200 and ok.json()["methodResponses"][0][0] == "Core/echo"

    def test_402_does_not_count_towards_the_ban(self, client, carol):
        ban_after(1)
        enrol(carol)
        header = basic("carol@example.org", STRONG_PASSWORD)
        for _ in range(4):
            assert self.jmap(client, header).status_code == 402
        assert not BlockedIp.objects.filter(address=IP).exists()

    def test_a_wrong_password_is_still_401(self, client, carol):
        enrol(carol)
        assert self.jmap(client, basic("carol@example.org", "not-the-password")).status_code == 401

    def test_removing_it_restores_password_logins(self, client, carol):
        enrol(carol)
        header = basic("carol@example.org", STRONG_PASSWORD)
        assert self.jmap(client, header).status_code == 402
        account_totp.disable_totp(carol, carol)
        assert self.jmap(client, header).status_code == 200


def test_accounts_are_users_here(carol):
    # Sanity for the fixtures above: carol is an ordinary user with a password credential.
    assert carol.kind == Account.Kind.USER and password_cred(carol).otp_url == ""
