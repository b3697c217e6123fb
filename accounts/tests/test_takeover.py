"""Issue 10, item 1: a limited administrator may not take over a more privileged account.

An actor may change another account's credentials, enabled state, roles, permissions, tenant or
quotas, or destroy it, only when the target's effective permissions are a subset of its own.
Every test drives a real face: JMAP over HTTP, the admin pages, or a login afterwards.
"""
from __future__ import annotations

import pytest

from accounts import credentials, login
from accounts.models import Account, Credential, Role
from accounts.tests.test_passwords import post_account_form
from conftest import STRONG_PASSWORD
from registry import ids
from registry import services as registry
from tests.clients import Jmap, basic, can_log_in

IP = "203.0.113.9"
NEW_PASSWORD = "Violet-Harbour-Kettle-4821"
LIMITED = ["authenticate", "sysAccountGet", "sysAccountQuery", "sysAccountUpdate", "sysAccountDestroy"]


@pytest.fixture
def helpdesk(make_account, admin_account):
    """The issue's limited administrator: may read, update and destroy accounts, nothing more."""
    role = registry.create(Role._declaration, {"description": "Helpdesk", "enabled_permissions": LIMITED}, "test")
    return make_account("helpdesk", roles_mode="custom", roles=[role.pk])


@pytest.fixture
def hd(client, helpdesk):
    return Jmap(client, basic("helpdesk@example.org"))


def refusal(got, object_id, branch="notUpdated"):
    err = (got[branch] or {}).get(object_id)
    assert err is not None, got
    return err


# --- JMAP -------------------------------------------------------------------------------------
def test_password_of_a_system_administrator_cannot_be_reset(hd, admin_account):
    aid = ids.encode(admin_account.pk)
    got = hd.ok("x:Account/set", {"update": {aid: {"credentials/0/secret": NEW_PASSWORD}}})
    err = refusal(got, aid)
    assert err["type"] == "forbidden"
    assert "credentials" in err["description"] and "admin@example.org" in err["description"]
    assert "permissions you do not hold" in err["description"]
    assert not can_log_in("admin@example.org", NEW_PASSWORD)
    assert can_log_in("admin@example.org", STRONG_PASSWORD)
    # The whole credential list, replaced at once, takes the same path.
    cid = ids.encode(admin_account.credentials.get(kind="password").credential_id)
    got = hd.ok("x:Account/set", {"update": {aid: {"credentials": {"0": {
        "@type": "Password", "credentialId": cid, "secret": NEW_PASSWORD}}}}})
    assert refusal(got, aid)["type"] == "forbidden"
    assert not can_log_in("admin@example.org", NEW_PASSWORD)


@pytest.mark.parametrize("patch,what", [
    ({"enabled": False}, "enabled state"),
    ({"quotas": {"maxApiKeys": 1}}, "quotas"),
    ({"roles": {"@type": "User"}}, "roles and permissions"),
    ({"permissions": {"@type": "Replace", "enabledPermissions": {"authenticate": True}}}, "roles and permissions"),
    ({"credentials/0/expiresAt": "2020-01-01T00:00:00Z"}, "credentials"),
])
def test_other_protected_fields_of_a_system_administrator(hd, admin_account, patch, what):
    aid = ids.encode(admin_account.pk)
    before = hd.ok("x:Account/get", {"ids": [aid]})["list"][0]
    got = hd.ok("x:Account/set", {"update": {aid: patch}})
    err = refusal(got, aid)
    assert err["type"] == "forbidden", err
    assert what in err["description"]
    after = hd.ok("x:Account/get", {"ids": [aid]})["list"][0]
    assert after == before
    assert can_log_in("admin@example.org", STRONG_PASSWORD)


