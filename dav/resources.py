"""What a /dav URL names, and the live properties of each kind of resource.

`locate()` turns the path after /dav/ into a `Resource`: a service root (`/dav/file/`), a home
(`/dav/file/<account>/`), a principal (`/dav/pal/<account>/`), a folder or a file, or a
provider's collection or item under /dav/cal and /dav/card; or an unmapped URL in an existing
tree (PUT, MKCOL, LOCK and the destination of COPY/MOVE create there). The caller's rights on
it are computed once, here, from `dav.access`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone as dt_timezone

from django.conf import settings

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal

from . import access, files, locks
from . import providers as provider_registry
from .models import FileNode
from .xml import CALDAV, CARDDAV, CS, DAV, d, element, fromstring, href, sub

SERVICES = ("cal", "card", "file", "pal", "itip")
UNLIMITED = 4294967295


class BadPath(Exception):
    pass


@dataclass
class Resource:
    service: str
    kind: str  # root | home | principals | principal | folder | file | collection | item | unmapped
    owner: Account | None = None
    path: str = ""
    node: FileNode | None = None
    entry: provider_registry.Entry | None = None
    rights: frozenset = frozenset()
    member: bool = False
    acl_chain: list = field(default_factory=list)
    # The entry of the collection a provider's item (or unmapped name) is in, when it was read.
    parent_entry: provider_registry.Entry | None = None

    @property
    def exists(self) -> bool:
        return self.kind != "unmapped"

    @property
    def collection(self) -> bool:
        return self.kind in ("root", "home", "principals", "principal", "folder", "collection")

    @property
    def href(self) -> str:
        if self.kind in ("root", "principals"):
            return f"/dav/{self.service}/"
        seg = files.segment(self.owner.email_address)
        base = f"/dav/{self.service}/{seg}/"
        if not self.path:
            return base
        return base + files.quote_path(self.path) + ("/" if self.collection else "")

    @property
    def etag(self) -> str | None:
        if self.node is not None:
            return self.node.etag
        if self.entry is not None:
            return self.entry.etag or None
        return None


def split(rest: str) -> list[str]:
    parts = rest.split("/")
    if parts and parts[-1] == "":
        parts.pop()
    for part in parts:
        if part in ("", ".", "..") or any(ord(ch) < 32 or ord(ch) == 127 for ch in part) or len(part) > 1024:
            raise BadPath("The path has an empty, dot or control-character segment.")
    return parts


def locate(rest: str, caller: access.Caller) -> Resource | None:
    """The resource at /dav/<rest>, or None when the URL is outside any tree (404)."""
    parts = split(rest)
    if not parts or parts[0] not in SERVICES:
        return None
    service = parts[0]
    if len(parts) == 1:
        return Resource(service, "principals" if service == "pal" else "root")
    owner = access.resolve_account(parts[1])
    if owner is None:
        return None
    member = caller.is_member(owner.pk)
    if service == "pal":
        if len(parts) > 2:
            return None
        return Resource(service, "principal", owner, member=member)
    path = "/".join(parts[2:])
    if service == "file":
        return _file_resource(owner, path, caller, member)
    return _provider_resource(service, owner, path, caller, member)


def _file_resource(owner, path, caller, member) -> Resource:
    if len(path) > files.MAX_PATH or any(len(part) > files.MAX_NAME for part in path.split("/")):
        raise BadPath("The path or one of its names is too long.")
    if not path:
        return Resource("file", "home", owner, member=member,
                        rights=frozenset(access.ALL_RIGHTS) if member else frozenset({access.READ}))
    chain = files.ancestors(owner.pk, path)
    node = files.get(owner.pk, path)
    acl_chain = [a.acl for a in chain] + ([node.acl] if node is not None else [])
    rights = access.rights(caller, owner.pk, acl_chain)
    if node is None:
        return Resource("file", "unmapped", owner, path, member=member, rights=rights, acl_chain=acl_chain)
    return Resource("file", "folder" if node.is_collection else "file", owner, path, node=node, member=member,
                    rights=rights, acl_chain=acl_chain)


def _provider_resource(service, owner, path, caller, member) -> Resource | None:
    if not path:
        return Resource(service, "home", owner, member=member,
                        rights=frozenset(access.ALL_RIGHTS) if member else frozenset({access.READ}))
    prov = provider_registry.provider(service)
    if prov is None:
        return None
    # Only the owner's own requests create its default collection on first use: a lookup by
    # anyone else must not write to the account before its rights are even known.
    parent_entry = None
    if path.count("/") == 1 and hasattr(prov, "lookup"):
        entry, parent_entry = prov.lookup(owner, path, create=member)
    else:
        entry = prov.resolve(owner, path, create=member)
    if entry is None:
        parent = path.rpartition("/")[0]
        if parent_entry is None and parent:
            parent_entry = prov.resolve(owner, parent, create=member)
        acl_chain = [parent_entry.acl] if parent_entry is not None else []
        return Resource(service, "unmapped", owner, path, member=member,
                        rights=access.rights(caller, owner.pk, acl_chain), acl_chain=acl_chain,
                        parent_entry=parent_entry)
    return Resource(service, "collection" if entry.collection else "item", owner, path, entry=entry, member=member,
                    rights=access.rights(caller, owner.pk, [entry.acl]), acl_chain=[entry.acl],
                    parent_entry=parent_entry)


def child_resource(parent: Resource, node: FileNode, caller: access.Caller) -> Resource:
    chain = parent.acl_chain + [node.acl]
    return Resource("file", "folder" if node.is_collection else "file", parent.owner, node.path, node=node,
                    member=parent.member, rights=access.rights(caller, parent.owner.pk, chain), acl_chain=chain)


# --- live properties --------------------------------------------------------------------------
ALLPROP = [d("creationdate"), d("displayname"), d("getetag"), d("getlastmodified"), d("resourcetype"),
           d("lockdiscovery"), d("supportedlock"), d("getcontentlength"), d("getcontenttype")]
COMMON = [*ALLPROP, d("current-user-principal"), d("principal-collection-set"), d("owner"), d("group"),
          d("supported-report-set"), d("current-user-privilege-set"), d("acl"), d("acl-restrictions"),
          d("inherited-acl-set"), d("supported-privilege-set"), d("getcontentlanguage")]
CONTAINER = [d("sync-token"), f"{{{CS}}}getctag", d("quota-available-bytes"), d("quota-used-bytes")]
PRINCIPAL = [d("principal-URL"), d("alternate-URI-set"), d("group-member-set"), d("group-membership"),
             f"{{{CALDAV}}}calendar-home-set", f"{{{CARDDAV}}}addressbook-home-set",
             f"{{{CALDAV}}}calendar-user-address-set", f"{{{CALDAV}}}calendar-user-type",
             f"{{{CALDAV}}}schedule-inbox-URL", f"{{{CALDAV}}}schedule-outbox-URL"]
PROTECTED = set(COMMON + CONTAINER + PRINCIPAL) - {d("displayname"), d("getcontenttype"), d("creationdate"),
                                                    d("getcontentlanguage")}
SYNC = d("sync-collection")
EXPAND = d("expand-property")
REPORTS = {
    "folder": [SYNC, EXPAND, d("acl-principal-prop-set"), d("principal-match")],
    "home": [SYNC, EXPAND],
    "principal": [d("principal-property-search"), d("principal-search-property-set"), EXPAND],
    "principals": [d("principal-property-search"), d("principal-search-property-set")],
    "root": [EXPAND],
    "file": [EXPAND],
}


def names(res: Resource) -> list[str]:
    """The live properties that apply to `res` (what propname lists)."""
    out = list(COMMON)
    if res.collection and res.kind not in ("principals", "root"):
        out += CONTAINER
    if res.kind in ("principal", "home"):
        out += PRINCIPAL
    return out


class Context:
    """What the properties of one request's resources share: the caller, and values computed
    once per request (quota usage, sync states, locks)."""

    def __init__(self, caller: access.Caller):
        self.caller = caller
        self._usage: dict[int, int] = {}
        self._states: dict[tuple, str] = {}
        self._locks: dict[tuple, list] = {}

    def usage(self, account_id: int) -> int:
        if account_id not in self._usage:
            self._usage[account_id] = blobs.usage(account_id)
        return self._usage[account_id]

    def sync_state(self, res: Resource) -> str:
        key = (res.service, res.owner.pk)
        if key not in self._states:
            if res.service == "file":
                self._states[key] = files.state(res.owner.pk)
            else:
                prov = provider_registry.provider(res.service)
                self._states[key] = journal.state(res.owner.pk, prov.journal_type(res.owner)) if prov else "0"
        return self._states[key]

    def locks_covering(self, res: Resource) -> list:
        """The live locks covering `res`, from one read of its tree's locks per request."""
        key = (res.service, res.owner.pk)
        if key not in self._locks:
            self._locks[key] = locks.live(res.service, res.owner.pk)
        return [lock for lock in self._locks[key] if lock.path == res.path
                or (lock.infinite and (lock.path == "" or res.path.startswith(f"{lock.path}/")))]

    def principal_href(self, account: Account) -> str:
        return f"/dav/pal/{files.segment(account.email_address)}/"


