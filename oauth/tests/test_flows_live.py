"""OAuth 2.0 and OpenID Connect end to end: real clients against gunicorn.

* authlib (OAuth2Session) runs the authorization-code flow with PKCE S256 through the /login
  page in Chromium, refreshes, and polls the device flow, which is approved (and denied) on the
  /device page in Chromium;
* joserfc verifies the ID tokens against the published JWK Set;
* requests and raw sockets send what no client library would: every malformed body, on every
  endpoint, none of which may get a 500.

The server and its database are real (the session's `live` fixture, tests/live.py): settings
are changed, and read back, with `manage.py shell` in a separate process, never through this
process's ORM. Settings go through registry.services.update, so that the audit log and the
states every worker keys its caches on stay right.

Where the reference deviates from the RFCs these tests hold the RFC (docs/oauth.md lists where).
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from playwright.sync_api import expect

from tests.live import LiveServer, free_port, raw_http

STRONG = "Tr0ubador-Quartz-Lantern-91"
NEW_PASSWORD = "Granite-Walrus-Harmonica-77"
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
SCOPE = "openid offline_access urn:ietf:params:oauth:scope:mail"
CORE = "urn:ietf:params:jmap:core"
USER_CODE = re.compile(r"^[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{4}-[ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{4}$")
# RFC 6749 §5.2 and RFC 8628 §3.5: everything the token and device endpoints may answer.
OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope", "authorization_pending", "slow_down", "access_denied",
                "expired_token"}
# The OidcProvider defaults (x:OidcProvider), in seconds: what each test leaves behind.
DEFAULT_LIFETIMES = {"access_token_expiry": 3600, "refresh_token_expiry": 30 * 86400,
                     "refresh_token_renewal": 4 * 86400, "auth_code_expiry": 600, "user_code_expiry": 1800,
                     "id_token_expiry": 900}
DEFAULT_PROVIDER = {**DEFAULT_LIFETIMES, "require_client_registration": False}


# --- the server's database, from another process -------------------------------------------


def make_account(server: LiveServer, prefix: str, *, admin: bool = False, description: str = "") -> "User":
    name = f"{prefix}{secrets.token_hex(3)}"
    got = server.shell_json(f"""
from accounts import services
from accounts.models import Account, SystemSettings
dom = SystemSettings.load().default_domain
a = services.create_account({{"name": {name!r}, "domain": dom.pk, "description": {description!r},
                             "roles_mode": {"admin" if admin else "user"!r}}}, "test-oauth", password={STRONG!r})
result = {{"id": a.pk, "login": a.email_address}}
""")
    return User(got["id"], got["login"], STRONG)


def set_provider(server: LiveServer, **values) -> dict:
    """Update the OidcProvider singleton (durations in seconds) as an administrator would."""
    got = server.shell_json(f"""
from datetime import timedelta
from oauth.models import OidcProvider
from registry import services
values = {{k: (timedelta(seconds=v) if k.endswith(("_expiry", "_renewal")) else v) for k, v in {values!r}.items()}}
services.update(OidcProvider._declaration, None, values, "test-oauth")
p = OidcProvider.load()
result = {{k: (getattr(p, k).total_seconds() if k.endswith(("_expiry", "_renewal")) else getattr(p, k))
          for k in {list(values)!r}}}
""")
    assert got == values, got
    return got


@contextmanager
def provider_settings(server: LiveServer, **values):
    set_provider(server, **values)
    try:
        yield
    finally:
        set_provider(server, **{k: DEFAULT_PROVIDER[k] for k in values})


def create_client(server: LiveServer, prefix: str, redirect_uris: str, secret: str = "") -> str:
    """A registered OAuthClient row; confidential with a secret (stored hashed), else public."""
    client_id = f"{prefix}-{secrets.token_hex(4)}"
    kind = "confidential" if secret else "public"
    got = server.shell_json(f"""
from oauth.models import OAuthClient
c = OAuthClient(client_id={client_id!r}, name={prefix!r}, client_type={kind!r}, client_secret={secret!r},
                authorization_grant_type=OAuthClient.GRANT_AUTHORIZATION_CODE, redirect_uris={redirect_uris!r})
c.save()
c.refresh_from_db()
result = {{"type": c.client_type, "stored": c.client_secret}}
""")
    assert got["type"] == kind, got
    if secret:
        assert got["stored"] != secret and secret not in got["stored"], "the client secret is stored in clear"
    return client_id


# --- helpers --------------------------------------------------------------------------------
@dataclass
class User:
    id: int
    login: str
    password: str


@dataclass
class Site:
    server: LiveServer
    admin: User
    meta: dict  # /.well-known/oauth-authorization-server
    log_start: int = 0

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def issuer(self) -> str:
        return self.meta["issuer"]

    @property
    def token_endpoint(self) -> str:
        return self.meta["token_endpoint"]

    def token(self, data, auth=None, headers=None) -> requests.Response:
        return requests.post(self.token_endpoint, data=data, auth=auth, headers=headers, timeout=30)

    def introspect(self, token: str, auth=None, headers=None) -> requests.Response:
        auth = (self.admin.login, self.admin.password) if auth is None and headers is None else auth
        return requests.post(self.meta["introspection_endpoint"], data={"token": token}, auth=auth, headers=headers,
                             timeout=30)

    def api_auth(self, body: dict) -> requests.Response:
        return requests.post(self.url + "/api/auth", json=body, timeout=30)

    def code(self, user: User, client_id: str, redirect_uri: str, verifier: str | None = None, **extra) -> str:
        """An authorization code from /api/auth, as the login page gets one."""
        body = {"type": "authCode", "accountName": user.login, "accountSecret": user.password, "clientId": client_id,
                "redirectUri": redirect_uri, "scope": SCOPE, **extra}
        if verifier is not None:
            body.update(codeChallenge=create_s256_code_challenge(verifier), codeChallengeMethod="S256")
        resp = self.api_auth(body)
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["type"] == "authenticated" and got["iss"] == self.issuer, got
        return got["client_code"]

    def tokens(self, user: User, client_id: str = "test-app", nonce: str | None = None) -> dict:
        """Tokens for `user` (a public client, PKCE), exchanged by authlib."""
        redirect_uri = f"http://127.0.0.1:{free_port()}/cb"
        verifier = generate_token(64)
        code = self.code(user, client_id, redirect_uri, verifier, **({"nonce": nonce} if nonce else {}))
        session = oauth_session(client_id, redirect_uri)
        return dict(session.fetch_token(self.token_endpoint, code=code, code_verifier=verifier))


def oauth_session(client_id: str, redirect_uri: str | None = None, **kw) -> OAuth2Session:
    """authlib's requests client for a public client (PKCE S256, client_id in the body)."""
    return OAuth2Session(client_id, redirect_uri=redirect_uri, scope=SCOPE, code_challenge_method="S256",
                         token_endpoint_auth_method="none", **kw)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def echo(url: str, token: str, path: str = "/jmap/") -> requests.Response:
    return requests.post(url + path, json={"using": [CORE], "methodCalls": [["Core/echo", {"hello": 1}, "e"]]},
                         headers=bearer(token), timeout=30)


