"""The OAuth flows end to end through the test client (the live-server tests drive authlib)."""
import base64
import hashlib
import json

import pytest

from conftest import STRONG_PASSWORD

pytestmark = pytest.mark.django_db


def pkce():
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def test_authorization_code_with_pkce_then_jmap_and_refresh(client, make_account):
    make_account("alice")
    verifier, challenge = pkce()
    resp = client.post("/api/auth", json.dumps({
        "type": "authCode", "accountName": "alice@example.org", "accountSecret": STRONG_PASSWORD,
        "clientId": "my-app", "redirectUri": "http://127.0.0.1:9999/cb", "scope": "openid offline_access",
        "nonce": "n1", "codeChallenge": challenge, "codeChallengeMethod": "S256"}), content_type="application/json")
    assert resp.status_code == 200, resp.content
    code = resp.json()["client_code"]
    token = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "client_id": "my-app",
                                        "redirect_uri": "http://127.0.0.1:9999/cb", "code_verifier": verifier})
    assert token.status_code == 200, token.content
    body = token.json()
    assert body["token_type"] == "bearer" and body["access_token"].startswith("sw1.")
    assert token["Cache-Control"] == "no-store"
    again = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "client_id": "my-app",
                                        "redirect_uri": "http://127.0.0.1:9999/cb", "code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    echo = client.post("/jmap/", json.dumps({"using": ["urn:ietf:params:jmap:core"],
                                             "methodCalls": [["Core/echo", {"x": 1}, "c"]]}),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert echo.status_code == 200
    # a refresh token is no bearer credential
    refused = client.get("/jmap/session", HTTP_AUTHORIZATION=f"Bearer {body['refresh_token']}")
    assert refused.status_code == 401
    refreshed = client.post("/auth/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                            "client_id": "my-app"})
    assert refreshed.status_code == 200 and refreshed.json()["access_token"] != body["access_token"]
    assert client.post("/auth/token", {"grant_type": "password"}).json()["error"] == "unsupported_grant_type"


def test_device_flow(client, make_account):
    make_account("bob")
    start = client.post("/auth/device", {"client_id": "tv", "scope": "openid"}).json()
    assert len(start["user_code"]) == 9 and start["interval"] == 5
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": start["device_code"],
            "client_id": "tv"}
    assert client.post("/auth/token", poll).json()["error"] == "authorization_pending"
    assert client.post("/auth/token", poll).json()["error"] == "slow_down"
    ok = client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": "bob", "accountSecret": STRONG_PASSWORD,
                                              "code": start["user_code"].lower().replace("-", "")}),
                     content_type="application/json").json()
    assert ok == {"type": "verified"}
    tokens = client.post("/auth/token", poll)
    assert tokens.status_code == 200 and "id_token" in tokens.json()
    assert client.post("/auth/token", poll).json()["error"] == "expired_token"


def test_rs256_by_setting_signs_and_publishes_an_rsa_key(client, make_account):
    """ES256 is the default; choosing RS256 generates and keeps an RSA key, published in the JWKS."""
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    from oauth.models import OidcProvider
    from registry import services as registry

    assert client.get("/auth/jwks.json").json()["keys"][0]["alg"] == "ES256"
    registry.update(OidcProvider._declaration, None, {"signature_algorithm": "rs256", "signature_key": ""}, "test")
    jwks = client.get("/auth/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "RSA" and jwks["keys"][0]["alg"] == "RS256" and jwks["keys"][0]["kid"] == "default"
    assert OidcProvider.load().signature_key.startswith("-----BEGIN PRIVATE KEY-----")
    make_account("carol")
    start = client.post("/auth/device", {"client_id": "tv", "nonce": "n-rs"}).json()
    assert client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": "carol",
                                                "accountSecret": STRONG_PASSWORD, "code": start["user_code"]}),
                       content_type="application/json").json() == {"type": "verified"}
    tokens = client.post("/auth/token", {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                         "device_code": start["device_code"], "client_id": "tv"}).json()
    decoded = jose_jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256" and decoded.claims["nonce"] == "n-rs" and decoded.claims["aud"] == "tv"
