"""python `caldav` (a real CalDAV client, PyPI) against /dav/cal on a live gunicorn: discovery
from the well-known URL, calendars, events (recurring too), date-range search with expand,
updates with etags, deletion, sync tokens; and what it gets from another account's calendar.
vdirsyncer (PyPI) syncs a calendar both ways with a local directory, a conflict included."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import caldav
import pytest
import requests
from lxml import etree
from caldav.lib import error as caldav_error

from tests.live import live_server
from tests.test_jmap_live import STRONG, Site, bootstrap

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")

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


def test_python_caldav_client_invites_and_sees_schedule_status(site):
    """RFC 6638 with a real client: the organizer's save is scheduled, the copy it reads back has
    each attendee's SCHEDULE-STATUS (the PUT carried no ETag, so the client must fetch); the
    attendee's client answers and the organizer's copy shows it with a new DTSTAMP, the same
    SEQUENCE and the same Schedule-Tag."""
    _, org = site.create_user("org")
    _, att = site.create_user("att")
    ghost = f"ghost{org.split('@')[0]}@example.org"
    people = (f"ORGANIZER:mailto:{org}\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{org}\n"
              f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{att}\n"
              f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{ghost}\nSEQUENCE:2\n")
    ics = event("invite@test", "20270105T100000Z", "20270105T110000Z", "Review", people)
    organizer = caldav.DAVClient(url=f"{site.url}/dav/cal/", username=org, password=STRONG).principal()
    cal = organizer.calendars()[0]

    # Raw HTTP first: the answer to the organizer's PUT.
    url = str(cal.url) + "raw.ics"
    raw = requests.put(url, data=ics.replace("invite@test", "raw@test"), auth=(org, STRONG),
                       headers={"Content-Type": "text/calendar"})
    assert raw.status_code == 201, raw.text
    assert "ETag" not in raw.headers and raw.headers.get("Schedule-Tag")
    fetched = requests.get(url, auth=(org, STRONG))
    assert f"SCHEDULE-STATUS=1.2:mailto:{att}" in fetched.text.replace("\r\n ", "")
    assert f"SCHEDULE-STATUS=3.7:mailto:{ghost}" in fetched.text.replace("\r\n ", "")
    assert fetched.headers["Schedule-Tag"] == raw.headers["Schedule-Tag"]

    saved = cal.save_event(ics)
    saved.load()
    statuses = {str(a).lower().removeprefix("mailto:"): a.params.get("SCHEDULE-STATUS")
                for a in saved.icalendar_component["ATTENDEE"]}
    assert statuses == {org: None, att: "1.2", ghost: "3.7"}
    stamp = saved.icalendar_component["DTSTAMP"].dt
    sequence = int(saved.icalendar_component["SEQUENCE"])  # caldav's save raises it itself
    tag = requests.get(str(saved.url), auth=(org, STRONG)).headers["Schedule-Tag"]

    attendee = caldav.DAVClient(url=f"{site.url}/dav/cal/", username=att, password=STRONG).principal()
    (mine,) = [e for e in attendee.calendars()[0].events() if "UID:invite@test" in e.data]
    mine.data = mine.data.replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{att}",
                                  f"PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:{att}")
    mine.save()
    saved.load()
    comp = saved.icalendar_component
    answers = {str(a).lower().removeprefix("mailto:"): a.params.get("PARTSTAT") for a in comp["ATTENDEE"]}
    assert answers[att] == "ACCEPTED"
    assert comp["DTSTAMP"].dt > stamp and int(comp["SEQUENCE"]) == sequence
    assert requests.get(str(saved.url), auth=(org, STRONG)).headers["Schedule-Tag"] == tag


def vdirsyncer(tmp: Path, url: str, login: str, resolution: str):
    """A vdirsyncer pair of a local directory (a) and the server's calendars (b)."""
    config = tmp / "config"
    config.write_text(f"""
[general]
status_path = "{tmp / 'status'}/"

[pair calendars]
a = "calendars_local"
b = "calendars_remote"
collections = ["from b"]
conflict_resolution = "{resolution}"

[storage calendars_local]
type = "filesystem"
path = "{tmp / 'calendars'}/"
fileext = ".ics"

[storage calendars_remote]
type = "caldav"
url = "{url}/"
username = "{login}"
password = "{STRONG}"
""")

    def run(*args: str) -> str:
        done = subprocess.run([str(VDIRSYNCER), "-c", str(config), *args], capture_output=True, text=True,
                              input="y\n" * 5, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp)})
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        return out

    return run


