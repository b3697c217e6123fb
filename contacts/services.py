"""The contact store's services: every write to address books and cards goes through here, with
its journal entries in the same transaction. It knows no protocol: the DAV layer maps the
refusals below to HTTP (`Precondition.condition` is the CardDAV element of the error body).

    book = default_book(account_id)                     # created on first use
    result = put_card(book, "a.vcf", data, if_none_match="*")
    text = card_text(result.card, version="3.0")        # RFC 6352 §10.3 conversion
    delete_card(book, "a.vcf", if_match=result.card.etag)
    got = changes(book, since_state, 500)               # sync: cards changed, names removed

Journal types: "AddressBook" (object id the book's JMAP id, href "<slug>/") and "ContactCard"
(the card's JMAP id, href "<slug>/<name>"). Hrefs are relative to the account's address-book
home: the DAV layer puts "/dav/card/<account>/" before them. A card never changes book: a move
is a new card (a new id) and a tombstone, so a sync of the old book learns it went away.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Sum

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal
from registry import ids

from . import vcard
from .models import AddressBook, Card, CardProperty

BOOK, CARD = "AddressBook", "ContactCard"
MAX_NAME = 255
MAX_PROPERTIES_SIZE = 65_536
_UNSET = object()


class ContactsError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(ContactsError):
    """No such address book or card (in this account)."""


class Invalid(ContactsError):
    """A malformed argument: a name with "/", a NUL, too long (HTTP 400)."""


class Exists(ContactsError):
    """An address book of that name exists already (MKCOL: 405)."""


class LimitReached(ContactsError):
    """The account has as many address books as it may (CONTACTS_MAX_BOOKS)."""


class PreconditionFailed(ContactsError):
    """If-Match / If-None-Match did not hold (HTTP 412, no body)."""


class Precondition(ContactsError):
    """A CardDAV precondition of RFC 6352 §6.3.2.1 did not hold: `condition` is the element in
    the CardDAV namespace (no-uid-conflict, valid-address-data, supported-address-data,
    max-resource-size); `href` the conflicting card's name in the book, for no-uid-conflict."""

    def __init__(self, condition: str, message: str, href: str | None = None):
        super().__init__(message)
        self.condition, self.href = condition, href


class QuotaExceeded(ContactsError):
    """The card would take the account past its disk quota (DAV:quota-not-exceeded, 507)."""


class SyncStateInvalid(ContactsError):
    """A sync state this server never gave out, or whose changes are no longer kept."""


@dataclass
class PutResult:
    card: Card
    created: bool
    changed: bool = True


@dataclass
class BookChanges:
    new_state: str
    has_more: bool
    cards: list[Card] = field(default_factory=list)  # created or updated, without their data
    removed: list[str] = field(default_factory=list)  # names of cards gone from the book


# --- names ---------------------------------------------------------------------------------
def check_name(name, what: str = "name") -> str:
    """A book's slug or a card's name: one path segment as the client sent it."""
    if (not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or name in (".", "..") or "/" in name
            or any(ord(c) < 0x20 or ord(c) == 0x7f for c in name)):
        raise Invalid(f"A {what} is one path segment of 1 to {MAX_NAME} characters, without control characters.")
    return name


def book_href(book: AddressBook) -> str:
    return f"{book.slug}/"


def card_href(book: AddressBook, name: str) -> str:
    return f"{book.slug}/{name}"


def book_id(book: AddressBook) -> str:
    return ids.encode(book.pk)


def card_id(card: Card) -> str:
    return ids.encode(card.pk)


# --- address books -------------------------------------------------------------------------
def books(account_id: int, *, create: bool = True) -> list[AddressBook]:
    """The account's address books, by slug; the default one is created when there is none, if
    `create` (a lookup on behalf of another account never writes to this one)."""
    found = list(AddressBook.objects.filter(account_id=account_id).order_by("slug"))
    if not found and create and settings.CONTACTS_DEFAULT_SLUG:
        found = [default_book(account_id)]
    return found


