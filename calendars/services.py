"""The calendar store's services: every write to calendars and their objects goes through here,
in one transaction with its journal entries, and every object is indexed when it is stored.

It knows no protocol and builds no HTTP: the DAV layer maps a `CalendarError` to its status and
XML error (`condition`, `namespace`, `href`). Hrefs here are paths below the account's calendar
home: `"{slug}/"` for a calendar, `"{slug}/{name}"` for an object; the journal keeps them for
tombstones (journal types "Calendar" and "CalendarEvent").

    cal = services.create_calendar(account, "work", display_name="Work")
    put = services.put_object(cal, "a.ics", ics_bytes, if_none_match="*")   # PutResult
    services.delete_object(cal, "a.ics", if_match=put.object.etag)
    changes = services.collection_changes(cal, since_state="12", limit=500)
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import CharField, Count, Sum, Value
from django.db.models.functions import Concat
from django.utils import timezone

from blobs import services as blobs
from journal import services as journal
from stalwart_site.inserts import Insert

from . import ical
from .errors import CalendarError, not_found, precondition_failed
from .models import COMPONENTS, Calendar, CalendarObject, Occurrence

CALENDAR, EVENT = "Calendar", "CalendarEvent"
MAX_SLUG_LENGTH = 255
MAX_NAME_LENGTH = 255
MAX_TEXT_LENGTH = 4096


# --- limits -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limits:
    max_size: int
    max_instances: int
    max_attendees: int
    max_calendars: int
    max_objects: int  # 0: no limit
    min_date_time: datetime
    max_date_time: datetime
    horizon_days: int
    default_slug: str
    default_display_name: str


def parse_utc(value: str) -> datetime:
    """An iCalendar UTC DATE-TIME (`20260101T000000Z`), as the CalDAV attributes write it."""
    if not isinstance(value, str) or len(value) != 16 or not value.endswith("Z"):
        raise ValueError(f"not a UTC date-time: {value!r}")
    return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=ical.UTC)


def limits() -> Limits:
    return Limits(
        max_size=settings.CALENDAR_MAX_ICALENDAR_SIZE,
        max_instances=settings.CALENDAR_MAX_RECURRENCE_EXPANSIONS,
        max_attendees=settings.CALENDAR_MAX_ATTENDEES,
        max_calendars=settings.CALENDAR_MAX_CALENDARS,
        max_objects=settings.CALENDAR_MAX_EVENTS,
        min_date_time=parse_utc(settings.CALENDAR_MIN_DATE_TIME),
        max_date_time=parse_utc(settings.CALENDAR_MAX_DATE_TIME),
        horizon_days=settings.CALENDAR_INDEX_HORIZON_DAYS,
        default_slug=settings.CALENDAR_DEFAULT_HREF_NAME,
        default_display_name=settings.CALENDAR_DEFAULT_DISPLAY_NAME,
    )


# --- calendars --------------------------------------------------------------------------------

def _check_segment(value: str, what: str, limit: int) -> None:
    if (not isinstance(value, str) or not 0 < len(value) <= limit or "/" in value or "\0" in value
            or value in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise CalendarError("bad-request", f"A {what} name is 1 to {limit} characters without '/' or controls.",
                            status=400, namespace=None)


def calendars(account, *, create: bool = True) -> list[Calendar]:
    """The account's calendars, the default one created on first use (when it has none) if
    `create`: a lookup made on behalf of another account must not write to this one."""
    found = list(Calendar.objects.filter(account=account))
    if found or not create:
        return found
    default = ensure_default(account)
    return [default] if default else []


def ensure_default(account) -> Calendar | None:
    """The account's default calendar: created when the account has no calendar at all and
    CALENDAR_DEFAULT_HREF_NAME is set; None when it is not set (no auto-creation)."""
    lim = limits()
    if not lim.default_slug:
        return None
    existing = Calendar.objects.filter(account=account, slug=lim.default_slug).first()
    if existing:
        return existing
    if Calendar.objects.filter(account=account).exists():
        return None
    try:
        with transaction.atomic():
            return create_calendar(account, lim.default_slug,
                                   display_name=f"{lim.default_display_name} ({account.email_address})")
    except (IntegrityError, CalendarError):
        # Another request made it first: that one is the default.
        return Calendar.objects.filter(account=account, slug=lim.default_slug).first()


def default_calendar(account) -> Calendar | None:
    """The calendar scheduling and free-busy use: the default one, else the first."""
    found = calendars(account)
    slug = limits().default_slug
    return next((c for c in found if c.slug == slug), found[0] if found else None)


def get_calendar(account, slug: str, *, create: bool = True) -> Calendar:
    """The account's calendar `slug` (only ever the given account's), or 404. The default one
    is created on first use only if `create` (the caller is the owner or one of its members)."""
    if not isinstance(slug, str) or not slug:
        raise not_found()
    calendar = Calendar.objects.filter(account=account, slug=slug).first()
    if calendar is None:
        if create and slug == limits().default_slug:
            calendar = ensure_default(account)
        if calendar is None:
            raise not_found("No such calendar.")
    return calendar


def _calendar_fields(fields: dict) -> dict:
    """Validate the writable properties of a calendar; returns the model's field values."""
    out = {}
    for key in ("display_name", "description", "color"):
        if key in fields:
            value = fields[key] or ""
            limit = Calendar._meta.get_field(key).max_length or MAX_TEXT_LENGTH
            if not isinstance(value, str) or len(value) > limit or "\0" in value:
                raise CalendarError("property-too-long", f"{key} is text of at most {limit} characters.",
                                    status=507, namespace=None)
            out[key] = value
    if "sort_order" in fields:
        value = fields["sort_order"]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not -2**31 <= value < 2**31):
            raise CalendarError("bad-request", "sort_order is a 32-bit integer.", status=400, namespace=None)
        out["sort_order"] = value
    if "timezone" in fields:
        value = fields["timezone"] or ""
        if value:
            cal = ical.parse(value, max_size=limits().max_size)
            zones = [c for c in cal.subcomponents if c.name == "VTIMEZONE"]
            if len(zones) != 1 or len(cal.subcomponents) != 1:
                raise CalendarError("valid-calendar-data", "calendar-timezone is a VCALENDAR with one VTIMEZONE.")
            ical.zone_of_vtimezone(value)
        out["timezone"] = ical.raw_text(value)
    if "timezone_id" in fields:
        value = fields["timezone_id"] or ""
        if value and not ical.known_timezone(value):
            raise CalendarError("valid-timezone", f"{value!r} is not a known time zone.", status=403)
        out["timezone_id"] = value
    if "components" in fields:
        value = fields["components"]
        names = [] if value is None else list(value)
        if any(not isinstance(n, str) or n.upper() not in COMPONENTS for n in names):
            raise CalendarError("supported-calendar-component",
                                f"A calendar holds only {', '.join(COMPONENTS)}.", status=403)
        ordered = [n for n in COMPONENTS if n in {x.upper() for x in names}]
        out["components"] = "" if not ordered or len(ordered) == len(COMPONENTS) else " ".join(ordered)
    if "transparent" in fields:
        out["transparent"] = bool(fields["transparent"])
    if "dead_properties" in fields:
        value = fields["dead_properties"] or {}
        if not isinstance(value, dict) or any(not isinstance(k, str) or not isinstance(v, str)
                                              for k, v in value.items()):
            raise CalendarError("bad-request", "Dead properties map names to XML text.", status=400, namespace=None)
        out["dead_properties"] = value
    return out


