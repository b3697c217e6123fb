"""The admin pages as a mail administrator meets them, over HTTP: the menu and its search terms,
the dashboard, the widgets for composite values (what a browser posts from them), the rule
check, History, saved messages, errors over two fields, and aliases on the account page."""
from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.test import Client

from accounts.models import Account, Alias, Authentication, Role
from accounts.tests.test_admin_settings import form_data
from network.models import Http
from registry import ids
from registry import services as registry
from registry.models import AuditEvent
from security.models import BlockedIp, Security
from tests.clients import STRONG_PASSWORD

HTTP_URL = "/admin/network/http/1/change/"
AUTH_URL = "/admin/accounts/authentication/1/change/"
SECURITY_URL = "/admin/security/security/1/change/"


def menu(html: str) -> list[tuple[str, str, str]]:
    """(group, label, search terms) of every entry of the dashboard's menu."""
    out = []
    for module in re.findall(r'<div class="app-[^"]*module.*?</table>', html, re.S):
        group = unescape(re.search(r'<a href="[^"]*" class="section"\s*>(.*?)</a>', module, re.S).group(1).strip())
        for terms, label in re.findall(r'<tr data-search="([^"]*)".*?<th scope="row"[^>]*>\s*<a [^>]*>(.*?)</a>',
                                       module, re.S):
            out.append((group, unescape(label.strip()), unescape(terms)))
    return out


def post_form(client, url, **changes):
    return client.post(url, form_data(client.get(url).content.decode(), **changes))


# --- the menu ------------------------------------------------------------------------------
def test_menu_is_the_reference_tree_with_unique_meaningful_labels(admin_client):
    entries = menu(admin_client.get("/admin/").content.decode())
    places = [(group, label) for group, label, _ in entries]
    assert len(places) == len(set(places)), places
    for expected in [("Settings › Authentication", "General"), ("Settings › Authentication", "OpenID Connect"),
                     ("Settings › Network", "HTTP › General"), ("Settings › Network", "HTTP › Security"),
                     ("Settings › Network", "HTTP › Contact form"),
                     ("Settings › MTA", "MTA-STS"), ("Settings › TLS", "Certificates"),
                     ("Management", "Accounts"), ("Management", "Audit log")]:
        assert expected in places
    # No entry is named after nothing but its group (the former "Authentication", "Network", "MTA").
    assert not [p for p in places if p[1] in ("Authentication", "Network", "MTA")]


def test_menu_search_terms_hold_the_fields_of_each_page(admin_client):
    terms = {(group, label): t for group, label, t in menu(admin_client.get("/admin/").content.decode())}
    assert "password min length" in terms[("Settings › Authentication", "General")]
    assert "response headers" in terms[("Settings › Network", "HTTP › General")]
    assert "response headers" not in terms[("Settings › Network", "HTTP › Security")]
    assert "enable hsts" in terms[("Settings › Network", "HTTP › Security")]
    assert "proxy trusted networks" in terms[("Settings › System", "General")]
    # The search is a static script: the pages forbid inline script.
    html = admin_client.get(HTTP_URL).content.decode()
    assert 'id="settings-search"' in html and "stalwart/admin-ui.js" in html and "<script>" not in html


# --- the dashboard -------------------------------------------------------------------------
def test_dashboard_counts_and_charts(admin_client, make_account):
    make_account("carol")
    registry.create(BlockedIp._declaration, {"address": "192.0.2.7", "reason": "manual"}, "test")
    html = admin_client.get("/admin/").content.decode()
    cards = dict((label, int(value)) for value, label in
                 re.findall(r'<div class="value">(\d+)</div><div class="label">([^<]+)</div>', html))
    assert cards["Users"] == 2 and cards["Domains"] == 1 and cards["Banned addresses"] == 1
    assert cards["Sign-ins"] >= 1  # the administrator's own
    assert html.count("<svg viewBox") >= 3
    assert 'aria-label="Banned addresses by reason"' in html and "Blocked by an administrator" in html


