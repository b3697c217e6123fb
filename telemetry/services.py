"""Who may scrape /metrics/prometheus.

The reference compares the Authorization header with base64(authUsername ":" secret). Here the
Basic credentials are decoded and both parts compared in constant time; a secret stored as a
Value is an argon2id hash, so its verdict for a given header is cached under the Metrics state
(a scrape every few seconds costs one hash per settings change, not one per scrape).
Environment-variable and file secrets are read at every check, so rotating them needs no restart.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os

from django.conf import settings as django_settings
from django.core.cache import cache

from accounts import hashing

from .models import Metrics

log = logging.getLogger(__name__)
Kind = Metrics.SecretKind
VERDICT_TTL = 3600
MAX_SECRET_FILE = 64 * 1024


def requires_auth(metrics: Metrics) -> bool:
    return bool(metrics.prometheus_auth_username) and metrics.prometheus_auth_secret_kind != Kind.NONE


def _basic(header: str | None) -> tuple[bytes, bytes] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, secret = decoded.partition(b":")
    return (user, secret) if colon else None


def _external_secret(metrics: Metrics) -> bytes | None:
    """The secret from the environment or a file, or None when it cannot be read."""
    kind = metrics.prometheus_auth_secret_kind
    if kind == Kind.ENVIRONMENT_VARIABLE:
        value = os.environb.get(metrics.prometheus_auth_secret_variable.encode())
        if not value:
            log.warning("metrics: environment variable %s is not set; scrapes are refused",
                        metrics.prometheus_auth_secret_variable)
        return value or None
    try:
        with open(metrics.prometheus_auth_secret_file, "rb") as fh:
            value = fh.read(MAX_SECRET_FILE).rstrip(b"\r\n")
    except OSError as exc:
        log.warning("metrics: cannot read the secret file: %s; scrapes are refused", exc)
        return None
    return value or None


def authorized(metrics: Metrics, header: str | None, state: int) -> bool:
    """Whether a request with this Authorization header may read the metrics.

    A configured secret that cannot be read (unset variable, missing file) refuses every scrape:
    the reference would then serve the metrics to anyone.
    """
    if not requires_auth(metrics):
        return True
    creds = _basic(header)
    if creds is None:
        return False
    user, secret = creds
    user_ok = hmac.compare_digest(user, metrics.prometheus_auth_username.encode())
    if metrics.prometheus_auth_secret_kind != Kind.VALUE:
        expected = _external_secret(metrics)
        secret_ok = expected is not None and hmac.compare_digest(secret, expected)
        return user_ok and secret_ok
    # Keyed by an HMAC of the header, not a bare hash: a shared cache does not hold anything
    # a weak secret could be guessed back from.
    digest = hmac.new(django_settings.SECRET_KEY.encode(), header.encode("utf-8", "surrogatepass"),
                      hashlib.sha256).hexdigest()
    key = f"metricsauth:{digest}:{state}"
    verdict = cache.get(key)
    if verdict is None:
        try:
            secret_ok = hashing.verify_secret(secret, metrics.prometheus_auth_secret)
        except hashing.UnknownHashFormat:
            log.error("metrics: the stored secret has an unknown hash format; scrapes are refused")
            secret_ok = False
        verdict = user_ok and secret_ok
        cache.set(key, verdict, VERDICT_TTL)
    return verdict
