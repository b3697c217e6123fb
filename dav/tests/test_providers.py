"""The plug-in point for the calendar and contact stores: a small in-memory provider registered
for /dav/card shows what the DAV layer does for a store (resolution, permissions, framing,
conditional requests, errors) and what it leaves to it."""
from __future__ import annotations

import hashlib

import pytest
from lxml import etree

from accounts.models import Account

from dav import providers
from dav.providers import Entry, ProviderError

from .helpers import NS, hrefs, prop, xml

BOOK = "{urn:ietf:params:xml:ns:carddav}addressbook"


class MemoryBooks:
    service = "card"

    def __init__(self):
        self.items: dict[tuple[int, str], bytes] = {}
        self.books: dict[tuple[int, str], dict] = {}
        self.acls: dict[tuple[int, str], list] = {}

    def _etag(self, data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'

    def collections(self, owner, create=True):
        self.books.setdefault((owner.pk, "default"), {})
        return [Entry(name, True, etag='"b"', resourcetype=(BOOK,), dead_props=props)
                for (pk, name), props in sorted(self.books.items()) if pk == owner.pk]

    def resolve(self, owner, path, create=True):
        book, _, item = path.partition("/")
        if (owner.pk, book) not in self.books and book != "default":
            return None
        acl = self.acls.get((owner.pk, book), [])
        if not item:
            return Entry(book, True, etag='"b"', resourcetype=(BOOK,), dead_props=self.books.get((owner.pk, book), {}),
                         acl=acl)
        data = self.items.get((owner.pk, path))
        return (Entry(path, False, etag=self._etag(data), content_type="text/vcard", size=len(data), acl=acl)
                if data else None)

    def children(self, owner, entry):
        return [self.resolve(owner, path) for (pk, path) in sorted(self.items)
                if pk == owner.pk and path.startswith(entry.path + "/")]

    def get(self, owner, entry):
        return self.items[(owner.pk, entry.path)], "text/vcard; charset=utf-8"

    def put(self, owner, path, body, content_type, if_match, if_none_match):
        if not body.startswith(b"BEGIN:VCARD"):
            raise ProviderError(403, "{urn:ietf:params:xml:ns:carddav}valid-address-data")
        current = self.items.get((owner.pk, path))
        if if_none_match and current is not None:
            raise ProviderError(412)
        if if_match and (current is None or self._etag(current) not in if_match):
            raise ProviderError(412)
        self.items[(owner.pk, path)] = body
        return self.resolve(owner, path), current is None

    def delete(self, owner, entry, if_match):
        self.items.pop((owner.pk, entry.path), None)

    def mkcol(self, owner, name, props):
        self.books[(owner.pk, name)] = props
        return Entry(name, True, etag='"b"', resourcetype=(BOOK,))

    def properties(self, owner, entry, tags):
        out = {}
        for tag in tags:
            if tag == "{urn:ietf:params:xml:ns:carddav}addressbook-description" and entry.collection:
                el = etree.Element(tag)
                el.text = "Contacts"
                out[tag] = el
        return out

    def set_properties(self, owner, entry, set_, remove):
        self.books[(owner.pk, entry.path)].update(set_)

    def reports(self, entry):
        return []

    def report(self, owner, entry, root, caller):
        raise AssertionError("no reports")

    def journal_type(self, owner):
        return "ContactCard"

    def set_acl(self, owner, entry, acl):
        self.acls[(owner.pk, entry.path)] = acl

    def by_ids(self, owner, ids):
        return [e for e in (self.resolve(owner, i) for i in ids) if e is not None]


@pytest.fixture
def books():
    provider = MemoryBooks()
    before = providers.provider("card")
    providers.register(provider)
    yield provider
    providers.unregister("card")
    if before is not None:
        providers.register(before)


def test_register_refuses_what_is_not_a_provider():
    with pytest.raises(TypeError):
        providers.register(type("Half", (), {"service": "cal"})())
    with pytest.raises(ValueError):
        providers.register(type("Wrong", (MemoryBooks,), {"service": "file"})())


def test_home_lists_the_providers_collections(alice, books):
    home = "/dav/card/alice%40example.org/"
    response = alice.propfind(home, ["D:resourcetype", "B:addressbook-description", "D:sync-token"], depth="1")
    assert response.status_code == 207
    assert hrefs(response) == [home, home + "default/"]
    assert prop(response, home + "default/", "D:resourcetype").find("B:addressbook", NS) is not None
    assert prop(response, home + "default/", "B:addressbook-description").text == "Contacts"


def test_items_through_the_dav_layer(alice, bob, books):
    item = "/dav/card/alice%40example.org/default/jane.vcf"
    card = b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Jane\r\nEND:VCARD\r\n"
    created = alice.put(item, card, "text/vcard", If_None_Match="*")
    assert created.status_code == 201 and created["ETag"]
    assert alice.put(item, card, "text/vcard", If_None_Match="*").status_code == 412
    bad = alice.put("/dav/card/alice%40example.org/default/bad.vcf", b"nonsense", "text/vcard")
    assert bad.status_code == 403 and xml(bad).find("B:valid-address-data", NS) is not None
    got = alice.request("GET", item)
    assert got.status_code == 200 and got.content == card and got["ETag"] == created["ETag"]
    assert alice.request("GET", item, If_None_Match=created["ETag"]).status_code == 304
    listing = alice.propfind("/dav/card/alice%40example.org/default/", ["D:getetag"], depth="1")
    assert prop(listing, item, "D:getetag").text == created["ETag"]
    # the other account is stopped by the DAV layer before the store is asked
    assert bob.request("GET", item).status_code == 403
    assert bob.put(item, card, "text/vcard").status_code == 403
    assert alice.request("DELETE", item).status_code == 204
    assert alice.request("GET", item).status_code == 404


def test_extended_mkcol_creates_a_collection(alice, books):
    body = ('<D:mkcol xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
            '<D:collection/><B:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>')
    assert alice.request("MKCOL", "/dav/card/alice%40example.org/team/", body).status_code == 201
    owner = Account.objects.get(email_address="alice@example.org")
    assert "team" in [e.path for e in books.collections(owner)]


def test_initial_sync_of_a_provider_collection_pages(alice, books):
    book = "/dav/card/alice%40example.org/default/"
    for n in range(3):
        alice.put(f"{book}{n}.vcf", f"BEGIN:VCARD\r\nFN:{n}\r\nEND:VCARD\r\n".encode(), "text/vcard")
    body = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
            '<D:limit><D:nresults>2</D:nresults></D:limit><D:prop><D:getetag/></D:prop></D:sync-collection>')
    first = alice.report(book, body.format(""))
    assert first.status_code == 207
    assert hrefs(first) == [book + "0.vcf", book + "1.vcf", book]
    token = xml(first).findtext("D:sync-token", namespaces=NS)
    second = alice.report(book, body.format(token))
    assert hrefs(second) == [book + "2.vcf"]
    assert alice.report(book, body.format("urn:stalwart:davsync:0:abc")).status_code == 403


def test_acl_on_a_provider_collection_shares_it(alice, bob, books):
    book = "/dav/card/alice%40example.org/default/"
    card = b"BEGIN:VCARD\r\nFN:Jane\r\nEND:VCARD\r\n"
    alice.put(book + "jane.vcf", card, "text/vcard")
    assert bob.request("GET", book + "jane.vcf").status_code == 403
    grant = ('<D:acl xmlns:D="DAV:"><D:ace><D:principal><D:href>/dav/pal/bob%40example.org/</D:href></D:principal>'
             "<D:grant><D:privilege><D:read/></D:privilege></D:grant></D:ace></D:acl>")
    assert bob.request("ACL", book, grant).status_code == 403
    assert alice.request("ACL", book + "jane.vcf", grant).status_code == 403
    assert alice.request("ACL", book, grant).status_code == 200
    assert bob.request("GET", book + "jane.vcf").status_code == 200
    assert bob.put(book + "jane.vcf", card, "text/vcard").status_code == 403
