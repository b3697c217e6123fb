"""POST /auth/register (RFC 7591) with the reference's rules, and the flows of registered clients.

Adapted from the reference's acceptance list (oauth.md §14, items 3-5 and 14-16): public
clients get a stored client id instead of a stateless `swc1.` one, so an identical second
registration gives a second id (the reference's deterministic id is not reproduced).
"""
import base64
import hashlib
import json
import re

import pytest
from django.contrib.auth.hashers import check_password

from conftest import STRONG_PASSWORD
from tests.clients import basic
from oauth import registration
from oauth.models import OAuthClient, OidcProvider
from registry.models import AuditEvent

pytestmark = pytest.mark.django_db

VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")


def register(client, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/auth/register", data=data, content_type="application/json", **extra)


def set_anonymous(allowed: bool):
    prov = OidcProvider.load()
    prov.anonymous_client_registration = allowed
    prov.save()
    from registry.services import bump_state

    bump_state("OidcProvider")


# --- redirect URI rules (§14 items 3-4) -------------------------------------------------------
@pytest.mark.parametrize("uri", [
    "http://example.com/cb",            # http, not loopback
    "http://127.0.0.1/cb#frag",         # fragment
    "http://127.0.0.1/../cb",           # dot segments
    "http://localhost/cb",              # localhost is not loopback
    "https:///cb",                      # no host
    "myapp:/cb",                        # private-use scheme without a dot
    "1com.example:/cb",                 # scheme must start with a letter
    "com.exa_mple:/cb",                 # characters outside [A-Za-z0-9.+-]
    "ftp://files.example.com/cb",
    "https://app.example.net/a b",      # white space
    "",
])
def test_refused_redirect_uris(client, uri):
    resp = register(client, {"redirect_uris": [uri]})
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert body["error"] == "invalid_redirect_uri" and body["error_description"]
    assert resp["Cache-Control"] == "no-store"
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1/cb", "http://127.0.0.1:54321/cb", "http://[::1]:8080/cb",
    "https://app.example.net/callback", "com.example.app:/cb", "net.example.mail+x:/oauth",
])
def test_accepted_redirect_uris(client, uri):
    resp = register(client, {"redirect_uris": [uri]})
    assert resp.status_code == 201, resp.content
    assert resp.json()["redirect_uris"] == [uri]
    assert OAuthClient.objects.get(client_id=resp.json()["client_id"]).redirect_uris == uri


def test_one_bad_uri_refuses_the_registration(client):
    resp = register(client, {"redirect_uris": ["https://ok.example.net/cb", "http://example.com/cb"]})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("body", [{}, {"redirect_uris": []}, {"redirect_uris": "https://a.example/cb"},
                                  {"redirect_uris": [1]}])
def test_redirect_uris_are_required(client, body):
    resp = register(client, body)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_redirect_uri"


# --- metadata rules ---------------------------------------------------------------------------
GOOD = ["com.example.app:/cb"]