def oauth_error(resp: requests.Response, status: int = 400) -> str:
    """The RFC 6749 §5.2 error of a response, checked for shape."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers["Content-Type"]
    assert resp.headers.get("Cache-Control") == "no-store"
    body = resp.json()
    assert body["error"] in OAUTH_ERRORS, body
    assert set(body) <= {"error", "error_description", "error_uri"}, body
    if status == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Basic"), resp.headers
    return body["error"]


def poll(site: Site, device_code: str, client_id: str) -> requests.Response:
    return site.token({"grant_type": GRANT_DEVICE, "device_code": device_code, "client_id": client_id})






def capture_callback(page, redirect_uri: str) -> list[str]:
    """Answer the client's loopback redirect URI in the browser (nothing listens there) and
    record the URLs it was sent to."""
    seen: list[str] = []

    def fulfil(route):
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>cb</title><p>Signed in.")

    page.route(re.compile("^" + re.escape(redirect_uri.split("?")[0])), fulfil)
    return seen


def log_in_on_page(page, user: User) -> None:
    page.fill("#accountName", user.login)
    page.fill("#accountSecret", user.password)
    page.click("#submit")


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(live):
    live.manage("bootstrap")  # the default domain (and a first administrator, if none yet)
    admin = make_account(live, "oadmin", admin=True, description="OAuth test administrator")
    log = live.var_dir / "gunicorn.log"
    meta = requests.get(live.url + "/.well-known/oauth-authorization-server", timeout=30).json()
    s = Site(live, admin, meta, log.stat().st_size)
    set_provider(live, **DEFAULT_PROVIDER)
    yield s
    set_provider(live, **DEFAULT_PROVIDER)  # leave the shared server as the other modules expect it


@dataclass
class CodeFlow:
    """What one authorization-code flow through the /login page produced."""

    user: User
    client_id: str
    redirect_uri: str
    state: str
    nonce: str
    verifier: str
    authorization_url: str
    callback_url: str
    token: dict
    session: OAuth2Session = field(repr=False)


@pytest.fixture(scope="module")
def code_flow(site, chromium) -> CodeFlow:
    """authlib builds the authorization URL (PKCE S256, state, nonce); Chromium opens it, the
    user signs in on /login, and the page redirects to the loopback redirect URI, where the
    browser's request is answered and recorded; authlib then exchanges the code."""
    user = make_account(site.server, "ann", description="Ann Example")
    client_id = "mail-client"
    redirect_uri = f"http://127.0.0.1:{free_port()}/cb"
    session = oauth_session(client_id, redirect_uri)
    verifier, nonce = generate_token(64), generate_token(24)
    url, state = session.create_authorization_url(site.meta["authorization_endpoint"], code_verifier=verifier,
                                                  nonce=nonce)

    def sign_in(page):
        seen = capture_callback(page, redirect_uri)
        page.goto(url)
        expect(page.locator("#title")).to_have_text("Sign in")
        log_in_on_page(page, user)
        page.wait_for_url(re.compile("^" + re.escape(redirect_uri)))
        assert seen == [page.url]
        return page.url

    callback = chromium.run(sign_in)
    token = session.fetch_token(site.token_endpoint, authorization_response=callback, code_verifier=verifier)
    return CodeFlow(user, client_id, redirect_uri, state, nonce, verifier, url, callback, dict(token), session)


# --- discovery ------------------------------------------------------------------------------
def test_discovery_documents_list_every_endpoint_we_serve_and_each_answers(site):
    oauth_doc = requests.get(site.url + "/.well-known/oauth-authorization-server", timeout=30)
    oidc_doc = requests.get(site.url + "/.well-known/openid-configuration", timeout=30)
    for resp in (oauth_doc, oidc_doc):
        assert resp.status_code == 200 and resp.headers["Access-Control-Allow-Origin"] == "*"
    oauth_meta, oidc_meta = oauth_doc.json(), oidc_doc.json()
    issuer = site.url
    # django-oauth-toolkit's documents leave out device_authorization_endpoint (and, in the
    # OpenID one, introspection_endpoint): ours list every endpoint in both.
    expected = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/login",
        "token_endpoint": f"{issuer}/auth/token",
        "device_authorization_endpoint": f"{issuer}/auth/device",
        "introspection_endpoint": f"{issuer}/auth/introspect",
        "userinfo_endpoint": f"{issuer}/auth/userinfo",
        "jwks_uri": f"{issuer}/auth/jwks.json",
    }
    for doc in (oauth_meta, oidc_meta):
        assert {k: doc.get(k) for k in expected} == expected, doc
        assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token", GRANT_DEVICE}
        assert doc["response_types_supported"] == ["code"]
        assert doc["code_challenge_methods_supported"] == ["S256"]
        assert doc["authorization_response_iss_parameter_supported"] is True
        assert {"openid", "offline_access", "urn:ietf:params:oauth:scope:mail"} <= set(doc["scopes_supported"])
    assert "ES256" in oidc_meta["id_token_signing_alg_values_supported"]
    assert oidc_meta["subject_types_supported"] == ["public"]

    # authlib's validators of RFC 8414 and OpenID Connect Discovery accept them. (Discovery
    # wants RS256 listed; we list the algorithm we sign with: docs/oauth.md.)
    AuthorizationServerMetadata(oauth_meta).validate()
    oidc_checked = OpenIDProviderMetadata(oidc_meta)
    for key in OpenIDProviderMetadata.REGISTRY_KEYS:
        if key != "id_token_signing_alg_values_supported":
            getattr(oidc_checked, f"validate_{key}")()

    # Each URL listed answers (registration_endpoint belongs to another slice: not checked here).
    urls = {v for doc in (oauth_meta, oidc_meta) for k, v in doc.items()
            if (k.endswith("_endpoint") or k == "jwks_uri") and k != "registration_endpoint"}
    assert urls == set(expected.values()) - {issuer}
    for url in sorted(urls):
        got = requests.get(url, timeout=30)
        assert got.status_code != 404 and got.status_code < 500, (url, got.status_code)
        if url.endswith(("/token", "/device", "/introspect")):
            assert got.status_code == 405 and got.headers["Allow"] == "POST, OPTIONS", url
            posted = requests.post(url, data={"x": "1"}, timeout=30)
            assert posted.status_code in (400, 401), (url, posted.status_code)
    assert requests.get(oauth_meta["jwks_uri"], timeout=30).json()["keys"]
    assert requests.get(oauth_meta["userinfo_endpoint"], timeout=30).status_code == 401
    page = oauth_meta["authorization_endpoint"] + "?client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb"
    assert "<form" in requests.get(page, timeout=30).text
    # a relative redirect URI gets no form (issue 10 item 3)
    assert "<form" not in requests.get(oauth_meta["authorization_endpoint"] + "?client_id=x&redirect_uri=x",
                                       timeout=30).text
    resource = requests.get(site.url + "/.well-known/oauth-protected-resource", timeout=30).json()
    assert resource["authorization_servers"] == [issuer] and "header" in resource["bearer_methods_supported"]


