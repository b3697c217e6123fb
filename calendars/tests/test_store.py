"""The store: calendars, put/get/delete of objects with their RFC 4791 §5.3.2 refusals, the
occurrence index, the journal (ctag, sync, tombstones), and the attacker's inputs."""
from datetime import datetime, timezone

import pytest
from django.db.models import Count, Sum

from blobs import services as blobs
from blobs.models import StoreUsage
from calendars import services
from calendars.errors import CalendarError
from calendars.models import Calendar, CalendarObject, Occurrence
from journal import services as journal

from .conftest import event, sample

UTC = timezone.utc


def refused(condition, call, *args, **kwargs) -> CalendarError:
    with pytest.raises(CalendarError) as info:
        call(*args, **kwargs)
    assert info.value.condition == condition, info.value
    return info.value


# --- calendars --------------------------------------------------------------------------------

def test_default_calendar_on_first_use_and_kept(jane):
    found = services.calendars(jane)
    assert [c.slug for c in found] == ["default"]
    assert found[0].display_name == "Stalwart Calendar (jane@example.org)"
    assert services.calendars(jane)[0].pk == found[0].pk  # not created twice
    error = refused("default-calendar-needed", services.delete_calendar, found[0])
    assert error.status == 403


def test_no_default_calendar_when_the_name_is_empty(jane, settings):
    settings.CALENDAR_DEFAULT_HREF_NAME = ""
    assert services.calendars(jane) == []


def test_no_default_once_the_account_has_calendars(jane, work):
    assert [c.slug for c in services.calendars(jane)] == ["work"]


def test_create_calendar_properties_and_refusals(jane, settings):
    cal = services.create_calendar(jane, "tasks", display_name="Tasks", components=["VTODO"], color="#ff0000",
                                   timezone_id="Europe/Berlin", sort_order=3)
    assert cal.component_set == ("VTODO",)
    assert refused("resource-must-be-null", services.create_calendar, jane, "tasks").status == 405
    refused("valid-timezone", services.create_calendar, jane, "x", timezone_id="Mars/Olympus")
    refused("supported-calendar-component", services.create_calendar, jane, "y", components=["VCARD"])
    for bad in ("", "a/b", "..", "a\0b", "x" * 256):
        refused("bad-request", services.create_calendar, jane, bad)
    refused("valid-calendar-data", services.create_calendar, jane, "z", timezone="BEGIN:VCALENDAR\r\nEND:VCALENDAR")
    settings.CALENDAR_MAX_CALENDARS = 1
    refused("max-calendars", services.create_calendar, jane, "another")


def test_update_calendar_keeps_component_set_and_moves_ctag(work):
    before = work.ctag
    services.update_calendar(work, display_name="Work (new)", description="Things", transparent=True)
    work.refresh_from_db()
    assert work.display_name == "Work (new)" and work.transparent
    assert work.ctag != before
    refused("supported-calendar-component", services.update_calendar, work, components=["VTODO"])


# --- put / get / delete -------------------------------------------------------------------

def test_put_get_and_etags(work):
    put = services.put_object(work, "standup.ics", sample("apple_weekly.ics"), if_none_match="*")
    assert put.created and put.changed
    obj = services.get_object(work, "standup.ics")
    assert obj.uid == "6B1C4F0E-3E44-4C57-9E0B-0A4D2C7A1F10" and obj.component == "VEVENT"
    assert obj.data.startswith("BEGIN:VCALENDAR") and obj.size == len(sample("apple_weekly.ics"))
    assert obj.has_alarms
    # The same octets again: nothing written, same etag (RFC 4791 clients re-PUT unchanged data).
    again = services.put_object(work, "standup.ics", sample("apple_weekly.ics"), if_match=obj.quoted_etag)
    assert not again.created and not again.changed and again.object.etag == obj.etag
    changed = sample("apple_weekly.ics").replace(b"SUMMARY:Team standup\r\n", b"SUMMARY:Daily standup\r\n")
    updated = services.put_object(work, "standup.ics", changed, if_match=f'W/"{obj.etag}"')
    assert updated.changed and not updated.created and updated.object.etag != obj.etag
    # Conditional writes.
    refused("precondition-failed", services.put_object, work, "standup.ics", changed, if_match=obj.etag)
    refused("precondition-failed", services.put_object, work, "standup.ics", changed, if_none_match="*")
    refused("precondition-failed", services.put_object, work, "new.ics", event("n", ":20260101T100000Z"),
            if_match="*")
    listed = services.list_objects(work)
    assert [(o.name, o.etag) for o in listed] == [("standup.ics", updated.object.etag)]
    assert [row[:3] for row in services.list_etags(work)] == [("standup.ics", updated.object.etag,
                                                               updated.object.size)]
    services.delete_object(work, "standup.ics", if_match=updated.object.etag)
    refused("not-found", services.get_object, work, "standup.ics")
    refused("not-found", services.delete_object, work, "standup.ics")
    assert not Occurrence.objects.exists()


