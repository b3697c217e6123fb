"""One declaration per management object.

A declaration names a Django model and says how it appears to the outside: its JMAP name
(`x:<name>`), whether it is a singleton, its permission names, how its fields group on the
settings page. Everything else (types, defaults, bounds, enum labels, help texts) is read from
the model's fields, so that a field is described exactly once. The JMAP methods, manage.py
verbs, admin pages and /api/schema are all built from these declarations.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from django.core import validators as dj_validators
from django.db import models
from django.utils.module_loading import autodiscover_modules

from . import ids
from .errors import InvalidPatch


# Values of ObjectType.tenant_scope other than a lookup path.
SYSTEM = "system"
TENANT_SELF = "self"


# How these words are written in a label, whatever the case of the field name they come from
# ("enable_hsts" is "Enable HSTS", not Django's "Enable hsts").
ACRONYMS = {word.lower(): word for word in (
    "ACME", "API", "CIDR", "CORS", "CSP", "DKIM", "DMARC", "DNS", "EAB", "HMAC", "HSTS", "HTTP", "HTTPS",
    "ID", "IDs", "IMAP", "IP", "IPs", "JMAP", "JSON", "JWT", "LDAP", "MFA", "MTA", "MX", "OAuth", "OIDC",
    "OTLP", "PEM", "POP3", "SASL", "SMTP", "SPF", "SQL", "SSL", "STS", "TLS", "TOTP", "TTL", "URI", "URIs",
    "URL", "URLs", "UTF", "XML",
)}
_WORD = re.compile(r"[A-Za-z0-9]+")


def label(text: str) -> str:
    """A field's name as people read it: the first letter capitalised, acronyms in capitals."""
    text = _WORD.sub(lambda m: ACRONYMS.get(m.group(0).lower(), m.group(0)), str(text).replace("_", " "))
    return text[:1].upper() + text[1:]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass
