"""The one seam between Email/query's text filters (RFC 8621 §4.4.1: text, from, to, cc, bcc,
subject, body) and a full-text index.

`text_condition()` returns a Q over Email rows (reached through `prefix`, "" or "email__").
This fallback is a case-insensitive substring match over the search text mail.mime computed at
import (stored in `Email.search`): correct, but a scan. The full-text app replaces the body of
this function with its index lookup (e.g. `Q(**{prefix + "id__in": fulltext.match(...)})`),
and nothing else in the store changes.
"""
from __future__ import annotations

from django.db.models import Q

FIELDS = ("from", "to", "cc", "bcc", "subject", "body")


def text_condition(account_id: int, field: str, value: str, prefix: str = "") -> Q:
    """Emails of `account_id` whose `field` ("text" for any of FIELDS) contains `value`."""
    names = FIELDS + ("attachmentNames",) if field == "text" else (field,)
    out = Q()
    for name in names:
        out |= Q(**{f"{prefix}search__{name}__icontains": value})
    return out
