"""calendar-query over the store (RFC 4791 §9.7), checked against recurring-ical-events run on
the raw data; the index answers time ranges in a constant number of queries."""
from datetime import datetime, timedelta, timezone

import icalendar
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
import recurring_ical_events
from lxml import etree

from calendars import query, services
from calendars.errors import CalendarError
from calendars.models import Occurrence

from .conftest import event, sample

UTC = timezone.utc
NS = 'xmlns:C="urn:ietf:params:xml:ns:caldav"'


def xml(text: str):
    return etree.fromstring(text.encode())


def time_filter(start: str | None, end: str | None, comp: str = "VEVENT"):
    attrs = "".join(f' {k}="{v}"' for k, v in (("start", start), ("end", end)) if v)
    return xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="{comp}">'
               f'<C:time-range{attrs}/></C:comp-filter></C:comp-filter></C:filter>')


def names(objects):
    return sorted(o.name for o in objects)


REAL = ["apple_weekly.ics", "outlook_dst.ics", "tz_by_reference.ics", "rdate.ics"]


@pytest.fixture
def loaded(work):
    for name in REAL:
        services.put_object(work, name, sample(name))
    services.put_object(work, "google.ics", sample("google_allday.ics", drop=("METHOD:",)))
    services.put_object(work, "todo.ics", sample("thunderbird_todo.ics"))
    return work


WINDOWS = [
    ("20260101T000000Z", "20260112T000000Z"),
    ("20260112T140000Z", "20260112T143100Z"),
    ("20260126T000000Z", "20260127T000000Z"),  # the EXDATE'd Monday
    ("20260202T000000Z", "20260203T000000Z"),  # the moved Monday (now on Tuesday)
    ("20260203T000000Z", "20260204T000000Z"),
    ("20260328T220000Z", "20260329T010000Z"),  # the spring-forward night in Berlin
    ("20260330T000000Z", "20260331T000000Z"),
    ("20260915T000000Z", "20260916T000000Z"),
    ("20261001T000000Z", "20261101T000000Z"),
    ("20300101T000000Z", "20310101T000000Z"),
    ("20500101T000000Z", "20510101T000000Z"),  # past the index horizon of the open yearly event
]


def oracle(work, start, end, tz=UTC):
    """Which objects recurring-ical-events finds in [start, end) on the raw data; floating
    (all-day) instances read in `tz`."""
    out = []
    low, high = services.parse_utc(start), services.parse_utc(end)
    for obj in services.list_objects(work):
        obj.refresh_from_db()
        if obj.component != "VEVENT":
            continue
        cal = icalendar.Calendar.from_ical(obj.data)
        found = recurring_ical_events.of(cal).between(low - timedelta(days=2), high + timedelta(days=2))
        for comp in found:
            s, e = comp.decoded("DTSTART"), comp.decoded("DTEND") if "DTEND" in comp else None
            if not isinstance(s, datetime):
                s = datetime(s.year, s.month, s.day, tzinfo=tz)
                e = datetime(e.year, e.month, e.day, tzinfo=tz) if e else s + timedelta(days=1)
            elif e is None:
                e = s + comp.decoded("DURATION") if "DURATION" in comp else s
            if s.tzinfo is None:
                s, e = s.replace(tzinfo=tz), e.replace(tzinfo=tz)
            if s < high and e > low:
                out.append(obj.name)
                break
    return sorted(out)


@pytest.mark.parametrize("start, end", WINDOWS)
def test_time_range_matches_recurring_ical_events(loaded, start, end):
    assert names(query.calendar_query(loaded, time_filter(start, end))) == oracle(loaded, start, end)


def test_expected_hits_by_hand(loaded):
    def q(s, e):
        return names(query.calendar_query(loaded, time_filter(s, e)))

    assert q("20260126T000000Z", "20260127T000000Z") == []  # EXDATE
    assert q("20260202T000000Z", "20260203T000000Z") == []  # moved away
    assert q("20260203T153000Z", "20260203T160000Z") == ["apple_weekly.ics"]  # moved here
    assert q("20260329T003000Z", "20260329T003100Z") == ["tz_by_reference.ics"]
    assert q("20260314T000000Z", "20260315T000000Z") == ["google.ics"]  # all-day yearly, in UTC
    assert q("20500314T000000Z", "20500315T000000Z") == ["google.ics"]  # long past the index horizon
    assert q("20261006T170000Z", "20261006T173000Z") == ["rdate.ics"]


def test_open_ended_range(loaded):
    found = names(query.calendar_query(loaded, time_filter("20270101T000000Z", None)))
    assert found == ["google.ics"]
    found = names(query.calendar_query(loaded, time_filter(None, "20260113T000000Z")))
    assert found == ["apple_weekly.ics", "google.ics"]


