"""Authentication of API requests (JMAP, /api/*): Basic and Bearer.

The methods are a list; OAuth access tokens join it as one more entry. A successful
verification is cached under a digest of the Authorization header together with the states of
everything that could change its outcome (credentials, accounts, roles, tenants, settings), so a
Basic-auth client costs one password hash per cache period, not one per request, and any change
to a credential or a permission is seen by every worker on its next request.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from registry import context, memo
from security import ratelimit
from security import services as security

from . import login
from .authz import DEPENDENCIES
from .models import Account

VERDICT_TTL = 3600
# The verdicts this worker found, in front of the shared cache: a hit there costs a cache read
# and unpickling the verdict (a round trip to Redis when it is shared), on every request of a
# client that re-sends its credentials. They are kept (registry.memo) under the same states as
# the shared cache's keys, so any change is seen on the next request, for a minute at most
# (what the states cannot see, a directory's own password change, waits VERDICT_TTL plus that
# minute), and at most _LOCAL_VERDICTS of them.
_LOCAL = "http_auth.verdicts"
_LOCAL_TTL = 60
_LOCAL_VERDICTS = 4096
# Directory: a verdict given by an external directory ends when the directory (or the choice
# of directory, in Authentication) changes.
STATE_TYPES = (*DEPENDENCIES, "Credential", "Directory")
# Every API request verifies its credentials: the edge reads these states with its own.
context.needs(*STATE_TYPES)


def current_states(*names: str) -> dict[str, int]:
    """The states of `names`: the request's (read once at its edge), or read now in one query."""
    return context.states(*names)


