"""The permission catalogue, built-in roles, effective permissions and their invalidation
(auth spec §8, §9, §13, §15)."""
from __future__ import annotations

import pytest

from accounts import permissions as catalogue
from accounts import login
from accounts.authz import account_permissions
from accounts.models import Account, Authentication, Role, Tenant
from conftest import STRONG_PASSWORD
from registry import errors
from registry import services as registry
from registry.models import AuditEvent, ObjectState

IP = "203.0.113.7"
BUILTIN = ["User", "Group", "Tenant Administrator", "System Administrator"]


def role(description):
    return Role.objects.get(description=description)


def make_role(description, enabled=(), disabled=(), parents=()):
    return registry.create(Role._declaration, {
        "description": description, "enabled_permissions": sorted(enabled),
        "disabled_permissions": sorted(disabled), "parents": [p.pk for p in parents],
    }, "test")


def update_role(r, **values):
    if "parents" in values:
        values["parents"] = [p.pk for p in values["parents"]]
    return registry.update(Role._declaration, r.pk, values, "test")


def set_auth(**values):
    for key, roles in values.items():
        values[key] = [r.pk for r in roles]
    return registry.update(Authentication._declaration, 1, values, "test")


def perms(account):
    """Effective permissions as a fresh request would see them."""
    return account_permissions(Account.objects.get(pk=account.pk))


@pytest.fixture
def builtin(db):
    return {name: role(name) for name in BUILTIN}


# --- catalogue and built-in roles ------------------------------------------------------------
class TestCatalogue:
    def test_660_unique_names(self):
        names = catalogue.catalogue()
        assert len(names) == 660
        assert len(set(names)) == 660
        assert catalogue.all_permissions() == frozenset(names)
        # Reference ids: 0 authenticate, 1 authenticateWithAlias ... and the documented oddity.
        assert names[:8] == ("authenticate", "authenticateWithAlias", "interactAi", "impersonate",
                             "unlimitedRequests", "unlimitedUploads", "fetchAnyBlob", "emailSend")
        assert names[-1] == "jmapFileNodeCopy"
        for name in ("sysAppPasswordCreate", "sysApiKeyQuery", "sysAccountPasswordUpdate", "davCalFreeBusyQuery",
                     "taskDnsManagement", "actionPauseMtaQueue", "sysSpamTrainingSampleCreate", "liveDeliveryTest"):
            assert catalogue.is_permission(name)
        for name in ("", "root", "api-key-create", "settings-list", "sysAppPassword", "AUTHENTICATE"):
            assert not catalogue.is_permission(name)

    def test_ordered_follows_catalogue(self):
        assert catalogue.ordered(["emailSend", "sysAccountGet", "authenticate"]) == [
            "authenticate", "emailSend", "sysAccountGet"]