def create_calendar(account, slug: str, **fields) -> Calendar:
    """A new calendar (MKCALENDAR, extended MKCOL). Fields: display_name, description, color,
    sort_order, timezone, timezone_id, components (names), transparent, dead_properties."""
    _check_segment(slug, "calendar", MAX_SLUG_LENGTH)
    values = _calendar_fields(fields)
    lim = limits()
    with transaction.atomic():
        # The account row serialises calendar creation, so two cannot both pass the count.
        type(account).objects.select_for_update().filter(pk=account.pk).first()
        if Calendar.objects.filter(account=account, slug=slug).exists():
            raise CalendarError("resource-must-be-null", "A calendar of that name exists.", status=405,
                                namespace="dav")
        if Calendar.objects.filter(account=account).count() >= lim.max_calendars:
            raise CalendarError("max-calendars", f"An account has at most {lim.max_calendars} calendars.",
                                status=507, namespace=None)
        calendar = Calendar.objects.create(account=account, slug=slug, **values)
        state = journal.record(account.pk, CALENDAR, created={str(calendar.pk): f"{slug}/"})
        calendar.own_change = int(state)
        calendar.save(update_fields=["own_change"])
    return calendar


def update_calendar(calendar: Calendar, **fields) -> Calendar:
    """Change a calendar's properties (PROPPATCH). The component set is fixed at creation
    (RFC 4791 §5.2.3): a different one is CALDAV:supported-calendar-component."""
    values = _calendar_fields(fields)
    if "components" in values and values["components"] != calendar.components:
        raise CalendarError("supported-calendar-component",
                            "The component set of a calendar is chosen when it is created.", status=403)
    values.pop("components", None)
    with transaction.atomic():
        for key, value in values.items():
            setattr(calendar, key, value)
        calendar.save()
        state = journal.record(calendar.account_id, CALENDAR, updated={str(calendar.pk): f"{calendar.slug}/"})
        calendar.own_change = int(state)
        calendar.save(update_fields=["own_change"])
    return calendar