# --- 1. authorization code with PKCE, through the /login page -------------------------------
def test_code_flow_through_the_login_page_redirects_with_code_state_and_iss(site, code_flow):
    query = parse_qs(urlsplit(code_flow.authorization_url).query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [create_s256_code_challenge(code_flow.verifier)]
    assert urlsplit(code_flow.callback_url)._replace(query="").geturl() == code_flow.redirect_uri
    back = parse_qs(urlsplit(code_flow.callback_url).query)
    # RFC 9207: the issuer comes back with the code; the state is echoed.
    assert back["iss"] == [site.issuer]
    assert back["state"] == [code_flow.state]
    assert len(back["code"][0]) >= 32


def test_code_flow_tokens_with_the_configured_lifetimes(site, code_flow):
    token = code_flow.token
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == DEFAULT_LIFETIMES["access_token_expiry"]
    assert token["scope"] == SCOPE
    assert token["access_token"].startswith("sw1.") and token["refresh_token"].startswith("sw1.")
    assert token["access_token"] != token["refresh_token"]
    assert token["id_token"].count(".") == 2
    # The code was single-use.
    again = site.token({"grant_type": "authorization_code", "code": parse_qs(urlsplit(code_flow.callback_url).query)
                        ["code"][0], "client_id": code_flow.client_id, "redirect_uri": code_flow.redirect_uri,
                        "code_verifier": code_flow.verifier})
    assert oauth_error(again) == "invalid_grant"


def test_access_token_works_on_jmap_api_and_userinfo(site, code_flow):
    session = code_flow.session  # authlib adds the Bearer header
    resp = session.post(site.url + "/jmap/", json={"using": [CORE], "methodCalls": [["Core/echo", {"n": 7}, "c"]]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["methodResponses"] == [["Core/echo", {"n": 7}, "c"]]
    jmap_session = session.get(site.url + "/jmap/session")
    assert jmap_session.status_code == 200 and jmap_session.json()["username"] == code_flow.user.login
    assert echo(site.url, code_flow.token["access_token"], "/api").status_code == 200  # the /api alias
    info = session.get(site.meta["userinfo_endpoint"])
    assert info.status_code == 200 and info.headers["Cache-Control"] == "no-cache"
    assert info.json() == {"sub": str(code_flow.user.id), "preferred_username": code_flow.user.login,
                           "email": code_flow.user.login, "email_verified": True, "name": "Ann Example"}
    # OpenID Connect Core §5.3.1: UserInfo answers POST too (no CSRF cookie involved).
    assert session.post(site.meta["userinfo_endpoint"]).json()["sub"] == str(code_flow.user.id)
    # A refresh token, an ID token or garbage is no Bearer credential.
    for token in (code_flow.token["refresh_token"], code_flow.token["id_token"], "sw1.nothing", "x"):
        for path in ("/jmap/session", "/auth/userinfo"):
            assert requests.get(site.url + path, headers=bearer(token), timeout=30).status_code == 401, (path, token)
        assert echo(site.url, token).status_code == 401


def test_refresh_with_authlib_keeps_the_refresh_token_until_renewal(site, code_flow):
    first = code_flow.token
    session = oauth_session(code_flow.client_id, token=dict(first))
    refreshed = session.refresh_token(site.token_endpoint)
    assert refreshed["access_token"] != first["access_token"] and refreshed["token_type"] == "bearer"
    assert refreshed["expires_in"] == DEFAULT_LIFETIMES["access_token_expiry"]
    assert "id_token" not in refreshed
    # 30 days left > the 4-day renewal window: no new refresh token (authlib keeps the old one).
    assert refreshed["refresh_token"] == first["refresh_token"]
    assert session.get(site.url + "/jmap/session").status_code == 200
    assert echo(site.url, first["access_token"]).status_code == 200  # the old access token lives on
    # The new access token keeps the grant's scope (RFC 6749 §6) and names the same owner.
    info = site.introspect(refreshed["access_token"]).json()
    assert info["active"] and info["scope"] == SCOPE and info["username"] == code_flow.user.login
    # An access token is no refresh token.
    assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": first["access_token"],
                                   "client_id": code_flow.client_id})) == "invalid_grant"
    # Within the renewal window a new refresh token comes, and the old one is spent (other
    # tokens than the flow's, which the tests below still use).
    other = site.tokens(code_flow.user, client_id=code_flow.client_id)
    with provider_settings(site.server, refresh_token_renewal=31 * 86400):
        renewed = oauth_session(code_flow.client_id, token=dict(other)).refresh_token(site.token_endpoint)
    assert renewed["refresh_token"] != other["refresh_token"]
    assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": other["refresh_token"]})) \
        == "invalid_grant"
    again = oauth_session(code_flow.client_id, token=dict(renewed)).refresh_token(site.token_endpoint)
    assert echo(site.url, again["access_token"]).status_code == 200


# --- 4. the ID token, verified by joserfc -----------------------------------------------------
def test_id_token_verifies_against_the_published_jwks_with_joserfc(site, code_flow):
    jwks = requests.get(site.meta["jwks_uri"], timeout=30)
    assert jwks.status_code == 200
    [public] = jwks.json()["keys"]
    assert public["kid"] == "default" and public["alg"] == "ES256" and public["kty"] == "EC"
    assert public["use"] == "sig" and "d" not in public  # no private part
    keys = KeySet.import_key_set(jwks.json())
    token = jwt.decode(code_flow.token["id_token"], keys, algorithms=["ES256"])
    assert token.header["alg"] == "ES256" and token.header["kid"] == "default"
    claims = token.claims
    now = int(time.time())
    jwt.JWTClaimsRegistry(
        now=now, leeway=5,
        iss={"essential": True, "value": site.issuer},
        aud={"essential": True, "value": code_flow.client_id},
        sub={"essential": True, "value": str(code_flow.user.id)},
        nonce={"essential": True, "value": code_flow.nonce},
        preferred_username={"essential": True, "value": code_flow.user.login},
        email={"essential": True, "value": code_flow.user.login},
        exp={"essential": True}, iat={"essential": True},
    ).validate(claims)
    assert claims["exp"] - claims["iat"] == DEFAULT_LIFETIMES["id_token_expiry"]
    assert abs(claims["iat"] - now) < 120
    # authlib's own OpenID Connect claims check agrees.
    from authlib.oidc.core import CodeIDToken

    CodeIDToken(claims, token.header, options={"iss": {"essential": True, "value": site.issuer}},
                params={"nonce": code_flow.nonce, "client_id": code_flow.client_id}).validate(now=now, leeway=5)
    # A signature that does not match is refused.
    head, body, sig = code_flow.token["id_token"].split(".")
    forged_claims = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "1"}).encode()).decode().rstrip("=")
    with pytest.raises(BadSignatureError):
        jwt.decode(f"{head}.{forged_claims}.{sig}", keys, algorithms=["ES256"])


