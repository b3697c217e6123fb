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
        # The JSON reader refuses a lone surrogate before any rule is compiled: never a 5xx.
        rule = {"match": [{"if": "matches('a', '\ud800a')", "then": "403"}], "else": "200"}
        resp = jmap.post({"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"], "methodCalls": [
            ["x:Http/set", {"update": {"singleton": {"allowedEndpoints": rule}}}, "c0"]]})
        assert resp.status_code == 400 and resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON", resp.content


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
PROXY = "10.0.0.2"  # a reverse proxy in front of the server, listed in proxyTrustedNetworks


@pytest.fixture
def behind_proxy(jmap, http):
    """useXForwarded on, and 10.0.0.0/8 the trusted proxies' network (set through JMAP)."""
    http(useXForwarded=True)
    got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"proxyTrustedNetworks": {"10.0.0.0/8": True}}}})
    assert "singleton" in got["updated"], got


class TestForwarded:
    def test_forwarded_headers_are_ignored_by_default(self, client, db):
        BlockedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, HTTP_X_FORWARDED_FOR=CLIENT).status_code == 307

    @pytest.mark.parametrize("headers", [
        {"HTTP_X_FORWARDED_FOR": CLIENT},
        {"HTTP_X_FORWARDED_FOR": f"{CLIENT}, 10.0.0.1"},
        {"HTTP_X_FORWARDED_FOR": f"198.51.100.77, {CLIENT}"},  # the client's own entry is never reached
        {"HTTP_X_FORWARDED_FOR": f"{CLIENT}:4711"},
        {"HTTP_FORWARDED": f"for={CLIENT};proto=https"},
        {"HTTP_FORWARDED": f'for="{CLIENT}:4711"'},
        {"HTTP_FORWARDED": f'for=198.51.100.77, for="{CLIENT}";proto=https, for=10.0.0.9'},
        {"HTTP_FORWARDED": 'for="[2001:db8::5]:4711"', "blocked": "2001:db8::5"},
    ])
    def test_forwarded_client_is_used_from_a_trusted_proxy(self, client, behind_proxy, headers):
        headers = dict(headers)
        address = headers.pop("blocked", CLIENT)
        BlockedIp.objects.create(address=address)
        assert client.get(OPEN, REMOTE_ADDR=PROXY, **headers).status_code == 403
        assert client.get(OPEN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 307

    def test_x_forwarded_for_wins_over_forwarded(self, client, behind_proxy):
        # A proxy that writes X-Forwarded-For passes a client's own Forwarded header through.
        BlockedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT,
                          HTTP_FORWARDED="for=198.51.100.1").status_code == 403

    @pytest.mark.parametrize("peer", [CLIENT, "127.0.0.1", "192.168.1.1"])
    def test_headers_from_an_untrusted_peer_are_ignored(self, client, behind_proxy, peer):
        BlockedIp.objects.create(address="198.51.100.0/24")
        assert client.get(OPEN, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 307
        assert client.get(OPEN, REMOTE_ADDR=peer, HTTP_FORWARDED="for=198.51.100.1").status_code == 307

    def test_headers_need_use_x_forwarded_even_from_a_trusted_proxy(self, client, jmap):
        jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"proxyTrustedNetworks": {PROXY: True}}}})
        BlockedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT).status_code == 307

    def test_garbage_forwarded_falls_back_to_the_peer(self, client, behind_proxy):
        BlockedIp.objects.create(address="198.51.100.0/24")
        assert client.get(OPEN, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="not-an-ip").status_code == 307
        assert client.get(OPEN, REMOTE_ADDR=PROXY, HTTP_FORWARDED="for=unknown").status_code == 307
        # A garbled hop ends the walk: the hop after it (nearer the server) is the client.
        assert client.get(OPEN, REMOTE_ADDR=PROXY,
                          HTTP_X_FORWARDED_FOR="127.0.0.1, junk, 198.51.100.3").status_code == 403

    def test_a_chain_of_trusted_proxies_is_walked(self, client, behind_proxy):
        BlockedIp.objects.create(address=CLIENT)
        assert client.get(OPEN, REMOTE_ADDR=PROXY,
                          HTTP_X_FORWARDED_FOR=f"{CLIENT}, 10.9.9.9, 10.0.0.3").status_code == 403


