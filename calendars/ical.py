"""iCalendar in, spans out: parsing under limits, the checks of RFC 4791 §4.1 and §5.3.2, and the
instance spans of a resource (recurring-ical-events), for the occurrence index and for queries.

Nothing here touches the database. Times are compared as UTC; a floating time (no time zone, or
an all-day date) is kept naive and marked, to be placed in a time zone by whoever asks.
"""
from __future__ import annotations

import itertools
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone as dt_timezone
from functools import lru_cache

import icalendar
import recurring_ical_events
from dateutil import rrule

from .errors import CalendarError
from .models import COMPONENTS

UTC = dt_timezone.utc
# The index's ends of time: a span without a start or an end reaches them. A day inside the
# datetime range, so that moving a floating time by a zone's offset never overflows.
MIN = datetime(1, 1, 2, tzinfo=UTC)
MAX = datetime(9999, 12, 30, tzinfo=UTC)
# RFC 4791 §9.9 mixes "<" and "<=" by case; one microsecond added to an end (or taken from a
# start) turns each case into the one open-interval overlap test the index runs.
EPSILON = timedelta(microseconds=1)
# The widest UTC offset of any zone (UTC+14, UTC-12) and then some.
FLOAT_SLACK = timedelta(hours=15)
# Components may nest (VEVENT > VALARM), but never deeper than this in real data; the parser
# and serializer recurse, so a deep hostile nesting is refused before parsing.
MAX_DEPTH = 8
MAX_UID_LENGTH = 255
FREE, BUSY, TENTATIVE = 0, 1, 2


@dataclass
class Span:
    start: datetime  # UTC aware, or naive when floating
    end: datetime
    floating: bool
    busy: int

    def utc(self, tz: zoneinfo.ZoneInfo | dt_timezone) -> tuple[datetime, datetime]:
        """The span in UTC, a floating one read in `tz`."""
        if not self.floating:
            return self.start, self.end
        return to_utc(self.start, tz), to_utc(self.end, tz)


@dataclass
class Expansion:
    spans: list[Span] = field(default_factory=list)
    first_start: datetime | None = None
    last_end: datetime | None = None  # None: no end (an RRULE without COUNT or UNTIL)
    indexed_until: datetime | None = None  # None: `spans` holds every instance


@dataclass
class Parsed:
    text: str
    calendar: icalendar.Calendar
    uid: str
    component: str
    has_alarms: bool


def to_utc(value: datetime, tz) -> datetime:
    """A naive (floating) moment read in `tz`, in UTC; clamped to the index's ends of time."""
    if value.tzinfo is not None:
        return value
    if value <= MIN.replace(tzinfo=None):
        return MIN
    if value >= MAX.replace(tzinfo=None):
        return MAX
    return value.replace(tzinfo=tz).astimezone(UTC)


