"""The OpenID Connect directory against a live identity provider: a second instance of this
project behind a counting proxy (tests/oidc_idp.py), whose tokens are obtained over HTTP through
the device flow, exactly as a client would get them. Counting shows what is cached and that a
flood of forged key ids does not hammer the provider; switching the proxy off is the provider
going down.

Time-dependent checks (expiry, the key refetch interval) move the directory's clock instead of
sleeping: the directory takes the clock it reads as an argument.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from collections import Counter

import pytest
import requests
from jwcrypto import jwk

from directories.base import DirectoryError, DirectoryUnavailable, OidcConfig, build
from directories.oidc import OidcDirectory
from tests.live import free_port
from tests.oidc_idp import STRONG, claims_of, forge, start_idp, tokens


@pytest.fixture(scope="module")
def idp():
    with start_idp() as server:
        yield server


def directory(idp, clock=time.time, **overrides) -> OidcDirectory:
    """A directory for the provider; ID tokens carry no scope claim, so no scope is required
    unless a test says so."""
    return OidcDirectory(OidcConfig(**{"issuer_url": idp.issuer, "require_scopes": (), **overrides}), clock=clock)


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


def unsigned(claims: dict, alg: str = "none") -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{enc({'alg': alg, 'typ': 'JWT', 'kid': 'default'})}.{enc(claims)}."


def published_key(idp) -> jwk.JWK:
    return jwk.JWK(**requests.get(f"{idp.url}/auth/jwks.json", timeout=10).json()["keys"][0])


# --- the good paths ---------------------------------------------------------------------------
def test_an_id_token_is_validated_offline_with_the_published_keys(idp):
    backend = directory(idp)
    got = tokens(idp)
    before = Counter(idp.proxy.hits)
    principal = backend.authenticate_bearer(got["id_token"])
    assert principal is not None
    assert principal.name == idp.login and principal.verified and principal.kind == "user"
    assert principal.description == "Jane Example" and principal.emails == (idp.login,)
    assert principal.secret_hash is None
    meta = backend.metadata()
    assert meta["issuer"] == idp.issuer and meta["userinfo_endpoint"] == f"{idp.issuer}/auth/userinfo"
    fetched = idp.proxy.hits - before
    assert fetched == Counter({"/.well-known/openid-configuration": 1, "/auth/jwks.json": 1}), fetched
    # cached: a second token costs the provider nothing
    again = tokens(idp)
    before = Counter(idp.proxy.hits)
    assert backend.authenticate_bearer(again["id_token"]).name == idp.login
    assert backend.authenticate_bearer(got["id_token"]).name == idp.login
    assert idp.proxy.hits == before


def test_an_opaque_access_token_is_resolved_through_userinfo_and_cached(idp):
    backend = directory(idp)
    got = tokens(idp)
    assert got["access_token"].count(".") < 2       # opaque (sw1.…), not a JWT
    before = Counter(idp.proxy.hits)
    principal = backend.authenticate_bearer(got["access_token"])
    assert principal is not None and principal.name == idp.login and principal.verified
    assert principal.description == "Jane Example"
    assert idp.proxy.hits["/auth/userinfo"] - before["/auth/userinfo"] == 1
    assert backend.authenticate_bearer(got["access_token"]) == principal
    assert idp.proxy.hits["/auth/userinfo"] - before["/auth/userinfo"] == 1   # cached by digest
    # a token the provider does not know: its 401 is a refusal, not an error
    assert backend.authenticate_bearer("sw1." + secrets.token_urlsafe(32)) is None
    assert backend.authenticate_bearer(got["refresh_token"]) is None


def test_the_username_claim_falls_back_to_email_and_takes_the_domain(idp):
    got = tokens(idp)
    # a claim the provider does not send: the email claim names the account
    assert directory(idp, claim_username="upn").authenticate_bearer(got["id_token"]).name == idp.login
    # a claim without a domain and no usernameDomain: the email claim too
    assert directory(idp, claim_username="name").authenticate_bearer(got["id_token"]).name == idp.login
    # sub is the provider's account id: with usernameDomain it becomes an address of that domain
    sub = claims_of(got["id_token"])["sub"]
    mapped = directory(idp, claim_username="sub", username_domain="corp.example").authenticate_bearer(got["id_token"])
    assert mapped.name == f"{sub}@corp.example" and mapped.emails == (f"{sub}@corp.example", idp.login)


def test_the_backend_cannot_check_passwords_or_look_people_up(idp):
    backend = build(OidcConfig(issuer_url=idp.issuer))
    assert isinstance(backend, OidcDirectory)
    before = Counter(idp.proxy.hits)
    assert backend.authenticate(idp.login, STRONG) is None
    assert backend.authenticate(idp.login, tokens(idp)["access_token"]) is None   # not even a token as password
    assert backend.lookup(idp.login) is None
    assert idp.proxy.hits == before
    backend.close()


# --- refusals -----------------------------------------------------------------------------------
def test_a_token_for_another_audience_is_refused(idp):
    other = tokens(idp, client_id="another-app")["id_token"]
    assert claims_of(other)["aud"] == "another-app"
    assert directory(idp).authenticate_bearer(other) is None
    assert directory(idp, require_audience="another-app").authenticate_bearer(other).name == idp.login
    assert directory(idp, require_audience=None).authenticate_bearer(other).name == idp.login


def test_a_token_without_the_required_scopes_is_refused(idp):
    token = tokens(idp)["id_token"]
    assert directory(idp, require_scopes=("openid",)).authenticate_bearer(token) is None
    assert directory(idp, require_scopes=("openid", "email")).authenticate_bearer(token) is None


def test_expired_and_not_yet_valid_tokens_are_refused(idp):
    token = tokens(idp)["id_token"]
    clock = Clock()
    backend = directory(idp, clock=clock)
    assert backend.authenticate_bearer(token) is not None
    life = claims_of(token)["exp"] - time.time()
    clock.offset = life + backend.leeway + 5        # just past the expiry and its leeway
    assert backend.authenticate_bearer(token) is None
    clock.offset = life + backend.leeway - 5        # inside the leeway
    assert backend.authenticate_bearer(token) is not None
    clock.offset = -(backend.leeway + 60)           # before nbf and iat
    assert backend.authenticate_bearer(token) is None


def test_a_token_with_another_issuer_is_refused(idp):
    """Signed by the provider's own key, but naming another issuer (the provider's public URL
    changed while the token was issued)."""
    def public_url(value):
        idp.shell(f"""
