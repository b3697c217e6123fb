"""System checks of Web Push's settings (ids jmapapi.E001-E009): a VAPID key that cannot be used
or an allowed network that is not one stops `manage.py serve` and `check` at start, instead of
every push going out unsigned or every subscription failing."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core import checks

from . import webpush


@checks.register()
def webpush_settings(app_configs=None, **kwargs):
    errors = []
    if (settings.WEBPUSH_VAPID_KEY or settings.WEBPUSH_VAPID_KEY_FILE) and webpush.vapid_key() is None:
        source = ("WEBPUSH_VAPID_KEY" if settings.WEBPUSH_VAPID_KEY
                  else f"WEBPUSH_VAPID_KEY_FILE ({settings.WEBPUSH_VAPID_KEY_FILE})")
        errors.append(checks.Error(f"{source} does not hold a readable, unencrypted P-256 private key (PEM).",
                                   hint="Make one with `manage.py webpush_key FILE`.", id="jmapapi.E001"))
    for item in settings.EGRESS_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            errors.append(checks.Error(f"EGRESS_ALLOWED_NETWORKS: {item!r} is not a network (CIDR).",
                                       id="jmapapi.E002"))
    for name in ("WEBPUSH_MAX_ATTEMPTS", "WEBPUSH_TIMEOUT", "WEBPUSH_MAX_EXPIRES"):
        if getattr(settings, name) < 1:
            errors.append(checks.Error(f"{name} must be at least 1.", id="jmapapi.E003"))
    return errors
