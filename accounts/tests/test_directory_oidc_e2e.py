"""An OpenID Connect directory end to end, over HTTP (issue 12): the active directory is a second
live instance of this project acting as the identity provider (tests/oidc_idp.py), its tokens
obtained through the device flow as a client would. Nothing of the project is mocked: bearer
tokens go through the edge, the bearer chain, the OIDC backend (over real HTTP to the provider)
and the mirroring.

A provider that sends group claims is this one's tokens re-signed with its own published key
plus a `groups` claim: the provider itself has no group claim to send.
"""
from __future__ import annotations

import io
import json
import logging
import time

import pytest
import requests
from django.core.management import CommandError, call_command
from jwcrypto import jwk

from accounts.models import Account, Domain
from conftest import STRONG_PASSWORD
from directories.oidc import OidcDirectory
from registry import ids
from security.models import BlockedIp, Security
from registry import services as registry
from tests.clients import Jmap, basic
from tests.oidc_idp import STRONG, claims_of, forge, start_idp, tokens

pytestmark = pytest.mark.django_db
CORE = ["urn:ietf:params:jmap:core"]
IP = "198.51.100.30"


@pytest.fixture(scope="module")
def idp():
    with start_idp() as server:
        server.key = jwk.JWK(**server.shell_json(
            "from oauth import services\nresult = services.signing_key().export_private(as_dict=True)"))
        yield server


@pytest.fixture
def admin_key(jmap):
    """The administrator's way in once logins go to the provider: an API key, made before."""
    return jmap.ok("x:ApiKey/set", {"create": {"k": {"description": "admin"}}})["created"]["k"]["secret"]


@pytest.fixture
def oidc(idp, jmap, admin_key, domain):
    """The provider as the active directory, set up by the administrator over JMAP. ID tokens
    carry no scope claim: no scope is required."""
    local, _, dom = idp.login.partition("@")
    if not Domain.objects.filter(name=dom).exists():
        Domain.objects.create(name=dom)
    got = jmap.ok("x:Directory/set", {"create": {"d": {
        "@type": "Oidc", "description": "The other instance", "issuerUrl": idp.issuer,
        "requireScopes": [], "claimGroups": "groups"}}})
    oid = got["created"]["d"]["id"]
    assert jmap.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": oid}}}).get("updated")
    return Jmap(jmap.client, f"Bearer {admin_key}"), oid


def session(client, token, ip=IP):
    return client.get("/jmap/session", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ip)


def api_echo(client, auth, ip=IP):
    return client.post("/api", json.dumps({"using": CORE, "methodCalls": [["Core/echo", {"x": 1}, "c"]]}),
                       content_type="application/json", HTTP_AUTHORIZATION=auth, REMOTE_ADDR=ip)


def jane(idp) -> Account:
    return Account.objects.get(email_address=idp.login)


def resigned(idp, **claims) -> str:
    """One of the provider's ID tokens with `claims` changed, signed with the provider's key."""
    return forge({**claims_of(tokens(idp)["id_token"]), **claims}, idp.key, "ES256")


# --- a. the good paths ------------------------------------------------------------------------------
def test_an_opaque_access_token_signs_in_and_mirrors_the_account(client, idp, oidc):
    token = tokens(idp)["access_token"]
    assert token.count(".") < 2
    resp = session(client, token)
    assert resp.status_code == 200, resp.content
    assert resp.json()["username"] == idp.login
    account = jane(idp)
    assert account.directory_id == ids.decode(oidc[1]) and account.description == "Jane Example"
    assert api_echo(client, f"Bearer {token}").status_code == 200


def test_a_jwt_signs_in_with_its_groups(client, idp, oidc):
    token = resigned(idp, groups=["staff", "sales"])
    resp = api_echo(client, f"Bearer {token}")
    assert resp.status_code == 200, resp.content
    account = jane(idp)
    assert account.description == "Jane Example"
    dom = idp.login.split("@")[1]
    assert {g.email_address for g in account.member_groups.all()} == {f"staff@{dom}", f"sales@{dom}"}
    assert session(client, token).status_code == 200
    # the next token without one of the groups brings the mirror in line
    assert api_echo(client, f"Bearer {resigned(idp, groups=['staff'])}").status_code == 200
    assert {g.email_address for g in jane(idp).member_groups.all()} == {f"staff@{dom}"}