@pytest.mark.parametrize("extra", [
    {"response_types": ["token"]},
    {"response_types": "code"},
    {"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]},   # device-only: refused
    {"grant_types": ["authorization_code"]},                              # refresh_token missing
    {"grant_types": ["refresh_token"]},
    {"token_endpoint_auth_method": "tls_client_auth"},
    {"application_type": "desktop"},
    {"subject_type": "anonymous"},
    {"scope": ["openid"]},
    {"client_name": 42},
    {"client_name": "x" * 256},
    {"contacts": ["not an address"]},
    {"contacts": "ops@example.org"},
    {"logo_uri": 7},
])
def test_invalid_client_metadata(client, extra):
    resp = register(client, {"redirect_uris": GOOD, **extra})
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"] == "invalid_client_metadata"
    assert not OAuthClient.objects.exists()


def test_validation_order_redirect_uris_first(client):
    resp = register(client, {"redirect_uris": ["http://example.com/cb"], "response_types": ["token"],
                             "grant_types": ["implicit"]})
    assert resp.json()["error"] == "invalid_redirect_uri"
    resp = register(client, {"redirect_uris": GOOD, "response_types": ["token"], "grant_types": ["implicit"]})
    assert resp.json()["error"] == "invalid_client_metadata" and "response_types" in resp.json()["error_description"]


def test_grant_types_with_both_required_ones_are_accepted(client):
    resp = register(client, {"redirect_uris": GOOD, "response_types": ["code"], "grant_types": [
        "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"]})
    assert resp.status_code == 201, resp.content


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"https://a.example/cb"', ""])
def test_body_must_be_a_json_object(client, data):
    resp = register(client, data)
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/problem+json"


def test_body_is_read_whatever_the_content_type(client):
    resp = client.post("/auth/register", data=json.dumps({"redirect_uris": GOOD}), content_type="text/plain")
    assert resp.status_code == 201


def test_oversized_body(client):
    resp = register(client, {"redirect_uris": GOOD, "padding": "x" * 21000})
    assert resp.status_code == 400 and resp["Content-Type"] == "application/problem+json"


def test_only_post(client):
    assert client.get("/auth/register").status_code == 405
    assert client.options("/auth/register").status_code == 204


# --- public clients (§14 item 5, adapted) -----------------------------------------------------
def test_public_registration_stores_a_public_client(client):
    body = {"redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"], "client_name": "Example Mail",
            "scope": "openid urn:ietf:params:oauth:scope:mail bogus", "contacts": ["ops@example.net"],
            "logo_uri": "https://example.net/logo.png", "software_id": "mail-1", "client_secret": "mine"}
    resp = register(client, body)
    assert resp.status_code == 201, resp.content
    assert resp["Cache-Control"] == "no-store"
    got = resp.json()
    assert re.fullmatch(r"[a-z0-9]{20}", got["client_id"])
    assert not got["client_id"].startswith("swc1.")
    assert isinstance(got["client_id_issued_at"], int)
    assert got["redirect_uris"] == ["com.example.app:/cb", "http://127.0.0.1/cb"]
    assert got["scope"] == "openid urn:ietf:params:oauth:scope:mail"      # unknown scopes dropped
    assert got["client_name"] == "Example Mail"
    assert got["token_endpoint_auth_method"] == "none"
    assert got["software_id"] == "mail-1"                                 # unknown keys echoed
    assert "client_secret" not in got and "client_secret_expires_at" not in got
    stored = OAuthClient.objects.get(client_id=got["client_id"])
    assert stored.client_type == OAuthClient.CLIENT_PUBLIC and stored.client_secret == ""
    assert stored.description == "Example Mail" and stored.contacts == ["ops@example.net"]
    assert stored.logo == "https://example.net/logo.png" and not stored.ephemeral
    assert stored.registration_source == OAuthClient.RegistrationSource.DCR
    assert stored.redirect_uris.split() == ["com.example.app:/cb", "http://127.0.0.1/cb"]
    # audited like any other change of a declared object
    assert AuditEvent.objects.filter(object_type="OAuthClient", action="create").exists()


def test_identical_registrations_give_two_client_ids(client):
    # The reference's stateless ids are deterministic; stored clients are not (documented).
    first = register(client, {"redirect_uris": GOOD, "client_name": "App"}).json()["client_id"]
    second = register(client, {"redirect_uris": GOOD, "client_name": "App"}).json()["client_id"]
    assert first != second
    assert OAuthClient.objects.filter(client_id__in=[first, second]).count() == 2


def test_anonymous_public_registration_can_be_switched_off(client, make_account):
    set_anonymous(False)
    resp = register(client, {"redirect_uris": GOOD})
    assert resp.status_code == 401
    assert "Basic" in resp["WWW-Authenticate"]
    make_account("bob")
    resp = register(client, {"redirect_uris": GOOD}, HTTP_AUTHORIZATION=basic("bob@example.org"))
    assert resp.status_code == 403
    make_account("carol", permissions_mode="merge", enabled_permissions=["oAuthClientRegistration"])
    resp = register(client, {"redirect_uris": GOOD}, HTTP_AUTHORIZATION=basic("carol@example.org"))
    assert resp.status_code == 201, resp.content
    assert OAuthClient.objects.get(client_id=resp.json()["client_id"]).client_type == "public"