from accounts.models import SystemSettings
from registry import services
services.update(SystemSettings._declaration, None, {{"public_url": {value!r}}}, "test-oidc")
""")

    public_url("http://elsewhere.example")
    try:
        token = tokens(idp)["id_token"]
    finally:
        public_url("")
    assert claims_of(token)["iss"] == "http://elsewhere.example"
    assert directory(idp).authenticate_bearer(token) is None
    assert directory(idp).authenticate_bearer(tokens(idp)["id_token"]) is not None


def test_the_discovery_document_must_name_the_configured_issuer(idp):
    # the same provider under another address: its document names the proxy's, not this one
    with pytest.raises(DirectoryError, match="issuer"):
        directory(idp, issuer_url=idp.url).authenticate_bearer(tokens(idp)["id_token"])
    with pytest.raises(DirectoryError, match="issuer"):
        directory(idp, issuer_url=idp.issuer + "/").authenticate_bearer(tokens(idp)["id_token"])


def test_tokens_signed_with_keys_the_provider_does_not_publish_are_refused(idp):
    backend = directory(idp)
    genuine = claims_of(tokens(idp)["id_token"])
    assert backend.authenticate_bearer(tokens(idp)["id_token"]) is not None
    rogue_ec = jwk.JWK.generate(kty="EC", crv="P-256")
    rogue_rsa = jwk.JWK.generate(kty="RSA", size=2048)
    assert backend.authenticate_bearer(forge(genuine, rogue_ec, "ES256")) is None             # the published kid
    assert backend.authenticate_bearer(forge(genuine, rogue_ec, "ES256", kid=None)) is None    # no kid
    assert backend.authenticate_bearer(forge(genuine, rogue_rsa, "RS256", kid="rogue")) is None
    # the same claims re-signed by the provider's own key (a sanity check of forge()) pass
    assert genuine["aud"] == "stalwart" and genuine["iss"] == idp.issuer


def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused(idp):
    backend = directory(idp)
    genuine = claims_of(tokens(idp)["id_token"])
    assert backend.authenticate_bearer(unsigned(genuine)) is None
    assert backend.authenticate_bearer(unsigned(genuine, alg="None")) is None
    public = published_key(idp)
    for secret in (public.export_to_pem(), json.dumps(public.export_public(as_dict=True)).encode(),
                   public.export_public().encode()):
        hmac_key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(secret).rstrip(b"=").decode())
        for alg in ("HS256", "HS512"):
            assert backend.authenticate_bearer(forge(genuine, hmac_key, alg)) is None
    # a JWS in JSON serialisation, or with the signature cut off, is no token either
    token = tokens(idp)["id_token"]
    head, body, sig = token.split(".")
    assert backend.authenticate_bearer(json.dumps({"protected": head, "payload": body, "signature": sig})) is None
    assert backend.authenticate_bearer(f"{head}.{body}.") is None


def test_a_rotated_key_is_fetched_again_at_most_once_per_interval(idp):
    clock = Clock()
    backend = directory(idp, clock=clock)
    old = tokens(idp)["id_token"]
    assert backend.authenticate_bearer(old) is not None
    old_key = published_key(idp)
    # the provider gets a new key (emptied: one is generated on first use); same kid "default"
    idp.shell("""
