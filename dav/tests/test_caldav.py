"""CalDAV over /dav/cal through Django's test client: the home and its calendars, MKCALENDAR,
objects with etags and the store's preconditions as RFC 4791 errors, the reports, and what
another account or a hostile body gets."""
from __future__ import annotations

import pytest

from .helpers import NS, body, hrefs, prop, xml

HOME = "/dav/cal/alice%40example.org/"
CAL = HOME + "default/"
A = "urn:ietf:params:xml:ns:caldav"


def ics(uid: str, start: str = "20260105T100000Z", end: str = "20260105T110000Z", extra: str = "",
        summary: str = "Meeting") -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def put(dav, path, data, **headers):
    return dav.put(path, data, content_type="text/calendar; charset=utf-8", **headers)


def query(start, end, data='<A:calendar-data/>'):
    return (f'<A:calendar-query xmlns:D="DAV:" xmlns:A="{A}"><D:prop><D:getetag/>{data}</D:prop>'
            f'<A:filter><A:comp-filter name="VCALENDAR"><A:comp-filter name="VEVENT">'
            f'<A:time-range start="{start}" end="{end}"/></A:comp-filter></A:comp-filter></A:filter>'
            '</A:calendar-query>')


@pytest.mark.django_db
def test_home_lists_the_default_calendar_with_caldav_properties(alice):
    r = alice.propfind(HOME, ["D:resourcetype", "D:displayname", "A:supported-calendar-component-set",
                              "A:supported-calendar-data", "A:max-resource-size", "A:min-date-time",
                              "A:max-date-time", "A:max-instances", "C:getctag", "D:sync-token",
                              "D:supported-report-set", "D:quota-available-bytes"])
    assert r.status_code == 207, body(r)
    assert CAL in hrefs(r)
    assert prop(r, CAL, "D:resourcetype/A:calendar") is not None
    assert "Stalwart Calendar" in prop(r, CAL, "D:displayname").text
    comps = [c.get("name") for c in prop(r, CAL, "A:supported-calendar-component-set")]
    assert "VEVENT" in comps and "VTODO" in comps
    assert prop(r, CAL, "A:supported-calendar-data/A:calendar-data").get("content-type") == "text/calendar"
    assert int(prop(r, CAL, "A:max-resource-size").text) > 0
    assert prop(r, CAL, "A:max-instances").text == "3000"
    assert prop(r, CAL, "D:sync-token").text.startswith("urn:")
    reports = {el.tag for el in prop(r, CAL, "D:supported-report-set").iter() if "}calendar" in el.tag
               or "}free-busy" in el.tag or "}sync" in el.tag}
    assert {f"{{{A}}}calendar-query", f"{{{A}}}calendar-multiget", f"{{{A}}}free-busy-query",
            "{DAV:}sync-collection"} <= reports


