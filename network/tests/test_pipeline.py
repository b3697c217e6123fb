"""The request pipeline through the app: blocked addresses, the access rule, rate limits, scan
bans, forwarded addresses and global headers (network/pipeline.py)."""
from __future__ import annotations

import json

import pytest

from security.models import AllowedIp, BlockedIp
from tests.clients import basic

CLIENT = "203.0.113.5"
OPEN = "/.well-known/jmap"  # an endpoint that answers anyone (307 to the session)
INSIDE = "10.1.2.3"


@pytest.fixture
def http(jmap):
    """Update the Http settings through JMAP; returns the /set response's updated entry."""

    def update(**props):
        got = jmap.ok("x:Http/set", {"update": {"singleton": props}})
        assert "singleton" in got.get("updated", {}), got
        return got

    return update


def problem_of(response) -> dict:
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    return json.loads(response.content)


# --- blocked and allowed addresses --------------------------------------------------------------
class TestBlockedIp:
    def test_blocked_address_gets_403_before_anything(self, client, http, db):
        http(responseHeaders={"X-Served-By": "stalwart"})
        BlockedIp.objects.create(address="203.0.113.0/24")
        for path in ("/jmap/session", "/.well-known/jmap", "/no/such/thing", "/admin/login/", "/static/x.css"):
            response = client.get(path, REMOTE_ADDR=CLIENT)
            assert response.status_code == 403, path
            assert problem_of(response) == {"type": "about:blank", "status": 403, "title": "Forbidden",
                                            "detail": "Forbidden"}
            # The early refusal carries none of the global headers.
            assert "X-Served-By" not in response
        assert client.get(OPEN, REMOTE_ADDR="198.51.100.1").status_code == 307
        assert client.get(OPEN, REMOTE_ADDR="198.51.100.1")["X-Served-By"] == "stalwart"

    def test_allowed_address_overrides_a_block(self, client, db):
        BlockedIp.objects.create(address="203.0.113.0/24")
        AllowedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307
        assert client.get(OPEN, REMOTE_ADDR="203.0.113.6").status_code == 403

    def test_expired_block_is_ignored(self, client, db):
        from datetime import timedelta

        from django.utils import timezone

        BlockedIp.objects.create(address=CLIENT, expires_at=timezone.now() - timedelta(minutes=1))
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307

    def test_loopback_is_never_blocked(self, client, db):
        BlockedIp.objects.create(address="127.0.0.0/8")
        assert client.get(OPEN).status_code == 307


# --- the access rule ----------------------------------------------------------------------------
API_FROM_INSIDE = {"match": [{"if": "starts_with(path, '/api/') && !is_ip_in_cidr(remote_ip, '10.0.0.0/8')",
                              "then": "403"}], "else": "200"}