class TestBuiltinRoles:
    def test_migration_created_four_roles_with_reference_sizes(self, builtin):
        assert list(Role.objects.order_by("pk").values_list("description", flat=True)[:4]) == BUILTIN
        sizes = {name: len(r.enabled_permissions) for name, r in builtin.items()}
        assert sizes == {"User": 244, "Group": 229, "Tenant Administrator": 50, "System Administrator": 452}
        for name, r in builtin.items():
            assert set(r.enabled_permissions) == catalogue.builtin_roles()[name]
            assert len(set(r.enabled_permissions)) == len(r.enabled_permissions)
            assert r.disabled_permissions == []
            assert r.parents.count() == 0
            assert r.tenant_id is None

    def test_role_contents(self, builtin):
        user = set(builtin["User"].enabled_permissions)
        group = set(builtin["Group"].enabled_permissions)
        tenant = set(builtin["Tenant Administrator"].enabled_permissions)
        admin = set(builtin["System Administrator"].enabled_permissions)
        assert {"authenticate", "authenticateWithAlias", "interactAi", "emailSend", "imapAuthenticate",
                "sysAppPasswordCreate", "sysApiKeyDestroy", "sysAccountPasswordUpdate",
                "sysSpamTrainingSampleDestroy", "sysMaskedEmailCreate"} <= user
        assert not {"sysSpamTrainingSampleCreate", "impersonate", "sysAccountGet", "fetchAnyBlob"} & user
        # Groups receive mail but never log in nor manage credentials.
        assert "emailReceive" in group
        assert not {"authenticate", "sysAppPasswordCreate", "sysApiKeyCreate", "sysAccountPasswordGet"} & group
        assert group < user | group and len(user - group) == 15
        assert {"fetchAnyBlob", "liveDeliveryTest", "sysAccountCreate", "sysRoleQuery", "sysQueuedMessageDestroy",
                "sysDomainGet"} <= tenant
        assert not {"sysTenantGet", "impersonate", "imapAuthenticate", "sysAppPasswordCreate"} & tenant
        protocol = {p for p in catalogue.all_permissions()
                    if p.startswith(("jmap", "imap", "pop3", "calendar", "email", "dav", "sieve"))}
        assert admin == catalogue.all_permissions() - protocol
        assert {"impersonate", "sysSpamTrainingSampleCreate", "sysTenantCreate", "authenticate"} <= admin
        # Admin + User covers the whole catalogue; Tenant + User is T ∪ U.
        assert admin | user == catalogue.all_permissions()
        assert len(tenant | user) == 291

    def test_authentication_default_roles(self, builtin):
        auth = Authentication.load()
        ids = lambda rel: list(rel.order_by("pk").values_list("pk", flat=True))  # noqa: E731
        assert ids(auth.default_user_roles) == [builtin["User"].pk]
        assert ids(auth.default_group_roles) == [builtin["Group"].pk]
        assert ids(auth.default_tenant_roles) == sorted([builtin["Tenant Administrator"].pk, builtin["User"].pk])
        assert ids(auth.default_admin_roles) == sorted([builtin["System Administrator"].pk, builtin["User"].pk])
        assert set(ids(auth.default_tenant_roles)) == {builtin["Tenant Administrator"].pk, builtin["User"].pk}
        assert set(ids(auth.default_admin_roles)) == {builtin["System Administrator"].pk, builtin["User"].pk}

    def test_admin_holds_all_660(self, admin_account):
        assert perms(admin_account) == catalogue.all_permissions()
        assert len(perms(admin_account)) == 660
        result = login.authenticate("admin@example.org", STRONG_PASSWORD, IP)
        assert result.permissions == catalogue.all_permissions()

    def test_user_holds_the_user_role(self, make_account, builtin):
        bob = make_account("bob")
        assert perms(bob) == frozenset(builtin["User"].enabled_permissions)
        assert not Account.objects.get(pk=bob.pk).is_staff