def default_book(account_id: int) -> AddressBook:
    """The account's default address book (CONTACTS_DEFAULT_SLUG), created on first use."""
    slug = settings.CONTACTS_DEFAULT_SLUG
    book = AddressBook.objects.filter(account_id=account_id, slug=slug).first()
    if book is not None:
        return book
    email = Account.objects.filter(pk=account_id).values_list("email_address", flat=True).first()
    if email is None:
        raise NotFound("No such account.")
    name = f"{settings.CONTACTS_DEFAULT_DISPLAY_NAME} ({email})"[:255]
    try:
        return create_book(account_id, slug, display_name=name)
    except (Exists, IntegrityError):
        # Created meanwhile by a concurrent first use.
        return AddressBook.objects.get(account_id=account_id, slug=slug)


def get_book(account_id: int, slug: str, *, create: bool = True) -> AddressBook:
    if not isinstance(slug, str) or not 0 < len(slug) <= MAX_NAME or "\0" in slug:
        raise NotFound("No such address book.")
    book = AddressBook.objects.filter(account_id=account_id, slug=slug).first()
    if book is None:
        if create and slug == settings.CONTACTS_DEFAULT_SLUG and not AddressBook.objects.filter(account_id=account_id).exists():
            return default_book(account_id)
        raise NotFound("No such address book.")
    return book


def create_book(account_id: int, slug: str, *, display_name: str = "", description: str = "",
                properties: dict | None = None) -> AddressBook:
    check_name(slug, "address book name")
    display_name, description = _text(display_name, 255, "display name"), _text(description, 10_000, "description")
    with transaction.atomic():
        # The account's row lock serialises creations, so the count below cannot be overtaken.
        if not Account.objects.select_for_update().filter(pk=account_id).exists():
            raise NotFound("No such account.")
        if AddressBook.objects.filter(account_id=account_id, slug=slug).exists():
            raise Exists("An address book of that name exists already.")
        if AddressBook.objects.filter(account_id=account_id).count() >= settings.CONTACTS_MAX_BOOKS:
            raise LimitReached(f"An account has at most {settings.CONTACTS_MAX_BOOKS} address books.")
        book = AddressBook.objects.create(account_id=account_id, slug=slug, display_name=display_name,
                                          description=description, properties=_properties(properties or {}))
        journal.record(account_id, BOOK, created={book_id(book): book_href(book)})
    return book


def update_book(book: AddressBook, *, display_name=_UNSET, description=_UNSET, properties=_UNSET) -> AddressBook:
    """Change a book's display name, description or dead properties (a whole new mapping)."""
    fields = ["revision", "modified_at"]
    if display_name is not _UNSET:
        book.display_name = _text(display_name, 255, "display name")
        fields.append("display_name")
    if description is not _UNSET:
        book.description = _text(description, 10_000, "description")
        fields.append("description")
    if properties is not _UNSET:
        book.properties = _properties(properties)
        fields.append("properties")
    with transaction.atomic():
        if not AddressBook.objects.filter(pk=book.pk).update(revision=F("revision") + 1):
            raise NotFound("No such address book.")
        book.revision = AddressBook.objects.filter(pk=book.pk).values_list("revision", flat=True).get()
        book.save(update_fields=fields)
        journal.record(book.account_id, BOOK, updated={book_id(book): book_href(book)})
    return book


def set_acl(book: AddressBook, acl: list) -> AddressBook:
    """Replace the book's grants to other accounts (already checked by the DAV layer)."""
    with transaction.atomic():
        if not AddressBook.objects.filter(pk=book.pk).update(revision=F("revision") + 1):
            raise NotFound("No such address book.")
        book.revision = AddressBook.objects.filter(pk=book.pk).values_list("revision", flat=True).get()
        book.acl, book.shared = list(acl), bool(acl)
        book.save(update_fields=["acl", "shared", "revision", "modified_at"])
        journal.record(book.account_id, BOOK, updated={book_id(book): book_href(book)})
    return book


def shared_owners(account_ids) -> set[int]:
    """The accounts with an address book granting something to one of `account_ids`."""
    # As for calendars: the few shared books are read and filtered here.
    ids = set(account_ids)
    return {owner for owner, acl in AddressBook.objects.filter(shared=True).values_list("account_id", "acl")
            if any(ace.get("principal") in ids for ace in acl or ())}