@lru_cache(maxsize=1024)
def known_timezone(tzid: str) -> bool:
    """Is `tzid` an IANA zone this server knows (RFC 7809: referenced, not included)?"""
    if not tzid or len(tzid) > 64 or "\0" in tzid or ".." in tzid or tzid.startswith("/"):
        return False
    try:
        zoneinfo.ZoneInfo(tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def zone(tzid: str | None):
    """The ZoneInfo of an IANA id, UTC when unknown or absent."""
    return zoneinfo.ZoneInfo(tzid) if tzid and known_timezone(tzid) else UTC


def zone_of_vtimezone(text: str):
    """The time zone a VCALENDAR holding one VTIMEZONE (calendar-timezone, C:timezone) stands for:
    its IANA zone when the TZID is one, else the VTIMEZONE's own rules; UTC when there is none."""
    try:
        cal = icalendar.Calendar.from_ical(text)
    except Exception:  # noqa: BLE001 - any parse failure is "not a time zone"
        raise CalendarError("valid-calendar-data", "The time zone is not valid iCalendar.")
    for tz in cal.walk("VTIMEZONE"):
        tzid = str(tz.get("TZID", ""))
        if known_timezone(tzid):
            return zoneinfo.ZoneInfo(tzid)
        try:
            return tz.to_tz()
        except Exception:  # noqa: BLE001 - a VTIMEZONE icalendar cannot turn into rules
            raise CalendarError("valid-calendar-data", "The time zone cannot be read.")
    raise CalendarError("valid-calendar-data", "There is no VTIMEZONE in the time zone.")


# --- parsing and validation -----------------------------------------------------------------

def _depth(text: str) -> int:
    depth = deepest = 0
    for line in text.splitlines():
        head = line[:6].upper()
        if head == "BEGIN:":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif line[:4].upper() == "END:":
            depth -= 1
    return deepest


def parse(data: bytes | str, *, max_size: int) -> icalendar.Calendar:
    """Parse one VCALENDAR within `max_size` octets, or raise the CalDAV precondition."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_size:
        raise CalendarError("max-resource-size", f"The calendar object is larger than {max_size} octets.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CalendarError("supported-calendar-data", "The calendar object is not UTF-8.")
    if "\0" in text:
        raise CalendarError("valid-calendar-data", "The calendar object holds a NUL character.")
    if text.lstrip("\ufeff\r\n\t ")[:15].upper() != "BEGIN:VCALENDAR":
        raise CalendarError("supported-calendar-data", "This is not a text/calendar object.")
    if _depth(text) > MAX_DEPTH:
        raise CalendarError("valid-calendar-data", f"Components are nested deeper than {MAX_DEPTH}.")
    try:
        cals = icalendar.Calendar.from_ical(text.lstrip("\ufeff"), multiple=True)
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise CalendarError("valid-calendar-data", f"The calendar object is not valid iCalendar: {exc}")
    if len(cals) != 1 or cals[0].name != "VCALENDAR":
        raise CalendarError("valid-calendar-data", "A calendar object is exactly one VCALENDAR.")
    cal = cals[0]
    errors = [error for _, error in getattr(cal, "errors", [])]
    for sub in cal.walk():
        errors.extend(error for _, error in getattr(sub, "errors", []))
    if errors:
        raise CalendarError("valid-calendar-data", f"The calendar object is not valid iCalendar: {errors[0]}")
    return cal


def _tzids(cal: icalendar.Calendar) -> tuple[set[str], set[str]]:
    """(TZIDs referenced by a property parameter, TZIDs defined by a VTIMEZONE)."""
    referenced, defined = set(), set()
    for comp in cal.walk():
        if comp.name == "VTIMEZONE":
            defined.add(str(comp.get("TZID", "")))
            continue
        if comp.name in ("STANDARD", "DAYLIGHT"):
            continue
        for value in comp.property_items(recursive=False, sorted=False):
            params = getattr(value[1], "params", None)
            if params and "TZID" in params:
                referenced.add(str(params["TZID"]))
    return referenced, defined


def inspect(data: bytes | str, *, max_size: int, max_attendees: int) -> Parsed:
    """Parse a resource and check RFC 4791 §4.1: one UID, one component type, no METHOD."""
    cal = parse(data, max_size=max_size)
    if "METHOD" in cal:
        raise CalendarError("valid-calendar-object-resource",
                            "A calendar object resource does not carry a METHOD property.")
    mains = [comp for comp in cal.subcomponents if comp.name in COMPONENTS]
    others = [comp for comp in cal.subcomponents if comp.name not in COMPONENTS and comp.name != "VTIMEZONE"]
    if not mains:
        raise CalendarError("valid-calendar-object-resource", "The calendar object has no event, task or journal.")
    unexpected = [comp.name for comp in others if not comp.name.startswith("X-")]
    if unexpected:
        raise CalendarError("valid-calendar-object-resource",
                            f"The calendar object holds an unexpected {unexpected[0]}.")
    kinds = {comp.name for comp in mains}
    if len(kinds) != 1:
        raise CalendarError("valid-calendar-object-resource",
                            "A calendar object resource holds one type of component.")
    uids = {str(comp.get("UID", "")) for comp in mains}
    if len(uids) != 1 or "" in uids:
        raise CalendarError("valid-calendar-object-resource",
                            "Every component of a calendar object resource has the same UID.")
    uid = uids.pop()
    if len(uid) > MAX_UID_LENGTH or "\0" in uid:
        raise CalendarError("valid-calendar-object-resource", f"A UID is at most {MAX_UID_LENGTH} characters.")
    masters = [comp for comp in mains if "RECURRENCE-ID" not in comp]
    if len(masters) > 1:
        raise CalendarError("valid-calendar-object-resource", "Two components of the object have no RECURRENCE-ID.")
    ids = [comp.get("RECURRENCE-ID").to_ical() for comp in mains if "RECURRENCE-ID" in comp]
    if len(ids) != len(set(ids)):
        raise CalendarError("valid-calendar-object-resource", "Two components override the same instance.")
    for comp in mains:
        if "DTSTART" not in comp and comp.name == "VEVENT" and "RRULE" in comp:
            raise CalendarError("valid-calendar-data", "A recurring event needs a DTSTART.")
        if "DTEND" in comp and "DURATION" in comp:
            raise CalendarError("valid-calendar-data", "An event has DTEND or DURATION, not both.")
        attendees = comp.get("ATTENDEE", [])
        count = len(attendees) if isinstance(attendees, list) else 1
        if count > max_attendees:
            raise CalendarError("max-attendees-per-instance",
                                f"An instance has more than {max_attendees} attendees.")
        for prop in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            if prop in comp:
                try:
                    comp.decoded(prop)
                except Exception:  # noqa: BLE001 - icalendar's errors on bad values vary
                    raise CalendarError("valid-calendar-data", f"{prop} is not a valid date or time.")
    referenced, defined = _tzids(cal)
    unknown = sorted(tzid for tzid in referenced - defined if not known_timezone(tzid))
    if unknown:
        raise CalendarError("valid-calendar-data",
                            f"The time zone {unknown[0]!r} is neither included nor a known IANA zone.")
    text = raw_text(data)
    has_alarms = any(sub.name == "VALARM" for comp in mains for sub in comp.subcomponents)
    return Parsed(text=text, calendar=cal, uid=uid, component=kinds.pop(), has_alarms=has_alarms)


def raw_text(data: bytes | str) -> str:
    text = bytes(data).decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
    return text.lstrip("\ufeff")


# --- instance spans ---------------------------------------------------------------------------

def _moment(value) -> tuple[datetime, bool, bool]:
    """(a datetime, floating?, is a date?) of a DATE or DATE-TIME value."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value, True, False
        return value.astimezone(UTC), False, False
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day), True, True
    raise TypeError(f"not a date: {value!r}")


