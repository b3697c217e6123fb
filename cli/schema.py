"""Reading the /api/schema document: name resolution (cli.md §4), fields, labels, lists.

Everything here works on the document alone, whichever transport fetched it, so that local and
remote runs resolve names and render values the same way.
"""
from __future__ import annotations

from .errors import CliError, unknown_field


def display_name(canonical: str) -> str:
    return canonical[2:] if canonical.startswith("x:") else canonical


def with_prefix(raw: str) -> str:
    raw = raw.strip()
    return "x:" + raw[2:] if raw[:2].lower() == "x:" else "x:" + raw


def forbid_slash_form(raw: str) -> None:
    if "/" in raw:
        raise CliError("the Object/Variant syntax is only valid for `create`")


# --- field types ------------------------------------------------------------------------------
def kind(ftype) -> str:
    """The type's kind; a bare string (an informal class name) counts as a string."""
    return ftype.get("type", "") if isinstance(ftype, dict) else "string"


def nullable(ftype) -> bool:
    return bool(isinstance(ftype, dict) and ftype.get("nullable"))


def ref_target(ftype) -> str | None:
    """The object an objectId-typed scalar class points to."""
    if isinstance(ftype, dict) and ftype.get("type") == "objectId":
        return ftype.get("objectName")
    return None


def is_secret(ftype) -> bool:
    return kind(ftype) == "string" and ftype.get("format") in ("secret", "secretText")


def is_composite(ftype) -> bool:
    k = kind(ftype)
    if k in ("object", "objectList"):
        return True
    return k == "map" and kind(ftype.get("valueClass")) == "object"


