"""Issue 10, item 2: tenant confinement.

An administrator whose account belongs to tenant T1 sees and changes only T1's objects; another
tenant's ids answer notFound, what it creates lands in T1, and system-wide objects are out of
its reach. Every attack of the issue is tried on JMAP (/jmap and its /api alias) and on the
admin pages, plus /query and /changes.
"""
from __future__ import annotations

import pytest

from accounts import credentials, services
from accounts.models import Account, Domain, Tenant
from accounts.tests.test_passwords import form_data, post_account_form
from conftest import STRONG_PASSWORD
from oauth.models import OAuthClient
from registry import ids
from registry import services as registry
from tests.clients import Jmap, basic, can_log_in

NEW_PASSWORD = "Violet-Harbour-Kettle-4821"


class World:
    pass


@pytest.fixture
def world(db, admin_account):
    w = World()
    w.admin = admin_account
    w.t1 = registry.create(Tenant._declaration, {"name": "t1"}, "test")
    w.t2 = registry.create(Tenant._declaration, {"name": "t2"}, "test")
    w.d1 = registry.create(Domain._declaration, {"name": "one.test", "tenant": w.t1.pk}, "test")
    w.d2 = registry.create(Domain._declaration, {"name": "two.test", "tenant": w.t2.pk}, "test")

    def account(name, domain, tenant, roles_mode="user"):
        return services.create_account({"name": name, "domain": domain.pk, "tenant": tenant.pk,
                                        "roles_mode": roles_mode, "kind": "user"}, "test", password=STRONG_PASSWORD)

    w.t1admin = account("boss", w.d1, w.t1, "admin")
    w.t1user = account("ann", w.d1, w.t1)
    w.t2admin = account("chief", w.d2, w.t2, "admin")
    w.t2user = account("zed", w.d2, w.t2)
    return w


@pytest.fixture
def t1(client, world):
    return Jmap(client, basic("boss@one.test"))


def eid(obj):
    return ids.encode(obj.pk)


# --- JMAP: the attacks ----------------------------------------------------------------
def test_lists_only_its_own_tenants_accounts(t1, world):
    got = t1.ok("x:Account/get", {"ids": None})
    listed = {a["id"] for a in got["list"]}
    assert listed == {eid(world.t1admin), eid(world.t1user)}
    assert all(a["memberTenantId"] == eid(world.t1) for a in got["list"])
    # The /api alias of the JMAP endpoint is the same face.
    resp = t1.post({"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
                    "methodCalls": [["x:Account/get", {"ids": [eid(world.admin), eid(world.t2user)]}, "c"]]},
                   path="/api")
    body = resp.json()["methodResponses"][0][1]
    assert body["list"] == [] and body["notFound"] == [eid(world.admin), eid(world.t2user)]


def test_query_lists_only_its_own_tenant(t1, world):
    got = t1.ok("x:Account/query", {})
    assert set(got["ids"]) == {eid(world.t1admin), eid(world.t1user)}
    got = t1.ok("x:Account/query", {"filter": {"memberTenantId": eid(world.t2)}, "calculateTotal": True})
    assert got["ids"] == [] and got["total"] == 0
    got = t1.ok("x:Domain/query", {"calculateTotal": True})
    assert got["ids"] == [eid(world.d1)]


def test_cannot_reset_another_tenants_password(t1, world):
    zid = eid(world.t2user)
    got = t1.ok("x:Account/set", {"update": {zid: {"credentials/0/secret": NEW_PASSWORD}}})
    assert got["notUpdated"][zid]["type"] == "notFound"
    assert not can_log_in("zed@two.test", NEW_PASSWORD)
    # Nor that of a system administrator, nor disable it.
    aid = eid(world.admin)
    got = t1.ok("x:Account/set", {"update": {aid: {"credentials/0/secret": NEW_PASSWORD, "enabled": False}}})
    assert got["notUpdated"][aid]["type"] == "notFound"
    got = t1.ok("x:Account/set", {"destroy": [zid, aid]})
    assert got["notDestroyed"][zid]["type"] == got["notDestroyed"][aid]["type"] == "notFound"
    assert can_log_in("admin@example.org", STRONG_PASSWORD)
    # Its own tenant's user: allowed, and the new password works.
    aid = eid(world.t1user)
    got = t1.ok("x:Account/set", {"update": {aid: {"credentials/0/secret": NEW_PASSWORD}}})
    assert aid in got["updated"], got
    assert can_log_in("ann@one.test", NEW_PASSWORD)


