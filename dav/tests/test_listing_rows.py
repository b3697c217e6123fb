"""A store's collection listed from its rows (dav/views.py `_RowWriter`, the providers'
`item_rows`): PROPFIND Depth 1 and sync-collection write each item's response from the row of
the columns the properties need, with no Entry or Resource per item. The body must be byte for
byte what the general path (a provider without `item_rows`) writes for the same request: names
that need quoting or escaping, missing properties, Prefer: return=minimal and depth-noroot, a
truncated listing, sync pages; and the number of queries must not grow with the items."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dav.caldav import CalendarProvider
from dav.carddav import CardProvider
from dav.resources import http_date

from .helpers import NS, body, hrefs, xml

CAL = "/dav/cal/alice%40example.org/default/"
BOOK = "/dav/card/alice%40example.org/default/"
PROPS = ["D:getetag", "D:getcontenttype", "D:getcontentlength", "D:resourcetype", "D:displayname",
         "D:creationdate", "D:getlastmodified"]
# As a client sends them: spaces, an ampersand (escaped in XML), UTF-8, sub-delimiters.
NAMES = ["a", "b%20c", "x%26y", "%C3%A9t%C3%A9", "it's(1)@2;v=3", "Z"]


def ics(uid: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
            "DTEND:20260105T110000Z\r\nSUMMARY:M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def vcf(uid: str) -> bytes:
    return f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{uid}\r\nEND:VCARD\r\n".encode()


def fill(dav, collection: str, names, start: int = 0):
    for i, name in enumerate(names, start):
        if collection == CAL:
            r = dav.put(CAL + name + ".ics", ics(f"u{i}"), content_type="text/calendar; charset=utf-8")
        else:
            r = dav.put(BOOK + name + ".vcf", vcf(f"u{i}"), content_type="text/vcard; charset=utf-8")
        assert r.status_code == 201, r.content


@pytest.fixture
def both(alice):
    assert alice.propfind("/dav/cal/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    assert alice.propfind("/dav/card/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    fill(alice, CAL, NAMES)
    fill(alice, BOOK, NAMES)
    return alice


def same(monkeypatch, request):
    """The response to `request`, checked to be the one of providers without rows (an Entry
    and a Resource per item)."""
    fast = request()
    with monkeypatch.context() as m:
        m.delattr(CalendarProvider, "item_rows")
        m.delattr(CardProvider, "item_rows")
        slow = request()
    assert fast.status_code == slow.status_code
    assert body(fast) == body(slow)
    return fast


@pytest.mark.django_db
@pytest.mark.parametrize("collection", [CAL, BOOK])
def test_a_listing_from_rows_is_byte_for_byte_the_general_one(both, monkeypatch, collection):
    for props in (PROPS, ["D:getetag"], ["D:getetag", "D:getetag"], ["D:displayname"],
                  ["D:getlastmodified", "D:resourcetype"], ["D:creationdate", "D:getcontentlength"]):
        for headers in ({}, {"Prefer": "return=minimal"}, {"Prefer": "depth-noroot"},
                        {"Prefer": "return=minimal, depth-noroot"}, {"Brief": "t"}, {"Depth": "infinity"}):
            headers = dict(headers)
            depth = headers.pop("Depth", "1")
            fast = same(monkeypatch, lambda: both.propfind(collection, props, depth=depth, **headers))
            expected = len(NAMES) + (0 if "depth-noroot" in headers.get("Prefer", "") else 1)
            assert len(hrefs(fast)) == expected
    fast = xml(same(monkeypatch, lambda: both.propfind(collection, ["D:getetag"])))
    listed = [r.findtext("D:href", namespaces=NS) for r in fast.findall("D:response", NS)]
    assert any("&" in h for h in listed) and any("%C3%A9" in h for h in listed)
    etags = [e.text for e in fast.findall("D:response/D:propstat/D:prop/D:getetag", NS)]
    assert len(etags) == len(NAMES) + 1 and all(e.startswith('"') and e.endswith('"') for e in etags)
    stamps = xml(same(monkeypatch, lambda: both.propfind(collection, PROPS)))
    assert len(stamps.findall("D:response/D:propstat/D:prop/D:creationdate", NS)) >= len(NAMES)


@pytest.mark.django_db
@pytest.mark.parametrize("collection", [CAL, BOOK])
def test_a_truncated_listing_from_rows_is_the_general_one(both, monkeypatch, settings, collection):
    settings.DAV_MAX_RESULTS = 3
    fast = xml(same(monkeypatch, lambda: both.propfind(collection, ["D:getetag", "D:getcontenttype"])))
    statuses = [r.findtext("D:status", namespaces=NS) for r in fast.findall("D:response", NS)]
    assert statuses[-1] == "HTTP/1.1 507 Insufficient Storage" and len(statuses) == 5


def sync(dav, collection, token="", limit=None, props=("D:getetag",)):
    nresults = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    return dav.report(collection, '<D:sync-collection xmlns:D="DAV:"><D:sync-token>' + token + "</D:sync-token>"
                      "<D:sync-level>1</D:sync-level>" + nresults + "<D:prop>"
                      + "".join(f"<{p}/>" for p in props) + "</D:prop></D:sync-collection>")


@pytest.mark.django_db
@pytest.mark.parametrize("collection", [CAL, BOOK])
def test_sync_collection_from_rows_is_the_general_one(both, monkeypatch, collection):
    for props in (("D:getetag",), tuple(PROPS)):
        same(monkeypatch, lambda: sync(both, collection, props=props))
    # Paged: every page and its cursor the same, every item once.
    token, seen, more = "", [], True
    while more:
        page = xml(same(monkeypatch, lambda: sync(both, collection, token, limit=2)))
        statuses = [r.findtext("D:status", namespaces=NS) for r in page.findall("D:response", NS)]
        seen += [r.findtext("D:href", namespaces=NS) for r in page.findall("D:response", NS)
                 if r.findtext("D:status", namespaces=NS) is None]
        token = page.findtext("D:sync-token", namespaces=NS)
        more = "HTTP/1.1 507 Insufficient Storage" in statuses
        assert len(seen) <= len(NAMES)
    assert len(seen) == len(NAMES) and len(set(seen)) == len(NAMES)
    # Changes since: an item changed, one new, one removed.
    fill(both, collection, ["new%20one"], start=50)
    suffix = ".ics" if collection == CAL else ".vcf"
    assert both.request("DELETE", collection + "a" + suffix).status_code == 204
    changes = xml(same(monkeypatch, lambda: sync(both, collection, token, props=tuple(PROPS))))
    assert len(changes.findall("D:response", NS)) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("collection", [CAL, BOOK])
def test_listings_and_syncs_ask_a_fixed_number_of_queries(alice, collection):
    assert alice.propfind(collection.rsplit("/", 2)[0] + "/", ["D:resourcetype"]).status_code == 207
    counts, done = [], 0
    for total in (5, 40):
        fill(alice, collection, [f"e{i}" for i in range(done, total)], start=done)
        done = total
        requests = (lambda: alice.propfind(collection, ["D:getetag"]), lambda: alice.propfind(collection, PROPS),
                    lambda: sync(alice, collection, props=PROPS))
        sizes = []
        for request in requests:
            with CaptureQueriesContext(connection) as queries:
                r = request()
            assert r.status_code == 207 and len(hrefs(r)) >= total
            sizes.append(len(queries))
        counts.append(sizes)
    assert counts[0] == counts[1], counts


def test_getlastmodified_is_the_email_date_of_the_utc_moment():
    for i in range(400):
        zone = timezone(timedelta(minutes=(i * 37) % 1500 - 750)) if i % 3 else timezone.utc
        moment = datetime(1 + (i * 97) % 9990, 1 + i % 12, 1 + i % 28, i % 24, (i * 7) % 60, (i * 13) % 60,
                          i * 2477 % 1_000_000, tzinfo=zone)
        try:
            expected = format_datetime(moment.astimezone(timezone.utc), usegmt=True)
        except OverflowError:
            continue
        assert http_date(moment) == expected