# --- b. refusals --------------------------------------------------------------------------------------
def test_wrong_audience_expired_and_forged_tokens_are_401_and_count_toward_a_ban(client, idp, oidc):
    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 6}, "test")
    rogue = jwk.JWK.generate(kty="EC", crv="P-256")
    genuine = claims_of(tokens(idp)["id_token"])
    bad = [
        tokens(idp, client_id="another-app")["id_token"],
        resigned(idp, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        forge(genuine, rogue, "ES256"),
    ]
    for token in bad:
        resp = session(client, token, ip="198.51.100.31")
        assert resp.status_code == 401, resp.content
        assert resp["Content-Type"] == "application/problem+json" and "Bearer" in resp["WWW-Authenticate"]
    assert not Account.objects.filter(email_address=idp.login).exists()
    statuses = [session(client, bad[i % 3], ip="198.51.100.31").status_code for i in range(8)]
    assert 429 in statuses and BlockedIp.objects.filter(address="198.51.100.31").exists()


def test_one_opaque_token_sent_many_times_costs_one_userinfo_call(client, idp, oidc):
    """Userinfo verdicts are cached per token digest (directories/oidc.py): a client re-sending
    its token, or a flood of one stolen or made-up token, reaches the provider once."""
    token = tokens(idp)["access_token"]
    garbage = "not-a-token-the-provider-issued"
    before = idp.proxy.hits["/auth/userinfo"]
    # Other addresses each time: not the edge's verdict cache keyed by the caller answering.
    for i in range(6):
        assert session(client, token, ip=f"198.51.100.{100 + i}").status_code == 200
    assert idp.proxy.hits["/auth/userinfo"] == before + 1
    for i in range(6):
        assert session(client, garbage, ip=f"198.51.100.{120 + i}").status_code == 401
    assert idp.proxy.hits["/auth/userinfo"] == before + 2


def test_a_flood_of_different_garbage_tokens_stops_reaching_the_provider_at_the_ban(client, idp, oidc):
    """Each made-up opaque token is a userinfo call (nothing else can tell it is not the
    provider's) and a failed login: the caller's address is banned after auth_ban_rate_count
    of them, and from then on none reaches the provider."""
    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 4}, "test")
    before = idp.proxy.hits["/auth/userinfo"]
    statuses = [session(client, f"garbage-{i}-{'x' * 20}", ip="198.51.100.140").status_code for i in range(20)]
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) <= {429, 403}, statuses
    assert BlockedIp.objects.filter(address="198.51.100.140").exists()
    # The failure that crosses the count was asked about too (it is answered 429); none after it.
    assert idp.proxy.hits["/auth/userinfo"] - before == 4 + 1


def test_a_flood_from_many_addresses_is_capped_per_directory(client, idp, oidc, monkeypatch, caplog):
    """Made-up tokens from many addresses, each under the ban's count: userinfo calls for unknown
    tokens are capped per directory (a bucket, OidcDirectory.userinfo_burst and userinfo_rate);
    beyond it the answer is 503 (not a ban), while a token already known still signs in."""
    monkeypatch.setattr(OidcDirectory, "userinfo_burst", 3)
    monkeypatch.setattr(OidcDirectory, "userinfo_rate", 0.001)
    token = tokens(idp)["access_token"]
    assert session(client, token, ip="198.51.100.150").status_code == 200
    before = idp.proxy.hits["/auth/userinfo"]
    statuses = [session(client, f"garbage-{i}-{'y' * 20}", ip=f"198.51.100.{160 + i}").status_code
                for i in range(12)]
    assert statuses == [401, 401] + [503] * 10, statuses
    assert idp.proxy.hits["/auth/userinfo"] - before == 2
    assert not BlockedIp.objects.exists()
    assert session(client, token, ip="198.51.100.151").status_code == 200


# --- c. the provider down --------------------------------------------------------------------------
def test_the_provider_down_is_503_not_a_ban_and_logged_once(client, idp, oidc, caplog):
    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 3}, "test")
    caplog.set_level(logging.INFO)
    # signed in once: the provider's document and keys are known (a cold directory that failed
    # to read them waits its refresh interval before asking again)
    assert session(client, tokens(idp)["access_token"], ip="198.51.100.39").status_code == 200
    fresh = [tokens(idp)["access_token"] for _ in range(2)]
    with idp.proxy.down():
        for i in range(8):
            resp = session(client, fresh[i % 2], ip="198.51.100.32")
            assert resp.status_code == 503, resp.content
            assert resp["Content-Type"] == "application/problem+json" and resp["Retry-After"]
        # the OAuth endpoints that check a bearer answer in OAuth's words
        for path in ("/auth/userinfo",):
            resp = client.get(path, HTTP_AUTHORIZATION=f"Bearer {fresh[0]}", REMOTE_ADDR="198.51.100.32")
            assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable", resp.content
        resp = client.post("/auth/introspect", {"token": fresh[0]}, HTTP_AUTHORIZATION=f"Bearer {fresh[1]}",
                           REMOTE_ADDR="198.51.100.32")
        assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable", resp.content
        resp = client.post("/auth/register", json.dumps({"redirect_uris": ["https://app.example/cb"],
                                                          # confidential: needs the caller's bearer
                                                          "token_endpoint_auth_method": "client_secret_basic"}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {fresh[1]}",
                           REMOTE_ADDR="198.51.100.32")
        assert resp.status_code == 503 and resp.json()["error"] == "temporarily_unavailable", resp.content
    assert not BlockedIp.objects.exists()
    warnings = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage(), caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r not in warnings], caplog.text
    assert session(client, fresh[0], ip="198.51.100.32").status_code == 200
    infos = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.INFO]
    assert len(infos) == 1 and "available again" in infos[0].getMessage()


