"""Settings › Network › HTTP and › Listeners on the web settings pages."""
from __future__ import annotations

import json
import re

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
    for group in ("Access control", "Client address", "Response headers", "Rate limits"):
        assert f">{group}<" in page
    assert "Loopback clients are always let through" in page
    html = admin_client.get("/admin/").content.decode()
    assert 'href="/admin/network/networklistener/"' in html


GENERAL_URL = "/admin/network/http/general/"
SECURITY_URL = "/admin/network/http/security/"


def test_the_menu_splits_http_into_general_and_security(admin_client):
    """The reference's tree: Settings › Network › HTTP › General / Security, two menu entries
    leading to two pages, each with its own groups, searchable by its own fields."""
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{GENERAL_URL}">HTTP › General<' in html and f'href="{SECURITY_URL}">HTTP › Security<' in html
    assert 'href="/admin/network/http/">' not in html
    rows = dict(re.findall(r'<tr data-search="([^"]*)"[^>]*>\s*<th[^>]*>\s*<a href="([^"]+)"', html))
    by_url = {url: terms for terms, url in rows.items()}
    assert "hsts" in by_url[SECURITY_URL] and "hsts" not in by_url[GENERAL_URL]
    assert "rate limit" in by_url[GENERAL_URL] and "rate limit" not in by_url[SECURITY_URL]
    # The object's old address leads to the first page.
    assert admin_client.get("/admin/network/http/")["Location"] == GENERAL_URL

    general = admin_client.get(GENERAL_URL).content.decode()
    security = admin_client.get(SECURITY_URL).content.decode()
    for group in ("Client address", "Response headers", "Rate limits"):
        assert f">{group}<" in general and f">{group}<" not in security
    for group in ("Access control", "Strict transport security", "Cross-origin requests"):
        assert f">{group}<" in security and f">{group}<" not in general
    assert "Settings › Network › HTTP › Security" in security
    assert 'name="allowed_endpoints' in security and 'name="allowed_endpoints' not in general
    assert admin_client.get("/admin/network/http/nosuchpage/").status_code == 404


def test_saving_one_page_keeps_the_other_pages_fields(admin_client):
    rule = {"match": [{"if": "starts_with(path, '/api/')", "then": "403"}], "else": "200"}
    page = admin_client.get(SECURITY_URL).content.decode()
    resp = admin_client.post(SECURITY_URL, form_data(page, allowed_endpoints=json.dumps(rule), enable_hsts="on"))
    assert resp.status_code == 302 and resp["Location"] == SECURITY_URL
    page = admin_client.get(GENERAL_URL).content.decode()
    resp = admin_client.post(GENERAL_URL, form_data(page, rate_limit_anonymous_count="7"), follow=True)
    assert resp.redirect_chain, re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', resp.content.decode(), re.S)
    assert "The Network › HTTP › General settings were saved." in resp.content.decode()
    http = Http.load()
    assert http.allowed_endpoints == rule and http.enable_hsts and http.rate_limit_anonymous_count == 7
    # Only what the General page changed is in its audit rows.
    assert not AuditEvent.objects.filter(object_type="Http", field="allowedEndpoints", old_value=rule).exists()


def test_a_page_needs_the_same_permission_as_the_object(client, django_user_model):
    """The split pages go through the admin's own permission check: no sysHttpGet, no page."""
    resp = client.get(SECURITY_URL)
    assert resp.status_code == 302 and "/admin/login/" in resp["Location"]


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


def test_security_page_describes_itself_with_readable_labels(admin_client):
    """The Security page's text is about its own groups (not the whole object's), its labels are
    written as people write them, and the rule editor's help has no JSON example (the editor
    writes the JSON; the example stays in the model's help text for the JSON faces)."""
    html = admin_client.get(SECURITY_URL).content.decode()
    general = admin_client.get(GENERAL_URL).content.decode()
    assert "Which requests reach an endpoint at all, HSTS on TLS listeners" in html
    assert "Which requests reach an endpoint" not in general and "Where the client address" in general
    assert "rate limits of the HTTP service" not in html  # the object's description, listing every group
    assert re.search(r'<label[^>]*for="id_enable_hsts"[^>]*>Enable HSTS', html)
    assert re.search(r'<label[^>]*for="id_use_permissive_cors"[^>]*>Permissive CORS', html)
    assert re.search(r'<label[^>]*for="id_use_x_forwarded"[^>]*>Use X-Forwarded headers', general)
    assert "Loopback clients are always let through" in html and '{&quot;match&quot;' not in html
    assert '"match"' not in re.sub(r"<textarea.*?</textarea>|<script.*?</script>|value=\"[^\"]*\"", "", html, flags=re.S)