# --- 3. introspection (RFC 7662) ------------------------------------------------------------
def test_introspection_names_the_owner_and_needs_the_permission(site, code_flow):
    access, refresh = code_flow.token["access_token"], code_flow.token["refresh_token"]
    resp = site.introspect(access)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    info = resp.json()
    # The token's owner (the reference names the caller), with what RFC 7662 §2.2 lists.
    assert info["active"] is True
    assert info["username"] == code_flow.user.login != site.admin.login
    assert info["sub"] == str(code_flow.user.id)
    assert info["client_id"] == code_flow.client_id
    assert info["scope"] == SCOPE
    assert info["token_type"] == "bearer"
    assert info["exp"] - info["iat"] == DEFAULT_LIFETIMES["access_token_expiry"]
    assert abs(info["iat"] - time.time()) < 600
    assert info["iss"] == site.issuer
    # The refresh token is active too, with its own lifetime, and the same owner.
    info = site.introspect(refresh).json()
    assert info["active"] is True and info["username"] == code_flow.user.login
    assert info["exp"] - info["iat"] == DEFAULT_LIFETIMES["refresh_token_expiry"]
    # Unknown, malformed and non-token strings: {"active": false} and nothing else.
    for token in ("sw1.unknown", access[:-2] + ("AA" if not access.endswith("AA") else "BB"), "x" * 300, "",
                  code_flow.token["id_token"]):
        got = site.introspect(token)
        assert got.status_code == 200 and got.json() == {"active": False}, token
    # An administrator may introspect with an access token of their own as well.
    admin_token = site.tokens(site.admin)["access_token"]
    assert site.introspect(access, headers=bearer(admin_token)).json()["username"] == code_flow.user.login

    # Only callers holding sysOAuthClientGet: a plain user is refused, even about their own token.
    owner = code_flow.user
    for kwargs in ({"auth": (owner.login, owner.password)}, {"headers": bearer(access)}):
        refused = site.introspect(access, **kwargs)
        assert refused.status_code == 403, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert "active" not in refused.json()
    # Unauthenticated, or with bad credentials: 401 with the challenges.
    for kwargs in ({"headers": {}}, {"auth": (site.admin.login, "wrong")}, {"headers": bearer("sw1.nothing")},
                   {"headers": bearer(refresh)}):
        denied = site.introspect(access, **kwargs)
        assert denied.status_code == 401, (kwargs, denied.text)
        assert denied.headers["Content-Type"] == "application/problem+json"
        assert "Bearer" in denied.headers.get("WWW-Authenticate", "")


# --- 2. the device flow (RFC 8628), in the browser ------------------------------------------
def start_device(site: Site, client_id: str, **extra) -> dict:
    resp = requests.post(site.meta["device_authorization_endpoint"], data={"client_id": client_id, **extra},
                         timeout=30)
    # django-oauth-toolkit 3.4.1 with oauthlib 4.0.1 answers 500 here; ours answers the RFC.
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json" and resp.headers["Cache-Control"] == "no-store"
    return resp.json()


def test_device_flow_approved_on_the_device_page(site, chromium):
    user = make_account(site.server, "dev")
    client_id = "tv-app"
    nonce = generate_token(16)
    start = start_device(site, client_id, scope=SCOPE + " unknown:scope", nonce=nonce)
    assert set(start) == {"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in",
                          "interval"}
    assert USER_CODE.match(start["user_code"]), start["user_code"]
    assert start["verification_uri"] == f"{site.issuer}/device"
    assert start["verification_uri_complete"] == f"{site.issuer}/device/?code={start['user_code']}"
    assert start["expires_in"] == DEFAULT_LIFETIMES["user_code_expiry"] and start["interval"] == 5
    assert len(start["device_code"]) >= 32

    # authlib polls: nothing decided yet, then too fast.
    device = oauth_session(client_id)
    with pytest.raises(AuthlibOAuthError) as pending:
        device.fetch_token(site.token_endpoint, grant_type=GRANT_DEVICE, device_code=start["device_code"])
    assert pending.value.error == "authorization_pending"
    with pytest.raises(AuthlibOAuthError) as fast:
        device.fetch_token(site.token_endpoint, grant_type=GRANT_DEVICE, device_code=start["device_code"])
    assert fast.value.error == "slow_down"
    # Another client cannot redeem the code.
    assert oauth_error(poll(site, start["device_code"], "other-app")) == "invalid_grant"

    # The user opens verification_uri_complete: the code is filled in; login, password, Authorize.
    def approve(page):
        page.goto(start["verification_uri_complete"])
        expect(page.locator("#title")).to_have_text("Authorize a device")
        expect(page.locator("#code")).to_have_value(start["user_code"])
        log_in_on_page(page, user)
        expect(page.locator("#done")).to_contain_text("Device authorized")
        expect(page.locator("#login")).to_be_hidden()

    chromium.run(approve)

    token = device.fetch_token(site.token_endpoint, grant_type=GRANT_DEVICE, device_code=start["device_code"])
    assert token["token_type"] == "bearer" and token["expires_in"] == DEFAULT_LIFETIMES["access_token_expiry"]
    assert token["scope"] == SCOPE  # the unknown scope was dropped
    assert token["refresh_token"] and token["id_token"]
    claims = jwt.decode(token["id_token"], KeySet.import_key_set(requests.get(site.meta["jwks_uri"]).json()),
                        algorithms=["ES256"]).claims
    assert (claims["sub"], claims["aud"], claims["nonce"]) == (str(user.id), client_id, nonce)
    assert device.get(site.url + "/jmap/session").json()["username"] == user.login
    assert device.get(site.meta["userinfo_endpoint"]).json()["sub"] == str(user.id)
    # The device code is spent.
    assert oauth_error(poll(site, start["device_code"], client_id)) == "expired_token"
    # So is the user code: the page says so.
    def again(page):
        page.goto(site.url + "/device")
        page.fill("#code", start["user_code"])
        log_in_on_page(page, user)
        expect(page.locator("#error")).to_be_visible()
        expect(page.locator("#done")).to_be_hidden()

    chromium.run(again)