def set_acl(calendar: Calendar, acl: list) -> Calendar:
    """Replace the calendar's grants to other accounts (already checked by the DAV layer)."""
    with transaction.atomic():
        calendar.acl = list(acl)
        calendar.shared = bool(acl)
        calendar.save(update_fields=["acl", "shared", "modified"])
        state = journal.record(calendar.account_id, CALENDAR, updated={str(calendar.pk): f"{calendar.slug}/"})
        calendar.own_change = int(state)
        calendar.save(update_fields=["own_change"])
    return calendar


def shared_owners(account_ids) -> set[int]:
    """The accounts with a calendar granting something to one of `account_ids`."""
    # A JSON containment query differs per database: the few shared calendars are read and
    # filtered here.
    ids = set(account_ids)
    return {owner for owner, acl in Calendar.objects.filter(shared=True).values_list("account_id", "acl")
            if any(ace.get("principal") in ids for ace in acl or ())}


def delete_calendar(calendar: Calendar) -> None:
    """Delete a calendar and its objects, each with its tombstone. The default calendar stays
    (CALDAV:default-calendar-needed)."""
    if calendar.slug == limits().default_slug:
        raise CalendarError("default-calendar-needed", "The default calendar cannot be deleted.", status=403)
    with transaction.atomic():
        Calendar.objects.select_for_update().filter(pk=calendar.pk).first()
        gone = {str(pk): f"{calendar.slug}/{name}"
                for pk, name in CalendarObject.objects.filter(calendar=calendar).values_list("pk", "name")}
        slug, pk = calendar.slug, calendar.pk
        octets = CalendarObject.objects.filter(calendar=calendar).aggregate(total=Sum("size"))["total"] or 0
        calendar.delete()
        if gone:
            _count(calendar.account_id, -octets, -len(gone))
        changes = {CALENDAR: journal.Change(destroyed={str(pk): f"{slug}/"})}
        if gone:
            changes[EVENT] = journal.Change(destroyed=gone)
            blobs.usage_moved([calendar.account_id])  # the objects' octets are free again
        journal.record_many(calendar.account_id, changes)


# --- objects ----------------------------------------------------------------------------------
def _object_count(account_id: int) -> int:
    """The account's calendar objects, from its usage row (one indexed read at any number)."""
    count = blobs.counted_items(account_id, EVENT)
    return count if count is not None else CalendarObject.objects.filter(account_id=account_id).count()


def _count(account_id: int, octets: int, items: int) -> None:
    """Move the account's usage row by a write of this transaction (blobs.count_usage)."""
    def measure():
        row = CalendarObject.objects.filter(account_id=account_id).aggregate(octets=Sum("size"), items=Count("pk"))
        return row["octets"] or 0, row["items"]

    blobs.count_usage(account_id, EVENT, octets, items, measure)


