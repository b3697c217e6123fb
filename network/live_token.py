"""The short-lived tokens of the live streams (`/api/token/{kind}`, reference §8.5 and §8.7).

A browser's EventSource cannot send an Authorization header, so a page asks for a token with its
credentials and opens the stream with `?token=`. One table says which kinds exist and what each
needs: the permission minting it takes and the token then carries, alone (§8.7). A kind's token
is signed with a salt of its own, so a token of one kind is not valid for another (an
eventsource token never opens live tracing, nor the other way round). Nothing is stored: a token
is Django's signing of {kind, account, claims}, usable for EVENTSOURCE_TOKEN_TTL seconds (60).

Adding a kind is one entry in KINDS; the view that serves its stream asks `stream_caller(request,
kind)` who opens it: every live stream takes its token, its credentials, and both at once, the
same way, with the same answers.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.http import HttpResponse

from accounts import login
from accounts.authz import RECOVERY_ID, account_permissions, recovery_credentials
from accounts.models import Account
from stalwart_site.problem import problem

from . import endpoint

MAX_TOKEN = 1024


@dataclass(frozen=True)
class Kind:
    name: str
    # The permission that mints the token and the only one it carries; None: any account.
    permission: str | None
    salt: str


KINDS = {kind.name: kind for kind in (
    # The salt of the first kind predates the table: tokens minted before it stay valid.
    Kind("eventsource", None, "stalwart.jmap.eventsource-token"),
    Kind("tracing", "liveTracing", "stalwart.live.tracing-token"),
    Kind("metrics", "liveMetrics", "stalwart.live.metrics-token"),
    Kind("delivery", "liveDeliveryTest", "stalwart.api.live-delivery-token"),
)}


class TokenError(Exception):
    """`status` is 401 for a token that authenticates nobody, 403 for one whose account may no
    longer do what it was minted for."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Caller:
    account: Account
    permissions: frozenset[str]
    claims: dict


def may_mint(kind: Kind, permissions) -> bool:
    return kind.permission is None or kind.permission in permissions


def mint(kind: Kind, account_id: int, claims: dict | None = None) -> str:
    return signing.dumps({**(claims or {}), "k": kind.name, "a": account_id}, salt=kind.salt, compress=True)


def verify(kind_name: str, token: str) -> Caller:
    """The account a valid token of `kind_name` stands for, its current permissions (only the
    kind's, when the kind names one) and the claims it was minted with; TokenError otherwise."""
    kind = KINDS[kind_name]
    if len(token) > MAX_TOKEN:
        raise TokenError("The token is not valid.")
    try:
        data = signing.loads(token, salt=kind.salt, max_age=settings.EVENTSOURCE_TOKEN_TTL)
    except signing.SignatureExpired:
        raise TokenError(f"The token has expired; ask /api/token/{kind.name} for a new one.") from None
    except (signing.BadSignature, ValueError):
        raise TokenError("The token is not valid.") from None
    if not isinstance(data, dict) or data.get("k") != kind.name or not isinstance(data.get("a"), int):
        raise TokenError("The token is not valid.")
    if data["a"] == RECOVERY_ID:
        # The recovery administrator is not stored: the token holds while it is configured.
        recovery = recovery_credentials()
        account = login.recovery_admin(recovery[0]) if recovery else None
    else:
        account = Account.objects.filter(pk=data["a"], is_active=True).first()
    if account is None:
        raise TokenError("The token's account cannot log in.")
    permissions = account_permissions(account)
    if "authenticate" not in permissions:
        raise TokenError("The token's account cannot log in.")
    if kind.permission is not None:
        # Revoked since it was minted: refused at once, not when the token expires.
        if kind.permission not in permissions:
            raise TokenError(f"The token's account no longer has the {kind.permission} permission.", 403)
        permissions = frozenset({kind.permission})
    return Caller(account, permissions, data)


@dataclass(frozen=True)
class StreamCaller:
    """Who opens a live stream: the account, its permissions (a token's: only its kind's, when
    the kind names one), and the claims of the token it came with (by_token) or none."""

    account_id: int
    permissions: frozenset[str]
    claims: dict
    by_token: bool


def stream_caller(request, kind_name: str) -> StreamCaller | HttpResponse:
    """Who opens the live stream `kind_name`: the `?token=` of that kind, or the request's
    credentials (Basic, Bearer), which must hold the kind's permission. A token sent with
    credentials must be the same account's. Otherwise the problem to answer: 401 with the
    challenges (no valid token, no valid credentials), or 403."""
    kind = KINDS[kind_name]
    token = request.GET.get("token")
    if token is not None:
        try:
            caller = verify(kind_name, token)
        except TokenError as exc:
            response = problem(exc.status, str(exc))
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = endpoint.CHALLENGES
            return response
        if request.META.get("HTTP_AUTHORIZATION"):
            principal, error = endpoint.authenticate(request)
            if error is not None:
                return error
            if principal.account_id != caller.account.pk:
                return problem(403, "The token belongs to another account than the credentials sent with it.")
        return StreamCaller(caller.account.pk, frozenset(caller.permissions), caller.claims, True)
    principal, error = endpoint.authenticate(request)
    if error is not None:
        return error
    if not may_mint(kind, principal.permissions):
        return problem(403, f"The live {kind_name} stream needs the {kind.permission} permission.")
    return StreamCaller(principal.account_id, frozenset(principal.permissions), {}, False)