@pytest.mark.parametrize("name", ["apple_weekly.ics", "outlook_dst.ics", "thunderbird_todo.ics", "floating.ics",
                                  "tz_by_reference.ics", "rdate.ics"])
def test_real_world_exports_are_stored(work, name):
    put = services.put_object(work, name, sample(name))
    assert put.created and put.object.first_start is not None


def test_google_export_needs_its_method_removed(work):
    error = refused("valid-calendar-object-resource", services.put_object, work, "g.ics", sample("google_allday.ics"))
    assert error.status == 412 and error.namespace == "caldav"
    put = services.put_object(work, "g.ics", sample("google_allday.ics", drop=("METHOD:",)))
    # An all-day yearly birthday without end: open-ended, indexed up to the horizon, free time.
    assert put.object.last_end is None and put.object.indexed_until is not None
    rows = list(Occurrence.objects.filter(object=put.object).order_by("start"))
    assert rows[0].floating and rows[0].busy == 0
    assert rows[0].start == datetime(2024, 3, 14, tzinfo=UTC) and rows[0].end == datetime(2024, 3, 15, tzinfo=UTC)


def test_index_of_a_recurring_event_with_exdate_and_override(work):
    put = services.put_object(work, "standup.ics", sample("apple_weekly.ics"))
    starts = [o.start for o in Occurrence.objects.filter(object=put.object).order_by("start")]
    # Weekly Mondays 09:30 New York from 12 Jan to the end of April 2026: 16 Mondays, one
    # excluded (26 Jan), one moved (2 Feb -> Tuesday 3 Feb 10:30).
    assert len(starts) == 15
    assert datetime(2026, 1, 26, 14, 30, tzinfo=UTC) not in starts
    assert datetime(2026, 2, 2, 14, 30, tzinfo=UTC) not in starts
    assert datetime(2026, 2, 3, 15, 30, tzinfo=UTC) in starts
    # DST in New York starts 8 March: 09:30 local is 14:30 UTC before, 13:30 UTC after.
    assert datetime(2026, 3, 2, 14, 30, tzinfo=UTC) in starts
    assert datetime(2026, 3, 9, 13, 30, tzinfo=UTC) in starts
    assert put.object.first_start == datetime(2026, 1, 12, 14, 30, tzinfo=UTC)
    assert put.object.indexed_until is None


def test_outlook_time_zone_across_dst(work):
    put = services.put_object(work, "o.ics", sample("outlook_dst.ics"))
    starts = [o.start for o in Occurrence.objects.filter(object=put.object).order_by("start")]
    assert len(starts) == 20
    # Europe moves to summer time on 29 March 2026: 09:00 local is 08:00 UTC, then 07:00 UTC.
    assert starts[0] == datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    assert datetime(2026, 3, 30, 7, 0, tzinfo=UTC) in starts


