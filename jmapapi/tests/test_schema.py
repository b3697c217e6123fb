import hashlib

import pytest

pytestmark = pytest.mark.django_db


def test_schema_redirects_to_its_hash_and_describes_every_object(jmap):
    resp = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth)
    assert resp.status_code == 302
    location = resp["Location"]
    digest = location.rsplit("/", 1)[1]
    resp = jmap.client.get(location, HTTP_AUTHORIZATION=jmap.auth)
    assert resp.status_code == 200 and "immutable" in resp["Cache-Control"]
    assert hashlib.sha256(resp.content).hexdigest() == digest
    doc = resp.json()
    auth = doc["objects"]["x:Authentication"]
    assert auth["type"] == "singleton" and auth["permissionPrefix"] == "sysAuthentication"
    props = doc["fields"]["x:Authentication"]["properties"]
    assert props["passwordMinLength"]["type"] == {"type": "number", "format": "unsignedInteger", "min": 1, "max": 100}
    assert props["maxAppPasswords"]["type"]["nullable"] is True
    assert props["defaultUserRoleIds"]["type"]["class"]["objectName"] == "x:Role"
    assert props["passwordDefaultExpiry"]["type"]["format"] == "duration"
    assert doc["fields"]["x:Authentication"]["defaults"]["passwordMinLength"] == 8
    assert {"name": "three", "label": "Safely unguessable: moderate protection from offline slow-hash scenario. "
            "(guesses < 10^10)"} in doc["enums"]["PasswordStrength"]
    assert [e["label"] for e in doc["enums"]["PasswordHashAlgorithm"]] == ["Argon2id", "Bcrypt", "Scrypt", "Pbkdf2"]
    assert doc["objects"]["x:Account"]["type"] == "object"
    assert doc["fields"]["x:Account"]["properties"]["roles"]["type"]["type"] == "object"
    assert doc["fields"]["x:Account"]["properties"]["emailAddress"]["update"] == "serverSet"
    sections = [s["title"] for s in doc["forms"]["x:Authentication"]["sections"]]
    assert sections == ["Directory", "Default roles", "Password policy", "Credentials"]
    # a stale hash redirects to the current one
    stale = jmap.client.get("/api/schema/0000", HTTP_AUTHORIZATION=jmap.auth)
    assert stale.status_code == 302 and stale["Location"] == location


def test_schema_needs_authentication(client):
    assert client.get("/api/schema").status_code == 401


def test_schema_may_not_be_stored_by_shared_caches(jmap, client):
    # The schema needs credentials; a shared cache must not serve it to whoever asks next.
    location = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth)["Location"]
    directives = {d.strip() for d in jmap.client.get(location, HTTP_AUTHORIZATION=jmap.auth)["Cache-Control"].split(",")}
    assert "private" in directives and "public" not in directives and "immutable" in directives
    assert client.get(location).status_code == 401
