"""The system check over the declarations (registry.checks): a broken declaration, built here,
fails `manage.py check` with one error per mistake; the real registry passes."""
from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps

from registry import checks
from registry import declaration as decl_mod
from registry.declaration import ObjectType


@pytest.fixture
def scratch_model():
    """A model of no installed app's: its declaration never reaches the real registry's models."""
    with isolate_apps("registry"):
        class Scratch(models.Model):
            class Mode(models.TextChoices):
                ON = "on", "On"
                OFF = "off", "Off"

            name = models.CharField(max_length=10)
            mode = models.CharField(max_length=3, choices=Mode.choices, default=Mode.ON)
            note = models.CharField(max_length=10, blank=True)

            class Meta:
                app_label = "registry"

        yield Scratch


def ids_of(errors) -> list[str]:
    return sorted(e.id for e in errors)


def test_the_registered_declarations_pass():
    assert checks.check_declarations(decl_mod.declarations().values()) == []
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_a_sound_declaration_passes(scratch_model):
    decl = ObjectType(model=scratch_model, name="Scratch", groups=[("General", ["name", "mode", "note"])],
                      secret=("note",), enum_names={"mode": "ScratchMode"},
                      json_values={"mode": {"on": "On", "off": "Off"}},
                      permissions={"Get": "sysAccountGet"})
    assert checks.check_declarations([decl]) == []


def test_each_mistake_is_an_error(scratch_model):
    decl = ObjectType(
        model=scratch_model, name="scratch thing",
        groups=[("General", ["name", "nmae"]), ("Again", ["name"])],
        secret=("note",),                      # a field in no group
        server_set=("missing",),               # not a field at all
        enum_names={"name": "NameEnum"},       # no choices
        json_values={"mode": {"on": "On"}},    # "off" has no JSON value (and mode is in no group)
        permissions={"Get": "sysNoSuchThingGet", "Frobnicate": "sysAccountGet"},
        label_property="title",
    )
    errors = checks.check_declarations([decl])
    by_id = {}
    for e in errors:
        by_id.setdefault(e.id, []).append(e.msg)
        assert e.msg.startswith("Declaration x:scratch thing (Scratch): ")
    assert set(by_id) == {"registry.E001", "registry.E002", "registry.E003", "registry.E004", "registry.E005",
                          "registry.E006", "registry.E007", "registry.E008", "registry.E009", "registry.E012", "registry.E013"}
    assert any("'nmae'" in m for m in by_id["registry.E002"])
    assert any("'sysNoSuchThingGet'" in m for m in by_id["registry.E013"])
    assert any("'Frobnicate'" in m for m in by_id["registry.E012"])
    assert any("'missing'" in m for m in by_id["registry.E004"])
    assert any("'note'" in m for m in by_id["registry.E005"])


def test_two_declarations_of_one_model(scratch_model):
    one = ObjectType(model=scratch_model, name="One", groups=[("G", ["name"])])
    two = ObjectType(model=scratch_model, name="Two", groups=[("G", ["name"])])
    assert ids_of(checks.check_declarations([one, two])) == ["registry.E014"]


def test_manage_py_check_fails_on_a_registered_broken_declaration(scratch_model):
    decl = decl_mod.register(ObjectType(model=scratch_model, name="Scratch", groups=[("General", ["nmae"])],
                                        permissions={"Get": "sysNoSuchThingGet"}))
    try:
        with pytest.raises(SystemCheckError) as raised:
            call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    finally:
        decl_mod.unregister(decl)
    assert "registry.E002" in str(raised.value) and "registry.E013" in str(raised.value)
    assert "sysNoSuchThingGet" in str(raised.value)
    # Taken back out, the registry is sound again.
    call_command("check", stdout=io.StringIO())


@pytest.fixture
def variant_model():
    with isolate_apps("registry"):
        class Shape(models.Model):
            class Kind(models.TextChoices):
                CIRCLE = "circle", "Circle"
                SQUARE = "square", "Square"

            name = models.CharField(max_length=10)
            kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.CIRCLE)
            radius = models.PositiveIntegerField(default=1)
            side = models.PositiveIntegerField(default=1)
            side_unit = models.CharField(max_length=4, default="cm")

            class Meta:
                app_label = "registry"

        yield Shape


