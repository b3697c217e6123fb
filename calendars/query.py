"""CalDAV reads over the store: calendar-query filters (RFC 4791 §9.7), calendar-data with a
partial selection, `expand`, `limit-recurrence-set` and `limit-freebusy-set` (§9.6), and the
free-busy answer (§7.10).

The occurrence index picks the candidates of a time range in one query; the iCalendar of an
object is parsed only when the filter asks more than the index knows (property, parameter and
text matches, alarms), for a floating time that the index alone cannot place (it then needs
only the occurrence rows), or for the instances of an open-ended series past its indexed rows.

Filters and calendar-data selections are lxml elements in the CalDAV namespace, as the DAV
layer parsed them; a malformed one is CALDAV:valid-filter, an unknown collation
CALDAV:supported-collation.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import icalendar
from django.db.models import Q, Value

from . import ical
from .errors import CALDAV, CalendarError
from .models import COMPONENTS, Calendar, CalendarObject, Occurrence
from .services import calendars as calendars_of, limits, parse_utc

C = "{%s}" % CALDAV
COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
_MAX_FILTER_DEPTH = 6
_MAX_FILTER_NODES = 200


# --- the filter tree --------------------------------------------------------------------------

@dataclass
class TextMatch:
    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False

    def matches(self, value: str) -> bool:
        if self.collation == "i;octet":
            found = self.text in value
        elif self.collation == "i;unicode-casemap":
            found = self.text.casefold() in value.casefold()
        else:
            found = _ascii_lower(self.text) in _ascii_lower(value)
        return found != self.negate


@dataclass
class TimeRange:
    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start < self.end and end > self.start


@dataclass
class ParamFilter:
    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass
class PropFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    text_match: TextMatch | None = None
    param_filters: list[ParamFilter] = field(default_factory=list)


@dataclass
class CompFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    prop_filters: list[PropFilter] = field(default_factory=list)
    comp_filters: list[CompFilter] = field(default_factory=list)


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _invalid(what: str) -> CalendarError:
    return CalendarError("valid-filter", what, status=403)


def parse_time_range(element) -> TimeRange:
    start, end = element.get("start"), element.get("end")
    if start is None and end is None:
        raise _invalid("A time-range has a start, an end, or both.")
    try:
        low = parse_utc(start) if start is not None else ical.MIN
        high = parse_utc(end) if end is not None else ical.MAX
    except ValueError:
        raise _invalid("A time-range's start and end are UTC date-times (20260101T000000Z).")
    if high <= low:
        raise _invalid("A time-range ends after it starts.")
    return TimeRange(low, high)


def _text_match(element) -> TextMatch:
    collation = element.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise CalendarError("supported-collation", f"The collation {collation!r} is not supported.", status=403)
    negate = element.get("negate-condition", "no")
    if negate not in ("yes", "no"):
        raise _invalid("negate-condition is yes or no.")
    if len(element):
        raise _invalid("A text-match holds only text.")
    return TextMatch(element.text or "", collation, negate == "yes")


def _name(element) -> str:
    name = element.get("name")
    if not name or len(name) > 64 or not all(c.isalnum() or c == "-" for c in name):
        raise _invalid("A filter names a component, property or parameter.")
    return name.upper()


class _Counter:
    def __init__(self):
        self.nodes = 0

    def tick(self):
        self.nodes += 1
        if self.nodes > _MAX_FILTER_NODES:
            raise _invalid(f"A filter has at most {_MAX_FILTER_NODES} elements.")


def parse_filter(element) -> CompFilter:
    """The tree of a `C:filter` element (one comp-filter, VCALENDAR)."""
    if element is None or element.tag != C + "filter":
        raise _invalid("The query has no CALDAV:filter.")
    children = [child for child in element if isinstance(child.tag, str)]
    if len(children) != 1 or children[0].tag != C + "comp-filter":
        raise _invalid("A filter holds exactly one comp-filter.")
    root = _comp_filter(children[0], 1, _Counter())
    if root.name != "VCALENDAR":
        raise _invalid("The outer comp-filter is VCALENDAR.")
    return root


def _comp_filter(element, depth: int, counter: _Counter) -> CompFilter:
    counter.tick()
    if depth > _MAX_FILTER_DEPTH:
        raise _invalid("The filter is nested too deep.")
    out = CompFilter(_name(element))
    for child in element:
        if not isinstance(child.tag, str):
            continue
        counter.tick()
        tag = child.tag
        if tag == C + "is-not-defined":
            out.is_not_defined = True
        elif tag == C + "time-range":
            if out.time_range is not None:
                raise _invalid("One time-range per comp-filter.")
            out.time_range = parse_time_range(child)
        elif tag == C + "prop-filter":
            out.prop_filters.append(_prop_filter(child, counter))
        elif tag == C + "comp-filter":
            out.comp_filters.append(_comp_filter(child, depth + 1, counter))
        else:
            raise _invalid(f"Unexpected {tag} in a comp-filter.")
    if out.is_not_defined and (out.time_range or out.prop_filters or out.comp_filters):
        raise _invalid("is-not-defined stands alone.")
    return out


def _prop_filter(element, counter: _Counter) -> PropFilter:
    out = PropFilter(_name(element))
    for child in element:
        if not isinstance(child.tag, str):
            continue
        counter.tick()
        tag = child.tag
        if tag == C + "is-not-defined":
            out.is_not_defined = True
        elif tag == C + "time-range":
            out.time_range = parse_time_range(child)
        elif tag == C + "text-match":
            out.text_match = _text_match(child)
        elif tag == C + "param-filter":
            param = ParamFilter(_name(child))
            for grand in child:
                if not isinstance(grand.tag, str):
                    continue
                counter.tick()
                if grand.tag == C + "is-not-defined":
                    param.is_not_defined = True
                elif grand.tag == C + "text-match":
                    param.text_match = _text_match(grand)
                else:
                    raise _invalid(f"Unexpected {grand.tag} in a param-filter.")
            out.param_filters.append(param)
        else:
            raise _invalid(f"Unexpected {tag} in a prop-filter.")
    if out.time_range and out.text_match:
        raise _invalid("A prop-filter has a time-range or a text-match, not both.")
    return out


# --- time zones of a request ------------------------------------------------------------------

def query_zone(calendar: Calendar, *, timezone_text: str | None = None, timezone_id: str | None = None):
    """The zone floating times are read in: the request's C:timezone or C:timezone-id (RFC
    7809), else the calendar's, else UTC."""
    if timezone_id:
        if not ical.known_timezone(timezone_id):
            raise CalendarError("valid-timezone", f"{timezone_id!r} is not a known time zone.", status=403)
        return ical.zone(timezone_id)
    if timezone_text:
        return ical.zone_of_vtimezone(timezone_text)
    if calendar.timezone_id:
        return ical.zone(calendar.timezone_id)
    if calendar.timezone:
        try:
            return ical.zone_of_vtimezone(calendar.timezone)
        except CalendarError:
            return ical.UTC
    return ical.UTC