def test_cannot_edit_another_tenants_domain(t1, world):
    did = eid(world.d2)
    got = t1.ok("x:Domain/set", {"update": {did: {"description": "owned"}}})
    assert got["notUpdated"][did]["type"] == "notFound"
    got = t1.ok("x:Domain/set", {"destroy": [did]})
    assert got["notDestroyed"][did]["type"] == "notFound"
    assert Domain.objects.get(pk=world.d2.pk).description == ""
    assert t1.ok("x:Domain/get", {"ids": [did]})["notFound"] == [did]
    # Its own domain may not be handed to another tenant, or to none.
    own = eid(world.d1)
    for value in (eid(world.t2), None):
        got = t1.ok("x:Domain/set", {"update": {own: {"memberTenantId": value}}})
        assert got["notUpdated"][own]["type"] in ("invalidForeignKey", "forbidden"), got
    assert Domain.objects.get(pk=world.d1.pk).tenant_id == world.t1.pk


def test_creates_land_in_its_tenant(t1, world):
    got = t1.ok("x:Account/set", {"create": {
        "evil": {"name": "evil", "domainId": eid(world.d2), "roles": {"@type": "User"}},
        "sys": {"name": "sys", "domainId": eid(world.admin.domain), "roles": {"@type": "User"}},
        "moved": {"name": "moved", "domainId": eid(world.d1), "memberTenantId": eid(world.t2),
                  "roles": {"@type": "User"}},
        "ok": {"name": "newbie", "domainId": eid(world.d1), "roles": {"@type": "User"},
               "credentials": {"0": {"@type": "Password", "secret": NEW_PASSWORD}}},
    }})
    for cid in ("evil", "sys", "moved"):
        assert got["notCreated"][cid]["type"] == "invalidForeignKey", got["notCreated"][cid]
    assert not Account.objects.filter(name__in=["evil", "sys", "moved"]).exists()
    created = Account.objects.get(pk=ids.decode(got["created"]["ok"]["id"]))
    assert created.tenant_id == world.t1.pk
    got = t1.ok("x:Domain/set", {"create": {"d": {"name": "three.test"}}})
    assert Domain.objects.get(pk=ids.decode(got["created"]["d"]["id"])).tenant_id == world.t1.pk
    got = t1.ok("x:Role/set", {"create": {"r": {"description": "T1 helpers", "enabledPermissions": {
        "authenticate": True}}}})
    assert got["created"], got
    got = t1.ok("x:OAuthClient/set", {"create": {"c": {"clientId": "t1app",
                                                       "redirectUris": {"https://app.one.test/cb": True}}}})
    assert OAuthClient.objects.get(client_id="t1app").tenant_id == world.t1.pk


def test_other_tenants_objects_of_every_scoped_type(t1, world, jmap):
    role = jmap.ok("x:Role/set", {"create": {"r": {"description": "T2 role", "memberTenantId": eid(world.t2)}}})
    rid = role["created"]["r"]["id"]
    jmap.ok("x:OAuthClient/set", {"create": {"c": {"clientId": "t2app", "memberTenantId": eid(world.t2),
                                                   "redirectUris": {"https://app.two.test/cb": True}}}})
    assert t1.ok("x:Role/get", {"ids": None})["list"] == []
    assert t1.ok("x:Role/get", {"ids": [rid]})["notFound"] == [rid]
    assert t1.ok("x:OAuthClient/get", {"ids": None})["list"] == []
    got = t1.ok("x:Role/set", {"update": {rid: {"description": "mine"}}})
    assert got["notUpdated"][rid]["type"] == "notFound"
    # Nor may its accounts take another tenant's role or join another tenant's group.
    aid = eid(world.t1user)
    got = t1.ok("x:Account/set", {"update": {aid: {"roles": {"@type": "Custom", "roleIds": {rid: True}}}}})
    assert got["notUpdated"][aid]["type"] == "invalidForeignKey", got


def test_system_wide_objects_are_out_of_reach(t1, world):
    # The Tenant Administrator role holds sysAcmeProvider*, but providers are system-wide.
    err = t1.error("x:AcmeProvider/get", {"ids": None})
    assert err["type"] == "forbidden"
    err = t1.error("x:AcmeProvider/set", {"create": {"p": {}}})
    assert err["type"] == "forbidden"
    assert t1.error("x:AcmeProvider/query", {})["type"] == "forbidden"


