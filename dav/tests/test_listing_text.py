"""The members of a Depth 1 listing are written as text (dav/views.py `_response_text`) when
their properties are text alone. The document must say exactly what the element writer says:
each listing here is compared, response by response, with the same request answered with the
text writer turned off, over files and calendar items, with dead properties, missing values,
names that need quoting and Prefer: return=minimal."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from lxml import etree

from dav import views
from dav.caldav import CalendarProvider

from .helpers import NS, hrefs, xml

CAL = "/dav/cal/alice%40example.org/default/"
A = "urn:ietf:params:xml:ns:caldav"
PROPS = ["D:getetag", "D:getcontenttype", "D:getcontentlength", "D:resourcetype", "D:displayname",
         "D:creationdate", "D:getlastmodified"]


def ics(uid: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
            "DTEND:20260105T110000Z\r\nSUMMARY:M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def canonical(response) -> dict:
    """href -> the response's propstats as (status, sorted (tag, text, children)) tuples."""
    out = {}
    for resp in xml(response).findall("D:response", NS):
        stats = []
        for ps in resp.findall("D:propstat", NS):
            props = sorted((el.tag, el.text or "", tuple(c.tag for c in el)) for el in ps.find("D:prop", NS))
            stats.append((ps.findtext("D:status", namespaces=NS), tuple(props)))
        out[resp.findtext("D:href", namespaces=NS)] = sorted(stats)
    return out


def both(dav, monkeypatch, path, props, **headers):
    fast = dav.propfind(path, props, **headers)
    with monkeypatch.context() as m:
        m.setattr(views, "_response_text", lambda *a, **k: None)
        slow = dav.propfind(path, props, **headers)
    assert fast.status_code == slow.status_code == 207
    etree.fromstring(fast.content)  # well-formed on its own
    return fast, slow


@pytest.mark.django_db
def test_file_listing_as_text_says_what_the_elements_say(alice, monkeypatch):
    assert alice.mkcol(alice.home + "docs/").status_code == 201
    for name, kind in (("a.txt", "text/plain"), ("b%20c&d.bin", "application/octet-stream"),
                       ("%C3%A9t%C3%A9.txt", "text/plain; charset=utf-8")):
        assert alice.put(alice.home + "docs/" + name, b"hello " + name.encode(), content_type=kind).status_code == 201
    # A dead property on one member: that member goes through the element writer.
    patch = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example"><D:set><D:prop><Z:color>red</Z:color>'
             '<D:displayname>Shown</D:displayname></D:prop></D:set></D:propertyupdate>')
    assert alice.request("PROPPATCH", alice.home + "docs/a.txt", patch).status_code == 207
    for props in (PROPS, ["D:getetag"], ["D:getetag", "D:resourcetype"]):
        fast, slow = both(alice, monkeypatch, alice.home + "docs/", props)
        assert canonical(fast) == canonical(slow)
        assert len(hrefs(fast)) == 4
    fast, slow = both(alice, monkeypatch, alice.home + "docs/", PROPS, Prefer="return=minimal")
    assert canonical(fast) == canonical(slow)
    shown = [r for r in xml(fast).findall("D:response", NS) if r.findtext("D:href", namespaces=NS).endswith("a.txt")]
    assert shown[0].findtext("D:propstat/D:prop/D:displayname", namespaces=NS) == "Shown"


@pytest.mark.django_db
def test_calendar_listing_as_text_says_what_the_elements_say(alice, monkeypatch):
    assert alice.propfind("/dav/cal/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    for uid in ("one", "two", "three&four"):
        r = alice.put(CAL + uid.replace("&", "%26") + ".ics", ics(uid), content_type="text/calendar; charset=utf-8")
        assert r.status_code == 201, r.content
    for props in (PROPS, ["D:getetag"], ["D:getetag", "D:getcontenttype"], ["D:getetag", "C:getctag"]):
        fast, slow = both(alice, monkeypatch, CAL, props)
        assert canonical(fast) == canonical(slow)
        assert len(hrefs(fast)) == 4
    etags = [e.text for e in xml(fast).findall("D:response/D:propstat/D:prop/D:getetag", NS)]
    assert len(etags) == 4 and all(e.startswith('"') for e in etags)  # the calendar's own, and three


@pytest.mark.django_db
def test_a_listing_asks_a_fixed_number_of_queries(alice):
    assert alice.propfind("/dav/cal/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    counts = []
    for total in (30, 90):
        for i in range(len(counts) * 30, total):
            alice.put(CAL + f"e{i}.ics", ics(f"e{i}"), content_type="text/calendar; charset=utf-8")
        with CaptureQueriesContext(connection) as queries:
            r = alice.propfind(CAL, ["D:getetag"])
        assert len(hrefs(r)) == total + 1
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 12, counts


def report_both(dav, monkeypatch, body):
    fast = dav.report(CAL, body, Depth="1")
    with monkeypatch.context() as m:
        m.setattr(CalendarProvider, "_response", CalendarProvider._response_element)
        slow = dav.report(CAL, body, Depth="1")
    assert fast.status_code == slow.status_code == 207, fast.content
    etree.fromstring(fast.content)
    return fast, slow


@pytest.mark.django_db
def test_calendar_reports_as_text_say_what_the_elements_say(alice, monkeypatch):
    assert alice.propfind("/dav/cal/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    for uid in ("one", "two", "three&four"):
        r = alice.put(CAL + uid.replace("&", "%26") + ".ics", ics(uid), content_type="text/calendar; charset=utf-8")
        assert r.status_code == 201, r.content
    props = "<D:getetag/><D:getcontenttype/><D:getcontentlength/><A:calendar-data/><D:displayname/>"
    query = (f'<A:calendar-query xmlns:D="DAV:" xmlns:A="{A}"><D:prop>{props}</D:prop><A:filter>'
             '<A:comp-filter name="VCALENDAR"><A:comp-filter name="VEVENT"><A:time-range start="20260101T000000Z" '
             'end="20260201T000000Z"/></A:comp-filter></A:comp-filter></A:filter></A:calendar-query>')
    fast, slow = report_both(alice, monkeypatch, query)
    assert canonical(fast) == canonical(slow) and len(canonical(fast)) == 3
    data = xml(fast).findall("D:response/D:propstat/D:prop/A:calendar-data", NS)
    assert len(data) == 3 and all("BEGIN:VCALENDAR" in el.text for el in data)
    hrefs_ = "".join(f"<D:href>{CAL}{n}</D:href>" for n in ("one.ics", "three%26four.ics", "missing.ics"))
    multiget = (f'<A:calendar-multiget xmlns:D="DAV:" xmlns:A="{A}"><D:prop>{props}</D:prop>{hrefs_}'
                '</A:calendar-multiget>')
    fast, slow = report_both(alice, monkeypatch, multiget)
    assert etree.tostring(xml(fast), method="c14n") != b"" and canonical(fast) == canonical(slow)
    statuses = [r.findtext("D:status", namespaces=NS) for r in xml(fast).findall("D:response", NS)]
    assert statuses == [None, None, "HTTP/1.1 404 Not Found"]
