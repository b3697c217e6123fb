"""A system check over every declaration: a mistake in one fails `manage.py check`, every
command that runs the checks (migrate, runserver) and the test run, at start, with the
declaration and the name at fault, instead of an object that some face silently refuses.

The permission names a declaration gives explicitly (`permissions=`) must exist: in the names
the declarations derive, or in a catalogue an app offers through its AppConfig's
`permission_catalogue()` (accounts: the reference's names).
"""
from __future__ import annotations

import re

from django.apps import apps
from django.core import checks

from . import declaration as decl_mod

OPERATIONS = ("Get", "Create", "Update", "Destroy", "Query")
NAME = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")


def _error(decl, msg: str, code: int, hint: str | None = None) -> checks.Error:
    return checks.Error(f"Declaration x:{decl.name} ({decl.model.__name__}): {msg}", hint=hint,
                        obj=decl.model, id=f"registry.E{code:03d}")


def known_permissions(decls) -> set[str]:
    names = {name for decl in decls for name in decl.derived_permissions}
    for config in apps.get_app_configs():
        offered = getattr(config, "permission_catalogue", None)
        if callable(offered):
            names |= set(offered())
    return names


def check_declaration(decl, known_permissions: set[str]) -> list[checks.Error]:
    errors = []
    fields = decl_mod.model_fields(decl.model)
    if not NAME.match(decl.name or ""):
        errors.append(_error(decl, f"the name {decl.name!r} is not CamelCase; it makes the JMAP name and the "
                                   "permission names (sys<Name>Get, …).", 1))
    grouped: list[str] = []
    for title, names in decl.groups:
        for name in names:
            if name not in fields:
                errors.append(_error(decl, f"the group {title!r} names {name!r}, which is not a field of the model.",
                                     2, hint=f"Fields: {', '.join(sorted(fields))}."))
            elif name in grouped:
                errors.append(_error(decl, f"the field {name!r} is in more than one group.", 3))
            grouped.append(name)
    grouped_set = set(grouped)
    if decl.pages:
        titles = [title for title, _names in decl.groups]
        paged = [group for _page, groups in decl.pages for group in groups]
        for group in paged:
            if group not in titles:
                errors.append(_error(decl, f"a page names the group {group!r}, which the declaration does not have.", 18))
        for group in titles:
            if paged.count(group) != 1:
                errors.append(_error(decl, f"the group {group!r} is on {paged.count(group)} pages; with pages, each "
                                           "group is on exactly one.", 18))
    page_titles = [title for title, _groups in decl.pages]
    for title in page_titles:
        if not decl.page_descriptions.get(title):
            errors.append(_error(decl, f"the page {title!r} has no description; the object's describes every "
                                       "page at once.", 31, hint="Add it to page_descriptions."))
    for title in decl.page_descriptions:
        if title not in page_titles:
            errors.append(_error(decl, f"page_descriptions names the page {title!r}, which it does not have.", 31))
    for name in decl.labels:
        if name not in fields:
            errors.append(_error(decl, f"labels names {name!r}, which is not a field of the model.", 30))
    named = [("secret", decl.secret), ("server_set", decl.server_set), ("create_only", decl.create_only),
             ("property_names", decl.property_names), ("enum_names", decl.enum_names),
             ("json_values", decl.json_values)]
    named += [(f"the composite {getattr(c, 'name', c)!r}", c.fields) for c in decl.composites]
    for what, names in named:
        for name in names:
            if name not in fields:
                errors.append(_error(decl, f"{what} names {name!r}, which is not a field of the model.", 4))
            elif name not in grouped_set:
                errors.append(_error(decl, f"{what} names {name!r}, which is in no group: a field is public only "
                                           "through the groups.", 5, hint=f"Add {name!r} to one of the groups."))
    for name in set(decl.enum_names) | set(decl.json_values):
        f = fields.get(name)
        if f is not None and not f.choices:
            errors.append(_error(decl, f"an enum encoding is declared for {name!r}, which has no choices.", 6))
    for name, mapping in decl.json_values.items():
        f = fields.get(name)
        if f is not None and f.choices:
            stored = {value for value, _label in f.choices}
            if set(mapping) != stored:
                errors.append(_error(decl, f"json_values of {name!r} must map every stored value exactly once "
                                           f"({', '.join(sorted(map(str, stored)))}).", 7))
            elif len(set(mapping.values())) != len(mapping):
                errors.append(_error(decl, f"json_values of {name!r} gives two stored values one JSON value.", 7))
    seen: dict[str, str] = {}
    for prop in decl.json_props:
        if prop.name in seen or prop.name == "id":
            errors.append(_error(decl, f"two public properties are called {prop.name!r}.", 8))
        seen[prop.name] = prop.name
    if decl.label_property and decl.label_property not in seen:
        errors.append(_error(decl, f"label_property {decl.label_property!r} is not a public property.", 9))
    if decl.id_field != "pk" and decl.id_field not in fields:
        errors.append(_error(decl, f"id_field {decl.id_field!r} is not a field of the model.", 10))
    for op in decl.operations:
        if op not in OPERATIONS:
            errors.append(_error(decl, f"the operation {op!r} is not one of {', '.join(OPERATIONS)}.", 11))
    if decl.singleton and set(decl.operations) - {"Get", "Update"}:
        errors.append(_error(decl, "a singleton has only the Get and Update operations.", 11))
    for op, name in decl.permissions.items():
        if op not in decl.operations:
            errors.append(_error(decl, f"a permission is named for {op!r}, which is not one of its operations.", 12))
        elif name not in known_permissions:
            errors.append(_error(decl, f"the permission {name!r} (for {op}) does not exist.", 13,
                                 hint="Name one of the catalogue (accounts/data/permissions.txt or a declaration's "
                                      "sys<Name><Op>), or leave the operation out to derive its name."))
    errors += _check_variants(decl, fields, grouped_set)
    return errors