def test_dashboard_shows_only_what_the_viewer_may_read(client, make_account):
    role = registry.create(Role._declaration, {"description": "Role admin", "enabled_permissions":
                                               ["authenticate", "sysRoleGet", "sysRoleQuery"]}, "t")
    make_account("roleadmin", roles_mode="custom", roles=[role.pk])
    assert client.login(username="roleadmin", password=STRONG_PASSWORD)
    html = client.get("/admin/").content.decode()
    assert "Requests by endpoint" not in html and "Users" not in html and "Banned addresses" not in html


# --- widgets -------------------------------------------------------------------------------
def test_durations_are_a_number_and_a_unit(admin_client):
    html = admin_client.get(SECURITY_URL).content.decode()
    assert re.search(r'name="auth_ban_period_amount"', html)
    assert re.search(r'<select name="auth_ban_period_unit"[^>]*>.*<option value="h"', html, re.S)
    resp = post_form(admin_client, SECURITY_URL, auth_ban_period_amount="3", auth_ban_period_unit="h")
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert Security.load().auth_ban_period == timedelta(hours=3)
    # Shown back in the largest unit that divides it.
    html = admin_client.get(SECURITY_URL).content.decode()
    assert re.search(r'name="auth_ban_period_amount" value="3"', html)
    resp = post_form(admin_client, SECURITY_URL, auth_ban_period_amount="three", auth_ban_period_unit="h")
    assert resp.status_code == 200 and "Enter a valid duration." in resp.content.decode()
    assert Security.load().auth_ban_period == timedelta(hours=3)


