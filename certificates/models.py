"""TLS certificates obtained through ACME: the providers (AcmeProvider), the certificates they
issued (Certificate), and the HTTP-01 key authorizations being served while an order is
pending (AcmeChallenge).

The Python package `acme` on PyPI is certbot's client library, which services.py uses; hence
the app's name.
"""
from __future__ import annotations

import base64
import binascii
import re
from fractions import Fraction

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models

from registry.crypto import EncryptedTextField
from registry.fields import NameSetField

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# The validators' codes are not Django's "invalid": a JSONField would put its own message
# ("Value must be valid JSON") in place of ours.
# A host name on a certificate: lower-case labels, at least two of them, no wildcard (HTTP-01
# cannot validate one). It also makes the name safe as a directory name under VAR_DIR/tls/.
HOST_NAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 8555 §8.3: tokens are base64url without padding.
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MAX_NAMES = 100  # Let's Encrypt's limit of names per certificate


def validate_contacts(value):
    for address in value or []:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError("%(value)s is not an e-mail address.", code="invalid_address",
                                  params={"value": address}) from None


def validate_host_names(value):
    if len(value or []) > MAX_NAMES:
        raise ValidationError("At most %(limit_value)s names fit on one certificate.", code="max_length",
                              params={"limit_value": MAX_NAMES})
    for name in value or []:
        if name.startswith("*."):
            raise ValidationError("%(value)s: wildcard names need a DNS-01 challenge, which is not implemented.",
                                  code="wildcard", params={"value": name})
        if not HOST_NAME.match(name):
            raise ValidationError("%(value)s is not a host name (lower-case labels separated by dots).",
                                  code="invalid_name", params={"value": name})


def decode_eab_key(value: str) -> bytes:
    """The EAB HMAC key as the CA hands it out: base64url, usually without padding."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", value or ""):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


class HttpsURLField(models.URLField):
    """A URL whose form field assumes https:// when the scheme is left out."""

    def formfield(self, **kwargs):
        return super().formfield(**{"assume_scheme": "https", **kwargs})