class TestAccessRule:
    def test_default_allows_everything(self, jmap, client):
        got = jmap.ok("x:Http/get", {"ids": ["singleton"]})["list"][0]
        assert got["allowedEndpoints"] == {"else": "200"}
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307

    def test_api_only_from_inside(self, client, http, make_account):
        http(allowedEndpoints=API_FROM_INSIDE)
        response = client.get("/api/schema", REMOTE_ADDR=CLIENT, HTTP_AUTHORIZATION=basic("admin@example.org"))
        assert response.status_code == 403
        assert problem_of(response)["title"] == "Forbidden"
        # Other paths from outside, and the API from inside, pass.
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307
        inside = client.get("/api/schema", REMOTE_ADDR=INSIDE, HTTP_AUTHORIZATION=basic("admin@example.org"))
        assert inside.status_code in (200, 302)

    def test_any_status_denies_with_that_status(self, client, http):
        http(allowedEndpoints={"match": [{"if": "method == 'DELETE'", "then": "405"},
                                         {"if": "contains(['api', '.well-known'], split(path, '/')[1])",
                                          "then": "200"}],
                               "else": "404"})
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307
        denied = client.get("/admin/login/", REMOTE_ADDR=CLIENT)
        assert denied.status_code == 404 and problem_of(denied)["title"] == "Not Found"
        assert client.delete(OPEN, REMOTE_ADDR=CLIENT).status_code == 405

    def test_headers_and_listener_variables(self, client, http):
        http(allowedEndpoints={"match": [{"if": "contains(headers, 'x-api-client: yes') && listener == 'http'",
                                          "then": "200"}], "else": "401"})
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 401
        assert client.get(OPEN, REMOTE_ADDR=CLIENT, HTTP_X_API_CLIENT="yes").status_code == 307

    def test_loopback_is_never_denied(self, client, http):
        http(allowedEndpoints={"else": "403"})
        assert client.get(OPEN).status_code == 307
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 403

    @pytest.mark.parametrize("rule, where", [
        ({"else": "url_path == '/'"}, "position 0"),
        ({"match": [{"if": "starts_with(path, '/api/'", "then": "403"}], "else": "200"}, "match/0/if"),
        ({"match": [{"if": "true", "then": "403"}]}, "else"),
        ({"else": "nosuchfunction(path)"}, "nosuchfunction"),
    ])
    def test_rules_that_do_not_parse_are_refused(self, jmap, rule, where):
        got = jmap.ok("x:Http/set", {"update": {"singleton": {"allowedEndpoints": rule}}})
        error = got["notUpdated"]["singleton"]
        assert error["type"] == "invalidProperties" and error["properties"] == ["allowedEndpoints"], error
        assert where in error["description"], error
        assert jmap.ok("x:Http/get", {"ids": ["singleton"]})["list"][0]["allowedEndpoints"] == {"else": "200"}


    def test_catastrophic_pattern_is_evaluated_in_linear_time(self, client, http):
        # '^/(a+)+$' backtracks exponentially in Python's re: a 27-character path took seconds
        # and a 40-character one would never end. RE2 answers at once, and the rule still works.
        http(allowedEndpoints={"match": [{"if": "matches('^/(a+)+$', path)", "then": "403"}], "else": "200"})
        hostile = client.get("/" + "a" * 60 + "b", REMOTE_ADDR=CLIENT)
        assert hostile.status_code == 404, hostile.status_code
        assert client.get("/" + "a" * 60, REMOTE_ADDR=CLIENT).status_code == 403
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307

    @pytest.mark.parametrize("pattern", ["(a)\\1", "(?<=a)b", "(?=x)", "a{2000}{2000}"])
    def test_patterns_without_a_linear_time_match_are_refused(self, jmap, pattern):
        rule = {"match": [{"if": f"matches('{pattern}', path)", "then": "403"}], "else": "200"}
        got = jmap.ok("x:Http/set", {"update": {"singleton": {"allowedEndpoints": rule}}})
        error = got["notUpdated"]["singleton"]
        assert error["type"] == "invalidProperties" and error["properties"] == ["allowedEndpoints"], error
        assert "invalid regular expression" in error["description"], error

    def test_lone_surrogate_in_a_matched_literal_is_no_error(self, jmap):
        rule = {"match": [{"if": "matches('a', '\ud800a')", "then": "403"}], "else": "200"}
        got = jmap.ok("x:Http/set", {"update": {"singleton": {"allowedEndpoints": rule}}})
        assert "singleton" in (got.get("updated") or {}) or "singleton" in (got.get("notUpdated") or {}), got


