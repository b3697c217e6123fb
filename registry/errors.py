"""Refusals of a change, in the shape of JMAP SetErrors (RFC 8620 §5.3 and the reference's
extensions), so that every face (JMAP, admin, manage.py) reports the same thing."""
from __future__ import annotations

from django.core.exceptions import ValidationError


class SetError(Exception):
    type = "invalidProperties"

    def __init__(self, description: str = "", *, properties=None, validation_errors=None, **extra):
        super().__init__(description)
        self.description = description
        self.properties = list(properties or [])
        self.validation_errors = list(validation_errors or [])
        self.extra = extra

    def to_json(self) -> dict:
        out = {"type": self.type}
        if self.description:
            out["description"] = self.description
        if self.properties:
            out["properties"] = self.properties
        if self.validation_errors:
            out["validationErrors"] = [
                {k: v for k, v in item.items() if k != "message"} for item in self.validation_errors
            ]
        out.update({k: v for k, v in self.extra.items() if v})
        return out

    def messages_by_property(self) -> dict[str, list[str]]:
        """For forms: property -> human messages."""
        out: dict[str, list[str]] = {}
        for item in self.validation_errors:
            out.setdefault(item["property"], []).append(item.get("message") or item["type"])
        for prop in self.properties:
            out.setdefault(prop, []).append(self.description)
        return out


class InvalidProperties(SetError):
    type = "invalidProperties"


class ValidationFailed(SetError):
    type = "validationFailed"


class InvalidPatch(SetError):
    type = "invalidPatch"


class Forbidden(SetError):
    type = "forbidden"


class NotFound(SetError):
    type = "notFound"


class OverQuota(SetError):
    type = "overQuota"


class SingletonError(SetError):
    type = "singleton"


class PrimaryKeyViolation(SetError):
    type = "primaryKeyViolation"


class InvalidForeignKey(SetError):
    type = "invalidForeignKey"


class ObjectIsLinked(SetError):
    type = "objectIsLinked"


# Django validator codes that are schema checks in the reference (validationErrors entries).
_SCHEMA_CODES = {
    "min_value": "MinValue",
    "max_value": "MaxValue",
    "min_length": "MinLength",
    "max_length": "MaxLength",
    "required": "Required",
    "blank": "Required",
    "null": "Required",
    "invalid_choice": "Invalid",
    "invalid": "Invalid",
}


def from_validation_error(exc: ValidationError, prop_name, obj=None) -> SetError:
    """Turn a Django ValidationError into the matching SetError.

    prop_name maps a model field name to its public property name.
    """
    schema, semantic_props, messages = [], [], []
    error_dict = getattr(exc, "error_dict", None) or {"__all__": exc.error_list}
    for field, errors in error_dict.items():
        prop = prop_name(field) if field != "__all__" else None
        for err in errors:
            message = " ".join(err.messages)
            messages.append(message)
            kind = _SCHEMA_CODES.get(err.code or "")
            if prop and kind:
                item = {"type": kind, "property": prop}
                params = err.params or {}
                if kind in ("MinValue", "MaxValue", "MinLength", "MaxLength") and "limit_value" in params:
                    item["required"] = params["limit_value"]
                if kind == "Invalid" and "value" in params:
                    item["value"] = str(params["value"])
                item["message"] = message
                schema.append(item)
            else:
                props = (err.params or {}).get("properties") or ([prop] if prop else [])
                semantic_props.extend(p for p in props if p not in semantic_props)
    if schema:
        # Schema errors first: cross-field checks over values that are out of range only add noise.
        return ValidationFailed("; ".join(i["message"] for i in schema), validation_errors=schema)
    return InvalidProperties("; ".join(messages), properties=semantic_props)