@dataclass
class PutResult:
    object: CalendarObject
    created: bool  # 201, else 204
    changed: bool  # False: the same octets were already stored (nothing written)
    # True: the server changed the object after the client's octets (SCHEDULE-STATUS written by
    # scheduling), so the response must not carry an ETag (RFC 4791 §5.3.4, RFC 6638 §3.2.9).
    transformed: bool = False


def _etags(value) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part.startswith("W/"):
                part = part[2:]
            out.append(part.strip('"'))
    return [p for p in out if p]


def _check_conditions(existing: CalendarObject | None, if_match, if_none_match) -> None:
    match, none_match = _etags(if_match), _etags(if_none_match)
    if match is not None:
        if existing is None:
            raise precondition_failed("If-Match: the resource does not exist.")
        if "*" not in match and existing.etag not in match:
            raise precondition_failed("If-Match: the resource has changed.")
    if none_match is not None and existing is not None:
        if "*" in none_match or existing.etag in none_match:
            raise precondition_failed("If-None-Match: the resource exists.")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def get_object(calendar: Calendar, name: str) -> CalendarObject:
    obj = CalendarObject.objects.filter(calendar=calendar, name=name).first() if isinstance(name, str) else None
    if obj is None:
        raise not_found("No such calendar object.")
    obj.calendar = calendar
    return obj


def get_objects(calendar: Calendar, names: Iterable[str], *, with_data: bool = True) -> dict[str, CalendarObject]:
    """Several objects of one calendar by name (multiget), in one query; missing names are absent."""
    wanted = [n for n in names if isinstance(n, str)]
    qs = CalendarObject.objects.filter(calendar=calendar, name__in=wanted)
    if not with_data:
        qs = qs.defer("data")
    out = {}
    for obj in qs:
        obj.calendar = calendar
        out[obj.name] = obj
    return out


def list_objects(calendar: Calendar) -> list[CalendarObject]:
    """Every object of the calendar with its etag, size and dates, without the iCalendar (one
    query: what PROPFIND Depth 1 reads)."""
    out = list(CalendarObject.objects.filter(calendar=calendar).defer("data").order_by("name"))
    for obj in out:
        obj.calendar = calendar
    return out


def list_etags(calendar: Calendar) -> list[tuple[str, str, int, datetime]]:
    """(name, etag, size, modified) of every object, in name order: PROPFIND Depth 1 with
    getetag at the cost of one query and no model instances."""
    return list(CalendarObject.objects.filter(calendar=calendar).order_by("name")
                .values_list("name", "etag", "size", "modified"))


# The column a listing reads for each field it may ask (`object_rows`).
ROW_COLUMNS = {"etag": "quoted", "size": "size", "modified": "modified", "created": "created"}


def object_rows(calendar: Calendar, fields: Sequence[str], limit: int | None = None,
                pks: Iterable[int] | None = None) -> list[tuple]:
    """(name, *fields) of the objects of `calendar` (those of `pks` only, if given) in name
    order, at most `limit`; fields among ROW_COLUMNS, the etag as HTTP sends it (quoted, by the
    database). A listing reads only the columns its properties need: one query, no model
    instance."""
    rows = CalendarObject.objects.filter(calendar=calendar).order_by("name")
    if pks is not None:
        rows = rows.filter(pk__in=list(pks))
    if "etag" in fields:
        rows = rows.annotate(quoted=Concat(Value('"'), "etag", Value('"'), output_field=CharField()))
    rows = rows.values_list("name", *(ROW_COLUMNS[field] for field in fields))
    return list(rows[:limit] if limit is not None else rows)


def _check_dates(expansion: ical.Expansion, lim: Limits) -> None:
    for span in expansion.spans:
        start, end = span.utc(ical.UTC)
        if start != ical.MIN and start < lim.min_date_time:
            raise CalendarError("min-date-time", f"An instance starts before {lim.min_date_time:%Y-%m-%d}.")
        if end != ical.MAX and end > lim.max_date_time:
            raise CalendarError("max-date-time", f"An instance ends after {lim.max_date_time:%Y-%m-%d}.")


def index(parsed: ical.Parsed, lim: Limits | None = None, *, now: datetime | None = None) -> ical.Expansion:
    lim = lim or limits()
    horizon = (now or timezone.now()) + timedelta(days=lim.horizon_days)
    expansion = ical.expand(parsed.calendar, parsed.component, max_instances=lim.max_instances, horizon=horizon)
    _check_dates(expansion, lim)
    return expansion


