"""The plug-in point for the collection types that live under /dav/cal and /dav/card.

The DAV layer (this app) owns the protocol: URLs, authentication, the operation permissions,
PROPFIND/PROPPATCH framing, multistatus, `If`/locks, sync-collection paging, ACL parsing, errors.
A store (the calendar app, the contact app) owns its data and answers through one
`CollectionProvider` registered for its service:

    from dav.providers import register
    register(CalendarProvider())          # in the store's AppConfig.ready()

The DAV layer calls the provider only after it has resolved the account segment and the
caller (`dav.access.Caller`) and checked the operation's permission (`davCalGet`, ...); the
provider checks the caller's rights on its own collections through `dav.access.rights()` with
the ACLs it keeps, so every decision is made with the same rules. See docs/dav.md
("Collection providers") for the full contract; the short form:

- `collections(owner, create=True)`: the owner's collections (`Entry` with `collection=True`),
  creating the default one on first use if the store does that and `create` is true (the DAV
  layer passes false when the caller is not a member of the owner);
- `resolve(owner, path, create=True)`: the `Entry` at "collection" or "collection/item", or None;
- `children(owner, entry)`: an entry's items, each with its etag (a Depth 1 listing);
- `get(owner, entry)`: (body bytes, content type) of an item;
- `put(owner, path, body, content_type, if_match, if_none_match)`: (entry, created) or a
  `ProviderError` with the status and precondition to send (412, 403 no-uid-conflict, 507
  quota-not-exceeded...); `If-Match` / `If-None-Match` are evaluated under the store's lock;
- `delete(owner, entry, if_match)`;
- `mkcol(owner, name, props)`: a new collection with its initial properties (extended MKCOL);
- `properties(owner, entry, tags)`: {tag: lxml element or None} for the live properties the
  store knows (calendar-data, supported-calendar-component-set, ...); `set_properties(owner,
  entry, set, remove)` for PROPPATCH, all or nothing;
- `reports(entry)`: the REPORT names (Clark notation) the store answers; `report(owner, entry,
  root, caller)` returns the multistatus element;
- `set_acl(owner, entry, acl)` (optional): store the grants the ACL method parsed, in the
  shape `dav.access` reads (`[{"principal": account id, "rights": [...]}]`);
- `journal_type(owner)`: the journal type whose state is the sync token and ctag of the
  owner's tree (destroyed entries carry their href), and `by_ids(owner, ids)`: the live entries
  of journal object ids, so sync-collection works unchanged;
- `collection_journal_type(owner)` and `collections_by_ids(owner, ids)` (optional): the same for
  the collections themselves, so that a sync of the home reports created and removed ones;
- `item_rows(owner, entry, fields, limit=None, ids=None)` and `item_content_type` (optional):
  the items of a collection (those of these journal ids only, if given) as tuples
  `(name, *fields)` in name order, `fields` among ITEM_FIELDS (the etag as HTTP sends it, the
  size, the last change, the creation), for a store whose items have no dead property, no
  resourcetype of their own, the collection's grants and one content type: a Depth 1 listing
  or a sync-collection writes its members straight from them (`by_ids` then lists a
  collection's items in name order too, so that both write the same);
- `shared_owners(account_ids)` (optional): the accounts with a collection granting something to
  one of these ids (the homes a grantee sees listed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


# The fields of `item_rows`, in the order `children` reads them.
ITEM_FIELDS = ("etag", "size", "modified", "created")


@dataclass
class Entry:
    """A collection or an item of a provider's tree, as the DAV layer sees it."""

    path: str                 # "work" or "work/abc.ics"
    collection: bool
    etag: str = ""
    content_type: str = ""
    size: int = 0
    created_at: datetime | None = None
    modified_at: datetime | None = None
    # Extra resourcetype children (Clark names), e.g. "{urn:ietf:params:xml:ns:caldav}calendar".
    resourcetype: tuple[str, ...] = ()
    dead_props: dict = field(default_factory=dict)
    acl: list = field(default_factory=list)
    key: object = None        # the store's own handle (a model instance, an id)
    # Response headers of GET and PUT beyond ETag (CalDAV's Schedule-Tag, RFC 6638 §3.2.10).
    headers: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A refusal the DAV layer sends as it is: a status, and the precondition element
    (Clark notation) of an RFC 4918 §16 error body when there is one."""

    def __init__(self, status: int, condition: str | None = None, detail: str = "", hrefs=()):
        super().__init__(detail or condition or str(status))
        self.status = status
        self.condition = condition
        # The DAV:href children of the condition (the other resource of a no-uid-conflict).
        self.hrefs = list(hrefs)


@runtime_checkable
class CollectionProvider(Protocol):
    service: str  # "cal" or "card"

    def collections(self, owner, create: bool = True) -> list[Entry]: ...

    def resolve(self, owner, path: str, create: bool = True) -> Entry | None: ...

    def children(self, owner, entry: Entry) -> list[Entry]: ...

    def get(self, owner, entry: Entry) -> tuple[bytes, str]: ...

    def put(self, owner, path: str, body: bytes, content_type: str, if_match: list[str] | None,
            if_none_match: list[str] | None) -> tuple[Entry, bool]: ...

    # Optional: a provider may also define
    #   lookup(owner, path, create=True) -> (entry or None, its collection's entry or None)
    # for a "<collection>/<name>" path, reading the collection once for both; its `put` is then
    # given that collection's entry as `collection=`, so that it need not read it again.

    def delete(self, owner, entry: Entry, if_match: list[str] | None) -> None: ...

    def mkcol(self, owner, name: str, props: dict) -> Entry: ...

    def properties(self, owner, entry: Entry, tags: list[str]) -> dict: ...

    def set_properties(self, owner, entry: Entry, set_: dict, remove: list[str]) -> None: ...

    def reports(self, entry: Entry) -> list[str]: ...

    def report(self, owner, entry: Entry, root, caller): ...

    def journal_type(self, owner) -> str: ...

    def by_ids(self, owner, ids: list[str]) -> list[Entry]: ...


_PROVIDERS: dict[str, CollectionProvider] = {}
SERVICES = ("cal", "card", "itip")


def register(provider: CollectionProvider) -> None:
    if provider.service not in SERVICES:
        raise ValueError(f"A collection provider serves one of {SERVICES}, not {provider.service!r}.")
    if not isinstance(provider, CollectionProvider):
        raise TypeError("The provider does not implement dav.providers.CollectionProvider.")
    _PROVIDERS[provider.service] = provider


def unregister(service: str) -> None:
    _PROVIDERS.pop(service, None)


def provider(service: str) -> CollectionProvider | None:
    return _PROVIDERS.get(service)