# --- evaluation -------------------------------------------------------------------------------

def _main_filter(root: CompFilter) -> CompFilter | None:
    """The one comp-filter on an object's main component the index can pre-select on."""
    found = [cf for cf in root.comp_filters if cf.name in COMPONENTS and not cf.is_not_defined]
    return found[0] if found else None


def _index_answers(root: CompFilter) -> bool:
    """Is the filter exactly "VCALENDAR > X [time-range]", which the index answers alone?"""
    if root.is_not_defined or root.prop_filters or len(root.comp_filters) > 1:
        return False
    if not root.comp_filters:
        return True
    main = root.comp_filters[0]
    return (main.name in COMPONENTS and not main.is_not_defined and not main.prop_filters
            and not main.comp_filters)


def _window(rows, low: datetime, high: datetime):
    """The occurrence rows of `rows` that may overlap [low, high): floating ones within
    FLOAT_SLACK of it, for the caller to place in its time zone, and fixed ones within the same
    slack, for the caller to compare exactly.

    A short span (Occurrence.long unset) that ends after `low` starts at most LONG_SPAN before
    it, so the start index reads only the rows near the range, and the long spans are read by
    their own index: the cost follows the range, not the calendar's size.
    """
    low, high = _add(low, -ical.FLOAT_SLACK), _add(high, ical.FLOAT_SLACK)
    # A UNION, not an OR: each half then has its own index range on SQLite and PostgreSQL.
    near = rows.filter(start__gte=_add(low, -Occurrence.LONG_SPAN), start__lt=high, end__gt=low)
    return near.union(rows.filter(long=True, end__gt=low, start__lt=high), all=True)


