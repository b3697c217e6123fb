"""Issue 10 item 6: x:OidcProvider/set refuses signing keys that cannot sign, and the JWKS
endpoint never fails, even on a bad key written to the database by hand."""
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from oauth.models import OidcProvider

pytestmark = pytest.mark.django_db


def pem(key, password=None):
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()


def set_provider(jmap, patch):
    return jmap.ok("x:OidcProvider/set", {"update": {"singleton": patch}})


P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA2048 = rsa.generate_private_key(65537, 2048)
RSA1024 = rsa.generate_private_key(65537, 1024)


@pytest.mark.parametrize("patch, prop", [
    ({"signatureKey": "not a PEM key"}, "signatureKey"),
    ({"signatureKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "signatureKey"),
    ({"signatureKey": pem(P256).replace("PRIVATE", "PUBLIC")}, "signatureKey"),
    ({"signatureKey": pem(P256, b"pw")}, "signatureKey"),                        # encrypted
    ({"signatureKey": pem(ed25519.Ed25519PrivateKey.generate())}, "signatureAlgorithm"),
    ({"signatureKey": pem(P384)}, "signatureAlgorithm"),                         # ES256 is P-256 only
    ({"signatureKey": pem(RSA2048)}, "signatureAlgorithm"),                      # default ES256
    ({"signatureAlgorithm": "rs256", "signatureKey": pem(P256)}, "signatureAlgorithm"),
    ({"signatureAlgorithm": "rs256", "signatureKey": pem(RSA1024)}, "signatureKey"),
    ({"signatureKey": "x" * 20000}, "signatureKey"),
])
def test_unusable_keys_are_refused(jmap, client, patch, prop):
    before = OidcProvider.load().signature_key
    got = set_provider(jmap, patch)
    err = got["notUpdated"]["singleton"]
    assert err["type"] == "invalidProperties" and prop in err["properties"], err
    stored = OidcProvider.load()
    assert stored.signature_key == before and stored.signature_algorithm == "es256"
    assert client.get("/auth/jwks.json").status_code == 200


def test_algorithm_change_that_does_not_fit_the_stored_key_is_refused(jmap, client):
    assert client.get("/auth/jwks.json").json()["keys"][0]["kty"] == "EC"   # generates and stores a P-256 key
    got = set_provider(jmap, {"signatureAlgorithm": "rs256"})
    err = got["notUpdated"]["singleton"]
    assert err["type"] == "invalidProperties" and err["properties"] == ["signatureAlgorithm"], err
    assert OidcProvider.load().signature_algorithm == "es256"
    # with the key emptied at the same time, a fitting key is generated
    assert set_provider(jmap, {"signatureAlgorithm": "rs256", "signatureKey": ""})["notUpdated"] is None
    assert client.get("/auth/jwks.json").json()["keys"][0]["kty"] == "RSA"


def test_good_keys_are_accepted_and_published(jmap, client):
    assert set_provider(jmap, {"signatureKey": pem(P256)})["notUpdated"] is None
    x = client.get("/auth/jwks.json").json()["keys"][0]
    assert x["crv"] == "P-256" and x["alg"] == "ES256"
    assert set_provider(jmap, {"signatureAlgorithm": "rs256", "signatureKey": pem(RSA2048)})["notUpdated"] is None
    jwks = client.get("/auth/jwks.json").json()["keys"][0]
    assert jwks["kty"] == "RSA" and jwks["alg"] == "RS256"
    assert OidcProvider.load().signature_key == pem(RSA2048)


def test_the_mask_sent_back_keeps_the_stored_key(jmap, client):
    key = pem(P256)
    set_provider(jmap, {"signatureKey": key})
    shown = jmap.ok("x:OidcProvider/get", {"ids": ["singleton"]})["list"][0]
    assert shown["signatureKey"] == "****"
    got = set_provider(jmap, {**{k: v for k, v in shown.items() if k != "id"}, "accessTokenExpiry": 120000})
    assert got["notUpdated"] is None, got
    stored = OidcProvider.load()
    assert stored.signature_key == key and stored.access_token_expiry.total_seconds() == 120
    # "****" with no key stored stands for no key: one is generated, never "****" itself
    OidcProvider.objects.update(signature_key="")
    assert set_provider(jmap, {"signatureKey": "****"})["notUpdated"] is None
    client.get("/auth/jwks.json")
    assert OidcProvider.load().signature_key.startswith("-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize("bad", ["not a PEM key", "****", "rsa"])
def test_jwks_and_tokens_survive_a_bad_key_in_the_database(client, make_account, bad):
    from registry.services import bump_state

    OidcProvider.load()
    stored = pem(RSA2048) if bad == "rsa" else bad      # "rsa": an RSA key while the algorithm says ES256
    OidcProvider.objects.update(signature_key=stored)
    bump_state("OidcProvider")
    resp = client.get("/auth/jwks.json")
    assert resp.status_code == 200
    key = resp.json()["keys"][0]
    assert key["kty"] == "EC" and key["alg"] == "ES256"
    assert OidcProvider.load().signature_key != stored
    # ID tokens are signed with the published key
    make_account("carol")
    start = client.post("/auth/device", {"client_id": "tv"}).json()
    assert client.post("/api/auth", json.dumps({"type": "authDevice", "accountName": "carol",
                                                "accountSecret": "Tr0ubador-Quartz-Lantern-91",
                                                "code": start["user_code"]}),
                       content_type="application/json").json() == {"type": "verified"}
    tokens = client.post("/auth/token", {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                         "device_code": start["device_code"], "client_id": "tv"})
    assert tokens.status_code == 200 and tokens.json()["id_token"]
