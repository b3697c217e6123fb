"""The schema document of every declared object (served at /api/schema, read by manage.py).

Its sections follow the reference's: objects, schemas, fields, forms, lists and enums. It is
built from the declarations alone, so it cannot drift from what the server does.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from django.db import models

from . import declaration as decl_mod
from .composites import Composite, QuotaMap


# Scalar names of the type strings that fields and composites declare (schema_type, type_name).
_SCALARS = {
    "String": {"type": "string", "format": "string"},
    "UnsignedInt": {"type": "number", "format": "unsignedInteger"},
    "Integer": {"type": "number", "format": "integer"},
    "Boolean": {"type": "boolean"},
    "EmailAddress": {"type": "string", "format": "emailAddress"},
    "IpMask": {"type": "string", "format": "ipMask"},
    "SocketAddr": {"type": "string", "format": "socketAddr"},
    "Uri": {"type": "string", "format": "uri"},
    "HostName": {"type": "string", "format": "hostName"},
}


def _split_args(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def parse_type(text: str) -> dict:
    """A declared type string ("Set<EmailAddress>", "Map<ServiceProtocol, Service>", "Rate?")
    as a schema type: sets, maps and lists with their element types, scalars by format, and
    anything else as a named object."""
    text = text.strip()
    nullable = text.endswith("?")
    text = text.rstrip("?")
    head, _, rest = text.partition("<")
    if rest.endswith(">"):
        args = _split_args(rest[:-1])
        if head == "Set" and len(args) == 1:
            out = {"type": "set", "class": parse_type(args[0])}
        elif head == "List" and len(args) == 1:
            out = {"type": "list", "class": parse_type(args[0])}
        elif head == "Map" and len(args) == 2:
            out = {"type": "map", "keyClass": parse_type(args[0]), "valueClass": parse_type(args[1])}
        else:
            out = {"type": "object", "objectName": text}
    else:
        out = dict(_SCALARS.get(text) or {"type": "object", "objectName": text})
    if nullable:
        out["nullable"] = True
    return out


def _type(prop) -> dict:
    if isinstance(prop, Composite):
        return parse_type(prop.type_name)
    f = prop.field
    out: dict = {}
    if prop.is_m2m:
        out = {"type": "set", "class": {"type": "objectId", "objectName": f"x:{_name(f.related_model)}"}}
    elif prop.is_fk:
        out = {"type": "objectId", "objectName": f"x:{_name(f.related_model)}"}
    elif f.choices:
        out = {"type": "enum", "enumName": _enum_name(prop)}
    elif isinstance(f, models.DurationField):
        out = {"type": "number", "format": "duration"}
    elif isinstance(f, models.DateTimeField):
        out = {"type": "utcDateTime"}
    elif isinstance(f, models.BooleanField):
        out = {"type": "boolean"}
    elif isinstance(f, models.IntegerField):
        unsigned = isinstance(f, (models.PositiveIntegerField, models.PositiveBigIntegerField))
        out = {"type": "number", "format": "unsignedInteger" if unsigned else "integer"}
    elif isinstance(f, models.JSONField):
        out = parse_type(getattr(f, "schema_type", "Object"))
    else:
        out = {"type": "string", "format": "secret" if prop.secret else "string"}
        if getattr(f, "max_length", None):
            out["maxLength"] = f.max_length
    if prop.nullable:
        out["nullable"] = True
    if prop.minimum is not None:
        out["min"] = prop.minimum
    if prop.maximum is not None:
        out["max"] = prop.maximum
    return out


def _name(model) -> str:
    d = decl_mod.for_model(model)
    return d.name if d else model.__name__


def _enum_name(prop) -> str:
    return prop.enum_name or f"{prop.field.model.__name__}{prop.name[:1].upper()}{prop.name[1:]}"


def _label(prop) -> str:
    if isinstance(prop, Composite):
        return prop.name[:1].upper() + prop.name[1:]
    decl = decl_mod.for_model(prop.field.model)
    return decl.label_of(prop.attname) if decl is not None else decl_mod.label(prop.field.verbose_name)


def _description(prop) -> str:
    return str(getattr(prop, "description", "") or "") if isinstance(prop, Composite) else str(prop.field.help_text or "")


# Properties that a specialised JMAP face adds to a declared object (Account's credential and
# alias lists, which jmapapi encodes and decodes itself), with the embedded types they use. The
# face describes them where it encodes them; without this, /api/schema, `manage.py describe` and
# `--field` would not know them.
_EXTRA: dict[str, dict] = {}


def extend(name: str, *, properties: dict, sections: list[dict], embedded: dict | None = None) -> None:
    """Add `properties` (name -> schema field) and form `sections` to the declared object `name`;
    `embedded` holds the types they refer to: {"schemas": …, "fields": …, "forms": …, "enums": …}."""
    _EXTRA[name] = {"properties": properties, "sections": sections, "embedded": embedded or {}}
    _document.cache_clear()


def _quota_keys(decl, comp) -> list[dict]:
    """The keys of a quota map as an enum: each key labelled like the field it stands for."""
    return [{"name": key, "label": decl.label_of(field)}
            for key, field in comp.keys.items()]


def _properties(decl, json_props, enums: dict) -> tuple[dict, dict]:
    props, defaults = {}, {}
    for prop in json_props:
        props[prop.name] = {
            "description": _description(prop), "type": _type(prop),
            "update": "serverSet" if prop.server_set else (
                "immutable" if set(getattr(prop, "fields", ())) & set(decl.create_only) else "mutable"),
        }
        if isinstance(prop, QuotaMap):
            props[prop.name]["type"]["keyClass"] = {"type": "enum", "enumName": prop.key_enum}
            enums[prop.key_enum] = _quota_keys(decl, prop)
        if isinstance(prop, Composite):
            embedded = getattr(prop, "schema_types", None)
            if embedded is not None:
                _EMBEDDED.update(embedded())
            if getattr(prop, "default", None) is not None:
                defaults[prop.name] = prop.default
        else:
            if prop.choices:
                enums[_enum_name(prop)] = [{"name": v, "label": label} for v, label in prop.choices]
            if prop.default is not None or (prop.nullable and prop.field.has_default()):
                defaults[prop.name] = prop.default
    return props, defaults


def _sections(decl, groups, json_names: set) -> list[dict]:
    sections = []
    for title, names in groups:
        shown = []
        for attname in names:
            p = decl.prop_for_field(attname)
            comp = next((c for c in decl.composites if attname in c.fields), None)
            name = comp.name if comp else p.name
            if name in json_names and name not in [s["name"] for s in shown]:
                shown.append({"name": name, "label": _label(comp or p)})
        sections.append({"title": title, "fields": shown})
    return sections


# The embedded types composites describe (SecretKeyOptional, SqlAuthStore): schemas and fields.
_EMBEDDED: dict[str, dict] = {}


def build() -> dict:
    objects, schemas, fields, forms, lists, enums = {}, {}, {}, {}, {}, {}
    for decl in sorted(decl_mod.declarations().values(), key=lambda d: d.name):
        key = decl.jmap_name
        objects[key] = {"type": "singleton" if decl.singleton else "object", "description": decl.description,
                        "permissionPrefix": f"sys{decl.name}", "operations": list(decl.operations),
                        "section": decl.section}
        props, defaults = _properties(decl, decl.json_props, enums)
        if decl.multi:
            at_type = decl.public_name(decl.variant_field)
            schemas[key] = {"type": "multiple", "variants": []}
            for variant in decl.variants:
                name = decl.variant_schema_name(variant)
                schemas[key]["variants"].append({"name": decl.variant_json(variant),
                                                 "label": decl.variant_label(variant), "schemaName": name})
                own = [p for p in decl.json_props_for(variant) if p.name != at_type]
                vprops, vdefaults = _properties(decl, own, enums)
                fields[name] = {"properties": vprops, "defaults": vdefaults}
                forms[name] = {"sections": _sections(decl, decl.groups_for(variant), {p.name for p in own})}
            sections = _sections(decl, decl.groups, {p.name for p in decl.json_props})
        else:
            schemas[key] = {"type": "single", "schemaName": key}
            fields[key] = {"properties": props, "defaults": defaults}
            sections = _sections(decl, decl.groups, {p.name for p in decl.json_props})
        extra = _EXTRA.get(decl.name)
        if extra is not None:
            props.update(extra["properties"])
            sections.extend(extra["sections"])
            for part, table in (("schemas", schemas), ("fields", fields), ("forms", forms), ("enums", enums)):
                table.update(extra["embedded"].get(part) or {})
        forms[key] = {"sections": sections}
        if not decl.singleton:
            label_prop = decl.label_property or next(
                (p.name for p in decl.json_props if p.name in ("name", "description")), "id")
            lists[key] = {"title": decl.name, "labelProperty": label_prop,
                          "columns": [{"name": p.name, "label": _label(p)} for p in decl.json_props[:4]]}
    for name, entry in _EMBEDDED.items():
        schemas.setdefault(name, entry["schema"])
        fields.update(entry.get("fields") or {})
    return {"objects": objects, "schemas": schemas, "fields": fields, "forms": forms, "lists": lists,
            "enums": enums}


def document() -> tuple[bytes, str]:
    """The schema as canonical JSON bytes and the hex SHA-256 that names it."""
    return _document(decl_mod.version())


# Keyed by the registry's version: a declaration added later (a test's) is in the next document.
@lru_cache(maxsize=1)
def _document(_version: int) -> tuple[bytes, str]:
    body = json.dumps(build(), sort_keys=True, separators=(",", ":")).encode()
    return body, hashlib.sha256(body).hexdigest()
