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

    def bind(self, model) -> None:
        """Called once with the declaration's model: a composite reads what it needs of the
        model's fields (their defaults) from there rather than repeating it."""

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


# --- secrets: the reference's SecretKeyOptional ----------------------------------------------
MASK = "****"
SECRET_TYPES = {"none": "None", "value": "Value", "env": "EnvironmentVariable", "file": "File"}
_SECRET_KINDS = {v: k for k, v in SECRET_TYPES.items()}
_SECRET_KEYS = {"None": (), "Value": ("secret",), "EnvironmentVariable": ("variableName",), "File": ("filePath",)}


def encode_secret(kind: str, stored: str, variable: str, path: str, kinds: dict | None = None) -> dict:
    """{"@type": "None"} | {"@type": "Value", "secret": "****"} | {"@type": "EnvironmentVariable",
    "variableName": …} | {"@type": "File", "filePath": …}. A stored value never leaves: it reads
    "****" (or "" when none is stored)."""
    variant = (kinds or SECRET_TYPES).get(kind, "None")
    out = {"@type": variant}
    if variant == "Value":
        out["secret"] = MASK if stored else ""
    elif variant == "EnvironmentVariable":
        out["variableName"] = variable or ""
    elif variant == "File":
        out["filePath"] = path or ""
    return out


def decode_secret(value, path: str, kinds: dict | None = None) -> dict:
    """A SecretKeyOptional as {"kind", "value", "variable", "file"}; "value" is left out when
    the value is "****", which stands for the stored one. Raises InvalidPatch naming the path."""
    def bad(where=""):
        return InvalidPatch("Invalid value for object property", properties=[f"{path}/{where}" if where else path])

    if not isinstance(value, dict):
        raise bad()
    variant = value.get("@type")
    if not isinstance(variant, str) or variant not in _SECRET_KEYS:
        raise bad("@type")
    keys = _SECRET_KEYS[variant]
    extra = sorted(set(value) - {"@type", *keys})
    if extra:
        raise bad(extra[0])
    for key in keys:
        if not isinstance(value.get(key), str):
            raise bad(key)
    back = {v: k for k, v in kinds.items()} if kinds else _SECRET_KINDS
    out = {"kind": back[variant], "value": "", "variable": "", "file": ""}
    if variant == "Value":
        if value["secret"] == MASK:
            del out["value"]
        else:
            out["value"] = value["secret"]
    elif variant == "EnvironmentVariable":
        out["variable"] = value["variableName"]
    elif variant == "File":
        out["file"] = value["filePath"]
    return out


def secret_schema_types() -> dict:
    """SecretKeyOptional and its variants, for /api/schema. `kinds` (stored value -> "@type")
    is for models whose kind column stores other values than none | value | env | file."""
    string = {"type": "string", "format": "string"}
    return {
        "SecretKeyOptional": {
            "schema": {"type": "multiple", "variants": [
                {"name": "None", "label": "No secret"},
                {"name": "Value", "label": "Secret value", "schemaName": "SecretKeyValue"},
                {"name": "EnvironmentVariable", "label": "Secret read from environment variable",
                 "schemaName": "SecretKeyEnvironmentVariable"},
                {"name": "File", "label": "Secret read from file", "schemaName": "SecretKeyFile"}]},
            "fields": {
                "SecretKeyValue": {"properties": {"secret": {
                    "description": "Password or secret value", "type": {"type": "string", "format": "secret"},
                    "update": "mutable"}}, "defaults": {}},
                "SecretKeyEnvironmentVariable": {"properties": {"variableName": {
                    "description": "Environment variable name to read the secret from", "type": string,
                    "update": "mutable"}}, "defaults": {}},
                "SecretKeyFile": {"properties": {"filePath": {
                    "description": "File path to read the secret from", "type": string, "update": "mutable"}},
                    "defaults": {}},
            },
        },
    }