# --- d. credentials of a mirrored account --------------------------------------------------------------
def test_basic_login_of_a_mirrored_account_fails_but_its_app_password_and_api_key_work(client, idp, oidc):
    token = tokens(idp)["access_token"]
    as_jane = Jmap(client, f"Bearer {token}")
    app = as_jane.ok("x:AppPassword/set", {"create": {"a": {"description": "mail app"}}})["created"]["a"]["secret"]
    key = as_jane.ok("x:ApiKey/set", {"create": {"k": {"description": "script"}}})["created"]["k"]["secret"]
    assert api_echo(client, basic(idp.login, STRONG)).status_code == 401
    assert api_echo(client, basic(idp.login, app)).status_code == 200
    assert api_echo(client, f"Bearer {key}").status_code == 200
    # and they keep working while the provider is down
    with idp.proxy.down():
        assert api_echo(client, basic(idp.login, app), ip="198.51.100.33").status_code == 200
        assert api_echo(client, f"Bearer {key}", ip="198.51.100.33").status_code == 200


# --- e. our own tokens -----------------------------------------------------------------------------------
def own_token(client) -> str:
    """An access token of this server for the administrator, through its own device flow."""
    start = client.post("/auth/device", {"client_id": "cli"}).json()
    decided = client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": "admin@example.org",
                                                   "accountSecret": STRONG_PASSWORD, "code": start["user_code"]}),
                          content_type="application/json").json()
    assert decided == {"type": "verified"}, decided
    got = client.post("/auth/token", {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                      "client_id": "cli", "device_code": start["device_code"]})
    assert got.status_code == 200, got.content
    return got.json()["access_token"]


def test_our_own_access_tokens_still_work_after_the_provider_refuses_them(client, idp, jmap, admin_key, domain,
                                                                         request):
    ours = own_token(client)
    request.getfixturevalue("oidc")
    before = idp.proxy.hits["/auth/userinfo"]
    assert session(client, ours).status_code == 200
    assert idp.proxy.hits["/auth/userinfo"] == before + 1   # the provider was asked first, and said no
    # ... and while the provider is down, ours are still ours
    with idp.proxy.down():
        assert api_echo(client, f"Bearer {ours}", ip="198.51.100.34").status_code == 200


# --- f. switching ------------------------------------------------------------------------------------------
def test_switching_to_and_from_the_provider_takes_effect_at_once(client, idp, oidc, admin_key):
    admin, oid = oidc
    token = tokens(idp)["access_token"]
    assert session(client, token).status_code == 200
    assert admin.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": None}}}).get("updated")
    assert session(client, token).status_code == 401
    assert api_echo(client, basic("admin@example.org")).status_code == 200
    assert admin.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": oid}}}).get("updated")
    assert session(client, token).status_code == 200
    assert api_echo(client, basic("admin@example.org")).status_code == 401


# --- g. manage.py directory test ------------------------------------------------------------------------------
def test_directory_test_says_an_oidc_directory_cannot_look_people_up(idp, oidc):
    before = sum(idp.proxy.hits.values())
    with pytest.raises(CommandError, match="cannot look people up"):
        call_command("directory", "test", oidc[1], idp.login, stdout=io.StringIO())
    assert sum(idp.proxy.hits.values()) == before


# --- /api/discover ----------------------------------------------------------------------------------------------
def test_discover_answers_the_providers_document(client, idp, oidc):
    admin, oid = oidc
    resp = client.get(f"/api/discover/{idp.login}")
    assert resp.status_code == 200 and resp["Cache-Control"] == "no-cache"
    assert resp.json() == requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=10).json()
    assert resp.json()["issuer"] == idp.issuer
    # the provider down, and the document not cached (the directory's settings were just changed,
    # so its backend is new): a 503 problem
    assert admin.ok("x:Directory/set", {"update": {oid: {"claimName": "nickname"}}}).get("updated")
    with idp.proxy.down():
        resp = client.get(f"/api/discover/{idp.login}")
    assert resp.status_code == 503 and resp["Content-Type"] == "application/problem+json"
    # no directory: this server's own document
    assert admin.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": None}}}).get("updated")
    resp = client.get(f"/api/discover/{idp.login}")
    assert resp.status_code == 200 and resp.json()["issuer"] != idp.issuer