class AcmeProvider(models.Model):
    """An ACME certificate authority account, and the names it obtains a certificate for."""

    class ChallengeType(models.TextChoices):
        TLS_ALPN_01 = "TlsAlpn01", "TLS-ALPN-01 (not implemented)"
        HTTP_01 = "Http01", "HTTP-01"
        DNS_01 = "Dns01", "DNS-01 (not implemented)"
        DNS_PERSIST_01 = "DnsPersist01", "DNS-PERSIST-01 (not implemented)"

    class RenewBefore(models.TextChoices):
        R12 = "R12", "When half of the lifetime has passed"
        R23 = "R23", "When two thirds of the lifetime have passed"
        R34 = "R34", "When three quarters of the lifetime have passed"
        R45 = "R45", "When four fifths of the lifetime have passed"

    FRACTIONS = {"R12": Fraction(1, 2), "R23": Fraction(2, 3), "R34": Fraction(3, 4), "R45": Fraction(4, 5)}

    directory = HttpsURLField(
        max_length=2048, default=LETS_ENCRYPT, verbose_name="directory",
        help_text=f"The URL of the ACME directory endpoint (Let's Encrypt staging: {LETS_ENCRYPT_STAGING}).",
    )
    challenge_type = models.CharField(
        max_length=16, choices=ChallengeType.choices, default=ChallengeType.HTTP_01,
        help_text="The ACME challenge type used to validate domain ownership. Only HTTP-01 is implemented: it needs "
        "port 80 of every name to reach this server.",
    )
    contact = NameSetField(
        validators=[validate_contacts], schema_type="Set<EmailAddress>",
        help_text="Contact e-mail addresses of the ACME account (at least one), for notices about the account and "
        "its certificates.",
    )
    domains = NameSetField(
        validators=[validate_host_names], schema_type="Set<String>",
        help_text="The host names the certificate is for (at least one; no wildcards). The first in alphabetical "
        "order names the certificate's directory under VAR_DIR/tls/.",
    )
    renew_before = models.CharField(
        max_length=3, choices=RenewBefore.choices, default=RenewBefore.R23,
        help_text="How far into its lifetime a certificate is renewed.",
    )
    max_retries = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(0), MaxValueValidator(1000)],
        help_text="Failed attempts in a row after which the renewal job stops trying this provider (until it is "
        "changed, or `manage.py acme obtain` succeeds).",
    )
    eab_key_id = models.CharField(
        max_length=255, blank=True, default="", verbose_name="EAB key ID",
        help_text="The External Account Binding key ID, for CAs that require one.",
    )
    eab_hmac_key = EncryptedTextField(
        max_length=512, blank=True, default="", verbose_name="EAB HMAC key",
        help_text="The External Account Binding HMAC key (base64url, as the CA gives it). Never shown again.",
    )
    account_uri = models.CharField(
        max_length=2048, blank=True, default="", verbose_name="account URI",
        help_text="The account URI returned by the ACME server after registration.",
    )
    # Server-side state, not public: the account key (PEM, ECDSA P-256), which directory the
    # account belongs to, and the renewal job's failure count.
    account_key = EncryptedTextField(blank=True, default="")
    account_directory = models.CharField(max_length=2048, blank=True, default="")
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ACME provider"
        verbose_name_plural = "ACME providers"
        ordering = ["pk"]

    def __str__(self):
        names = self.domains or []
        return f"{self.directory} ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"

    @classmethod
    def from_db(cls, db, field_names, values):
        obj = super().from_db(db, field_names, values)
        obj._stored = {name: obj.__dict__.get(name) for name in ("directory", "eab_key_id", "eab_hmac_key")}
        return obj

    @property
    def renew_fraction(self) -> Fraction:
        return self.FRACTIONS[self.renew_before]

    @property
    def primary_name(self) -> str:
        return sorted(self.domains)[0]

    def clean(self):
        errors = {}
        # Required here, not with blank=False: NameSetField defaults blank to True, and a
        # migration would not keep False.
        for name, what in (("contact", "at least one contact address"), ("domains", "at least one host name")):
            if not getattr(self, name):
                errors[name] = ValidationError(f"Give {what}.", code="required")
        if self.directory and not self.directory.lower().startswith("https://"):
            errors["directory"] = ValidationError("ACME directories are served over HTTPS (RFC 8555 §6.1).",
                                                  code="invalid", params={"value": self.directory})
        if self.challenge_type and self.challenge_type != self.ChallengeType.HTTP_01:
            errors["challenge_type"] = ValidationError(
                "Only Http01 challenges are implemented; %(value)s is kept in the list for compatibility with the "
                "reference's configuration and cannot be used yet.", code="unsupported",
                params={"value": self.challenge_type, "properties": ["challengeType"]})
        if bool(self.eab_key_id) != bool(self.eab_hmac_key):
            errors["eab_hmac_key" if self.eab_key_id else "eab_key_id"] = ValidationError(
                "External Account Binding needs both the key ID and the HMAC key, or neither.", code="incomplete",
                params={"properties": ["eabKeyId", "eabHmacKey"]})
        elif self.eab_hmac_key:
            try:
                decode_eab_key(self.eab_hmac_key)
            except ValueError:
                errors["eab_hmac_key"] = ValidationError("The HMAC key must be base64url, as the CA gives it.",
                                                         code="invalid", params={"value": "****"})
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        # The account belongs to one directory and was registered with one binding: when either
        # changes, the next order registers again (with the same key).
        stored = getattr(self, "_stored", None)
        if stored and any(getattr(self, k) != v for k, v in stored.items()):
            self.account_uri = ""
            self.account_directory = ""
        super().save(*args, **kwargs)
        self._stored = {name: getattr(self, name) for name in ("directory", "eab_key_id", "eab_hmac_key")}


class Certificate(models.Model):
    """A certificate issued by an ACME provider. The newest one for a name is the one served."""

    provider = models.ForeignKey(AcmeProvider, on_delete=models.CASCADE, related_name="certificates",
                                 verbose_name="ACME provider")
    names = NameSetField(help_text="The host names on the certificate (its subject alternative names).")
    issuer = models.CharField(max_length=1024, blank=True, default="", help_text="The issuer's distinguished name.")
    serial_number = models.CharField(max_length=64, blank=True, default="", help_text="In hexadecimal.")
    not_before = models.DateTimeField(help_text="Start of validity.")
    not_after = models.DateTimeField(help_text="End of validity.")
    chain = models.TextField(verbose_name="certificate", help_text="The certificate and its intermediates (PEM).")
    # Never public: the private key of the certificate (PEM, ECDSA P-256, PKCS#8).
    private_key = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-not_after", "-pk"]
        indexes = [models.Index(fields=["provider", "-not_after"])]

    def __str__(self):
        return f"{', '.join(self.names[:3])} (until {self.not_after:%Y-%m-%d})"

    @property
    def primary_name(self) -> str:
        return sorted(self.names)[0]

    def lifetime_elapsed(self, now) -> Fraction:
        total = (self.not_after - self.not_before).total_seconds()
        if total <= 0:
            return Fraction(1)
        return Fraction((now - self.not_before).total_seconds()) / Fraction(total)


class AcmeChallenge(models.Model):
    """An HTTP-01 key authorization served at /.well-known/acme-challenge/<token> while its order
    is pending. A table rather than the cache: the cache is per process unless REDIS_URL is set,
    and the ACME client runs in another process than the workers that answer the CA."""

    token = models.CharField(max_length=255, primary_key=True)
    key_authorization = models.TextField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.token