class Schema:
    def __init__(self, doc: dict):
        self.doc = doc
        self.objects: dict = doc.get("objects") or {}
        self.schemas: dict = doc.get("schemas") or {}
        self.fields: dict = doc.get("fields") or {}
        self.forms: dict = doc.get("forms") or {}
        self.lists: dict = doc.get("lists") or {}
        self.enums: dict = doc.get("enums") or {}

    # --- objects ------------------------------------------------------------------------------
    def object_type(self, canonical: str) -> str:
        return (self.objects.get(canonical) or {}).get("type", "")

    def is_singleton(self, canonical: str) -> bool:
        return self.object_type(canonical) == "singleton"

    def views_of(self, canonical: str) -> list[str]:
        return [k for k, v in self.objects.items()
                if v.get("type") == "view" and v.get("objectName") == canonical]

    def resolve(self, raw: str, views_as_not_found: bool = False) -> str | None:
        candidate = with_prefix(raw).lower()
        key = next((k for k in self.objects if k.lower() == candidate), None)
        if key is None:
            return None
        if self.object_type(key) == "view":
            if views_as_not_found:
                return None
            raise CliError(f"{display_name(key)} is a view; use the underlying object name")
        return key

    def require(self, raw: str) -> str:
        key = self.resolve(raw)
        if key is not None:
            return key
        embedded = self._embedded(raw)
        if embedded is not None:
            raise CliError(self._embedded_message(embedded))
        raise CliError(f"unknown object: {display_name(raw.strip())}")

    def embedded_type(self, raw: str) -> str | None:
        """An embedded type that the schema describes (Credential, EmailAlias), by any case."""
        bare = raw.strip().lower()
        return next((k for k in self.schemas if not k.startswith("x:") and k.lower() == bare), None)

    def _embedded(self, raw: str) -> str | None:
        """An embedded type's name: known to `schemas`, or named by an object property."""
        candidate = with_prefix(raw).lower()
        for key in self.schemas:
            if key.lower() == candidate:
                return key
        bare = raw.strip().lower()
        for fields in self.fields.values():
            for field in (fields.get("properties") or {}).values():
                t = field.get("type")
                name = t.get("objectName") if kind(t) in ("object", "objectList") else None
                if name and (name.lower() == bare or name.lower() == candidate):
                    return name
        return None

    def _embedded_message(self, embedded: str) -> str:
        display = display_name(embedded)
        holders = []
        for key, entry in sorted(self.objects.items()):
            if entry.get("type") == "view":
                continue
            for schema_name in self.schema_names(key):
                props = (self.fields.get(schema_name) or {}).get("properties") or {}
                names = sorted(n for n, f in props.items() if _refers_to(f.get("type"), embedded))
                if names:
                    holders.append((display_name(key), names[0]))
                    break
        if not holders:
            return f"`{display}` is an embedded sub-object, not a top-level object"
        if len(holders) == 1:
            holder, field = holders[0]
            return (f"`{display}` is an embedded property of {holder}, not a separate object. "
                    f"Snapshot {holder} to capture its {field}.")
        names = [h for h, _ in holders]
        joined = " or ".join(names) if len(names) == 2 else ", ".join(names[:-1]) + ", or " + names[-1]
        return (f"`{display}` is an embedded property of {joined}, not a separate object. "
                f"Snapshot {joined} to capture it.")

    def create_target(self, raw: str) -> tuple[str, str | None]:
        obj_part, _, variant = raw.partition("/")
        key = self.require(obj_part)
        if not _:
            return key, None
        variants = self.variants(key)
        if variants is None:
            raise CliError(f"{display_name(key)} is not multi-variant; do not use the `/Variant` syntax")
        for v in variants:
            if v.get("name", "").lower() == variant.lower():
                return key, v["name"]
        raise CliError(f"unknown variant '{variant}' for object {display_name(key)}")

    def resolve_enum(self, raw: str) -> str | None:
        return next((k for k in self.enums if k.lower() == raw.strip().lower()), None)

    # --- schemas and fields -------------------------------------------------------------------
    def variants(self, name: str) -> list[dict] | None:
        """The variants of a multi-variant object or embedded type; None when single."""
        entry = self.schemas.get(name) or {}
        return (entry.get("variants") or []) if entry.get("type") == "multiple" else None

    def schema_names(self, name: str) -> list[str]:
        entry = self.schemas.get(name)
        if entry is None:
            return [name] if name in self.fields else []
        if entry.get("type") == "multiple":
            return [v["schemaName"] for v in entry.get("variants") or [] if v.get("schemaName")]
        return [entry.get("schemaName") or name]

    def properties(self, name: str, variant: str | None = None) -> dict:
        """name -> field; the union across variants unless one is named."""
        if variant is not None:
            for v in self.variants(name) or []:
                if v.get("name") == variant and v.get("schemaName"):
                    return dict((self.fields.get(v["schemaName"]) or {}).get("properties") or {})
        out: dict = {}
        for schema_name in self.schema_names(name):
            for k, f in ((self.fields.get(schema_name) or {}).get("properties") or {}).items():
                out.setdefault(k, f)
        return out

    def properties_for(self, name: str, obj: dict) -> dict | None:
        """The fields that describe this instance (its @type's variant for multi-variant types)."""
        variants = self.variants(name)
        if variants is None:
            names = self.schema_names(name)
            return ((self.fields.get(names[0]) or {}).get("properties") or {}) if names else None
        at_type = obj.get("@type")
        variant = next((v for v in variants if v.get("name") == at_type), None)
        if variant is None or not variant.get("schemaName"):
            return None
        return (self.fields.get(variant["schemaName"]) or {}).get("properties") or {}

    def variant_label(self, name: str, value) -> str | None:
        if not isinstance(value, dict):
            return None
        at_type = value.get("@type")
        for v in self.variants(name) or []:
            if v.get("name") == at_type:
                return v.get("label") or at_type
        return None

    @staticmethod
    def find_field(props: dict, raw: str) -> tuple[str, dict] | None:
        raw = raw.strip()
        if raw in props:
            return raw, props[raw]
        low = raw.lower()
        for name, field in props.items():
            if name.lower() == low:
                return name, field
        return None

    def canonical_fields(self, canonical: str, raws: list[str]) -> list[str]:
        props = self.properties(canonical)
        out = []
        for raw in raws:
            raw = raw.strip()
            if not raw:
                continue
            if raw.lower() in ("id", "@type"):
                out.append(raw.lower())
                continue
            found = self.find_field(props, raw)
            if found is None:
                raise unknown_field(raw)
            out.append(found[0])
        return out

    # --- lists, forms, enums ------------------------------------------------------------------
    def list_for(self, canonical: str) -> dict | None:
        if canonical in self.lists:
            return self.lists[canonical]
        for view in self.views_of(canonical):
            if view in self.lists:
                return self.lists[view]
        return None

    def label_property(self, canonical: str) -> str | None:
        """The list's labelProperty, when it names a declared property."""
        entry = self.list_for(canonical) or {}
        name = entry.get("labelProperty")
        return name if name and name in self.properties(canonical) else None

    def field_label(self, canonical: str, field: str) -> str | None:
        keys = [canonical, *self.schema_names(canonical), *self.views_of(canonical)]
        for key in keys:
            for section in (self.forms.get(key) or {}).get("sections") or []:
                for ff in section.get("fields") or []:
                    if ff.get("name") == field and ff.get("label"):
                        return ff["label"]
        for key in [canonical, *self.views_of(canonical)]:
            for col in (self.lists.get(key) or {}).get("columns") or []:
                if col.get("name") == field and col.get("label"):
                    return col["label"]
        return None

    def enum_variant(self, enum_name: str, value) -> dict | None:
        for v in self.enums.get(enum_name) or []:
            if v.get("name") == value:
                return v
        return None


def _refers_to(ftype, name: str) -> bool:
    k = kind(ftype)
    if k in ("object", "objectList", "objectId"):
        return ftype.get("objectName") == name
    if k == "set":
        return ref_target(ftype.get("class")) == name
    if k == "map":
        value = ftype.get("valueClass")
        if ref_target(ftype.get("keyClass")) == name:
            return True
        return kind(value) == "object" and value.get("objectName") == name
    return False
