"""The endpoint decorator's rules (network/endpoint.py), through endpoints that use them."""
import json

from stalwart_site.http import CORS


def problem_of(resp, status):
    assert resp.status_code == status, resp.content
    assert resp["Content-Type"] == "application/problem+json"
    return json.loads(resp.content)


def test_options_is_a_cors_preflight_or_an_empty_204(client, db):
    cors = client.options("/auth/token")
    assert cors.status_code == 204 and all(cors[name] == value for name, value in CORS.items())
    bare = client.options("/auth/register")
    assert bare.status_code == 204 and "Access-Control-Allow-Origin" not in bare


def test_other_methods_are_405_problems_with_allow(client, db):
    body = problem_of(client.get("/auth/token"), 405)
    assert client.get("/auth/token")["Allow"] == "POST, OPTIONS"
    assert body["detail"] == "This endpoint takes POST, OPTIONS requests."
    assert problem_of(client.put("/jmap/session"), 405)["detail"] == "The session resource takes GET requests."


def test_authentication_failures_are_problems_with_both_challenges(client, db):
    resp = client.get("/auth/userinfo")
    assert problem_of(resp, 401)["detail"] == "You have to authenticate first."
    assert resp["WWW-Authenticate"].startswith('Bearer realm="Stalwart Server"')
    assert 'Basic realm="Stalwart Server"' in resp["WWW-Authenticate"]
    resp = client.get("/auth/userinfo", HTTP_AUTHORIZATION="Basic !!!")
    assert problem_of(resp, 401)["detail"] == "Malformed Basic credentials."


def test_a_body_over_the_limit_is_a_400_whatever_its_length_says(client, db):
    big = b"{" + b" " * 20480 + b"}"
    body = problem_of(client.post("/auth/register", data=big, content_type="application/json"), 400)
    assert body["detail"] == "The registration request is larger than 20480 bytes."
    assert body["title"] == "Invalid parameters"
    body = problem_of(client.post("/auth/register", data=b"{}", content_type="application/json",
                                  CONTENT_LENGTH="x"), 400)
    assert body["detail"] == "Invalid Content-Length."