def put_object(calendar: Calendar, name: str, data: bytes | str, *, if_match=None,
               if_none_match=None, schedule: bool = True, if_schedule_tag_match: str | None = None,
               keep_schedule_tag: bool = False) -> PutResult:
    """Store one calendar object resource (PUT), validated per RFC 4791 §5.3.2.

    Refusals: max-resource-size, supported-calendar-data, valid-calendar-data,
    valid-calendar-object-resource, supported-calendar-component, no-uid-conflict (with the
    href of the other object), max-instances, min-date-time, max-date-time,
    max-attendees-per-instance (CalendarError); If-Match / If-None-Match (412 without body).

    With `schedule`, a change of a scheduling object is sent on (iTIP, `scheduling.py`):
    the store's own deliveries pass False, so that a delivery never schedules again.
    """
    _check_segment(name, "resource", MAX_NAME_LENGTH)
    lim = limits()
    parsed = ical.inspect(data, max_size=lim.max_size, max_attendees=lim.max_attendees)
    if parsed.component not in calendar.component_set:
        raise CalendarError("supported-calendar-component",
                            f"This calendar does not hold {parsed.component} components.", status=403)
    expansion = index(parsed, lim)
    etag = digest(parsed.text)
    with transaction.atomic():
        # The calendar's row orders the writers of one calendar: the UID check below cannot
        # race another PUT, and the ctag moves in commit order.
        locked = Calendar.objects.select_for_update().filter(pk=calendar.pk).first()
        if locked is None:
            raise not_found("No such calendar.")
        existing = CalendarObject.objects.filter(calendar=calendar, name=name).first()
        _check_conditions(existing, if_match, if_none_match)
        previous = existing.data if existing is not None else None
        if if_schedule_tag_match is not None and (
                existing is None or not existing.schedule_tag
                or existing.schedule_tag != if_schedule_tag_match.strip().strip('"')):
            raise precondition_failed("If-Schedule-Tag-Match: the scheduling object has changed.")
        if existing is not None:
            if existing.etag == etag:
                existing.calendar = calendar
                return PutResult(existing, created=False, changed=False)
            if existing.uid != parsed.uid:
                raise CalendarError("no-uid-conflict", "The UID of a resource does not change.",
                                    href=f"{calendar.slug}/{name}")
            if existing.component != parsed.component:
                raise CalendarError("valid-calendar-object-resource", "The component type of a resource does not change.")
        clash = (CalendarObject.objects.filter(calendar=calendar, uid=parsed.uid).exclude(name=name)
                 .values_list("name", flat=True).first())
        if clash is not None:
            raise CalendarError("no-uid-conflict", "Another resource of this calendar has that UID.",
                                href=f"{calendar.slug}/{clash}")
        if existing is None and lim.max_objects and _object_count(calendar.account_id) >= lim.max_objects:
            raise CalendarError("max-events", f"An account holds at most {lim.max_objects} calendar objects.",
                                status=507, namespace=None)
        size = len(parsed.text.encode())
        moved = size - (existing.size if existing is not None else 0)
        try:
            blobs.charge(calendar.account_id, moved)
        except blobs.OverQuota:
            raise CalendarError("quota-not-exceeded", "The account's storage quota would be exceeded.",
                                status=507, namespace="dav") from None
        fields = dict(uid=parsed.uid, component=parsed.component, data=parsed.text, etag=etag,
                      size=size, first_start=expansion.first_start,
                      last_end=expansion.last_end, indexed_until=expansion.indexed_until,
                      has_alarms=parsed.has_alarms,
                      schedule_tag=_schedule_tag(parsed, existing, etag, keep_schedule_tag))
        if existing is None:
            obj = CalendarObject.objects.create(calendar=calendar, account_id=calendar.account_id, name=name,
                                                **fields)
        else:
            obj = existing
            for key, value in fields.items():
                setattr(obj, key, value)
            obj.save()
            Occurrence.objects.filter(object=obj).delete()
        _count(calendar.account_id, moved, int(existing is None))
        _index_rows(obj, calendar.pk, expansion.spans)
        href = {str(obj.pk): f"{calendar.slug}/{name}"}
        state = journal.record(calendar.account_id, EVENT, **({"created": href} if existing is None
                                                              else {"updated": href}))
        Calendar.objects.filter(pk=calendar.pk).update(member_change=int(state))
        calendar.member_change = int(state)
        transformed = False
        if schedule:
            # One transaction with the write: a delivery that fails undoes nothing of the
            # organizer's store, but a crash in between leaves neither half behind.
            from . import scheduling  # noqa: PLC0415 - scheduling calls back into this module
            sent = scheduling.after_put(calendar, previous, parsed.calendar)
            if sent and scheduling.schedule_statuses(parsed.calendar, sent):
                _rewrite(obj, parsed.calendar.to_ical().decode())
                transformed = True
    obj.calendar = calendar
    return PutResult(obj, created=existing is None, changed=True, transformed=transformed)


