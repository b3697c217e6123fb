"""System checks of the contact store's settings (ids contacts.E001-E049)."""
from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    slug = settings.CONTACTS_DEFAULT_SLUG
    if not isinstance(slug, str) or len(slug) > 255 or "/" in slug or slug in (".", "..") or (
            slug and any(ord(c) < 0x20 or ord(c) == 0x7f for c in slug)):
        errors.append(checks.Error("CONTACTS_DEFAULT_SLUG is one path segment (no '/', at most 255 characters).",
                                   id="contacts.E001"))
    for name, low in (("CONTACTS_MAX_VCARD_SIZE", 1024), ("CONTACTS_MAX_BOOKS", 1), ("CONTACTS_MAX_RESULTS", 1)):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            errors.append(checks.Error(f"{name} is an integer of at least {low}.", id="contacts.E002"))
    return errors