# --- rate limits --------------------------------------------------------------------------------
class TestRateLimits:
    def test_anonymous_limit_per_address(self, client, http):
        http(rateLimitAnonymous={"count": 3, "period": 60000})
        for _ in range(3):
            assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307
        refused = client.get(OPEN, REMOTE_ADDR=CLIENT)
        assert refused.status_code == 429
        assert problem_of(refused)["title"] == "Too Many Requests"
        assert 1 <= int(refused["Retry-After"]) <= 60
        assert refused["RateLimit-Policy"] == '"requests";q=3;w=60'
        assert refused["RateLimit"].startswith('"requests";r=0;t=')
        # Another address has its own window; loopback is never limited.
        assert client.get(OPEN, REMOTE_ADDR="203.0.113.99").status_code == 307
        for _ in range(5):
            assert client.get(OPEN).status_code == 307

    def test_allowed_ip_is_exempt(self, client, http):
        http(rateLimitAnonymous={"count": 1, "period": 60000})
        AllowedIp.objects.create(address="203.0.113.0/28")
        for _ in range(4):
            assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 307

    def test_authenticated_limit_per_account(self, client, http, make_account):
        http(rateLimitAuthenticated={"count": 2, "period": 60000}, rateLimitAnonymous=None)
        make_account("bob")
        body = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "0"]]})
        for ip in (CLIENT, "198.51.100.7"):  # the account is counted, whatever the address
            response = client.post("/jmap/", body, content_type="application/json", REMOTE_ADDR=ip,
                                   HTTP_AUTHORIZATION=basic("bob@example.org"))
            assert response.status_code == 200
        refused = client.post("/jmap/", body, content_type="application/json", REMOTE_ADDR=CLIENT,
                              HTTP_AUTHORIZATION=basic("bob@example.org"))
        assert refused.status_code == 429 and refused["RateLimit-Policy"] == '"requests";q=2;w=60'
        # Another account is not affected.
        make_account("carol")
        other = client.post("/jmap/", body, content_type="application/json", REMOTE_ADDR=CLIENT,
                            HTTP_AUTHORIZATION=basic("carol@example.org"))
        assert other.status_code == 200

    def test_unlimited_requests_permission(self, client, http, make_account):
        http(rateLimitAuthenticated={"count": 1, "period": 60000})
        make_account("dora", permissions_mode="merge", enabled_permissions=["unlimitedRequests"])
        body = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "0"]]})
        for _ in range(3):
            response = client.post("/jmap/", body, content_type="application/json", REMOTE_ADDR=CLIENT,
                                   HTTP_AUTHORIZATION=basic("dora@example.org"))
            assert response.status_code == 200

    @pytest.mark.parametrize("value, kind", [
        ({"count": 0, "period": 60000}, "validationFailed"), ({"count": 5, "period": 10}, "validationFailed"),
        ({"count": "5", "period": 60000}, "invalidPatch"), ({"count": 5}, "invalidPatch"),
        ([5, 60000], "invalidPatch"), ({"count": 5, "period": 1000, "burst": 2}, "invalidPatch"),
    ])
    def test_bad_rates_are_refused(self, jmap, value, kind):
        got = jmap.ok("x:Http/set", {"update": {"singleton": {"rateLimitAnonymous": value}}})
        error = got["notUpdated"]["singleton"]
        assert error["type"] == kind, error
        named = error.get("properties") or [e["property"] for e in error["validationErrors"]]
        assert named[0].startswith("rateLimitAnonymous") or named[0].startswith("rate_limit_anonymous"), error
        assert jmap.ok("x:Http/get", {"ids": ["singleton"]})["list"][0]["rateLimitAnonymous"] == {
            "count": 100, "period": 60000}


# --- scan bans ----------------------------------------------------------------------------------
class TestScanBan:
    def test_unknown_path_that_scanners_ask_for_bans(self, client, db):
        assert client.get("/wp-login.php", REMOTE_ADDR=CLIENT).status_code == 404
        row = BlockedIp.objects.get(address=CLIENT)
        assert row.reason == "portScanning" and row.expires_at is None
        assert client.get(OPEN, REMOTE_ADDR=CLIENT).status_code == 403

    def test_ordinary_unknown_path_does_not_ban(self, client, db):
        assert client.get("/favicon.ico", REMOTE_ADDR=CLIENT).status_code == 404
        assert not BlockedIp.objects.exists()

    def test_known_routes_and_allowed_addresses_never_ban(self, client, jmap):
        # A routed endpoint answering 404 is not a scan (the reference checks only fallthrough).
        assert client.get("/api/discover/", REMOTE_ADDR=CLIENT).status_code == 404
        created = jmap.ok("x:AllowedIp/set", {"create": {"a": {"address": "198.51.100.0/24"}}})
        assert "a" in created["created"], created
        assert client.get("/cgi-bin/test.cgi", REMOTE_ADDR="198.51.100.9").status_code == 404
        assert client.get("/cgi-bin/test.cgi").status_code == 404  # loopback
        assert not BlockedIp.objects.exists()

    def test_patterns_and_period_are_settings(self, jmap, client):
        got = jmap.ok("x:Security/set", {"update": {"singleton": {"scanBanPaths": {"*/.env": True},
                                                                  "scanBanPeriod": 3_600_000}}})
        assert "singleton" in got["updated"], got
        assert client.get("/wp-login.php", REMOTE_ADDR=CLIENT).status_code == 404
        assert not BlockedIp.objects.exists()
        assert client.get("/app/.ENV", REMOTE_ADDR=CLIENT).status_code == 404
        row = BlockedIp.objects.get(address=CLIENT)
        assert row.expires_at is not None