def _rewrite(obj: CalendarObject, text: str) -> None:
    """Store the server's own change of an object just written in this transaction (its
    SCHEDULE-STATUS): the text, etag and size move; the index, the journal entry and the
    Schedule-Tag of the write stand, since no date and no scheduling content changed."""
    size = len(text.encode())
    try:
        blobs.charge(obj.account_id, size - obj.size)
    except blobs.OverQuota:
        raise CalendarError("quota-not-exceeded", "The account's storage quota would be exceeded.",
                            status=507, namespace="dav") from None
    moved = size - obj.size
    obj.data, obj.etag, obj.size = text, digest(text), size
    obj.save(update_fields=["data", "etag", "size"])
    _count(obj.account_id, moved, 0)


def _schedule_tag(parsed: ical.Parsed, existing: CalendarObject | None, etag: str, keep: bool) -> str:
    scheduling = any("ORGANIZER" in comp for comp in parsed.calendar.subcomponents)
    if not scheduling:
        return ""
    if keep and existing is not None and existing.schedule_tag:
        return existing.schedule_tag
    return etag


def _stored(value: datetime) -> datetime:
    """A span end as the index stores it: floating (naive) moments as if they were UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=ical.UTC)


# A series stores up to the instance limit of rows: their INSERT is built once per row count
# (`Insert`), not compiled by the ORM per row as bulk_create() does (a third of a 52-instance PUT).
_OCCURRENCE_ROWS = Insert(Occurrence, ["object", "calendar", "start", "end", "floating", "busy", "long"], batch=100)


def _index_rows(obj: CalendarObject, calendar_id: int, spans) -> None:
    rows = []
    for span in spans:
        start, end = _stored(span.start), _stored(span.end)
        rows.append((obj.pk, calendar_id, start, end, span.floating, span.busy, end - start > Occurrence.LONG_SPAN))
    if rows:
        _OCCURRENCE_ROWS.run(rows)


def move_object(calendar: Calendar, name: str, target: Calendar, target_name: str, *, overwrite: bool = True,
                copy: bool = False) -> PutResult:
    """COPY or MOVE an object to another name or calendar of the same account (the DAV layer
    checks access). All or nothing: a refusal of the target (its UID taken, a component it does
    not accept) leaves the source and an overwritten destination as they were."""
    if target.account_id != calendar.account_id:
        raise CalendarError("bad-request", "Objects move only between calendars of one account.", status=400,
                            namespace=None)
    _check_segment(target_name, "calendar object", MAX_NAME_LENGTH)
    with transaction.atomic():
        source = get_object(calendar, name)
        existing = CalendarObject.objects.filter(calendar=target, name=target_name).defer("data").first()
        if existing is not None and existing.pk == source.pk:
            raise CalendarError("bad-request", "The source and the destination are the same object.", status=403,
                                namespace=None)
        if existing is not None and not overwrite:
            raise precondition_failed("The destination exists.")
        if existing is not None:
            delete_object(target, target_name, schedule=False)
        if not copy:
            delete_object(calendar, name, schedule=False)
        # A move is not a change of the event: nobody is invited or cancelled again.
        result = put_object(target, target_name, source.data, schedule=False)
    return PutResult(result.object, created=existing is None, changed=True)


def delete_object(calendar: Calendar, name: str, *, if_match=None, schedule: bool = True) -> None:
    """Delete one object (DELETE), its index and journal tombstone with it; the organizer's
    delete is a CANCEL to its attendees (with `schedule`)."""
    with transaction.atomic():
        Calendar.objects.select_for_update().filter(pk=calendar.pk).first()
        existing = CalendarObject.objects.filter(calendar=calendar, name=name).first() \
            if isinstance(name, str) else None
        if existing is None:
            raise not_found("No such calendar object.")
        _check_conditions(existing, if_match, None)
        pk = existing.pk
        previous = existing.data
        existing.delete()
        blobs.charge(calendar.account_id, -existing.size)
        _count(calendar.account_id, -existing.size, -1)
        state = journal.record(calendar.account_id, EVENT, destroyed={str(pk): f"{calendar.slug}/{name}"})
        Calendar.objects.filter(pk=calendar.pk).update(member_change=int(state))
        calendar.member_change = int(state)
        if schedule:
            from . import scheduling  # noqa: PLC0415 - scheduling calls back into this module
            scheduling.after_delete(calendar, previous)


def reindex(obj: CalendarObject, *, now: datetime | None = None) -> None:
    """Rebuild one object's occurrence rows (after the horizon moved, or the limits changed).
    The object's data does not change, so nothing is journaled."""
    lim = limits()
    parsed = ical.inspect(obj.data, max_size=max(lim.max_size, len(obj.data.encode())),
                          max_attendees=10**6)
    try:
        expansion = index(parsed, lim, now=now)
    except CalendarError:
        return
    with transaction.atomic():
        CalendarObject.objects.filter(pk=obj.pk).update(first_start=expansion.first_start,
                                                       last_end=expansion.last_end,
                                                       indexed_until=expansion.indexed_until)
        Occurrence.objects.filter(object=obj).delete()
        _index_rows(obj, obj.calendar_id, expansion.spans)