def test_anonymous_registrations_are_capped_per_address(client, monkeypatch):
    monkeypatch.setattr(registration, "ANONYMOUS_LIMIT", 2)
    assert register(client, {"redirect_uris": GOOD}).status_code == 201
    assert register(client, {"redirect_uris": GOOD}).status_code == 201
    resp = register(client, {"redirect_uris": GOOD})
    assert resp.status_code == 429 and resp["Retry-After"]
    # another address has its own allowance
    assert register(client, {"redirect_uris": GOOD}, REMOTE_ADDR="192.0.2.7").status_code == 201


# --- confidential clients (§14 items 14-15) ---------------------------------------------------
CONFIDENTIAL = {"redirect_uris": ["https://app.example.net/callback"], "client_name": "Web app",
                "token_endpoint_auth_method": "client_secret_post", "scope": "urn:ietf:params:oauth:scope:mail"}


def test_confidential_registration_needs_a_login_with_the_permission(client, admin_account, make_account):
    resp = register(client, CONFIDENTIAL)
    assert resp.status_code == 401 and resp["Content-Type"] == "application/problem+json"
    make_account("bob")
    assert register(client, CONFIDENTIAL, HTTP_AUTHORIZATION=basic("bob@example.org")).status_code == 403
    assert register(client, CONFIDENTIAL, HTTP_AUTHORIZATION=basic("admin@example.org", "wrong")).status_code == 401
    assert not OAuthClient.objects.exists()
    # still refused anonymously when anonymous registration is on (the default)
    assert OidcProvider.load().anonymous_client_registration is True


def test_confidential_registration_returns_the_secret_once_and_stores_its_hash(client, admin_account):
    resp = register(client, CONFIDENTIAL, HTTP_AUTHORIZATION=basic("admin@example.org"))
    assert resp.status_code == 201, resp.content
    got = resp.json()
    assert re.fullmatch(r"[a-z0-9]{20}", got["client_id"])
    assert len(got["client_secret"]) >= 40 and got["client_secret"].isalnum()
    assert got["client_secret_expires_at"] == 0
    assert got["token_endpoint_auth_method"] == "client_secret_post"
    assert got["scope"] == "urn:ietf:params:oauth:scope:mail" and got["client_name"] == "Web app"
    stored = OAuthClient.objects.get(client_id=got["client_id"])
    assert stored.client_type == OAuthClient.CLIENT_CONFIDENTIAL
    assert stored.client_secret.startswith("argon2$argon2id$") and got["client_secret"] not in stored.client_secret
    assert check_password(got["client_secret"], stored.client_secret)
    assert not AuditEvent.objects.filter(new_value=got["client_secret"]).exists()


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_jwt", "private_key_jwt"])
def test_every_secret_method_is_confidential(client, admin_account, method):
    assert register(client, {**CONFIDENTIAL, "token_endpoint_auth_method": method}).status_code == 401
    resp = register(client, {**CONFIDENTIAL, "token_endpoint_auth_method": method},
                    HTTP_AUTHORIZATION=basic("admin@example.org"))
    assert resp.status_code == 201 and resp.json()["client_secret"]


def _code(client, client_id, redirect, *, pkce=True):
    body = {"type": "authCode", "accountName": "alice@example.org", "accountSecret": STRONG_PASSWORD,
            "clientId": client_id, "redirectUri": redirect, "scope": "openid"}
    if pkce:
        body.update({"codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"})
    return client.post("/api/auth", json.dumps(body), content_type="application/json")