# --- effective permissions (§8.2) ---------------------------------------------------------------
class TestEffectivePermissions:
    def test_inherit_ignores_own_lists(self, make_account, builtin):
        bob = make_account("bob", permissions_mode="inherit", enabled_permissions=["sysTenantGet"],
                           disabled_permissions=["imapFetch"])
        assert perms(bob) == frozenset(builtin["User"].enabled_permissions)

    def test_merge_adds_and_removes(self, make_account, builtin):
        bob = make_account("bob", permissions_mode="merge", enabled_permissions=["sysTenantGet", "impersonate"],
                           disabled_permissions=["imapFetch", "emailSend"])
        expected = (set(builtin["User"].enabled_permissions) | {"sysTenantGet", "impersonate"}) - {"imapFetch", "emailSend"}
        assert perms(bob) == frozenset(expected)
        assert len(perms(bob)) == 244

    def test_replace_ignores_roles(self, make_account):
        bob = make_account("bob", permissions_mode="replace", enabled_permissions=["authenticate", "sysDomainGet",
                                                                                    "imapFetch"],
                           disabled_permissions=["imapFetch"])
        assert perms(bob) == frozenset({"authenticate", "sysDomainGet"})
        result = login.authenticate("bob@example.org", STRONG_PASSWORD, IP)
        assert result.permissions == frozenset({"authenticate", "sysDomainGet"})
        assert Account.objects.get(pk=bob.pk).is_staff

    def test_replace_without_authenticate_cannot_log_in(self, make_account):
        make_account("bob", permissions_mode="replace", enabled_permissions=["imapAuthenticate"])
        with pytest.raises(login.Unauthorized) as exc:
            login.authenticate("bob@example.org", STRONG_PASSWORD, IP)
        assert exc.value.status == 403

    def test_role_closure_through_parents_with_a_cycle(self, make_account):
        grand = make_role("Grand", enabled={"sysDomainGet"})
        parent = make_role("Parent", enabled={"sysDomainQuery"}, parents=[grand])
        child = make_role("Child", enabled={"authenticate"}, parents=[parent])
        update_role(grand, parents=[child])  # Child -> Parent -> Grand -> Child
        update_role(child, parents=[parent, child])  # and a self-loop
        bob = make_account("bob", roles_mode="custom", roles=[child.pk])
        assert perms(bob) == frozenset({"authenticate", "sysDomainQuery", "sysDomainGet"})
        # Entering the cycle anywhere yields the same closure.
        carol = make_account("carol", roles_mode="custom", roles=[grand.pk])
        assert perms(carol) == perms(bob)

    def test_disabled_wins_anywhere(self, make_account):
        grand = make_role("Grand", enabled={"sysDomainGet", "imapFetch"}, disabled={"authenticate"})
        child = make_role("Child", enabled={"authenticate", "sysDomainQuery"}, parents=[grand])
        bob = make_account("bob", roles_mode="custom", roles=[child.pk])
        # Denied by a grandparent role though granted by the child.
        assert perms(bob) == frozenset({"sysDomainGet", "imapFetch", "sysDomainQuery"})
        with pytest.raises(login.Unauthorized):
            login.authenticate("bob@example.org", STRONG_PASSWORD, IP)
        # Denied by a sibling role.
        denier = make_role("Denier", disabled={"imapFetch"})
        carol = make_account("carol", roles_mode="custom", roles=[grand.pk, denier.pk])
        assert "imapFetch" not in perms(carol)
        # A role's denial beats the account's own grant.
        dave = make_account("dave", roles_mode="custom", roles=[denier.pk], permissions_mode="merge",
                            enabled_permissions=["authenticate", "imapFetch"])
        assert perms(dave) == frozenset({"authenticate"})
        # And the account's own denial beats every role.
        erin = make_account("erin", permissions_mode="merge", disabled_permissions=["authenticate"])
        assert "authenticate" not in perms(erin)

    def test_custom_roles(self, make_account, builtin):
        reader = make_role("Domain reader", enabled={"authenticate", "sysDomainGet", "sysDomainQuery"})
        bob = make_account("bob", roles_mode="custom", roles=[reader.pk, builtin["Group"].pk])
        assert perms(bob) == frozenset({"authenticate", "sysDomainGet", "sysDomainQuery"}
                                       | set(builtin["Group"].enabled_permissions))
        # Custom roles ignore the defaults.
        set_auth(default_user_roles=[])
        assert perms(bob) == frozenset({"authenticate", "sysDomainGet", "sysDomainQuery"}
                                       | set(builtin["Group"].enabled_permissions))

    def test_no_roles_no_permissions(self, make_account):
        bob = make_account("bob", roles_mode="custom")
        assert perms(bob) == frozenset()
        with pytest.raises(login.Unauthorized):
            login.authenticate("bob@example.org", STRONG_PASSWORD, IP)

    def test_groups_resolve_default_group_roles(self, make_account, builtin):
        staff = make_account("staff", kind="group", roles_mode="default")
        assert perms(staff) == frozenset(builtin["Group"].enabled_permissions)
        assert len(perms(staff)) == 229
        mailer = make_role("Mailer", enabled={"emailReceive"})
        set_auth(default_group_roles=[mailer])
        assert perms(staff) == frozenset({"emailReceive"})
        custom = make_account("team", kind="group", roles_mode="custom", roles=[mailer.pk])
        assert perms(custom) == frozenset({"emailReceive"})

    def test_group_permissions_do_not_flow_to_members(self, make_account, builtin):
        power = make_role("Power", enabled={"sysDomainGet", "impersonate"})
        staff = make_account("staff", kind="group", roles_mode="custom", roles=[power.pk])
        bob = make_account("bob", member_groups=[staff.pk])
        assert Account.objects.get(pk=bob.pk).member_groups.get().pk == staff.pk
        assert perms(bob) == frozenset(builtin["User"].enabled_permissions)

    def test_user_mode_and_admin_mode(self, make_account, builtin):
        bob = make_account("bob")
        boss = make_account("boss", roles_mode="admin")
        assert perms(bob) == frozenset(builtin["User"].enabled_permissions)
        assert perms(boss) == catalogue.all_permissions()