def sync_token(state: str) -> str:
    return f"{locks.SYNC_PREFIX}{int(state):x}"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(dt) -> str:
    """getlastmodified's form (RFC 9110 IMF-fixdate): email.utils.format_datetime(…, usegmt=True)
    of the UTC moment, at a third of its cost (a listing writes one per member)."""
    if dt.tzinfo is not dt_timezone.utc:
        dt = dt.astimezone(dt_timezone.utc)
    return (f"{_DAYS[dt.weekday()]}, {dt.day:02d} {_MONTHS[dt.month - 1]} {dt.year:04d} "
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} GMT")


def creation_date(dt) -> str:
    """creationdate's form (RFC 3339, UTC)."""
    return dt.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _privilege(parent, name: str, ns: str = DAV):
    priv = sub(parent, d("privilege"))
    sub(priv, f"{{{ns}}}{name}")
    return priv


# The live properties whose value is text alone, the same for every caller: what a client lists
# a collection's members with. dav/views.py writes them as text for the members of a listing.
TEXT_PROPS = frozenset({d("creationdate"), d("getlastmodified"), d("getetag"), d("getcontentlength"),
                        d("getcontenttype")})


def text_value(res: Resource, tag: str) -> str | None:
    """The text of a TEXT_PROPS property of `res` (dead properties aside), None if it has none."""
    node = res.node
    entry = res.entry
    if tag == d("getetag"):
        return res.etag
    if tag == d("getlastmodified"):
        modified = node.modified_at if node is not None else (entry.modified_at if entry else None)
        return http_date(modified) if modified is not None else None
    if tag == d("creationdate"):
        created = node.created_at if node is not None else (entry.created_at if entry else None)
        return creation_date(created) if created is not None else None
    if tag == d("getcontentlength"):
        if res.kind == "file":
            return str(node.size)
        if res.kind == "item":
            return str(entry.size)
        return None
    if tag == d("getcontenttype"):
        if res.kind == "file":
            return node.content_type or "application/octet-stream"
        if res.kind == "item" and entry.content_type:
            return entry.content_type
        return None
    raise ValueError(tag)