def delete_book(book: AddressBook) -> None:
    """The book and its cards, each journaled as destroyed (the tombstones a sync needs)."""
    with transaction.atomic():
        if not AddressBook.objects.filter(pk=book.pk).update(revision=F("revision") + 1):
            raise NotFound("No such address book.")
        cards = {ids.encode(pk): card_href(book, name)
                 for pk, name in Card.objects.filter(book=book).values_list("pk", "name")}
        octets = Card.objects.filter(book=book).aggregate(total=Sum("size"))["total"] or 0
        AddressBook.objects.filter(pk=book.pk).delete()
        changes = {BOOK: journal.Change(destroyed={book_id(book): book_href(book)})}
        if cards:
            _count(book.account_id, -octets, -len(cards))
            changes[CARD] = journal.Change(destroyed=cards)
            blobs.usage_moved([book.account_id])  # the cards' octets are free again
        journal.record_many(book.account_id, changes)


def _properties(value) -> dict:
    """Dead properties: {"{namespace}name": "<xml…/>"}, text without NUL (PostgreSQL's JSON
    refuses it), at most MAX_PROPERTIES_SIZE characters in all (the DAV layer has its own limit)."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\0" not in k and "\0" not in v for k, v in value.items()):
        raise Invalid("Dead properties map names to XML text.")
    if sum(len(k) + len(v) for k, v in value.items()) > MAX_PROPERTIES_SIZE:
        raise Invalid(f"Dead properties hold at most {MAX_PROPERTIES_SIZE} characters in all.")
    return value


def _text(value, limit: int, what: str) -> str:
    if not isinstance(value, str) or len(value) > limit or "\0" in value:
        raise Invalid(f"The {what} is text of at most {limit} characters.")
    return value


# --- cards ---------------------------------------------------------------------------------
def etag_of(text: str) -> str:
    return '"' + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32] + '"'


def _etags(value) -> list[str] | str | None:
    if value is None or value == "*":
        return value
    if isinstance(value, str):
        return [value.strip()]
    return [v.strip() for v in value]


def check_conditions(existing: Card | None, if_match=None, if_none_match=None) -> None:
    """RFC 7232 §3.1-3.2 on one card: `if_match` / `if_none_match` are "*", an entity tag or a
    list of them (None: no header). Strong comparison for If-Match: a weak tag never matches."""
    if_match, if_none_match = _etags(if_match), _etags(if_none_match)
    if if_match == "*" and existing is None:
        raise PreconditionFailed("The card does not exist.")
    if isinstance(if_match, list) and (existing is None or existing.etag not in if_match):
        raise PreconditionFailed("The card's entity tag does not match.")
    if if_none_match == "*" and existing is not None:
        raise PreconditionFailed("The card exists already.")
    if isinstance(if_none_match, list) and existing is not None:
        if existing.etag in [t.removeprefix("W/") for t in if_none_match]:
            raise PreconditionFailed("The card's entity tag matches.")


def validate(data: bytes | str) -> vcard.VCard:
    """The parsed card, or the Precondition a PUT of it breaks (size first: nothing parsed)."""
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > settings.CONTACTS_MAX_VCARD_SIZE:
        raise Precondition("max-resource-size",
                           f"A vCard is at most {settings.CONTACTS_MAX_VCARD_SIZE} octets.")
    try:
        return vcard.parse(data)
    except vcard.Invalid as error:
        raise Precondition(error.condition, error.message) from None


def put_card(book: AddressBook, name: str, data: bytes | str, *, if_match=None, if_none_match=None) -> PutResult:
    """Store a vCard under `name` in `book` (RFC 6352 §6.3.2): created, replaced, or left as it
    is when the same text is stored again (`changed` false: no journal entry, same ETag)."""
    check_name(name, "card name")
    parsed = validate(data)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    uid_key = hashlib.sha256(parsed.uid.encode("utf-8", "surrogatepass")).hexdigest()
    with transaction.atomic():
        # Every writer of the book bumps its revision first: the row lock (PostgreSQL) or the
        # write lock (SQLite) serialises them, so the UID check below cannot be overtaken.
        if not AddressBook.objects.filter(pk=book.pk).update(revision=F("revision") + 1):
            raise NotFound("No such address book.")
        existing = Card.objects.filter(book=book, name=name).first()
        check_conditions(existing, if_match, if_none_match)
        clash = Card.objects.filter(book=book, uid_key=uid_key).exclude(name=name).values_list("name", flat=True)
        clash = clash.first()
        if clash is not None:
            raise Precondition("no-uid-conflict", "Another card of this address book has that UID.", href=clash)
        if existing is not None and existing.uid != parsed.uid:
            raise Precondition("no-uid-conflict", "A card's UID cannot change.", href=name)
        if existing is not None and existing.data == text:
            transaction.set_rollback(True)  # the revision bump: nothing changed
            return PutResult(existing, created=False, changed=False)
        size = len(text.encode("utf-8", "surrogatepass"))
        moved = size - (existing.size if existing is not None else 0)
        try:
            blobs.charge(book.account_id, moved)
        except blobs.OverQuota:
            raise QuotaExceeded("The account's storage quota would be exceeded.") from None
        card = existing or Card(book=book, name=name)
        card.uid, card.uid_key, card.data, card.version = parsed.uid, uid_key, text, parsed.version
        card.kind, card.fn = parsed.kind, parsed.fn[:255]
        card.etag, card.size = etag_of(text), size
        card.save()
        _count(book.account_id, moved, int(existing is None))
        if existing is not None:
            CardProperty.objects.filter(card=card).delete()
        _index(card, parsed)
        href = {card_id(card): card_href(book, name)}
        journal.record(book.account_id, CARD, **({"updated": href} if existing else {"created": href}))
    return PutResult(card, created=existing is None)


def _count(account_id: int, octets: int, items: int) -> None:
    """Move the account's usage row by a write of this transaction (blobs.count_usage): a
    write's quota check reads one row, at any number of cards."""
    def measure():
        row = Card.objects.filter(book__account_id=account_id).aggregate(octets=Sum("size"), items=Count("pk"))
        return row["octets"] or 0, row["items"]

    blobs.count_usage(account_id, CARD, octets, items, measure)


