"""Fail-to-ban on authentication failures (auth spec §7.4, §10, §14)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import credentials, hashing, login as account_login
from accounts.models import Credential
from conftest import STRONG_PASSWORD
from registry import services as registry
from registry.models import AuditEvent
from security import services as security
from security.models import AllowedIp, BlockedIp, Security

ATTACKER = "203.0.113.7"
OTHER = "203.0.113.99"
THIRD = "198.51.100.23"


@pytest.fixture
def bob(make_account):
    return make_account("bob")


@pytest.fixture
def thresholds(db):
    def configure(count=3, period=timedelta(hours=1), ban=timedelta(minutes=30)):
        return registry.update(Security._declaration, 1, {
            "auth_ban_rate_count": count, "auth_ban_rate_period": period, "auth_ban_period": ban,
        }, "test")

    return configure


def fail(login="bob@example.org", ip=ATTACKER, secret="wrong-password"):
    """One failed login; returns the exception class raised."""
    with pytest.raises(account_login.AuthError) as exc:
        account_login.authenticate(login, secret, ip)
    return exc.value


def blocked(address):
    return BlockedIp.objects.filter(address=address).first()


class TestCounting:
    def test_defaults(self, db):
        settings = Security.load()
        assert settings.auth_ban_rate_count == 100
        assert settings.auth_ban_rate_period == timedelta(days=1)
        assert settings.auth_ban_period is None

    def test_ip_is_banned_past_the_threshold(self, bob, thresholds):
        thresholds(count=3, ban=timedelta(minutes=30))
        for _ in range(3):
            exc = fail()
            assert type(exc) is account_login.AuthFailed
            assert exc.status == 401
        assert blocked(ATTACKER) is None
        assert not security.is_blocked(ATTACKER)

        before = timezone.now()
        exc = fail()
        assert type(exc) is account_login.Banned
        assert exc.status == 429
        assert str(exc) == "Too Many Authentication Attempts"
        row = blocked(ATTACKER)
        assert row is not None
        assert row.reason == BlockedIp.Reason.AUTH_FAILURE == "authFailure"
        assert before + timedelta(minutes=30) - timedelta(seconds=5) <= row.expires_at
        assert row.expires_at <= timezone.now() + timedelta(minutes=30)
        assert security.is_blocked(ATTACKER)
        # Audited as a BlockedIp creation by fail-to-ban.
        assert AuditEvent.objects.filter(object_type="BlockedIp", action="create", actor="fail-to-ban").exists()

        # Further attempts are refused, even with the right password.
        exc = fail(secret=STRONG_PASSWORD)
        assert type(exc) is account_login.Banned and exc.status == 429
        # Other addresses are unaffected.
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, OTHER).account.pk == bob.pk

    def test_ban_without_period_lasts_until_removed(self, bob, thresholds):
        thresholds(count=2, ban=None)
        for _ in range(2):
            assert type(fail()) is account_login.AuthFailed
        assert type(fail()) is account_login.Banned
        row = blocked(ATTACKER)
        assert row.expires_at is None and row.reason == "authFailure"
        # Removing the entry lifts the ban.
        registry.destroy(BlockedIp._declaration, row.pk, "test")
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, ATTACKER).account.pk == bob.pk

    def test_expired_ban_no_longer_applies(self, bob, thresholds):
        thresholds(count=1)
        fail()
        assert type(fail()) is account_login.Banned
        row = blocked(ATTACKER)
        registry.update(BlockedIp._declaration, row.pk, {"expires_at": timezone.now() - timedelta(seconds=1)}, "test")
        assert not security.is_blocked(ATTACKER)
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, ATTACKER).account.pk == bob.pk

    def test_unknown_logins_count_too(self, bob, thresholds):
        thresholds(count=2)
        fail("nobody@example.org")
        fail("ghost@nowhere.test")
        assert type(fail("bob")) is account_login.Banned

    def test_successes_do_not_count_and_do_not_reset(self, bob, thresholds):
        thresholds(count=2)
        fail()
        account_login.authenticate("bob@example.org", STRONG_PASSWORD, ATTACKER)
        fail()
        account_login.authenticate("bob@example.org", STRONG_PASSWORD, ATTACKER)
        assert type(fail()) is account_login.Banned

    def test_per_login_counter_bans_a_second_ip(self, bob, thresholds):
        thresholds(count=3)
        fail(ip=ATTACKER)
        fail(ip=ATTACKER)
        # Same login from another address: the IP counter of OTHER is at 1 and 2, but the
        # login counter reaches 3 and then 4.
        assert type(fail(ip=OTHER)) is account_login.AuthFailed
        assert blocked(OTHER) is None
        exc = fail(ip=OTHER)
        assert type(exc) is account_login.Banned
        assert blocked(OTHER).reason == "authFailure"
        # ATTACKER has not passed its own counter, yet its next failure on the same login bans it too.
        assert blocked(ATTACKER) is None
        assert type(fail(ip=ATTACKER)) is account_login.Banned
        assert blocked(ATTACKER) is not None
        # A third address trying the right password is fine: the account is not locked.
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, THIRD).account.pk == bob.pk
        assert blocked(THIRD) is None

    def test_login_key_is_case_insensitive(self, bob, thresholds):
        thresholds(count=2)
        fail("Bob@Example.org", ip=ATTACKER)
        fail("BOB@EXAMPLE.ORG", ip=OTHER)
        assert type(fail("bob@example.org", ip=THIRD)) is account_login.Banned

    def test_window_resets(self, bob, thresholds):
        thresholds(count=2, period=timedelta(seconds=1))
        fail()
        fail()
        time.sleep(1.1)
        fail()
        fail()
        assert blocked(ATTACKER) is None
        # Within one window the third failure bans (the control).
        thresholds(count=2, period=timedelta(hours=1))
        fail(ip=OTHER)
        fail(ip=OTHER)
        assert type(fail(ip=OTHER)) is account_login.Banned

    def test_empty_rate_disables(self, bob, thresholds):
        thresholds(count=None)
        for _ in range(25):
            assert type(fail()) is account_login.AuthFailed
        assert not BlockedIp.objects.exists()
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, ATTACKER).account.pk == bob.pk

    def test_manual_block_is_enforced_even_when_counting_is_disabled(self, bob, thresholds):
        thresholds(count=None)
        registry.create(BlockedIp._declaration, {"address": "203.0.113.0/24", "reason": "manual"}, "test")
        assert type(fail(secret=STRONG_PASSWORD)) is account_login.Banned
        with pytest.raises(account_login.Banned):
            account_login.authenticate_bearer("API_whatever", ATTACKER)


class TestWhatCounts:
    def test_ip_unauthorized_counts(self, bob, thresholds):
        thresholds(count=2)
        _, token = credentials.create_secondary_credential(bob, Credential.Kind.APP_PASSWORD, bob,
                                                        description="office only", allowed_ips=["192.0.2.0/24"])
        for _ in range(2):
            assert type(fail(secret=token)) is account_login.IpUnauthorized
        assert type(fail(secret=token)) is account_login.Banned

    def test_expired_credentials_do_not_count(self, bob, thresholds):
        thresholds(count=2)
        cred, token = credentials.create_secondary_credential(
            bob, Credential.Kind.APP_PASSWORD, bob, description="old", expires_at=timezone.now() + timedelta(days=1))
        Credential.objects.filter(pk=cred.pk).update(expires_at=timezone.now() - timedelta(days=1))
        for _ in range(6):
            assert type(fail(secret=token)) is account_login.CredentialExpired
        assert blocked(ATTACKER) is None

    def test_missing_authenticate_permission_does_not_count(self, make_account, thresholds):
        make_account("bob", roles_mode="custom")
        thresholds(count=2)
        for _ in range(5):
            assert type(fail(secret=STRONG_PASSWORD)) is account_login.Unauthorized
        assert blocked(ATTACKER) is None

    def test_bearer_failures_count_per_ip(self, bob, thresholds):
        thresholds(count=2)
        for token in ("API_garbage", "not-even-a-key"):
            with pytest.raises(account_login.AuthFailed):
                account_login.authenticate_bearer(token, ATTACKER)
        with pytest.raises(account_login.Banned):
            account_login.authenticate_bearer("API_garbage", ATTACKER)
        assert blocked(ATTACKER).reason == "authFailure"
        # A valid key from the banned address is refused too.
        _, key = credentials.create_secondary_credential(bob, Credential.Kind.API_KEY, bob, description="k")
        with pytest.raises(account_login.Banned):
            account_login.authenticate_bearer(key, ATTACKER)
        assert account_login.authenticate_bearer(key, OTHER).account.pk == bob.pk


class TestNeverBanned:
    @pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
    def test_loopback(self, bob, thresholds, address):
        thresholds(count=1)
        for _ in range(10):
            assert type(fail(ip=address)) is account_login.AuthFailed
        assert not BlockedIp.objects.exists()
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, address).account.pk == bob.pk

    def test_allowed_ip(self, bob, thresholds):
        thresholds(count=1)
        registry.create(AllowedIp._declaration, {"address": "198.51.100.0/24", "description": "office"}, "test")
        for _ in range(10):
            assert type(fail(ip=THIRD)) is account_login.AuthFailed
        assert not BlockedIp.objects.exists()
        # An allowed address is not refused even if it is also listed as blocked.
        registry.create(BlockedIp._declaration, {"address": THIRD, "reason": "manual"}, "test")
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, THIRD).account.pk == bob.pk

    def test_allowed_ips_do_not_feed_the_login_counter(self, bob, thresholds):
        thresholds(count=2)
        registry.create(AllowedIp._declaration, {"address": "198.51.100.0/24"}, "test")
        for _ in range(5):
            fail(ip=THIRD)
        fail(ip="127.0.0.1")
        # The login counter was not advanced by the allowed and loopback failures.
        assert type(fail(ip=ATTACKER)) is account_login.AuthFailed
        assert type(fail(ip=ATTACKER)) is account_login.AuthFailed
        assert type(fail(ip=ATTACKER)) is account_login.Banned

    def test_expired_allowed_ip_no_longer_protects(self, bob, thresholds):
        thresholds(count=1)
        registry.create(AllowedIp._declaration, {"address": "198.51.100.0/24",
                                                 "expires_at": timezone.now() - timedelta(minutes=1)}, "test")
        fail(ip=THIRD)
        assert type(fail(ip=THIRD)) is account_login.Banned


class TestRefusedBeforeThePassword:
    def test_banned_ip_is_not_verified_nor_counted(self, bob, thresholds):
        thresholds(count=3)
        # ATTACKER: 3 failures on alice (unknown), then one on bob -> IP counter 4 -> banned.
        for _ in range(3):
            fail("alice@example.org")
        assert type(fail("bob@example.org")) is account_login.Banned  # bob's login counter: 1
        # Attempts from the banned address are refused before any check: bob's counter stays 1 ...
        for _ in range(5):
            assert type(fail("bob@example.org")) is account_login.Banned
        # ... so two failures from elsewhere (counter 3) do not pass bob's threshold.
        assert type(fail("bob@example.org", ip=OTHER)) is account_login.AuthFailed
        assert type(fail("bob@example.org", ip=OTHER)) is account_login.AuthFailed
        assert blocked(OTHER) is None

    def test_banned_ip_does_not_reach_the_hash(self, bob, thresholds):
        """A successful verification upgrades an old hash; from a banned address it does not happen."""
        thresholds(count=1)
        legacy = hashing.hash_secret(STRONG_PASSWORD, "pbkdf2")
        Credential.objects.filter(account=bob, kind=Credential.Kind.PASSWORD).update(secret_hash=legacy)
        fail()
        assert type(fail()) is account_login.Banned
        assert type(fail(secret=STRONG_PASSWORD)) is account_login.Banned
        stored = Credential.objects.get(account=bob, kind=Credential.Kind.PASSWORD).secret_hash
        assert stored == legacy
        # From elsewhere the same password is verified and the hash upgraded (the control).
        account_login.authenticate("bob@example.org", STRONG_PASSWORD, OTHER)
        stored = Credential.objects.get(account=bob, kind=Credential.Kind.PASSWORD).secret_hash
        assert stored.startswith("$argon2id$")


class TestLoginPage:
    def test_admin_login_page_shows_the_ban(self, client, admin_account, thresholds):
        thresholds(count=2)
        url = "/admin/login/?next=/admin/"
        for _ in range(2):
            response = client.post(url, {"username": "admin@example.org", "password": "nope"}, REMOTE_ADDR=ATTACKER)
            assert response.status_code == 200
            html = response.content.decode()
            assert "Too Many Authentication Attempts" not in html
            assert "errornote" in html
        response = client.post(url, {"username": "admin@example.org", "password": "nope"}, REMOTE_ADDR=ATTACKER)
        assert response.status_code == 200
        assert "Too Many Authentication Attempts" in response.content.decode()
        assert blocked(ATTACKER).reason == "authFailure"
        # The right password from the banned address: refused before the page (403), no session.
        response = client.post(url, {"username": "admin@example.org", "password": STRONG_PASSWORD},
                               REMOTE_ADDR=ATTACKER)
        assert response.status_code == 403 and response["Content-Type"] == "application/problem+json"
        assert "_auth_user_id" not in client.session
        assert client.get("/admin/", REMOTE_ADDR=ATTACKER).status_code == 403
        # From another address the administrator logs in.
        response = client.post(url, {"username": "admin@example.org", "password": STRONG_PASSWORD},
                               REMOTE_ADDR=OTHER)
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
        assert client.get("/admin/", REMOTE_ADDR=OTHER).status_code == 200

    def test_login_page_from_loopback_is_never_banned(self, client, admin_account, thresholds):
        thresholds(count=1)
        for _ in range(4):
            response = client.post("/admin/login/", {"username": "admin@example.org", "password": "nope"})
            assert "Too Many Authentication Attempts" not in response.content.decode()
        assert not BlockedIp.objects.exists()
        response = client.post("/admin/login/", {"username": "admin@example.org", "password": STRONG_PASSWORD})
        assert response.status_code == 302