def value(res: Resource, tag: str, ctx: Context):
    """The property element of `tag` on `res` with its value, or None (404 propstat)."""
    el = element(tag)
    entry = res.entry
    owner = res.owner
    if tag == d("resourcetype"):
        if res.collection:
            sub(el, d("collection"))
        if res.kind == "principal":
            sub(el, d("principal"))
        if entry is not None:
            for extra in entry.resourcetype:
                sub(el, extra)
        return el
    if tag in res_dead_names(res):
        return fromstring(dead_props(res)[tag])
    if tag == d("displayname"):
        if res.kind in ("home", "principal") and owner is not None:
            el.text = owner.description or owner.name
            return el
        return None
    if tag in TEXT_PROPS:
        text = text_value(res, tag)
        if text is None:
            return None
        el.text = text
        return el
    if tag == d("supportedlock"):
        if res.kind not in ("folder", "file", "collection", "item"):
            return None
        for scope in ("exclusive", "shared"):
            entry_el = sub(el, d("lockentry"))
            sub(sub(entry_el, d("lockscope")), d(scope))
            sub(sub(entry_el, d("locktype")), d("write"))
        return el
    if tag == d("lockdiscovery"):
        if res.kind not in ("folder", "file", "collection", "item"):
            return None
        for lock in ctx.locks_covering(res):
            el.append(active_lock(lock, res))
        return el
    if tag == d("current-user-principal"):
        el.append(href(ctx.principal_href(ctx.caller.principal.account)) if not ctx.caller.principal.recovery
                  else element(d("unauthenticated")))
        return el
    if tag == d("principal-collection-set"):
        el.append(href("/dav/pal/"))
        return el
    if tag == d("owner"):
        if owner is None:
            return el
        el.append(href(ctx.principal_href(owner)))
        return el
    if tag == d("group"):
        return el
    if tag == d("supported-report-set"):
        reports = REPORTS.get(res.kind, [])
        if entry is not None:
            prov = provider_registry.provider(res.service)
            reports = (prov.reports(entry) if prov else []) + [SYNC, EXPAND]
        for report in reports:
            sub(sub(sub(el, d("supported-report")), d("report")), report)
        return el
    if tag == d("current-user-privilege-set"):
        for name in access.privileges_of(res.rights, res.member):
            _privilege(el, name)
        return el
    if tag == d("acl"):
        if res.kind not in ("folder", "file", "collection", "item") or not (res.member or access.SHARE in res.rights):
            return None
        return acl_element(res, ctx)
    if tag == d("acl-restrictions"):
        sub(el, d("grant-only"))
        sub(el, d("no-invert"))
        return el
    if tag == d("inherited-acl-set"):
        return el
    if tag == d("supported-privilege-set"):
        top = sub(el, d("supported-privilege"))
        _privilege(top, "all")
        sub(top, d("abstract"))
        for name in ("read", "write", "write-properties", "write-content", "read-acl", "write-acl",
                     "read-current-user-privilege-set", "unlock", "bind", "unbind"):
            sp = sub(top, d("supported-privilege"))
            _privilege(sp, name)
        return el
    if tag == f"{{{CS}}}getctag" and entry is not None and entry.collection and entry.etag:
        # A store's collection etag is its own ctag: a client re-reads only what changed.
        el.text = entry.etag
        return el
    if tag in (d("sync-token"), f"{{{CS}}}getctag"):
        if not res.collection or owner is None or res.kind == "principal":
            return None
        state = ctx.sync_state(res)
        el.text = sync_token(state) if tag == d("sync-token") else f'"{state}"'
        return el
    if tag in (d("quota-available-bytes"), d("quota-used-bytes")):
        if not res.collection or owner is None or res.kind == "principal":
            return None
        used = ctx.usage(owner.pk)
        if tag == d("quota-used-bytes"):
            el.text = str(used)
        else:
            quota = owner.max_disk_quota
            el.text = str(max(0, quota - used) if quota is not None else UNLIMITED)
        return el
    if res.kind in ("principal", "home") and owner is not None:
        return _principal_value(res, tag, el, ctx)
    if res.kind == "root" and tag in PRINCIPAL and not ctx.caller.principal.recovery:
        # A client that starts at /dav/cal/ (the well-known redirect) asks the root for its homes.
        return _principal_value(Resource(res.service, "principal", ctx.caller.principal.account), tag, el, ctx)
    if entry is not None:
        prov = provider_registry.provider(res.service)
        if prov is not None:
            return prov.properties(owner, entry, [tag]).get(tag)
    return None


