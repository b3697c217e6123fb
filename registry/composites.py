"""Public properties made of several model fields, in the reference's nested encodings.

A composite reads and writes a group of fields as one JSON value, e.g. Account.roles is
{"@type": "Custom", "roleIds": {"b": true}} over the fields roles_mode and roles.
"""
from __future__ import annotations

import datetime as dt

from . import ids
from .errors import InvalidPatch


class Composite:
    name: str
    fields: tuple[str, ...]
    server_set = False
    secret = False
    type_name = "Object"

    def encode(self, values: dict):
        raise NotImplementedError

    def decode(self, value) -> dict:
        raise NotImplementedError

    def bad(self, path: str = ""):
        return InvalidPatch("Invalid value for object property", properties=[path or self.name])


def _id_set(value, bad):
    if not isinstance(value, dict) or not all(v is True for v in value.values()):
        raise bad
    out = []
    for key in value:
        pk = ids.decode(key)
        if pk is None:
            raise bad
        out.append(pk)
    return sorted(out)


def _name_set(value, bad):
    if not isinstance(value, dict) or not all(isinstance(k, str) and v is True for k, v in value.items()):
        raise bad
    return sorted(value)


class RolesChoice(Composite):
    """{"@type": <variant>, "roleIds": {...}} over a mode field and a many-to-many of roles."""

    type_name = "Roles"

    def __init__(self, name: str, mode_field: str, roles_field: str, variants: dict[str, str]):
        self.name, self.mode_field, self.roles_field = name, mode_field, roles_field
        self.fields = (mode_field, roles_field)
        self.variants = variants  # model value -> "@type"
        self._back = {v: k for k, v in variants.items()}

    def encode(self, values):
        variant = self.variants.get(values[self.mode_field], values[self.mode_field])
        out = {"@type": variant}
        if variant == "Custom":
            out["roleIds"] = {ids.encode(pk): True for pk in values[self.roles_field]}
        return out

    def decode(self, value):
        if not isinstance(value, dict) or not isinstance(value.get("@type"), str) or value["@type"] not in self._back:
            raise self.bad(f"{self.name}/@type" if isinstance(value, dict) else "")
        mode = self._back[value["@type"]]
        extra = set(value) - {"@type", "roleIds"}
        if extra:
            raise self.bad(f"{self.name}/{sorted(extra)[0]}")
        roles = _id_set(value.get("roleIds", {}), self.bad(f"{self.name}/roleIds")) if value["@type"] == "Custom" else []
        return {self.mode_field: mode, self.roles_field: roles}


class PermissionsChoice(Composite):
    """{"@type": "Inherit"|"Merge"|"Replace", "enabledPermissions": {...}, "disabledPermissions": {...}}."""

    type_name = "Permissions"
    VARIANTS = {"inherit": "Inherit", "merge": "Merge", "replace": "Replace"}

    def __init__(self, name: str, mode_field: str, enabled_field: str, disabled_field: str):
        self.name, self.mode_field, self.enabled_field, self.disabled_field = name, mode_field, enabled_field, disabled_field
        self.fields = (mode_field, enabled_field, disabled_field)
        self._back = {v: k for k, v in self.VARIANTS.items()}

    def encode(self, values):
        mode = values[self.mode_field]
        out = {"@type": self.VARIANTS.get(mode, mode)}
        if mode != "inherit":
            out["enabledPermissions"] = {p: True for p in values[self.enabled_field]}
            out["disabledPermissions"] = {p: True for p in values[self.disabled_field]}
        return out

    def decode(self, value):
        if not isinstance(value, dict) or not isinstance(value.get("@type"), str) or value["@type"] not in self._back:
            raise self.bad()
        extra = set(value) - {"@type", "enabledPermissions", "disabledPermissions"}
        if extra:
            raise self.bad(f"{self.name}/{sorted(extra)[0]}")
        mode = self._back[value["@type"]]
        if mode == "inherit":
            return {self.mode_field: mode, self.enabled_field: [], self.disabled_field: []}
        return {
            self.mode_field: mode,
            self.enabled_field: _name_set(value.get("enabledPermissions", {}), self.bad(f"{self.name}/enabledPermissions")),
            self.disabled_field: _name_set(value.get("disabledPermissions", {}), self.bad(f"{self.name}/disabledPermissions")),
        }


