"""The data capabilities the session advertises (RFC 8620 §2): each app that serves a JMAP data
type registers its capability here, with its session-level value, its account-level value and
whether the account is the primary one for it. The session document is built from this table,
so a capability is advertised exactly when something serves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Capability:
    urn: str
    # limits -> the session-level object (RFC 8620 §2 "capabilities"), or None to leave it out.
    session: Callable[[object], dict]
    # (principal, limits) -> the account-level object, or None for a session-only capability.
    account: Callable[[object, object], dict] | None = None
    # The account capability is given when the caller holds this permission (spec/jmap.md §2.3).
    permission: str | None = None
    primary: bool = True


CAPABILITIES: dict[str, Capability] = {}


def register(urn: str, session: Callable[[object], dict] | None = None,
             account: Callable[[object, object], dict] | None = None, permission: str | None = None,
             primary: bool = True) -> Capability:
    CAPABILITIES[urn] = Capability(urn, session or (lambda limits: {}), account, permission, primary)
    return CAPABILITIES[urn]


def session_values(limits) -> dict:
    """Each capability's session value; one whose value is None (not configured) is left out."""
    values = ((urn, cap.session(limits)) for urn, cap in CAPABILITIES.items())
    return {urn: value for urn, value in values if value is not None}


def account_values(principal, limits) -> dict:
    return {urn: cap.account(principal, limits) for urn, cap in CAPABILITIES.items()
            if cap.account is not None and (cap.permission is None or principal.has(cap.permission))}


def primary_for(principal, limits) -> list[str]:
    return [urn for urn, cap in CAPABILITIES.items()
            if cap.primary and cap.account is not None and (cap.permission is None or principal.has(cap.permission))]
