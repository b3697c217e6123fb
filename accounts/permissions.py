"""The permission catalogue and the contents of the four built-in roles.

The 660 names are data (data/permissions.txt); the built-in roles are rules over them, as in
the reference, so the two stay consistent when the catalogue grows.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

_DATA = Path(__file__).with_name("data") / "permissions.txt"

# Protocol families: what a mailbox owner does, as opposed to administering the server.
PROTOCOL_PREFIXES = ("jmap", "imap", "pop3", "calendar", "email", "dav", "sieve")
OPS = ("Get", "Create", "Update", "Destroy", "Query")

# Everything an expired-password session keeps: enough to change the password, and mail
# still arrives.
EXPIRED_PASSWORD_PERMISSIONS = frozenset(
    {"authenticate", "authenticateWithAlias", "sysAccountPasswordGet", "sysAccountPasswordUpdate", "emailReceive"}
)


@cache
def catalogue() -> tuple[str, ...]:
    """All permission names in the order of their reference ids."""
    rows = []
    for line in _DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            ident, name = line.split()
            rows.append((int(ident), name))
    rows.sort()
    return tuple(name for _, name in rows)


@cache
def all_permissions() -> frozenset[str]:
    return frozenset(catalogue())


def is_permission(name: str) -> bool:
    return name in all_permissions()


def _ops(prefix: str, ops=OPS) -> list[str]:
    names = all_permissions()
    return [prefix + op for op in ops if prefix + op in names]


def _protocol() -> list[str]:
    return [p for p in catalogue() if p.startswith(PROTOCOL_PREFIXES)]


def _self_service() -> list[str]:
    out = []
    for prefix in ("sysMaskedEmail", "sysArchivedItem", "sysAccountSettings", "sysPublicKey"):
        out += _ops(prefix)
    out += _ops("sysSpamTrainingSample", ("Get", "Update", "Destroy", "Query"))
    return out


@cache
def builtin_roles() -> dict[str, frozenset[str]]:
    """Description of each built-in role -> its enabled permissions (reference §9.2)."""
    user = ["authenticate", "authenticateWithAlias", "interactAi", *_protocol(), *_self_service()]
    for prefix in ("sysAccountPassword", "sysApiKey", "sysAppPassword"):
        user += _ops(prefix)
    group = [*_protocol(), *_self_service()]
    tenant = ["authenticate", "authenticateWithAlias", "interactAi", "fetchAnyBlob", "liveDeliveryTest"]
    for prefix in (
        "sysDomain", "sysDkimSignature", "sysAcmeProvider", "sysAccount", "sysRole",
        "sysOAuthClient", "sysMailingList", "sysDnsServer", "sysQueuedMessage",
    ):
        tenant += _ops(prefix)
    protocol = set(_protocol())
    admin = [p for p in catalogue() if p not in protocol]
    return {
        "User": frozenset(user),
        "Group": frozenset(group),
        "Tenant Administrator": frozenset(tenant),
        "System Administrator": frozenset(admin),
    }


def ordered(names) -> list[str]:
    """Permission names in catalogue order, for stable output."""
    index = {name: i for i, name in enumerate(catalogue())}
    return sorted(names, key=lambda n: index.get(n, len(index)))