def test_response_headers_are_name_and_value_rows(admin_client):
    data = form_data(admin_client.get(HTTP_URL).content.decode())
    data["response_headers__key"] = ["X-Frame-Options", "Referrer-Policy"]
    data["response_headers__value"] = ["DENY", "no-referrer"]
    resp = admin_client.post(HTTP_URL, data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert Http.load().response_headers == {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
    html = admin_client.get(HTTP_URL).content.decode()
    assert 'name="response_headers__key" value="Referrer-Policy"' in html
    # A header the server owns is refused beside the field, and nothing is saved.
    data["response_headers__key"] = ["Set-Cookie", ""]
    data["response_headers__value"] = ["a=b", ""]
    resp = admin_client.post(HTTP_URL, data)
    assert resp.status_code == 200 and "is set by the server" in resp.content.decode()
    assert "Set-Cookie" not in Http.load().response_headers


@pytest.mark.parametrize("keys", [["X-Team", "X-Team"], ["X-Team", "x-team "]])
def test_a_header_named_in_two_rows_is_refused_not_merged(admin_client, keys):
    data = form_data(admin_client.get(HTTP_URL).content.decode())
    data["response_headers__key"] = ["X-Frame-Options", *keys]
    data["response_headers__value"] = ["DENY", "red", "blue"]
    resp = admin_client.post(HTTP_URL, data)
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "X-Team is given in more than one row; each name may appear once." in html, html[:3000]
    assert Http.load().response_headers == {}


def test_access_rule_is_rows_of_conditions(admin_client):
    data = form_data(admin_client.get(HTTP_URL).content.decode())
    data["allowed_endpoints__if"] = ["starts_with(path, '/api/')", ""]
    data["allowed_endpoints__then"] = ["403", ""]
    data["allowed_endpoints__else"] = "200"
    resp = admin_client.post(HTTP_URL, data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert Http.load().allowed_endpoints == {"match": [{"if": "starts_with(path, '/api/')", "then": "403"}],
                                             "else": "200"}
    data["allowed_endpoints__if"] = ["starts_with(path, ", ""]
    resp = admin_client.post(HTTP_URL, data)
    assert resp.status_code == 200 and "errorlist" in resp.content.decode()
    assert Http.load().allowed_endpoints["match"][0]["if"] == "starts_with(path, '/api/')"


def test_rule_check_answers_with_the_error_position(admin_client):
    url = "/admin/rule-check/?field=network.http.allowed_endpoints&expr="
    assert admin_client.get(url + "is_tls").json() == {"ok": True}
    bad = admin_client.get(url + "path %3D%3D").json()
    assert bad["ok"] is False and isinstance(bad["position"], int) and bad["error"]
    unknown = admin_client.get(url + "nosuchvar").json()
    assert unknown["ok"] is False
    assert admin_client.get("/admin/rule-check/?field=accounts.account.name&expr=x").status_code == 400
    assert admin_client.get("/admin/rule-check/?field=nope&expr=x").status_code == 400
    assert admin_client.get("/admin/rule-check/?field=network.nosuch.x&expr=x").status_code == 400
    assert Client().get(url + "is_tls").status_code == 302  # not logged in: the login page


@pytest.mark.parametrize("expr, says", [
    ("is_tls || " * 100_000 + "is_tls", "longer than 4096 characters"),      # about a megabyte
    ("(" * 2000 + "1" + ")" * 2000, "nested too deeply"),
    ("!" * 3000 + "is_tls", "nested too deeply"),
    ("contains(" * 200 + ")" * 200, "nested too deeply"),
])
def test_rule_check_refuses_huge_and_deep_expressions_with_a_400(admin_client, expr, says):
    # The length is refused before parsing, the depth at the 33rd level: neither walks the rest.
    resp = admin_client.get("/admin/rule-check/", {"field": "network.http.allowed_endpoints", "expr": expr})
    assert resp.status_code == 400, resp.content[:300]
    body = resp.json()
    assert body["ok"] is False and says in body["error"] and isinstance(body["position"], int)


def test_permissions_are_checkboxes(admin_client):
    html = admin_client.get("/admin/accounts/role/add/").content.decode()
    assert 'class="perm-picker"' in html
    assert re.search(r'<input type="checkbox" name="enabled_permissions" value="sysAccountGet"', html)
    data = form_data(html, description="Readers")
    data["enabled_permissions"] = ["sysAccountGet", "sysAccountQuery"]
    resp = admin_client.post("/admin/accounts/role/add/", data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert Role.objects.get(description="Readers").enabled_permissions == ["sysAccountGet", "sysAccountQuery"]
    data = form_data(html, description="Bad")
    data["enabled_permissions"] = ["sysAccountGet", "noSuchPermission"]
    resp = admin_client.post("/admin/accounts/role/add/", data)
    assert resp.status_code == 200 and "Unknown name(s): noSuchPermission" in resp.content.decode()
    assert not Role.objects.filter(description="Bad").exists()


# --- History, messages, two-field errors ---------------------------------------------------
def test_history_of_a_collection_object_lists_its_audit_rows(admin_client, make_account):
    carol = make_account("carol", description="Carol")
    registry.update(Account._declaration, carol.pk, {"description": "Carol C."}, "test")
    resp = admin_client.get(f"/admin/accounts/account/{carol.pk}/history/")
    assert resp.status_code == 302
    assert f"object_id={ids.encode(carol.pk)}" in resp["Location"] and "object_type=Account" in resp["Location"]
    listing = admin_client.get(resp["Location"]).content.decode()
    assert "Carol C." in listing
    assert AuditEvent.objects.filter(object_type="Account", object_id=ids.encode(carol.pk)).exists()
    assert admin_client.get("/admin/accounts/account/999999/history/").status_code == 302  # "does not exist"


def test_saved_message_names_the_page_as_the_menu_does(admin_client):
    resp = post_form(admin_client, "/admin/oauth/oidcprovider/1/change/")
    assert resp.status_code == 302
    page = admin_client.get(resp["Location"]).content.decode()
    assert "The Authentication › OpenID Connect settings were saved." in unescape(page)
    assert "OidcProvider" not in page.split('<ul class="messagelist">', 1)[1].split("</ul>", 1)[0]


def test_minimum_above_maximum_shows_beside_both_fields(admin_client):
    resp = post_form(admin_client, AUTH_URL, password_min_length="50", password_max_length="20")
    assert resp.status_code == 200
    html = resp.content.decode()
    for field in ("password_min_length", "password_max_length"):
        row = re.search(rf'<div class="form-row[^"]*field-{field}.*?</div>\s*</div>', html, re.S).group(0)
        assert "may not exceed" in row, field
    assert Authentication.load().password_min_length == 8


# --- accounts ------------------------------------------------------------------------------
def test_aliases_are_edited_on_the_account_page(admin_client, make_account, domain):
    carol = make_account("carol")
    url = f"/admin/accounts/account/{carol.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert "Aliases" in html and "Quotas" in html and 'name="aliases-0-name"' in html
    resp = admin_client.post(url, form_data(html, **{"aliases-0-name": "sales", "aliases-0-domain": str(domain.pk)}))
    assert resp.status_code == 302, resp.content.decode()[:3000]
    assert [str(a) for a in carol.aliases.all()] == ["sales@example.org"]
    assert AuditEvent.objects.filter(object_type="Account", field="aliases").exists()
    # The stored alias's row has a Delete box; like the row's other inputs, it is named.
    html = admin_client.get(url).content.decode()
    delete = re.search(r'<input[^>]*name="aliases-0-DELETE"[^>]*>', html)
    assert delete and 'aria-label="Delete"' in delete.group(0), html[:3000]


def test_an_alias_that_is_another_accounts_address_is_refused_on_the_form(admin_client, make_account, domain):
    carol = make_account("carol")
    make_account("dave")
    url = f"/admin/accounts/account/{carol.pk}/change/"
    html = admin_client.get(url).content.decode()
    resp = admin_client.post(url, form_data(html, **{"aliases-0-name": "dave", "aliases-0-domain": str(domain.pk),
                                                     "description": "changed too"}))
    assert resp.status_code == 200
    assert "This address belongs to an account." in resp.content.decode()
    assert not Alias.objects.exists()
    assert Account.objects.get(pk=carol.pk).description != "changed too"


@pytest.mark.parametrize("path", ["/admin/", HTTP_URL, SECURITY_URL, "/admin/accounts/role/add/"])
def test_pages_load_the_stylesheet_and_script(admin_client, path):
    html = admin_client.get(path).content.decode()
    assert "stalwart/admin.css" in html and "stalwart/admin-ui.js" in html


def test_services_and_mail_exchangers_are_tables(admin_client):
    from accounts.models import SystemSettings

    url = "/admin/accounts/systemsettings/1/change/"
    html = admin_client.get(url).content.decode()
    assert 'name="services__host__imap"' in html and 'name="mail_exchangers__priority"' in html
    assert "JSON, e.g." not in html
    data = form_data(html)
    data["services__on"] = ["imap", "smtp"]
    data["services__host__smtp"] = "SMTP.example.org"
    data["services__cleartext"] = ["smtp"]
    data["mail_exchangers__host"] = ["mx1.example.org", "", ""]
    data["mail_exchangers__priority"] = ["10", "20", ""]
    resp = admin_client.post(url, data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    stored = SystemSettings.load()
    assert stored.services == {"imap": {"hostname": None, "cleartext": False},
                               "smtp": {"hostname": "smtp.example.org", "cleartext": True}}
    assert stored.mail_exchangers == [{"hostname": "mx1.example.org", "priority": 10},
                                      {"hostname": None, "priority": 20}]
    data["mail_exchangers__priority"] = ["99999999999999999999", "", ""]
    resp = admin_client.post(url, data)
    assert resp.status_code == 200 and "from 1 to 65535" in resp.content.decode()


def test_permissions_are_grouped_under_headings(admin_client):
    html = admin_client.get("/admin/accounts/role/add/").content.decode()
    for heading in ("Management objects", "JMAP", "IMAP", "Server actions"):
        assert f"<legend>{heading}</legend>" in html
    group = html.split("<legend>IMAP</legend>", 1)[1].split("</fieldset>", 1)[0]
    names = re.findall(r'name="enabled_permissions" value="([^"]+)"', group)
    assert names and all(n.startswith("imap") for n in names)
