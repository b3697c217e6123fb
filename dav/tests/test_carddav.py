"""CardDAV over /dav/card: the contact store through the DAV layer (RFC 6352)."""
from __future__ import annotations

import pytest

from contacts.models import Card

from .helpers import NS, hrefs, prop, xml

HOME = "/dav/card/alice%40example.org/"
BOOK = HOME + "default/"
CR = 'xmlns:D="DAV:" xmlns:B="urn:ietf:params:xml:ns:carddav"'


def vcard(uid: str, fn: str, version: str = "4.0", extra: str = "") -> bytes:
    return (f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n").encode()


def put(who, path, data, **headers):
    return who.put(path, data, "text/vcard; charset=utf-8", **headers)


def test_home_lists_the_default_book_with_its_properties(alice):
    props = ["D:resourcetype", "D:displayname", "B:addressbook-description", "B:supported-address-data",
             "B:max-resource-size", "C:getctag", "D:sync-token", "D:supported-report-set",
             "D:quota-available-bytes", "D:quota-used-bytes"]
    response = alice.propfind(HOME, props, depth="1")
    assert response.status_code == 207
    assert hrefs(response) == [HOME, BOOK]
    assert prop(response, BOOK, "D:resourcetype").find("B:addressbook", NS) is not None
    assert "Stalwart Address Book" in prop(response, BOOK, "D:displayname").text
    versions = {e.get("version") for e in prop(response, BOOK, "B:supported-address-data")}
    assert versions == {"3.0", "4.0"}
    assert prop(response, BOOK, "B:max-resource-size").text == "524288"
    assert prop(response, BOOK, "C:getctag").text
    assert prop(response, BOOK, "D:sync-token").text.startswith("urn:stalwart:davsync:")
    reports = {r.tag for r in prop(response, BOOK, "D:supported-report-set").iter()}
    assert {"{urn:ietf:params:xml:ns:carddav}addressbook-query",
            "{urn:ietf:params:xml:ns:carddav}addressbook-multiget", "{DAV:}sync-collection"} <= reports
    assert prop(response, BOOK, "D:quota-used-bytes") is not None


def test_proppatch_mkcol_and_delete_of_books(alice):
    patch = (f'<D:propertyupdate {CR}><D:set><D:prop><D:displayname>Friends</D:displayname>'
             '<B:addressbook-description>People I like</B:addressbook-description>'
             '<X:color xmlns:X="urn:x">red</X:color></D:prop></D:set></D:propertyupdate>')
    assert alice.request("PROPPATCH", BOOK, patch).status_code == 207
    got = alice.propfind(BOOK, ["D:displayname", "B:addressbook-description"], depth="0")
    assert prop(got, BOOK, "D:displayname").text == "Friends"
    assert prop(got, BOOK, "B:addressbook-description").text == "People I like"
    protected = f'<D:propertyupdate {CR}><D:set><D:prop><D:getetag>x</D:getetag></D:prop></D:set></D:propertyupdate>'
    assert alice.request("PROPPATCH", BOOK, protected).status_code == 207
    mkcol = (f'<D:mkcol {CR}><D:set><D:prop><D:resourcetype><D:collection/><B:addressbook/></D:resourcetype>'
             '<D:displayname>Team</D:displayname></D:prop></D:set></D:mkcol>')
    assert alice.request("MKCOL", HOME + "team/", mkcol).status_code == 201
    assert alice.request("MKCOL", HOME + "team/", mkcol).status_code == 405
    calendar = mkcol.replace("<B:addressbook/>", '<A:calendar xmlns:A="urn:ietf:params:xml:ns:caldav"/>')
    assert alice.request("MKCOL", HOME + "cal/", calendar).status_code == 403
    listing = alice.propfind(HOME, ["D:displayname"], depth="1")
    assert hrefs(listing) == [HOME, BOOK, HOME + "team/"]
    assert prop(listing, HOME + "team/", "D:displayname").text == "Team"
    assert put(alice, HOME + "team/a.vcf", vcard("a", "A")).status_code == 201
    assert alice.request("DELETE", HOME + "team/").status_code == 204
    assert alice.request("PROPFIND", HOME + "team/").status_code == 404


def test_cards_put_get_delete_with_conditions(alice):
    card = vcard("u1", "Jane Doe", extra="EMAIL;TYPE=work:jane@example.com\r\n")
    created = put(alice, BOOK + "jane.vcf", card, If_None_Match="*")
    assert created.status_code == 201
    etag = created["ETag"]
    assert put(alice, BOOK + "jane.vcf", card, If_None_Match="*").status_code == 412
    got = alice.request("GET", BOOK + "jane.vcf")
    assert got.status_code == 200 and got.content == card and got["ETag"] == etag
    assert got["Content-Type"].startswith("text/vcard")
    v3 = alice.request("GET", BOOK + "jane.vcf", Accept="text/vcard; version=3.0")
    assert b"VERSION:3.0" in v3.content and v3["ETag"] == etag
    changed = vcard("u1", "Jane Q. Doe")
    assert put(alice, BOOK + "jane.vcf", changed, If_Match='"nope"').status_code == 412
    updated = put(alice, BOOK + "jane.vcf", changed, If_Match=etag)
    assert updated.status_code == 204 and updated["ETag"] != etag
    listing = alice.propfind(BOOK, ["D:getetag", "D:getcontenttype"], depth="1")
    assert prop(listing, BOOK + "jane.vcf", "D:getetag").text == updated["ETag"]
    assert alice.request("DELETE", BOOK + "jane.vcf", If_Match=etag).status_code == 412
    assert alice.request("DELETE", BOOK + "jane.vcf", If_Match=updated["ETag"]).status_code == 204
    assert alice.request("GET", BOOK + "jane.vcf").status_code == 404


@pytest.mark.parametrize("data, content_type, condition", [
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:no uid\r\nEND:VCARD\r\n", "text/vcard", "valid-address-data"),
    (b"not a card", "text/vcard", "valid-address-data"),
    (b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:x\r\nFN:old\r\nEND:VCARD\r\n", "text/vcard", "supported-address-data"),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
     "text/calendar", "supported-address-data"),
    # iCalendar sent as a vCard: its VERSION (2.0) is no vCard version the store takes.
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "text/vcard", "supported-address-data"),
    (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/vcard", "valid-address-data"),
    (vcard("big", "Big", extra="NOTE:" + "x" * 600_000 + "\r\n"), "text/vcard", "max-resource-size"),
])
def test_refused_cards_get_the_carddav_precondition(alice, data, content_type, condition):
    response = alice.put(BOOK + "bad.vcf", data, content_type)
    assert response.status_code == 403
    assert xml(response).find(f"B:{condition}", NS) is not None
    assert not Card.objects.exists()


def test_uid_conflict_names_the_other_card(alice):
    assert put(alice, BOOK + "one.vcf", vcard("same", "One")).status_code == 201
    response = put(alice, BOOK + "two.vcf", vcard("same", "Two"))
    assert response.status_code == 403
    assert xml(response).findtext("B:no-uid-conflict/D:href", namespaces=NS) == BOOK + "one.vcf"


def _seed(alice):
    put(alice, BOOK + "jane.vcf", vcard("u1", "Jane Doe", extra="EMAIL:jane@example.com\r\nNICKNAME:JD\r\n"))
    put(alice, BOOK + "john.vcf", vcard("u2", "John Smith", version="3.0",
                                        extra="EMAIL;TYPE=INTERNET,pref:john@example.net\r\n"))
    put(alice, BOOK + "zoe.vcf", vcard("u3", "Zoë Jones", extra="EMAIL:zoe@example.com\r\n"))


def test_addressbook_query_with_partial_data_version_and_limit(alice):
    _seed(alice)
    body = (f'<B:addressbook-query {CR}><D:prop><D:getetag/><B:address-data version="3.0"><B:prop name="FN"/>'
            '<B:prop name="EMAIL"/></B:address-data></D:prop><B:filter><B:prop-filter name="EMAIL">'
            '<B:text-match match-type="ends-with">example.com</B:text-match></B:prop-filter></B:filter>'
            '</B:addressbook-query>')
    response = alice.report(BOOK, body, Depth="1")
    assert response.status_code == 207
    assert hrefs(response) == [BOOK + "jane.vcf", BOOK + "zoe.vcf"]
    data = prop(response, BOOK + "jane.vcf", "B:address-data").text
    assert "VERSION:3.0" in data and "FN:Jane Doe" in data and "NICKNAME" not in data and "UID" not in data
    assert prop(response, BOOK + "jane.vcf", "D:getetag").text.startswith('"')
    limited = body.replace("</B:filter>", "</B:filter><B:limit><B:nresults>1</B:nresults></B:limit>")
    response = alice.report(BOOK, limited, Depth="1")
    assert hrefs(response) == [BOOK + "jane.vcf", BOOK]
    last = xml(response).findall("D:response", NS)[-1]
    assert "507" in last.findtext("D:status", namespaces=NS)
    assert last.find("D:error/D:number-of-matches-within-limits", NS) is not None


def test_addressbook_query_refusals(alice):
    _seed(alice)
    collation = (f'<B:addressbook-query {CR}><D:prop><D:getetag/></D:prop><B:filter><B:prop-filter name="FN">'
                 '<B:text-match collation="i;nope">x</B:text-match></B:prop-filter></B:filter>'
                 '</B:addressbook-query>')
    response = alice.report(BOOK, collation)
    assert response.status_code == 403 and xml(response).find("B:supported-collation", NS) is not None
    version = (f'<B:addressbook-query {CR}><D:prop><B:address-data version="2.1"/></D:prop>'
               '<B:filter/></B:addressbook-query>')
    response = alice.report(BOOK, version)
    assert response.status_code == 403
    assert xml(response).find("B:supported-address-data-conversion", NS) is not None
    assert alice.report(BOOK + "jane.vcf", collation).status_code == 403
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
            f'<B:addressbook-query {CR}><D:prop><D:getetag/></D:prop><B:filter><B:prop-filter name="FN">'
            '<B:text-match>&b;</B:text-match></B:prop-filter></B:filter></B:addressbook-query>')
    assert alice.report(BOOK, bomb).status_code == 400
    assert alice.report(BOOK, "<B:addressbook-query").status_code == 400