def test_device_flow_denied_on_the_device_page(site, chromium):
    user = make_account(site.server, "den")
    start = start_device(site, "tv-app")
    assert oauth_error(poll(site, start["device_code"], "tv-app")) == "authorization_pending"

    def deny(page):
        page.goto(site.url + "/device")
        expect(page.locator("#code")).to_have_value("")
        # Typed as people type it: lower case, no hyphen.
        page.fill("#code", start["user_code"].replace("-", "").lower())
        page.fill("#accountName", user.login)
        page.fill("#accountSecret", user.password)
        page.click("#deny")
        expect(page.locator("#done")).to_contain_text("denied")

    chromium.run(deny)
    device = oauth_session("tv-app")
    with pytest.raises(AuthlibOAuthError) as denied:
        device.fetch_token(site.token_endpoint, grant_type=GRANT_DEVICE, device_code=start["device_code"])
    assert denied.value.error == "access_denied"
    assert oauth_error(poll(site, start["device_code"], "tv-app")) == "expired_token"
    # Denying needs the account's password too.
    other = start_device(site, "tv-app")
    bad = site.api_auth({"type": "denyDevice", "accountName": user.login, "accountSecret": "wrong",
                         "code": other["user_code"]})
    assert bad.status_code == 200 and bad.json() == {"type": "failure"}
    assert oauth_error(poll(site, other["device_code"], "tv-app")) == "authorization_pending"


def test_device_code_expiry_follows_the_settings(site):
    user = make_account(site.server, "exp")
    audit = """
from registry.models import AuditEvent
result = [[e.actor, e.action, e.old_value, e.new_value] for e in
          AuditEvent.objects.filter(object_type="OidcProvider", field="userCodeExpiry").order_by("id")]
"""
    before = site.server.shell_json(audit)
    with provider_settings(site.server, user_code_expiry=1):
        start = start_device(site, "tv-app")
        assert start["expires_in"] == 1
        time.sleep(1.5)
        assert oauth_error(poll(site, start["device_code"], "tv-app")) == "expired_token"
        late = site.api_auth({"type": "authDevice", "accountName": user.login, "accountSecret": user.password,
                              "code": start["user_code"]})
        assert late.json() == {"type": "failure"}
    # The change and its undoing went through the registry: audited like an administrator's.
    assert site.server.shell_json(audit)[len(before):] == [["test-oauth", "update", 1_800_000, 1_000],
                                                            ["test-oauth", "update", 1_000, 1_800_000]]
    # Missing parameters are invalid_request (the reference says expired_token).
    assert oauth_error(site.token({"grant_type": GRANT_DEVICE, "client_id": "tv-app"})) == "invalid_request"
    assert oauth_error(site.token({"grant_type": GRANT_DEVICE, "device_code": "x"})) == "invalid_request"
    assert oauth_error(poll(site, "no-such-code", "tv-app")) == "expired_token"


# --- lifetimes and client rules -------------------------------------------------------------
def test_lifetimes_come_from_the_oidc_provider_settings(site):
    user = make_account(site.server, "life")
    # The documented defaults, over JMAP (x:OidcProvider, durations in milliseconds).
    got = requests.post(site.url + "/jmap/", auth=(site.admin.login, site.admin.password), timeout=30, json={
        "using": [CORE, "urn:stalwart:jmap"], "methodCalls": [["x:OidcProvider/get", {"ids": ["singleton"]}, "c"]]})
    [provider] = got.json()["methodResponses"][0][1]["list"]
    assert {k: provider[k] for k in ("accessTokenExpiry", "refreshTokenExpiry", "refreshTokenRenewal",
                                     "authCodeExpiry", "userCodeExpiry", "idTokenExpiry")} == {
        "accessTokenExpiry": 3_600_000, "refreshTokenExpiry": 2_592_000_000, "refreshTokenRenewal": 345_600_000,
        "authCodeExpiry": 600_000, "userCodeExpiry": 1_800_000, "idTokenExpiry": 900_000}
    assert provider["signatureAlgorithm"] == "es256"
    # A code lives authCodeExpiry (read back from its row).
    site.code(user, "life-app", "http://127.0.0.1:1/cb", generate_token(50))
    code_ttl = site.server.shell_json(f"""
from oauth2_provider.models import Grant
g = Grant.objects.filter(user_id={user.id}).order_by("-id").first()
result = round((g.expires - g.created).total_seconds())
""")
    assert code_ttl == DEFAULT_LIFETIMES["auth_code_expiry"]

    with provider_settings(site.server, access_token_expiry=120, id_token_expiry=60, refresh_token_expiry=7200):
        token = site.tokens(user, nonce="n")
        assert token["expires_in"] == 120
        info = site.introspect(token["access_token"]).json()
        assert info["exp"] - info["iat"] == 120
        refresh_info = site.introspect(token["refresh_token"]).json()
        assert refresh_info["exp"] - refresh_info["iat"] == 7200
        claims = jwt.decode(token["id_token"], KeySet.import_key_set(requests.get(site.meta["jwks_uri"]).json()),
                            algorithms=["ES256"]).claims
        assert claims["exp"] - claims["iat"] == 60
    with provider_settings(site.server, access_token_expiry=1):
        short = site.tokens(user)
        assert short["expires_in"] == 1 and echo(site.url, short["access_token"]).status_code == 200
        time.sleep(2.1)
        assert echo(site.url, short["access_token"]).status_code == 401
        assert site.introspect(short["access_token"]).json() == {"active": False}
        # The refresh token outlives it.
        assert site.token({"grant_type": "refresh_token", "refresh_token": short["refresh_token"],
                           "client_id": "test-app"}).status_code == 200


def test_loopback_redirects_on_any_port_and_registration_rules(site):
    user = make_account(site.server, "loop")
    registered = create_client(site.server, "loopback-app", "http://127.0.0.1/cb https://app.example.net/done")
    verifier = generate_token(50)
    body = {"type": "authCode", "accountName": user.login, "accountSecret": user.password, "clientId": registered,
            "codeChallenge": create_s256_code_challenge(verifier), "codeChallengeMethod": "S256", "scope": SCOPE}
    # RFC 8252 §7.3: a registered loopback redirect URI matches on any port.
    for redirect in ("http://127.0.0.1/cb", "http://127.0.0.1:54321/cb", f"http://127.0.0.1:{free_port()}/cb",
                     "https://app.example.net/done"):
        resp = site.api_auth({**body, "redirectUri": redirect})
        assert resp.status_code == 200 and resp.json()["type"] == "authenticated", (redirect, resp.text)
    code = site.code(user, registered, "http://127.0.0.1:40001/cb", verifier)
    token = oauth_session(registered, "http://127.0.0.1:40001/cb").fetch_token(
        site.token_endpoint, code=code, code_verifier=verifier)
    assert token["access_token"]
    # Another path, host or scheme is not the registered URI (localhost is no loopback address).
    for redirect in ("http://127.0.0.1:54321/other", "http://localhost:54321/cb", "https://127.0.0.1/cb",
                     "https://app.example.net/done/x", "http://evil.example/cb"):
        resp = site.api_auth({**body, "redirectUri": redirect})
        assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/problem+json", redirect
    # Public clients must use PKCE, and S256 only.
    for change in ({"codeChallenge": None, "codeChallengeMethod": None}, {"codeChallengeMethod": "plain"},
                   {"codeChallenge": "short", "codeChallengeMethod": "S256"}):
        resp = site.api_auth({**body, "redirectUri": "http://127.0.0.1/cb", **change})
        assert resp.status_code == 400, (change, resp.text)

    # Any client_id is accepted, unless the provider requires registration.
    unknown = {**body, "clientId": f"unknown-{secrets.token_hex(3)}", "redirectUri": "http://127.0.0.1:5/cb"}
    assert site.api_auth(unknown).status_code == 200
    with provider_settings(site.server, require_client_registration=True):
        refused = site.api_auth({**unknown, "clientId": f"unknown-{secrets.token_hex(3)}"})
        assert refused.status_code == 400 and refused.headers["Content-Type"] == "application/problem+json"
        # ... even one seen before, when it was created on the fly,
        assert site.api_auth(unknown).status_code == 400
        # ... and in the device flow, at the exchange.
        start = start_device(site, "unregistered-tv")
        assert site.api_auth({"type": "authDevice", "accountName": user.login, "accountSecret": user.password,
                              "code": start["user_code"]}).json() == {"type": "verified"}
        assert oauth_error(poll(site, start["device_code"], "unregistered-tv"), 401) == "invalid_client"
        # A registered client still works.
        assert site.api_auth({**body, "redirectUri": "http://127.0.0.1:7/cb"}).status_code == 200


