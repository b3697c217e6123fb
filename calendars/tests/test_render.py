"""calendar-data: partial selection, expand, limit-recurrence-set, limit-freebusy-set, time zones
by reference; and free-busy over several calendars."""
from datetime import datetime, timezone

import icalendar
import pytest
from lxml import etree

from calendars import query, services
from calendars.errors import CalendarError

from .conftest import event, sample

UTC = timezone.utc
NS = 'xmlns:C="urn:ietf:params:xml:ns:caldav"'


def spec(inner: str):
    return query.parse_data_spec(etree.fromstring(f"<C:calendar-data {NS}>{inner}</C:calendar-data>".encode()))


def parsed(text: str) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(text)


@pytest.fixture
def standup(work):
    return services.put_object(work, "s.ics", sample("apple_weekly.ics")).object


def test_whole_data_when_nothing_is_selected(standup):
    assert query.render(standup, query.parse_data_spec(None)) == standup.data
    assert query.parse_data_spec(etree.fromstring(f"<C:calendar-data {NS}/>".encode())) is None


def test_expand_gives_utc_instances_without_duplicating_overrides(standup):
    text = query.render(standup, spec('<C:expand start="20260126T000000Z" end="20260210T000000Z"/>'))
    cal = parsed(text)
    events = cal.walk("VEVENT")
    assert not cal.walk("VTIMEZONE")
    # 26 Jan is excluded; 2 Feb moved to 3 Feb; 9 Feb is a plain instance: two instances.
    starts = sorted(e.decoded("DTSTART") for e in events)
    assert starts == [datetime(2026, 2, 3, 15, 30, tzinfo=UTC), datetime(2026, 2, 9, 14, 30, tzinfo=UTC)]
    for e in events:
        assert "RRULE" not in e and "EXDATE" not in e
        assert e.decoded("RECURRENCE-ID").tzinfo is not None
        assert e.decoded("DTSTART").utcoffset().total_seconds() == 0
    rids = sorted(e.decoded("RECURRENCE-ID") for e in events)
    assert rids == [datetime(2026, 2, 2, 14, 30, tzinfo=UTC), datetime(2026, 2, 9, 14, 30, tzinfo=UTC)]
    assert [str(e["SUMMARY"]) for e in events if e.decoded("DTSTART").day == 3] == ["Team standup (moved to Tuesday)"]


def test_expand_is_capped(work, settings):
    obj = services.put_object(work, "d.ics", event("d", ":20260101T000000Z", ":20260101T000100Z",
                                                   extra="RRULE:FREQ=HOURLY")).object
    settings.CALENDAR_MAX_RECURRENCE_EXPANSIONS = 100
    with pytest.raises(CalendarError) as info:
        query.render(obj, spec('<C:expand start="20260101T000000Z" end="20260110T000000Z"/>'))
    assert info.value.condition == "number-of-matches-within-limits" and info.value.status == 507


def test_limit_recurrence_set_keeps_master_and_touching_overrides(standup):
    inside = parsed(query.render(standup, spec('<C:limit-recurrence-set start="20260201T000000Z" '
                                               'end="20260205T000000Z"/>')))
    assert len(inside.walk("VEVENT")) == 2
    outside = parsed(query.render(standup, spec('<C:limit-recurrence-set start="20260301T000000Z" '
                                                'end="20260305T000000Z"/>')))
    assert [("RECURRENCE-ID" in e) for e in outside.walk("VEVENT")] == [False]
    assert outside.walk("VTIMEZONE")


def test_partial_selection(standup):
    selection = spec('<C:comp name="VCALENDAR"><C:prop name="VERSION"/>'
                     '<C:comp name="VEVENT"><C:prop name="SUMMARY"/><C:prop name="UID"/>'
                     '<C:prop name="DTSTART" novalue="yes"/></C:comp></C:comp>')
    cal = parsed(query.render(standup, selection))
    assert "PRODID" not in cal and str(cal["VERSION"]) == "2.0"
    assert not cal.walk("VTIMEZONE") and not cal.walk("VALARM")
    for e in cal.walk("VEVENT"):
        assert set(e.keys()) <= {"SUMMARY", "UID", "DTSTART"} and "UID" in e
    everything = spec('<C:comp name="VCALENDAR"><C:allprop/><C:allcomp/></C:comp>')
    assert len(parsed(query.render(standup, everything)).walk("VALARM")) == 1


