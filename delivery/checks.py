"""System checks of delivery's settings (ids delivery.E001-E049), so that a wrong value stops
`manage.py lmtp` and `deliver` at start instead of refusing mail one message at a time."""
from __future__ import annotations

from django.conf import settings
from django.core import checks

import sieve


@checks.register()
def delivery_settings(app_configs=None, **kwargs):
    errors = []
    port = getattr(settings, "LMTP_PORT", 24)
    if not isinstance(port, int) or not 0 < port < 65536:
        errors.append(checks.Error(f"LMTP_PORT must be a TCP port (1-65535), not {port!r}.", id="delivery.E001"))
    size = getattr(settings, "LMTP_MAX_MESSAGE_SIZE", 0)
    if not isinstance(size, int) or size < 1024:
        errors.append(checks.Error(f"LMTP_MAX_MESSAGE_SIZE must be at least 1024 bytes, not {size!r}.",
                                   id="delivery.E002"))
    try:
        sieve.Limits.from_settings()
    except (TypeError, ValueError) as exc:
        errors.append(checks.Error(str(exc), id="delivery.E003"))
    count = getattr(settings, "SIEVE_MAX_SCRIPTS", 100)
    if not isinstance(count, int) or count < 1:
        errors.append(checks.Error(f"SIEVE_MAX_SCRIPTS must be a positive number, not {count!r}.",
                                   id="delivery.E004"))
    return errors
