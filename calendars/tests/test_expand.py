"""The index's expansion of a series reads each instance's span straight from recurring-ical-events'
occurrences; these hold it to what the library's own instance components give (`as_component`, then
`span_of`), on real exports and on the shapes that make spans differ."""
from datetime import datetime, timedelta, timezone

import pytest
import recurring_ical_events

from calendars import ical

from .conftest import event, sample

UTC = timezone.utc
HORIZON = datetime(2031, 1, 1, tzinfo=UTC)

SERIES = {
    "weekly timed": event("a", ":20260105T100000Z", ":20260105T110000Z", extra="RRULE:FREQ=WEEKLY;COUNT=52"),
    "daily all-day": event("b", ";VALUE=DATE:20260601", ";VALUE=DATE:20260602",
                           extra="RRULE:FREQ=DAILY;COUNT=30"),
    "floating with duration": event("c", ":20260601T090000", extra="DURATION:PT90M\nRRULE:FREQ=DAILY;COUNT=10"),
    "zoned across DST": event("d", ";TZID=Europe/Berlin:20260320T090000", ";TZID=Europe/Berlin:20260320T100000",
                              extra="RRULE:FREQ=DAILY;UNTIL=20260410T080000Z"),
    "transparent and cancelled": event("e", ":20260105T100000Z", ":20260105T110000Z",
                                       extra="TRANSP:TRANSPARENT\nSTATUS:CANCELLED\nRRULE:FREQ=WEEKLY;COUNT=5"),
    "a moment": event("f", ":20260105T100000Z", extra="RRULE:FREQ=DAILY;COUNT=5"),
    "rdate periods": event("g", ":20260105T100000Z", ":20260105T110000Z",
                           extra="RDATE;VALUE=PERIOD:20260110T100000Z/20260110T150000Z,20260112T100000Z/PT3H"),
    "endless yearly": event("h", ";VALUE=DATE:20200229", extra="RRULE:FREQ=YEARLY"),
    "endless hourly": event("i", ":20260105T100000Z", ":20260105T103000Z", extra="RRULE:FREQ=HOURLY"),
    "before 1970": event("j", ":19650105T100000Z", ":19650105T110000Z", extra="RRULE:FREQ=WEEKLY;COUNT=4"),
    "todo with due": event("k", ":20260105T100000Z", ":20260106T100000Z", component="VTODO",
                           extra="RRULE:FREQ=WEEKLY;COUNT=8"),
    "todo with duration": event("l", ":20260105T100000Z", component="VTODO",
                                extra="DURATION:PT2H\nRRULE:FREQ=DAILY;COUNT=4"),
    "todo with start only": event("m", ":20260105T100000Z", component="VTODO", extra="RRULE:FREQ=DAILY;COUNT=4"),
    "journal by date": event("n", ";VALUE=DATE:20260105", component="VJOURNAL", extra="RRULE:FREQ=DAILY;COUNT=4"),
}

# An override that moves one instance and changes its status, and a THISANDFUTURE override.
OVERRIDES = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:o\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
    b"DTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=10\r\nEXDATE:20260112T100000Z\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:o\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260119T100000Z\r\n"
    b"DTSTART:20260120T150000Z\r\nDTEND:20260120T170000Z\r\nSTATUS:TENTATIVE\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:o\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20260202T100000Z\r\n"
    b"DTSTART:20260202T120000Z\r\nDTEND:20260202T140000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)

CASES = {**SERIES, "overrides": OVERRIDES,
         **{name: sample(name) for name in ("apple_weekly.ics", "outlook_dst.ics", "tz_by_reference.ics", "rdate.ics",
                                            "thunderbird_todo.ics")}}


def library_spans(cal, component: str, start: datetime, end: datetime) -> list[ical.Span]:
    """The library's own instance components for [start, end), each read by `span_of`."""
    found = recurring_ical_events.of(cal, components=[component]).between(start, end)
    spans = [span for span in map(ical.span_of, found) if span is not None]
    return sorted(spans, key=lambda s: (s.utc(UTC)[0], s.utc(UTC)[1]))


def component_of(cal) -> str:
    return next(c.name for c in cal.subcomponents if c.name in ("VEVENT", "VTODO", "VJOURNAL"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_instance_spans_match_the_library(name):
    cal = ical.parse(CASES[name], max_size=10**6)
    component = component_of(cal)
    expansion = ical.expand(cal, component, max_instances=3000, horizon=HORIZON)
    got = sorted(expansion.spans, key=lambda s: (s.utc(UTC)[0], s.utc(UTC)[1]))
    stop = expansion.indexed_until or ical.MAX - timedelta(days=2)
    if expansion.indexed_until is not None:  # the index stops before the first instance at its end
        stop -= timedelta(microseconds=1)
    want = library_spans(cal, component, ical.MIN + timedelta(days=2), stop)
    if not ical._recurring(cal, component):
        want = [ical.span_of(c) for c in cal.walk(component)]
    assert got == want
    assert got, "every case has instances"


def test_series_before_1970_is_indexed_whole():
    cal = ical.parse(SERIES["before 1970"], max_size=10**6)
    expansion = ical.expand(cal, "VEVENT", max_instances=3000, horizon=HORIZON)
    assert [s.start for s in expansion.spans] == [datetime(1965, 1, 5, 10, tzinfo=UTC) + timedelta(weeks=k)
                                                 for k in range(4)]
    assert expansion.first_start == datetime(1965, 1, 5, 10, tzinfo=UTC)


def test_overrides_move_and_change_instances():
    cal = ical.parse(OVERRIDES, max_size=10**6)
    spans = ical.expand(cal, "VEVENT", max_instances=3000, horizon=HORIZON).spans
    starts = [s.start for s in spans]
    assert datetime(2026, 1, 12, 10, tzinfo=UTC) not in starts  # EXDATE
    moved = next(s for s in spans if s.start == datetime(2026, 1, 20, 15, tzinfo=UTC))
    assert moved.busy == ical.TENTATIVE
    # THISANDFUTURE moves every later instance by two hours and lengthens it by one
    later = [s for s in spans if s.start >= datetime(2026, 2, 2, tzinfo=UTC)]
    assert later and all(s.start.hour == 12 and s.end - s.start == timedelta(hours=2) for s in later)
    assert len(spans) == 9


def test_endless_series_stops_at_the_instance_limit():
    cal = ical.parse(SERIES["endless hourly"], max_size=10**6)
    expansion = ical.expand(cal, "VEVENT", max_instances=100, horizon=HORIZON)
    assert len(expansion.spans) == 100
    assert expansion.indexed_until == datetime(2026, 1, 9, 14, tzinfo=UTC)
    assert expansion.last_end is None
