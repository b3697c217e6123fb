"""Issue 10 item 5: a refresh token is bound to the client it was issued to (RFC 6749 §6)."""
import base64
import hashlib
import json

import pytest

from conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db

VERIFIER = "r" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
REDIRECT = "http://127.0.0.1:9999/cb"


def tokens_for(client, client_id):
    resp = client.post("/api/auth", json.dumps({
        "type": "authCode", "accountName": "alice@example.org", "accountSecret": STRONG_PASSWORD,
        "clientId": client_id, "redirectUri": REDIRECT, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}),
        content_type="application/json")
    code = resp.json()["client_code"]
    got = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "client_id": client_id,
                                      "redirect_uri": REDIRECT, "code_verifier": VERIFIER})
    assert got.status_code == 200, got.content
    return got.json()


def refresh(client, token, **extra):
    return client.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": token, **extra})


def test_refresh_by_another_client_or_without_client_id_is_invalid_grant(client, make_account):
    make_account("alice")
    mine = tokens_for(client, "app-one")
    tokens_for(client, "app-two")        # another client that exists
    for extra in ({}, {"client_id": ""}, {"client_id": "app-two"}, {"client_id": "never-seen"},
                  {"client_id": "APP-ONE"}):
        resp = refresh(client, mine["refresh_token"], **extra)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", (extra, resp.content)
    # Basic client authentication names the client too
    other = "Basic " + base64.b64encode(b"app-two:").decode()
    resp = refresh(client, mine["refresh_token"], HTTP_AUTHORIZATION=other)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    # the refresh token still works for its own client, after all these attempts
    ok = refresh(client, mine["refresh_token"], client_id="app-one")
    assert ok.status_code == 200 and ok.json()["access_token"].startswith("sw1.")