def test_time_zone_by_reference(work):
    """RFC 7809: an IANA TZID needs no VTIMEZONE; an unknown one without it is refused."""
    put = services.put_object(work, "ref.ics", sample("tz_by_reference.ics"))
    row = Occurrence.objects.get(object=put.object)
    # 01:30 CET is 00:30 UTC; 03:30 CEST (after the jump) is 01:30 UTC.
    assert (row.start, row.end) == (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    bad = sample("tz_by_reference.ics").replace(b"Europe/Berlin", b"Atlantis/Capital")
    refused("valid-calendar-data", services.put_object, work, "bad.ics", bad)


def test_vtodo_with_due_only_is_indexed_at_its_due_time(work):
    put = services.put_object(work, "todo.ics", sample("thunderbird_todo.ics"))
    row = Occurrence.objects.get(object=put.object)
    assert row.end == datetime(2026, 5, 31, 16, 0, tzinfo=UTC)


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data, condition", [
    (b"\xff\xfe not utf-8", "supported-calendar-data"),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nEND:VCARD\r\n", "supported-calendar-data"),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n", "valid-calendar-data"),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:notadate\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
     "valid-calendar-data"),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", "valid-calendar-object-resource"),
    (event("a", ":20260101T100000Z").replace(b"VERSION:2.0", b"VERSION:2.0\r\nMETHOD:REQUEST"),
     "valid-calendar-object-resource"),
    (event("a", ":20260101T100000Z").replace(b"END:VCALENDAR", b"BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20260101T100000Z\r\n"
                                             b"RECURRENCE-ID:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR"),
     "valid-calendar-object-resource"),
    (event("a", ":20260101T100000Z").replace(b"END:VCALENDAR", b"BEGIN:VTODO\r\nUID:a\r\nEND:VTODO\r\nEND:VCALENDAR"),
     "valid-calendar-object-resource"),
    (event("a", ":20260101T100000Z").replace(b"UID:a\r\n", b""), "valid-calendar-object-resource"),
    (event("x" * 300, ":20260101T100000Z"), "valid-calendar-object-resource"),
    (event("a", ":20260101T100000Z", extra="RRULE:FREQ=DAILY;COUNT=100000"), "max-instances"),
    (event("a", ":20260101T100000Z", extra="RRULE:FREQ=SECONDLY;UNTIL=20260201T000000Z"), "max-instances"),
    (event("a", ":20260101T100000Z", extra="\r\n".join(f"ATTENDEE:mailto:p{n}@example.org" for n in range(21))),
     "max-attendees-per-instance"),
    (event("a", ";TZID=Nowhere/Land:20260101T100000"), "valid-calendar-data"),
])
def test_refusals(work, data, condition):
    error = refused(condition, services.put_object, work, "a.ics", data)
    assert error.namespace == "caldav" and error.status == 412
    assert not CalendarObject.objects.exists() and not Occurrence.objects.exists()
    assert journal.state(work.account_id, services.EVENT) == "0"


def test_size_limit_before_any_parsing(work, settings):
    huge = event("a", ":20260101T100000Z", extra="DESCRIPTION:" + "x" * (10 * 1024 * 1024))
    error = refused("max-resource-size", services.put_object, work, "a.ics", huge)
    assert error.status == 412
    settings.CALENDAR_MAX_ICALENDAR_SIZE = 200
    refused("max-resource-size", services.put_object, work, "a.ics", event("a", ":20260101T100000Z", extra="X-P:" + "y" * 100))


def test_deep_nesting_is_refused(work):
    nested = "".join("BEGIN:VALARM\r\n" for _ in range(5000)) + "".join("END:VALARM\r\n" for _ in range(5000))
    data = event("a", ":20260101T100000Z").replace(b"END:VEVENT", nested.encode() + b"END:VEVENT")
    refused("valid-calendar-data", services.put_object, work, "a.ics", data)


def test_endless_rrule_every_second_or_minute_is_refused(work):
    for freq in ("SECONDLY", "MINUTELY"):
        refused("max-instances", services.put_object, work, "s.ics",
                event("s", ":20260101T000000Z", ":20260101T000001Z", extra=f"RRULE:FREQ={freq}"))


def test_endless_hourly_rrule_is_capped_not_refused(work, settings):
    settings.CALENDAR_MAX_RECURRENCE_EXPANSIONS = 500
    put = services.put_object(work, "h.ics", event("h", ":20260101T000000Z", ":20260101T000100Z",
                                                   extra="RRULE:FREQ=HOURLY"))
    assert Occurrence.objects.filter(object=put.object).count() == 500
    assert put.object.last_end is None
    assert put.object.indexed_until == datetime(2026, 1, 21, 20, 0, tzinfo=UTC)