class TestTenants:
    @pytest.fixture
    def acme(self, db):
        return registry.create(Tenant._declaration, {"name": "acme"}, "test")

    def test_tenant_admin_holds_tenant_and_user_roles(self, make_account, acme, builtin):
        boss = make_account("boss", roles_mode="admin", tenant=acme.pk)
        expected = set(builtin["Tenant Administrator"].enabled_permissions) | set(builtin["User"].enabled_permissions)
        assert perms(boss) == frozenset(expected)
        assert len(perms(boss)) == 291
        assert "sysTenantGet" not in perms(boss)

    def test_tenant_caps_members(self, make_account, acme, builtin):
        # A member who would hold everything is capped to what the tenant holds (T ∪ U).
        bob = make_account("bob", tenant=acme.pk, permissions_mode="merge",
                           enabled_permissions=["sysTenantGet", "impersonate", "sysDomainGet"])
        assert "sysTenantGet" not in perms(bob)
        assert "impersonate" not in perms(bob)
        assert "sysDomainGet" in perms(bob)  # the tenant holds it (Tenant Administrator role)
        assert perms(bob) == frozenset(set(builtin["User"].enabled_permissions) | {"sysDomainGet"})

    def test_tenant_custom_roles_and_denials(self, make_account, acme, builtin):
        boss = make_account("boss", roles_mode="admin", tenant=acme.pk)
        registry.update(Tenant._declaration, acme.pk, {"roles_mode": "custom", "roles": [builtin["User"].pk]}, "test")
        assert perms(boss) == frozenset(builtin["User"].enabled_permissions)
        registry.update(Tenant._declaration, acme.pk, {"permissions_mode": "merge",
                                                        "disabled_permissions": ["imapFetch"]}, "test")
        assert perms(boss) == frozenset(builtin["User"].enabled_permissions) - {"imapFetch"}
        registry.update(Tenant._declaration, acme.pk, {"permissions_mode": "replace",
                                                        "enabled_permissions": ["authenticate", "emailSend"],
                                                        "disabled_permissions": []}, "test")
        assert perms(boss) == frozenset({"authenticate", "emailSend"})

    def test_tenant_role_denial_reaches_members(self, make_account, acme, builtin):
        bob = make_account("bob", tenant=acme.pk)
        deny = make_role("No IMAP", disabled={"imapAuthenticate"})
        registry.update(Tenant._declaration, acme.pk, {"roles_mode": "custom",
                                                        "roles": [builtin["User"].pk, deny.pk]}, "test")
        assert "imapAuthenticate" not in perms(bob)
        assert "imapFetch" in perms(bob)

    def test_tenant_members_without_tenant_roles_have_nothing(self, make_account, acme):
        bob = make_account("bob", tenant=acme.pk)
        registry.update(Tenant._declaration, acme.pk, {"roles_mode": "custom", "roles": []}, "test")
        assert perms(bob) == frozenset()
        with pytest.raises(login.Unauthorized):
            login.authenticate("bob@example.org", STRONG_PASSWORD, IP)


# --- default roles resolved at use time (§9.3, §15.3) --------------------------------------------
class TestDefaultRolesAreSymbolic:
    def test_changing_default_user_roles_rescopes_existing_accounts(self, make_account, builtin):
        bob = make_account("bob")
        loaded = Account.objects.get(pk=bob.pk)
        assert "imapAuthenticate" in account_permissions(loaded)  # now cached
        narrow = make_role("Narrow", enabled={"authenticate", "sysDomainGet"})
        set_auth(default_user_roles=[narrow])
        assert perms(bob) == frozenset({"authenticate", "sysDomainGet"})
        result = login.authenticate("bob@example.org", STRONG_PASSWORD, IP)
        assert result.permissions == frozenset({"authenticate", "sysDomainGet"})
        # Admins take the admin defaults, which still include the User role itself (not the setting).
        boss = make_account("boss", roles_mode="admin")
        assert perms(boss) == catalogue.all_permissions()
        set_auth(default_user_roles=[])
        with pytest.raises(login.Unauthorized):
            login.authenticate("bob@example.org", STRONG_PASSWORD, IP)

    def test_web_session_loses_admin_when_admin_roles_are_emptied(self, admin_client, admin_account):
        assert admin_client.get("/admin/").status_code == 200
        assert admin_client.get("/admin/accounts/account/").status_code == 200
        set_auth(default_admin_roles=[])
        response = admin_client.get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
        response = admin_client.get("/admin/accounts/account/")
        assert response.status_code in (302, 403)
        # The account page still answers (any logged-in user may see it) but offers no admin link.
        page = admin_client.get("/account/")
        assert page.status_code == 200
        assert 'href="/admin/"' not in page.content.decode()

    def test_web_session_gains_admin_when_user_roles_grow(self, user_client, make_account):
        assert user_client.get("/admin/").status_code == 302
        assert user_client.get("/admin/accounts/domain/").status_code == 302
        extra = make_role("Domains", enabled={"sysDomainGet", "sysDomainQuery"})
        set_auth(default_user_roles=[role("User"), extra])
        assert user_client.get("/admin/").status_code == 200
        assert user_client.get("/admin/accounts/domain/").status_code == 200
        assert user_client.get("/admin/accounts/account/").status_code == 403


