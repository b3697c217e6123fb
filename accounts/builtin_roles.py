"""The built-in roles follow the permission catalogue, on new and existing databases alike.

The four built-in roles are created by a data migration (0002) from the rules of
`permissions.builtin_roles()`. When a declaration later brings new permission names, every
`migrate` (post_migrate) hands each new name to the built-in roles whose rules cover it, so no
object needs a data migration of its own. Only names never seen before are handed out: what an
administrator took off a built-in role stays off, and other roles are never touched.
"""
from __future__ import annotations

from django.apps import apps as global_apps

from registry import services as registry

from . import permissions
from .models import KnownPermission, Role

# The built-in roles, by their role name (as migration 0002 created them), outside any tenant.
SLUGS = {"User": "user", "Group": "group", "Tenant Administrator": "tenant-admin", "System Administrator": "admin"}


def sync(actor=None) -> dict[str, list[str]]:
    """Grant the catalogue's new names to the built-in roles; returns role -> names granted.

    Idempotent: a second run finds no new name."""
    current = permissions.catalogue()
    stored = set(KnownPermission.objects.values_list("name", flat=True))
    # The first run on a database: its built-in roles were made from the reference's names,
    # either by migration 0002 or by hand since.
    known = stored or set(permissions.reference_catalogue())
    new = set(current) - known
    granted: dict[str, list[str]] = {}
    if new:
        rules = permissions.builtin_roles()
        decl = Role._declaration
        for description, slug in SLUGS.items():
            role = Role.objects.filter(name=slug, tenant__isnull=True).order_by("pk").first()
            if role is None:
                continue
            missing = (rules[description] & new) - set(role.enabled_permissions)
            if missing:
                names = permissions.ordered(set(role.enabled_permissions) | missing)
                registry.update(decl, role.pk, {"enabled_permissions": names}, actor)
                granted[description] = permissions.ordered(missing)
    KnownPermission.objects.bulk_create(
        [KnownPermission(name=name) for name in current if name not in stored], ignore_conflicts=True)
    return granted


def sync_after_migrate(sender, apps=None, using="default", **kwargs):
    """post_migrate: sync, once the tables it needs exist in the migrated state."""
    # `flush` (which tests that commit call) sends the signal without a migration state.
    apps = apps or global_apps
    try:
        apps.get_model("accounts", "KnownPermission")
        apps.get_model("registry", "AuditEvent")
    except LookupError:
        return
    if using != "default":
        return
    sync()