def test_uid_conflict_names_the_other_href(work):
    services.put_object(work, "one.ics", event("same", ":20260101T100000Z"))
    error = refused("no-uid-conflict", services.put_object, work, "two.ics", event("same", ":20260102T100000Z"))
    assert error.href == "work/one.ics"
    # The UID of a resource does not change on update either.
    error = refused("no-uid-conflict", services.put_object, work, "one.ics", event("other", ":20260101T100000Z"))
    assert error.href == "work/one.ics"
    # Nor its component type.
    refused("valid-calendar-object-resource", services.put_object, work, "one.ics",
            event("same", ":20260101T100000Z", component="VTODO"))


def test_same_uid_in_two_calendars_is_fine(jane, work):
    other = services.create_calendar(jane, "home")
    services.put_object(work, "a.ics", event("same", ":20260101T100000Z"))
    services.put_object(other, "a.ics", event("same", ":20260101T100000Z"))


def test_supported_component_set(jane):
    tasks = services.create_calendar(jane, "tasks", components=["VTODO"])
    error = refused("supported-calendar-component", services.put_object, tasks, "e.ics", event("e", ":20260101T100000Z"))
    assert error.status == 403
    services.put_object(tasks, "t.ics", event("t", ":20260101T100000Z", component="VTODO"))


def test_min_and_max_date_time(work, settings):
    settings.CALENDAR_MIN_DATE_TIME = "19000101T000000Z"
    settings.CALENDAR_MAX_DATE_TIME = "21000101T000000Z"
    refused("min-date-time", services.put_object, work, "a.ics", event("a", ":18991231T100000Z"))
    refused("max-date-time", services.put_object, work, "a.ics", event("a", ":21000101T100000Z", ":21000101T110000Z"))
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))


def test_bad_names(work):
    for name in ("", "a/b", "..", "a\nb"):
        refused("bad-request", services.put_object, work, name, event("a", ":20260101T100000Z"))


def test_max_events_per_account(work, settings):
    settings.CALENDAR_MAX_EVENTS = 1
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    refused("max-events", services.put_object, work, "b.ics", event("b", ":20260101T100000Z"))
    services.put_object(work, "a.ics", event("a", ":20260102T100000Z"))  # an update still passes


# --- another account ----------------------------------------------------------------------

def test_another_accounts_calendar_is_not_found(jane, bob, work):
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    refused("not-found", services.get_calendar, bob, "work")
    assert services.get_calendar(jane, "work").pk == work.pk
    # Bob's own default calendar is his, not Jane's.
    assert services.get_calendar(bob, "default").account_id == bob.pk
    assert [c.account_id for c in services.calendars(bob)] == [bob.pk]


# --- journal: ctag, sync, tombstones -----------------------------------------------------

def test_ctag_moves_only_for_the_calendar_that_changed(jane, work):
    home = services.create_calendar(jane, "home")
    work_before, home_before = work.ctag, home.ctag
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    work.refresh_from_db()
    home.refresh_from_db()
    assert work.ctag != work_before and home.ctag == home_before


def test_sync_changes_and_tombstones(jane, work):
    home = services.create_calendar(jane, "home")
    start, listed = services.initial_sync(work)
    assert listed == []
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    services.put_object(work, "b.ics", event("b", ":20260101T100000Z"))
    services.put_object(home, "h.ics", event("h", ":20260101T100000Z"))
    services.delete_object(work, "a.ics")
    changes = services.collection_changes(work, start, limit=100)
    assert [o.name for o in changes.changed] == ["b.ics"] and changes.removed == [] and not changes.has_more
    middle = changes.new_state
    services.delete_object(work, "b.ics")
    services.put_object(work, "c.ics", event("c", ":20260101T100000Z"))
    later = services.collection_changes(work, middle, limit=100)
    assert [o.name for o in later.changed] == ["c.ics"] and later.removed == ["b.ics"]
    # A name deleted and created again is reported as present, not removed.
    services.delete_object(work, "c.ics")
    services.put_object(work, "c.ics", event("c", ":20260102T100000Z"))
    again = services.collection_changes(work, later.new_state, limit=100)
    assert [o.name for o in again.changed] == ["c.ics"] and again.removed == []
    # Paging: one entry at a time.
    paged = services.collection_changes(work, start, limit=1)
    assert paged.has_more and int(paged.new_state) < int(services.sync_state(jane))


