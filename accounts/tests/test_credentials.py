"""App passwords and API keys (auth spec §3.3, §5, §7, §8.3, §8.4, §14, §15).

Everything goes through the real services, views and admin pages; nothing of the project is
mocked.
"""
from __future__ import annotations

import base64
import re
import struct
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts import credentials, hashing, login as account_login, tokens
from accounts.authz import account_permissions, credential_permissions
from accounts.models import Account, Authentication, Credential
from conftest import STRONG_PASSWORD
from registry import errors
from registry import services as registry
from registry.models import AuditEvent

IP = "203.0.113.7"
APP = Credential.Kind.APP_PASSWORD
API = Credential.Kind.API_KEY
APP_ALPHABET = set("abcdefghijklmnopqrstuvwxyz792013")
B64URL_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _create(account, kind=APP, **kwargs):
    kwargs.setdefault("description", "Thunderbird on the laptop")
    return credentials.create_secondary_credential(account, kind, account, **kwargs)


def _credential_object_id(account, credential_id) -> set[str]:
    """How an audit event names a credential: "<account id>/<credential id>", both JMAP ids."""
    from registry import ids

    return {f"{ids.encode(account.pk)}/{ids.encode(credential_id)}"}


def _reference_app_encoding(raw: bytes) -> str:
    """An independent bit-by-bit port of the reference's base32 encoder (RFC 4648 order)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz792013"
    bits = "".join(f"{b:08b}" for b in raw)
    bits += "0" * (-len(bits) % 5)
    return "".join(alphabet[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


@pytest.fixture
def bob(make_account):
    return make_account("bob", description="Bob Example")


@pytest.fixture
def set_auth():
    def update(**values):
        return registry.update(Authentication._declaration, 1, values, "test")

    return update


# --- token formats ---------------------------------------------------------------------------
class TestTokenFormats:
    @pytest.mark.parametrize("credential_id", [0, 1, 7, 255, 65_536, 2**32 - 1])
    def test_app_password_shape_and_round_trip(self, credential_id):
        token, secret = tokens.new_app_password(credential_id)
        assert token.startswith("app_")
        assert len(token) == 40
        assert set(token[4:]) <= APP_ALPHABET
        assert len(secret) == 18
        # Exactly the reference encoding of (credentialId BE32 || secret).
        assert token[4:] == _reference_app_encoding(struct.pack(">I", credential_id) + secret)
        assert tokens.parse_app_password(token) == (credential_id, secret)

    def test_app_password_reference_example_parses(self):
        # The token of the reference's composed example (spec §5.3).
        parsed = tokens.parse_app_password("app_aaaaab9ezhlkrlbrahhs1babmkm71bf1tala")
        assert parsed is not None
        credential_id, secret = parsed
        assert len(secret) == 18
        token = "app_" + _reference_app_encoding(struct.pack(">I", credential_id) + secret)
        assert token == "app_aaaaab9ezhlkrlbrahhs1babmkm71bf1tala"

    def test_app_passwords_are_random(self):
        first, second = tokens.new_app_password(3), tokens.new_app_password(3)
        assert first[0] != second[0] and first[1] != second[1]
        # The credential id is the leading 4 bytes: same id -> same first 6 characters.
        assert first[0][:10] == second[0][:10]

    @pytest.mark.parametrize("account_id,credential_id", [(1, 0), (42, 3), (2**32 - 1, 2**32 - 1)])
    def test_api_key_shape_and_round_trip(self, account_id, credential_id):
        token, secret = tokens.new_api_key(account_id, credential_id)
        assert token.startswith("API_")
        assert len(token) == 42
        assert set(token[4:]) <= B64URL_ALPHABET
        assert len(secret) == 20
        expected = base64.urlsafe_b64encode(struct.pack(">II", account_id, credential_id) + secret).decode().rstrip("=")
        assert token[4:] == expected
        assert tokens.parse_api_key(token) == (account_id, credential_id, secret)

    @pytest.mark.parametrize("garbage", [
        "", "app", "app_", "app_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "hunter2", STRONG_PASSWORD,
        "API_" + "A" * 38, "xyz_aaaaab9ezhlkrlbrahhs1babmkm71bf1tala",
    ])
    def test_app_password_garbage(self, garbage):
        assert tokens.parse_app_password(garbage) is None

    def test_app_password_wrong_lengths(self):
        token, _ = tokens.new_app_password(5)
        assert tokens.parse_app_password(token[:-1]) is None
        assert tokens.parse_app_password(token[:-8]) is None
        assert tokens.parse_app_password(token + "a") is None
        assert tokens.parse_app_password(token + "aaaaaaaa") is None

    @pytest.mark.parametrize("garbage", [
        "", "API", "API_", "api_" + "A" * 38, "Bearer", STRONG_PASSWORD, "app_aaaaab9ezhlkrlbrahhs1babmkm71bf1tala",
        "API_" + "%" * 38,
    ])
    def test_api_key_garbage(self, garbage):
        assert tokens.parse_api_key(garbage) is None

    def test_api_key_wrong_lengths(self):
        token, _ = tokens.new_api_key(9, 2)
        assert tokens.parse_api_key(token[:-1]) is None
        assert tokens.parse_api_key(token[:-4]) is None
        assert tokens.parse_api_key(token + "A") is None
        assert tokens.parse_api_key(token + "AAAA") is None

    def test_the_two_kinds_do_not_parse_as_each_other(self):
        app, _ = tokens.new_app_password(1)
        api, _ = tokens.new_api_key(1, 1)
        assert tokens.parse_api_key(app) is None
        assert tokens.parse_app_password(api) is None


# --- storage -------------------------------------------------------------------------------------
class TestStorage:
    @pytest.mark.parametrize("kind", [APP, API])
    def test_only_a_hash_of_the_random_part_is_stored(self, bob, kind):
        cred, token = _create(bob, kind)
        row = Credential.objects.filter(pk=cred.pk).values().get()
        dumped = repr(row)
        assert token not in dumped
        assert token[4:] not in dumped
        assert row["secret_hash"].startswith("$argon2id$")
        # The hash is of the raw random bytes embedded in the token, not of the token text.
        raw = tokens.parse_app_password(token)[1] if kind == APP else tokens.parse_api_key(token)[2]
        assert hashing.verify_secret(raw, row["secret_hash"]) is True
        assert hashing.verify_secret(token, row["secret_hash"]) is False
        # Nor anywhere in the audit trail.
        for event in AuditEvent.objects.all():
            assert token not in repr((event.old_value, event.new_value, event.field))

    def test_credential_ids_follow_every_kind(self, bob):
        # Password is 0; app passwords and API keys share the counter (spec §5.3 step 1).
        first, _ = _create(bob, APP)
        second, _ = _create(bob, API)
        third, token = _create(bob, APP)
        assert [first.credential_id, second.credential_id, third.credential_id] == [1, 2, 3]
        assert tokens.parse_app_password(token)[0] == 3
        api_token = _create(bob, API)[1]
        assert tokens.parse_api_key(api_token)[:2] == (bob.pk, 4)

    def test_created_through_the_page_and_shown_once(self, client, bob):
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = client.post("/account/credentials/", {"kind": APP, "description": "Phone mail app"})
        assert response.status_code == 302
        assert response["Location"] == "/account/"
        cred = Credential.objects.get(account=bob, kind=APP)
        assert cred.description == "Phone mail app"

        page = client.get("/account/")
        assert page.status_code == 200
        html = page.content.decode()
        match = re.search(r'<code id="new-secret">([^<]+)</code>', html)
        assert match, "the new secret is shown right after creation"
        token = match.group(1)
        assert token.startswith("app_") and len(token) == 40
        assert tokens.parse_app_password(token)[0] == cred.credential_id
        # It works, and its hash is what the row holds.
        result = account_login.authenticate("bob@example.org", token, IP)
        assert result.credential.pk == cred.pk

        again = client.get("/account/")
        assert again.status_code == 200
        assert token not in again.content.decode()
        assert 'id="new-secret"' not in again.content.decode()
        # Nor does it linger in the session store once shown.
        for session in Session.objects.all():
            assert token not in repr(session.get_decoded())

    def test_api_key_created_through_the_page(self, client, bob):
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        client.post("/account/credentials/", {"kind": API, "description": "Backup script"})
        html = client.get("/account/").content.decode()
        token = re.search(r'<code id="new-secret">([^<]+)</code>', html).group(1)
        assert token.startswith("API_") and len(token) == 42
        assert tokens.parse_api_key(token)[0] == bob.pk
        assert account_login.authenticate_bearer(token, IP).account.pk == bob.pk

    def test_page_refuses_a_blank_description(self, client, bob):
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = client.post("/account/credentials/", {"kind": APP, "description": ""}, follow=True)
        assert response.status_code == 200
        assert not Credential.objects.filter(account=bob, kind=APP).exists()
        assert 'id="new-secret"' not in response.content.decode()

    def test_service_refuses_blank_description_and_past_expiry(self, bob):
        with pytest.raises(errors.ValidationFailed):
            _create(bob, APP, description="   ")
        with pytest.raises(errors.InvalidProperties):
            _create(bob, APP, expires_at=timezone.now() - timedelta(minutes=1))
        with pytest.raises(errors.InvalidProperties):
            _create(bob, API, allowed_ips=["not-an-ip"])
        assert not Credential.objects.filter(account=bob).exclude(kind=Credential.Kind.PASSWORD).exists()


# --- use at login -----------------------------------------------------------------------------
class TestLogin:
    def test_app_password_logs_in_like_a_password(self, bob, client):
        cred, token = _create(bob, APP)
        result = account_login.authenticate("bob@example.org", token, IP)
        assert result.account.pk == bob.pk
        assert result.credential.pk == cred.pk
        assert result.credential.kind == APP
        # Bare login names take the default domain, as with passwords.
        assert account_login.authenticate("bob", token, IP).credential.pk == cred.pk
        assert account_login.authenticate(" BOB@Example.org ", token, IP).credential.pk == cred.pk
        # The password still works too.
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, IP).credential.kind == Credential.Kind.PASSWORD
        # And the web login.
        assert client.login(username="bob@example.org", password=token)
        assert client.get("/account/").status_code == 200

    def test_web_session_opened_with_an_app_password_keeps_its_scope(self, client, admin_account):
        management_reads = sorted(p for p in account_permissions(admin_account)
                                  if p.startswith("sys") and p.endswith(("Get", "Query")))
        cred, token = _create(admin_account, APP, description="mail client", permissions_mode="disable",
                              permissions=management_reads + ["sysAppPasswordCreate", "sysApiKeyCreate"])
        assert client.login(username="admin@example.org", password=token)
        # Not an administrator through this credential, whatever the account may do.
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        assert client.get("/admin/accounts/account/").status_code == 302
        page = client.get("/account/")
        assert page.status_code == 200
        assert 'action="/account/credentials/"' not in page.content.decode()
        client.post("/account/credentials/", {"kind": API, "description": "escalation"})
        assert not admin_account.credentials.filter(kind=API).exists()
        # The same browser logging in with the password gets the account's full scope.
        assert client.login(username="admin@example.org", password=STRONG_PASSWORD)
        assert client.get("/admin/").status_code == 200

    def test_web_session_ends_when_its_app_password_is_revoked_or_expires(self, client, bob):
        cred, token = _create(bob, APP)
        assert client.login(username="bob@example.org", password=token)
        assert client.get("/account/").status_code == 200
        Credential.objects.filter(pk=cred.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        response = client.get("/account/")
        assert response.status_code == 302 and "/login/" in response["Location"]

        cred, token = _create(bob, APP)
        assert client.login(username="bob@example.org", password=token)
        assert client.get("/account/").status_code == 200
        credentials.revoke_credential(bob, cred.credential_id, bob)
        response = client.get("/account/")
        assert response.status_code == 302 and "/login/" in response["Location"]

    def test_web_session_respects_allowed_ips(self, client, bob):
        _, token = _create(bob, APP, allowed_ips=["192.0.2.0/24"])
        response = client.post("/admin/login/", {"username": "bob@example.org", "password": token},
                               REMOTE_ADDR="192.0.2.10")
        assert response.status_code == 302
        assert client.get("/account/", REMOTE_ADDR="192.0.2.10").status_code == 200
        response = client.get("/account/", REMOTE_ADDR=IP)
        assert response.status_code == 302 and "/login/" in response["Location"]

    def test_app_password_is_bound_to_its_account(self, bob, make_account):
        alice = make_account("alice")
        _, alice_token = _create(alice, APP)
        bob_cred, _ = _create(bob, APP)
        # Same credential number in both accounts; alice's secret must not open bob's.
        assert tokens.parse_app_password(alice_token)[0] == bob_cred.credential_id
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("bob@example.org", alice_token, IP)
        assert account_login.authenticate("alice@example.org", alice_token, IP).account.pk == alice.pk

    def test_tampered_app_password_fails(self, bob):
        cred, token = _create(bob, APP)
        credential_id, secret = tokens.parse_app_password(token)
        forged = "app_" + _reference_app_encoding(struct.pack(">I", credential_id) + bytes(18))
        with pytest.raises(account_login.AuthFailed) as exc:
            account_login.authenticate("bob@example.org", forged, IP)
        assert exc.value.status == 401
        # Pointing at the password credential (id 0) with a valid-looking token fails too.
        at_password = "app_" + _reference_app_encoding(struct.pack(">I", 0) + secret)
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("bob@example.org", at_password, IP)

    def test_tokens_only_match_their_own_kind(self, make_account):
        """A token pointing at another kind of credential fails even when its bytes would verify."""
        password18 = "Quartz-Lantern-91x"  # 18 bytes: the size of an app password's secret
        password20 = "Quartz-Lantern-91xyz"  # 20 bytes: the size of an API key's secret
        carol = make_account("carol", password=password18)
        dave = make_account("dave", password=password20)
        # An app-password token whose credential number is the password's (0) and whose random
        # part is the password itself.
        app_at_password = "app_" + _reference_app_encoding(struct.pack(">I", 0) + password18.encode())
        assert tokens.parse_app_password(app_at_password) == (0, password18.encode())
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("carol@example.org", app_at_password, IP)
        assert account_login.authenticate("carol@example.org", password18, IP).account.pk == carol.pk
        # An API key pointing at the password credential.
        key_at_password = "API_" + base64.urlsafe_b64encode(
            struct.pack(">II", dave.pk, 0) + password20.encode()).decode().rstrip("=")
        assert tokens.parse_api_key(key_at_password) == (dave.pk, 0, password20.encode())
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate_bearer(key_at_password, IP)
        assert account_login.authenticate("dave@example.org", password20, IP).account.pk == dave.pk

    def test_api_key_is_a_bearer_token_not_a_password(self, bob, client):
        cred, token = _create(bob, API)
        result = account_login.authenticate_bearer(token, IP)
        assert result.account.pk == bob.pk
        assert result.credential.pk == cred.pk
        with pytest.raises(account_login.AuthFailed) as exc:
            account_login.authenticate("bob@example.org", token, IP)
        assert exc.value.status == 401
        assert not client.login(username="bob@example.org", password=token)

    def test_app_password_is_not_a_bearer_token(self, bob):
        _, token = _create(bob, APP)
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate_bearer(token, IP)
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate_bearer(STRONG_PASSWORD, IP)

    def test_forged_api_key_fails(self, bob, make_account):
        alice = make_account("alice")
        cred, token = _create(bob, API)
        _, alice_token = _create(alice, API)
        _, _, alice_secret = tokens.parse_api_key(alice_token)
        # Alice's secret with bob's numbers.
        forged = "API_" + base64.urlsafe_b64encode(
            struct.pack(">II", bob.pk, cred.credential_id) + alice_secret).decode().rstrip("=")
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate_bearer(forged, IP)
        # Bob's password credential (id 0) is not an API key.
        _, _, bob_secret = tokens.parse_api_key(token)
        at_password = "API_" + base64.urlsafe_b64encode(struct.pack(">II", bob.pk, 0) + bob_secret).decode().rstrip("=")
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate_bearer(at_password, IP)

    @pytest.mark.parametrize("kind", [APP, API])
    def test_expired_credential_is_refused_with_401(self, bob, kind):
        cred, token = _create(bob, kind, expires_at=timezone.now() + timedelta(days=1))
        login = (lambda: account_login.authenticate("bob@example.org", token, IP)) if kind == APP else (
            lambda: account_login.authenticate_bearer(token, IP))
        assert login().credential.pk == cred.pk
        Credential.objects.filter(pk=cred.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        with pytest.raises(account_login.CredentialExpired) as exc:
            login()
        assert exc.value.status == 401
        assert exc.value.reason == "expired"
        # The password is unaffected.
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, IP).account.pk == bob.pk

    @pytest.mark.parametrize("kind", [APP, API])
    def test_allowed_ips_restrict_with_403(self, bob, kind):
        cred, token = _create(bob, kind, allowed_ips=["192.0.2.0/24", "2001:db8::1"])
        assert cred.allowed_ips == ["192.0.2.0/24", "2001:db8::1/128"]

        def login(ip):
            if kind == APP:
                return account_login.authenticate("bob@example.org", token, ip)
            return account_login.authenticate_bearer(token, ip)

        assert login("192.0.2.55").credential.pk == cred.pk
        assert login("2001:db8::1").credential.pk == cred.pk
        for ip in (IP, "2001:db8::2", None, "garbage"):
            with pytest.raises(account_login.IpUnauthorized) as exc:
                login(ip)
            assert exc.value.status == 403
        # The password has no restriction.
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, IP).account.pk == bob.pk

    @pytest.mark.parametrize("kind", [APP, API])
    def test_allowed_ips_apply_to_every_request_of_the_api(self, bob, kind):
        """The API caches verified Authorization headers; the address must still be checked."""
        from accounts import http_auth

        cred, token = _create(bob, kind, allowed_ips=["192.0.2.0/24"])
        header = ("Bearer " + token if kind == API
                  else "Basic " + base64.b64encode(f"bob@example.org:{token}".encode()).decode())
        assert http_auth.authenticate_header(header, "192.0.2.5").account_id == bob.pk
        assert http_auth.authenticate_header(header, "192.0.2.5").account_id == bob.pk  # cached
        with pytest.raises(account_login.IpUnauthorized):
            http_auth.authenticate_header(header, IP)
        # And revocation reaches the cached verdict.
        credentials.revoke_credential(bob, cred.credential_id, bob)
        with pytest.raises(account_login.AuthFailed):
            http_auth.authenticate_header(header, "192.0.2.5")

    def test_the_workers_own_verdicts_are_per_client_per_request_and_follow_changes(self, bob):
        """A verdict found in the shared cache is kept in the worker too (accounts.http_auth):
        the next request costs no cache read, but still gets a Principal of its own, never
        another address's verdict, and a change of the credentials reaches it at once."""
        from django.core.cache import cache

        from accounts import http_auth
        from telemetry.metrics import LOGINS

        def verified() -> float:
            return LOGINS.labels("success")._value.get()

        cred, token = _create(bob, APP, allowed_ips=["192.0.2.0/24"])
        header = "Basic " + base64.b64encode(f"bob@example.org:{token}".encode()).decode()
        before = verified()
        first = http_auth.authenticate_header(header, "192.0.2.5")
        second = http_auth.authenticate_header(header, "192.0.2.5")  # from the shared cache
        assert verified() == before + 1
        cache.clear()  # from here only the worker's own copy has it
        second.extra["account"] = "a previous request's account"
        third = http_auth.authenticate_header(header, "192.0.2.5")
        assert verified() == before + 1
        assert third.account_id == bob.pk and third is not second and third.extra == {}
        assert third.permissions == first.permissions
        # The same header from elsewhere is verified for that address, and refused.
        with pytest.raises(account_login.IpUnauthorized):
            http_auth.authenticate_header(header, IP)
        credentials.revoke_credential(bob, cred.credential_id, bob)
        with pytest.raises(account_login.AuthFailed):
            http_auth.authenticate_header(header, "192.0.2.5")

    def test_an_expired_password_is_not_served_from_the_workers_verdicts(self, bob):
        import time

        from accounts import http_auth
        from telemetry.metrics import LOGINS

        header = "Basic " + base64.b64encode(f"bob@example.org:{STRONG_PASSWORD}".encode()).decode()
        Credential.objects.filter(account=bob, kind=Credential.Kind.PASSWORD).update(
            expires_at=timezone.now() + timedelta(seconds=1))
        first = http_auth.authenticate_header(header, IP)
        assert http_auth.authenticate_header(header, IP).expires_at == first.expires_at  # kept in the worker
        before = LOGINS.labels("success")._value.get()
        time.sleep(max(0.0, (first.expires_at - timezone.now()).total_seconds()) + 0.05)
        # Verified again once expired: the password's verdict no longer carries its expiry.
        assert http_auth.authenticate_header(header, IP).expires_at is None
        assert LOGINS.labels("success")._value.get() == before + 1

    @pytest.mark.parametrize("kind", [APP, API])
    def test_revoked_credential_stops_working(self, bob, kind):
        cred, token = _create(bob, kind)
        login = (lambda: account_login.authenticate("bob@example.org", token, IP)) if kind == APP else (
            lambda: account_login.authenticate_bearer(token, IP))
        assert login().credential.pk == cred.pk
        credentials.revoke_credential(bob, cred.credential_id, bob)
        assert not Credential.objects.filter(pk=cred.pk).exists()
        with pytest.raises(account_login.AuthFailed):
            login()

    @pytest.mark.parametrize("kind", [APP, API])
    def test_disabled_account_cannot_use_its_credentials(self, bob, kind):
        _, token = _create(bob, kind)
        registry.update(Account._declaration, bob.pk, {"is_active": False}, "test")
        with pytest.raises(account_login.AuthFailed):
            if kind == APP:
                account_login.authenticate("bob@example.org", token, IP)
            else:
                account_login.authenticate_bearer(token, IP)

    def test_revoking_the_password_is_not_possible_here(self, bob):
        with pytest.raises(errors.NotFound):
            credentials.revoke_credential(bob, 0, bob)
        assert bob.credentials.filter(kind=Credential.Kind.PASSWORD).exists()