# --- sync -------------------------------------------------------------------------------------

@dataclass
class SyncChanges:
    """What changed in one calendar since a state (RFC 6578 sync-collection)."""

    new_state: str
    has_more: bool
    changed: list[CalendarObject] = field(default_factory=list)  # created or updated, without data
    removed: list[str] = field(default_factory=list)  # names of the tombstones


def sync_state(account) -> str:
    """The account's calendar-object state: the sync token's change id (account-wide, as the
    reference's)."""
    return journal.state(account.pk, EVENT)


def collection_changes(calendar: Calendar, since_state: str, limit: int) -> SyncChanges:
    """The objects of `calendar` created, updated or removed after `since_state`; at most
    `limit` journal entries are read, and `has_more` then says the client asks again from
    `new_state`. A state the journal never gave out, or has pruned, is DAV:valid-sync-token."""
    try:
        changes = journal.changes(calendar.account_id, EVENT, since_state, max_changes=limit)
    except journal.CannotCalculateChanges as exc:
        raise CalendarError("valid-sync-token", str(exc), status=403, namespace="dav")
    prefix = f"{calendar.slug}/"
    mine = [pk for pk in (*changes.created, *changes.updated) if changes.hrefs.get(pk, "").startswith(prefix)]
    objects = list(CalendarObject.objects.filter(calendar=calendar, pk__in=[int(pk) for pk in mine])
                   .defer("data").order_by("name"))
    for obj in objects:
        obj.calendar = calendar
    present = {obj.name for obj in objects}
    removed = sorted({changes.hrefs[pk][len(prefix):] for pk in changes.destroyed
                      if changes.hrefs.get(pk, "").startswith(prefix)} - present)
    return SyncChanges(new_state=changes.new_state, has_more=changes.has_more_changes, changed=objects,
                       removed=removed)


def initial_sync(calendar: Calendar) -> tuple[str, list[CalendarObject]]:
    """(the state, every object without data): an initial sync-collection. The state is read
    first, so a write between the two reads is listed again at the next sync, never lost."""
    state = journal.state(calendar.account_id, EVENT)
    return state, list_objects(calendar)


def objects_by_names(calendar: Calendar, names: Sequence[str]) -> dict[str, CalendarObject]:
    return get_objects(calendar, names)