@dataclass
class Principal:
    """Who is calling, as far as an API request needs to know."""

    account_id: int
    name: str
    permissions: frozenset[str]
    credential_kind: str | None = None
    expires_at: datetime | None = None
    tenant_id: int | None = None
    recovery: bool = False
    extra: dict = field(default_factory=dict)

    def has(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def audit_name(self) -> str:
        return self.name

    @property
    def account(self):
        if self.recovery:
            return login.recovery_admin(self.name)
        cached = self.extra.get("account")
        if cached is None:
            cached = self.extra["account"] = Account.objects.select_related("domain").get(pk=self.account_id)
        return cached

    # Cached verdicts hold the permissions as one string: unpickling hundreds of strings into a
    # new set on every request cost more than the rest of the verdict; the set is shared instead.
    def __getstate__(self):
        return {**self.__dict__, "permissions": " ".join(sorted(self.permissions))}

    def __setstate__(self, state):
        permissions = state["permissions"]
        self.__dict__.update(state, permissions=_permission_set(permissions) if isinstance(permissions, str)
                             else permissions)


@functools.lru_cache(maxsize=256)
def _permission_set(names: str) -> frozenset[str]:
    return frozenset(names.split())


class NoCredentials(login.AuthError):
    message = "You have to authenticate first."


class UnsupportedScheme(login.AuthError):
    pass


def _principal(result: login.AuthResult) -> Principal:
    account, cred = result.account, result.credential
    return Principal(
        account_id=account.pk, name=account.email_address, permissions=result.permissions,
        credential_kind=cred.kind if cred else None,
        # A cached verdict is recomputed when its credential expires: an app password or API key
        # then fails, a password session is narrowed to changing the password.
        expires_at=cred.expires_at if cred is not None and cred.expires_at and cred.expires_at > timezone.now() else None,
        tenant_id=account.tenant_id, recovery=account.is_recovery_admin,
        extra={"account": account},
    )


def basic(value: str, remote_ip: str | None) -> Principal:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise login.AuthFailed("Malformed Basic credentials.") from None
    if ":" not in decoded:
        raise login.AuthFailed("Malformed Basic credentials.")
    user, secret = decoded.split(":", 1)
    # PostgreSQL refuses NUL in text: a name holding one would fail the account lookup with a 500.
    if "\x00" in user or "\x00" in secret:
        raise login.AuthFailed("Malformed Basic credentials.")
    return _principal(login.authenticate(user.strip().lower(), secret, remote_ip))


def bearer_api_key(value: str, remote_ip: str | None) -> Principal | None:
    token = value.strip()
    if not token.startswith("API_"):
        return None
    return _principal(login.authenticate_bearer(token, remote_ip))


def bearer_directory(value: str, remote_ip: str | None) -> Principal | None:
    result = login.authenticate_directory_bearer(value.strip(), remote_ip)
    return None if result is None else _principal(result)


# Bearer methods are tried in order until one recognises the token (returns non-None): API
# keys, the active OIDC directory's tokens, then (appended by oauth) our own access tokens.
BEARER_METHODS = [bearer_api_key, bearer_directory]


def bearer(value: str, remote_ip: str | None) -> Principal:
    down = None
    for method in BEARER_METHODS:
        try:
            principal = method(value, remote_ip)
        except login.DirectoryDown as exc:
            # The provider is unreachable: our own tokens still work; if the token is none of
            # ours, the outage is the answer (a temporary failure, not a wrong token).
            down = exc
            continue
        except login.AuthFailed:
            # A later method refused a token it took for its own (ours and the provider's may
            # look alike): the provider could not say, so that is no wrong token either.
            if down is not None:
                raise down from None
            raise
        if principal is not None:
            return principal
    if down is not None:
        raise down
    raise login.AuthFailed("Invalid or expired token.")


SCHEMES = {"basic": basic, "bearer": bearer}


def authenticate_header(header: str | None, remote_ip: str | None, states: dict[str, int] | None = None) -> Principal:
    """Verify an Authorization header and charge the account's request limit. Raises
    login.AuthError (NoCredentials when absent, RateLimited over the limit).

    `states` may hold the current states of STATE_TYPES; the request context's are used
    otherwise. The edge of the HTTP service has already refused a blocked address: the block
    list is checked here only for an address it did not check (a call from outside a request).
    """
    if not header:
        raise NoCredentials("You have to authenticate first.")
    ctx = context.current()
    if security.blocked_after_the_edge(remote_ip):
        raise login.Banned()
    scheme, _, value = header.partition(" ")
    method = SCHEMES.get(scheme.lower())
    if method is None:
        raise login.count_failure(UnsupportedScheme("Unsupported authentication scheme."), remote_ip)
    from_context = states is None
    if from_context:
        states = current_states(*STATE_TYPES)
    # The address is part of the key: a credential's allowedIps must be checked for each client.
    digest = hashlib.sha256(f"{remote_ip or ''}\n{header}".encode("utf-8", "surrogatepass")).hexdigest()
    token = ".".join(str(states[name]) for name in STATE_TYPES)
    key = f"httpauth:{digest}:{token}"
    local = memo.get(_LOCAL, token, dict, ttl=_LOCAL_TTL)
    principal = local.get(digest)
    if principal is None:
        principal = cache.get(key)
    if principal is not None and principal.expires_at is not None and principal.expires_at <= timezone.now():
        cache.delete(key)
        local.pop(digest, None)
        principal = None
    if principal is None:
        try:
            principal = method(value, remote_ip)
        except login.AuthError as exc:
            # Malformed credentials, unknown or expired tokens: every failure counts toward a ban
            # (those of accounts.login are counted there already, with their login name).
            raise login.count_failure(exc, remote_ip) from None
        if from_context and ctx is not None and any(name not in ctx.states for name in STATE_TYPES):
            # This very login moved states (an external directory's account mirrored or brought
            # in line): keyed by the states it read first, the verdict would never be found again.
            moved = current_states(*STATE_TYPES)
            key = f"httpauth:{digest}:{'.'.join(str(moved[name]) for name in STATE_TYPES)}"
        cache.set(key, Principal(**{**principal.__dict__, "extra": {}}), VERDICT_TTL)
    else:
        if digest not in local:
            if len(local) >= _LOCAL_VERDICTS:
                local.clear()
            local[digest] = principal
        # Each request gets its own: Principal.account keeps the request's Account in `extra`.
        principal = _copy(principal)
    charge(principal, remote_ip, ctx)
    return principal


def _copy(principal: Principal) -> Principal:
    # Not copy.copy(): that would go through __getstate__, which joins the permissions.
    fresh = object.__new__(Principal)
    fresh.__dict__.update(principal.__dict__, extra={})
    return fresh


def charge(principal: Principal, remote_ip: str | None, ctx) -> None:
    """The account's share of the HTTP service's limit for authenticated requests, charged
    once per request, when its credentials are verified; the limit is the one the edge put in
    the request context (none outside a request)."""
    limit = ctx.account_limit if ctx is not None else None
    if limit is None or principal.has("unlimitedRequests") or security.is_allowed(remote_ip, ctx.states):
        return
    verdict = ratelimit.hit(f"http-auth:{principal.account_id}", limit[0], limit[1])
    if not verdict.allowed:
        raise login.RateLimited(verdict)
