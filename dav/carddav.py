"""CardDAV (RFC 6352): the contact store (`contacts`) as the collection provider of /dav/card.

The DAV layer resolves the account, the caller and the operation's permission; this module
maps the store's books and cards to `Entry`s, the store's refusals to the RFC 6352 error
elements, and answers addressbook-query and addressbook-multiget.

Refusals of a PUT (RFC 6352 §6.3.2.1) are sent with 403 and the CardDAV element, as RFC 4918
§16 and RFC 6352 §1.3 describe preconditions (the reference sends 412; 412 stays for a failed
`If-Match` / `If-None-Match`, which has no body).
"""
from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from django.conf import settings

from contacts import query as cquery
from contacts import services as contacts
from contacts import vcard
from contacts.models import AddressBook, Card
from registry import ids

from . import access
from . import resources as R
from .providers import ITEM_FIELDS, Entry, ProviderError
from .xml import CARDDAV, child, children, d, element, fromstring, sub, tostring

BOOK_TYPE = f"{{{CARDDAV}}}addressbook"
QUERY = f"{{{CARDDAV}}}addressbook-query"
MULTIGET = f"{{{CARDDAV}}}addressbook-multiget"
CONTENT_TYPE = "text/vcard; charset=utf-8"
# What a PUT may declare: vCard's own types, and none (some clients send no Content-Type).
VCARD_TYPES = {"", "text/vcard", "text/x-vcard", "text/directory"}
MAX_MULTIGET_HREFS = 1000


def cr(local: str) -> str:
    return f"{{{CARDDAV}}}{local}"


def _star(tags):
    """The DAV layer passes `*` as ["*"]; the store takes it as the string."""
    if tags is not None and "*" in tags:
        return "*"
    return tags


def _text_prop(tag: str, text: str) -> str:
    el = element(tag)
    el.text = text
    return tostring(el)


def _book_entry(book) -> Entry:
    props = dict(book.properties or {})
    if book.display_name:
        props[d("displayname")] = _text_prop(d("displayname"), book.display_name)
    if book.description:
        props[cr("addressbook-description")] = _text_prop(cr("addressbook-description"), book.description)
    return Entry(book.slug, True, etag=f'"{book.revision}"', created_at=book.created_at,
                 modified_at=book.modified_at, resourcetype=(BOOK_TYPE,), dead_props=props, key=book,
                 acl=list(book.acl or ()))


def _card_entry(slug: str, name: str, etag: str, size: int, modified, created=None, card=None, acl=()) -> Entry:
    # A card has no grants of its own: it carries its book's, which decide who reads it.
    return Entry(f"{slug}/{name}", False, etag=etag, content_type=CONTENT_TYPE, size=size,
                 created_at=created or modified, modified_at=modified, key=card, acl=list(acl or ()))


def _pks(object_ids) -> list[int]:
    """The card keys of the journal's ids (registry.ids)."""
    return [pk for pk in (ids.decode(i) for i in object_ids) if pk is not None]


def _home_href(owner) -> str:
    return R.Resource("card", "home", owner).href