def test_confidential_client_authenticates_with_its_secret(site):
    user = make_account(site.server, "conf")
    secret = secrets.token_urlsafe(32)
    client_id = create_client(site.server, "confidential-app", "https://app.example.net/cb", secret=secret)
    redirect = "https://app.example.net/cb"

    def exchange(auth=None, **form):
        code = site.code(user, client_id, redirect)  # a confidential client may skip PKCE
        return site.token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect, **form},
                          auth=auth)

    # RFC 6749 §5.2: invalid_client, 401, with a challenge for the scheme the client used.
    assert oauth_error(exchange(client_id=client_id, client_secret="wrong"), 401) == "invalid_client"
    assert oauth_error(exchange(client_id=client_id), 401) == "invalid_client"
    assert oauth_error(exchange(auth=(client_id, "wrong")), 401) == "invalid_client"
    ok = exchange(auth=(client_id, secret))
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store" and ok.headers["Pragma"] == "no-cache"
    assert ok.json()["token_type"] == "bearer"
    # authlib's confidential client (client_secret_post) does the same.
    session = OAuth2Session(client_id, secret, redirect_uri=redirect, token_endpoint_auth_method="client_secret_post")
    token = session.fetch_token(site.token_endpoint, code=site.code(user, client_id, redirect))
    assert token["access_token"]
    # Refreshing needs the secret too (RFC 6749 §6): a stolen refresh token alone is not enough.
    refresh = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
    assert oauth_error(site.token(refresh)) == "invalid_grant"  # no client id: not bound to the caller
    assert oauth_error(site.token({**refresh, "client_id": client_id}), 401) == "invalid_client"
    assert oauth_error(site.token({**refresh, "client_id": client_id, "client_secret": "wrong"}), 401) \
        == "invalid_client"
    public = create_client(site.server, "public-app", "https://app.example.net/public")
    assert oauth_error(site.token({**refresh, "client_id": public})) == "invalid_grant"  # issued to another
    assert site.token(refresh, auth=(client_id, secret)).status_code == 200
    assert session.refresh_token(site.token_endpoint)["access_token"]
    # The device flow authenticates it as well.
    device = requests.post(site.meta["device_authorization_endpoint"], data={"client_id": client_id}, timeout=30)
    assert oauth_error(device, 401) == "invalid_client"
    device = requests.post(site.meta["device_authorization_endpoint"], data={"client_id": client_id},
                           auth=(client_id, secret), timeout=30)
    assert device.status_code == 200
    assert oauth_error(poll(site, device.json()["device_code"], client_id), 401) == "invalid_client"
    assert oauth_error(site.token({"grant_type": GRANT_DEVICE, "device_code": device.json()["device_code"]},
                                  auth=(client_id, secret))) == "authorization_pending"
    # Past its expiresAt the client stops working: no code, no refresh, with or without its secret.
    live_refresh = session.token["refresh_token"]
    site.server.shell_json(f"""
from datetime import timedelta
from django.utils import timezone
from oauth.models import OAuthClient
result = OAuthClient.objects.filter(client_id={client_id!r}).update(expires_at=timezone.now() - timedelta(seconds=1))
""")
    assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": live_refresh},
                                  auth=(client_id, secret)), 401) == "invalid_client"
    assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": live_refresh,
                                   "client_id": client_id}), 401) == "invalid_client"
    expired = site.api_auth({"type": "authCode", "accountName": user.login, "accountSecret": user.password,
                             "clientId": client_id, "redirectUri": redirect})
    assert expired.status_code == 400 and expired.headers["Content-Type"] == "application/problem+json"


# --- 5. a new password revokes every token --------------------------------------------------
def test_password_change_revokes_tokens(site):
    user = make_account(site.server, "pwd")
    token = site.tokens(user)
    device_start = start_device(site, "tv-app")
    assert site.api_auth({"type": "authDevice", "accountName": user.login, "accountSecret": user.password,
                          "code": device_start["user_code"]}).json() == {"type": "verified"}
    pending_code = site.code(user, "test-app", "http://127.0.0.1:9/cb", "v" * 43)
    # Each worker caches the verdict on the token first.
    for _ in range(4):
        assert requests.get(site.url + "/jmap/session", headers=bearer(token["access_token"]),
                            timeout=30).status_code == 200
    assert site.introspect(token["access_token"]).json()["active"] is True

    site.server.shell_json(f"""
from accounts import credentials
from accounts.models import Account
credentials.set_password(Account.objects.get(pk={user.id}), {NEW_PASSWORD!r}, "test-oauth")
result = True
""")
    for _ in range(4):  # on every worker
        resp = requests.get(site.url + "/jmap/session", headers=bearer(token["access_token"]), timeout=30)
        assert resp.status_code == 401, resp.text
    assert echo(site.url, token["access_token"]).status_code == 401
    assert requests.get(site.meta["userinfo_endpoint"], headers=bearer(token["access_token"])).status_code == 401
    assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})) \
        == "invalid_grant"
    assert site.introspect(token["access_token"]).json() == {"active": False}
    assert site.introspect(token["refresh_token"]).json() == {"active": False}
    # What was granted under the old password but not yet exchanged is gone too.
    assert oauth_error(poll(site, device_start["device_code"], "tv-app")) == "expired_token"
    assert oauth_error(site.token({"grant_type": "authorization_code", "code": pending_code, "client_id": "test-app",
                                   "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": "v" * 43})) \
        == "invalid_grant"
    # The new password gets new tokens.
    fresh = site.tokens(User(user.id, user.login, NEW_PASSWORD))
    assert echo(site.url, fresh["access_token"]).status_code == 200