def test_bad_selections(standup):
    for body in ('<C:expand start="x"/>', '<C:expand start="20260101T000000Z" end="20260102T000000Z"/>'
                 '<C:limit-recurrence-set start="20260101T000000Z" end="20260102T000000Z"/>', '<C:unknown/>'):
        with pytest.raises(CalendarError):
            spec(body)
    with pytest.raises(CalendarError) as info:
        query.parse_data_spec(etree.fromstring(f'<C:calendar-data {NS} content-type="application/json"/>'.encode()))
    assert info.value.condition == "supported-calendar-data"


def test_timezones_by_reference_are_left_out_on_request(work, standup):
    text = query.render(standup, None, timezones=False)
    assert "BEGIN:VTIMEZONE" not in text and "TZID=America/New_York" in text
    outlook = services.put_object(work, "o.ics", sample("outlook_dst.ics")).object
    # A zone that is not an IANA one stays: the client could not resolve it otherwise.
    assert "BEGIN:VTIMEZONE" in query.render(outlook, None, timezones=False)


def test_limit_freebusy_set(work):
    data = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\n"
            b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nDTEND:20260110T000000Z\r\n"
            b"FREEBUSY:20260102T100000Z/20260102T110000Z,20260105T100000Z/PT1H\r\n"
            b"END:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    obj = services.put_object(work, "fb.ics", data).object
    text = query.render(obj, spec('<C:limit-freebusy-set start="20260104T000000Z" end="20260106T000000Z"/>'))
    assert "20260105T100000Z" in text and "20260102T100000Z" not in text


# --- free-busy ----------------------------------------------------------------------------

def test_free_busy_respects_transp_status_and_transparent_calendars(jane, work):
    personal = services.create_calendar(jane, "personal", transparent=True)
    services.put_object(work, "busy.ics", event("b", ":20260601T090000Z", ":20260601T100000Z"))
    services.put_object(work, "overlap.ics", event("o", ":20260601T093000Z", ":20260601T103000Z"))
    services.put_object(work, "tentative.ics", event("t", ":20260601T120000Z", ":20260601T130000Z",
                                                     extra="STATUS:TENTATIVE"))
    services.put_object(work, "cancelled.ics", event("c", ":20260601T140000Z", ":20260601T150000Z",
                                                     extra="STATUS:CANCELLED"))
    services.put_object(work, "transparent.ics", event("tr", ":20260601T160000Z", ":20260601T170000Z",
                                                       extra="TRANSP:TRANSPARENT"))
    services.put_object(work, "floating.ics", sample("floating.ics"))  # 12:00-13:00 floating on 10 June
    services.put_object(personal, "gym.ics", event("g", ":20260601T180000Z", ":20260601T190000Z"))
    text = query.free_busy([work, personal], datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    fb = parsed(text).walk("VFREEBUSY")[0]
    lines = [line for line in text.splitlines() if line.startswith("FREEBUSY")]
    assert lines == ["FREEBUSY;FBTYPE=BUSY:20260601T090000Z/20260601T103000Z",
                     "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20260601T120000Z/20260601T130000Z"]
    assert fb.decoded("DTSTART") == datetime(2026, 6, 1, tzinfo=UTC)
    from zoneinfo import ZoneInfo

    june10 = query.free_busy([work], datetime(2026, 6, 10, tzinfo=UTC), datetime(2026, 6, 11, tzinfo=UTC),
                             tz=ZoneInfo("Europe/Berlin"))
    assert "FREEBUSY;FBTYPE=BUSY:20260610T100000Z/20260610T110000Z" in june10


def test_free_busy_reads_open_series_past_the_index(work, settings):
    settings.CALENDAR_INDEX_HORIZON_DAYS = 30
    services.put_object(work, "weekly.ics", event("w", ":20260105T090000Z", ":20260105T100000Z",
                                                  extra="RRULE:FREQ=WEEKLY;BYDAY=MO"))
    text = query.free_busy([work], datetime(2031, 1, 6, tzinfo=UTC), datetime(2031, 1, 7, tzinfo=UTC))
    assert "FREEBUSY;FBTYPE=BUSY:20310106T090000Z/20310106T100000Z" in text


def test_free_busy_of_other_accounts_needs_membership(jane, bob, work):
    assert query.readable_calendars(jane, bob) == []
    assert [c.slug for c in query.readable_calendars(jane, jane)] == ["work"]