from oauth.models import OidcProvider
from registry import services
services.update(OidcProvider._declaration, None, {"signature_key": ""}, "test-oidc")
""")
    new = tokens(idp)["id_token"]
    assert published_key(idp).thumbprint() != old_key.thumbprint()
    before = idp.proxy.hits["/auth/jwks.json"]
    # the keys were fetched a moment ago: no new fetch yet, the token is refused for now
    assert backend.authenticate_bearer(new) is None
    assert idp.proxy.hits["/auth/jwks.json"] == before
    clock.offset = backend.refresh_interval + 1
    assert backend.authenticate_bearer(new).name == idp.login
    assert idp.proxy.hits["/auth/jwks.json"] == before + 1
    # the old key is gone from the set: the token it signed is refused
    assert backend.authenticate_bearer(old) is None
    # a flood of unknown kids: at most one more fetch per interval
    rogue = jwk.JWK.generate(kty="EC", crv="P-256")
    claims = claims_of(new)
    clock.offset = 2 * (backend.refresh_interval + 1)
    for _ in range(40):
        assert backend.authenticate_bearer(forge(claims, rogue, "ES256", kid=secrets.token_hex(8))) is None
    assert idp.proxy.hits["/auth/jwks.json"] == before + 2
    assert backend.authenticate_bearer(new).name == idp.login
    # a token that does not even parse (a one-character signature is no base64) costs no fetch,
    # even once the interval has passed
    clock.offset = 3 * (backend.refresh_interval + 1)
    head, body, _ = new.split(".")
    assert backend.authenticate_bearer(f"{head}.{body}.A") is None
    assert idp.proxy.hits["/auth/jwks.json"] == before + 2


def test_an_rsa_provider_and_the_hmac_confusion_attack_on_its_key(idp):
    """The classic attack: HS256 keyed with the provider's RSA public key, as PEM or JWK."""
    def algorithm(alg):
        idp.shell(f"""
from oauth.models import OidcProvider
from registry import services
services.update(OidcProvider._declaration, None, {{"signature_algorithm": {alg!r}, "signature_key": ""}}, "t")
""")

    algorithm("rs256")
    try:
        token = tokens(idp)["id_token"]
        assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "RS256"
        backend = directory(idp)
        assert backend.authenticate_bearer(token).name == idp.login
        claims, public = claims_of(token), published_key(idp)
        assert public["kty"] == "RSA"
        for secret in (public.export_to_pem(), public.export_public().encode()):
            hmac_key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(secret).rstrip(b"=").decode())
            assert backend.authenticate_bearer(forge(claims, hmac_key, "HS256")) is None
        # an RSA key of our own under the published kid, and PS256 with no key of that alg
        assert backend.authenticate_bearer(forge(claims, jwk.JWK.generate(kty="RSA", size=2048), "RS256")) is None
        assert backend.authenticate_bearer(forge(claims, jwk.JWK.generate(kty="RSA", size=2048), "PS256")) is None
    finally:
        algorithm("es256")


# --- the provider down ---------------------------------------------------------------------------
def test_a_provider_that_cannot_be_reached_is_unavailable_not_a_refusal(idp):
    got = tokens(idp)
    dead = OidcDirectory(OidcConfig(issuer_url=f"http://127.0.0.1:{free_port()}", require_scopes=()))
    with pytest.raises(DirectoryUnavailable):
        dead.authenticate_bearer(got["id_token"])
    with pytest.raises(DirectoryUnavailable):
        dead.authenticate_bearer(got["access_token"])

    warm = directory(idp)
    assert warm.authenticate_bearer(got["id_token"]) is not None
    idp.proxy.stop()
    try:
        # keys are cached: a JWT still validates offline while the provider is down
        assert warm.authenticate_bearer(tokens(idp)["id_token"]).name == idp.login
        # an opaque token needs the provider
        with pytest.raises(DirectoryUnavailable):
            warm.authenticate_bearer(tokens(idp)["access_token"])
        # a cold directory cannot even read the discovery document, and does not retry at once
        cold = directory(idp)
        with pytest.raises(DirectoryUnavailable):
            cold.authenticate_bearer(got["id_token"])
    finally:
        idp.proxy.start()
    with pytest.raises(DirectoryUnavailable):
        cold.authenticate_bearer(got["id_token"])
    assert directory(idp).authenticate_bearer(got["access_token"]).name == idp.login