# --- forwarded addresses ------------------------------------------------------------------------
class TestForwarded:
    def test_forwarded_headers_are_ignored_by_default(self, client, db):
        BlockedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, HTTP_X_FORWARDED_FOR=CLIENT).status_code == 307

    @pytest.mark.parametrize("headers", [
        {"HTTP_X_FORWARDED_FOR": f"{CLIENT}, 10.0.0.1"},
        {"HTTP_FORWARDED": f"for={CLIENT};proto=https"},
        {"HTTP_FORWARDED": f'for="{CLIENT}:4711"'},
        {"HTTP_FORWARDED": 'for="[2001:db8::5]:4711"', "blocked": "2001:db8::5"},
    ])
    def test_forwarded_client_is_used_when_configured(self, client, http, headers):
        headers = dict(headers)
        address = headers.pop("blocked", CLIENT)
        http(useXForwarded=True)
        BlockedIp.objects.create(address=address)
        assert client.get(OPEN, **headers).status_code == 403
        assert client.get(OPEN, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 307

    def test_garbage_forwarded_falls_back_to_the_peer(self, client, http):
        http(useXForwarded=True)
        assert client.get(OPEN, HTTP_X_FORWARDED_FOR="not-an-ip").status_code == 307


# --- global headers -----------------------------------------------------------------------------
class TestResponseHeaders:
    def test_configured_headers_replace_the_handlers(self, client, http):
        http(responseHeaders={"Cache-Control": "private", "X-Frame-Options": "SAMEORIGIN",
                              "Content-Security-Policy": "default-src 'self'"})
        for path in ("/jmap/session", "/.well-known/jmap", "/nothing-here", "/admin/login/"):
            response = client.get(path)
            assert response["Cache-Control"] == "private", path
            assert response["X-Frame-Options"] == "SAMEORIGIN"
            assert response["Content-Security-Policy"] == "default-src 'self'"

    def test_permissive_cors(self, client, http):
        assert "Access-Control-Allow-Origin" not in client.get(OPEN)
        http(usePermissiveCors=True)
        response = client.get(OPEN, HTTP_ORIGIN="https://app.example")
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Access-Control-Allow-Methods"] == "POST, GET, PATCH, PUT, DELETE, HEAD, OPTIONS"
        assert response["Access-Control-Allow-Headers"] == "Authorization, Content-Type, Accept, X-Requested-With"

    def test_hsts_only_over_tls(self, client, http):
        http(enableHsts=True)
        assert "Strict-Transport-Security" not in client.get(OPEN)
        secure = client.get(OPEN, secure=True)
        assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"

    @pytest.mark.parametrize("headers", [
        {"Bad Name": "x"}, {"X-Injected": "a\r\nSet-Cookie: x=1"}, {"Content-Length": "5"},
        {"Transfer-Encoding": "chunked"}, {"X-A": 5}, ["X-A", "b"], {"X-A": "a", "x-a": "b"}, {"X-Bell": "a\x07"},
    ])
    def test_bad_headers_are_refused(self, jmap, headers):
        got = jmap.ok("x:Http/set", {"update": {"singleton": {"responseHeaders": headers}}})
        error = got["notUpdated"]["singleton"]
        expected = "invalidPatch" if isinstance(headers, list) else "invalidProperties"
        assert error["type"] == expected and error["properties"] == ["responseHeaders"], error