def _hits(rows, tr: TimeRange, tz) -> set[int]:
    """The objects of (object_id, start, end) rows with an instance in `tr`: a row without
    times is a fixed span the query found in it, one with times a floating span, placed in `tz`."""
    hits = set()
    for object_id, start, end in rows:
        if object_id in hits:
            continue
        if start is None:
            hits.add(object_id)
            continue
        start, end = ical.to_utc(start.replace(tzinfo=None), tz), ical.to_utc(end.replace(tzinfo=None), tz)
        if tr.overlaps(start, end):
            hits.add(object_id)
    return hits


# Up to this many objects with a floating instance in the range are fetched by id; more, and
# the calendar's objects of the component are read and picked here (an IN list of tens of
# thousands is slow and, on SQLite, past its limit of bound parameters).
_IDS_BY_KEY = 1000
# The columns of an object that a listing without calendar-data reads.
_LISTED = ("id", "calendar_id", "name", "component", "etag", "size", "indexed_until", "schedule_tag")


def calendar_query(calendar: Calendar, filter_element, *, tz=None, with_data: bool = False) -> list[CalendarObject]:
    """The objects of `calendar` matching a CALDAV:filter, in name order.

    Query count does not depend on the calendar's size: one query for the occurrence rows near
    the time range, one for the objects, at most one for the iCalendar of those that must be
    parsed (an open-ended series past its indexed instances, or a filter the index cannot
    answer alone).
    """
    root = parse_filter(filter_element)
    tz = tz or query_zone(calendar)
    if root.is_not_defined:
        return []
    qs = CalendarObject.objects.filter(calendar=calendar)
    main = _main_filter(root)
    exact = _index_answers(root)
    tr = main.time_range if main else None
    if main is not None:
        qs = qs.filter(component=main.name)
    if exact and not with_data:
        # What a listing of etags reads (dav.caldav); the dates alone would double its cost.
        qs = qs.only(*_LISTED)
    hits: set[int] = set()
    if tr is not None:
        occurrences = Occurrence.objects.filter(calendar=calendar)
        # Fixed spans are compared in the objects' query itself; floating ones are placed in
        # the query's time zone here first (a calendar usually has few).
        floating = _hits(_window(occurrences.filter(floating=True).values_list("object_id", "start", "end"),
                                 tr.start, tr.end), tr, tz)
        fixed = _window(occurrences.filter(floating=False, start__lt=tr.end, end__gt=tr.start)
                        .values_list("object_id", flat=True), tr.start, tr.end)
        horizon = _add(tr.end, ical.FLOAT_SLACK)
        if len(floating) <= _IDS_BY_KEY:
            found = [qs.filter(pk__in=fixed).annotate(hit=Value(True)),
                     qs.filter(indexed_until__lt=horizon).annotate(hit=Value(False))]
            if floating:
                found.append(qs.filter(pk__in=floating).annotate(hit=Value(True)))
            by_pk: dict[int, CalendarObject] = {}
            # One object may come from two parts (found, and an open-ended series): it keeps
            # its hit. Sorted here: an ORDER BY would have SQLite walk the name index of the
            # whole calendar rather than fetch by key.
            for obj in found[0].union(*found[1:]):
                by_pk.setdefault(obj.pk, obj)
                if obj.hit:
                    hits.add(obj.pk)
            candidates = sorted(by_pk.values(), key=lambda obj: obj.name)
        else:
            hits = floating | set(fixed)
            candidates = [obj for obj in qs.order_by("name") if obj.pk in hits
                          or (obj.indexed_until is not None and obj.indexed_until < horizon)]
    else:
        candidates = list(qs.order_by("name"))
    cache_calendar = CalendarObject.calendar.field.set_cached_value
    for obj in candidates:
        cache_calendar(obj, calendar)
    if exact and tr is None:
        return candidates
    if exact:
        # Found by the index, or an open-ended series whose later instances are not indexed.
        beyond = [obj for obj in candidates if obj.pk not in hits]
        if not beyond:
            return candidates
        _load_data(beyond)
        keep = {obj.pk for obj in beyond if evaluate(_parse_stored(obj), root, tz)}
        return [obj for obj in candidates if obj.pk in hits or obj.pk in keep]
    return [obj for obj in candidates if evaluate(_parse_stored(obj), root, tz)]


