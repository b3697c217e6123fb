"""Who may do what in the /dav tree, decided in one place for every method.

Two questions, asked in this order by every handler:

1. May the caller use this DAV operation at all? The permission of the catalogue
   (`davFileGet`, `davFilePut`, `davSyncCollection`, ...), from the caller's roles: 403 without
   it. `operation_permission()` names it.
2. May the caller do it to this account's resource? A *member* (the account itself, or a
   member of the group account that owns it) may do everything. Anyone else gets the rights
   the owner granted on the resource or one of its ancestors (union, RFC 3744 inheritance),
   as internal rights (`READ`, `ADD_ITEMS`, ...). The DAV privileges map onto those rights in
   `PRIVILEGES`, as the reference maps them.

An account segment that does not resolve is 404; one the caller has no access to is 403 only
when the resource exists and the caller could learn nothing new from it (the account's
existence is not a secret to a logged-in user of the same server: the reference answers 403
too).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from accounts.http_auth import Principal
from accounts.models import Account, Alias

from .models import FileNode
from .providers import provider

READ = "read"
READ_ITEMS = "readItems"
ADD_ITEMS = "addItems"
MODIFY_ITEMS = "modifyItems"
REMOVE_ITEMS = "removeItems"
MODIFY = "modify"
DELETE = "delete"
SHARE = "share"
ALL_RIGHTS = (READ, READ_ITEMS, ADD_ITEMS, MODIFY_ITEMS, REMOVE_ITEMS, MODIFY, DELETE, SHARE)

# DAV privilege (DAV: namespace) -> internal rights. Privileges mapped to nothing are accepted
# and ignored, as the reference does; `all` is abstract (403 no-abstract).
PRIVILEGES = {
    "read": (READ, READ_ITEMS),
    "write": (MODIFY, DELETE, ADD_ITEMS, MODIFY_ITEMS, REMOVE_ITEMS),
    "write-content": (ADD_ITEMS, MODIFY, MODIFY_ITEMS),
    "write-properties": (MODIFY,),
    "write-acl": (SHARE,),
    "read-acl": (),
    "read-current-user-privilege-set": (),
    "unlock": (),
    "bind": (),
    "unbind": (),
}
MEMBER_PRIVILEGES = ("all", "read", "write", "write-properties", "write-content", "unlock", "read-acl",
                     "read-current-user-privilege-set", "write-acl", "bind", "unbind")

# (service, operation) -> the catalogue's permission.
_PERMISSIONS = {
    "file": {"PROPFIND": "davFilePropFind", "PROPPATCH": "davFilePropPatch", "GET": "davFileGet",
             "HEAD": "davFileGet", "MKCOL": "davFileMkCol", "DELETE": "davFileDelete", "PUT": "davFilePut",
             "POST": "davFilePut", "PATCH": "davFilePut", "COPY": "davFileCopy", "MOVE": "davFileMove",
             "LOCK": "davFileLock", "UNLOCK": "davFileLock", "ACL": "davFileAcl"},
    "cal": {"PROPFIND": "davCalPropFind", "PROPPATCH": "davCalPropPatch", "GET": "davCalGet", "HEAD": "davCalGet",
            "MKCOL": "davCalMkCol", "MKCALENDAR": "davCalMkCol", "DELETE": "davCalDelete", "PUT": "davCalPut",
            "POST": "davCalPut", "PATCH": "davCalPut", "COPY": "davCalCopy", "MOVE": "davCalMove",
            "LOCK": "davCalLock", "UNLOCK": "davCalLock", "ACL": "davCalAcl"},
    "card": {"PROPFIND": "davCardPropFind", "PROPPATCH": "davCardPropPatch", "GET": "davCardGet",
             "HEAD": "davCardGet", "MKCOL": "davCardMkCol", "DELETE": "davCardDelete", "PUT": "davCardPut",
             "POST": "davCardPut", "PATCH": "davCardPut", "COPY": "davCardCopy", "MOVE": "davCardMove",
             "LOCK": "davCardLock", "UNLOCK": "davCardLock", "ACL": "davCardAcl"},
    # Principals are read with the principal permissions; PROPFIND of a principal needs none
    # beyond being authenticated (every client reads its own).
    "pal": {},
}
_REPORTS = {
    "sync-collection": "davSyncCollection",
    "expand-property": "davExpandProperty",
    "principal-property-search": "davPrincipalSearch",
    "principal-search-property-set": "davPrincipalSearchPropSet",
    "principal-match": "davPrincipalMatch",
    "acl-principal-prop-set": "davPrincipalAcl",
}


def operation_permission(service: str, method: str, report: str | None = None) -> str | None:
    if report is not None:
        return _REPORTS.get(report)
    return _PERMISSIONS.get(service, {}).get(method)


def allowed(principal: Principal, service: str, method: str, report: str | None = None) -> bool:
    permission = operation_permission(service, method, report)
    return permission is None or principal.has(permission)


# --- accounts in URLs --------------------------------------------------------------------------
def resolve_account(segment: str) -> Account | None:
    """The account an URL segment names: `_<id>`, its address or one of its aliases (decoded)."""
    name = unquote(segment).strip().lower()
    if not name or len(name) > 320 or "\0" in name:
        return None
    if name.startswith("_") and name[1:].isdigit() and len(name) < 20:
        return Account.objects.filter(pk=int(name[1:]), is_active=True).select_related("domain").first()
    account = Account.objects.filter(email_address=name, is_active=True).select_related("domain").first()
    if account is not None or "@" not in name:
        return account
    local, _, domain = name.rpartition("@")
    alias = (Alias.objects.filter(name=local, domain__name=domain, enabled=True, account__is_active=True)
             .select_related("account__domain").first())
    return alias.account if alias is not None else None


@dataclass
class Caller:
    """The authenticated principal with what the tree needs of it, computed once per request."""

    principal: Principal
    groups: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        groups = frozenset(Account.objects.filter(members__pk=principal.account_id, kind=Account.Kind.GROUP)
                           .values_list("pk", flat=True)) if not principal.recovery else frozenset()
        return cls(principal, groups)

    @property
    def account_id(self) -> int:
        return self.principal.account_id

    @property
    def ids(self) -> frozenset[int]:
        return self.groups | {self.account_id}

    def is_member(self, account_id: int) -> bool:
        return account_id == self.account_id or account_id in self.groups


def granted(caller: Caller, acl_lists) -> frozenset[str]:
    """The rights the caller holds from these ACLs (a resource's and its ancestors')."""
    rights: set[str] = set()
    ids = caller.ids
    for acl in acl_lists:
        for ace in acl or ():
            if ace.get("principal") in ids:
                rights.update(ace.get("rights", ()))
    return frozenset(rights)


def rights(caller: Caller, owner_id: int, acl_lists) -> frozenset[str]:
    if caller.is_member(owner_id):
        return frozenset(ALL_RIGHTS)
    return granted(caller, acl_lists)


def privileges_of(rights_held: frozenset[str], member: bool) -> list[str]:
    """The DAV privileges for current-user-privilege-set (the reference's reverse mapping)."""
    if member:
        return list(MEMBER_PRIVILEGES)
    out: list[str] = []
    if READ in rights_held or READ_ITEMS in rights_held:
        out += ["read", "read-current-user-privilege-set"]
    if MODIFY in rights_held:
        out.append("write-properties")
    if MODIFY_ITEMS in rights_held or ADD_ITEMS in rights_held:
        out.append("write-content")
    if DELETE in rights_held or REMOVE_ITEMS in rights_held:
        out.append("write")
    if SHARE in rights_held:
        out += ["read-acl", "write-acl"]
    return out


def shared_with(caller: Caller, service: str = "file") -> list[int]:
    """Accounts (not the caller's own) whose tree of `service` grants the caller something, and
    the groups the caller belongs to: the homes a Depth 1 listing of /dav/<service>/ shows.
    For /dav/cal and /dav/card the store's provider says which accounts share a collection."""
    owners = set(caller.groups)
    if service == "file":
        # A JSON containment query differs per database: the few nodes that carry any grant
        # (`shared`, indexed) are read and filtered here.
        for owner, acl in (FileNode.objects.filter(shared=True).exclude(account_id=caller.account_id)
                           .values_list("account_id", "acl")):
            if any(ace.get("principal") in caller.ids for ace in acl or ()):
                owners.add(owner)
    else:
        prov = provider(service)
        if prov is not None and hasattr(prov, "shared_owners"):
            owners |= set(prov.shared_owners(caller.ids))
    owners.discard(caller.account_id)
    return sorted(owners)
