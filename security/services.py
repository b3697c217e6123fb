"""Fail-to-ban: counting failures and banning addresses.

Counters live in the cache (shared across workers and nodes when REDIS_URL is set) in fixed
windows, as in the reference: one counter per IP address and one per login name. Passing the
threshold on either bans the IP address: a BlockedIp row is written, so that every worker and
node refuses it.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import context, ids, memo
from registry import services as registry_services
from telemetry.metrics import ban as count_ban

from . import ratelimit
from .models import AllowedIp, BlockedIp, Security

_LIST_TTL = 300  # seconds: a ban or allowance that expires is seen within this time
_LISTS = "security.lists"


def drop_lists() -> None:
    memo.forget(_LISTS)


def _networks(model) -> list:
    now = timezone.now()
    nets = []
    for address, expires in model.objects.values_list("address", "expires_at"):
        if expires is None or expires > now:
            try:
                nets.append(ipaddress.ip_network(address, strict=False))
            except ValueError:
                continue
    return nets


def _lists(known: dict | None = None):
    """Allowed and blocked networks, re-read whenever either list's state changes (`known` may
    carry the states already read for this request)."""
    if known is None or "BlockedIp" not in known or "AllowedIp" not in known:
        # Not given, or a change in this request moved them (registry.context.moved).
        known = context.states("BlockedIp", "AllowedIp")
    token = (known["BlockedIp"], known["AllowedIp"])
    return memo.get(_LISTS, token, lambda: (_networks(AllowedIp), _networks(BlockedIp)), ttl=_LIST_TTL)


class ClientAddress(str):
    """The client address of a request, resolved once by the request pipeline.

    It is a string, so that every view and service that takes an address takes it unchanged,
    and it remembers where it came from: an address read from a proxy's Forwarded or
    X-Forwarded-For header is only what that header says, so it is never exempt as loopback;
    a direct peer listed in SystemSettings.proxyTrustedNetworks is exempt from bans, as in the
    reference. A plain string is a direct peer.
    """

    forwarded: bool = False
    trusted_proxy: bool = False

    @classmethod
    def of(cls, address: str, *, forwarded: bool = False, trusted_proxy: bool = False) -> ClientAddress:
        out = cls(address)
        out.forwarded = forwarded
        out.trusted_proxy = trusted_proxy and not forwarded
        return out


def _ip(address: str | None):
    return _parse_ip(None if address is None else str(address))


# Each request asks about its client's address several times (blocked, allowed, loopback);
# the parsed address is immutable, and a worker sees few distinct ones.
@functools.lru_cache(maxsize=4096)
def _parse_ip(address: str | None):
    try:
        return ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return None


def _in(ip, networks) -> bool:
    return any(ip in net for net in networks)


def is_direct_loopback(address: str | None) -> bool:
    """A client on this machine itself, not one a proxy says is (access rules never refuse it)."""
    ip = _ip(address)
    return ip is not None and ip.is_loopback and not getattr(address, "forwarded", False)


def _exempt(address, ip) -> bool:
    if getattr(address, "forwarded", False):
        return False
    return ip.is_loopback or getattr(address, "trusted_proxy", False)


def is_allowed(address: str | None, known: dict | None = None) -> bool:
    ip = _ip(address)
    if ip is None:
        return False
    if _exempt(address, ip):
        return True
    allowed, _ = _lists(known)
    return _in(ip, allowed)


def is_blocked(address: str | None, known: dict | None = None) -> bool:
    ip = _ip(address)
    if ip is None or _exempt(address, ip):
        return False
    allowed, blocked = _lists(known)
    return _in(ip, blocked) and not _in(ip, allowed)


def blocked_after_the_edge(address: str | None) -> bool:
    """is_blocked() for a check after the edge: the edge refused blocked addresses already, so an
    address it checked in this request (the request context says which) is not looked up again;
    outside a request, or for another address, the lists are read."""
    ctx = context.current()
    if ctx is not None and ctx.checked_address == address:
        return False
    return is_blocked(address)


def _hit(key: str, period_s: int) -> int:
    """The count of authentication failures of `key` in the current window, this one included."""
    return ratelimit.hit(f"ftb:{key}", 0, period_s).count


def record_auth_failure(address: str | None, login: str | None) -> bool:
    """Count one authentication failure toward authBanRate; return True when the address is now
    banned.

    The one function every failed authentication goes through, whatever the endpoint and the
    credential: passwords and app passwords (forms, Basic), API keys and OAuth access tokens
    (Bearer), client secrets, authorization codes, refresh tokens and device codes, the
    Prometheus scraper's credentials. `login` is the name the failure was tried under, if any.
    """
    if address is None or is_allowed(address):
        return False
    settings = Security.load()
    if not settings.auth_ban_rate_count:
        return False
    period = max(1, int(settings.auth_ban_rate_period.total_seconds()))
    over = _hit(f"ip:{address}", period) > settings.auth_ban_rate_count
    if login:
        # A digest: a login name is whatever the client sent (any length, any character).
        name = hashlib.sha256(login.lower().encode("utf-8", "surrogatepass")).hexdigest()
        over = _hit(f"login:{name}", period) > settings.auth_ban_rate_count or over
    if over:
        ban(address, BlockedIp.Reason.AUTH_FAILURE, settings.auth_ban_period)
    return over


def ban(address: str, reason: str, period: timedelta | None, actor="fail-to-ban") -> None:
    expires = timezone.now() + period if period else None
    decl = BlockedIp._declaration
    try:
        with transaction.atomic():
            obj = BlockedIp.objects.create(address=address, reason=reason, expires_at=expires)
            registry_services.record(actor, decl, obj, "create", {}, registry_services.snapshot(decl, obj))
    except IntegrityError:
        with transaction.atomic():
            BlockedIp.objects.filter(address=address).update(expires_at=expires, reason=reason)
            existing = BlockedIp.objects.filter(address=address).values_list("pk", flat=True).first()
            if existing is not None:
                # Logged like any change, so that x:BlockedIp/changes can answer past it.
                registry_services.touch("BlockedIp", ids.encode(existing))
    drop_lists()
    count_ban(reason, address)