def _add(value: datetime, delta: timedelta) -> datetime:
    try:
        return value + delta
    except OverflowError:
        return ical.MAX if delta > timedelta(0) else ical.MIN


def _load_data(objects: list[CalendarObject]) -> None:
    """Fill `data` of objects read without it, in one query."""
    missing = [o for o in objects if "data" in o.get_deferred_fields()]
    if missing:
        texts = dict(CalendarObject.objects.filter(pk__in=[o.pk for o in missing]).values_list("pk", "data"))
        for obj in missing:
            obj.data = texts.get(obj.pk, "")


def _parse_stored(obj: CalendarObject) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(obj.data)


def evaluate(cal: icalendar.Calendar, root: CompFilter, tz) -> bool:
    """Does the parsed resource match the filter (RFC 4791 §9.7)?"""
    if root.is_not_defined:
        return False
    return _match_children(cal, root, tz, instance=None)


def _match_children(comp, cf: CompFilter, tz, instance) -> bool:
    for pf in cf.prop_filters:
        if not _prop_matches(comp, pf, tz):
            return False
    for sub in cf.comp_filters:
        if not _comp_matches(comp, sub, tz, parent_instance=instance):
            return False
    return True


def _comp_matches(parent, cf: CompFilter, tz, parent_instance) -> bool:
    """Does any `cf.name` child of `parent` match `cf` (its instances, for a recurring one)?"""
    if cf.is_not_defined:
        return not any(c.name == cf.name for c in parent.subcomponents)
    if parent.name == "VCALENDAR" and cf.name in COMPONENTS:
        pairs = _instances_for(parent, cf, tz)
    else:
        pairs = [(c, None) for c in parent.subcomponents if c.name == cf.name]
    for child, span in pairs:
        if cf.time_range is not None:
            if cf.name == "VALARM":
                if not _alarm_in_range(child, parent_instance, cf.time_range, tz):
                    continue
            else:
                own = span if span is not None else ical.span_of(child)
                if own is None or not cf.time_range.overlaps(*own.utc(tz)):
                    continue
        if _match_children(child, cf, tz, instance=span if span is not None else parent_instance):
            return True
    return False


def _alarm_reach(cal, name: str) -> timedelta:
    """How far from its instance any alarm of the resource can trigger."""
    reach = timedelta(days=1)
    for comp in cal.walk(name):
        for alarm in comp.walk("VALARM"):
            trigger = alarm.get("TRIGGER")
            value = getattr(trigger, "dt", None)
            extra = _repeat_span(alarm)
            if isinstance(value, timedelta):
                reach = max(reach, abs(value) + extra + timedelta(days=1))
            elif value is not None:
                return ical.MAX - ical.MIN  # an absolute trigger: anywhere
    return reach


def _repeat_span(alarm) -> timedelta:
    try:
        repeat = int(alarm.get("REPEAT", 0))
        step = alarm.decoded("DURATION") if "DURATION" in alarm else timedelta(0)
    except Exception:  # noqa: BLE001 - a malformed REPEAT counts as none
        return timedelta(0)
    return step * max(0, min(repeat, 1000)) if isinstance(step, timedelta) else timedelta(0)