def _shift(start: datetime, floating: bool, value) -> datetime:
    """An end given in another form than its start (one floating, one not) in the start's form."""
    moment, end_floating, _ = _moment(value)
    if end_floating == floating:
        return moment
    if floating:  # the start has no zone: read the end as UTC wall time
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(tzinfo=UTC)


def _busy(comp) -> int:
    if comp.name != "VEVENT":
        return FREE
    if str(comp.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return FREE
    status = str(comp.get("STATUS", "CONFIRMED")).upper()
    if status == "CANCELLED":
        return FREE
    return TENTATIVE if status == "TENTATIVE" else BUSY


def _decoded(comp, name):
    try:
        return comp.decoded(name) if name in comp else None
    except Exception:  # noqa: BLE001 - a bad value counts as absent here; inspect() refused it before
        return None


def span_of(comp) -> Span | None:
    """The RFC 4791 §9.9 span of one (instance) component, as an open interval; None when the
    component never matches a time range."""
    name = comp.name
    dtstart, dtend, due = _decoded(comp, "DTSTART"), _decoded(comp, "DTEND"), _decoded(comp, "DUE")
    duration = _decoded(comp, "DURATION")
    busy = _busy(comp)
    if dtstart is not None:
        start, floating, is_date = _moment(dtstart)
        if name in ("VEVENT", "VFREEBUSY", "VAVAILABILITY"):
            if dtend is not None:
                end = _shift(start, floating, dtend)
            elif isinstance(duration, timedelta):
                end = start + duration
            elif is_date:
                end = start + timedelta(days=1)
            else:
                end = start
            if end <= start:  # a moment: qs <= start < qe
                return Span(start, start + EPSILON, floating, FREE)
            return Span(start, end, floating, busy)
        if name == "VTODO":
            if isinstance(duration, timedelta):
                return Span(start, start + duration + EPSILON, floating, FREE)
            if due is not None:
                end = _shift(start, floating, due)
                if end <= start:
                    return Span(start - EPSILON, start + EPSILON, floating, FREE)
                return Span(start, end, floating, FREE)
            return Span(start, start + EPSILON, floating, FREE)
        if name == "VJOURNAL":
            if is_date:
                return Span(start, start + timedelta(days=1), floating, FREE)
            return Span(start, start + EPSILON, floating, FREE)
        return None
    if name == "VTODO":
        if due is not None:
            moment, floating, _ = _moment(due)
            return Span(moment - EPSILON, moment, floating, FREE)
        completed, created = _decoded(comp, "COMPLETED"), _decoded(comp, "CREATED")
        marks = [_moment(v) for v in (completed, created) if v is not None]
        if completed is not None:
            low = min(m for m, _, _ in marks)
            high = max(m for m, _, _ in marks)
            floating = marks[0][1]
            return Span(low - EPSILON, high + EPSILON, floating, FREE)
        if created is not None:
            moment, floating, _ = marks[0]
            return Span(moment, _bound(MAX, floating), floating, FREE)
        return Span(MIN, MAX, False, FREE)
    if name == "VFREEBUSY":
        found = [period for prop in _as_list(comp.get("FREEBUSY")) for period in periods(prop)]
        if not found:
            return None
        return Span(min(low for low, _ in found), max(high for _, high in found), False, FREE)
    return None


def periods(prop) -> list[tuple[datetime, datetime]]:
    """The (start, end) pairs of one FREEBUSY value (a period, or a list of them), in UTC."""
    out = []
    for period in getattr(prop, "dts", None) or [prop]:
        value = getattr(period, "dt", None)
        if not isinstance(value, tuple) or len(value) != 2:
            continue
        low, high = value
        if isinstance(high, timedelta):
            high = low + high
        if isinstance(low, datetime) and isinstance(high, datetime):
            low = low.replace(tzinfo=UTC) if low.tzinfo is None else low.astimezone(UTC)
            high = high.replace(tzinfo=UTC) if high.tzinfo is None else high.astimezone(UTC)
            out.append((low, high))
    return out


def _bound(value: datetime, floating: bool) -> datetime:
    return value.replace(tzinfo=None) if floating else value


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _finite(cal: icalendar.Calendar, component: str) -> bool:
    for comp in cal.walk(component):
        for rule in _as_list(comp.get("RRULE")):
            if "COUNT" not in rule and "UNTIL" not in rule:
                return False
    return True


def _count_rules(cal: icalendar.Calendar, component: str, limit: int) -> int:
    """How many instances the RRULEs and RDATEs of the masters give, counting at most `limit`
    per rule, lazily with dateutil: a finite rule of millions of instances is refused before
    recurring-ical-events, which computes a series to its end, ever sees it."""
    total = 0
    for comp in cal.walk(component):
        if "RECURRENCE-ID" in comp or "DTSTART" not in comp:
            continue
        start = comp.decoded("DTSTART")
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day)
        # Counted in wall time: an UNTIL in UTC moves by at most a day, which only matters to a
        # series of exactly the limit, and dateutil refuses to mix a zone with a floating UNTIL.
        start = start.replace(tzinfo=None)
        for rule in _as_list(comp.get("RRULE")):
            text = re.sub(r"(UNTIL=[0-9T]+)Z", r"\1", rule.to_ical().decode())
            try:
                series = rrule.rrulestr(text, dtstart=start, ignoretz=False, cache=False)
                total += sum(1 for _ in itertools.islice(iter(series), limit + 1))
            except (ValueError, TypeError, OverflowError):
                raise CalendarError("valid-calendar-data", "The recurrence rule cannot be read.")
        for rdate in _as_list(comp.get("RDATE")):
            total += len(getattr(rdate, "dts", []))
        if total > limit:
            break
    return total


