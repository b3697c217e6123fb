"""Settings › Authentication and the other admin pages, over HTTP."""
import re
from html.parser import HTMLParser

import pytest

from accounts.models import Account, Authentication, Role
from conftest import STRONG_PASSWORD
from registry import ids
from registry import services as registry
from registry.models import AuditEvent

URL = "/admin/accounts/authentication/1/change/"


class FormValues(HTMLParser):
    """The values a browser would submit for the first form with a csrf token."""

    def __init__(self):
        super().__init__()
        self.values, self._select, self._textarea = {}, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.values.setdefault(name, []).append(a.get("value", "on"))
            else:
                self.values.setdefault(name, []).append(a.get("value", ""))
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select].append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = [""]

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        if tag == "textarea":
            self._textarea = None


def form_data(html: str, **changes) -> dict:
    parser = FormValues()
    parser.feed(html)
    data = {k: (v if len(v) != 1 else v[0]) for k, v in parser.values.items()}
    data.update(changes)
    return data


def settings_now():
    return Authentication.objects.get(pk=1)


@pytest.fixture
def page(admin_client):
    resp = admin_client.get(URL)
    assert resp.status_code == 200
    return resp.content.decode()


def test_settings_section_lists_authentication(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "Settings" in html and "Management" in html
    assert re.search(r'href="/admin/accounts/authentication/"', html)
    assert "Stalwart administration" in html


def test_authentication_is_a_single_edit_form_with_groups_help_and_labels(admin_client, page):
    # the list redirects to the one object; there is no add or delete
    resp = admin_client.get("/admin/accounts/authentication/")
    assert resp.status_code == 302 and resp["Location"].endswith(URL)
    assert admin_client.get("/admin/accounts/authentication/add/").status_code == 403
    assert admin_client.get("/admin/accounts/authentication/1/delete/").status_code == 403
    for group in ("Directory", "Default roles", "Password policy", "Credentials"):
        assert f">{group}<" in page
    assert "Settings › Authentication › General" in page
    assert "Minimum length for user passwords in the internal directory." in page
    assert "Safely unguessable: moderate protection from offline slow-hash scenario. (guesses &lt; 10^10)" in page
    for label in ("Argon2id", "Bcrypt", "Scrypt", "Pbkdf2"):
        assert f">{label}</option>" in page


def test_valid_change_is_saved_and_audited(admin_client, page):
    resp = admin_client.post(URL, form_data(page, password_min_length="12", password_hash_algorithm="bcrypt",
                                            max_api_keys=""))
    assert resp.status_code == 302
    s = settings_now()
    assert (s.password_min_length, s.password_hash_algorithm, s.max_api_keys) == (12, "bcrypt", None)
    events = {e.field: e for e in AuditEvent.objects.filter(object_type="Authentication")}
    assert set(events) == {"passwordMinLength", "passwordHashAlgorithm", "maxApiKeys"}
    assert events["passwordMinLength"].actor == "admin@example.org"
    assert (events["passwordMinLength"].old_value, events["passwordMinLength"].new_value) == (8, 12)
    log = admin_client.get("/admin/registry/auditevent/").content.decode()
    assert "passwordHashAlgorithm" in log and "admin@example.org" in log


@pytest.mark.parametrize("field, value, message", [
    ("password_min_length", "0", "greater than or equal to 1"),
    ("password_min_length", "101", "less than or equal to 100"),
    ("password_max_length", "1001", "less than or equal to 1000"),
    ("password_min_length", "twelve", "Enter a whole number"),
    ("password_hash_algorithm", "md5", "Select a valid choice"),
    ("password_min_strength", "five", "Select a valid choice"),
    ("max_app_passwords", "0", "greater than or equal to 1"),
    ("password_default_expiry", "soon", "Enter a valid duration"),
    ("default_user_roles", "99999", "Select a valid choice"),
])
def test_invalid_input_shows_inline_error_and_saves_nothing(admin_client, page, field, value, message):
    before = registry.snapshot(Authentication._declaration, settings_now())
    resp = admin_client.post(URL, form_data(page, **{"password_max_length": "64", field: value}))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert message in html
    assert re.search(rf'class="[^"]*errors[^"]*field-{field}', html)
    assert registry.snapshot(Authentication._declaration, settings_now()) == before
    assert not AuditEvent.objects.filter(object_type="Authentication").exists()


def test_minimum_above_maximum_is_an_inline_error(admin_client, page):
    resp = admin_client.post(URL, form_data(page, password_min_length="40", password_max_length="20"))
    assert resp.status_code == 200
    assert "may not exceed the maximum password length (20)" in resp.content.decode()
    assert (settings_now().password_min_length, settings_now().password_max_length) == (8, 128)


def test_expiry_is_saved_as_a_duration(admin_client, page):
    admin_client.post(URL, form_data(page, password_default_expiry="90 00:00:00"))
    assert settings_now().password_default_expiry.days == 90


def test_ordinary_user_gets_no_settings(user_client):
    resp = user_client.get(URL)
    assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")
    resp = user_client.get(URL, follow=True)
    assert "password_min_length" not in resp.content.decode()
    assert user_client.post(URL, {"password_min_length": "1"}).status_code in (302, 403)
    assert settings_now().password_min_length == 8


def make_role(description, permissions):
    return registry.create(Role._declaration, {"description": description, "enabled_permissions": permissions}, "t")


def test_get_without_update_sees_read_only_settings(client, make_account):
    role = make_role("Auditor", ["authenticate", "sysAuthenticationGet"])
    make_account("auditor", roles_mode="custom", roles=[role.pk])
    assert client.login(username="auditor", password=STRONG_PASSWORD)
    resp = client.get(URL)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'name="password_min_length"' not in html and ">8<" in html
    assert client.post(URL, {"password_min_length": "20"}).status_code == 403
    assert settings_now().password_min_length == 8


def test_update_permission_needs_get_to_see_the_page(client, make_account):
    role = make_role("Writer", ["authenticate", "sysAuthenticationUpdate"])
    make_account("writer", roles_mode="custom", roles=[role.pk])
    assert client.login(username="writer", password=STRONG_PASSWORD)
    resp = client.get(URL)
    assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")


def test_pages_for_accounts_groups_roles_domains_tenants(admin_client):
    for url in ("/admin/accounts/account/", "/admin/accounts/role/", "/admin/accounts/domain/",
                "/admin/accounts/tenant/", "/admin/accounts/account/add/", "/admin/accounts/role/add/",
                "/admin/accounts/systemsettings/1/change/", "/admin/security/security/1/change/"):
        assert admin_client.get(url).status_code == 200, url
    roles = admin_client.get("/admin/accounts/role/").content.decode()
    for name in ("User", "Group", "Tenant Administrator", "System Administrator"):
        assert name in roles


def test_admin_creates_a_group_and_a_user_through_the_pages(admin_client, domain):
    page = admin_client.get("/admin/accounts/account/add/").content.decode()
    data = form_data(page, kind="group", name="sales", domain=str(domain.pk), roles_mode="default",
                     description="Sales team")
    resp = admin_client.post("/admin/accounts/account/add/", data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    group = Account.objects.get(email_address="sales@example.org")
    assert group.kind == "group"
    data = form_data(page, kind="user", name="dave", domain=str(domain.pk), roles_mode="user",
                     member_groups=[str(group.pk)], new_password=STRONG_PASSWORD, new_password_confirm=STRONG_PASSWORD)
    resp = admin_client.post("/admin/accounts/account/add/", data)
    assert resp.status_code == 302
    dave = Account.objects.get(email_address="dave@example.org")
    assert list(dave.member_groups.all()) == [group]
    assert AuditEvent.objects.filter(object_type="Account", object_id=ids.encode(dave.pk), action="create").exists()
    from django.test import Client

    assert Client().login(username="dave", password=STRONG_PASSWORD)


def test_weak_password_on_account_creation_is_inline_and_creates_nothing(admin_client, domain):
    page = admin_client.get("/admin/accounts/account/add/").content.decode()
    data = form_data(page, kind="user", name="erin", domain=str(domain.pk), roles_mode="user",
                     new_password="erin1234", new_password_confirm="erin1234")
    resp = admin_client.post("/admin/accounts/account/add/", data)
    assert resp.status_code == 200
    assert "Password is too weak." in resp.content.decode()
    assert not Account.objects.filter(name="erin").exists()


def test_deleting_a_linked_role_is_refused_on_the_page(admin_client):
    role = Role.objects.get(description="User")
    resp = admin_client.get(f"/admin/accounts/role/{role.pk}/delete/")
    assert resp.status_code == 200
    assert "Authentication singleton refers to User" in resp.content.decode()
    admin_client.post(f"/admin/accounts/role/{role.pk}/delete/", {"post": "yes"})
    assert Role.objects.filter(pk=role.pk).exists()


def test_administrator_without_the_settings_permissions_gets_403(client, make_account):
    """Someone who administers roles, but not the Authentication settings, is refused with 403."""
    role = make_role("Role admin", ["authenticate", "sysRoleGet", "sysRoleQuery"])
    make_account("roleadmin", roles_mode="custom", roles=[role.pk])
    assert client.login(username="roleadmin", password=STRONG_PASSWORD)
    assert client.get("/admin/accounts/role/").status_code == 200
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"password_min_length": "20"}).status_code == 403
    assert client.get("/admin/").content.decode().count("accounts/authentication/") == 0
    assert settings_now().password_min_length == 8