def _index(card: Card, parsed: vcard.VCard) -> None:
    rows = [CardProperty(card=card, book_id=card.book_id, name=name, group=group, value=value,
                         folded=vcard.fold(value), params=params)
            for name, group, value, params in vcard.index_rows(parsed)]
    CardProperty.objects.bulk_create(rows, batch_size=500)


def _may_be_name(name) -> bool:
    """Whether `name` could name a card: anything else is absent without a query (a NUL would
    make PostgreSQL fail the statement)."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and "\0" not in name


def get_card(book: AddressBook, name: str) -> Card:
    card = Card.objects.filter(book=book, name=name).first() if _may_be_name(name) else None
    if card is None:
        raise NotFound("No such card.")
    return card


def card_text(card: Card, *, version: str | None = None, props: list[tuple[str, bool]] | None = None) -> str:
    """The card as a client asked for it: converted to `version` ("3.0", "4.0"; None: as
    stored), restricted to `props` ([(name, novalue)]; None: all). See vcard.render."""
    if version is not None and version not in vcard.VERSIONS:
        raise Precondition("supported-address-data-conversion", f"vCard version {version[:20]!r} is not supported.")
    if (version is None or version == card.version) and props is None:
        return card.data
    return vcard.render(card.data, version=version, props=props)


def delete_card(book: AddressBook, name: str, *, if_match=None) -> None:
    with transaction.atomic():
        if not AddressBook.objects.filter(pk=book.pk).update(revision=F("revision") + 1):
            raise NotFound("No such address book.")
        card = Card.objects.filter(book=book, name=name).first() if _may_be_name(name) else None
        check_conditions(card, if_match)
        if card is None:
            raise NotFound("No such card.")
        destroyed = {card_id(card): card_href(book, name)}
        card.delete()
        blobs.charge(book.account_id, -card.size)
        _count(book.account_id, -card.size, -1)
        journal.record(book.account_id, CARD, destroyed=destroyed)


def move_card(book: AddressBook, name: str, target: AddressBook, target_name: str, *, overwrite: bool = True,
              copy: bool = False) -> PutResult:
    """COPY or MOVE a card to another name or book of the same account (the DAV layer checks
    access). The target is a new card (new id); the UID must be free in the target book."""
    if target.account_id != book.account_id:
        raise Invalid("Cards move only between address books of one account.")
    check_name(target_name, "card name")
    with transaction.atomic():
        source = get_card(book, name)
        existing = Card.objects.filter(book=target, name=target_name).first()
        if existing is not None and existing.pk == source.pk:
            raise Invalid("The source and the destination are the same card.")
        if existing is not None and not overwrite:
            raise PreconditionFailed("The destination exists.")
        if existing is not None:
            delete_card(target, target_name)
        if not copy:
            delete_card(book, name)
        result = put_card(target, target_name, source.data)
    return PutResult(result.card, created=existing is None)


# --- reading -------------------------------------------------------------------------------
def listing(book: AddressBook) -> list[tuple[str, str, int, object]]:
    """(name, etag, size, modified_at) of every card of the book, by name: one query."""
    return list(Card.objects.filter(book=book).order_by("name").values_list("name", "etag", "size", "modified_at"))


# The column a listing reads for each field it may ask (`card_rows`).
ROW_COLUMNS = {"etag": "etag", "size": "size", "modified": "modified_at", "created": "created_at"}


def card_rows(book: AddressBook, fields, limit: int | None = None, pks=None) -> list[tuple]:
    """(name, *fields) of the cards of `book` (those of `pks` only, if given) in name order, at
    most `limit`; fields among ROW_COLUMNS (the etag is stored as HTTP sends it). A listing
    reads only the columns its properties need: one query, no model instance."""
    rows = Card.objects.filter(book=book).order_by("name")
    if pks is not None:
        rows = rows.filter(pk__in=list(pks))
    rows = rows.values_list("name", *(ROW_COLUMNS[f] for f in fields))
    return list(rows[:limit] if limit is not None else rows)


def multiget(book: AddressBook, names, *, with_data: bool = True) -> dict[str, Card]:
    """The cards of `book` among `names` (others are simply absent): one query."""
    wanted = [n for n in dict.fromkeys(names) if _may_be_name(n)]
    rows = Card.objects.filter(book=book, name__in=wanted)
    if not with_data:
        rows = rows.defer("data")
    return {card.name: card for card in rows}


def ctag(book: AddressBook) -> str:
    """The book's collection tag: changes with every write to the book or its cards."""
    return str(AddressBook.objects.filter(pk=book.pk).values_list("revision", flat=True).first() or 0)


