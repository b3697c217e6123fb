"""Account enumeration by timing (issue 10, item 9): a failed login costs one verification of
the configured hash algorithm whether or not the account or the credential exists.

Time is never measured: the verifications are counted by wrapping the hash libraries' own
verify functions (argon2-cffi's PasswordHasher.verify, bcrypt.checkpw), which our code calls and
does not define. Every login goes through a real face (Basic auth on /jmap, the Bearer header,
the admin login form, /api/auth).
"""
from __future__ import annotations

import json

import argon2
import bcrypt
import pytest

from accounts import credentials, tokens
from accounts.models import Authentication, Credential
from conftest import STRONG_PASSWORD
from registry import services as registry
from tests.clients import basic

REMOTE = "198.51.100.40"


@pytest.fixture
def verifications(monkeypatch):
    """How many times each library verified a hash since the fixture was made (or reset)."""
    counts = {"argon2": 0, "bcrypt": 0}
    argon2_verify, bcrypt_checkpw = argon2.PasswordHasher.verify, bcrypt.checkpw

    def counted_argon2(self, *args, **kwargs):
        counts["argon2"] += 1
        return argon2_verify(self, *args, **kwargs)

    def counted_bcrypt(*args, **kwargs):
        counts["bcrypt"] += 1
        return bcrypt_checkpw(*args, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counted_argon2)
    monkeypatch.setattr(bcrypt, "checkpw", counted_bcrypt)

    class Counter(dict):
        def take(self):
            out = dict(counts)
            counts.update(argon2=0, bcrypt=0)
            return out

    return Counter()


@pytest.fixture
def bob(make_account):
    return make_account("bob")


def _app_password(account):
    return credentials.create_secondary_credential(account, Credential.Kind.APP_PASSWORD, account, description="phone")


def _api_key(account):
    return credentials.create_secondary_credential(account, Credential.Kind.API_KEY, account, description="script")


def _forged_app_password(credential_id: int) -> str:
    """A well-formed app password for `credential_id` with a random secret."""
    return tokens.new_app_password(credential_id)[0]


def _forged_api_key(account_id: int, credential_id: int) -> str:
    return tokens.new_api_key(account_id, credential_id)[0]


def _jmap_status(client, auth: str) -> int:
    body = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": []})
    return client.post("/jmap/", body, content_type="application/json", HTTP_AUTHORIZATION=auth,
                       REMOTE_ADDR=REMOTE).status_code


@pytest.mark.parametrize("algorithm, library", [("argon2id", "argon2"), ("bcrypt", "bcrypt")])
class TestBasicAuth:
    def test_password_misses_cost_one_verification(self, client, bob, verifications, algorithm, library):
        registry.update(Authentication._declaration, 1, {"password_hash_algorithm": algorithm}, "test")
        credentials.set_password(bob, STRONG_PASSWORD + "x", "test")  # hashed with `algorithm`
        verifications.take()
        for login in ("bob@example.org", "nobody@example.org", "nobody@unknown.example", "bob"):
            assert _jmap_status(client, basic(login, "wrong-password")) == 401
            assert verifications.take()[library] == 1, login

    def test_app_password_shaped_secrets_cost_one_verification(self, client, bob, verifications, algorithm,
                                                               library):
        registry.update(Authentication._declaration, 1, {"password_hash_algorithm": algorithm}, "test")
        real, _ = _app_password(bob)
        verifications.take()
        cases = {
            "an existing app password, wrong secret": ("bob@example.org", _forged_app_password(real.credential_id)),
            "an app password the account does not have": ("bob@example.org", _forged_app_password(77)),
            "the password's credential number": ("bob@example.org", _forged_app_password(0)),
            "an account that does not exist": ("nobody@example.org", _forged_app_password(real.credential_id)),
        }
        for case, (login, secret) in cases.items():
            assert _jmap_status(client, basic(login, secret)) == 401, case
            assert verifications.take()[library] == 1, case


@pytest.mark.parametrize("algorithm, library", [("argon2id", "argon2"), ("bcrypt", "bcrypt")])
def test_api_key_shaped_secrets_cost_one_verification(client, bob, verifications, algorithm, library):
    registry.update(Authentication._declaration, 1, {"password_hash_algorithm": algorithm}, "test")
    real, _ = _api_key(bob)
    verifications.take()
    cases = {
        "an existing key, wrong secret": _forged_api_key(bob.pk, real.credential_id),
        "a key number the account does not have": _forged_api_key(bob.pk, 99),
        "an account that does not exist": _forged_api_key(bob.pk + 1000, real.credential_id),
    }
    for case, token in cases.items():
        assert _jmap_status(client, f"Bearer {token}") == 401, case
        assert verifications.take()[library] == 1, case


def test_form_logins_cost_one_verification(client, bob, verifications):
    real, _ = _app_password(bob)
    verifications.take()
    for login, secret in [("bob@example.org", "wrong-password"), ("nobody@example.org", "wrong-password"),
                          ("bob@example.org", _forged_app_password(55)),
                          ("nobody@example.org", _forged_app_password(real.credential_id))]:
        response = client.post("/admin/login/", {"username": login, "password": secret}, REMOTE_ADDR=REMOTE)
        assert response.status_code == 200  # the form again, with its error
        assert verifications.take()["argon2"] == 1, (login, secret)
        got = client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": login,
                                                   "accountSecret": secret, "code": "ABCD-EFGH"}),
                          content_type="application/json", REMOTE_ADDR=REMOTE)
        assert got.json() == {"type": "failure"}
        assert verifications.take()["argon2"] == 1, (login, secret)


def test_recovery_administrator_with_a_plain_secret_costs_a_verification(client, db, settings, verifications):
    settings.STALWART_RECOVERY_ADMIN = "recovery:Some-Secret-Value-1"
    verifications.take()
    for login in ("recovery", "somebody-else"):
        assert _jmap_status(client, basic(login, "wrong")) == 401
        assert verifications.take()["argon2"] == 1, login


def test_a_hit_is_still_one_verification(client, bob, verifications):
    """The baseline the misses above are measured against."""
    _, secret = _app_password(bob)
    verifications.take()
    assert _jmap_status(client, basic("bob@example.org", secret)) == 200
    assert verifications.take()["argon2"] == 1
    assert _jmap_status(client, basic("bob@example.org", STRONG_PASSWORD)) == 200
    assert verifications.take()["argon2"] == 1


def test_forged_tokens_are_well_formed():
    """The forgeries above are recognised as app passwords and API keys by their parsers."""
    assert tokens.parse_app_password(_forged_app_password(7))[0] == 7
    assert tokens.parse_api_key(_forged_api_key(3, 4))[:2] == (3, 4)