def _check_variants(decl, fields, grouped) -> list[checks.Error]:
    """A multi-variant declaration: its variant field is a grouped choices field, each variant is
    one of its stored values and names grouped fields of the model, and a composite's fields
    all belong to the same variants (a property is in a variant or it is not)."""
    errors = []
    if not decl.variant_field:
        if decl.variants:
            errors.append(_error(decl, "variants are declared without a variant_field.", 15))
        return errors
    f = fields.get(decl.variant_field)
    if f is None or not f.choices or decl.variant_field not in grouped:
        errors.append(_error(decl, f"the variant field {decl.variant_field!r} is not a grouped field with choices.", 15))
        return errors
    stored = {value for value, _label in f.choices}
    if set(decl.variants) != stored:
        errors.append(_error(decl, f"variants must name every value of {decl.variant_field!r} exactly once "
                                   f"({', '.join(sorted(map(str, stored)))}).", 15))
    for variant, names in decl.variants.items():
        for name in names:
            if name not in fields:
                errors.append(_error(decl, f"the variant {variant!r} names {name!r}, which is not a field of the model.",
                                     16, hint=f"Fields: {', '.join(sorted(fields))}."))
            elif name not in grouped:
                errors.append(_error(decl, f"the variant {variant!r} names {name!r}, which is in no group.", 16))
            elif name == decl.variant_field:
                errors.append(_error(decl, f"the variant field {name!r} is common to every variant.", 16))
    for comp in decl.composites:
        homes = {frozenset(v for v in decl.variants if decl.in_variant(name, v)) for name in comp.fields}
        if len(homes) > 1:
            errors.append(_error(decl, f"the composite {comp.name!r} has fields of different variants.", 17))
    return errors


def check_declarations(decls) -> list[checks.Error]:
    decls = list(decls)
    known = known_permissions(decls)
    errors = []
    by_model: dict = {}
    for decl in decls:
        errors += check_declaration(decl, known)
        if decl.model in by_model:
            errors.append(_error(decl, f"the model is already declared as x:{by_model[decl.model].name}.", 14))
        by_model.setdefault(decl.model, decl)
    return errors


@checks.register()
def declarations_check(app_configs=None, **kwargs):
    return check_declarations(decl_mod.declarations().values())
