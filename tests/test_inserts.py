"""`stalwart_site.inserts.Insert`: cached INSERTs store what the ORM would, on either database;
an int or a bool skips the field's conversion only in Django's own integer and boolean fields."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.db import models

from accounts.models import Account
from calendars.models import Calendar, Occurrence
from calendars import services as calendars
from stalwart_site.inserts import Insert, _plain

UTC = timezone.utc


def test_only_plain_integer_and_boolean_fields_skip_the_conversion():
    assert _plain(Occurrence._meta.get_field("busy"))
    assert _plain(Occurrence._meta.get_field("floating"))
    assert _plain(Occurrence._meta.get_field("object"))  # a key to an integer primary key
    assert not _plain(Occurrence._meta.get_field("start"))
    assert not _plain(Calendar._meta.get_field("acl"))  # JSON: 5 must become the text "5"

    class Custom(models.IntegerField):
        pass

    assert not _plain(Custom())


@pytest.mark.django_db
def test_rows_read_back_as_the_orm_stores_them(make_account):
    account = make_account("ins")
    calendar = calendars.get_calendar(Account.objects.get(pk=account.pk), "default")
    obj = calendars.put_object(calendar, "a.ics", (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")).object
    rows = Insert(Occurrence, ["object", "calendar", "start", "end", "floating", "busy", "long"], batch=2)
    start = datetime(2030, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    rows.run([(obj.pk, calendar.pk, start, start.replace(hour=5), bool(k % 2), k % 3, False) for k in range(5)])
    found = list(Occurrence.objects.filter(object=obj, start=start).order_by("pk")
                 .values_list("start", "end", "floating", "busy"))
    assert found == [(start, start.replace(hour=5), bool(k % 2), k % 3) for k in range(5)]
    # A JSON column given an int stores JSON, not the bare number's conversion skipped.
    Insert(Calendar, ["account", "slug", "display_name", "description", "color", "timezone", "timezone_id",
                      "components", "transparent", "dead_properties", "acl", "shared", "member_change",
                      "own_change", "created", "modified"]).run(
        [(account.pk, "j", "", "", "", "", "", "", False, {}, 5, False, 0, 0, start, start)])
    assert Calendar.objects.get(account=account, slug="j").acl == 5