def sync_state(account_id: int) -> str:
    """The account's current card state: what `changes()` is given back."""
    return journal.state(account_id, CARD)


def changes(book: AddressBook, since_state: str, max_changes: int = 1000) -> BookChanges:
    """What happened to `book`'s cards after `since_state` (a sync_state()): at most about
    `max_changes` cards; with `has_more` the caller asks again from `new_state`.

    The journal is per account; entries of other books are skipped by their href."""
    prefix = book_href(book)
    state, changed, removed, has_more = since_state, set(), [], False
    page = max(1, min(max_changes, 1000))
    while True:
        try:
            got = journal.changes(book.account_id, CARD, state, page)
        except journal.CannotCalculateChanges as error:
            raise SyncStateInvalid(str(error)) from None
        for object_id in [*got.created, *got.updated]:
            if got.hrefs.get(object_id, "").startswith(prefix):
                changed.add(ids.decode(object_id))
        for object_id in got.destroyed:
            href = got.hrefs.get(object_id, "")
            if href.startswith(prefix):
                removed.append(href[len(prefix):])
                changed.discard(ids.decode(object_id))
        state = got.new_state
        if not got.has_more_changes:
            break
        if len(changed) + len(removed) >= max_changes:
            has_more = True
            break
    cards = list(Card.objects.filter(book=book, pk__in=[pk for pk in changed if pk is not None])
                 .defer("data").order_by("name"))
    present = {card.name for card in cards}
    gone = [name for name in dict.fromkeys(removed) if name not in present]
    return BookChanges(new_state=state, has_more=has_more, cards=cards, removed=gone)