def test_changes_do_not_leak_other_tenants_ids(t1, world, jmap):
    since = t1.ok("x:Account/get", {"ids": []})["state"]
    jmap.ok("x:Account/set", {"update": {eid(world.t2user): {"description": "T2 change"},
                                         eid(world.t1user): {"description": "T1 change"}}})
    credentials.set_password(world.t2admin, NEW_PASSWORD, "test")
    got = t1.ok("x:Account/changes", {"sinceState": since})
    assert got["updated"] == [eid(world.t1user)] and got["created"] == [] and got["destroyed"] == []
    # The system administrator sees both.
    got = jmap.ok("x:Account/changes", {"sinceState": since})
    assert set(got["updated"]) == {eid(world.t1user), eid(world.t2user), eid(world.t2admin)}


# --- admin pages --------------------------------------------------------------------------------
@pytest.fixture
def t1_pages(client, world):
    assert client.login(username="boss@one.test", password=STRONG_PASSWORD)
    return client


def test_admin_list_shows_only_its_tenant(t1_pages, world):
    page = t1_pages.get("/admin/accounts/account/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "boss@one.test" in html and "ann@one.test" in html
    assert "zed@two.test" not in html and "admin@example.org" not in html
    assert "two.test" not in html  # not even in the domain filter
    page = t1_pages.get("/admin/accounts/domain/")
    assert "one.test" in page.content.decode() and "two.test" not in page.content.decode()


def test_admin_cannot_open_or_change_another_tenants_objects(t1_pages, world):
    for url in (f"/admin/accounts/account/{world.t2user.pk}/change/",
                f"/admin/accounts/domain/{world.d2.pk}/change/",
                f"/admin/accounts/account/{world.admin.pk}/change/"):
        page = t1_pages.get(url, follow=True)
        assert "zed@two.test" not in page.content.decode() or "doesn’t exist" in page.content.decode()
        assert page.redirect_chain, url  # Django sends an unknown id back to the list
    t1_pages.post(f"/admin/accounts/domain/{world.d2.pk}/change/", {"name": "two.test", "description": "owned"})
    assert Domain.objects.get(pk=world.d2.pk).description == ""
    t1_pages.post(f"/admin/accounts/account/{world.t2user.pk}/delete/", {"post": "yes"})
    assert Account.objects.filter(pk=world.t2user.pk).exists()


def test_admin_reset_password_only_in_its_tenant(t1_pages, world):
    response = post_account_form(t1_pages, world.t1user, new_password=NEW_PASSWORD,
                                 new_password_confirm=NEW_PASSWORD)
    assert response.status_code == 302
    assert can_log_in("ann@one.test", NEW_PASSWORD)


def test_admin_add_account_in_another_tenants_domain_is_refused(t1_pages, world):
    page = t1_pages.get("/admin/accounts/account/add/")
    assert page.status_code == 200
    assert "two.test" not in page.content.decode()
    data = form_data(page, "account_form")
    data.update({"name": "evil", "domain": str(world.d2.pk), "tenant": "", "roles_mode": "user", "_save": "Save",
                 "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD})
    response = t1_pages.post("/admin/accounts/account/add/", data)
    assert response.status_code == 200
    assert not Account.objects.filter(name="evil").exists()
    data.update({"name": "good", "domain": str(world.d1.pk)})
    response = t1_pages.post("/admin/accounts/account/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Account.objects.get(name="good").tenant_id == world.t1.pk


def test_admin_system_pages_are_out_of_reach(t1_pages, world):
    assert t1_pages.get("/admin/certificates/acmeprovider/").status_code == 403
    assert t1_pages.get("/admin/registry/auditevent/").status_code == 403


def test_clashes_and_links_do_not_name_other_tenants_objects(t1, world, jmap):
    own = eid(world.d1)
    got = t1.ok("x:Domain/set", {"update": {own: {"name": "two.test"}}})
    err = got["notUpdated"][own]
    assert err["type"] == "primaryKeyViolation" and "objectId" not in err, err
    # A system administrator may put a T2 account on T1's domain; T1 then learns only that
    # something of another tenant refers to it.
    got = jmap.ok("x:Account/set", {"update": {eid(world.t2user): {"domainId": own}}})
    assert got["updated"], got
    got = t1.ok("x:Domain/set", {"destroy": [own]})
    err = got["notDestroyed"][own]
    assert err["type"] == "objectIsLinked"
    assert {"object": "Account", "id": None} in err["linkedObjects"]
    assert {link["id"] for link in err["linkedObjects"]} == {eid(world.t1admin), eid(world.t1user), None}
    assert {"object": "Account", "id": eid(world.t1user)} in err["linkedObjects"]
