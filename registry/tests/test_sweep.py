"""Every declaration through all four faces, as the System Administrator.

The parameters are the registry's declarations, read when the tests are collected: an object is
swept the moment it is declared, with nothing written for it here. Per object:

- JMAP x:T/get, /query and /changes answer, and /set takes back the values /get read;
- the admin list and change pages answer 200;
- `manage.py get` shows it and `manage.py update` takes back the values read;
- /api/schema lists it, with its permission prefix and operations.

A collection with no object yet gets one: created over JMAP from its schema (each required
property without a default gets a value of its type), or, where the server issues the objects
itself and a valid value cannot be guessed from a type, from the few samples below.
"""
from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from registry import declaration as decl_mod
from registry import ids
from registry import schema as schema_mod
from tests.clients import Jmap, basic

DECLARATIONS = sorted(decl_mod.declarations())

# Values a type alone cannot give (a property whose content the model checks beyond its type).
# Keyed by object, then property; everything not listed is derived from the schema.
VALUES = {
    "AcmeProvider": {"directory": "https://acme.example.org/directory", "domains": {"mail.example.org": True},
                     "contact": {"postmaster@example.org": True}},
    "BlockedIp": {"address": "192.0.2.77"},
    # A variant of a multi-variant object is keyed Object/Variant.
    "Directory/Oidc": {"issuerUrl": "https://sso.example.org/realms/sweep"},
    "AllowedIp": {"address": "192.0.2.78"},
    "NetworkListener": {"name": "sweep", "bind": {"127.0.0.1:18999": True}},
    "MtaRoute": {"name": "sweep", "address": "relay.example.org"},
    "OAuthClient": {"clientId": "sweep-client", "redirectUris": {"https://app.example.org/cb": True},
                    "logo": "https://app.example.org/logo.png"},
}


def _issue_certificate():
    """Certificates are issued by the ACME client, never created through a face."""
    from certificates.models import AcmeProvider, Certificate

    provider = AcmeProvider.objects.create(directory="https://acme.example.org/directory")
    now = dt.datetime.now(dt.timezone.utc)
    return Certificate.objects.create(
        provider=provider, names=["mail.example.org"], issuer="CN=Sweep CA", serial_number="01",
        not_before=now, not_after=now + dt.timedelta(days=90), chain="-----BEGIN CERTIFICATE-----\n",
    )


ISSUED = {"Certificate": _issue_certificate}


@pytest.fixture
def admin(client, admin_account):
    assert client.login(username="admin@example.org", password="Tr0ubador-Quartz-Lantern-91")
    return Jmap(client, basic("admin@example.org"))


def schema_of(jmap) -> dict:
    resp = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth, follow=True)
    assert resp.status_code == 200
    return resp.json()


def _value(jmap, schema, name, prop, spec):
    kind, fmt = spec.get("type"), spec.get("format")
    if kind == "string":
        return {"emailAddress": "sweep@example.org", "uri": "https://sweep.example.org/",
                "hostName": "sweep.example.org", "socketAddr": "127.0.0.1:18998",
                "ipMask": "192.0.2.1"}.get(fmt, f"sweep-{prop}".replace("@", ""))
    if kind == "number":
        return spec.get("min") or 1
    if kind == "boolean":
        return False
    if kind == "enum":
        return schema["enums"][spec["enumName"]][0]["name"]
    if kind == "objectId":
        found = jmap.ok(f"{spec['objectName']}/query", {})["ids"]
        return found[0] if found else None
    if kind == "set":
        # One element, where the element's type gives one (an empty set may be refused).
        element = _value(jmap, schema, name, prop, spec["class"]) if spec["class"].get("type") == "string" else None
        return {element: True} if element is not None else {}
    if kind == "map":
        return {}
    if kind == "list":
        return []
    return None


def schema_fields(schema, decl, variant=None) -> dict:
    """The schema's fields of the object, or of one variant of a multi-variant object."""
    entry = schema["schemas"][decl.jmap_name]
    if entry["type"] == "multiple":
        chosen = next(v for v in entry["variants"] if variant in (None, v["name"]))
        return schema["fields"][chosen["schemaName"]]
    return schema["fields"][decl.jmap_name]


def variant_names(schema, decl) -> list:
    entry = schema["schemas"][decl.jmap_name]
    return [v["name"] for v in entry["variants"]] if entry["type"] == "multiple" else [None]


def derived_body(jmap, schema, decl, variant=None) -> dict:
    fields = schema_fields(schema, decl, variant)
    body = {"@type": variant} if variant else {}
    for prop, about in fields["properties"].items():
        spec = about["type"]
        if about["update"] == "serverSet" or prop in fields["defaults"] or spec.get("nullable"):
            continue
        value = _value(jmap, schema, decl.name, prop, spec)
        if value is not None:
            body[prop] = value
    body.update(VALUES.get(decl.name, {}))
    body.update(VALUES.get(f"{decl.name}/{variant}", {}) if variant else {})
    return body


