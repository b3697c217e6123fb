"""python `caldav` (a real CalDAV client, PyPI) against /dav/cal on a live gunicorn: discovery
from the well-known URL, calendars, events (recurring too), date-range search with expand,
updates with etags, deletion, sync tokens; and what it gets from another account's calendar."""
from __future__ import annotations

from datetime import datetime, timezone

import caldav
import pytest
import requests
from caldav.lib import error as caldav_error

from tests.live import live_server
from tests.test_jmap_live import STRONG, Site, bootstrap

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
{extra}END:VEVENT
END:VCALENDAR
"""


def event(uid, start="20260105T100000Z", end="20260105T110000Z", summary="Meeting", extra=""):
    return EVENT.format(uid=uid, start=start, end=end, summary=summary, extra=extra)


@pytest.fixture(scope="module")
def site():
    with live_server(workers=2) as server:
        creds = bootstrap(server)
        assert creds
        yield Site(server, *creds)
        log = (server.var_dir / "gunicorn.log").read_text()
        assert "Traceback" not in log, log[-4000:]


def test_python_caldav_client_end_to_end(site):
    _, login = site.create_user("cal")
    client = caldav.DAVClient(url=f"{site.url}/.well-known/caldav", username=login, password=STRONG)
    principal = client.principal()
    assert principal.url.path.startswith("/dav/pal/")
    calendars = principal.calendars()
    assert [c.url.path.rstrip("/").rsplit("/", 1)[1] for c in calendars] == ["default"]

    work = principal.make_calendar(name="Work", cal_id="work")
    assert work.get_display_name() == "Work"
    assert {c.url.path for c in principal.calendars()} >= {work.url.path}

    single = work.save_event(event("one@test"))
    work.save_event(event("weekly@test", "20260101T090000Z", "20260101T093000Z", "Standup",
                          "RRULE:FREQ=WEEKLY;COUNT=10\n"))
    work.save_event(event("later@test", "20270301T090000Z", "20270301T100000Z", "Later"))

    found = work.search(start=datetime(2026, 1, 5, tzinfo=timezone.utc), end=datetime(2026, 1, 12, tzinfo=timezone.utc),
                        event=True, expand=True)
    summaries = sorted(str(e.icalendar_component["SUMMARY"]) for e in found)
    assert summaries == ["Meeting", "Standup"]
    standup = next(e for e in found if str(e.icalendar_component["SUMMARY"]) == "Standup")
    assert "RRULE" not in standup.data and "RECURRENCE-ID" in standup.data

    token_objects = work.objects_by_sync_token(load_objects=False)
    token = token_objects.sync_token
    assert len(list(token_objects)) == 3

    # Update with the etag the server gave; a stale etag is refused.
    single.load()
    etag = single.props.get("{DAV:}getetag") or requests.head(
        str(single.url), auth=(login, STRONG)).headers["ETag"]
    single.icalendar_component["SUMMARY"] = "Moved"
    single.save()
    stale = requests.put(str(single.url), data=event("one@test", summary="Stale"), auth=(login, STRONG),
                         headers={"If-Match": etag, "Content-Type": "text/calendar"})
    assert stale.status_code == 412
    assert "Moved" in work.event_by_uid("one@test").data

    later = work.event_by_uid("later@test")
    later.delete()
    changed = work.objects_by_sync_token(sync_token=token, load_objects=False)
    paths = sorted(o.url.path.rsplit("/", 1)[1] for o in changed)
    assert len(paths) == 2 and changed.sync_token != token
    with pytest.raises(caldav_error.NotFoundError):
        work.event_by_uid("later@test")

    # Deleting the calendar.
    work.delete()
    assert [c.url.path.rstrip("/").rsplit("/", 1)[1] for c in principal.calendars()] == ["default"]


def test_another_accounts_calendar_is_closed(site):
    _, alice = site.create_user("alice")
    _, mallory = site.create_user("mallory")
    owner = caldav.DAVClient(url=f"{site.url}/dav/cal/", username=alice, password=STRONG).principal()
    cal = owner.calendars()[0]
    cal.save_event(event("private@test", summary="Private"))
    url = str(cal.url)
    for method in ("PROPFIND", "GET", "DELETE"):
        r = requests.request(method, url + ("private.ics" if method != "PROPFIND" else ""), auth=(mallory, STRONG),
                             headers={"Depth": "1"})
        assert r.status_code in (403, 404) and "Private" not in r.text
    r = requests.put(url + "x.ics", data=event("x@test"), auth=(mallory, STRONG),
                     headers={"Content-Type": "text/calendar"})
    assert r.status_code in (403, 404)
    r = requests.request("REPORT", url, auth=(mallory, STRONG), headers={"Depth": "1"},
                         data='<C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:">'
                              '<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/>'
                              '</C:filter></C:calendar-query>')
    assert r.status_code in (403, 404) and "Private" not in r.text
    # A vCard PUT into a calendar is refused with the CalDAV precondition.
    r = requests.put(url + "card.vcf", data="BEGIN:VCARD\r\nVERSION:4.0\r\nFN:X\r\nEND:VCARD\r\n",
                     auth=(alice, STRONG), headers={"Content-Type": "text/vcard"})
    assert r.status_code == 403 and "supported-calendar-data" in r.text