def _recurring(cal: icalendar.Calendar, component: str) -> bool:
    return any("RRULE" in comp or "RDATE" in comp for comp in cal.walk(component))


def _cut(cal: icalendar.Calendar, component: str, limit: int) -> datetime | None:
    """The wall time of the (limit+1)-th instance of the earliest-ending RRULE of the masters,
    read lazily with dateutil (at most limit+1 steps); None when every rule stops before."""
    cuts = []
    for comp in cal.walk(component):
        if "RECURRENCE-ID" in comp or "DTSTART" not in comp:
            continue
        start = comp.decoded("DTSTART")
        if not isinstance(start, datetime):
            start = datetime(start.year, start.month, start.day)
        start = start.replace(tzinfo=None)
        for rule in _as_list(comp.get("RRULE")):
            text = re.sub(r"(UNTIL=[0-9T]+)Z", r"\1", rule.to_ical().decode())
            try:
                series = rrule.rrulestr(text, dtstart=start, cache=False)
                found = list(itertools.islice(iter(series), limit + 1))
            except (ValueError, TypeError, OverflowError):
                raise CalendarError("valid-calendar-data", "The recurrence rule cannot be read.")
            if len(found) > limit:
                cuts.append(found[-1])
    return min(cuts) if cuts else None


def _too_frequent(cal: icalendar.Calendar, component: str) -> bool:
    """An RRULE without end more often than hourly: its instances are endless and dense, and
    each query or free-busy past its index would walk through them from its start."""
    for comp in cal.walk(component):
        for rule in _as_list(comp.get("RRULE")):
            if "COUNT" not in rule and "UNTIL" not in rule:
                freq = [str(f).upper() for f in _as_list(rule.get("FREQ"))]
                if any(f in ("SECONDLY", "MINUTELY") for f in freq):
                    return True
    return False