LOOPBACK_CLAIMS = [
    {"HTTP_X_FORWARDED_FOR": "127.0.0.1"},
    {"HTTP_X_FORWARDED_FOR": "::1"},
    {"HTTP_X_FORWARDED_FOR": "::ffff:127.0.0.1"},
    {"HTTP_FORWARDED": "for=127.0.0.1"},
    {"HTTP_FORWARDED": 'for="[::1]:80"'},
]


class TestForwardedLoopback:
    """A client that a proxy reports as 127.0.0.1 is not on this machine: no exemption."""

    @pytest.mark.parametrize("claim", LOOPBACK_CLAIMS)
    def test_access_rule_applies(self, client, http, behind_proxy, claim):
        http(allowedEndpoints={"else": "403"})
        assert client.get(OPEN, REMOTE_ADDR=PROXY, **claim).status_code == 403
        assert client.get(OPEN, REMOTE_ADDR=CLIENT, **claim).status_code == 403
        assert client.get(OPEN).status_code == 307  # this machine itself still passes

    @pytest.mark.parametrize("claim", LOOPBACK_CLAIMS)
    def test_blocks_apply(self, client, behind_proxy, claim):
        BlockedIp.objects.create(address="127.0.0.0/8")
        BlockedIp.objects.create(address="::1")
        assert client.get(OPEN, REMOTE_ADDR=PROXY, **claim).status_code == 403
        assert client.get(OPEN).status_code == 307

    def test_failures_ban_it(self, client, jmap, behind_proxy, make_account):
        jmap.ok("x:Security/set", {"update": {"singleton": {"authBanRate": {"count": 2, "period": 3600000}}}})
        claim = {"HTTP_X_FORWARDED_FOR": "127.0.0.1"}
        statuses = [client.get("/jmap/session", REMOTE_ADDR=PROXY, HTTP_AUTHORIZATION=basic("admin@example.org", "x"),
                               **claim).status_code for _ in range(4)]
        assert statuses == [401, 401, 429, 403], statuses
        assert BlockedIp.objects.filter(address="127.0.0.1").exists()
        # The proxy itself and this machine are not banned.
        assert client.get(OPEN, REMOTE_ADDR=PROXY).status_code == 307
        assert client.get(OPEN).status_code == 307

    def test_rate_limits_apply(self, client, http, behind_proxy):
        http(rateLimitAnonymous={"count": 2, "period": 60000})
        claim = {"HTTP_X_FORWARDED_FOR": "127.0.0.1"}
        statuses = [client.get(OPEN, REMOTE_ADDR=PROXY, **claim).status_code for _ in range(3)]
        assert statuses == [307, 307, 429], statuses


class TestTrustedProxyItself:
    def test_a_trusted_proxy_is_never_banned(self, client, jmap, behind_proxy):
        jmap.ok("x:Security/set", {"update": {"singleton": {"authBanRate": {"count": 1, "period": 3600000}}}})
        for _ in range(3):
            got = client.get("/jmap/session", REMOTE_ADDR=PROXY, HTTP_AUTHORIZATION=basic("admin@example.org", "x"))
            assert got.status_code == 401
        assert not BlockedIp.objects.exists()