def test_unprotected_fields_and_lesser_accounts_stay_manageable(hd, admin_account, make_account):
    """The rule is about takeover, not a blanket refusal: a display name may change, and a
    plain user (whose permissions the helpdesk holds) may have its password reset."""
    aid = ids.encode(admin_account.pk)
    got = hd.ok("x:Account/set", {"update": {aid: {"description": "The boss"}}})
    assert aid in got["updated"], got
    carol = make_account("carol")
    # A plain user holds the User role, which the helpdesk does not: refused too.
    cid = ids.encode(carol.pk)
    got = hd.ok("x:Account/set", {"update": {cid: {"credentials/0/secret": NEW_PASSWORD}}})
    assert refusal(got, cid)["type"] == "forbidden"
    # An account whose permissions the helpdesk holds can be reset, and then logs in.
    role = registry.create(Role._declaration, {"description": "Login only",
                                               "enabled_permissions": ["authenticate"]}, "test")
    dave = make_account("dave", roles_mode="custom", roles=[role.pk])
    did = ids.encode(dave.pk)
    got = hd.ok("x:Account/set", {"update": {did: {"credentials/0/secret": NEW_PASSWORD, "enabled": True}}})
    assert did in got["updated"], got
    assert can_log_in("dave@example.org", NEW_PASSWORD)


def test_destroy_and_credential_revocation(hd, admin_account):
    key, token = credentials.create_secondary_credential(admin_account, Credential.Kind.API_KEY, "test",
                                                      description="automation")
    aid = ids.encode(admin_account.pk)
    got = hd.ok("x:Account/set", {"destroy": [aid]})
    assert refusal(got, aid, "notDestroyed")["type"] == "forbidden"
    assert Account.objects.filter(pk=admin_account.pk).exists()
    index = next(k for k, c in hd.ok("x:Account/get", {"ids": [aid]})["list"][0]["credentials"].items()
                 if c["@type"] == "ApiKey")
    got = hd.ok("x:Account/set", {"update": {aid: {f"credentials/{index}": None}}})
    assert refusal(got, aid)["type"] == "forbidden"
    assert login.authenticate_bearer(token, IP).credential.pk == key.pk


def test_self_service_is_unaffected(hd, helpdesk):
    """Changing one's own password is not a takeover."""
    hid = ids.encode(helpdesk.pk)
    got = hd.ok("x:Account/set", {"update": {hid: {"credentials/0/secret": NEW_PASSWORD}}})
    assert hid in got["updated"], got
    assert can_log_in("helpdesk@example.org", NEW_PASSWORD)


def test_full_administrator_still_can(jmap, make_account):
    carol = make_account("carol", roles_mode="admin")
    cid = ids.encode(carol.pk)
    got = jmap.ok("x:Account/set", {"update": {cid: {"credentials/0/secret": NEW_PASSWORD, "enabled": False}}})
    assert cid in got["updated"], got


# --- admin pages ------------------------------------------------------------------------------
def test_admin_form_shows_the_refusal_on_the_form(client, helpdesk, admin_account):
    assert client.login(username="helpdesk@example.org", password=STRONG_PASSWORD)
    response = post_account_form(client, admin_account, new_password=NEW_PASSWORD,
                                 new_password_confirm=NEW_PASSWORD, description="renamed")
    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.non_field_errors()
    assert any("permissions you do not hold" in e for e in errors), errors
    assert "permissions you do not hold" in response.content.decode()
    assert not can_log_in("admin@example.org", NEW_PASSWORD)
    # Nothing of the change was written, not even the harmless part.
    assert Account.objects.get(pk=admin_account.pk).description == "System administrator"

    data_off = post_account_form(client, admin_account, is_active="")
    assert data_off.status_code == 200
    assert Account.objects.get(pk=admin_account.pk).is_active


def test_admin_delete_page_refuses(client, helpdesk, admin_account):
    assert client.login(username="helpdesk@example.org", password=STRONG_PASSWORD)
    url = f"/admin/accounts/account/{admin_account.pk}/delete/"
    page = client.get(url)
    assert page.status_code == 200
    assert "permissions you do not hold" in page.content.decode()
    client.post(url, {"post": "yes"})
    assert Account.objects.filter(pk=admin_account.pk).exists()
