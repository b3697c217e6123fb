"""System checks of the dav app (ids dav.E001 to dav.E049)."""
from django.conf import settings
from django.core.checks import Error, register

_POSITIVE = ("DAV_MAX_FILE_SIZE", "DAV_MAX_XML_SIZE", "DAV_MAX_RESULTS", "DAV_DEAD_PROPERTY_MAX_SIZE",
             "DAV_LIVE_PROPERTY_MAX_SIZE", "DAV_MAX_LOCK_TIMEOUT", "DAV_MAX_LOCKS")


@register()
def dav_limits(app_configs, **kwargs):
    errors = []
    for n, name in enumerate(_POSITIVE, start=1):
        value = getattr(settings, name, None)
        if not isinstance(value, int) or value <= 0:
            errors.append(Error(f"{name} must be a positive number.", hint=f"Set {name} to a number above 0.",
                                id=f"dav.E{n:03d}"))
    nodes = getattr(settings, "DAV_MAX_NODES", 0)
    if not isinstance(nodes, int) or nodes < 0:
        errors.append(Error("DAV_MAX_NODES must be 0 (no limit) or a positive number.", id="dav.E008"))
    return errors