def _principal_value(res: Resource, tag: str, el, ctx: Context):
    owner = res.owner
    seg = files.segment(owner.email_address)
    if tag == d("principal-URL"):
        el.append(href(f"/dav/pal/{seg}/"))
        return el
    if tag in (d("alternate-URI-set"), d("group-member-set"), d("group-membership")):
        return el
    if tag == f"{{{CALDAV}}}calendar-home-set":
        el.append(href(f"/dav/cal/{seg}/"))
        return el
    if tag == f"{{{CARDDAV}}}addressbook-home-set":
        el.append(href(f"/dav/card/{seg}/"))
        return el
    if tag == f"{{{CALDAV}}}calendar-user-address-set":
        el.append(href(f"mailto:{owner.email_address}"))
        return el
    if tag == f"{{{CALDAV}}}calendar-user-type":
        el.text = "INDIVIDUAL" if owner.kind == Account.Kind.USER else "GROUP"
        return el
    if tag == f"{{{CALDAV}}}schedule-inbox-URL":
        el.append(href(f"/dav/itip/{seg}/inbox/"))
        return el
    if tag == f"{{{CALDAV}}}schedule-outbox-URL":
        el.append(href(f"/dav/itip/{seg}/outbox/"))
        return el
    return None


def dead_props(res: Resource) -> dict:
    if res.node is not None:
        return res.node.dead_props or {}
    if res.entry is not None:
        return res.entry.dead_props or {}
    return {}