def expand(cal: icalendar.Calendar, component: str, *, max_instances: int, horizon: datetime) -> Expansion:
    """Every instance span of the resource, for the index.

    A finite series (COUNT or UNTIL) with more than `max_instances` instances is refused
    (CALDAV:max-instances), counted lazily before any expansion; so is an endless one more
    often than hourly. An endless one is indexed up to `max_instances` instances or the first
    starting after `horizon`, whichever comes first, and `indexed_until` says where the rows
    stop. recurring-ical-events is only ever asked for a bounded window.
    """
    out = Expansion()
    window_end = None
    if not _recurring(cal, component):
        instances = [comp for comp in cal.walk(component)]
        finite = True
    else:
        finite = _finite(cal, component)
        if finite and _count_rules(cal, component, max_instances) > max_instances:
            raise CalendarError("max-instances", f"The object has more than {max_instances} instances.")
        if not finite and _too_frequent(cal, component):
            raise CalendarError("max-instances", "An endless recurrence may not repeat more often than hourly.")
        try:
            if finite:
                window_end = MAX - timedelta(days=2)
            else:
                cut = _cut(cal, component, max_instances)
                window_end = horizon if cut is None else min(horizon, cut.replace(tzinfo=UTC) + timedelta(days=1))
                window_end = min(window_end, MAX - timedelta(days=2))
            instances = _occurrences(cal, component, MIN + timedelta(days=2), window_end)
        except CalendarError:
            raise
        except Exception:  # noqa: BLE001 - the library's errors on broken rules vary
            raise CalendarError("valid-calendar-data", "The recurrence rule cannot be expanded.")
    count = 0
    try:
        for comp in itertools.islice(instances, max_instances + 1):
            span = comp.span if isinstance(comp, _Instance) else span_of(comp)
            if span is None:
                continue
            count += 1
            if count > max_instances:
                if finite:
                    raise CalendarError("max-instances", f"The object has more than {max_instances} instances.")
                out.indexed_until = span.utc(UTC)[0]
                break
            if not finite and span.utc(UTC)[0] > horizon:
                out.indexed_until = span.utc(UTC)[0]
                break
            out.spans.append(span)
        else:
            if not finite:
                out.indexed_until = window_end
    except CalendarError:
        raise
    except Exception:  # noqa: BLE001 - the library's errors on broken rules vary
        raise CalendarError("valid-calendar-data", "The recurrence rule cannot be expanded.")
    if out.spans:
        # A floating instance lands anywhere within a day of its UTC reading: the bounds the
        # database pre-selects on are widened by that much, the exact test comes later.
        starts = [s.start - FLOAT_SLACK if s.floating else s.start for s in out.spans]
        ends = [s.end + FLOAT_SLACK if s.floating else s.end for s in out.spans]
        starts = [to_utc(v, UTC) for v in starts]
        ends = [to_utc(v, UTC) for v in ends]
        out.first_start = min(starts)
        out.last_end = None if not finite else max(ends)
    elif not finite and out.indexed_until is not None:
        out.first_start = out.indexed_until
    return out