class Prop:
    """A public property of a declared object, derived from one model field."""

    name: str
    field: models.Field
    server_set: bool = False
    secret: bool = False
    # From the declaration (ObjectType.enum_names, json_values): the schema's name of the
    # enum, and the JSON values where they differ from the stored ones.
    enum_name: str | None = None
    json_values: dict = field(default_factory=dict)

    @property
    def attname(self) -> str:
        return self.field.name

    @property
    def is_m2m(self) -> bool:
        return isinstance(self.field, models.ManyToManyField)

    @property
    def is_fk(self) -> bool:
        return isinstance(self.field, models.ForeignKey)

    @property
    def nullable(self) -> bool:
        return bool(getattr(self.field, "null", False)) and not self.is_m2m

    @property
    def value_map(self) -> dict:
        """Model value -> JSON value, where they differ (e.g. "user" -> "User")."""
        return self.json_values

    @property
    def choices(self) -> list[tuple[str, str]]:
        vm = self.value_map
        return [(str(vm.get(v, v)), str(label)) for v, label in (self.field.choices or [])]

    # The interface shared with composites: whole-object encode, decode to field values.
    @property
    def fields(self) -> tuple[str, ...]:
        return (self.attname,)

    def encode_obj(self, obj):
        return self.to_json(read_value(obj, self))

    def decode(self, value) -> dict:
        return {self.attname: self.from_json(value)}

    def bound(self, validator_cls) -> Any:
        for v in self.field.validators:
            if isinstance(v, validator_cls):
                return v.limit_value
        return None

    @property
    def minimum(self):
        return self.bound(dj_validators.MinValueValidator)

    @property
    def maximum(self):
        return self.bound(dj_validators.MaxValueValidator)

    @property
    def default(self):
        if self.is_m2m or not self.field.has_default():
            return None
        return self.to_json(self.field.get_default())

    @property
    def type_name(self) -> str:
        f = self.field
        if self.is_m2m:
            base = f"Set<Id<{f.related_model.__name__}>>"
        elif self.is_fk:
            base = f"Id<{f.related_model.__name__}>"
        elif f.choices:
            base = self.enum_name or "Enum"
        elif isinstance(f, models.DurationField):
            base = "Duration"
        elif isinstance(f, models.DateTimeField):
            base = "UTCDateTime"
        elif isinstance(f, models.BooleanField):
            base = "Boolean"
        elif isinstance(f, (models.PositiveIntegerField, models.PositiveBigIntegerField, models.PositiveSmallIntegerField)):
            base = "UnsignedInt"
        elif isinstance(f, models.IntegerField):
            base = "Integer"
        elif isinstance(f, models.JSONField):
            base = getattr(f, "schema_type", "Object")
        elif isinstance(f, models.EmailField):
            base = "EmailAddress"
        else:
            base = "String"
        return base + ("?" if self.nullable else "")

    # --- JSON encoding (the reference's value encodings) ------------------------------
    def to_json(self, value):
        if self.secret and value:
            return "****"
        if value is None:
            return None
        f = self.field
        if hasattr(f, "jmap_encode"):
            return f.jmap_encode(value)
        if self.value_map:
            return self.value_map.get(value, value)
        if self.is_m2m:
            return {ids.encode(pk): True for pk in value}
        if isinstance(f, models.DurationField):
            return int(value.total_seconds() * 1000)
        if isinstance(f, models.DateTimeField):
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.is_fk:
            return ids.encode(value)
        return value

    def from_json(self, value):
        """Decode a JSON value for this property; raises InvalidPatch on a wrong shape."""
        f = self.field

        def bad():
            return InvalidPatch("Invalid value for object property", properties=[self.name])

        if value is None:
            if self.nullable:
                return None
            raise bad()
        if hasattr(f, "jmap_decode"):
            try:
                return f.jmap_decode(value)
            except (TypeError, ValueError):
                raise bad() from None
        if self.value_map:
            back = {v: k for k, v in self.value_map.items()}
            # A list or object (e.g. "@type": ["User"]) is not hashable: a bad value, not a TypeError.
            if isinstance(value, (list, dict)) or value not in back:
                raise bad()
            return back[value]
        if self.is_m2m:
            if not isinstance(value, dict) or not all(v is True for v in value.values()):
                raise bad()
            return [self._id(k, bad) for k in value]
        if self.is_fk:
            if not isinstance(value, str):
                raise bad()
            return self._id(value, bad)
        if isinstance(f, models.DurationField):
            # Stored as microseconds in a signed 64-bit column: larger values cannot be kept.
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= (2**63 - 1) // 1000:
                raise bad()
            return dt.timedelta(milliseconds=value)
        if isinstance(f, models.DateTimeField):
            if not isinstance(value, str):
                raise bad()
            try:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise bad() from None
            if parsed.tzinfo is None:
                raise bad()
            return parsed
        if isinstance(f, models.BooleanField):
            if not isinstance(value, bool):
                raise bad()
            return value
        if isinstance(f, models.IntegerField):
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad()
            return value
        if isinstance(f, (models.CharField, models.TextField)):
            if not isinstance(value, str):
                raise bad()
            return value
        return value

    @staticmethod
    def _id(value, bad):
        number = ids.decode(value)
        if number is None:
            raise bad()
        return number