@pytest.mark.django_db
def test_mkcalendar_proppatch_and_delete(alice):
    assert alice.propfind(HOME).status_code == 207  # first use: the default calendar
    body_ = (f'<A:mkcalendar xmlns:D="DAV:" xmlns:A="{A}"><D:set><D:prop><D:displayname>Work</D:displayname>'
             '<A:calendar-description>Office</A:calendar-description>'
             '<A:supported-calendar-component-set><A:comp name="VTODO"/></A:supported-calendar-component-set>'
             '</D:prop></D:set></A:mkcalendar>')
    r = alice.request("MKCALENDAR", HOME + "work/", body_)
    assert r.status_code == 201, body(r)
    assert alice.request("MKCALENDAR", HOME + "work/", body_).status_code == 405
    r = alice.request("PROPPATCH", HOME + "work/",
                      '<D:propertyupdate xmlns:D="DAV:" xmlns:I="http://apple.com/ns/ical/"><D:set><D:prop>'
                      '<I:calendar-color>#FF0000FF</I:calendar-color><D:displayname>Jobs</D:displayname>'
                      '</D:prop></D:set></D:propertyupdate>')
    assert r.status_code == 207, body(r)
    r = alice.propfind(HOME + "work/", ["D:displayname", "A:calendar-description",
                                        "A:supported-calendar-component-set"], depth="0")
    assert prop(r, HOME + "work/", "D:displayname").text == "Jobs"
    assert prop(r, HOME + "work/", "A:calendar-description").text == "Office"
    # The store's limits are live properties, not writable dead ones.
    r = alice.request("PROPPATCH", HOME + "work/",
                      f'<D:propertyupdate xmlns:D="DAV:" xmlns:A="{A}"><D:set><D:prop>'
                      '<A:max-resource-size>999999999</A:max-resource-size></D:prop></D:set></D:propertyupdate>')
    assert r.status_code == 403 and b"cannot-modify-protected-property" in body(r)
    r = alice.propfind(HOME + "work/", ["A:max-resource-size"], depth="0")
    assert prop(r, HOME + "work/", "A:max-resource-size").text != "999999999"
    # A calendar inside a calendar, or a resourcetype that is not a calendar: refused.
    assert alice.request("MKCALENDAR", HOME + "work/inner/").status_code == 403
    r = alice.request("MKCOL", HOME + "plain/", '<D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:resourcetype>'
                      '<D:collection/></D:resourcetype></D:prop></D:set></D:mkcol>')
    assert r.status_code == 403 and b"valid-resourcetype" in body(r)
    # The component set keeps what MKCALENDAR chose: an event is refused.
    r = put(alice, HOME + "work/e.ics", ics("e1"))
    assert r.status_code == 403 and b"supported-calendar-component" in body(r)
    # Extended MKCOL with the calendar resourcetype.
    r = alice.request("MKCOL", HOME + "home/",
                      f'<D:mkcol xmlns:D="DAV:" xmlns:A="{A}"><D:set><D:prop><D:resourcetype><D:collection/>'
                      '<A:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>')
    assert r.status_code == 201, body(r)
    assert alice.request("DELETE", HOME + "work/").status_code == 204
    assert alice.propfind(HOME + "work/", depth="0").status_code == 404
    # The default calendar stays.
    r = alice.request("DELETE", CAL)
    assert r.status_code == 403 and b"default-calendar-needed" in body(r)