# --- quotas --------------------------------------------------------------------------------------
class TestQuotas:
    def test_default_limit_is_five_per_kind_counted_separately(self, bob):
        assert Authentication.load().max_app_passwords == 5
        assert Authentication.load().max_api_keys == 5
        for i in range(5):
            _create(bob, APP, description=f"app {i}")
        before_rows, before_events = Credential.objects.count(), AuditEvent.objects.count()
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, APP, description="one too many")
        assert exc.value.description == "You have exceeded your quota of 5 app passwords."
        assert exc.value.to_json() == {"type": "overQuota",
                                       "description": "You have exceeded your quota of 5 app passwords."}
        assert (Credential.objects.count(), AuditEvent.objects.count()) == (before_rows, before_events)
        # API keys have their own count.
        for i in range(5):
            _create(bob, API, description=f"key {i}")
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, API, description="one too many")
        assert exc.value.description == "You have exceeded your quota of 5 API keys."
        assert bob.credentials.filter(kind=APP).count() == 5
        assert bob.credentials.filter(kind=API).count() == 5

    def test_settings_limit(self, bob, set_auth):
        set_auth(max_app_passwords=2, max_api_keys=1)
        _create(bob, APP)
        _create(bob, APP)
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, APP)
        assert exc.value.description == "You have exceeded your quota of 2 app passwords."
        _create(bob, API)
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, API)
        assert exc.value.description == "You have exceeded your quota of 1 API keys."
        assert credentials.credential_limit(bob, APP) == 2

    def test_per_account_override_wins(self, bob, make_account, set_auth):
        set_auth(max_app_passwords=2, max_api_keys=2)
        registry.update(Account._declaration, bob.pk, {"max_app_passwords": 3, "max_api_keys": 1}, "test")
        bob.refresh_from_db()
        assert credentials.credential_limit(bob, APP) == 3
        assert credentials.credential_limit(bob, API) == 1
        for _ in range(3):
            _create(bob, APP)
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, APP)
        assert exc.value.description == "You have exceeded your quota of 3 app passwords."
        _create(bob, API)
        with pytest.raises(errors.OverQuota) as exc:
            _create(bob, API)
        assert exc.value.description == "You have exceeded your quota of 1 API keys."
        # Another account keeps the settings' limit.
        carol = make_account("carol")
        assert credentials.credential_limit(carol, APP) == 2

    def test_override_is_read_from_the_database_not_a_stale_object(self, bob):
        stale = Account.objects.get(pk=bob.pk)
        registry.update(Account._declaration, bob.pk, {"max_app_passwords": 1}, "test")
        _create(stale, APP)
        with pytest.raises(errors.OverQuota) as exc:
            _create(stale, APP)
        assert exc.value.description == "You have exceeded your quota of 1 app passwords."

    def test_null_means_unlimited(self, bob, set_auth):
        set_auth(max_app_passwords=None, max_api_keys=None)
        assert credentials.credential_limit(bob, APP) is None
        for i in range(7):
            _create(bob, APP, description=f"app {i}")
        for i in range(6):
            _create(bob, API, description=f"key {i}")
        assert bob.credentials.filter(kind=APP).count() == 7
        assert bob.credentials.filter(kind=API).count() == 6

    def test_override_applies_even_when_settings_are_unlimited(self, bob, set_auth):
        set_auth(max_app_passwords=None)
        registry.update(Account._declaration, bob.pk, {"max_app_passwords": 1}, "test")
        _create(bob, APP)
        with pytest.raises(errors.OverQuota):
            _create(bob, APP)

    def test_revoking_frees_a_slot(self, bob, set_auth):
        set_auth(max_app_passwords=1)
        cred, _ = _create(bob, APP)
        with pytest.raises(errors.OverQuota):
            _create(bob, APP)
        credentials.revoke_credential(bob, cred.credential_id, bob)
        new, _ = _create(bob, APP)
        # Clients cache by id: a destroyed credential's number is never given out again.
        assert new.credential_id == cred.credential_id + 1

    def test_quota_refusal_on_the_page(self, client, bob, set_auth):
        set_auth(max_api_keys=1)
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        client.post("/account/credentials/", {"kind": API, "description": "one"})
        client.get("/account/")
        response = client.post("/account/credentials/", {"kind": API, "description": "two"}, follow=True)
        html = response.content.decode()
        assert "You have exceeded your quota of 1 API keys." in html
        assert 'id="new-secret"' not in html
        assert bob.credentials.filter(kind=API).count() == 1


