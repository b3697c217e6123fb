"""The `urn:ietf:params:jmap:sieve` account capability (RFC 9661 §2) as far as the language
decides it; the script store adds its own name and count limits."""
from __future__ import annotations

from .grammar import CAPABILITIES
from .limits import Limits


def account_capability(limits: Limits | None = None, *, max_size_script_name: int = 512,
                       max_number_scripts: int | None = 100) -> dict:
    limits = limits or Limits()
    return {
        "maxSizeScriptName": max_size_script_name,
        "maxSizeScript": limits.max_script_size,
        "maxNumberScripts": max_number_scripts,
        "maxNumberRedirects": limits.max_redirects,
        "sieveExtensions": sorted(CAPABILITIES),
        # No "enotify" here, so no notification method either (RFC 9661 §2: null when none).
        "notificationMethods": None,
        "externalLists": None,
    }
