"""The built-in roles follow the catalogue (accounts.builtin_roles): new names reach the roles
whose rules cover them, once; nothing an administrator chose is undone."""
from __future__ import annotations

import pytest
from django.db import models
from django.test.utils import isolate_apps

from accounts import builtin_roles, permissions
from accounts.models import KnownPermission, Role
from registry import declaration as decl_mod
from registry import services as registry
from registry.declaration import ObjectType
from registry.models import AuditEvent, ObjectState


@pytest.fixture
def bar():
    """A new singleton declared over a model of no installed app (its permissions only matter)."""
    with isolate_apps("registry"):
        class Bar(models.Model):
            limit = models.PositiveIntegerField(default=1)

            class Meta:
                app_label = "registry"

        decl = decl_mod.register(ObjectType(model=Bar, name="Bar", singleton=True, groups=[("Bar", ["limit"])]))
        try:
            yield decl
        finally:
            decl_mod.unregister(decl)


def admin_role():
    return Role.objects.get(name="admin", tenant__isnull=True)


@pytest.mark.django_db
def test_a_migrated_database_knows_the_whole_catalogue():
    assert set(KnownPermission.objects.values_list("name", flat=True)) == set(permissions.catalogue())
    assert builtin_roles.sync() == {}


@pytest.mark.django_db
def test_the_first_sync_takes_the_reference_names_as_known(bar):
    # A database from before the sync: no names recorded, and an administrator took
    # "impersonate" off the System Administrator.
    KnownPermission.objects.all().delete()
    role = admin_role()
    registry.update(Role._declaration, role.pk, {"enabled_permissions": sorted(
        set(role.enabled_permissions) - {"impersonate"})}, "test")

    assert builtin_roles.sync() == {"System Administrator": ["sysBarGet", "sysBarUpdate"]}
    held = set(admin_role().enabled_permissions)
    assert {"sysBarGet", "sysBarUpdate"} <= held and "impersonate" not in held
    assert set(KnownPermission.objects.values_list("name", flat=True)) == set(permissions.catalogue())
    assert builtin_roles.sync() == {}


@pytest.mark.django_db
def test_a_sync_is_audited_and_moves_the_role_state(bar):
    def state():
        return ObjectState.objects.filter(name="Role").values_list("state", flat=True).first() or 0

    before = state()
    builtin_roles.sync()
    assert state() == before + 1
    event = AuditEvent.objects.filter(object_type="Role", field="enabledPermissions").latest("id")
    assert event.actor == "system" and "sysBarGet" in event.new_value