def test_confidential_client_token_exchange(client, admin_account, make_account):
    make_account("alice")
    got = register(client, CONFIDENTIAL, HTTP_AUTHORIZATION=basic("admin@example.org")).json()
    cid, secret, redirect = got["client_id"], got["client_secret"], CONFIDENTIAL["redirect_uris"][0]

    def exchange(**kw):
        code = _code(client, cid, redirect, pkce=False).json()["client_code"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "client_id": cid}
        form.update(kw.pop("form", {}))
        return client.post("/auth/token", form, **kw)

    assert exchange().json()["error"] == "invalid_client"                               # missing secret
    assert exchange(form={"client_secret": "wrong"}).json()["error"] == "invalid_client"
    ok = exchange(form={"client_secret": secret})                                      # secret via post
    assert ok.status_code == 200 and ok.json()["access_token"]
    basic_auth = basic(cid, secret)
    code = _code(client, cid, redirect, pkce=False).json()["client_code"]
    ok = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
                     HTTP_AUTHORIZATION=basic_auth)                                    # secret via Basic
    assert ok.status_code == 200, ok.content


def test_registered_clients_redirect_uris_are_checked(client, admin_account, make_account):
    make_account("alice")
    got = register(client, CONFIDENTIAL, HTTP_AUTHORIZATION=basic("admin@example.org")).json()
    resp = _code(client, got["client_id"], "https://evil.example.com/callback")
    assert resp.status_code != 200


def test_registered_public_client_flow(client, make_account):
    make_account("alice")
    cid = register(client, {"redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"]}).json()["client_id"]
    # a redirect URI that is not registered
    assert _code(client, cid, "com.example.app:/other").status_code != 200
    assert _code(client, cid, "https://app.example.net/cb").status_code != 200
    # PKCE is mandatory for public clients
    assert _code(client, cid, "com.example.app:/cb", pkce=False).status_code != 200
    # loopback redirects match whatever the port (RFC 8252 §7.3)
    resp = _code(client, cid, "http://127.0.0.1:61000/cb")
    assert resp.status_code == 200, resp.content
    code = resp.json()["client_code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:61000/cb",
            "client_id": cid, "code_verifier": VERIFIER}
    wrong_client = client.post("/auth/token", {**form, "client_id": "someone-else"})
    assert wrong_client.status_code == 400
    resp = _code(client, cid, "com.example.app:/cb")
    code = resp.json()["client_code"]
    tokens = client.post("/auth/token", {**form, "code": code, "redirect_uri": "com.example.app:/cb"})
    assert tokens.status_code == 200, tokens.content
    assert tokens.json()["token_type"] == "bearer"


def test_registration_endpoint_is_advertised(client):
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        doc = client.get(path).json()
        assert doc["registration_endpoint"] == doc["issuer"] + "/auth/register"


def test_registered_clients_work_when_registration_is_required(client, make_account):
    from registry.services import bump_state

    make_account("alice")
    prov = OidcProvider.load()
    prov.require_client_registration = True
    prov.save()
    bump_state("OidcProvider")
    cid = register(client, {"redirect_uris": ["com.example.app:/cb"]}).json()["client_id"]
    assert _code(client, cid, "com.example.app:/cb").status_code == 200
    assert _code(client, "never-registered", "com.example.app:/cb").status_code != 200
    assert not OAuthClient.objects.filter(client_id="never-registered").exists()


# --- final hostile-input pass (issue 10) ------------------------------------------------------
@pytest.mark.parametrize("uri", [
    "https://trusted.example@evil.example/cb",   # the login page would name "trusted.example@…"
    "https://app.example.net:99999/cb",          # out-of-range port
    "https://app.example.net:-1/cb",
    "https://app.example.net:x/cb",
    "http://127.0.0.1:99999/cb",
    "https://evil.example\\@app.example.net/cb",  # browsers read "\" as "/"
])
def test_redirect_uris_that_would_misname_their_host_are_refused(client, uri):
    resp = register(client, {"redirect_uris": [uri]})
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"] == "invalid_redirect_uri"
    assert not OAuthClient.objects.exists()


def test_login_page_names_an_idn_host_as_dns_sees_it(client):
    uri = "https://\u0430pple.com/cb"   # Cyrillic "а"
    resp = register(client, {"redirect_uris": [uri]})
    assert resp.status_code == 201, resp.content
    page = client.get("/login", {"client_id": resp.json()["client_id"], "redirect_uri": uri, "response_type": "code"})
    assert page.status_code == 200
    assert "https://xn--pple-43d.com" in page.content.decode()
