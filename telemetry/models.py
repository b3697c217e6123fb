"""The Metrics settings singleton: whether /metrics/prometheus is served, and how it is protected.

The reference's `prometheus` property is one tagged value ({"@type": "Disabled"} or
{"@type": "Enabled", "authUsername": …, "authSecret": {…}}); here it is six columns, read and
written as one value by `telemetry.objects.PrometheusChoice`, and separate inputs on the admin
page. A secret given as a value is kept hashed (argon2id, as account passwords), never in clear.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from accounts import hashing
from registry.models import SingletonModel

MASK = "****"


class Metrics(SingletonModel):
    class SecretKind(models.TextChoices):
        NONE = "none", "None"
        VALUE = "value", "Value (stored hashed)"
        ENVIRONMENT_VARIABLE = "environmentVariable", "Environment variable"
        FILE = "file", "File"

    prometheus_enabled = models.BooleanField(
        "Prometheus enabled", default=False,
        help_text="Serve the Prometheus metrics at /metrics/prometheus (otherwise it answers 404).",
    )
    prometheus_auth_username = models.CharField(
        "Prometheus username", max_length=255, blank=True,
        help_text="User name the scraper sends with HTTP Basic authentication. Leave it and the secret "
        "empty to serve the metrics without authentication.",
    )
    prometheus_auth_secret_kind = models.CharField(
        "Prometheus secret source", max_length=24, choices=SecretKind.choices, default=SecretKind.NONE,
        help_text="Where the scraper's password comes from.",
    )
    prometheus_auth_secret = models.CharField(
        "Prometheus secret", max_length=255, blank=True,
        help_text="The scraper's password (source Value). It is stored hashed and never shown again.",
    )
    prometheus_auth_secret_variable = models.CharField(
        "Prometheus secret variable", max_length=255, blank=True,
        help_text="Name of the environment variable holding the password (source Environment variable), "
        "read at every scrape.",
    )
    prometheus_auth_secret_file = models.CharField(
        "Prometheus secret file", max_length=1024, blank=True,
        help_text="Path of the file holding the password (source File), read at every scrape; a trailing "
        "line break is ignored.",
    )

    class Meta:
        verbose_name = "metrics"
        verbose_name_plural = "metrics"

    def __str__(self):
        return "Metrics settings"

    @classmethod
    def from_db(cls, db, field_names, values):
        obj = super().from_db(db, field_names, values)
        obj._stored_secret = obj.__dict__.get("prometheus_auth_secret")
        return obj

    def clean(self):
        kind = self.prometheus_auth_secret_kind
        errors = {}

        def need(field, message, prop):
            errors[field] = ValidationError(message, code="incomplete", params={"properties": [prop]})

        if kind == self.SecretKind.VALUE and not self.prometheus_auth_secret:
            need("prometheus_auth_secret", "Give the secret (**** stands for a stored one, and none is stored).",
                 "prometheus/authSecret/secret")
        if self.prometheus_auth_secret == MASK and getattr(self, "_stored_secret", None) in (None, "", MASK):
            need("prometheus_auth_secret", "**** stands for the stored secret, and none is stored.",
                 "prometheus/authSecret/secret")
        if kind == self.SecretKind.ENVIRONMENT_VARIABLE and not self.prometheus_auth_secret_variable.strip():
            need("prometheus_auth_secret_variable", "Name the environment variable.", "prometheus/authSecret/variableName")
        if kind == self.SecretKind.FILE and not self.prometheus_auth_secret_file.strip():
            need("prometheus_auth_secret_file", "Give the path of the file.", "prometheus/authSecret/filePath")
        if self.prometheus_enabled and not errors:
            # The reference leaves the endpoint open when only one of the two is set; an endpoint
            # meant to be protected is never silently open here: both or neither.
            has_user = bool(self.prometheus_auth_username)
            has_secret = kind != self.SecretKind.NONE
            if has_user and not has_secret:
                need("prometheus_auth_secret_kind", "A username needs a secret (or clear both to serve the "
                     "metrics without authentication).", "prometheus/authSecret")
            elif has_secret and not has_user:
                need("prometheus_auth_username", "A secret needs a username (or clear both to serve the "
                     "metrics without authentication).", "prometheus/authUsername")
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        if self.prometheus_auth_secret_kind != self.SecretKind.VALUE:
            self.prometheus_auth_secret = ""
        value = self.prometheus_auth_secret
        if value == MASK:
            value = self.prometheus_auth_secret = getattr(self, "_stored_secret", "") or ""
        if value and value != getattr(self, "_stored_secret", None) and not hashing.is_password_hash(value):
            # A new secret in clear: keep only its hash. A complete hash (argon2, bcrypt, {SSHA}, …)
            # is kept as given, as for account passwords.
            self.prometheus_auth_secret = hashing.hash_secret(value, "argon2id")
        super().save(*args, **kwargs)
        self._stored_secret = self.prometheus_auth_secret