def _instances_for(cal, cf: CompFilter, tz):
    """The (component, span) pairs a main-component filter is tested on: every instance near
    the filter's time range (or its alarms' range), else the stored components themselves."""
    window = cf.time_range
    alarm_ranges = [sub.time_range for sub in cf.comp_filters if sub.name == "VALARM" and sub.time_range]
    if window is None and not alarm_ranges:
        yield from ((c, ical.span_of(c)) for c in cal.subcomponents if c.name == cf.name)
        return
    if window is None:
        reach = _alarm_reach(cal, cf.name)
        low = min(r.start for r in alarm_ranges)
        high = max(r.end for r in alarm_ranges)
        window = TimeRange(_add(low, -reach), _add(high, reach))
    slack = ical.FLOAT_SLACK + timedelta(days=1)
    # A component without a start (a task with only a DUE, or no date at all) is tested as it is.
    for comp in cal.subcomponents:
        if comp.name == cf.name and "DTSTART" not in comp:
            span = ical.span_of(comp)
            if span is not None and (cf.time_range is None or cf.time_range.overlaps(*span.utc(tz))):
                yield comp, span
    if not any(comp.name == cf.name and "DTSTART" in comp for comp in cal.subcomponents):
        return
    # Lazily, and at most max_instances of them: a filter asks whether any instance matches,
    # so reading stops at the first that does, and an endless series is never read whole.
    found = ical.iter_instances(cal, cf.name, _add(window.start, -slack), _add(window.end, slack))
    for comp in itertools.islice(found, limits().max_instances):
        span = ical.span_of(comp)
        if span is None or "DTSTART" not in comp:
            continue
        if cf.time_range is None or cf.time_range.overlaps(*span.utc(tz)):
            yield comp, span


def _alarm_in_range(alarm, instance, tr: TimeRange, tz) -> bool:
    """RFC 4791 §9.9 for VALARM: does a trigger (or a repetition) fall in [start, end)?"""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return False
    value = getattr(trigger, "dt", None)
    if isinstance(value, timedelta):
        if instance is None:
            return False
        start, end = instance.utc(tz)
        related = str(trigger.params.get("RELATED", "START")).upper()
        base = end if related == "END" else start
        first = base + value
    elif isinstance(value, datetime):
        first = value if value.tzinfo else ical.to_utc(value, tz)
    elif isinstance(value, date):
        first = ical.to_utc(datetime(value.year, value.month, value.day), tz)
    else:
        return False
    moments = [first]
    try:
        repeat = min(int(alarm.get("REPEAT", 0)), 1000)
        step = alarm.decoded("DURATION") if "DURATION" in alarm else None
    except Exception:  # noqa: BLE001 - a malformed REPEAT counts as none
        repeat, step = 0, None
    if isinstance(step, timedelta) and repeat > 0:
        moments.extend(first + step * n for n in range(1, repeat + 1))
    return any(tr.start <= moment < tr.end for moment in moments)


def _values(comp, name: str) -> list:
    value = comp.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value) -> str:
    if isinstance(value, str):
        return str(value)
    try:
        raw = value.to_ical()
    except Exception:  # noqa: BLE001 - a value icalendar cannot write back has no text
        return ""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _prop_matches(comp, pf: PropFilter, tz) -> bool:
    props = _values(comp, pf.name)
    if pf.is_not_defined:
        return not props
    if not props:
        return False
    for prop in props:
        if pf.time_range is not None:
            moment = getattr(prop, "dt", None)
            if isinstance(moment, (datetime, date)):
                value, floating, is_date = ical._moment(moment)
                low = ical.to_utc(value, tz) if floating else value
                high = low + (timedelta(days=1) if is_date else ical.EPSILON)
                if not pf.time_range.overlaps(low, high):
                    continue
            else:
                continue
        if pf.text_match is not None and not pf.text_match.matches(_text(prop)):
            continue
        if not all(_param_matches(prop, p) for p in pf.param_filters):
            continue
        return True
    return False