def sample_id(jmap, schema, decl, variant=None) -> str:
    """The JMAP id of an object of this type (and variant): an existing one, or one made for the sweep."""
    if decl.singleton:
        return ids.SINGLETON
    at_type = {"@type": variant} if variant else {}
    found = jmap.ok(f"{decl.jmap_name}/query", {"filter": at_type} if at_type else {})["ids"]
    if found:
        return found[0]
    if decl.name in ISSUED:
        return decl.object_id(ISSUED[decl.name]())
    assert "Create" in decl.operations, f"{decl.jmap_name}: no object, and none can be created"
    body = derived_body(jmap, schema, decl, variant)
    got = jmap.ok(f"{decl.jmap_name}/set", {"create": {"s": body}})
    assert "s" in (got.get("created") or {}), (body, got.get("notCreated"))
    return got["created"]["s"]["id"]


def echo_patch(decl, schema, obj) -> dict:
    """The object's own mutable values, as read: a patch /set and `update` must accept."""
    props = schema_fields(schema, decl, obj.get("@type") if decl.multi else None)["properties"]
    return {name: value for name, value in obj.items()
            if name in props and props[name]["update"] == "mutable" and props[name]["type"].get("format") != "secret"
            and value != "****"}


def _stored(decl, variant):
    return next(v for v in decl.variants if decl.variant_json(v) == variant)


def run(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        raise AssertionError(f"manage.py {' '.join(args)} exited {exc.code}: {err.getvalue()}") from None
    return out.getvalue()


def run_failing(*args) -> tuple[int, str]:
    err = io.StringIO()
    try:
        call_command(*args, stdout=io.StringIO(), stderr=err)
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return 0, err.getvalue()


@pytest.fixture(autouse=True)
def _local_cli(monkeypatch):
    for name in ("STALWART_URL", "STALWART_USER", "STALWART_PASSWORD", "STALWART_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.django_db
@pytest.mark.parametrize("name", DECLARATIONS)
def test_every_face_serves_the_declaration(admin, name):
    decl = decl_mod.get(name)
    schema = schema_of(admin)
    for variant in variant_names(schema, decl):
        sweep(admin, schema, decl, variant)


def sweep(jmap, schema, decl, variant):
    # /api/schema
    about = schema["objects"][decl.jmap_name]
    assert about["permissionPrefix"] == f"sys{decl.name}" and about["operations"] == list(decl.operations)
    # Every declared property, plus those a specialised face describes itself (Account's lists).
    added = set(schema_mod._EXTRA.get(decl.name, {}).get("properties", ()))
    if variant is None:
        assert set(schema_fields(schema, decl)["properties"]) == {p.name for p in decl.json_props} | added
    else:
        # A variant's fields: the common ones and its own; @type names the variant.
        assert set(schema_fields(schema, decl, variant)["properties"]) | {"@type"} == {
            p.name for p in decl.json_props_for(_stored(decl, variant))} | added

    # JMAP get / query / changes / set
    oid = sample_id(jmap, schema, decl, variant)
    got = jmap.ok(f"{decl.jmap_name}/get", {"ids": [oid]})
    assert [o["id"] for o in got["list"]] == [oid] and got["notFound"] == []
    obj, state = got["list"][0], got["state"]
    # Every declared property (a specialised face may add more: an account's aliases).
    own = decl.json_props if variant is None else decl.json_props_for(_stored(decl, variant))
    assert {"id"} | {p.name for p in own} <= set(obj)
    if not decl.singleton:
        assert oid in jmap.ok(f"{decl.jmap_name}/query", {})["ids"]
    changes = jmap.ok(f"{decl.jmap_name}/changes", {"sinceState": state})
    assert changes["oldState"] == state and changes["newState"] == state
    assert changes["created"] == changes["updated"] == changes["destroyed"] == []
    patch = echo_patch(decl, schema, obj)
    if "Update" in decl.operations and patch:
        done = jmap.ok(f"{decl.jmap_name}/set", {"update": {oid: patch}})
        assert oid in (done.get("updated") or {}), done
        # The same values: nothing changed, so the state stays.
        assert jmap.ok(f"{decl.jmap_name}/get", {"ids": [oid]})["list"][0] == obj

    # Admin list and change page
    if decl.admin:
        info = decl.model._meta.app_label, decl.model._meta.model_name
        page = jmap.client.get(reverse("admin:%s_%s_changelist" % info), follow=True)
        assert page.status_code == 200
        pk = decl.model.SINGLETON_PK if decl.singleton else ids.decode(oid)
        page = jmap.client.get(reverse("admin:%s_%s_change" % info, args=[pk]))
        assert page.status_code == 200

    # manage.py get / update. Locally it acts as the recovery administrator, which holds every
    # permission but owns no account: an account's own objects (app passwords, API keys) are
    # not in its reach, and it must say so rather than fail.
    if not decl.singleton:
        listed = [json.loads(line) for line in run("query", decl.name.lower(), "--json").splitlines()]
        if oid not in [item if isinstance(item, str) else item.get("id") for item in listed]:
            code, err = run_failing("get", decl.name.lower(), oid)
            assert code == 1 and "not found" in err, err
            return
    shown = json.loads(run("get", decl.name.lower(), oid, "--json"))
    assert shown == obj
    if "Update" in decl.operations and patch:
        assert run("update", decl.jmap_name, oid, "--json", json.dumps(patch)).startswith("Updated ")
        assert json.loads(run("get", decl.jmap_name, oid, "--json")) == obj