class SecretKeyOptional(Composite):
    """A secret over four fields: its kind (none | value | env | file), the value (encrypted or
    hashed by the model), the environment variable's name and the file's path."""

    type_name = "SecretKeyOptional"
    default = {"@type": "None"}

    def __init__(self, name: str, kind_field: str, value_field: str, variable_field: str, file_field: str,
                 description: str = ""):
        self.name, self.description = name, description
        self.kind_field, self.value_field, self.variable_field, self.file_field = (
            kind_field, value_field, variable_field, file_field)
        self.fields = (kind_field, value_field, variable_field, file_field)
        self.paths = {kind_field: f"{name}/@type", value_field: f"{name}/secret",
                      variable_field: f"{name}/variableName", file_field: f"{name}/filePath"}

    def encode(self, values):
        return encode_secret(values[self.kind_field], values[self.value_field], values[self.variable_field],
                             values[self.file_field])

    def decode(self, value):
        secret = decode_secret(value, self.name)
        out = {self.kind_field: secret["kind"], self.variable_field: secret["variable"],
               self.file_field: secret["file"]}
        if "value" in secret:
            out[self.value_field] = secret["value"]
        return out

    @staticmethod
    def schema_types():
        return secret_schema_types()


class SqlAuthStore(Composite):
    """The reference's SqlAuthStore over the `<prefix>*` columns: {"@type": "Default"} (this
    server's database), or PostgreSql / MySql with their connection fields, or Sqlite with a path.
    The whole value replaces the stored one: a field it leaves out takes its default."""

    type_name = "SqlAuthStore"
    default = {"@type": "Default"}
    VARIANTS = {"default": "Default", "postgresql": "PostgreSql", "mysql": "MySql", "sqlite": "Sqlite"}
    DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
    # JSON key -> (column suffix, default, type check)
    SERVER_KEYS = ("host", "port", "database", "authUsername", "authSecret", "timeout", "useTls",
                   "allowInvalidCerts", "poolMaxConnections")
    KEYS = {"Default": (), "PostgreSql": SERVER_KEYS + ("options",), "MySql": SERVER_KEYS,
            "Sqlite": ("path", "poolMaxConnections")}
    COLUMNS = {"host": "host", "port": "port", "database": "database", "authUsername": "auth_username",
               "timeout": "timeout", "useTls": "use_tls", "allowInvalidCerts": "allow_invalid_certs",
               "poolMaxConnections": "pool_max_connections", "options": "options", "path": "path"}
    # The JSON defaults are the model's column defaults (bind()), timeout in milliseconds.
    DEFAULTS: dict = {}

    def __init__(self, name: str, prefix: str, description: str = ""):
        self.name, self.prefix, self.description = name, prefix, description
        self.kind_field = prefix + "store"
        self.secret = SecretKeyOptional(f"{name}/authSecret", prefix + "auth_secret_kind", prefix + "auth_secret",
                                        prefix + "auth_secret_variable", prefix + "auth_secret_file")
        self.fields = (self.kind_field, *(prefix + c for c in self.COLUMNS.values()), *self.secret.fields)
        self.paths = {self.kind_field: f"{name}/@type", **{prefix + c: f"{name}/{k}" for k, c in self.COLUMNS.items()},
                      **self.secret.paths}

    def bind(self, model) -> None:
        defaults = {}
        for key, column in self.COLUMNS.items():
            value = model._meta.get_field(self.prefix + column).get_default()
            if key == "timeout" and value is not None:
                value = int(value.total_seconds() * 1000)
            defaults[key] = value
        self.DEFAULTS = defaults

    def fields_of(self) -> dict[str, list[str]]:
        """The columns each kind of store uses (the admin page shows only those)."""
        return {kind: [f for key in self.KEYS[variant]
                       for f in (self.secret.fields if key == "authSecret" else (self.prefix + self.COLUMNS[key],))]
                for kind, variant in self.VARIANTS.items()}

    def encode(self, values):
        kind = values[self.kind_field]
        variant = self.VARIANTS.get(kind, "Default")
        out = {"@type": variant}
        for key in self.KEYS[variant]:
            if key == "authSecret":
                out[key] = self.secret.encode(values)
                continue
            value = values[self.prefix + self.COLUMNS[key]]
            if key == "timeout":
                value = int(value.total_seconds() * 1000) if value is not None else None
            elif key == "port" and value is None:
                value = self.DEFAULT_PORTS.get(kind)
            out[key] = value
        return out

    def decode(self, value):

        if not isinstance(value, dict):
            raise self.bad()
        variant = value.get("@type")
        if not isinstance(variant, str) or variant not in self.KEYS:
            raise self.bad(f"{self.name}/@type")
        keys = self.KEYS[variant]
        extra = sorted(set(value) - {"@type", *keys})
        if extra:
            raise self.bad(f"{self.name}/{extra[0]}")
        out = {self.kind_field: {v: k for k, v in self.VARIANTS.items()}[variant]}
        for key, column in self.COLUMNS.items():
            given = value.get(key, self.DEFAULTS[key]) if key in keys else self.DEFAULTS[key]
            path = f"{self.name}/{key}"
            if key in ("port", "poolMaxConnections", "timeout"):
                nullable = key in ("port", "timeout")
                if given is None and nullable:
                    pass
                elif not isinstance(given, int) or isinstance(given, bool) or not 0 <= given <= RateChoice.MAX_PERIOD_MS:
                    raise self.bad(path)
                if key == "timeout" and given is not None:
                    given = dt.timedelta(milliseconds=given)
            elif key in ("useTls", "allowInvalidCerts"):
                if not isinstance(given, bool):
                    raise self.bad(path)
            elif key in ("authUsername", "options"):
                if given is not None and not isinstance(given, str):
                    raise self.bad(path)
            elif not isinstance(given, str):
                raise self.bad(path)
            out[self.prefix + column] = given
        if "authSecret" in keys and value.get("authSecret") is not None:
            out.update(self.secret.decode(value["authSecret"]))
        else:
            out.update(self.secret.decode({"@type": "None"}))
        return out

    def schema_types(self):
        def f(description, type_, nullable=False):
            t = dict(type_)
            if nullable:
                t["nullable"] = True
            return {"description": description, "type": t, "update": "mutable"}

        string, number = {"type": "string", "format": "string"}, {"type": "number", "format": "unsignedInteger"}
        duration, boolean = {"type": "number", "format": "duration"}, {"type": "boolean"}
        secret = {"type": "object", "objectName": "SecretKeyOptional"}
        common = {
            "timeout": f("Connection timeout to the database", duration, True),
            "useTls": f("Use TLS to connect to the store", boolean),
            "allowInvalidCerts": f("Allow invalid TLS certificates when connecting to the store", boolean),
            "poolMaxConnections": f("Maximum number of connections to the store", {**number, "min": 1, "max": 8192}),
            "host": f("Hostname of the database server", {"type": "string", "format": "hostName"}),
            "port": f("Port of the database server", {**number, "min": 1, "max": 65535}),
            "database": f("Name of the database", string),
            "authUsername": f("Username to connect to the store", string, True),
            "authSecret": f("Password to connect to the store", secret),
        }
        defaults = {**{k: self.DEFAULTS[k] for k in ("timeout", "useTls", "allowInvalidCerts", "poolMaxConnections",
                                                     "database", "authUsername")},
                    "authSecret": {"@type": "None"}}
        return {
            **secret_schema_types(),
            "SqlAuthStore": {
                "schema": {"type": "multiple", "variants": [
                    {"name": "Default", "label": "Use data store (SQL only)"},
                    {"name": "PostgreSql", "label": "PostgreSQL", "schemaName": "PostgreSqlStore"},
                    {"name": "MySql", "label": "MySQL", "schemaName": "MySqlStore"},
                    {"name": "Sqlite", "label": "SQLite", "schemaName": "SqliteStore"}]},
                "fields": {
                    "PostgreSqlStore": {"properties": {**common, "options": f("Additional connection options",
                                                                              string, True)},
                                        "defaults": {**defaults, "port": 5432}},
                    "MySqlStore": {"properties": common, "defaults": {**defaults, "port": 3306}},
                    "SqliteStore": {"properties": {
                        "path": f("Path to the SQLite database", string),
                        "poolMaxConnections": common["poolMaxConnections"]},
                        "defaults": {"poolMaxConnections": self.DEFAULTS["poolMaxConnections"]}},
                },
            },
        }
