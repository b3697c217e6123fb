"""Settings › Authentication › Directories: the kind is chosen first, each page has only its
kind's settings, the login filter is previewed with a sample address, secrets never reach the
page, and the model's checks are the form's errors."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts.admin import DIRECTORY_LABELS, DIRECTORY_NOTES
from accounts.models import Directory
from accounts.tests.test_passwords import form_data, form_errors
from registry import services as registry

ADD = "/admin/accounts/directory/add/"


def change_url(directory) -> str:
    return f"/admin/accounts/directory/{directory.pk}/change/"


def fieldset_titles(page) -> list[str]:
    return [fieldset.name for fieldset in page.context["adminform"]]


def ldap(**values) -> Directory:
    return registry.create(Directory._declaration, {"description": "People", "kind": "ldap",
                                                    "base_dn": "dc=example,dc=org", **values}, "test")


def test_add_page_asks_for_the_kind_first(admin_client):
    page = admin_client.get(ADD)
    assert page.status_code == 200
    html = page.content.decode()
    for kind, label in (("ldap", "LDAP Directory"), ("sql", "SQL Database"), ("oidc", "OpenID Connect")):
        assert f'href="?kind={kind}"' in html and label in html
    assert 'name="description"' not in html


@pytest.mark.parametrize("kind,present,absent", [
    ("ldap", ["LDAP server", "Bind", "Filters", "Attributes", "Connection pool"], ["Database", "Queries", "Claims"]),
    ("sql", ["Database", "Columns", "Queries"], ["LDAP server", "Filters", "Claims"]),
    ("oidc", ["OpenID Connect provider", "Claims"], ["LDAP server", "Database", "Queries"]),
])
def test_each_kind_shows_only_its_fieldsets(admin_client, kind, present, absent):
    page = admin_client.get(f"{ADD}?kind={kind}")
    titles = fieldset_titles(page)
    assert titles[0] == "Directory"
    assert set(present) <= set(titles) and not set(absent) & set(titles), titles


def test_add_an_oidc_directory(admin_client):
    page = admin_client.get(f"{ADD}?kind=oidc")
    data = form_data(page, "directory_form")
    assert "kind" not in data and "url" not in data and "query_login" not in data
    data.update({"description": "Company SSO", "issuer_url": "https://sso.example.org", "_save": "Save"})
    done = admin_client.post(f"{ADD}?kind=oidc", data)
    assert done.status_code == 302, form_errors(done, "issuer_url")
    made = Directory.objects.get()
    assert (made.kind, made.issuer_url, made.url) == ("oidc", "https://sso.example.org", "ldap://localhost:389")
    # A list field starts from its default, one value per line.
    assert made.require_scopes == ["openid", "email"]


def test_the_forms_errors_are_the_models(admin_client):
    page = admin_client.get(f"{ADD}?kind=ldap")
    data = form_data(page, "directory_form")
    data.update({"description": "People", "base_dn": "dc=example,dc=org", "filter_login": "(&(mail=?)",
                 "url": "http://ldap.example.org", "_save": "Save"})
    refused = admin_client.post(f"{ADD}?kind=ldap", data)
    assert refused.status_code == 200
    assert form_errors(refused, "filter_login") and form_errors(refused, "url")
    assert not Directory.objects.exists()


def test_change_page_filter_preview_and_masked_secret(admin_client):
    directory = ldap(filter_login="(&(objectClass=inetOrgPerson)(|(mail=?)(uid=?)))", bind_secret_kind="value",
                     bind_secret="bind-S3cret")
    page = admin_client.get(change_url(directory))
    html = page.content.decode()
    assert "(&amp;(objectClass=inetOrgPerson)(|(mail=jane@example.org)(uid=jane@example.org)))" in html
    assert 'id="login-filter-preview"' in html and "stalwart/directory-admin.js" in html
    assert "bind-S3cret" not in html
    assert "Queries" not in fieldset_titles(page)
    # Saving the page as it is keeps the secret, and the kind is not an input.
    data = form_data(page, "directory_form")
    assert "kind" not in data and data.get("bind_secret", "") == ""
    assert data["attr_email"] == "mail"
    data.update({"description": "People and groups", "attr_email_alias": "mailAlias\r\nproxyAddresses\r\n",
                 "_save": "Save"})
    assert admin_client.post(change_url(directory), data).status_code == 302
    directory.refresh_from_db()
    assert directory.description == "People and groups" and directory.bind_secret == "bind-S3cret"
    assert directory.attr_email_alias == ["mailAlias", "proxyAddresses"]


def test_the_test_form_is_on_the_change_page(admin_client):
    """The "Test" form (accounts.external.test_login) sits in the page's object tools, outside the
    settings form, and posts to the directory's own test URL."""
    directory = ldap()
    page = admin_client.get(change_url(directory)).content.decode()
    action = reverse("admin:accounts_directory_test", args=[directory.pk])
    assert f'action="{action}"' in page and 'value="Test"' in page
    assert page.index(action) < page.index('id="directory_form"')


def test_the_settings_page_explains_fields_from_the_model(admin_client):
    """Each field's explanation on the page starts with its model help_text (the one text JMAP's
    schema shows too), the page adding only its own note; labels are readable names."""
    html = admin_client.get("/admin/accounts/directory/add/?kind=ldap").content.decode()
    for name in ("url", "base_dn", "filter_login", "filter_member_of", "attr_member_of", "bind_authentication"):
        own = str(Directory._meta.get_field(name).help_text)
        # Django's admin renders help texts as they are (they are the code's, not a user's).
        assert (f"{own} {DIRECTORY_NOTES[name]}" if name in DIRECTORY_NOTES else own) in html, name
        assert escape(DIRECTORY_LABELS[name]) in html
    # A secret's source has no help_text of its own: the page's note stands alone.
    assert DIRECTORY_NOTES["bind_secret_kind"] in html