# --- 6. bad input: RFC errors, never a 500 ------------------------------------------------------
def test_token_endpoint_errors_follow_rfc_6749(site):
    user = make_account(site.server, "bad")
    client_id, redirect = "test-app", f"http://127.0.0.1:{free_port()}/cb"

    def exchange(code, verifier, **over):
        return site.token({"grant_type": "authorization_code", "code": code, "client_id": client_id,
                           "redirect_uri": redirect, "code_verifier": verifier, **over})

    # Grant types: unknown ones are unsupported_grant_type (the reference says invalid_grant).
    for grant in ("password", "client_credentials", "implicit", "Authorization_Code", "foo",
                  "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"):
        assert oauth_error(site.token({"grant_type": grant, "username": "a", "password": "b"})) \
            == "unsupported_grant_type", grant
    assert oauth_error(site.token({"client_id": client_id})) == "invalid_request"
    assert oauth_error(site.token({"grant_type": ""})) == "invalid_request"
    assert oauth_error(site.token({"grant_type": "authorization_code"})) == "invalid_request"
    assert oauth_error(site.token({"grant_type": "refresh_token"})) == "invalid_request"
    assert oauth_error(site.token([("grant_type", "authorization_code"), ("grant_type", "refresh_token")])) \
        == "invalid_request"  # RFC 6749 §3.2: no parameter twice

    # A wrong PKCE verifier: invalid_grant, and the code is spent (single use).
    verifier = generate_token(64)
    code = site.code(user, client_id, redirect, verifier)
    assert oauth_error(exchange(code, generate_token(64))) == "invalid_grant"
    assert oauth_error(exchange(code, verifier)) == "invalid_grant"
    # No verifier at all, and a verifier that is not one.
    for wrong in ("", "short", verifier + "!"):
        code = site.code(user, client_id, redirect, verifier)
        assert oauth_error(exchange(code, wrong)) in ("invalid_grant", "invalid_request"), wrong
    # A reused code.
    code = site.code(user, client_id, redirect, verifier)
    assert exchange(code, verifier).status_code == 200
    assert oauth_error(exchange(code, verifier)) == "invalid_grant"
    # A tampered code.
    code = site.code(user, client_id, redirect, verifier)
    tampered = code[:-1] + ("a" if code[-1] != "a" else "b")
    assert oauth_error(exchange(tampered, verifier)) == "invalid_grant"
    assert exchange(code, verifier).status_code == 200
    # The wrong client_id or redirect_uri: invalid_grant (RFC 6749 §5.2; the reference: invalid_client).
    for over in ({"client_id": "other-app"}, {"redirect_uri": redirect + "x"},
                 {"redirect_uri": redirect.replace("127.0.0.1:", "127.0.0.1:1")}):
        code = site.code(user, client_id, redirect, verifier)
        assert oauth_error(exchange(code, verifier, **over)) == "invalid_grant", over
        assert oauth_error(exchange(code, verifier)) == "invalid_grant"  # spent by the failed attempt
    # An expired code.
    with provider_settings(site.server, auth_code_expiry=1):
        code = site.code(user, client_id, redirect, verifier)
        time.sleep(1.5)
        assert oauth_error(exchange(code, verifier)) == "invalid_grant"
    # Tampered and misused tokens.
    token = site.tokens(user)
    for wrong in (token["refresh_token"][:-1] + ("A" if token["refresh_token"][-1] != "A" else "B"),
                  token["access_token"], token["id_token"], "sw1.", "nothing"):
        assert oauth_error(site.token({"grant_type": "refresh_token", "refresh_token": wrong})) == "invalid_grant"
    bad_access = token["access_token"][:-1] + ("A" if token["access_token"][-1] != "A" else "B")
    assert echo(site.url, bad_access).status_code == 401
    assert echo(site.url, token["access_token"]).status_code == 200
    # Malformed client authentication.
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
                   "Basic " + base64.b64encode(b"a\x00:b").decode()):
        resp = site.token({"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                          headers={"Authorization": header})
        assert oauth_error(resp, 401) == "invalid_client", header


def _bad_bodies() -> list[tuple[str, bytes, str | None]]:
    """(label, body, content type) that no endpoint may answer with a 500."""
    form = "application/x-www-form-urlencoded"
    return [
        ("json", b'{"grant_type": "authorization_code", "token": "x", "client_id": "a"}', "application/json"),
        ("no content type", b"grant_type=refresh_token&token=x&client_id=a", None),
        ("text/plain", b"grant_type=refresh_token", "text/plain"),
        ("empty", b"", form),
        ("non-UTF-8", b"grant_type=\xff\xfe&token=\xc3\x28&client_id=\x80", form),
        ("non-UTF-8 keys", b"\xff\xfe=1&\x80=2", form),
        ("latin-1 charset", b"grant_type=refresh_token", form + "; charset=latin-1"),
        ("nonsense charset", b"grant_type=refresh_token", form + "; charset=nonsense"),
        ("percent garbage", b"grant_type=%zz%%%&token=%ff%fe&client_id=%00", form),
        ("NUL", b"grant_type=authorization_code&code=a%00b&client_id=c%00&token=%00", form),
        ("repeated", b"grant_type=refresh_token&grant_type=password&token=a&token=b", form),
        ("many fields", b"&".join(b"f%d=1" % i for i in range(2000)), form),
        ("large", b"grant_type=refresh_token&refresh_token=" + b"A" * 20000, form),
        ("multipart without boundary", b"--x\r\n", "multipart/form-data"),
        ("multipart broken", b"--x\r\nContent-Disposition: form-data\r\n\r\nv", "multipart/form-data; boundary=x"),
        ("multipart", b'--x\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\n\xff\r\n--x--\r\n',
         "multipart/form-data; boundary=x"),
        ("deep JSON", b"[" * 50000 + b"]" * 50000, "application/json"),
        ("NaN", b'{"type": "authCode", "clientId": NaN}', "application/json"),
        ("surrogate", b'{"type": "authCode", "accountName": "\\ud800", "accountSecret": "x", "clientId": "\\udfff",'
                      b' "redirectUri": "http://127.0.0.1/cb", "codeChallenge": "' + b"a" * 43 + b'"}',
         "application/json"),
        ("wrong JSON types", b'{"type": "authDevice", "code": ["x"], "accountName": {"a": 1}}', "application/json"),
        ("JSON list", b"[1, 2]", "application/json"),
        ("JSON NUL", b'{"type": "authCode", "accountName": "a\\u0000", "accountSecret": "b"}', "application/json"),
        ("long clientId", json.dumps({"type": "authCode", "accountName": "a", "accountSecret": "b",
                                      "clientId": "c" * 5000, "redirectUri": "http://127.0.0.1/cb"}).encode(),
         "application/json"),
        ("long nonce", json.dumps({"type": "authCode", "accountName": "a", "accountSecret": "b", "clientId": "c",
                                   "nonce": "n" * 5000, "redirectUri": "http://127.0.0.1/cb"}).encode(),
         "application/json"),
        ("2 MB JSON", b'{"type": "authCode", "x": "' + b"a" * 2_000_000 + b'"}', "application/json"),
        ("long client_id form", b"grant_type=authorization_code&code=a&redirect_uri=b&client_id=" + b"c" * 3000, form),
        ("long device client_id", b"client_id=" + b"c" * 300 + b"&scope=openid", form),
        ("long device nonce", b"client_id=tv&nonce=" + b"n" * 300, form),
    ]


def _check_bad_response(label: str, path: str, resp) -> None:
    status, ctype, text = resp
    if status == 200 and path in ("/auth/device", "/auth/introspect"):
        # A form whose bytes are not UTF-8 is read with replacement characters: a client_id or
        # token that is merely odd (no code is issued to anyone, no token is found).
        body = json.loads(text)
        assert body == {"active": False} if path == "/auth/introspect" else USER_CODE.match(body["user_code"]), \
            (label, path, text)
        return
    assert status in (400, 401), (label, path, status, text[:300])
    if path == "/api/auth":
        assert status == 400 and ctype == "application/problem+json", (label, status, ctype, text[:300])
        assert json.loads(text)["status"] == 400
        return
    if ctype == "application/problem+json":
        assert json.loads(text)["status"] == status, (label, path, text)
        return
    assert ctype.startswith("application/json"), (label, path, ctype, text[:300])
    assert json.loads(text)["error"] in OAUTH_ERRORS, (label, path, text)


def test_malformed_bodies_get_rfc_errors_never_a_500(site):
    admin = (site.admin.login, site.admin.password)
    endpoints = {"/auth/token": None, "/auth/device": None, "/auth/introspect": admin, "/api/auth": None}
    for label, body, ctype in _bad_bodies():
        for path, auth in endpoints.items():
            headers = {"Content-Type": ctype} if ctype else {}
            resp = requests.post(site.url + path, data=body, headers=headers, auth=auth, timeout=60)
            _check_bad_response(label, path, (resp.status_code, resp.headers.get("Content-Type", ""), resp.text))
    # Bodies larger than announced, and lengths no client sends, over a raw socket.
    auth = b"Authorization: Basic " + base64.b64encode(f"{admin[0]}:{admin[1]}".encode()) + b"\r\n"
    for path in endpoints:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode() + auth
        for ctype in (b"application/x-www-form-urlencoded", b"application/json"):
            status, body = raw_http(
                site.url, head + b"Content-Type: " + ctype + b"\r\nContent-Length: 20000000\r\n\r\n", b"grant_type=")
            # Over HTTP_MAX_BODY the asgi serving model answers 413 problem+json before the
            # endpoint runs (docs/http-service.md); the sync model leaves it to the endpoint (400).
            assert status == 400 or (status == 413 and b'"status": 413' in body), (path, ctype, status, body[:200])
        for bad in (b"Content-Length: abc\r\n", b"Content-Length: -5\r\n",
                    b"Content-Length: 5\r\nContent-Length: 7\r\n",
                    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"):
            status, _ = raw_http(
                site.url, head + b"Content-Type: application/x-www-form-urlencoded\r\n" + bad + b"\r\n", b"a=b")
            assert status == 400, (path, bad, status)
        # Chunked, so without a length, well framed or not: Django reads no body it was not
        # told the length of (the form is empty).
        payload = b"grant_type=x&client_id=c&token=t&y=" + b"A" * 180000
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 60000]), payload[i:i + 60000])
                           for i in range(0, len(payload), 60000)) + b"0\r\n\r\n"
        for body in (chunked, b"zz\r\nclient_id=c\r\n0\r\n\r\n"):
            status, answer = raw_http(site.url, head + b"Content-Type: application/x-www-form-urlencoded\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n", body)
            # 200: the device flow of a client named by the Basic header; {"active": false}.
            assert status in (400, 401) or (status == 200 and path in ("/auth/device", "/auth/introspect")), \
                (path, status, answer[:200])
    # /api/auth: a JSON body that is no request.
    for body in ({"type": "authCode"}, {"type": "authCode", "clientId": "a", "redirectUri": "http://127.0.0.1/cb"},
                 {"type": "authCode", "clientId": "a", "redirectUri": "http://x.example/cb#frag", "codeChallenge":
                  "a" * 43}, {"type": "authCode", "clientId": "a", "redirectUri": "http://x.example/cb"},
                 {"type": "authDevice"}, {"type": "nothing"}, {}):
        resp = site.api_auth(body)
        if resp.status_code == 200:  # well-formed but no credentials: refused, never a code
            assert resp.json() == {"type": "failure"}, (body, resp.text)
        else:
            _check_bad_response(repr(body), "/api/auth", (resp.status_code, resp.headers["Content-Type"], resp.text))


