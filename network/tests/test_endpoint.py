"""The endpoint decorator's rules (network/endpoint.py), through endpoints that use them."""
import json

import pytest

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



# --- the catch-alls and the JMAP well-known redirect go through the same decorator -----------
NOT_FOUND_BODY = {"type": "about:blank", "status": 404, "title": "Not Found",
                  "detail": "The requested resource does not exist on this server."}


def _set_response_headers(headers):
    from network.models import Http
    from registry import services as registry_services

    registry_services.update(Http._declaration, Http.SINGLETON_PK, {"response_headers": headers}, "test")


@pytest.mark.parametrize("path", ["/.well-known/nothing", "/metrics/otel", "/api/nothing", "/jmap/nothing",
                                  "/auth/nothing", "/healthz/nothing", "/autodiscover/nothing"])
@pytest.mark.parametrize("method", ["get", "post", "put", "delete", "patch"])
def test_catch_alls_are_404_problems_for_every_method(client, db, path, method):
    _set_response_headers({"X-Catch-All": "yes"})
    resp = getattr(client, method)(path)
    assert problem_of(resp, 404) == NOT_FOUND_BODY
    # The edge's headers, no Allow (every method is a 404, not a 405), no cookie, no CSRF page.
    assert resp["X-Catch-All"] == "yes" and "Allow" not in resp and not resp.cookies


def test_catch_all_options_is_the_preflight_only_under_well_known(client, db):
    cors = client.options("/.well-known/nothing")
    assert cors.status_code == 204 and all(cors[name] == value for name, value in CORS.items())
    assert problem_of(client.options("/metrics/otel"), 404) == NOT_FOUND_BODY
    assert problem_of(client.options("/api/nothing"), 404) == NOT_FOUND_BODY


def test_a_page_path_no_route_answers_keeps_the_html_page(client, db):
    resp = client.get("/no/such/page")
    assert resp.status_code == 404 and resp["Content-Type"].startswith("text/html")


def test_the_jmap_well_known_redirect_takes_get_and_head(client, db):
    for method in ("get", "head"):
        resp = getattr(client, method)("/.well-known/jmap")
        assert resp.status_code == 307 and resp["Location"] == "/jmap/session"
        assert resp["Cache-Control"] == "no-cache, no-store, must-revalidate"
    preflight = client.options("/.well-known/jmap")
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == "*"
    resp = client.post("/.well-known/jmap")
    body = problem_of(resp, 405)
    assert resp["Allow"] == "GET, HEAD, OPTIONS" and body["detail"] == "This endpoint takes GET, HEAD, OPTIONS requests."
