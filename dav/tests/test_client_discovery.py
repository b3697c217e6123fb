"""Client discovery sequences replayed against /dav (issue 14): the requests DAVx5 and Apple's
Calendar and Contacts (iOS, macOS) make, in their order and with their property sets
(spec dav.md §4 and its client table), each answer checked for what the client needs to take
the next step: the href chain from the well-known URL to the collections, and the properties
present with the right values and namespaces. Each step uses only what earlier answers gave.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from lxml import etree

from .helpers import body, xml

D, CAL, CARD = "DAV:", "urn:ietf:params:xml:ns:caldav", "urn:ietf:params:xml:ns:carddav"
CS, ICAL = "http://calendarserver.org/ns/", "http://apple.com/ns/ical/"
PREFIXES = {"d": D, "c": CAL, "card": CARD, "cs": CS, "ic": ICAL}

# DAVx5 (DavResourceFinder, then the sync manager): the well-known query, the principal's home
# sets, the home's Depth 1 listing and the collection's change detection.
DAVX5_WELL_KNOWN = ["d:current-user-principal"]
DAVX5_PRINCIPAL = ["d:current-user-principal", "c:calendar-home-set", "c:calendar-user-address-set",
                   "card:addressbook-home-set", "d:group-membership", "d:displayname"]
DAVX5_CAL_HOME = ["d:resourcetype", "d:displayname", "d:current-user-privilege-set", "d:owner",
                  "c:calendar-description", "ic:calendar-color", "c:supported-calendar-component-set",
                  "c:calendar-timezone", "cs:source", "cs:getctag", "d:sync-token"]
DAVX5_CARD_HOME = ["d:resourcetype", "d:displayname", "d:current-user-privilege-set", "d:owner",
                   "card:addressbook-description", "card:supported-address-data", "cs:getctag", "d:sync-token"]
DAVX5_COLLECTION = ["cs:getctag", "d:sync-token", "d:supported-report-set"]

# Apple's Calendar and Contacts (accountsd): what they ask of the root after the redirect, of the
# principal, and of the home (a few of Apple's own properties that we do not have come back 404,
# which they take as "not supported").
APPLE_ROOT = ["d:current-user-principal", "d:principal-URL", "d:resourcetype"]
APPLE_PRINCIPAL = ["d:displayname", "d:principal-URL", "d:principal-collection-set", "c:calendar-home-set",
                   "c:calendar-user-address-set", "c:schedule-inbox-URL", "c:schedule-outbox-URL",
                   "card:addressbook-home-set", "d:supported-report-set", "cs:email-address-set",
                   "cs:notification-URL", "cs:dropbox-home-URL"]
APPLE_CAL_HOME = ["d:add-member", "ic:calendar-color", "ic:calendar-order", "cs:getctag", "d:displayname",
                  "c:supported-calendar-component-set", "d:resourcetype", "d:sync-token", "d:owner",
                  "d:current-user-privilege-set", "c:calendar-description", "c:schedule-calendar-transp",
                  "c:calendar-timezone", "cs:pushkey", "d:quota-available-bytes", "d:quota-used-bytes"]
APPLE_CARD_HOME = ["d:resourcetype", "d:displayname", "cs:getctag", "d:sync-token",
                   "d:current-user-privilege-set", "d:quota-available-bytes", "d:add-member"]

EVENT = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//disc//EN\r\nBEGIN:VEVENT\r\nUID:disc-1\r\n"
         b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n"
         b"SUMMARY:Found\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
CARD3 = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:disc-card\r\nFN:Found Person\r\nN:Person;Found;;;\r\nEND:VCARD\r\n"


def propfind_body(props: list[str]) -> bytes:
    decl = " ".join(f'xmlns:{p}="{ns}"' for p, ns in PREFIXES.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?><d:propfind {decl}><d:prop>'
            + "".join(f"<{p}/>" for p in props) + "</d:prop></d:propfind>").encode()


def clark(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{PREFIXES[prefix]}}}{local}"


class Responses:
    """A multistatus as {href: {property (Clark): (status, element)}}."""

    def __init__(self, response):
        assert response.status_code == 207, (response.status_code, body(response)[:500])
        assert response["Content-Type"].startswith("application/xml"), response["Content-Type"]
        self.by_href: dict[str, dict[str, tuple[int, etree._Element]]] = {}
        for resp in xml(response).findall(f"{{{D}}}response"):
            href = resp.findtext(f"{{{D}}}href")
            props = self.by_href.setdefault(href, {})
            for ps in resp.findall(f"{{{D}}}propstat"):
                status = int(ps.findtext(f"{{{D}}}status").split()[1])
                for el in ps.find(f"{{{D}}}prop"):
                    props[el.tag] = (status, el)

    def found(self, href: str, name: str) -> etree._Element:
        status, el = self.by_href[href][clark(name)]
        assert status == 200, (href, name, status)
        return el

    def missing(self, href: str, name: str) -> bool:
        return self.by_href[href][clark(name)][0] == 404

    def href_of(self, href: str, name: str) -> str:
        return self.found(href, name).findtext(f"{{{D}}}href")

    def answered(self, href: str, names: list[str]) -> None:
        """Every property asked about has an answer (200 or 404), none is dropped or errs."""
        got = self.by_href[href]
        for name in names:
            assert clark(name) in got, (href, name)
            assert got[clark(name)][0] in (200, 404), (href, name, got[clark(name)][0])


def path_of(href: str) -> str:
    return urlsplit(href).path


@pytest.fixture
def jane(client, make_account, builtin_role_rows):
    from .helpers import Dav

    make_account("jane", description="Jane Doe")
    return Dav(client, "jane@example.org")


def well_known(dav, service: str, props: list[str]) -> tuple[str, Responses]:
    """PROPFIND on /.well-known/<service>: 307 to the service root, replayed there (307 keeps the
    method and body, as the clients do)."""
    first = dav.request("PROPFIND", f"/.well-known/{service}", propfind_body(props), Depth="0")
    assert first.status_code == 307, first.status_code
    assert first["Cache-Control"] == "no-cache"
    root = path_of(first["Location"])
    assert root == {"caldav": "/dav/cal", "carddav": "/dav/card"}[service]
    answer = dav.request("PROPFIND", root, propfind_body(props), Depth="0")
    return root, Responses(answer)


def sync(dav, collection: str, token: str = "") -> tuple[str, Responses]:
    report = (f'<?xml version="1.0" encoding="UTF-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}'
              '</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>')
    resp = dav.request("REPORT", collection, report.encode(), Depth="0")
    new_token = xml(resp).findtext(f"{{{D}}}sync-token")
    assert new_token and new_token.startswith("urn:stalwart:davsync:"), body(resp)[-300:]
    return new_token, Responses(resp)


@pytest.mark.django_db
def test_davx5_caldav_and_carddav_discovery_and_first_sync(jane):
    # 1. The well-known URL, asked for the principal.
    root, answer = well_known(jane, "caldav", DAVX5_WELL_KNOWN)
    (root_href,) = answer.by_href
    principal = answer.href_of(root_href, "d:current-user-principal")
    assert principal == "/dav/pal/jane%40example.org/"

    # 2. The principal: both home sets (DAVx5 asks for the CardDAV one on the same principal), the
    # scheduling address, and its own href again.
    answer = Responses(jane.request("PROPFIND", principal, propfind_body(DAVX5_PRINCIPAL), Depth="0"))
    answer.answered(principal, DAVX5_PRINCIPAL)
    cal_home = answer.href_of(principal, "c:calendar-home-set")
    card_home = answer.href_of(principal, "card:addressbook-home-set")
    assert cal_home == "/dav/cal/jane%40example.org/" and card_home == "/dav/card/jane%40example.org/"
    assert answer.href_of(principal, "c:calendar-user-address-set") == "mailto:jane@example.org"
    assert answer.href_of(principal, "d:current-user-principal") == principal

    # 3. The calendar home, Depth 1: the calendars with what DAVx5 shows and decides with.
    answer = Responses(jane.request("PROPFIND", cal_home, propfind_body(DAVX5_CAL_HOME), Depth="1"))
    calendars = [h for h in answer.by_href if h != cal_home]
    assert calendars == [cal_home + "default/"]
    calendar = calendars[0]
    answer.answered(calendar, DAVX5_CAL_HOME)
    types = {el.tag for el in answer.found(calendar, "d:resourcetype")}
    assert types == {f"{{{D}}}collection", f"{{{CAL}}}calendar"}
    assert answer.found(calendar, "d:displayname").text
    comps = {c.get("name") for c in answer.found(calendar, "c:supported-calendar-component-set")}
    assert {"VEVENT", "VTODO"} <= comps
    # Read-write detection: DAVx5 marks a calendar read-only without the write privilege.
    privileges = {p.tag for p in answer.found(calendar, "d:current-user-privilege-set").iter()}
    assert f"{{{D}}}write-content" in privileges or f"{{{D}}}write" in privileges or f"{{{D}}}all" in privileges
    assert answer.href_of(calendar, "d:owner") == principal
    home_types = {el.tag for el in answer.found(cal_home, "d:resourcetype")}
    assert home_types == {f"{{{D}}}collection"}  # the home itself is not taken for a calendar

    # 4. Change detection on the calendar: ctag, sync-token, and sync-collection advertised.
    answer = Responses(jane.request("PROPFIND", calendar, propfind_body(DAVX5_COLLECTION), Depth="0"))
    ctag = answer.found(calendar, "cs:getctag").text
    assert ctag
    reports = {el.tag for el in answer.found(calendar, "d:supported-report-set").iter()}
    assert {f"{{{D}}}sync-collection", f"{{{CAL}}}calendar-multiget"} <= reports

    # 5. An event from elsewhere, then DAVx5's first sync: an initial sync-collection lists it with
    # its etag; the ctag moved; a sync with the new token lists nothing.
    put = jane.put(calendar + "found.ics", EVENT, content_type="text/calendar; charset=utf-8",
                   If_None_Match="*")
    assert put.status_code == 201 and put["ETag"]
    token, answer = sync(jane, calendar)
    assert list(answer.by_href) == [calendar + "found.ics"]
    assert answer.found(calendar + "found.ics", "d:getetag").text == put["ETag"]
    again = Responses(jane.request("PROPFIND", calendar, propfind_body(["cs:getctag"]), Depth="0"))
    assert again.found(calendar, "cs:getctag").text != ctag
    assert sync(jane, calendar, token)[1].by_href == {}

    # 6. The same for CardDAV, from its well-known URL to the default address book.
    root, answer = well_known(jane, "carddav", DAVX5_WELL_KNOWN)
    assert answer.href_of(next(iter(answer.by_href)), "d:current-user-principal") == principal
    answer = Responses(jane.request("PROPFIND", card_home, propfind_body(DAVX5_CARD_HOME), Depth="1"))
    books = [h for h in answer.by_href if h != card_home]
    assert books == [card_home + "default/"]
    book = books[0]
    answer.answered(book, DAVX5_CARD_HOME)
    assert {el.tag for el in answer.found(book, "d:resourcetype")} == {f"{{{D}}}collection", f"{{{CARD}}}addressbook"}
    versions = {el.get("version") for el in answer.found(book, "card:supported-address-data")}
    assert {"3.0", "4.0"} <= versions
    assert jane.put(book + "found.vcf", CARD3, content_type="text/vcard", If_None_Match="*").status_code == 201
    token, answer = sync(jane, book)
    assert list(answer.by_href) == [book + "found.vcf"]


@pytest.mark.django_db
def test_apple_calendar_and_contacts_discovery(jane):
    # 1. accountsd: PROPFIND on the well-known URL, followed to the root, for the principal.
    root, answer = well_known(jane, "caldav", APPLE_ROOT)
    (root_href,) = answer.by_href
    principal = answer.href_of(root_href, "d:current-user-principal")
    assert principal == "/dav/pal/jane%40example.org/"

    # 2. The principal: principal-URL, home sets, the address Apple matches attendees on, and
    # the scheduling inbox and outbox (their absence turns invitations off in Calendar).
    answer = Responses(jane.request("PROPFIND", principal, propfind_body(APPLE_PRINCIPAL), Depth="0"))
    answer.answered(principal, APPLE_PRINCIPAL)
    assert answer.href_of(principal, "d:principal-URL") == principal
    assert answer.href_of(principal, "d:principal-collection-set") == "/dav/pal/"
    addresses = [h.text for h in answer.found(principal, "c:calendar-user-address-set")]
    assert "mailto:jane@example.org" in addresses
    inbox = answer.href_of(principal, "c:schedule-inbox-URL")
    outbox = answer.href_of(principal, "c:schedule-outbox-URL")
    assert inbox and outbox and inbox != outbox
    assert answer.found(principal, "d:displayname").text == "Jane Doe"
    cal_home = answer.href_of(principal, "c:calendar-home-set")
    card_home = answer.href_of(principal, "card:addressbook-home-set")
    for name in ("cs:email-address-set", "cs:notification-URL", "cs:dropbox-home-URL"):
        assert answer.missing(principal, name)  # Apple's own: 404, which it takes as "not supported"

    # The inbox and outbox it was given exist and have their resource types.
    boxes = Responses(jane.request("PROPFIND", inbox, propfind_body(["d:resourcetype"]), Depth="0"))
    assert f"{{{CAL}}}schedule-inbox" in {el.tag for el in boxes.found(inbox, "d:resourcetype")}
    boxes = Responses(jane.request("PROPFIND", outbox, propfind_body(["d:resourcetype"]), Depth="0"))
    assert f"{{{CAL}}}schedule-outbox" in {el.tag for el in boxes.found(outbox, "d:resourcetype")}

    # 3. The calendar home, Depth 1, with Apple's set; then Calendar sets its colour and order
    # (Apple namespace, dead properties kept as sent) and reads them back on the next refresh.
    answer = Responses(jane.request("PROPFIND", cal_home, propfind_body(APPLE_CAL_HOME), Depth="1"))
    calendar = next(h for h in answer.by_href if h != cal_home)
    answer.answered(calendar, APPLE_CAL_HOME)
    comps = {c.get("name") for c in answer.found(calendar, "c:supported-calendar-component-set")}
    assert "VEVENT" in comps
    transp = answer.found(calendar, "c:schedule-calendar-transp")
    assert transp[0].tag in (f"{{{CAL}}}opaque", f"{{{CAL}}}transparent")
    assert answer.found(calendar, "cs:getctag").text
    patch = (f'<?xml version="1.0" encoding="UTF-8"?><d:propertyupdate xmlns:d="DAV:" xmlns:ic="{ICAL}"><d:set>'
             '<d:prop><ic:calendar-color symbolic-color="custom">#FF2968FF</ic:calendar-color>'
             '<ic:calendar-order>2</ic:calendar-order></d:prop></d:set></d:propertyupdate>').encode()
    patched = Responses(jane.request("PROPPATCH", calendar, patch))
    assert patched.found(calendar, "ic:calendar-color") is not None
    answer = Responses(jane.request("PROPFIND", cal_home, propfind_body(APPLE_CAL_HOME), Depth="1"))
    color = answer.found(calendar, "ic:calendar-color")
    assert color.text == "#FF2968FF" and color.tag == f"{{{ICAL}}}calendar-color"
    assert answer.found(calendar, "ic:calendar-order").text == "2"
    ctag = answer.found(calendar, "cs:getctag").text

    # 4. Change detection: getctag first, sync-collection when it moved.
    token, _ = sync(jane, calendar)
    assert jane.put(calendar + "apple.ics", EVENT, content_type="text/calendar",
                    If_None_Match="*").status_code == 201
    answer = Responses(jane.request("PROPFIND", calendar, propfind_body(["cs:getctag", "d:sync-token"]), Depth="0"))
    assert answer.found(calendar, "cs:getctag").text != ctag
    assert answer.found(calendar, "d:sync-token").text != token
    assert list(sync(jane, calendar, token)[1].by_href) == [calendar + "apple.ics"]

    # 5. Contacts: its well-known URL to the same principal, the address-book home, a vCard 3.0
    # (what Apple writes), and the card back as 3.0 when asked for it.
    root, answer = well_known(jane, "carddav", APPLE_ROOT)
    assert answer.href_of(next(iter(answer.by_href)), "d:current-user-principal") == principal
    answer = Responses(jane.request("PROPFIND", card_home, propfind_body(APPLE_CARD_HOME), Depth="1"))
    book = next(h for h in answer.by_href if h != card_home)
    answer.answered(book, APPLE_CARD_HOME)
    assert answer.found(book, "cs:getctag").text
    assert jane.put(book + "apple.vcf", CARD3, content_type="text/vcard", If_None_Match="*").status_code == 201
    got = jane.request("GET", book + "apple.vcf", Accept="text/vcard; version=3.0")
    assert got.status_code == 200 and b"VERSION:3.0" in body(got)


@pytest.mark.django_db
def test_the_home_url_alone_is_enough(jane):
    """Clients set up with the calendar home's URL by hand (Apple's "advanced" setup) find the
    principal and the home sets on the home itself."""
    home = "/dav/cal/jane%40example.org/"
    answer = Responses(jane.request("PROPFIND", home, propfind_body(
        ["d:current-user-principal", "c:calendar-home-set", "c:calendar-user-address-set"]), Depth="0"))
    assert answer.href_of(home, "d:current-user-principal") == "/dav/pal/jane%40example.org/"
    assert answer.href_of(home, "c:calendar-home-set") == home


@pytest.mark.django_db
def test_discovery_without_credentials_is_challenged(client, jane):
    """Every step past the redirect needs the login: 401 with Basic offered (what the clients
    prompt on), never a listing."""
    first = client.generic("PROPFIND", "/.well-known/caldav", propfind_body(DAVX5_WELL_KNOWN), HTTP_DEPTH="0")
    assert first.status_code == 307
    for path in (path_of(first["Location"]), "/dav/pal/jane%40example.org/", "/dav/cal/jane%40example.org/"):
        resp = client.generic("PROPFIND", path, propfind_body(DAVX5_PRINCIPAL), HTTP_DEPTH="0")
        assert resp.status_code == 401
        assert 'Basic realm="Stalwart Server"' in resp["WWW-Authenticate"]
        assert b"jane" not in body(resp)


@pytest.mark.django_db
def test_autoconfig_and_pacc_name_the_caldav_and_carddav_servers_by_default(client):
    """With the services as installed (none configured by hand), Thunderbird's autoconfig and
    the PACC document lead to /dav/cal and /dav/card on the server's host. The Outlook
    autodiscover schema has no protocol type for CalDAV or CardDAV, so that answer (like the
    reference's) lists mail servers only."""
    from accounts.models import SystemSettings
    from registry import services as registry

    registry.update(SystemSettings._declaration, None, {"hostname": "mail.example.org"}, "test")
    resp = client.get("/.well-known/autoconfig/mail/config-v1.1.xml", {"emailaddress": "jane@example.org"})
    assert resp.status_code == 200
    doc = etree.fromstring(resp.content)
    found = {el.get("type"): (el.findtext("serverURL"), el.findtext("username"))
             for el in doc if el.tag in ("calendar", "addressBook")}
    assert found == {"caldav": ("https://mail.example.org/dav/cal", "jane@example.org"),
                     "carddav": ("https://mail.example.org/dav/card", "jane@example.org")}
    pacc = client.get("/.well-known/user-agent-configuration.json")
    assert pacc.status_code == 200
    protocols = pacc.json()["protocols"]
    assert protocols["caldav"] == {"url": "https://mail.example.org/dav/cal/"}
    assert protocols["carddav"] == {"url": "https://mail.example.org/dav/card/"}
