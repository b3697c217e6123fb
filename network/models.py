"""The HTTP service's settings (Http) and its listeners (NetworkListener)."""
from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry.fields import NameSetField
from registry.models import SingletonModel

from .expr import ExprError, compile_rule

DEFAULT_RULE = {"else": "200"}


def default_rule():
    return dict(DEFAULT_RULE)
# RFC 9110 §5.6.2 token characters.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers the server itself must own: framing, connection management, and those that other
# settings produce (so a rule cannot contradict them silently).
RESERVED_HEADERS = {
    "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
    "proxy-connection", "host", "date", "server", "content-encoding",
    # Sent on every response, a cookie would be set for every client: a session-fixation tool.
    "set-cookie", "set-cookie2",
}
# Hop-by-hop headers of proxies (Proxy-Authenticate, Proxy-Authorization, …) mean nothing on a
# response from the origin server.
RESERVED_PREFIXES = ("proxy-",)


class RuleField(models.JSONField):
    """An Expression of the rule language (network/expr.py), refused at save if it does not parse."""

    schema_type = "Expression"

    def __init__(self, *args, variables=frozenset(), **kwargs):
        self.variables = variables
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("variables", None)
        return name, path, args, kwargs

    def jmap_decode(self, value):
        if not isinstance(value, dict):
            raise ValueError("expected an expression object")
        return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)

        try:
            compile_rule(value, self.variables)
        except ExprError as exc:
            # Not code "invalid": a model form would show its form field's "Enter a valid JSON." instead.
            raise ValidationError("%(error)s", code="invalid_rule", params={"error": str(exc)}) from None


class HeaderMapField(models.JSONField):
    """Response headers, {"Name": "value", …}, added to (and replacing) every response's."""

    schema_type = "Map<String, String>"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", dict)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def jmap_decode(self, value):
        if not isinstance(value, dict):
            raise ValueError("expected an object of header names and values")
        return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if not isinstance(value, dict):
            raise ValidationError("Expected an object of header names and values.", code="invalid_header")
        seen = set()
        for name, text in value.items():
            # fullmatch, unstripped: "$" would let a trailing newline through into the stored name.
            if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
                raise ValidationError("%(name)r is not a valid header name.", code="invalid_header", params={"name": name})
            if not isinstance(text, str) or any(c in text for c in "\r\n\0") or len(text) > 4096:
                raise ValidationError("The value of %(name)s must be one line of text (at most 4096 characters).",
                                      code="invalid_header", params={"name": name})
            if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
                raise ValidationError("The value of %(name)s contains control characters.", code="invalid_header",
                                      params={"name": name})
            low = name.strip().lower()
            if low in RESERVED_HEADERS or low.startswith(RESERVED_PREFIXES):
                raise ValidationError("%(name)s is set by the server and cannot be configured.", code="invalid_header",
                                      params={"name": name})
            if low in seen:
                raise ValidationError("%(name)s is given twice.", code="invalid_header", params={"name": name})
            seen.add(low)


class Http(SingletonModel):
    """How the HTTP service treats requests before they reach an endpoint."""

    allowed_endpoints = RuleField(
        default=default_rule,
        variables=frozenset({"listener", "remote_ip", "remote_port", "local_ip", "local_port", "protocol", "is_tls",
                             "url", "path", "headers", "method"}),
        help_text='Access rule evaluated on every request before routing: 200 lets the request through, any other '
        'status refuses it with that status. Example: {"match": [{"if": "starts_with(path, \'/api/\') && '
        '!is_ip_in_cidr(remote_ip, \'10.0.0.0/8\')", "then": "403"}], "else": "200"}. Loopback clients are '
        'always let through.',
    )
    response_headers = HeaderMapField(help_text="Headers added to every response, replacing any of the same name.")
    use_permissive_cors = models.BooleanField(
        default=False, help_text="Allow cross-origin requests from any origin (Access-Control-Allow-* on every response).",
    )
    enable_hsts = models.BooleanField(
        default=False, help_text="Send Strict-Transport-Security (one year, subdomains included) on TLS listeners.",
    )
    use_x_forwarded = models.BooleanField(
        default=False, help_text="Take the client address from X-Forwarded-For or Forwarded, when the request "
        "comes from a proxy listed in the system settings' proxyTrustedNetworks (from anyone else the headers "
        "are ignored). A forwarded address is never treated as loopback.",
    )
    rate_limit_anonymous_count = models.PositiveIntegerField(
        null=True, blank=True, default=100, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Requests allowed per period from one IP address without credentials (empty: no limit).",
    )
    rate_limit_anonymous_period = models.DurationField(default=timedelta(minutes=1))
    rate_limit_authenticated_count = models.PositiveIntegerField(
        null=True, blank=True, default=1000, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Requests allowed per period to one account (empty: no limit).",
    )
    rate_limit_authenticated_period = models.DurationField(default=timedelta(minutes=1))

    class Meta:
        verbose_name = "HTTP"
        verbose_name_plural = "HTTP"

    def __str__(self):
        return "HTTP settings"

    def clean(self):
        for stem in ("rate_limit_anonymous", "rate_limit_authenticated"):
            period = getattr(self, f"{stem}_period")
            if period is not None and period.total_seconds() < 1:
                raise ValidationError({f"{stem}_period": ValidationError(
                    "The period must be at least one second.", code="min_value", params={"limit_value": 1000})})


def validate_bind(value: str):
    """host:port with a literal IP address ([v6]:port for IPv6)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([0-9.]+):(\d{1,5})", value or "")
    if not match:
        raise ValidationError("%(value)s is not an address and port such as 0.0.0.0:8080 or [::]:443.",
                              code="invalid", params={"value": value})
    host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValidationError("%(value)s is not an IP address.", code="invalid", params={"value": host}) from None
    if not 1 <= int(port) <= 65535:
        raise ValidationError("Port %(value)s is out of range.", code="invalid", params={"value": port})


class BindSetField(NameSetField):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Not blank: Django skips the validation of a blank field's empty value, and a listener
        # with no address ({}) was accepted.
        self.blank = False

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if not value:
            raise ValidationError("A listener needs at least one address.", code="required")
        for item in value:
            validate_bind(item)


class NetworkListener(models.Model):
    class Protocol(models.TextChoices):
        HTTP = "http", "HTTP"
        SMTP = "smtp", "SMTP"
        LMTP = "lmtp", "LMTP"
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"
        MANAGE_SIEVE = "manageSieve", "ManageSieve"

    name = models.CharField(
        max_length=64, unique=True,
        help_text="Name of the listener; rules see it as the `listener` variable.",
    )
    bind = BindSetField(schema_type="Set<SocketAddr>", help_text="Addresses and ports to listen on, e.g. 0.0.0.0:443.")
    protocol = models.CharField(max_length=16, choices=Protocol.choices, default=Protocol.HTTP)
    use_tls = models.BooleanField(default=False, help_text="Serve TLS (with the certificates of Settings › TLS).")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "network listener"

    def __str__(self):
        return self.name

    def clean(self):
        if self.name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValidationError({"name": ValidationError(
                "Use letters, digits, dots, dashes and underscores.", code="invalid")})
