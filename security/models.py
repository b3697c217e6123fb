"""Automatic banning: thresholds (Security), banned addresses (BlockedIp), and addresses
that are never banned (AllowedIp)."""
import ipaddress
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry.fields import NameSetField
from registry.models import SingletonModel

# The reference's defaults: paths only scanners ask for on a mail server.
DEFAULT_SCAN_PATHS = [
    "*.php*", "*.cgi*", "*.asp*", "*/wp-*", "*/php*", "*/cgi-bin*", "*xmlrpc*", "*../*", "*/..*", "*joomla*",
    "*wordpress*", "*drupal*",
]


def default_scan_paths():
    return list(DEFAULT_SCAN_PATHS)


def validate_ip_mask(value: str):
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError("Enter an IP address or a network in CIDR notation.", code="invalid",
                              params={"value": value}) from None


class Security(SingletonModel):
    """Fail-to-ban thresholds. An empty rate disables the category."""

    auth_ban_rate_count = models.PositiveIntegerField(
        null=True, blank=True, default=100, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Authentication failures allowed per period, per IP address and per login name "
        "before the IP address is banned (empty: no banning on authentication failures).",
    )
    auth_ban_rate_period = models.DurationField(
        default=timedelta(days=1), help_text="Length of the window in which authentication failures are counted.",
    )
    auth_ban_period = models.DurationField(
        null=True, blank=True, help_text="How long a ban lasts; empty bans until the address is removed.",
    )

    scan_ban_paths = NameSetField(
        default=default_scan_paths, schema_type="Set<String>",
        help_text="Glob patterns (* and ?, case-insensitive) of paths that ban the client at once when they "
        "match a request for an unknown resource.",
    )
    scan_ban_period = models.DurationField(
        null=True, blank=True, help_text="How long a scan ban lasts; empty bans until the address is removed.",
    )

    class Meta:
        verbose_name = "security"
        verbose_name_plural = "security"

    def clean(self):
        if self.auth_ban_rate_period is not None and self.auth_ban_rate_period.total_seconds() < 1:
            raise ValidationError({"auth_ban_rate_period": ValidationError(
                "The period must be at least one second.", code="min_value", params={"limit_value": 1000})})

    def __str__(self):
        return "Security settings"


class BlockedIp(models.Model):
    class Reason(models.TextChoices):
        RCPT_TO_FAILURE = "rcptToFailure", "Too many invalid recipients"
        AUTH_FAILURE = "authFailure", "Too many authentication failures"
        LOITERING = "loitering", "Loitering"
        PORT_SCANNING = "portScanning", "Port or path scanning"
        MANUAL = "manual", "Blocked by an administrator"
        OTHER = "other", "Other"

    address = models.CharField(max_length=64, unique=True, validators=[validate_ip_mask],
                               help_text="IP address or network in CIDR notation.")
    reason = models.CharField(max_length=16, choices=Reason.choices, default=Reason.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: blocked until removed.")

    class Meta:
        verbose_name = "blocked IP address"
        verbose_name_plural = "blocked IP addresses"
        ordering = ["-created_at"]

    def __str__(self):
        return self.address


class AllowedIp(models.Model):
    address = models.CharField(max_length=64, unique=True, validators=[validate_ip_mask],
                               help_text="IP address or network in CIDR notation.")
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "allowed IP address"
        verbose_name_plural = "allowed IP addresses"
        ordering = ["address"]

    def __str__(self):
        return self.address
