"""System checks of the calendar store's limits (ids calendars.E001…E049)."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from .services import parse_utc


@register()
def check_limits(app_configs=None, **kwargs):
    errors = []
    for name, number in (("CALENDAR_MAX_ICALENDAR_SIZE", "E001"), ("CALENDAR_MAX_RECURRENCE_EXPANSIONS", "E002"),
                         ("CALENDAR_MAX_ATTENDEES", "E003"), ("CALENDAR_MAX_CALENDARS", "E004"),
                         ("CALENDAR_INDEX_HORIZON_DAYS", "E005")):
        value = getattr(settings, name)
        if not isinstance(value, int) or value < 1:
            errors.append(Error(f"{name} must be a positive integer, not {value!r}.", id=f"calendars.{number}"))
    if not isinstance(settings.CALENDAR_MAX_EVENTS, int) or settings.CALENDAR_MAX_EVENTS < 0:
        errors.append(Error("CALENDAR_MAX_EVENTS must be 0 (no limit) or a positive integer.", id="calendars.E006"))
    try:
        low, high = parse_utc(settings.CALENDAR_MIN_DATE_TIME), parse_utc(settings.CALENDAR_MAX_DATE_TIME)
        if low >= high:
            errors.append(Error("CALENDAR_MIN_DATE_TIME must be before CALENDAR_MAX_DATE_TIME.", id="calendars.E007"))
    except ValueError as exc:
        errors.append(Error(f"CALENDAR_MIN_DATE_TIME and CALENDAR_MAX_DATE_TIME are UTC date-times "
                            f"like 20260101T000000Z: {exc}", id="calendars.E008"))
    slug = settings.CALENDAR_DEFAULT_HREF_NAME
    if not isinstance(slug, str) or "/" in slug or len(slug) > 255 or slug in (".", ".."):
        errors.append(Error("CALENDAR_DEFAULT_HREF_NAME is a path segment (no '/'), or empty for no default "
                            "calendar.", id="calendars.E009"))
    return errors