class TestProxyTrustedNetworksField:
    def test_every_face_shows_it(self, jmap, admin_client):
        got = jmap.ok("x:SystemSettings/get", {"ids": ["singleton"]})["list"][0]
        assert got["proxyTrustedNetworks"] == {}
        updated = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {
            "proxyTrustedNetworks": {"10.0.0.0/8": True, "2001:db8::/32": True, "192.0.2.1": True}}}})
        assert "singleton" in updated["updated"], updated
        got = jmap.ok("x:SystemSettings/get", {"ids": ["singleton"], "properties": ["proxyTrustedNetworks"]})
        assert got["list"][0]["proxyTrustedNetworks"] == {"10.0.0.0/8": True, "192.0.2.1": True,
                                                          "2001:db8::/32": True}
        schema = admin_client.get("/api/schema", HTTP_AUTHORIZATION=basic("admin@example.org"), follow=True).json()
        assert "proxyTrustedNetworks" in json.dumps(schema)
        # manage.py (local mode) reads the same declaration through the schema.
        import io

        from django.core.management import call_command

        out = io.StringIO()
        call_command("get", "systemsettings", "--json", stdout=out)
        assert json.loads(out.getvalue())["proxyTrustedNetworks"]["2001:db8::/32"] is True
        call_command("update", "systemsettings", "--field", "proxyTrustedNetworks/198.51.100.0~124=true",
                     stdout=io.StringIO())
        from accounts.models import SystemSettings

        assert "198.51.100.0/24" in SystemSettings.load().proxy_trusted_networks
        page = admin_client.get("/admin/accounts/systemsettings/1/change/")
        assert page.status_code == 200
        assert b"proxy_trusted_networks" in page.content and b"2001:db8::/32" in page.content

    @pytest.mark.parametrize("value", [
        {"not-an-ip": True}, {"10.0.0.0/33": True}, {"10.0.0.1/8/8": True}, {"fe80::1%eth0": True},
        {" 10.0.0.1": True}, {"": True}, {"x" * 5000: True},
    ])
    # A NUL in any JMAP argument is refused before the property is read (jmapapi/tests).
    def test_invalid_networks_are_refused(self, jmap, value):
        got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"proxyTrustedNetworks": value}}})
        error = got["notUpdated"]["singleton"]
        assert error["type"] in ("invalidProperties", "validationFailed"), error
        assert "proxyTrustedNetworks" in json.dumps(error), error
        assert jmap.ok("x:SystemSettings/get", {"ids": ["singleton"]})["list"][0]["proxyTrustedNetworks"] == {}

    @pytest.mark.parametrize("value", [["10.0.0.0/8"], "10.0.0.0/8", {"10.0.0.0/8": False}, {"10.0.0.0/8": 1}])
    def test_wrong_shapes_are_refused(self, jmap, value):
        got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"proxyTrustedNetworks": value}}})
        assert got["notUpdated"]["singleton"]["type"] in ("invalidProperties", "invalidPatch"), got

    def test_admin_page_refuses_a_bad_network(self, admin_client):
        page = admin_client.get("/admin/accounts/systemsettings/1/change/")
        form = _form_fields(page.content.decode())
        form["proxy_trusted_networks"] = "10.0.0.0/8\nnot-a-network"
        response = admin_client.post("/admin/accounts/systemsettings/1/change/", form)
        assert response.status_code == 200
        assert b"not-a-network is not an IP address" in response.content
        from accounts.models import SystemSettings

        assert SystemSettings.load().proxy_trusted_networks == []
        form["proxy_trusted_networks"] = "10.0.0.0/8\n192.0.2.7"
        assert admin_client.post("/admin/accounts/systemsettings/1/change/", form).status_code == 302
        assert SystemSettings.load().proxy_trusted_networks == ["10.0.0.0/8", "192.0.2.7"]


def _form_fields(html: str) -> dict:
    """The values an unchanged submit of the admin change form would send."""
    from html.parser import HTMLParser

    fields: dict = {}

    class Parser(HTMLParser):
        textarea = None
        select = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            name = a.get("name")
            if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
                if a.get("type") == "checkbox":
                    if "checked" in a:
                        fields[name] = a.get("value", "on")
                else:
                    fields[name] = a.get("value", "")
            elif tag == "textarea" and name:
                self.textarea = name
                fields[name] = ""
            elif tag == "select" and name:
                self.select = name
            elif tag == "option" and self.select and "selected" in a:
                fields[self.select] = a.get("value", "")

        def handle_endtag(self, tag):
            if tag == "textarea":
                self.textarea = None
            if tag == "select":
                self.select = None

        def handle_data(self, data):
            if self.textarea:
                fields[self.textarea] += data

    Parser().feed(html)
    return fields


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