def test_wrong_methods_get_405(site):
    for path in ("/auth/token", "/auth/device", "/auth/introspect", "/api/auth"):
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            resp = requests.request(method, site.url + path, timeout=30)
            # OPTIONS is the CORS preflight of the /auth/ endpoints, so their Allow names it too.
            allow = "POST" if path == "/api/auth" else "POST, OPTIONS"
            assert resp.status_code == 405 and resp.headers["Allow"] == allow, (method, path, resp.status_code)
            assert resp.headers["Content-Type"] == "application/problem+json"
    for path in ("/auth/jwks.json", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
                 "/.well-known/oauth-protected-resource", "/auth/userinfo"):
        for method in ("PUT", "DELETE", "PATCH") + (() if path == "/auth/userinfo" else ("POST",)):
            resp = requests.request(method, site.url + path, timeout=30)
            # Not the CSRF middleware's HTML 403: these endpoints use no cookies.
            assert resp.status_code == 405 and "GET" in resp.headers["Allow"], (method, path, resp.status_code)
            assert resp.headers["Content-Type"] == "application/problem+json"
    # CORS preflights under /auth/ and /.well-known/.
    for path in ("/auth/token", "/auth/device", "/auth/jwks.json", "/.well-known/openid-configuration"):
        resp = requests.options(site.url + path, headers={"Origin": "https://app.example.net",
                                                          "Access-Control-Request-Method": "POST"}, timeout=30)
        assert resp.status_code == 204 and resp.headers["Access-Control-Allow-Origin"] == "*", path


def test_no_request_made_the_server_fail(site):
    """Run last: whatever the tests above sent, the server logged no error."""
    with open(site.server.var_dir / "gunicorn.log", "rb") as f:
        f.seek(site.log_start)
        log = f.read().decode(errors="replace")
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-4000:]