def _param_matches(prop, pf: ParamFilter) -> bool:
    params = getattr(prop, "params", {}) or {}
    value = params.get(pf.name)
    if pf.is_not_defined:
        return value is None
    if value is None:
        return False
    if pf.text_match is None:
        return True
    items = value if isinstance(value, (list, tuple)) else [value]
    return any(pf.text_match.matches(str(item)) for item in items)


# --- calendar-data ----------------------------------------------------------------------------

@dataclass
class DataSpec:
    """What a `C:calendar-data` element asks for."""

    comp: _Selection | None = None
    expand: TimeRange | None = None
    limit_recurrence: TimeRange | None = None
    limit_freebusy: TimeRange | None = None


@dataclass
class _Selection:
    name: str
    all_props: bool = True
    props: dict[str, bool] = field(default_factory=dict)  # name -> novalue
    all_comps: bool = True
    comps: list[_Selection] = field(default_factory=list)


def parse_data_spec(element) -> DataSpec | None:
    """The selection of a `C:calendar-data` request element; None when it asks for everything."""
    if element is None:
        return None
    spec = DataSpec()
    ctype = element.get("content-type", "text/calendar")
    if ctype != "text/calendar" or element.get("version", "2.0") != "2.0":
        raise CalendarError("supported-calendar-data", "Only text/calendar 2.0 is served.", status=403)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag == C + "comp":
            spec.comp = _selection(child, 1)
        elif child.tag == C + "expand":
            spec.expand = parse_time_range(child)
        elif child.tag == C + "limit-recurrence-set":
            spec.limit_recurrence = parse_time_range(child)
        elif child.tag == C + "limit-freebusy-set":
            spec.limit_freebusy = parse_time_range(child)
        else:
            raise _invalid(f"Unexpected {child.tag} in calendar-data.")
    if spec.expand and spec.limit_recurrence:
        raise _invalid("expand and limit-recurrence-set exclude each other.")
    if spec.comp is None and not (spec.expand or spec.limit_recurrence or spec.limit_freebusy):
        return None
    return spec


def _selection(element, depth: int) -> _Selection:
    if depth > _MAX_FILTER_DEPTH:
        raise _invalid("The calendar-data selection is nested too deep.")
    out = _Selection(_name(element), all_props=False, all_comps=False)
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag == C + "allprop":
            out.all_props = True
        elif child.tag == C + "prop":
            out.props[_name(child)] = child.get("novalue", "no") == "yes"
        elif child.tag == C + "allcomp":
            out.all_comps = True
        elif child.tag == C + "comp":
            out.comps.append(_selection(child, depth + 1))
        else:
            raise _invalid(f"Unexpected {child.tag} in a comp selection.")
    return out


def render(obj: CalendarObject | str, spec: DataSpec | None = None, *, tz=None, timezones: bool = True) -> str:
    """The calendar-data of an object: whole, or as `spec` selects; without the VTIMEZONEs of
    IANA zones when `timezones` is false (RFC 7809 `CalDAV-Timezones: F`)."""
    text = obj if isinstance(obj, str) else obj.data
    if spec is None and timezones:
        return text
    cal = icalendar.Calendar.from_ical(text)
    tz = tz or ical.UTC
    if spec is not None:
        if spec.expand is not None:
            cal = _expanded(cal, spec.expand, tz)
        elif spec.limit_recurrence is not None:
            _limit_recurrence(cal, spec.limit_recurrence, tz)
        if spec.limit_freebusy is not None:
            _limit_freebusy(cal, spec.limit_freebusy)
        if spec.comp is not None:
            cal = _select(cal, spec.comp)
    if not timezones:
        cal.subcomponents = [c for c in cal.subcomponents
                             if c.name != "VTIMEZONE" or not ical.known_timezone(str(c.get("TZID", "")))]
    return cal.to_ical().decode("utf-8")


def _utc_value(value, tz):
    if isinstance(value, datetime):
        return ical.to_utc(value, tz).astimezone(ical.UTC) if value.tzinfo is None else value.astimezone(ical.UTC)
    return value