def test_multiget_with_version_conversion_and_foreign_hrefs(alice, bob):
    _seed(alice)
    put(bob, "/dav/card/bob%40example.org/default/secret.vcf", vcard("s", "Secret"))
    body = (f'<B:addressbook-multiget {CR}><D:prop><D:getetag/><B:address-data version="4.0"/></D:prop>'
            f'<D:href>{BOOK}john.vcf</D:href><D:href>{BOOK}missing.vcf</D:href>'
            '<D:href>/dav/card/bob%40example.org/default/secret.vcf</D:href>'
            f'<D:href>{BOOK}</D:href></B:addressbook-multiget>')
    response = alice.report(BOOK, body, Depth="1")
    assert response.status_code == 207
    john = prop(response, BOOK + "john.vcf", "B:address-data").text
    assert "VERSION:4.0" in john and "PREF=1" in john
    statuses = {r.findtext("D:href", namespaces=NS): r.findtext("D:status", namespaces=NS)
                for r in xml(response).findall("D:response", NS)}
    assert "404" in statuses[BOOK + "missing.vcf"]
    assert "403" in statuses["/dav/card/bob%40example.org/default/secret.vcf"]
    assert "403" in statuses[BOOK]
    assert "Secret" not in response.content.decode()


def test_another_accounts_book_is_closed(alice, bob):
    _seed(alice)
    assert bob.request("GET", BOOK + "jane.vcf").status_code == 403
    assert put(bob, BOOK + "evil.vcf", vcard("e", "Evil")).status_code == 403
    assert bob.request("DELETE", BOOK + "jane.vcf").status_code == 403
    assert bob.request("DELETE", BOOK).status_code == 403
    assert bob.propfind(BOOK, ["D:getetag"]).status_code == 403
    query = f'<B:addressbook-query {CR}><D:prop><B:address-data/></D:prop></B:addressbook-query>'
    assert bob.report(BOOK, query).status_code == 403
    assert bob.request("MKCOL", HOME + "x/").status_code == 403
    assert Card.objects.count() == 3