@dataclass
class ObjectType:
    """The declaration of one management object."""

    model: type[models.Model]
    name: str
    singleton: bool = False
    description: str = ""
    # Breadcrumb of the settings page, as the reference's WebUI shows it.
    section: str = ""
    # (title, [model field names]) in display order; fields not listed are not public.
    groups: list[tuple[str, list[str]]] = field(default_factory=list)
    # Where the reference's menu splits one object over several settings pages ("HTTP ›
    # General" and "HTTP › Security"): (page title, [group titles]), each group on one page.
    pages: list[tuple[str, list[str]]] = field(default_factory=list)
    # What each of those pages is for, shown at its top instead of `description` (which
    # describes the whole object): page title -> text. Every page has one (registry.checks).
    page_descriptions: dict[str, str] = field(default_factory=dict)
    # Model field name -> the label people read (admin, CLI), where the field's verbose name,
    # its acronyms capitalised (`label()`), does not say it well ("use_permissive_cors").
    labels: dict[str, str] = field(default_factory=dict)
    # Model field name -> public property name, where the convention does not fit.
    property_names: dict[str, str] = field(default_factory=dict)
    server_set: tuple[str, ...] = ()
    # Fields set when the object is created and never changed after (a listener's name, a
    # blocked address): an update that changes one is refused.
    create_only: tuple[str, ...] = ()
    secret: tuple[str, ...] = ()
    # Extra validation over the whole object after the fields pass: fn(instance, m2m values).
    validate: Callable | None = None
    # Called after every committed change, to drop what depends on this object.
    on_change: Callable | None = None
    # Called inside the transaction after a create or update has been written:
    # fn(actor, obj, changed field names). Raising a SetError undoes the change. It is where
    # "you may not grant more than you hold" lives.
    authorize: Callable | None = None
    # Called before an update or a destroy touches the object, with the stored object as it is:
    # fn(actor, obj, action, changed field names). Rules about who may change *this* object
    # (rather than what it may become) live here: an administrator may not take over an account
    # more privileged than itself.
    guard: Callable | None = None
    # How an object maps to a tenant, for the confinement of actors whose account has one
    # (registry.services.scope): SYSTEM (a system-wide object, out of a tenant's reach), TENANT_SELF
    # (the object is a tenant: its own is readable), or the lookup path of the tenant's id
    # ("tenant" for the object's own field, "account__tenant" for the owning account's).
    tenant_scope: str = "system"
    # Public properties over several fields (registry.composites), replacing those fields in JSON.
    composites: list = field(default_factory=list)
    # The model field whose value is the object's JMAP id (credentials number within an account).
    id_field: str = "pk"
    # Whether the generic admin page is built for it (views over other objects have none).
    admin: bool = True
    # The property that names an object for people (lists, references); default name/description.
    label_property: str = ""
    # Enum encodings, declared here once: a choices field's enum name in the schema, and the
    # JSON value of each stored value where they differ ({"user": "User"}).
    enum_names: dict[str, str] = field(default_factory=dict)
    json_values: dict[str, dict] = field(default_factory=dict)
    # Operation -> permission name, only where an object is guarded by another's permissions.
    # Derived names (sys<Name><Op>) join the permission catalogue by themselves; a name given
    # here must already be in it (registry.checks).
    permissions: dict[str, str] = field(default_factory=dict)
    # A multi-variant object (the reference's `@type` discriminator): the choices field whose
    # stored value picks the variant, and for each stored value the fields only that variant
    # has. Every other public field is common to all variants. A row keeps the fields of the
    # variants it is not at their defaults (registry.services resets them on a switch).
    variant_field: str = ""
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Stored value -> the schema's label of the variant, where the field's choice label is not it.
    variant_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.props: list[Prop] = []
        by_name = model_fields(self.model)
        for _title, names in self.groups:
            for attname in names:
                f = by_name.get(attname)
                if f is None:
                    continue  # reported by the system check (registry.checks), not as a KeyError at import
                self.props.append(Prop(
                    self.property_name(f), f, server_set=attname in self.server_set, secret=attname in self.secret,
                    enum_name=self.enum_names.get(attname), json_values=self.json_values.get(attname) or {},
                ))
        self._by_prop = {p.name: p for p in self.props}
        self._by_attname = {p.attname: p for p in self.props}
        for comp in self.composites:
            comp.bind(self.model)
        owner = {f: c for c in self.composites for f in c.fields}
        # The properties of the JSON faces (JMAP, manage.py, schema), in display order: a
        # composite stands where its first field would.
        self.json_props = []
        for p in self.props:
            comp = owner.get(p.attname)
            if comp is None:
                self.json_props.append(p)
            elif comp not in self.json_props:
                self.json_props.append(comp)
        self._json_by_name = {p.name: p for p in self.json_props}
        self._json_by_field = {f: p for p in self.json_props for f in p.fields}
        self._variant_fields = {name for names in self.variants.values() for name in names}

    # --- variants ---------------------------------------------------------------------
    @property
    def multi(self) -> bool:
        return bool(self.variant_field)

    def variant_of(self, obj) -> str | None:
        return getattr(obj, self.variant_field) if self.multi else None

    def in_variant(self, attname: str, variant) -> bool:
        """Whether a field belongs to objects of `variant` (common fields belong to all)."""
        return not self.multi or attname not in self._variant_fields or attname in self.variants.get(variant, ())

    def is_variant_field(self, attname: str) -> bool:
        return attname in self._variant_fields

    def json_props_for(self, variant) -> list:
        """The JSON properties an object of `variant` has (all of them for a single-variant object)."""
        if not self.multi:
            return self.json_props
        return [p for p in self.json_props if all(self.in_variant(f, variant) for f in p.fields)]

    def groups_for(self, variant) -> list[tuple[str, list[str]]]:
        """The groups with only the fields of `variant`; groups left empty are dropped."""
        out = []
        for title, names in self.groups:
            kept = [n for n in names if self.in_variant(n, variant)]
            if kept:
                out.append((title, kept))
        return out

    def variant_json(self, variant) -> str:
        prop = self.prop_for_field(self.variant_field)
        return str(prop.value_map.get(variant, variant)) if prop else str(variant)

    def variant_label(self, variant) -> str:
        if variant in self.variant_labels:
            return self.variant_labels[variant]
        f = model_fields(self.model).get(self.variant_field)
        return str(dict(f.choices or ()).get(variant, variant)) if f is not None else str(variant)

    def variant_schema_name(self, variant) -> str:
        """The schema's name of a variant's field list: x:LdapDirectory for Directory's Ldap."""
        return f"x:{self.variant_json(variant)}{self.name}"

    def json_name(self, attname: str) -> str:
        """The JSON property a field is part of: its own, or the composite holding it."""
        owner = self._json_by_field.get(attname)
        return owner.name if owner is not None else self.public_name(attname)

    def property_name(self, f: models.Field) -> str:
        if f.name in self.property_names:
            return self.property_names[f.name]
        if isinstance(f, models.ManyToManyField):
            stem = f.name[:-1] if f.name.endswith("s") else f.name
            return camel(stem) + "Ids"
        if isinstance(f, models.ForeignKey):
            return camel(f.name) + "Id"
        return camel(f.name)

    # --- lookups ----------------------------------------------------------------------
    @property
    def jmap_name(self) -> str:
        return f"x:{self.name}"

    @property
    def section_parts(self) -> list[str]:
        return [part.strip() for part in self.section.split("›") if part.strip()]

    def page_groups(self, page: str) -> list[tuple[str, list[str]]]:
        """The groups shown on one of the declaration's settings pages, in their declared order."""
        titles = next((set(titles) for title, titles in self.pages if title == page), set())
        return [(title, names) for title, names in self.groups if title in titles]

    def perm(self, op: str) -> str:
        return self.permissions.get(op) or f"sys{self.name}{op}"

    @property
    def derived_permissions(self) -> list[str]:
        """The permission names this declaration brings into the catalogue."""
        return [f"sys{self.name}{op}" for op in self.operations if op not in self.permissions]

    @property
    def operations(self) -> tuple[str, ...]:
        return ("Get", "Update") if self.singleton else ("Get", "Create", "Update", "Destroy", "Query")

    def prop(self, name: str) -> Prop | None:
        return self._by_prop.get(name)

    def prop_for_field(self, attname: str) -> Prop | None:
        return self._by_attname.get(attname)

    def label_of(self, attname: str) -> str:
        """The label of a field on the admin's pages and in manage.py describe."""
        if attname in self.labels:
            return self.labels[attname]
        f = model_fields(self.model).get(attname)
        return label(f.verbose_name if f is not None else attname)

    def page_description(self, page: str | None) -> str:
        """The text at the top of a settings page: the page's own, else the object's."""
        return self.page_descriptions.get(page, self.description) if page else self.description

    def public_name(self, attname: str) -> str:
        owner = self._json_by_field.get(attname) if hasattr(self, "_json_by_field") else None
        path = getattr(owner, "paths", {}).get(attname) if owner is not None else None
        if path:
            # A composite that names its parts (store/host): errors point inside it.
            return path
        p = self._by_attname.get(attname)
        return p.name if p else camel(attname)

    @property
    def editable_props(self) -> list[Prop]:
        return [p for p in self.props if not p.server_set]

    def object_id(self, obj) -> str:
        return ids.SINGLETON if self.singleton else ids.encode(getattr(obj, self.id_field))

    def json_prop(self, name: str):
        return self._json_by_name.get(name)

    def to_json(self, obj, only=None) -> dict:
        """The object's JSON; with `only` (property names), those properties and the id alone."""
        out = {"id": self.object_id(obj)}
        for p in self.json_props_for(self.variant_of(obj)):
            if only is not None and p.name not in only:
                continue
            if isinstance(p, Prop):
                out[p.name] = p.encode_obj(obj)
            else:
                out[p.name] = p.encode({f: read_value(obj, self._by_attname[f]) for f in p.fields})
        return out