# --- scopes ---------------------------------------------------------------------------------------
class TestScopes:
    def test_inherit_disable_replace(self, bob):
        base = account_permissions(bob)
        assert {"authenticate", "imapAuthenticate", "imapFetch", "sysApiKeyCreate"} <= base
        assert "sysTenantGet" not in base

        inherit, _ = _create(bob, API)
        assert credential_permissions(bob, inherit) == base

        disable, _ = _create(bob, API, permissions_mode="disable", permissions=["imapFetch", "sysApiKeyCreate"])
        assert credential_permissions(bob, disable) == base - {"imapFetch", "sysApiKeyCreate"}

        replace, token = _create(bob, API, permissions_mode="replace",
                                 permissions=["authenticate", "imapAuthenticate", "sysTenantGet"])
        # Replace is intersected with the account's set: it never exceeds the account.
        assert credential_permissions(bob, replace) == frozenset({"authenticate", "imapAuthenticate"})
        # The session opened with the key has exactly that scope.
        assert account_login.authenticate_bearer(token, IP).permissions == frozenset({"authenticate", "imapAuthenticate"})

    def test_app_password_session_is_scoped(self, bob):
        _, token = _create(bob, APP, permissions_mode="disable", permissions=["imapFetch"])
        result = account_login.authenticate("bob@example.org", token, IP)
        assert result.permissions == account_permissions(bob) - {"imapFetch"}
        assert "imapFetch" in account_login.authenticate("bob@example.org", STRONG_PASSWORD, IP).permissions

    def test_scope_without_authenticate_cannot_log_in(self, bob):
        _, token = _create(bob, APP, permissions_mode="replace", permissions=["imapAuthenticate", "imapFetch"])
        with pytest.raises(account_login.Unauthorized) as exc:
            account_login.authenticate("bob@example.org", token, IP)
        assert exc.value.status == 403
        _, key = _create(bob, API, permissions_mode="disable", permissions=["authenticate"])
        with pytest.raises(account_login.Unauthorized):
            account_login.authenticate_bearer(key, IP)

    def test_scope_follows_the_account(self, bob):
        """A scope is computed from the account at use time: it shrinks when the account shrinks."""
        cred, token = _create(bob, API)
        registry.update(Account._declaration, bob.pk,
                        {"permissions_mode": "merge", "disabled_permissions": ["imapFetch"]}, "test")
        bob.refresh_from_db()
        assert "imapFetch" not in account_login.authenticate_bearer(token, IP).permissions

    def test_unknown_permission_names_are_refused(self, bob):
        with pytest.raises(errors.SetError) as exc:
            _create(bob, API, permissions_mode="replace", permissions=["authenticate", "becomeRoot"])
        assert "permissions" in exc.value.properties or any(
            item.get("property") == "permissions" for item in exc.value.validation_errors)
        with pytest.raises(errors.InvalidProperties):
            _create(bob, API, permissions_mode="everything")
        assert not bob.credentials.filter(kind=API).exists()

    def test_restricted_key_cannot_mint_a_broader_one(self, bob):
        _, token = _create(bob, API, permissions_mode="disable", permissions=["imapFetch"])
        scope = account_login.authenticate_bearer(token, IP).permissions
        before = (Credential.objects.count(), AuditEvent.objects.count())
        with pytest.raises(errors.Forbidden) as exc:
            _create(bob, API, grantor_permissions=scope)
        assert exc.value.description == "You are not authorized to grant permissions: imapFetch"
        assert exc.value.type == "forbidden"
        with pytest.raises(errors.Forbidden):
            _create(bob, APP, permissions_mode="replace", permissions=["authenticate", "imapFetch"],
                    grantor_permissions=scope)
        assert (Credential.objects.count(), AuditEvent.objects.count()) == before
        # Narrower or equal scopes are fine.
        cred, _ = _create(bob, API, permissions_mode="disable", permissions=["imapFetch", "imapStore"],
                          grantor_permissions=scope)
        assert credential_permissions(bob, cred) <= scope
        _create(bob, APP, permissions_mode="replace", permissions=["authenticate", "imapAuthenticate"],
                grantor_permissions=scope)

    def test_grant_message_lists_five_and_counts_the_rest(self, bob):
        _, token = _create(bob, API, permissions_mode="replace", permissions=["authenticate", "sysApiKeyCreate"])
        scope = account_login.authenticate_bearer(token, IP).permissions
        assert scope == frozenset({"authenticate", "sysApiKeyCreate"})
        with pytest.raises(errors.Forbidden) as exc:
            _create(bob, API, grantor_permissions=scope)
        excess = sorted(account_permissions(bob) - scope)
        assert len(excess) == 242
        message = exc.value.description
        prefix = "You are not authorized to grant permissions: "
        assert message.startswith(prefix)
        shown = message[len(prefix):].split(" and ")[0].split(", ")
        assert len(shown) == 5 and set(shown) <= set(excess)
        assert message.endswith(" and 237 more")


