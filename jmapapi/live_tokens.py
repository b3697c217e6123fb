"""The short-lived tokens of the live streams under /api/live/ (spec http.md §8.5, §8.7): what
`/api/token/<kind>` hands a caller holding the kind's permission, and what the stream then takes
as `?token=` (a browser's EventSource cannot send an Authorization header).

A token is signed with the server's SECRET_KEY and a salt of its own kind, bound to one account,
and usable for LIVE_TOKEN_TTL seconds (the reference's 60): a token of one kind is no token of
another (nor an EventSource token, whose salt is jmapapi.push_views'), and nothing is stored. The
account must still be able to log in and still hold the permission when the stream opens.
"""
from __future__ import annotations

from django.conf import settings
from django.core import signing

from accounts.authz import RECOVERY_ID, account_permissions, recovery_credentials
from accounts.models import Account

# kind -> the permission that may ask for it and that the token carries (only that one).
KINDS = {
    "delivery": "liveDeliveryTest",
}


class LiveTokenError(Exception):
    pass


def _salt(kind: str) -> str:
    return f"stalwart.api.live-{kind}-token"


def mint(kind: str, account_id: int) -> str:
    return signing.dumps({"k": kind, "a": account_id}, salt=_salt(kind))


def caller(kind: str, token: str) -> int:
    """The account id a valid token of `kind` was minted for; LiveTokenError otherwise."""
    if len(token) > 512:
        raise LiveTokenError("The token is not valid.")
    try:
        data = signing.loads(token, salt=_salt(kind), max_age=settings.LIVE_TOKEN_TTL)
    except signing.SignatureExpired:
        raise LiveTokenError(f"The token has expired; ask /api/token/{kind} for a new one.") from None
    except (signing.BadSignature, ValueError):
        raise LiveTokenError("The token is not valid.") from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("a"), int):
        raise LiveTokenError("The token is not valid.")
    if data["a"] == RECOVERY_ID:
        if recovery_credentials() is None:
            raise LiveTokenError("The token's account cannot log in.")
        return RECOVERY_ID
    account = Account.objects.filter(pk=data["a"], is_active=True).first()
    if account is None:
        raise LiveTokenError("The token's account cannot log in.")
    permissions = account_permissions(account)
    if "authenticate" not in permissions or KINDS[kind] not in permissions:
        raise LiveTokenError("The token's account no longer holds the permission it was minted for.")
    return account.pk