class CardProvider:
    service = "card"

    # --- the tree ------------------------------------------------------------------------
    def collections(self, owner, create: bool = True) -> list[Entry]:
        return [_book_entry(b) for b in contacts.books(owner.pk, create=create)]

    def resolve(self, owner, path: str, create: bool = True) -> Entry | None:
        slug, _, name = path.partition("/")
        try:
            book = contacts.get_book(owner.pk, slug, create=create)
        except contacts.NotFound:
            return None
        if not name:
            return _book_entry(book)
        if "/" in name:
            return None
        try:
            card = contacts.get_card(book, name)
        except contacts.NotFound:
            return None
        return _card_entry(book.slug, card.name, card.etag, card.size, card.modified_at, card.created_at, card,
                           book.acl)

    def lookup(self, owner, path: str, create: bool = True) -> tuple[Entry | None, Entry | None]:
        """(the card at "<book>/<name>", or None; its book's entry, or None), from one read of
        the book."""
        slug, _, name = path.partition("/")
        try:
            book = contacts.get_book(owner.pk, slug, create=create)
        except contacts.NotFound:
            return None, None
        try:
            card = contacts.get_card(book, name)
        except contacts.NotFound:
            return None, _book_entry(book)
        return (_card_entry(book.slug, card.name, card.etag, card.size, card.modified_at, card.created_at, card,
                            book.acl), _book_entry(book))

    def children(self, owner, entry: Entry) -> list[Entry]:
        book = entry.key
        return [_card_entry(book.slug, name, etag, size, modified, created, acl=book.acl)
                for name, etag, size, modified, created in contacts.card_rows(book, ITEM_FIELDS)]

    # A card has no dead property, no resourcetype of its own and its book's grants: a listing
    # writes its members from these rows (dav.views).
    item_content_type = CONTENT_TYPE

    def item_rows(self, owner, entry: Entry, fields, limit: int | None = None, ids=None) -> list[tuple]:
        if not entry.collection:
            return []
        return contacts.card_rows(entry.key, fields, limit, pks=None if ids is None else _pks(ids))

    def by_ids(self, owner, object_ids: list[str]) -> list[Entry]:
        pks = _pks(object_ids)
        cards = (Card.objects.filter(pk__in=pks, book__account_id=owner.pk).select_related("book")
                 .defer("data").order_by("book__slug", "name"))
        return [_card_entry(c.book.slug, c.name, c.etag, c.size, c.modified_at, c.created_at, acl=c.book.acl)
                for c in cards]

    # --- sharing -------------------------------------------------------------------------
    def set_acl(self, owner, entry: Entry, acl: list) -> None:
        if not entry.collection:
            raise ProviderError(403, d("not-supported-privilege"))
        contacts.set_acl(entry.key, acl)

    def shared_owners(self, account_ids) -> set[int]:
        return contacts.shared_owners(account_ids)

    def collection_journal_type(self, owner) -> str:
        return contacts.BOOK

    def collections_by_ids(self, owner, object_ids: list[str]) -> list[Entry]:
        pks = _pks(object_ids)
        return [_book_entry(b) for b in AddressBook.objects.filter(pk__in=pks, account_id=owner.pk).order_by("slug")]

    def journal_type(self, owner) -> str:
        return contacts.CARD

    # --- items ---------------------------------------------------------------------------
    def _card(self, owner, entry: Entry):
        if isinstance(entry.key, Card):
            return entry.key
        slug, _, name = entry.path.partition("/")
        try:
            return contacts.get_card(contacts.get_book(owner.pk, slug), name)
        except contacts.NotFound:
            raise ProviderError(404) from None

    def get(self, owner, entry: Entry) -> tuple[bytes, str]:
        return self._card(owner, entry).data.encode("utf-8", "surrogatepass"), CONTENT_TYPE

    def negotiate(self, owner, entry: Entry, accept: str | None) -> tuple[bytes, str]:
        """GET with `Accept: text/vcard; version=3.0`: the card converted (RFC 6352 §10.3)."""
        card = self._card(owner, entry)
        version = vcard.accepted_version(accept)
        try:
            text = contacts.card_text(card, version=version)
        except contacts.Precondition:
            text = card.data
        content_type = CONTENT_TYPE if version is None else f"text/vcard; charset=utf-8; version={version}"
        return text.encode("utf-8", "surrogatepass"), content_type

    def put(self, owner, path, body, content_type, if_match, if_none_match, collection: Entry | None = None):
        slug, _, name = path.partition("/")
        if not name or "/" in name:
            raise ProviderError(409)
        media = (content_type or "").split(";")[0].strip().lower()
        if media not in VCARD_TYPES:
            raise ProviderError(403, cr("supported-address-data"))
        if collection is not None and collection.path == slug:
            book = collection.key
        else:
            try:
                book = contacts.get_book(owner.pk, slug)
            except contacts.NotFound:
                raise ProviderError(409) from None
        try:
            result = contacts.put_card(book, name, body, if_match=_star(if_match),
                                       if_none_match=_star(if_none_match))
        except contacts.Precondition as exc:
            hrefs = ([_home_href(owner) + quote(contacts.card_href(book, exc.href), safe="/-._~!$&'()*+,;=:@")]
                     if exc.href else [])
            raise ProviderError(403, cr(exc.condition), hrefs=hrefs) from None
        except contacts.PreconditionFailed:
            raise ProviderError(412) from None
        except contacts.QuotaExceeded:
            raise ProviderError(507, d("quota-not-exceeded")) from None
        except contacts.Invalid:
            raise ProviderError(400) from None
        except contacts.NotFound:
            raise ProviderError(409) from None
        card = result.card
        return _card_entry(book.slug, card.name, card.etag, card.size, card.modified_at, card.created_at,
                           card), result.created

    def delete(self, owner, entry: Entry, if_match) -> None:
        try:
            if entry.collection:
                contacts.delete_book(entry.key)
                return
            slug, _, name = entry.path.partition("/")
            contacts.delete_card(contacts.get_book(owner.pk, slug), name, if_match=_star(if_match))
        except contacts.PreconditionFailed:
            raise ProviderError(412) from None
        except contacts.NotFound:
            raise ProviderError(404) from None

    # --- collections ---------------------------------------------------------------------
    def copy_move(self, owner, entry: Entry, dest_path: str, overwrite: bool, copy: bool) -> bool:
        """COPY/MOVE of a card into a book of the same owner; True when it was created."""
        slug, _, name = entry.path.partition("/")
        target_slug, _, target_name = dest_path.partition("/")
        if not target_name or "/" in target_name:
            raise ProviderError(409)
        try:
            book = contacts.get_book(owner.pk, slug, create=False)
            target = contacts.get_book(owner.pk, target_slug, create=False)
        except contacts.NotFound:
            raise ProviderError(409) from None
        try:
            return contacts.move_card(book, name, target, target_name, overwrite=overwrite, copy=copy).created
        except contacts.Precondition as exc:
            hrefs = ([_home_href(owner) + quote(contacts.card_href(target, exc.href), safe="/-._~!$&'()*+,;=:@")]
                     if exc.href else [])
            raise ProviderError(403, cr(exc.condition), hrefs=hrefs) from None
        except contacts.PreconditionFailed:
            raise ProviderError(412) from None
        except contacts.Invalid:
            raise ProviderError(403) from None
        except contacts.NotFound:
            raise ProviderError(404) from None

    def mkcol(self, owner, name: str, props: dict) -> Entry:
        props = dict(props)
        resourcetype = props.pop(d("resourcetype"), None)
        if resourcetype is not None:
            kinds = {c.tag for c in children(fromstring(resourcetype))}
            if BOOK_TYPE not in kinds or not kinds <= {d("collection"), BOOK_TYPE}:
                raise ProviderError(403, d("valid-resourcetype"))
        display_name, description = self._split_props(props)
        try:
            book = contacts.create_book(owner.pk, name, display_name=display_name or "",
                                        description=description or "", properties=props)
        except contacts.Exists:
            raise ProviderError(405) from None
        except contacts.LimitReached:
            raise ProviderError(403, d("resource-must-be-null")) from None
        except contacts.Invalid:
            raise ProviderError(400) from None
        except contacts.ContactsError:
            raise ProviderError(409) from None
        return _book_entry(book)

    @staticmethod
    def _split_props(props: dict) -> tuple[str | None, str | None]:
        """Pop displayname and addressbook-description (columns of the book) from dead ones."""
        display = props.pop(d("displayname"), None)
        description = props.pop(cr("addressbook-description"), None)
        text = (lambda raw: None if raw is None else "".join(fromstring(raw).itertext()))
        return text(display), text(description)

    def set_properties(self, owner, entry: Entry, set_: dict, remove: list[str]) -> None:
        if not entry.collection:
            raise ProviderError(403, d("cannot-modify-protected-property"))
        book = entry.key
        props = dict(book.properties or {})
        for tag in remove:
            props.pop(tag, None)
        set_ = dict(set_)
        display, description = self._split_props(set_)
        props.update(set_)
        changes = {"properties": props}
        if display is not None:
            changes["display_name"] = display
        elif d("displayname") in remove:
            changes["display_name"] = ""
        if description is not None:
            changes["description"] = description
        elif cr("addressbook-description") in remove:
            changes["description"] = ""
        try:
            contacts.update_book(book, **changes)
        except contacts.ContactsError:
            raise ProviderError(409) from None

    def properties(self, owner, entry: Entry, tags: list[str]) -> dict:
        out = {}
        for tag in tags:
            el = element(tag)
            if entry.collection:
                if tag == cr("supported-address-data"):
                    for version in ("4.0", "3.0"):
                        item = sub(el, cr("address-data-type"))
                        item.set("content-type", "text/vcard")
                        item.set("version", version)
                elif tag == cr("max-resource-size"):
                    el.text = str(settings.CONTACTS_MAX_VCARD_SIZE)
                elif tag == cr("addressbook-description"):
                    el.text = entry.key.description or ""
                else:
                    continue
                out[tag] = el
            elif tag == cr("address-data"):
                el.text = self._card(owner, entry).data
                out[tag] = el
        return out

    # --- reports -------------------------------------------------------------------------
    def reports(self, entry: Entry) -> list[str]:
        return [QUERY, MULTIGET] if entry.collection else []

    def report(self, owner, entry: Entry, root, caller):
        prop = child(root, d("prop"))
        tags = [c.tag for c in children(prop)] if prop is not None else [d("getetag")]
        address = next((c for c in children(prop) if c.tag == cr("address-data")), None) if prop is not None else None
        try:
            wanted = cquery.parse_address_data(address)
            if root.tag == QUERY:
                return self._query(owner, entry, root, caller, tags, wanted)
            return self._multiget(owner, entry, root, caller, tags, wanted)
        except cquery.QueryError as exc:
            raise ProviderError(403 if exc.condition else 400, cr(exc.condition) if exc.condition else None) \
                from None
        except contacts.Precondition as exc:
            raise ProviderError(403, cr(exc.condition)) from None

    def _query(self, owner, entry, root, caller, tags, wanted):
        flt_el = child(root, cr("filter"))
        flt = cquery.parse_filter(flt_el) if flt_el is not None else cquery.Filter()
        limit = cquery.parse_limit(child(root, cr("limit")))
        result = cquery.query(entry.key, flt, limit=limit, with_data=True)
        ctx = R.Context(caller)
        member = caller.is_member(owner.pk)
        rights = access.rights(caller, owner.pk, [entry.acl])
        out = element(d("multistatus"))
        for card in result.cards:
            res = R.Resource("card", "item", owner, f"{entry.key.slug}/{card.name}",
                             entry=_card_entry(entry.key.slug, card.name, card.etag, card.size, card.modified_at,
                                               card.created_at, card),
                             member=member, rights=rights, acl_chain=[entry.acl])
            out.append(self._response(res, card, tags, wanted, ctx))
        if result.truncated:
            book_res = R.Resource("card", "collection", owner, entry.key.slug, entry=entry)
            resp = sub(out, d("response"))
            sub(resp, d("href"), book_res.href)
            sub(resp, d("status"), "HTTP/1.1 507 Insufficient Storage")
            sub(sub(resp, d("error")), d("number-of-matches-within-limits"))
        return out

    def _multiget(self, owner, entry, root, caller, tags, wanted):
        ctx = R.Context(caller)
        out = element(d("multistatus"))
        found = [h for h in children(root, d("href"))]
        if len(found) > MAX_MULTIGET_HREFS:
            raise ProviderError(403, d("number-of-matches-within-limits"))
        # The cards of the book the REPORT targets (what clients ask for) are read in one query;
        # any other href is resolved on its own, with the caller's rights on it.
        book = entry.key
        book_res = R.Resource("card", "collection", owner, book.slug, entry=entry)
        prefix = unquote(book_res.href)
        paths = [unquote(urlsplit((h.text or "").strip()).path) for h in found]
        local = contacts.multiget(book, [p[len(prefix):] for p in paths if p.startswith(prefix)])
        member = caller.is_member(owner.pk)
        rights = access.rights(caller, owner.pk, [entry.acl])
        for h, path in zip(found, paths):
            raw = (h.text or "").strip()
            name = path[len(prefix):] if path.startswith(prefix) else None
            if name in local:
                c = local[name]
                res = R.Resource("card", "item", owner, f"{book.slug}/{c.name}",
                                 entry=_card_entry(book.slug, c.name, c.etag, c.size, c.modified_at, c.created_at, c),
                                 member=member, rights=rights, acl_chain=[entry.acl])
                out.append(self._response(res, c, tags, wanted, ctx, href_text=raw))
                continue
            res = None
            if name is not None and name and "/" not in name:
                pass  # a card of this book that does not exist: 404 below
            elif path.startswith("/dav/"):
                try:
                    res = R.locate(path[len("/dav/"):], caller)
                except R.BadPath:
                    res = None
            resp = element(d("response"))
            sub(resp, d("href"), raw)
            if res is None or res.service != "card" or not res.exists or res.owner is None:
                sub(resp, d("status"), "HTTP/1.1 404 Not Found")
            elif not (res.member or access.READ in res.rights):
                sub(resp, d("status"), "HTTP/1.1 403 Forbidden")
            elif res.collection:
                sub(resp, d("status"), "HTTP/1.1 403 Forbidden")
            else:
                resp = self._response(res, self._card(res.owner, res.entry), tags, wanted, ctx, href_text=raw)
            out.append(resp)
        return out

    def _response(self, res, card, tags, wanted, ctx, href_text=None):
        resp = element(d("response"))
        sub(resp, d("href"), href_text or res.href)
        found, missing = [], []
        for tag in tags:
            if tag == cr("address-data"):
                el = element(tag)
                el.text = contacts.card_text(card, version=wanted.version, props=wanted.props)
                found.append(el)
                continue
            el = R.value(res, tag, ctx)
            (found if el is not None else missing).append(el if el is not None else element(tag))
        for els, status in ((found, "HTTP/1.1 200 OK"), (missing, "HTTP/1.1 404 Not Found")):
            if els:
                ps = sub(resp, d("propstat"))
                prop = sub(ps, d("prop"))
                for el in els:
                    prop.append(el)
                sub(ps, d("status"), status)
        return resp
