"""Issue 10 item 18: tokens obtained at /api/auth with an app password carry its scope
(spec/auth.md §5.5) and end when it is changed or destroyed."""
import base64
import hashlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import credentials as account_credentials

pytestmark = pytest.mark.django_db

VERIFIER = "s" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
REDIRECT = "http://127.0.0.1:9999/cb"


def app_password(account, **scope):
    return account_credentials.create_secondary_credential(account, "app_password", "test", description="mail", **scope)


def code_flow(client, secret):
    resp = client.post("/api/auth", json.dumps({
        "type": "authCode", "accountName": "alice@example.org", "accountSecret": secret, "clientId": "app",
        "redirectUri": REDIRECT, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}),
        content_type="application/json")
    assert resp.json()["type"] == "authenticated", resp.content
    got = client.post("/auth/token", {"grant_type": "authorization_code", "code": resp.json()["client_code"],
                                      "client_id": "app", "redirect_uri": REDIRECT, "code_verifier": VERIFIER})
    assert got.status_code == 200, got.content
    return got.json()


def device_flow(client, secret):
    start = client.post("/auth/device", {"client_id": "tv"}).json()
    ok = client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": "alice@example.org",
                                              "accountSecret": secret, "code": start["user_code"]}),
                     content_type="application/json").json()
    assert ok == {"type": "verified"}
    got = client.post("/auth/token", {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                      "device_code": start["device_code"], "client_id": "tv"})
    assert got.status_code == 200, got.content
    return got.json()


def permissions(client, token):
    resp = client.get("/api/account", HTTP_AUTHORIZATION=f"Bearer {token}")
    return resp.status_code, (resp.json().get("permissions") if resp.status_code == 200 else None)


@pytest.mark.parametrize("flow", [code_flow, device_flow])
def test_a_scoped_app_password_gives_tokens_of_its_scope_that_die_with_it(client, make_account, flow):
    alice = make_account("alice")
    cred, secret = app_password(alice, permissions_mode="replace", permissions=["authenticate"])
    tokens = flow(client, secret)
    assert permissions(client, tokens["access_token"]) == (200, ["authenticate"])
    # cannot mint an unrestricted API key
    made = client.post("/jmap/", json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
                                             "methodCalls": [["x:ApiKey/set", {"create": {"k": {
                                                 "description": "x", "permissions": {"@type": "Inherit"}}}}, "c"]]}),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert "created" not in json.dumps(made.json()) or '"created": null' in json.dumps(made.json()) \
        or made.json()["methodResponses"][0][0] == "error", made.content
    refreshed = client.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                            "client_id": "app" if flow is code_flow else "tv"})
    assert refreshed.status_code == 200
    assert permissions(client, refreshed.json()["access_token"]) == (200, ["authenticate"])
    account_credentials.revoke_credential(alice, cred.credential_id, "test")
    assert permissions(client, tokens["access_token"])[0] == 401
    assert permissions(client, refreshed.json()["access_token"])[0] == 401
    again = client.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                        "client_id": "app" if flow is code_flow else "tv"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_changed_app_password_ends_its_tokens_and_a_pending_code(client, make_account):
    alice = make_account("alice")
    cred, secret = app_password(alice)
    tokens = code_flow(client, secret)
    assert permissions(client, tokens["access_token"])[0] == 200
    account_credentials.update_secondary_credential(alice, cred.credential_id, "app_password",
                                                 {"expires_at": timezone.now() + timedelta(days=1)}, "test")
    assert permissions(client, tokens["access_token"])[0] == 401


def test_password_tokens_keep_the_account_permissions(client, make_account):
    from conftest import STRONG_PASSWORD

    make_account("alice")
    tokens = code_flow(client, STRONG_PASSWORD)
    status, perms = permissions(client, tokens["access_token"])
    assert status == 200 and len(perms) > 1