def _expanded(cal, window: TimeRange, tz) -> icalendar.Calendar:
    """RFC 4791 §9.6.5: every instance in the window as its own component, in UTC, with a
    RECURRENCE-ID for those of a recurring series, no RRULE/RDATE/EXDATE, no VTIMEZONE."""
    out = icalendar.Calendar()
    for key, value in cal.property_items(recursive=False, sorted=False)[1:-1]:
        out.add(key, value, encode=False)
    kinds = [name for name in COMPONENTS if any(c.name == name for c in cal.subcomponents)]
    max_instances = limits().max_instances
    for name in kinds:
        recurring = any(("RRULE" in c or "RDATE" in c) for c in cal.subcomponents if c.name == name)
        slack = ical.FLOAT_SLACK + timedelta(days=1)
        found = ical.instances_between(cal, name, _add(window.start, -slack), _add(window.end, slack),
                                       max_instances=max_instances)
        for comp in found:
            span = ical.span_of(comp)
            if span is None or not window.overlaps(*span.utc(tz)):
                continue
            for prop in ("RRULE", "RDATE", "EXDATE"):
                comp.pop(prop, None)
            for prop in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
                if prop in comp:
                    value = comp.decoded(prop)
                    if isinstance(value, datetime):
                        del comp[prop]
                        comp.add(prop, _utc_value(value, tz))
            if recurring and "RECURRENCE-ID" not in comp and "DTSTART" in comp:
                comp.add("RECURRENCE-ID", _utc_value(comp.decoded("DTSTART"), tz))
            out.add_component(comp)
    return out


def _limit_recurrence(cal, window: TimeRange, tz) -> None:
    """RFC 4791 §9.6.6: keep the master and the overrides that touch the window."""
    kept = []
    for comp in cal.subcomponents:
        if comp.name in COMPONENTS and "RECURRENCE-ID" in comp:
            span = ical.span_of(comp)
            rid = comp.decoded("RECURRENCE-ID")
            moment, floating, _ = ical._moment(rid)
            rid_utc = ical.to_utc(moment, tz) if floating else moment
            touches = (span is not None and window.overlaps(*span.utc(tz))) or window.start <= rid_utc < window.end
            if not touches:
                continue
        kept.append(comp)
    cal.subcomponents = kept


def _limit_freebusy(cal, window: TimeRange) -> None:
    for comp in cal.walk("VFREEBUSY"):
        periods = _values(comp, "FREEBUSY")
        if not periods:
            continue
        del comp["FREEBUSY"]
        for prop in periods:
            kept = [(low, high) for low, high in ical.periods(prop) if window.overlaps(low, high)]
            if kept:
                params = {k: v for k, v in (prop.params or {}).items() if k != "VALUE"}
                comp.add("FREEBUSY", kept, parameters=params or None)
        _plain_periods(comp)


def _select(comp, selection: _Selection):
    """A copy of `comp` with only the selected properties and sub-components."""
    out = type(comp)()
    out.name = comp.name
    for key, value in comp.property_items(recursive=False, sorted=False)[1:-1]:
        if selection.all_props:
            out.add(key, value, encode=False)
        elif key in selection.props:
            if selection.props[key]:
                out.add(key, icalendar.vText(""), encode=False)
            else:
                out.add(key, value, encode=False)
    for sub in comp.subcomponents:
        if selection.all_comps:
            out.add_component(sub)
            continue
        chosen = next((s for s in selection.comps if s.name == sub.name), None)
        if chosen is not None:
            out.add_component(_select(sub, chosen))
    return out


# --- free-busy --------------------------------------------------------------------------------