def test_sync_collection_reports_changes_and_removals(alice):
    _seed(alice)
    body = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
            '<D:prop><D:getetag/></D:prop></D:sync-collection>')
    first = alice.report(BOOK, body.format(""))
    assert sorted(hrefs(first)) == [BOOK + "jane.vcf", BOOK + "john.vcf", BOOK + "zoe.vcf"]
    token = xml(first).findtext("D:sync-token", namespaces=NS)
    put(alice, BOOK + "new card.vcf", vcard("u4", "New"))
    alice.request("DELETE", BOOK + "zoe.vcf")
    second = alice.report(BOOK, body.format(token))
    statuses = {r.findtext("D:href", namespaces=NS): r for r in xml(second).findall("D:response", NS)}
    assert set(statuses) == {BOOK + "new%20card.vcf", BOOK + "zoe.vcf"}
    assert "404" in statuses[BOOK + "zoe.vcf"].findtext("D:status", namespaces=NS)


def test_well_known_carddav_leads_to_the_home(alice):
    response = alice.request("PROPFIND", "/.well-known/carddav")
    assert response.status_code in (301, 307, 308)
    root = response["Location"]
    principal = alice.propfind(root, ["D:current-user-principal"], depth="0")
    me = xml(principal).findtext(".//D:current-user-principal/D:href", namespaces=NS)
    homes = alice.propfind(me, ["B:addressbook-home-set"], depth="0")
    assert xml(homes).findtext(".//B:addressbook-home-set/D:href", namespaces=NS) == HOME


