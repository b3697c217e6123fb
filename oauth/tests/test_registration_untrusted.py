"""/auth/register with bodies Python's json accepts but nothing downstream can hold: deep
nesting, lone surrogates, NUL (issue 10, item 10). Never a 500, never a stored client."""
import pytest

from oauth.models import OAuthClient

pytestmark = pytest.mark.django_db


def _post(client, data: bytes):
    return client.post("/auth/register", data=data, content_type="application/json")


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_is_a_400(client, depth):
    body = b'{"redirect_uris":["https://a.example/cb"],"x":' + b"[" * depth + b"]" * depth + b"}"
    resp = _post(client, body)
    assert resp.status_code == 400
    assert "nested" in resp.json()["detail"]
    assert not OAuthClient.objects.exists()


@pytest.mark.parametrize("metadata", [
    b'"client_name":"\\ud800"',
    b'"client_name":"a\\u0000b"',
    b'"\\udfff":"x"',
    b'"contacts":["\\ud800@example.org"]',
])
def test_unstorable_strings_are_invalid_client_metadata(client, metadata):
    resp = _post(client, b'{"redirect_uris":["https://a.example/cb"],' + metadata + b"}")
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_client_metadata"
    assert not OAuthClient.objects.exists()


def test_a_surrogate_pair_is_accepted(client):
    resp = _post(client, b'{"redirect_uris":["https://a.example/cb"],"client_name":"\\ud83d\\ude00"}')
    assert resp.status_code == 201
    assert OAuthClient.objects.count() == 1


@pytest.mark.parametrize("body", [
    b'{"type":"authCode","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"type":"authCode","accountName":"\\ud800","accountSecret":"x"}',
    b'{"type":"authCode","accountName":"a\\u0000","accountSecret":"x"}',
])
def test_api_auth_refuses_unstorable_json_with_a_400(client, body):
    resp = client.post("/api/auth", data=body, content_type="application/json")
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/problem+json"
