"""The permission catalogue and the contents of the four built-in roles.

The reference's 660 names are data (data/permissions.txt), in the order of their reference ids.
Every declared object brings its own `sys<Name>Get/Create/Update/Destroy/Query` (registry
declarations): those already in the file keep their reference ids, the others follow in
declaration order, so that a new object needs no line here. The built-in roles are rules over
the whole catalogue, as in the reference, so the two stay consistent when the catalogue grows.
"""
from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from registry import declaration

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
def reference_catalogue() -> tuple[str, ...]:
    """The reference's permission names (data/permissions.txt) in the order of their ids."""
    rows = []
    for line in _DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            ident, name = line.split()
            rows.append((int(ident), name))
    rows.sort()
    return tuple(name for _, name in rows)


# Keyed by the registry's version: recomputed only when a declaration is added.
@lru_cache(maxsize=4)
def _catalogue(_version: int) -> tuple[str, ...]:
    names = list(reference_catalogue())
    seen = set(names)
    for name in declaration.declared_permissions():
        if name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


def catalogue() -> tuple[str, ...]:
    """All permission names: the reference's in id order, then those only declarations bring."""
    return _catalogue(declaration.version())


@lru_cache(maxsize=4)
def _all(_version: int) -> frozenset[str]:
    return frozenset(_catalogue(_version))


def all_permissions() -> frozenset[str]:
    return _all(declaration.version())


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


def builtin_roles() -> dict[str, frozenset[str]]:
    """Description of each built-in role -> its enabled permissions (reference §9.2)."""
    return _builtin_roles(declaration.version())


@lru_cache(maxsize=4)
def _builtin_roles(_version: int) -> dict[str, frozenset[str]]:
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