def test_hostile_paths_and_methods_on_books(alice):
    assert put(alice, HOME + "nobook/a.vcf", vcard("a", "A")).status_code == 409
    assert put(alice, HOME + "a.vcf", vcard("a", "A")).status_code == 405
    assert put(alice, BOOK + "x/y.vcf", vcard("a", "A")).status_code in (403, 409)
    assert put(alice, BOOK + "%2e%2e/a.vcf", vcard("a", "A")).status_code == 400
    assert put(alice, BOOK + "a%00.vcf", vcard("a", "A")).status_code == 400
    grant = ('<D:acl xmlns:D="DAV:"><D:ace><D:principal><D:href>/dav/pal/bob%40example.org/</D:href>'
             "</D:principal><D:grant><D:privilege><D:read/></D:privilege></D:grant></D:ace></D:acl>")
    assert alice.request("ACL", BOOK, grant).status_code == 403
    assert not Card.objects.exists()


def test_propfind_of_a_card_gives_its_address_data(alice):
    card = vcard("u1", "Jane")
    put(alice, BOOK + "jane.vcf", card)
    response = alice.propfind(BOOK, ["D:getetag", "B:address-data"], depth="1")
    assert prop(response, BOOK + "jane.vcf", "B:address-data").text.encode() == card


def test_multiget_reads_the_targeted_book_in_a_fixed_number_of_queries(alice, django_assert_max_num_queries):
    for n in range(30):
        put(alice, f"{BOOK}{n}.vcf", vcard(f"u{n}", f"Person {n}"))
    body = (f'<B:addressbook-multiget {CR}><D:prop><D:getetag/><B:address-data/></D:prop>'
            + "".join(f"<D:href>{BOOK}{n}.vcf</D:href>" for n in range(30)) + "</B:addressbook-multiget>")
    alice.report(BOOK, body)  # warms what the first request of a client caches (its login)
    with django_assert_max_num_queries(15):
        response = alice.report(BOOK, body)
    assert len(hrefs(response)) == 30
    assert all("Person" in prop(response, f"{BOOK}{n}.vcf", "B:address-data").text for n in range(30))
