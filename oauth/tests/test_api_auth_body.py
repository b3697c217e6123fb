"""/api/auth validates its body with its DRF serializer (AuthRequestSerializer): a wrong type,
a missing field, a value too long or unstorable is a 400 problem+json that names the field,
never a 5xx, and never reaches the password check; the OpenAPI document describes the body."""
from __future__ import annotations

import json

import pytest

from conftest import STRONG_PASSWORD
from oauth.views import API_AUTH_MAX_FIELD
from security.models import BlockedIp

pytestmark = pytest.mark.django_db


def post(client, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/api/auth", data=data, content_type="application/json")


@pytest.mark.parametrize("body, field, says", [
    ({}, "type", "required"),
    ({"type": "nothing"}, "type", "not a valid choice"),
    ({"type": 3}, "type", "not a valid choice"),
    ({"type": "authDevice", "accountName": 12, "accountSecret": "x"}, "accountName", "Not a valid string"),
    ({"type": "authDevice", "accountName": "bob", "accountSecret": True}, "accountSecret", "Not a valid string"),
    ({"type": "authDevice", "accountName": "bob", "accountSecret": ["x"]}, "accountSecret", "Not a valid string"),
    ({"type": "authDevice", "accountName": "bob", "accountSecret": {"a": 1}}, "accountSecret", "Not a valid string"),
    ({"type": "authCode", "clientId": "a" * (API_AUTH_MAX_FIELD + 1)}, "clientId", f"no more than {API_AUTH_MAX_FIELD}"),
    ({"type": "authDevice", "accountName": "bob", "accountSecret": "x" * (API_AUTH_MAX_FIELD + 1)},
     "accountSecret", "no more than"),
])
def test_a_bad_field_is_a_400_naming_it(client, make_account, body, field, says):
    make_account("bob")
    resp = post(client, body)
    assert resp.status_code == 400, resp.content
    assert resp["Content-Type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 400 and problem["title"] == "Invalid parameters"
    assert problem["detail"].startswith(f"{field}: ") and says in problem["detail"], problem
    assert field in problem["errors"]
    # Refused before the password was looked at: no failure counted, nothing banned.
    assert not BlockedIp.objects.exists()


@pytest.mark.parametrize("body", [b"[1, 2]", b'"authCode"', b"17", b"null"])
def test_a_body_that_is_no_object_is_a_400(client, body):
    resp = post(client, body)
    assert resp.status_code == 400 and resp["Content-Type"] == "application/problem+json"
    assert resp.json()["detail"]


def test_values_reach_the_login_as_sent(client, make_account):
    """Whitespace is kept (a password may end with a space), null is as good as absent, and a
    key the serializer does not know is ignored."""
    make_account("carol", password=STRONG_PASSWORD + " ")
    start = client.post("/auth/device", {"client_id": "tv", "scope": "openid"}).json()
    code = start["user_code"]
    trimmed = post(client, {"type": "authDevice", "accountName": "carol", "accountSecret": STRONG_PASSWORD,
                            "code": code, "mfaToken": None, "extra": [1]})
    assert trimmed.json() == {"type": "failure"}
    ok = post(client, {"type": "authDevice", "accountName": "carol", "accountSecret": STRONG_PASSWORD + " ",
                       "code": code, "mfaToken": None, "extra": [1]})
    assert ok.status_code == 200 and ok.json() == {"type": "verified"}


def test_the_openapi_document_describes_the_body(client):
    doc = client.get("/api/openapi.json").json()
    schema = doc["components"]["schemas"]["AuthRequestRequest"]
    assert schema["required"] == ["type"]
    assert schema["properties"]["type"]["$ref"].endswith("/AuthRequestTypeEnum")
    assert doc["components"]["schemas"]["AuthRequestTypeEnum"]["enum"] == ["authCode", "authDevice", "denyDevice"]
    secret = schema["properties"]["accountSecret"]
    assert secret["type"] == "string" and secret["maxLength"] == API_AUTH_MAX_FIELD and secret["nullable"] is True
