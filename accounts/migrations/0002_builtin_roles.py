"""The four built-in roles and the Authentication singleton that points at them (reference §9.2).

They are ordinary roles: administrators may edit them afterwards.
"""
from django.db import migrations

BUILTIN_ORDER = ["User", "Group", "Tenant Administrator", "System Administrator"]
SLUGS = {"User": "user", "Group": "group", "Tenant Administrator": "tenant-admin", "System Administrator": "admin"}


def create(apps, schema_editor):
    from accounts.permissions import builtin_roles

    Role = apps.get_model("accounts", "Role")
    Authentication = apps.get_model("accounts", "Authentication")
    if Role.objects.exists():
        return
    contents = builtin_roles()
    roles = {}
    for description in BUILTIN_ORDER:
        roles[description] = Role.objects.create(
            name=SLUGS[description], description=description,
            enabled_permissions=sorted(contents[description]), disabled_permissions=[],
        )
    auth, _ = Authentication.objects.get_or_create(pk=1)
    auth.default_user_roles.set([roles["User"]])
    auth.default_group_roles.set([roles["Group"]])
    auth.default_tenant_roles.set([roles["Tenant Administrator"], roles["User"]])
    auth.default_admin_roles.set([roles["System Administrator"], roles["User"]])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