# --- editing and destroying roles (§9.1) ----------------------------------------------------------
class TestRoleChanges:
    def test_editing_a_role_takes_effect_at_once(self, make_account, builtin):
        bob = make_account("bob")
        assert "imapFetch" in perms(bob)
        update_role(builtin["User"], disabled_permissions=["imapFetch"])
        assert "imapFetch" not in perms(bob)
        update_role(builtin["User"], disabled_permissions=[],
                    enabled_permissions=sorted(set(builtin["User"].enabled_permissions) | {"sysDomainGet"}))
        assert "imapFetch" in perms(bob) and "sysDomainGet" in perms(bob)

    def test_editing_a_parent_role_reaches_children_accounts(self, make_account):
        parent = make_role("Parent", enabled={"sysDomainGet"})
        child = make_role("Child", enabled={"authenticate"}, parents=[parent])
        bob = make_account("bob", roles_mode="custom", roles=[child.pk])
        assert "sysDomainGet" in perms(bob)
        update_role(parent, enabled_permissions=["sysDomainQuery"])
        assert perms(bob) == frozenset({"authenticate", "sysDomainQuery"})
        update_role(child, parents=[])
        assert perms(bob) == frozenset({"authenticate"})

    def test_editing_admin_role_on_a_web_session(self, admin_client, builtin):
        assert admin_client.get("/admin/accounts/domain/").status_code == 200
        admin_role = builtin["System Administrator"]
        # Every operation on domains (Django's admin lets the change right read a list too).
        update_role(admin_role, disabled_permissions=[f"sysDomain{op}" for op in catalogue.OPS])
        assert admin_client.get("/admin/accounts/domain/").status_code == 403
        assert admin_client.get("/admin/accounts/account/").status_code == 200
        update_role(admin_role, disabled_permissions=[])
        assert admin_client.get("/admin/accounts/domain/").status_code == 200

    def test_unknown_permission_refused_on_a_role(self, builtin):
        with pytest.raises(errors.SetError):
            update_role(builtin["User"], enabled_permissions=["authenticate", "becomeRoot"])
        assert len(role("User").enabled_permissions) == 244

    def _snapshot(self):
        return (Role.objects.count(), AuditEvent.objects.count(),
                ObjectState.objects.filter(name="Role").values_list("state", flat=True).first())

    @pytest.mark.parametrize("name", ["User", "Group", "Tenant Administrator", "System Administrator"])
    def test_builtin_roles_referenced_by_the_settings_cannot_be_destroyed(self, builtin, name):
        before = self._snapshot()
        with pytest.raises(errors.ObjectIsLinked) as exc:
            registry.destroy(Role._declaration, builtin[name].pk, "test")
        assert exc.value.type == "objectIsLinked"
        assert {"object": "Authentication", "id": "singleton"} in exc.value.extra["linkedObjects"]
        assert self._snapshot() == before
        assert Role.objects.filter(pk=builtin[name].pk).exists()

    def test_role_referenced_by_an_account_a_tenant_or_a_role(self, make_account):
        used = make_role("Used by an account", enabled={"authenticate"})
        bob = make_account("bob", roles_mode="custom", roles=[used.pk])
        parent = make_role("Parent", enabled={"sysDomainGet"})
        make_role("Child", parents=[parent])
        tenant_role = make_role("Tenant role")
        registry.create(Tenant._declaration, {"name": "acme", "roles_mode": "custom", "roles": [tenant_role.pk]}, "test")
        for r in (used, parent, tenant_role):
            before = self._snapshot()
            with pytest.raises(errors.ObjectIsLinked):
                registry.destroy(Role._declaration, r.pk, "test")
            assert self._snapshot() == before
        assert perms(bob) == frozenset({"authenticate"})

    def test_unreferenced_role_can_be_destroyed(self, make_account):
        parent = make_role("Parent", enabled={"sysDomainGet"})
        child = make_role("Child", enabled={"authenticate"}, parents=[parent])
        # The child refers to the parent, not the other way round: the child may go.
        registry.destroy(Role._declaration, child.pk, "test")
        assert not Role.objects.filter(pk=child.pk).exists()
        assert AuditEvent.objects.filter(object_type="Role", action="destroy", object_id__isnull=False).exists()
        registry.destroy(Role._declaration, parent.pk, "test")
        assert not Role.objects.filter(pk=parent.pk).exists()