def test_unknown_and_pruned_sync_tokens_are_valid_sync_token(jane, work):
    for token in ("abc", "999999", "-1"):
        error = refused("valid-sync-token", services.collection_changes, work, token, limit=10)
        assert error.status == 403 and error.namespace == "dav"
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    services.put_object(work, "b.ics", event("b", ":20260101T100000Z"))
    journal.prune(max_changes=1)
    refused("valid-sync-token", services.collection_changes, work, "0", limit=10)


def test_delete_calendar_writes_tombstones(jane, work):
    state = services.sync_state(jane)
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    services.put_object(work, "b.ics", event("b", ":20260101T100000Z"))
    mid = services.sync_state(jane)
    services.delete_calendar(work)
    assert not Calendar.objects.filter(pk=work.pk).exists() and not Occurrence.objects.exists()
    changes = journal.changes(jane.pk, services.EVENT, mid, max_changes=10)
    assert sorted(changes.hrefs[pk] for pk in changes.destroyed) == ["work/a.ics", "work/b.ics"]
    assert journal.changes(jane.pk, services.EVENT, state, max_changes=10).destroyed == []


def test_put_is_a_constant_number_of_queries(work, django_assert_max_num_queries):
    for n in range(3):
        services.put_object(work, f"e{n}.ics", event(f"e{n}", ":20260101T100000Z"))
    with django_assert_max_num_queries(12):
        services.put_object(work, "x.ics", sample("apple_weekly.ics"))


def test_reindex_moves_the_index_of_open_series_forward(work, settings):
    from django.core.management import call_command

    settings.CALENDAR_INDEX_HORIZON_DAYS = 30
    obj = services.put_object(work, "w.ics", event("w", ":20260105T090000Z", ":20260105T100000Z",
                                                   extra="RRULE:FREQ=WEEKLY")).object
    before = Occurrence.objects.filter(object=obj).count()
    settings.CALENDAR_INDEX_HORIZON_DAYS = 400
    call_command("calendars_reindex")
    obj.refresh_from_db()
    assert Occurrence.objects.filter(object=obj).count() > before + 40
    assert obj.indexed_until is not None and obj.last_end is None


# --- the usage row ------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_usage_row_follows_every_write(jane, work):
    def check():
        real = CalendarObject.objects.filter(account=jane).aggregate(octets=Sum("size"), items=Count("pk"))
        assert blobs.counted_items(jane.pk, "CalendarEvent") == real["items"]
        assert blobs.usage(jane.pk) == (real["octets"] or 0)

    default = services.create_calendar(jane, "home")
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    check()
    services.put_object(work, "b.ics", event("b", ":20260101T100000Z"))
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z", extra="SUMMARY:a longer one"))
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z", extra="SUMMARY:a longer one"))  # unchanged
    check()
    services.move_object(work, "a.ics", default, "a.ics")
    services.move_object(default, "a.ics", work, "c.ics", copy=True)
    check()
    services.delete_object(work, "b.ics")
    check()
    # An account from before the row (or one whose row is lost) is measured, then counted again.
    StoreUsage.objects.filter(account=jane).delete()
    assert blobs.counted_items(jane.pk, "CalendarEvent") is None
    assert blobs.usage(jane.pk) == CalendarObject.objects.filter(account=jane).aggregate(s=Sum("size"))["s"]
    services.put_object(work, "d.ics", event("d", ":20260101T100000Z"))
    check()
    other = services.create_calendar(jane, "other")
    services.put_object(other, "e.ics", event("e", ":20260101T100000Z"))
    services.delete_calendar(other)
    check()
    assert StoreUsage.objects.get(account=jane).items == 3


@pytest.mark.django_db
def test_max_events_reads_the_usage_row(work, settings):
    settings.CALENDAR_MAX_EVENTS = 2
    services.put_object(work, "a.ics", event("a", ":20260101T100000Z"))
    services.put_object(work, "b.ics", event("b", ":20260101T100000Z"))
    refused("max-events", services.put_object, work, "c.ics", event("c", ":20260101T100000Z"))
    services.delete_object(work, "b.ics")
    services.put_object(work, "c.ics", event("c", ":20260101T100000Z"))