def test_floating_times_read_in_the_query_zone(work):
    services.put_object(work, "f.ics", sample("floating.ics"))
    flt = time_filter("20260610T100000Z", "20260610T103000Z")
    # 12:00 floating is 10:00 UTC in Berlin (summer), 12:00 UTC in UTC, 16:00 UTC in New York.
    assert names(query.calendar_query(work, flt)) == []
    berlin = query.query_zone(work, timezone_id="Europe/Berlin")
    assert names(query.calendar_query(work, flt, tz=berlin)) == ["f.ics"]
    services.update_calendar(work, timezone_id="Europe/Berlin")
    assert names(query.calendar_query(work, flt)) == ["f.ics"]
    ny = query.query_zone(work, timezone_id="America/New_York")
    assert names(query.calendar_query(work, time_filter("20260610T160000Z", "20260610T163000Z"), tz=ny)) == ["f.ics"]
    with pytest.raises(CalendarError) as info:
        query.query_zone(work, timezone_id="No/Where")
    assert info.value.condition == "valid-timezone"


def test_vtodo_time_ranges(work):
    services.put_object(work, "due.ics", sample("thunderbird_todo.ics"))
    services.put_object(work, "nodates.ics", event("nd", "", component="VTODO"))
    services.put_object(work, "start.ics", event("st", ":20260701T100000Z", component="VTODO"))

    def q(s, e):
        return names(query.calendar_query(work, time_filter(s, e, "VTODO")))

    # DUE 2026-05-31 16:00 UTC: (start < DUE) and (end >= DUE).
    assert "due.ics" in q("20260531T150000Z", "20260531T160000Z")
    assert "due.ics" not in q("20260531T160000Z", "20260531T170000Z")
    # A task without dates matches every range.
    assert q("19990101T000000Z", "19990102T000000Z") == ["nodates.ics"]
    assert "start.ics" in q("20260701T100000Z", "20260701T100001Z")


def test_non_time_filters_parse_only_candidates(loaded):
    summary = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                  '<C:prop-filter name="SUMMARY"><C:text-match>STANDUP</C:text-match></C:prop-filter>'
                  '</C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, summary)) == ["apple_weekly.ics"]
    octet = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                '<C:prop-filter name="SUMMARY"><C:text-match collation="i;octet">STANDUP</C:text-match>'
                '</C:prop-filter></C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, octet)) == []
    negate = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                 '<C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">standup</C:text-match>'
                 '</C:prop-filter></C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, negate)) == ["google.ics", "outlook_dst.ics", "rdate.ics",
                                                           "tz_by_reference.ics"]
    uid = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
              '<C:prop-filter name="UID"><C:text-match collation="i;octet">rdate-course@example.com</C:text-match>'
              '</C:prop-filter></C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, uid)) == ["rdate.ics"]
    param = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                '<C:prop-filter name="ATTENDEE"><C:text-match>bob@example.org</C:text-match>'
                '<C:param-filter name="PARTSTAT"><C:text-match>needs-action</C:text-match></C:param-filter>'
                '</C:prop-filter></C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, param)) == ["tz_by_reference.ics"]
    missing = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
                  '<C:prop-filter name="LOCATION"><C:is-not-defined/></C:prop-filter>'
                  '</C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, missing)) == ["apple_weekly.ics", "rdate.ics", "tz_by_reference.ics"]
    no_todo = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
                  '<C:is-not-defined/></C:comp-filter></C:comp-filter></C:filter>')
    assert "todo.ics" not in names(query.calendar_query(loaded, no_todo))
    everything = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"/></C:filter>')
    assert len(query.calendar_query(loaded, everything)) == 6


def test_time_range_with_a_text_match_checks_instances(loaded):
    flt = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
              '<C:time-range start="20260203T000000Z" end="20260204T000000Z"/>'
              '<C:prop-filter name="SUMMARY"><C:text-match>moved</C:text-match></C:prop-filter>'
              '</C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, flt)) == ["apple_weekly.ics"]
    flt2 = xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
               '<C:time-range start="20260209T000000Z" end="20260210T000000Z"/>'
               '<C:prop-filter name="SUMMARY"><C:text-match>moved</C:text-match></C:prop-filter>'
               '</C:comp-filter></C:comp-filter></C:filter>')
    assert names(query.calendar_query(loaded, flt2)) == []


def test_alarm_time_range(loaded):
    def alarms(s, e, comp="VEVENT"):
        return xml(f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="{comp}">'
                   f'<C:comp-filter name="VALARM"><C:time-range start="{s}" end="{e}"/></C:comp-filter>'
                   '</C:comp-filter></C:comp-filter></C:filter>')

    # The standup's alarm 15 minutes before 09:30 New York on 16 Feb: 14:15 UTC.
    assert names(query.calendar_query(loaded, alarms("20260216T141000Z", "20260216T142000Z"))) == ["apple_weekly.ics"]
    assert names(query.calendar_query(loaded, alarms("20260216T142000Z", "20260216T143000Z"))) == []
    # The task's alarm one day before its due time (RELATED=END).
    assert names(query.calendar_query(loaded, alarms("20260530T155900Z", "20260530T160100Z", "VTODO"))) == ["todo.ics"]