@pytest.mark.skipif(not VDIRSYNCER.exists(), reason="vdirsyncer is missing: pip install -r requirements-dev.txt")
def test_vdirsyncer_syncs_a_calendar_both_ways_with_a_conflict(site, tmp_path):
    _, login = site.create_user("vcal")
    auth = (login, STRONG)
    calendar = f"{site.url}/dav/cal/{login.replace('@', '%40')}/default/"
    headers = {"Content-Type": "text/calendar"}
    assert requests.put(calendar + "remote.ics", event("remote@test", summary="Remote"), auth=auth,
                        headers=headers).status_code == 201
    sync = vdirsyncer(tmp_path, site.url, login, "a wins")
    sync("discover", "calendars")
    sync("sync")
    local = tmp_path / "calendars" / "default"
    (remote_file,) = local.glob("*.ics")
    assert "SUMMARY:Remote" in remote_file.read_text()

    # A local event reaches the server (found by a time-range query too); a server change comes back.
    (local / "local.ics").write_text(event("local@test", "20260107T100000Z", "20260107T110000Z", "Local"))
    sync("sync")
    listing = requests.request("PROPFIND", calendar, auth=auth, headers={"Depth": "1"})
    names = sorted(h.text.rsplit("/", 1)[-1] for h in etree.fromstring(listing.content).iter("{DAV:}href"))
    assert len(names) == 3 and "remote.ics" in names  # the calendar, the remote event, the local one
    client = caldav.DAVClient(url=calendar, username=login, password=STRONG)
    week = client.calendar(url=calendar).search(start=datetime(2026, 1, 6, tzinfo=timezone.utc),
                                                end=datetime(2026, 1, 8, tzinfo=timezone.utc), event=True)
    assert [str(e.icalendar_component["SUMMARY"]) for e in week] == ["Local"]
    local_href = str(week[0].url)
    tag = requests.head(calendar + "remote.ics", auth=auth).headers["ETag"]
    assert requests.put(calendar + "remote.ics", event("remote@test", summary="Remote Renamed"), auth=auth,
                        headers={**headers, "If-Match": tag}).status_code == 204
    sync("sync")
    assert "SUMMARY:Remote Renamed" in remote_file.read_text()

    # The same event changed on both sides: the local one wins (the pair's policy), so vdirsyncer
    # overwrites the server's with If-Match on the etag it saw; nothing is duplicated.
    tag = requests.head(local_href, auth=auth).headers["ETag"]
    assert requests.put(local_href, event("local@test", "20260107T100000Z", "20260107T110000Z", "Server Side"),
                        auth=auth, headers={**headers, "If-Match": tag}).status_code == 204
    local_file = next(p for p in local.glob("*.ics") if "local@test" in p.read_text())
    local_file.write_text(event("local@test", "20260107T100000Z", "20260107T110000Z", "Client Side"))
    out = sync("sync")
    assert "conflict resolution for item local@test" in out and "updating) item local@test to calendars_remote" in out
    assert "SUMMARY:Client Side" in requests.get(local_href, auth=auth).text
    assert "SUMMARY:Client Side" in local_file.read_text()
    assert len(list(local.glob("*.ics"))) == 2

    # A local deletion deletes on the server; then there is nothing left to do.
    remote_file.unlink()
    sync("sync")
    assert requests.get(calendar + "remote.ics", auth=auth).status_code == 404
    quiet = sync("sync")
    assert "Copying" not in quiet and "Deleting" not in quiet and "conflict" not in quiet.lower(), quiet