def model_fields(model) -> dict[str, models.Field]:
    """The fields a declaration may name: concrete ones and many-to-many relations."""
    return {f.name: f for f in model._meta.get_fields() if getattr(f, "concrete", False) or f.many_to_many}


def read_value(obj, prop: Prop):
    if prop.is_m2m:
        if obj.pk is None:
            return []
        manager = getattr(obj, prop.attname)
        if manager.prefetch_cache_name in getattr(obj, "_prefetched_objects_cache", {}):
            # Fetched with the rest of a /get: no query per object and relation.
            return sorted(related.pk for related in manager.all())
        return sorted(manager.values_list("pk", flat=True))
    if prop.is_fk:
        return getattr(obj, prop.field.attname)
    return getattr(obj, prop.attname)


_REGISTRY: dict[str, ObjectType] = {}
# Bumped by every registration, so that what is derived from the registry (the permission
# catalogue) can be cached until a declaration is added.
_version = 0


def register(decl: ObjectType) -> ObjectType:
    global _version
    if decl.name in _REGISTRY:
        raise ValueError(f"object type {decl.name} declared twice")
    _REGISTRY[decl.name] = decl
    decl.model._declaration = decl
    _version += 1
    return decl


def unregister(decl: ObjectType) -> None:
    """Take a declaration back out (tests that declare an object of their own)."""
    global _version
    if _REGISTRY.get(decl.name) is decl:
        del _REGISTRY[decl.name]
        if getattr(decl.model, "_declaration", None) is decl:
            del decl.model._declaration
        _version += 1


def version() -> int:
    return _version


def autodiscover() -> None:
    """Import every installed app's `objects` module, where its declarations are registered
    (as Django's admin imports every `admin` module): no app lists its own."""
    autodiscover_modules("objects")


def declared_permissions() -> list[str]:
    """Every permission name the declarations bring, in declaration order."""
    return [name for decl in _REGISTRY.values() for name in decl.derived_permissions]


def declarations() -> dict[str, ObjectType]:
    return dict(_REGISTRY)


def get(name: str) -> ObjectType | None:
    return _REGISTRY.get(name)


def for_model(model) -> ObjectType | None:
    return getattr(model, "_declaration", None)