class _Instance:
    """One instance of a series as `span_of` reads it, without building its component.

    recurring-ical-events turns each occurrence into a copy of its source component with
    DTSTART set to the instance's start, DURATION removed and the end property (DTEND, DUE)
    set to the instance's end (`ComponentAdapter.as_component`). Building that copy is most
    of the cost of storing a series, and the index needs only the span: this reads the same
    values from the occurrence and its source. `test_instance_spans_match_the_library`
    holds the two to the same answers.
    """

    __slots__ = ("name", "_source", "_set", "span", "key")

    def __init__(self, occurrence):
        # why: the library has no public accessor for an occurrence's adapter; its version is pinned.
        adapter = occurrence._adapter
        source = adapter._component
        self.name = source.name
        self._source = source
        self._set = {"DTSTART": occurrence.start}
        if adapter.end_property is not None:
            self._set[adapter.end_property] = occurrence.end
        self.span = span_of(self)
        self.key = MIN if self.span is None else self.span.utc(UTC)[0]

    def __contains__(self, name: str) -> bool:
        return name in self._set or (name != "DURATION" and name in self._source)

    def decoded(self, name: str):
        if name in self._set:
            return self._set[name]
        if name == "DURATION":
            raise KeyError(name)
        return self._source.decoded(name)

    def get(self, name: str, default=None):
        if name in self._set or name == "DURATION":
            raise KeyError(f"{name} is read with decoded()")
        return self._source.get(name, default)


def _occurrences(cal: icalendar.Calendar, component: str, start: datetime, end: datetime) -> list[_Instance]:
    """The instances of `component` in [start, end), once each, in order of start.

    One window for the whole range: the library's `all()` walks forward from 1970 in windows
    that halve around each instance (about twenty per instance), and misses what comes before
    1970. The callers bound the range so that it holds at most the instance limit.
    """
    query = recurring_ical_events.of(cal, components=[component])
    # why: `_occurrences_between` is the step `between()` takes before building components;
    # the pinned version's public calls all build them.
    found = {occurrence.id: occurrence for occurrence in query._occurrences_between(start, end)}
    return sorted((_Instance(occurrence) for occurrence in found.values()), key=lambda i: i.key)


def _start_key(comp) -> datetime:
    span = span_of(comp)
    return MIN if span is None else span.utc(UTC)[0]


# A query past an endless series' index reads it in windows of a year, at most this many: a
# filter that never matches cannot make one request walk the series to the year 9999.
CHUNK = timedelta(days=366)
MAX_CHUNKS = 200


def iter_instances(cal: icalendar.Calendar, component: str, start: datetime, end: datetime):
    """The instances (components) of the resource that may overlap [start, end), lazily, a
    year's window at a time through recurring-ical-events, in order within each window.
    Floating instances come within FLOAT_SLACK of the window: the caller places them in its
    zone and checks the overlap."""
    seen = set()
    cursor, chunks = max(start, MIN + timedelta(days=2)), 0
    end = min(end, MAX - timedelta(days=2))
    try:
        query = recurring_ical_events.of(cal, components=[component])
        while cursor < end and chunks < MAX_CHUNKS:
            stop = min(end, cursor + CHUNK)
            for comp in sorted(query.between(cursor, stop), key=_start_key):
                key = (_start_key(comp), str(comp.get("RECURRENCE-ID", "")))
                if key in seen:
                    continue
                seen.add(key)
                yield comp
            cursor, chunks = stop, chunks + 1
    except CalendarError:
        raise
    except Exception:  # noqa: BLE001 - the library's errors on broken rules vary
        raise CalendarError("valid-calendar-data", "The recurrence rule cannot be expanded.")


def instances_between(cal: icalendar.Calendar, component: str, start: datetime, end: datetime,
                      *, max_instances: int, strict: bool = True) -> list:
    """`iter_instances` as a list of at most `max_instances`; beyond that the CalDAV limit's
    error (507 number-of-matches-within-limits) when `strict`, else the first ones."""
    out = list(itertools.islice(iter_instances(cal, component, start, end), max_instances + 1))
    if len(out) > max_instances:
        if strict:
            raise CalendarError("number-of-matches-within-limits",
                                f"More than {max_instances} instances in that range.", status=507, namespace="dav")
        out = out[:max_instances]
    return out