def test_a_sound_multi_variant_declaration_passes(variant_model):
    from registry.composites import QuotaMap

    decl = ObjectType(model=variant_model, name="Shape", groups=[("G", ["name", "kind", "radius", "side", "side_unit"])],
                      variant_field="kind", variants={"circle": ("radius",), "square": ("side", "side_unit")},
                      composites=[QuotaMap("size", {"side": "side", "unit": "side_unit"})])
    assert checks.check_declarations([decl]) == []
    assert [p.name for p in decl.json_props_for("circle")] == ["name", "kind", "radius"]


def test_variant_mistakes_are_errors(variant_model):
    from registry.composites import QuotaMap

    decl = ObjectType(model=variant_model, name="Shape", groups=[("G", ["name", "kind", "radius", "side", "side_unit"])],
                      variant_field="kind",
                      variants={"circle": ("radius", "diameter"), "triangle": ("side",)},  # no square; no diameter
                      composites=[QuotaMap("size", {"r": "radius", "s": "side"})])       # straddles two variants
    errors = checks.check_declarations([decl])
    assert ids_of(errors) == ["registry.E015", "registry.E016", "registry.E017"]
    assert any("'diameter'" in e.msg for e in errors)
    no_field = ObjectType(model=variant_model, name="Shape", groups=[("G", ["name", "radius"])],
                          variant_field="shape", variants={"circle": ("radius",)})
    assert ids_of(checks.check_declarations([no_field])) == ["registry.E015"]


def test_pages_name_each_group_once(scratch_model):
    sound = ObjectType(model=scratch_model, name="Paged", groups=[("A", ["name"]), ("B", ["mode"])],
                       pages=[("General", ["A"]), ("Security", ["B"])],
                       page_descriptions={"General": "The name.", "Security": "The mode."})
    assert checks.check_declarations([sound]) == []
    assert sound.page_groups("Security") == [("B", ["mode"])]
    broken = ObjectType(model=scratch_model, name="Paged", groups=[("A", ["name"]), ("B", ["mode"])],
                        pages=[("General", ["A", "C"]), ("Security", ["A"])])
    messages = [e.msg for e in checks.check_declarations([broken]) if e.id == "registry.E018"]
    assert any("'C'" in m for m in messages)        # a group that does not exist
    assert any("'A' is on 2 pages" in m for m in messages)
    assert any("'B' is on 0 pages" in m for m in messages)


def test_pages_need_their_own_description_and_labels_name_fields(scratch_model):
    decl = ObjectType(model=scratch_model, name="Scratch", description="Name and mode.",
                      groups=[("Naming", ["name"]), ("Mode", ["mode"])],
                      pages=[("General", ["Naming"]), ("Advanced", ["Mode"])],
                      page_descriptions={"General": "What it is called.", "Elsewhere": "?"},
                      labels={"name": "Name", "nmae": "Typo"})
    errors = checks.check_declarations([decl])
    assert ids_of(errors) == ["registry.E030", "registry.E031", "registry.E031"]
    messages = " ".join(e.msg for e in errors)
    assert "'Advanced' has no description" in messages and "'Elsewhere'" in messages and "'nmae'" in messages
    sound = ObjectType(model=scratch_model, name="Scratch", description="Name and mode.",
                       groups=[("Naming", ["name"]), ("Mode", ["mode"])],
                       pages=[("General", ["Naming"]), ("Advanced", ["Mode"])],
                       page_descriptions={"General": "What it is called.", "Advanced": "How it runs."})
    assert checks.check_declarations([sound]) == []
    assert sound.page_description("Advanced") == "How it runs." and sound.page_description(None) == "Name and mode."


@pytest.mark.parametrize("name, shown", [
    ("enable hsts", "Enable HSTS"), ("use permissive cors", "Use permissive CORS"), ("tls_ca_file", "TLS ca file"),
    ("oidc provider url", "OIDC provider URL"), ("client ID", "Client ID"), ("ip address", "IP address"),
    ("jmap upload limit", "JMAP upload limit"), ("smtp/ldap/sql", "SMTP/LDAP/SQL"), ("identity", "Identity"),
    ("description", "Description"),
])
def test_labels_write_acronyms_in_capitals(name, shown):
    assert decl_mod.label(name) == shown