@pytest.mark.django_db
def test_objects_with_etags_and_preconditions(alice):
    r = put(alice, CAL + "a.ics", ics("uid-a"), If_None_Match="*")
    assert r.status_code == 201, body(r)
    etag = r["ETag"]
    r = alice.request("GET", CAL + "a.ics")
    assert r.status_code == 200 and r["ETag"] == etag and b"UID:uid-a" in body(r)
    assert r["Content-Type"].startswith("text/calendar")
    assert put(alice, CAL + "a.ics", ics("uid-a"), If_None_Match="*").status_code == 412
    assert put(alice, CAL + "a.ics", ics("uid-a", summary="x"), If_Match='"nope"').status_code == 412
    r = put(alice, CAL + "a.ics", ics("uid-a", summary="Changed"), If_Match=etag)
    assert r.status_code == 204 and r["ETag"] != etag
    # Another resource with the same UID: 409 no-uid-conflict naming the first one.
    r = put(alice, CAL + "b.ics", ics("uid-a"))
    assert r.status_code == 409
    err = xml(r)
    assert err.find("A:no-uid-conflict/D:href", NS).text == CAL + "a.ics"
    # Not iCalendar, a vCard, a broken event: the RFC 4791 preconditions, nothing stored.
    r = put(alice, CAL + "c.ics", b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:X\r\nEND:VCARD\r\n")
    assert r.status_code == 403 and b"supported-calendar-data" in body(r)
    r = alice.put(CAL + "c.vcf", b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:X\r\nEND:VCARD\r\n", content_type="text/vcard")
    assert r.status_code == 403 and b"supported-calendar-data" in body(r)
    r = put(alice, CAL + "d.ics", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n")
    assert r.status_code == 403 and (b"valid-calendar-data" in body(r) or b"valid-calendar-object" in body(r))
    assert alice.request("GET", CAL + "d.ics").status_code == 404
    # PUT into a calendar that does not exist, or at the home: 409 / 405.
    assert put(alice, HOME + "nothere/x.ics", ics("x")).status_code == 409
    assert put(alice, HOME + "x.ics", ics("x")).status_code == 405
    assert alice.request("DELETE", CAL + "a.ics", If_Match='"stale"').status_code == 412
    ctag = prop(alice.propfind(CAL, ["C:getctag"], depth="0"), CAL, "C:getctag").text
    assert alice.request("DELETE", CAL + "a.ics").status_code == 204
    assert alice.request("GET", CAL + "a.ics").status_code == 404
    assert prop(alice.propfind(CAL, ["C:getctag"], depth="0"), CAL, "C:getctag").text != ctag


@pytest.mark.django_db
def test_reports_query_expand_multiget_freebusy(alice):
    put(alice, CAL + "one.ics", ics("one"))
    put(alice, CAL + "weekly.ics", ics("weekly", "20260101T090000Z", "20260101T100000Z",
                                       "RRULE:FREQ=WEEKLY;COUNT=10\r\n", summary="Standup"))
    put(alice, CAL + "late.ics", ics("late", "20270101T090000Z", "20270101T100000Z"))
    r = alice.report(CAL, query("20260105T000000Z", "20260112T000000Z",
                                '<A:calendar-data><A:expand start="20260105T000000Z" end="20260112T000000Z"/>'
                                '</A:calendar-data>'), Depth="1")
    assert r.status_code == 207, body(r)
    assert sorted(hrefs(r)) == [CAL + "one.ics", CAL + "weekly.ics"]
    expanded = prop(r, CAL + "weekly.ics", "A:calendar-data").text
    assert "RRULE" not in expanded and "RECURRENCE-ID" in expanded and "20260108T090000Z" in expanded
    r = alice.report(CAL, query("20260105T000000Z", "20260112T000000Z",
                                '<A:calendar-data><A:limit-recurrence-set start="20260105T000000Z" '
                                'end="20260112T000000Z"/></A:calendar-data>'))
    assert "RRULE:FREQ=WEEKLY" in prop(r, CAL + "weekly.ics", "A:calendar-data").text
    r = alice.report(CAL, query("20260105T000000Z", "20260112T000000Z",
                                '<A:calendar-data><A:comp name="VCALENDAR"><A:comp name="VEVENT">'
                                '<A:prop name="UID"/></A:comp></A:comp></A:calendar-data>'))
    partial = prop(r, CAL + "one.ics", "A:calendar-data").text
    assert "UID:one" in partial and "SUMMARY" not in partial
    r = alice.report(CAL, f'<A:calendar-multiget xmlns:D="DAV:" xmlns:A="{A}"><D:prop><D:getetag/>'
                          f'<A:calendar-data/></D:prop><D:href>{CAL}late.ics</D:href>'
                          f'<D:href>{CAL}missing.ics</D:href>'
                          '<D:href>/dav/cal/bob%40example.org/default/x.ics</D:href></A:calendar-multiget>')
    assert r.status_code == 207
    assert "UID:late" in prop(r, CAL + "late.ics", "A:calendar-data").text
    statuses = {resp.findtext("D:href", namespaces=NS): resp.findtext("D:status", namespaces=NS)
                for resp in xml(r).findall("D:response", NS)}
    assert "404" in statuses[CAL + "missing.ics"] and "404" in statuses["/dav/cal/bob%40example.org/default/x.ics"]
    r = alice.report(CAL, f'<A:free-busy-query xmlns:A="{A}"><A:time-range start="20260105T000000Z" '
                          'end="20260106T000000Z"/></A:free-busy-query>')
    assert r.status_code == 200 and r["Content-Type"].startswith("text/calendar")
    assert b"FREEBUSY" in body(r) and b"20260105T100000Z" in body(r)


@pytest.mark.django_db
def test_sync_collection_on_a_calendar(alice):
    put(alice, CAL + "a.ics", ics("a"))
    r = alice.report(CAL, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
                          '<D:prop><D:getetag/></D:prop></D:sync-collection>')
    assert r.status_code == 207 and hrefs(r) == [CAL + "a.ics"]
    token = xml(r).findtext("D:sync-token", namespaces=NS)
    put(alice, CAL + "b.ics", ics("b"))
    alice.request("DELETE", CAL + "a.ics")
    r = alice.report(CAL, f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
                          '<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>')
    assert r.status_code == 207
    assert sorted(hrefs(r)) == [CAL + "a.ics", CAL + "b.ics"]
    bogus = token + "ff"
    r = alice.report(CAL, f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{bogus}</D:sync-token>'
                          '<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>')
    assert r.status_code == 403 and b"valid-sync-token" in body(r)


@pytest.mark.django_db
def test_another_account_and_hostile_bodies(alice, bob):
    put(alice, CAL + "a.ics", ics("secret", summary="Secret"))
    for method, path in (("GET", CAL + "a.ics"), ("PROPFIND", CAL), ("PROPFIND", HOME), ("DELETE", CAL + "a.ics")):
        r = bob.request(method, path, Depth="1")
        assert r.status_code in (403, 404), (method, path, r.status_code)
        assert b"Secret" not in body(r)
    r = put(bob, CAL + "b.ics", ics("b"))
    assert r.status_code in (403, 404)
    r = bob.report(CAL, query("20260101T000000Z", "20270101T000000Z"))
    assert r.status_code in (403, 404) and b"Secret" not in body(r)
    r = bob.request("MKCALENDAR", HOME + "evil/")
    assert r.status_code == 403
    assert alice.request("GET", CAL + "a.ics").status_code == 200
    # Bob's own calendar-multiget cannot name Alice's objects.
    bob_cal = "/dav/cal/bob%40example.org/default/"
    bob.propfind("/dav/cal/bob%40example.org/", ["D:resourcetype"])
    r = bob.report(bob_cal, f'<A:calendar-multiget xmlns:D="DAV:" xmlns:A="{A}"><D:prop><A:calendar-data/>'
                            f'</D:prop><D:href>{CAL}a.ics</D:href><D:href>{bob_cal}../../alice%40example.org/'
                            'default/a.ics</D:href></A:calendar-multiget>')
    assert r.status_code == 207 and b"Secret" not in body(r)
    # Hostile XML: an entity bomb, a bad filter, a bad time range, a deep filter: 4xx, never 5xx.
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            f'<A:calendar-query xmlns:A="{A}">&b;</A:calendar-query>')
    assert alice.report(CAL, bomb).status_code == 400
    bad = [f'<A:calendar-query xmlns:D="DAV:" xmlns:A="{A}"><D:prop><D:getetag/></D:prop></A:calendar-query>',
           query("garbage", "20260101T000000Z"),
           f'<A:calendar-query xmlns:D="DAV:" xmlns:A="{A}"><A:filter>'
           + '<A:comp-filter name="VCALENDAR">' * 40 + '</A:comp-filter>' * 40 + '</A:filter></A:calendar-query>',
           f'<A:free-busy-query xmlns:A="{A}"/>',
           f'<A:calendar-query xmlns:D="DAV:" xmlns:A="{A}"><D:prop><A:calendar-data content-type="text/x"/>'
           '</D:prop><A:filter><A:comp-filter name="VCALENDAR"/></A:filter></A:calendar-query>']
    for text in bad:
        r = alice.report(CAL, text)
        assert 400 <= r.status_code < 500, (text[:80], r.status_code, body(r))


@pytest.mark.django_db
def test_oversize_objects_are_refused(alice, settings):
    big = ics("big", extra="DESCRIPTION:" + "x" * 70 + "\r\n " + ("y" * 70 + "\r\n ") * 8000 + "z\r\n")
    assert len(big) > settings.CALENDAR_MAX_ICALENDAR_SIZE
    r = put(alice, CAL + "big.ics", big)
    assert r.status_code == 403 and b"max-resource-size" in body(r)
    settings.DAV_MAX_FILE_SIZE = 1000
    r = put(alice, CAL + "big.ics", big)
    assert r.status_code == 413
    assert alice.request("GET", CAL + "big.ics").status_code == 404


@pytest.mark.django_db
def test_listing_and_query_cost_do_not_grow_with_the_calendar(alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def costs():
        with CaptureQueriesContext(connection) as listing:
            assert alice.propfind(CAL, ["D:getetag"]).status_code == 207
        with CaptureQueriesContext(connection) as found:
            r = alice.report(CAL, query("20260105T000000Z", "20260106T000000Z"))
            assert r.status_code == 207
        return len(listing.captured_queries), len(found.captured_queries)

    for n in range(3):
        put(alice, CAL + f"e{n}.ics", ics(f"e{n}"))
    before = costs()
    for n in range(3, 15):
        put(alice, CAL + f"e{n}.ics", ics(f"e{n}"))
    assert costs() == before
