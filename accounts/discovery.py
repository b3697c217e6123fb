"""The discovery inputs of SystemSettings: which services are advertised on which host
(`services`) and the mail exchangers (`mailExchangers`).

Both are JSON values kept in one column each, in a normalised form (every key present, hosts in
lower case, protocols in the reference's order), so that the JMAP, admin and CLI faces all see
the same thing. Every bad value, whatever its shape, is refused as `invalidProperties` naming the
property: one validation routine serves decoding (JMAP), model validation (every face) and the
admin form.
"""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from registry.declaration import camel
from registry.errors import InvalidProperties

from .validators import domain_name_validator

# ServiceProtocol, in the reference's order (also the order the documents list them in).
SERVICE_PROTOCOLS = ("jmap", "imap", "pop3", "smtp", "caldav", "carddav", "webdav", "managesieve")
MAX_MAIL_EXCHANGERS = 100
# Not a schema code of registry.errors: the refusal becomes invalidProperties naming the property.
CODE = "invalidValue"


def default_services() -> dict:
    return {p: {"hostname": None, "cleartext": False} for p in SERVICE_PROTOCOLS}


def default_mail_exchangers() -> list:
    return [{"hostname": None, "priority": 10}]


def _hostname(value, where: str):
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: the host name must be a string or null.", code=CODE)
    host = value.strip().lower()
    try:
        domain_name_validator(host)
    except ValidationError:
        raise ValidationError(f"{where}: {value[:100]!r} is not a valid host name.", code=CODE) from None
    return host


def _keys(value: dict, allowed: set, where: str) -> None:
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise ValidationError(f"{where}: unknown key(s) {', '.join(unknown[:5])}.", code=CODE)


def normalise_services(value) -> dict:
    """{protocol: {"hostname": host|None, "cleartext": bool}} in protocol order; raises ValidationError."""
    if not isinstance(value, dict):
        raise ValidationError("Expected an object mapping protocols to services.", code=CODE)
    unknown = sorted(str(k) for k in value if k not in SERVICE_PROTOCOLS)
    if unknown:
        raise ValidationError(
            f"Unknown protocol(s): {', '.join(unknown[:5])} (known: {', '.join(SERVICE_PROTOCOLS)}).", code=CODE)
    out = {}
    for protocol in SERVICE_PROTOCOLS:
        if protocol not in value:
            continue
        service = value[protocol]
        if not isinstance(service, dict):
            raise ValidationError(f"{protocol}: expected an object with hostname and cleartext.", code=CODE)
        _keys(service, {"hostname", "cleartext"}, protocol)
        cleartext = service.get("cleartext", False)
        if not isinstance(cleartext, bool):
            raise ValidationError(f"{protocol}: cleartext must be true or false.", code=CODE)
        out[protocol] = {"hostname": _hostname(service.get("hostname"), protocol), "cleartext": cleartext}
    return out


def normalise_mail_exchangers(value) -> list:
    """[{"hostname": host|None, "priority": 1..65535}]; raises ValidationError."""
    if not isinstance(value, list):
        raise ValidationError("Expected a list of mail exchangers.", code=CODE)
    if len(value) > MAX_MAIL_EXCHANGERS:
        raise ValidationError(f"At most {MAX_MAIL_EXCHANGERS} mail exchangers.", code=CODE)
    out = []
    for index, mx in enumerate(value):
        where = f"mail exchanger {index + 1}"
        if not isinstance(mx, dict):
            raise ValidationError(f"{where}: expected an object with hostname and priority.", code=CODE)
        _keys(mx, {"hostname", "priority"}, where)
        priority = mx.get("priority", 10)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 65535:
            raise ValidationError(f"{where}: the priority must be an integer from 1 to 65535.", code=CODE)
        out.append({"hostname": _hostname(mx.get("hostname"), where), "priority": priority})
    return out


class _NormalisedJSONField(models.JSONField):
    """A JSON value with one normalising validator (`normalise`), used by every face."""

    normalise = staticmethod(lambda value: value)
    form_help = ""

    def __init__(self, *args, schema_type="Object", **kwargs):
        self.schema_type = schema_type
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("schema_type", None)
        return name, path, args, kwargs

    def jmap_encode(self, value):
        try:
            return self.normalise(value)
        except ValidationError:
            return value

    def jmap_decode(self, value):
        # Refused here, before anything is applied, as invalidProperties naming the property
        # (whatever the shape: a wrong type inside the object is as much a bad value as a bad host).
        try:
            return self.normalise(value)
        except ValidationError as exc:
            raise InvalidProperties(" ".join(exc.messages), properties=[camel(self.name)]) from None

    def to_python(self, value):
        # Model.full_clean() keeps what clean() returns: the normalised value is what gets saved.
        try:
            return self.normalise(value)
        except ValidationError:
            return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        self.normalise(value)

    def formfield(self, **kwargs):
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 12, "cols": 80, "spellcheck": "false"}))
        field = super().formfield(**kwargs)
        field.help_text = f"{self.help_text} {self.form_help}".strip()
        return field


class ServicesField(_NormalisedJSONField):
    normalise = staticmethod(normalise_services)
    form_help = (
        'JSON, e.g. {"imap": {"hostname": null, "cleartext": false}, "smtp": {"hostname": "smtp.example.org", '
        '"cleartext": true}}. Protocols: ' + ", ".join(SERVICE_PROTOCOLS) + ". A null host name means the "
        "default host name; cleartext also advertises the plain or STARTTLS port."
    )


class MailExchangersField(_NormalisedJSONField):
    normalise = staticmethod(normalise_mail_exchangers)
    form_help = ('JSON, e.g. [{"hostname": null, "priority": 10}, {"hostname": "mx2.example.org", "priority": 20}]. '
                 "A null host name means the default host name; priorities go from 1 to 65535.")