# --- revocation ---------------------------------------------------------------------------------
class _FormParser(HTMLParser):
    """Collects what a browser would submit for the form with the given id."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select = None
        self._select_multiple = False
        self._textarea = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            return
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "on" if kind in ("checkbox", "radio") else "")))
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self._select_multiple = "multiple" in a
        elif tag == "option" and self._select and "selected" in a:
            self.fields.append((self._select, a.get("value", "")))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], []

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = "".join(self._text)
            self.fields.append((self._textarea, text[1:] if text.startswith("\n") else text))
            self._textarea = None


def _post_data(html: str, form_id: str) -> dict:
    parser = _FormParser(form_id)
    parser.feed(html)
    data: dict[str, list[str]] = {}
    for name, value in parser.fields:
        data.setdefault(name, []).append(value)
    return data


class TestRevocation:
    def test_self_service_revocation_is_audited(self, client, bob):
        keep, _ = _create(bob, API, description="keep me")
        cred, token = _create(bob, APP, description="old phone")
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        page = client.get("/account/").content.decode()
        assert f'action="/account/credentials/{cred.credential_id}/revoke/"' in page
        assert "old phone" in page and "keep me" in page

        response = client.post(f"/account/credentials/{cred.credential_id}/revoke/", follow=True)
        assert response.status_code == 200
        assert "The credential was revoked." in response.content.decode()
        assert not Credential.objects.filter(pk=cred.pk).exists()
        assert Credential.objects.filter(pk=keep.pk).exists()
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("bob@example.org", token, IP)

        event = AuditEvent.objects.get(object_type="AppPassword", action="destroy")
        assert event.object_id in _credential_object_id(bob, cred.credential_id)
        assert event.actor == "bob@example.org"
        assert event.old_value == "old phone"
        created = AuditEvent.objects.get(object_type="AppPassword", action="create")
        assert created.object_id in _credential_object_id(bob, cred.credential_id)
        assert created.new_value == "old phone"
        assert AuditEvent.objects.filter(object_type="ApiKey", action="create",
                                         object_id__in=_credential_object_id(bob, keep.credential_id)).exists()

    def test_revocation_needs_post(self, client, bob):
        cred, _ = _create(bob, APP)
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        assert client.get(f"/account/credentials/{cred.credential_id}/revoke/").status_code == 405
        assert Credential.objects.filter(pk=cred.pk).exists()

    def test_page_revokes_only_own_secondary_credentials(self, client, bob, make_account):
        alice = make_account("alice")
        alice_cred, alice_token = _create(alice, APP)
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        # Bob has no credential with alice's number: nothing of alice's goes.
        response = client.post(f"/account/credentials/{alice_cred.credential_id}/revoke/", follow=True)
        assert response.status_code == 200
        assert Credential.objects.filter(pk=alice_cred.pk).exists()
        assert account_login.authenticate("alice@example.org", alice_token, IP).account.pk == alice.pk
        # Nor can the page destroy bob's own password (credential 0).
        client.post("/account/credentials/0/revoke/")
        assert bob.credentials.filter(kind=Credential.Kind.PASSWORD).exists()
        assert not AuditEvent.objects.filter(action="destroy").exists()

    def test_anonymous_cannot_revoke(self, client, bob):
        cred, _ = _create(bob, APP)
        response = client.post(f"/account/credentials/{cred.credential_id}/revoke/")
        assert response.status_code == 302
        assert "/login/" in response["Location"]
        assert Credential.objects.filter(pk=cred.pk).exists()

    def test_admin_inline_revocation(self, admin_client, bob):
        keep, keep_token = _create(bob, API, description="monitoring")
        cred, token = _create(bob, APP, description="old laptop")
        url = f"/admin/accounts/account/{bob.pk}/change/"
        page = admin_client.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert "old laptop" in html and "monitoring" in html
        data = _post_data(html, "account_form")
        # The inline lists the two secondary credentials only (not the password).
        assert data["credentials-TOTAL_FORMS"] == ["2"]
        assert data["credentials-INITIAL_FORMS"] == ["2"]
        index = next(i for i in range(2) if data[f"credentials-{i}-id"] == [str(cred.pk)])
        data[f"credentials-{index}-DELETE"] = ["on"]
        data["_save"] = ["Save"]

        response = admin_client.post(url, data)
        assert response.status_code == 302, (
            response.context and [f.errors for f in [response.context["adminform"].form]])
        assert response["Location"] == "/admin/accounts/account/"
        assert not Credential.objects.filter(pk=cred.pk).exists()
        assert Credential.objects.filter(pk=keep.pk).exists()
        assert bob.credentials.filter(kind=Credential.Kind.PASSWORD).exists()
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("bob@example.org", token, IP)
        assert account_login.authenticate_bearer(keep_token, IP).credential.pk == keep.pk
        # The account itself is unchanged by the round trip.
        bob_after = Account.objects.get(pk=bob.pk)
        assert (bob_after.description, bob_after.roles_mode, bob_after.is_active) == ("Bob Example", "user", True)
        assert account_login.authenticate("bob@example.org", STRONG_PASSWORD, IP).account.pk == bob.pk

        event = AuditEvent.objects.get(object_type="AppPassword", action="destroy")
        assert event.actor == "admin@example.org"
        assert event.object_id in _credential_object_id(bob, cred.credential_id)
        assert event.old_value == "old laptop"
        follow = admin_client.get(response["Location"])
        assert "Revoked app password “old laptop”." in follow.content.decode()

    def test_admin_without_update_right_cannot_revoke(self, client, bob, make_account):
        from accounts.models import Role

        reader = registry.create(Role._declaration, {
            "description": "Account reader",
            "enabled_permissions": ["authenticate", "sysAccountGet", "sysAccountQuery"],
        }, "test")
        make_account("auditor", roles_mode="custom", roles=[reader.pk])
        cred, _ = _create(bob, APP, description="old laptop")
        assert client.login(username="auditor@example.org", password=STRONG_PASSWORD)
        url = f"/admin/accounts/account/{bob.pk}/change/"
        page = client.get(url)
        assert page.status_code == 200
        data = _post_data(page.content.decode(), "account_form")
        data.update({"credentials-TOTAL_FORMS": ["1"], "credentials-INITIAL_FORMS": ["1"],
                     "credentials-MIN_NUM_FORMS": ["0"], "credentials-MAX_NUM_FORMS": ["1000"],
                     "credentials-0-id": [str(cred.pk)], "credentials-0-account": [str(bob.pk)],
                     "credentials-0-DELETE": ["on"], "_save": ["Save"]})
        response = client.post(url, data)
        assert response.status_code in (302, 403)
        assert Credential.objects.filter(pk=cred.pk).exists()
        assert not AuditEvent.objects.filter(action="destroy").exists()