@pytest.mark.parametrize("body, condition", [
    (f'<C:filter {NS}/>', "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VEVENT"/></C:filter>', "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
     '<C:time-range start="2026-01-01"/></C:comp-filter></C:comp-filter></C:filter>', "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
     '<C:time-range/></C:comp-filter></C:comp-filter></C:filter>', "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
     '<C:time-range start="20260102T000000Z" end="20260101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>',
     "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
     '<C:prop-filter name="SUMMARY"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>'
     '</C:comp-filter></C:comp-filter></C:filter>', "supported-collation"),
    (f'<C:filter {NS}>' + '<C:comp-filter name="VCALENDAR">' * 50 + '</C:comp-filter>' * 50 + '</C:filter>',
     "valid-filter"),
    (f'<C:filter {NS}><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
     + '<C:prop-filter name="X"/>' * 500 + '</C:comp-filter></C:comp-filter></C:filter>', "valid-filter"),
])
def test_bad_filters(work, body, condition):
    with pytest.raises(CalendarError) as info:
        query.calendar_query(work, xml(body))
    assert info.value.condition == condition and info.value.status == 403


def test_time_range_over_1000_events_is_a_constant_number_of_queries(work, django_assert_max_num_queries):
    base = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    for n in range(1000):
        start = base + timedelta(hours=7 * n)
        extra = "RRULE:FREQ=WEEKLY;COUNT=10" if n % 10 == 0 else ""
        floating = n % 25 == 0
        fmt = "%Y%m%dT%H%M%S" + ("" if floating else "Z")
        services.put_object(work, f"e{n}.ics", event(f"e{n}", ":" + start.strftime(fmt),
                                                     ":" + (start + timedelta(hours=1)).strftime(fmt), extra=extra))
    flt = time_filter("20260301T000000Z", "20260308T000000Z")
    with django_assert_max_num_queries(2):
        found = query.calendar_query(work, flt)
    assert 20 < len(found) < 60
    # The same answer as recurring-ical-events on the raw data.
    assert names(found) == oracle(work, "20260301T000000Z", "20260308T000000Z")


def test_spans_of_every_length_around_a_range(work, django_assert_max_num_queries):
    """The index reads short spans by their start near the range and long ones by their own
    index: a span starting weeks before the range, one just over the LONG_SPAN bound, a
    floating all-day one and a short one ending at the range's start must each be placed."""
    cases = {
        "month": (":20260510T090000Z", ":20260610T090000Z"),        # long, started weeks before
        "just-long": (":20260530T000000Z", ":20260601T010000Z"),    # a little over two days
        "just-short": (":20260530T020000Z", ":20260601T010000Z"),   # a little under two days
        "allday": (";VALUE=DATE:20260531", ";VALUE=DATE:20260602"),  # floating, two days
        "before": (":20260531T230000Z", ":20260601T000000Z"),       # ends as the range starts
        "after": (":20260608T000000Z", ":20260608T010000Z"),        # starts as it ends
        "far": (":20260401T000000Z", ":20260402T000000Z"),
    }
    for uid, (start, end) in cases.items():
        services.put_object(work, f"{uid}.ics", event(uid, start, end))
    assert set(Occurrence.objects.filter(long=True).values_list("object__uid", flat=True)) == {"month", "just-long"}
    flt = time_filter("20260601T000000Z", "20260608T000000Z")
    with django_assert_max_num_queries(2):
        found = query.calendar_query(work, flt)
    assert names(found) == ["allday.ics", "just-long.ics", "just-short.ics", "month.ics"]
    assert names(found) == oracle(work, "20260601T000000Z", "20260608T000000Z")


@pytest.mark.django_db(transaction=True)
def test_the_migration_marks_the_long_spans_stored_before_it(make_account):
    account = make_account("olduser")
    cal = services.create_calendar(account, "old")
    services.put_object(cal, "week.ics", event("week", ";VALUE=DATE:20260601", ";VALUE=DATE:20260608"))
    services.put_object(cal, "hour.ics", event("hour", ":20260601T090000Z", ":20260601T100000Z"))
    executor = MigrationExecutor(connection)
    target = [("calendars", "0006_calendarscheduling_scheduling_fields")]
    executor.migrate(target)
    try:
        old = executor.loader.project_state(target).apps.get_model("calendars", "Occurrence")
        assert old.objects.count() == 2  # the rows survive the way back, without the column
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert dict(Occurrence.objects.values_list("object__uid", "long")) == {"week": True, "hour": False}
    found = query.calendar_query(cal, time_filter("20260606T000000Z", "20260607T000000Z"))
    assert names(found) == ["week.ics"]
