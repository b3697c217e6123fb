"""`manage.py directory test` and the "Test" button of a directory's settings page: a real SQL
directory is asked, the mapped account is shown, nothing is created."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Account, Role, Tenant
from registry import ids
from tests import sqldirs
from tests.clients import STRONG_PASSWORD

pytestmark = pytest.mark.django_db
ALICE = "alice@example.org"


@pytest.fixture
def store(tmp_path):
    with sqldirs.sqlite_store(tmp_path) as made:
        yield made


@pytest.fixture
def directory(domain, store):
    # Not the active directory: a directory can be tested before logins are switched to it.
    return sqldirs.directory_row(store)


def run(*args, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command("directory", "test", *args, stdout=out)
    return out.getvalue()


def test_the_command_shows_the_mapped_account_without_creating_it(directory, domain, make_account):
    domain.tenant = Tenant.objects.create(name="acme")
    domain.save()
    make_account("taken")
    users = Account.objects.count()
    out = run(ids.encode(directory.pk), "alice", "--json")
    mapped = json.loads(out)
    assert mapped["name"] == ALICE and mapped["type"] == "User"
    assert mapped["description"] == "Alice Directory"
    assert mapped["aliases"] == ["alice.d@example.org"]
    assert mapped["aliasesSkipped"] == ["alice@elsewhere.test", "taken@example.org"]
    assert set(mapped["groups"]) == {"staff@example.org", "sales"}
    assert mapped["tenant"] == "acme" and mapped["accountExists"] is False
    assert "authenticated" not in mapped
    assert Account.objects.count() == users  # nothing mirrored


def test_the_command_checks_a_password_read_from_stdin(directory, monkeypatch):
    out = run(ids.encode(directory.pk), ALICE, "--password-stdin", stdin=sqldirs.ALICE_PASSWORD + "\n",
              monkeypatch=monkeypatch)
    assert "Name:" in out and ALICE in out and "the password is right" in out
    with pytest.raises(CommandError, match="wrong"):
        run(ids.encode(directory.pk), ALICE, "--password-stdin", stdin="not it\n", monkeypatch=monkeypatch)


@pytest.mark.parametrize("login,message", [("nobody", "No entry"), ("x' OR '1'='1", "No entry")])
def test_the_command_reports_a_missing_entry(directory, login, message):
    with pytest.raises(CommandError, match=message):
        run(ids.encode(directory.pk), login)


def test_the_command_reports_an_unreachable_directory(directory, tmp_path):
    type(directory).objects.filter(pk=directory.pk).update(sql_path=str(tmp_path / "none" / "x.sqlite3"))
    with pytest.raises(CommandError, match="unavailable"):
        run(ids.encode(directory.pk), ALICE)
    with pytest.raises(CommandError, match="No directory"):
        run("zzzzzz", ALICE)


# --- the Test button -------------------------------------------------------------------------
def test_the_button_tests_a_login(admin_client, directory):
    page = admin_client.get(f"/admin/accounts/directory/{directory.pk}/change/")
    assert page.status_code == 200 and 'value="Test"' in page.content.decode()
    resp = admin_client.post(f"/admin/accounts/directory/{directory.pk}/test/",
                             {"login": ALICE, "password": sqldirs.ALICE_PASSWORD}, follow=True)
    text = resp.content.decode()
    assert "Test passed." in text and "Alice Directory" in text and "the password is right" in text
    assert sqldirs.ALICE_PASSWORD not in text
    assert not Account.objects.filter(email_address=ALICE).exists()
    resp = admin_client.post(f"/admin/accounts/directory/{directory.pk}/test/",
                             {"login": ALICE, "password": "wrong"}, follow=True)
    assert "Test failed: The password of alice@example.org is wrong." in resp.content.decode()


def test_the_button_needs_a_post_with_its_csrf_token(admin_account, directory):
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="admin@example.org", password=STRONG_PASSWORD)
    url = f"/admin/accounts/directory/{directory.pk}/test/"
    assert client.get(url).status_code == 405
    assert client.post(url, {"login": ALICE}).status_code == 403  # no CSRF token


def test_the_button_needs_the_update_permission(client, make_account, directory):
    reader = Role.objects.create(description="Directory readers",
                                 enabled_permissions=["authenticate", "sysDirectoryGet", "sysDirectoryQuery"])
    viewer = make_account("viewer", roles_mode=Account.RolesMode.CUSTOM)
    viewer.roles.set([reader])
    assert client.login(username="viewer@example.org", password=STRONG_PASSWORD)
    page = client.get(f"/admin/accounts/directory/{directory.pk}/change/")
    assert page.status_code == 200 and 'value="Test"' not in page.content.decode()
    resp = client.post(f"/admin/accounts/directory/{directory.pk}/test/", {"login": ALICE})
    assert resp.status_code == 403


def test_a_tenants_administrator_cannot_test_another_tenants_directory(client, make_account, directory):
    """The button reaches out with the directory's secret: a tenant's administrator holding the
    update permission may not fire it at a directory outside its tenant (here, the system's)."""
    tenant = Tenant.objects.create(name="other")
    editors = Role.objects.create(description="Directory editors", tenant=tenant, enabled_permissions=[
        "authenticate", "sysDirectoryGet", "sysDirectoryQuery", "sysDirectoryUpdate"])
    # A tenant's administrators hold at most what the tenant itself is granted.
    Tenant.objects.filter(pk=tenant.pk).update(roles_mode="custom")
    tenant.roles.set([editors])
    editor = make_account("editor", roles_mode=Account.RolesMode.CUSTOM)
    editor.roles.set([editors])
    Account.objects.filter(pk=editor.pk).update(tenant=tenant)
    assert client.login(username="editor@example.org", password=STRONG_PASSWORD)
    assert client.get("/admin/accounts/directory/").status_code == 200  # the pages are theirs, not the directory
    resp = client.post(f"/admin/accounts/directory/{directory.pk}/test/", {"login": ALICE})
    assert resp.status_code == 404
    # Their own tenant's directory they may test.
    type(directory).objects.filter(pk=directory.pk).update(tenant=tenant)
    resp = client.post(f"/admin/accounts/directory/{directory.pk}/test/", {"login": ALICE}, follow=True)
    assert any(str(m).startswith("Test ") for m in resp.context["messages"])