class QuotaMap(Composite):
    """{"maxAppPasswords": 10, …}: a map of optional numbers, each a nullable field."""

    type_name = "Map<StorageQuota, UnsignedInt>"
    key_enum = "StorageQuota"  # the schema lists the keys as this enum, labelled like their fields

    def __init__(self, name: str, keys: dict[str, str]):
        self.name = name
        self.keys = keys  # JSON key -> field
        self.fields = tuple(keys.values())

    def encode(self, values):
        return {key: values[field] for key, field in self.keys.items() if values[field] is not None}

    def decode(self, value):
        if not isinstance(value, dict):
            raise self.bad()
        out = {field: None for field in self.keys.values()}
        for key, number in value.items():
            if key not in self.keys:
                raise self.bad(f"{self.name}/{key}")
            if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
                raise self.bad(f"{self.name}/{key}")
            out[self.keys[key]] = number
        return out


class ScopeChoice(Composite):
    """A credential's permissions: {"@type": "Inherit"|"Disable"|"Replace", "permissions": {...}}."""

    type_name = "CredentialPermissions"
    VARIANTS = {"inherit": "Inherit", "disable": "Disable", "replace": "Replace"}

    def __init__(self, name: str, mode_field: str, list_field: str):
        self.name, self.mode_field, self.list_field = name, mode_field, list_field
        self.fields = (mode_field, list_field)
        self._back = {v: k for k, v in self.VARIANTS.items()}

    def encode(self, values):
        mode = values[self.mode_field]
        out = {"@type": self.VARIANTS.get(mode, mode)}
        if mode != "inherit":
            out["permissions"] = {p: True for p in values[self.list_field]}
        return out

    def decode(self, value):
        if not isinstance(value, dict) or not isinstance(value.get("@type"), str) or value["@type"] not in self._back:
            raise self.bad()
        if set(value) - {"@type", "permissions"}:
            raise self.bad()
        mode = self._back[value["@type"]]
        names = [] if mode == "inherit" else _name_set(value.get("permissions", {}), self.bad(f"{self.name}/permissions"))
        return {self.mode_field: mode, self.list_field: names}


class RateChoice(Composite):
    """The reference's Rate over a nullable count field and a period field: {"count": 5,
    "period": 3600000} (milliseconds), or null for no limit (the count is emptied, the period
    kept). Only the shape is checked here; bounds are the model's (field validators, clean())."""

    type_name = "Rate"
    # A DurationField holds microseconds in a signed 64-bit column.
    MAX_PERIOD_MS = (2**63 - 1) // 1000

    def __init__(self, name: str, count_field: str, period_field: str):
        self.name, self.count_field, self.period_field = name, count_field, period_field
        self.fields = (count_field, period_field)

    def encode(self, values):
        count, period = values[self.count_field], values[self.period_field]
        if count is None:
            return None
        return {"count": count, "period": int(period.total_seconds() * 1000) if period is not None else None}

    def decode(self, value):
        if value is None:
            return {self.count_field: None}
        if not isinstance(value, dict):
            raise self.bad()
        extra = sorted(set(value) - {"count", "period"})
        if extra:
            raise self.bad(f"{self.name}/{extra[0]}")
        out = {}
        for key, field in (("count", self.count_field), ("period", self.period_field)):
            number = value.get(key)
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= self.MAX_PERIOD_MS:
                raise self.bad(f"{self.name}/{key}")
            out[field] = dt.timedelta(milliseconds=number) if key == "period" else number
        return out
