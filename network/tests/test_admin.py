"""Settings › Network › HTTP and › Listeners on the web settings pages."""
from __future__ import annotations

import json

import pytest

from accounts.tests.test_admin_settings import form_data
from network.models import Http, NetworkListener
from registry.models import AuditEvent

HTTP_URL = "/admin/network/http/1/change/"


@pytest.fixture
def page(admin_client):
    resp = admin_client.get(HTTP_URL)
    assert resp.status_code == 200
    return resp.content.decode()


def test_http_page_groups_and_help(admin_client, page):
    assert "Settings › Network › HTTP" in page
    for group in ("Security", "Response headers", "Rate limits"):
        assert f">{group}<" in page
    assert "Loopback clients are always let through" in page
    html = admin_client.get("/admin/").content.decode()
    assert 'href="/admin/network/http/"' in html and 'href="/admin/network/networklistener/"' in html


def test_rule_saved_from_the_page(admin_client, page):
    rule = {"match": [{"if": "starts_with(path, '/api/')", "then": "403"}], "else": "200"}
    resp = admin_client.post(HTTP_URL, form_data(page, allowed_endpoints=json.dumps(rule),
                                                 response_headers=json.dumps({"X-Frame-Options": "DENY"})))
    assert resp.status_code == 302
    http = Http.load()
    assert http.allowed_endpoints == rule and http.response_headers == {"X-Frame-Options": "DENY"}
    assert AuditEvent.objects.filter(object_type="Http", field="allowedEndpoints").exists()


@pytest.mark.parametrize("field, value, message", [
    ("allowed_endpoints", json.dumps({"else": "url_path == '/'"}), "unknown variable &#x27;url_path&#x27; at position 0"),
    ("allowed_endpoints", json.dumps({"match": [{"if": "true", "then": "403"}]}), "missing"),
    ("response_headers", json.dumps({"Bad Name": "x"}), "is not a valid header name"),
    ("rate_limit_anonymous_count", "0", "greater than or equal to 1"),
])
def test_bad_values_are_inline_errors(admin_client, page, field, value, message):
    before = Http.load().allowed_endpoints
    resp = admin_client.post(HTTP_URL, form_data(page, **{field: value}))
    assert resp.status_code == 200
    assert message in resp.content.decode()
    assert Http.load().allowed_endpoints == before


def test_listener_created_from_the_page(admin_client):
    add = admin_client.get("/admin/network/networklistener/add/")
    assert add.status_code == 200
    resp = admin_client.post("/admin/network/networklistener/add/", form_data(
        add.content.decode(), name="internal", bind="10.0.0.1:8081\n[::1]:8082", protocol="http", use_tls="on",
        enabled="on"))
    assert resp.status_code == 302, resp.content.decode()[:2000]
    listener = NetworkListener.objects.get(name="internal")
    assert sorted(listener.bind) == ["10.0.0.1:8081", "[::1]:8082"] and listener.use_tls


@pytest.mark.parametrize("bind", ["10.0.0.1", "example.org:80", "10.0.0.1:70000", "::1:80"])
def test_bad_bind_addresses_are_refused(jmap, bind):
    got = jmap.ok("x:NetworkListener/set", {"create": {"l": {"name": "x", "bind": {bind: True}, "protocol": "http"}}})
    assert got["notCreated"]["l"]["type"] in ("validationFailed", "invalidProperties"), got
    assert not NetworkListener.objects.filter(name="x").exists()


def test_names_and_addresses_are_fixed_once_created(jmap, admin_client):
    listener = NetworkListener.objects.get(name="http")
    lid = jmap.ok("x:NetworkListener/get", {})["list"][0]["id"]
    got = jmap.ok("x:NetworkListener/set", {"update": {lid: {"name": "renamed"}}})
    error = got["notUpdated"][lid]
    assert error["type"] == "invalidProperties" and error["properties"] == ["name"], error
    # Other properties still change, and the same name may be sent back unchanged.
    got = jmap.ok("x:NetworkListener/set", {"update": {lid: {"name": "http", "enabled": False}}})
    assert lid in got["updated"], got
    assert NetworkListener.objects.get(pk=listener.pk).name == "http"
    created = jmap.ok("x:BlockedIp/set", {"create": {"b": {"address": "198.51.100.0/24"}}})["created"]["b"]
    got = jmap.ok("x:BlockedIp/set", {"update": {created["id"]: {"address": "198.51.100.0/25"}}})
    assert got["notUpdated"][created["id"]]["properties"] == ["address"]
    # The settings page shows the name without an input; the schema says it is immutable.
    page = admin_client.get(f"/admin/network/networklistener/{listener.pk}/change/").content.decode()
    assert 'name="name"' not in page and ">http<" in page
    location = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth)["Location"]
    props = jmap.client.get(location, HTTP_AUTHORIZATION=jmap.auth).json()["fields"]["x:NetworkListener"]["properties"]
    assert props["name"]["update"] == "immutable" and props["bind"]["update"] == "mutable"
