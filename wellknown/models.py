"""The MTA-STS policy this server publishes (RFC 8461) at /.well-known/mta-sts.txt."""
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models

from accounts.models import domain_name_validator
from registry.fields import NameSetField
from registry.models import SingletonModel

MAX_AGE_LIMIT = 31_557_600  # seconds: RFC 8461 §3.2
MAX_MX_HOSTS = 100


def validate_mx_patterns(value):
    """Each entry is a host name or `*.` followed by one (RFC 8461 §4.1)."""
    if not isinstance(value, list):
        return  # NameSetField.validate reports the shape
    if len(value) > MAX_MX_HOSTS:
        raise ValidationError(f"At most {MAX_MX_HOSTS} host names.", code="invalidValue",
                              params={"value": f"{len(value)} host names"})
    for item in value:
        if not isinstance(item, str):
            continue
        host = item[2:] if item.startswith("*.") else item
        try:
            domain_name_validator(host)
        except ValidationError:
            raise ValidationError(
                "%(value)s is not a host name nor a *.domain wildcard.", code="invalidValue",
                params={"value": item[:100]}) from None
        if item.startswith("*.") and "." not in host:
            raise ValidationError("%(value)s: a wildcard must cover a domain with at least two labels.",
                                  code="invalidValue", params={"value": item[:100]})


class HostPatternSetField(NameSetField):
    """A set of host names or `*.domain` patterns, kept in lower case, sorted, without duplicates."""

    def to_python(self, value):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return sorted({v.strip().lower() for v in value})
        return value


class MtaSts(SingletonModel):
    class Mode(models.TextChoices):
        ENFORCE = "enforce", "Enforce"
        TESTING = "testing", "Testing"
        NONE = "none", "None (withdraw a published policy)"
        DISABLE = "disable", "Disabled (publish nothing)"

    mode = models.CharField(
        max_length=8, choices=Mode.choices, default=Mode.TESTING,
        help_text="Policy mode. Testing: senders report failures but deliver anyway. Enforce: senders refuse to "
        "deliver without a valid TLS connection to a listed MX. None: publishes `mode: none`, the way RFC 8461 "
        "§8.3 retires a policy that senders have cached. Disabled: nothing is published.",
    )
    max_age = models.DurationField(
        default=timedelta(days=7),
        help_text="How long senders may cache the policy (1 second to 365.25 days); published in whole seconds.",
    )
    mx_hosts = HostPatternSetField(
        validators=[validate_mx_patterns], schema_type="Set<String>",
        help_text="Host names (or *.domain wildcards) the policy lists; empty: the host names of the system "
        "settings' mail exchangers.",
    )

    class Meta:
        verbose_name = "MTA-STS policy"
        verbose_name_plural = "MTA-STS policy"

    def clean(self):
        if self.max_age is None:
            return
        seconds = self.max_age.total_seconds()
        if seconds < 1:
            raise ValidationError({"max_age": ValidationError(
                "The maximum age must be at least one second.", code="min_value", params={"limit_value": 1000})})
        if seconds > MAX_AGE_LIMIT:
            raise ValidationError({"max_age": ValidationError(
                "The maximum age may not exceed 31557600 seconds (RFC 8461).", code="max_value",
                params={"limit_value": MAX_AGE_LIMIT * 1000})})

    def __str__(self):
        return "MTA-STS policy"