def free_busy(calendars: list[Calendar], start: datetime, end: datetime, *, tz=None) -> str:
    """RFC 4791 §7.10: the busy time of `calendars` in [start, end) as a VCALENDAR holding one
    VFREEBUSY. Transparent calendars, TRANSP:TRANSPARENT and STATUS:CANCELLED events are free;
    STATUS:TENTATIVE is BUSY-TENTATIVE; the FREEBUSY of stored VFREEBUSY objects counts as
    given. The caller passes only calendars the asking user may read."""
    tz = tz or ical.UTC
    window = TimeRange(start, end)
    opaque = [c for c in calendars if not c.transparent]
    periods: dict[str, list[tuple[datetime, datetime]]] = {"BUSY": [], "BUSY-TENTATIVE": [], "BUSY-UNAVAILABLE": [],
                                                          "FREE": []}
    if opaque:
        slack = ical.FLOAT_SLACK
        rows = _window(Occurrence.objects.filter(calendar__in=opaque, busy__gt=0)
                       .values_list("start", "end", "floating", "busy"), start, end)
        for s, e, floating, busy in rows:
            if floating:
                s, e = ical.to_utc(s.replace(tzinfo=None), tz), ical.to_utc(e.replace(tzinfo=None), tz)
            if window.overlaps(s, e):
                periods["BUSY-TENTATIVE" if busy == ical.TENTATIVE else "BUSY"].append((s, e))
        parse = (CalendarObject.objects.filter(calendar__in=opaque)
                 .filter(Q(component="VEVENT", indexed_until__lt=_add(end, slack))
                         | Q(component="VFREEBUSY", first_start__lt=end, last_end__gt=start)))
        for obj in parse:
            cal = _parse_stored(obj)
            if obj.component == "VFREEBUSY":
                for comp in cal.walk("VFREEBUSY"):
                    for prop in _values(comp, "FREEBUSY"):
                        kind = str(prop.params.get("FBTYPE", "BUSY")).upper()
                        kind = kind if kind in periods else "BUSY"
                        for low, high in ical.periods(prop):
                            if window.overlaps(low, high):
                                periods[kind].append((low, high))
                continue
            found = ical.instances_between(cal, "VEVENT", _add(max(start, obj.indexed_until), -slack),
                                           _add(end, slack), max_instances=limits().max_instances, strict=False)
            for comp in found:
                span = ical.span_of(comp)
                if span is None or span.busy == ical.FREE:
                    continue
                s, e = span.utc(tz)
                if s < obj.indexed_until or not window.overlaps(s, e):
                    continue  # before indexed_until the rows above counted it
                periods["BUSY-TENTATIVE" if span.busy == ical.TENTATIVE else "BUSY"].append((s, e))
    out = icalendar.Calendar()
    out.add("PRODID", "-//Stalwart (Django)//Calendar//EN")
    out.add("VERSION", "2.0")
    fb = icalendar.FreeBusy()
    fb.add("DTSTAMP", datetime.now(ical.UTC).replace(microsecond=0))
    fb.add("DTSTART", start)
    fb.add("DTEND", end)
    for kind in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"):
        merged = _merge([(max(s, start), min(e, end)) for s, e in periods[kind]])
        if merged:
            fb.add("FREEBUSY", merged, parameters={"FBTYPE": kind})
    _plain_periods(fb)
    out.add_component(fb)
    return out.to_ical().decode("utf-8")


def _plain_periods(comp) -> None:
    """FREEBUSY values are periods by definition (RFC 5545 §3.8.2.6): no VALUE=PERIOD."""
    for prop in _values(comp, "FREEBUSY"):
        if getattr(prop, "params", None) is not None:
            prop.params.pop("VALUE", None)


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[list[datetime]] = []
    for s, e in sorted(spans):
        s, e = s.replace(microsecond=0), e.replace(microsecond=0)
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def readable_calendars(owner, viewer) -> list[Calendar]:
    """The calendars of `owner` that `viewer` may read for free-busy: all of them for the owner
    and the members of a group owner; none otherwise until calendars are shared (ACL)."""
    if owner.pk == viewer.pk or viewer.member_groups.filter(pk=owner.pk).exists():
        return calendars_of(owner)
    return []


__all__ = ["CompFilter", "DataSpec", "TimeRange", "calendar_query", "evaluate", "free_busy", "parse_data_spec",
           "parse_filter", "parse_time_range", "query_zone", "readable_calendars", "render"]