def res_dead_names(res: Resource) -> dict:
    return dead_props(res)


def active_lock(lock, res: Resource):
    el = element(d("activelock"))
    sub(sub(el, d("locktype")), d("write"))
    sub(sub(el, d("lockscope")), d(lock.scope))
    sub(el, d("depth"), "infinity" if lock.infinite else "0")
    if lock.owner_xml:
        el.append(fromstring(lock.owner_xml))
    sub(el, d("timeout"), f"Second-{lock.timeout}")
    sub(sub(el, d("locktoken")), d("href"), lock.token)
    root = res.href if lock.path == res.path else _lock_root_href(res, lock.path)
    sub(sub(el, d("lockroot")), d("href"), root)
    return el


def _lock_root_href(res: Resource, path: str) -> str:
    seg = files.segment(res.owner.email_address)
    if not path:
        return f"/dav/{res.service}/{seg}/"
    node = files.get(res.owner.pk, path) if res.service == "file" else None
    tail = "/" if node is None or node.is_collection else ""
    return f"/dav/{res.service}/{seg}/" + files.quote_path(path) + tail


def acl_element(res: Resource, ctx: Context):
    el = element(d("acl"))
    acl = (res.node.acl if res.node is not None else (res.entry.acl if res.entry is not None else [])) or []
    ids = [ace.get("principal") for ace in acl]
    accounts = {a.pk: a for a in Account.objects.filter(pk__in=ids)}
    owner_ace = sub(el, d("ace"))
    sub(sub(owner_ace, d("principal")), d("href"), ctx.principal_href(res.owner))
    _privilege(sub(owner_ace, d("grant")), "all")
    sub(owner_ace, d("protected"))
    for ace in acl:
        account = accounts.get(ace.get("principal"))
        if account is None:
            continue
        ace_el = sub(el, d("ace"))
        sub(sub(ace_el, d("principal")), d("href"), ctx.principal_href(account))
        grant = sub(ace_el, d("grant"))
        for name in access.privileges_of(frozenset(ace.get("rights", ())), False):
            _privilege(grant, name)
    return el


def max_results() -> int:
    return settings.DAV_MAX_RESULTS
