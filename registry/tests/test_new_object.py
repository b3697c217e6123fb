"""The issue's example, end to end: a new object `x:Foo` (a model, its declaration, its table)
on a database that already exists. Nothing else is written for it: `migrate` hands its
permission names to the System Administrator, and every face serves it.

The model belongs to no installed app (isolate_apps), so that it leaves no trace in the real
registry; its table is created and dropped here, which is why the test commits for real.
"""
from __future__ import annotations

import importlib
import io
import json

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.db import connection, models
from django.test.utils import isolate_apps
from django.urls import clear_url_caches, reverse

from accounts import builtin_roles, permissions
from accounts.models import Role
from registry import declaration as decl_mod
from registry import ids
from registry import services as registry
from registry.admin import register_declared
from registry.declaration import ObjectType
from tests.clients import STRONG_PASSWORD, Jmap, basic

FOO_PERMISSIONS = ["sysFooGet", "sysFooCreate", "sysFooUpdate", "sysFooDestroy", "sysFooQuery"]


def _reload_urls():
    # The admin's URLs are read from its registry when the URL table is imported.
    importlib.reload(importlib.import_module("stalwart_site.urls"))
    clear_url_caches()


@pytest.fixture
def foo():
    with isolate_apps("registry"):
        class Foo(models.Model):
            class Size(models.TextChoices):
                SMALL = "small", "Small"
                LARGE = "large", "Large"

            name = models.CharField(max_length=50, unique=True, help_text="What the foo is called.")
            size = models.CharField(max_length=8, choices=Size.choices, default=Size.SMALL)

            class Meta:
                app_label = "registry"

            def __str__(self):
                return self.name

        with connection.schema_editor() as editor:
            editor.create_model(Foo)
        decl = decl_mod.register(ObjectType(
            model=Foo, name="Foo", section="Settings › Foo", description="A new object.",
            groups=[("Foo", ["name", "size"])], enum_names={"size": "FooSize"},
            json_values={"size": {"small": "Small", "large": "Large"}},
        ))
        register_declared()
        _reload_urls()
        try:
            yield decl
        finally:
            decl_mod.unregister(decl)
            admin.site.unregister(Foo)
            _reload_urls()
            with connection.schema_editor() as editor:
                editor.delete_model(Foo)


def role(slug):
    return Role.objects.get(name=slug, tenant__isnull=True)


@pytest.mark.django_db(transaction=True)
def test_a_declared_object_gets_its_permissions_and_every_face(builtin_role_rows, client, make_account, foo):
    make_account("admin", roles_mode="admin")
    jmap = Jmap(client, basic("admin@example.org"))

    # In the catalogue at once; the roles of this (existing) database do not hold them yet.
    assert set(FOO_PERMISSIONS) <= permissions.all_permissions()
    assert not set(FOO_PERMISSIONS) & set(role("admin").enabled_permissions)
    assert jmap.error("x:Foo/get", {})["type"] == "forbidden"
    # An administrator's own role, granting one of the new names by hand.
    custom = registry.create(Role._declaration, {"description": "Foo readers", "enabled_permissions": ["sysFooGet"],
                                                 "disabled_permissions": []}, "test")

    call_command("migrate", verbosity=0)

    assert set(FOO_PERMISSIONS) <= set(role("admin").enabled_permissions)
    for slug in ("user", "group", "tenant-admin"):
        assert not set(FOO_PERMISSIONS) & set(role(slug).enabled_permissions)
    assert Role.objects.get(pk=custom.pk).enabled_permissions == ["sysFooGet"]

    # JMAP
    created = jmap.ok("x:Foo/set", {"create": {"a": {"name": "first", "size": "Large"}}})["created"]["a"]
    got = jmap.ok("x:Foo/get", {"ids": [created["id"]]})
    assert got["list"] == [{"id": created["id"], "name": "first", "size": "Large"}]
    assert jmap.ok("x:Foo/query", {})["ids"] == [created["id"]]
    assert jmap.ok("x:Foo/changes", {"sinceState": "0"})["created"] == [created["id"]]
    # The enum's JSON values are the declared ones, not the stored ones.
    bad = jmap.ok("x:Foo/set", {"update": {created["id"]: {"size": "small"}}})["notUpdated"]
    assert bad[created["id"]]["type"] == "invalidPatch"

    # Admin pages
    assert client.login(username="admin@example.org", password=STRONG_PASSWORD)
    assert client.get(reverse("admin:registry_foo_changelist")).status_code == 200
    page = client.get(reverse("admin:registry_foo_change", args=[ids.decode(created["id"])]))
    assert page.status_code == 200 and "first" in page.content.decode()

    # manage.py and the schema
    out = io.StringIO()
    call_command("get", "foo", created["id"], "--json", stdout=out)
    assert json.loads(out.getvalue()) == got["list"][0]
    schema = client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth, follow=True).json()
    assert schema["objects"]["x:Foo"]["permissionPrefix"] == "sysFoo"
    assert schema["enums"]["FooSize"] == [{"name": "Small", "label": "Small"}, {"name": "Large", "label": "Large"}]

    # Idempotent, and what an administrator took off a built-in role stays off.
    assert builtin_roles.sync() == {}
    admin_role = role("admin")
    registry.update(Role._declaration, admin_role.pk, {"enabled_permissions": sorted(
        set(admin_role.enabled_permissions) - {"sysFooDestroy"})}, "test")
    call_command("migrate", verbosity=0)
    assert "sysFooDestroy" not in role("admin").enabled_permissions
    assert "sysFooGet" in role("admin").enabled_permissions
