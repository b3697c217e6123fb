"""A PUT of one new event or card asks the same statements whatever the collection holds (issue
14: its time must not grow with the calendar): with a disk quota and an object limit set, the
quota check and the limit read the account's usage row (blobs.StoreUsage), not a count or a
sum over every object."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from calendars import services as calendars
from contacts import services as contacts

CAL = "/dav/cal/alice%40example.org/default/"
BOOK = "/dav/card/alice%40example.org/default/"


def ics(uid: str) -> bytes:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\n"
            "DTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:M\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            ).encode()


def vcf(uid: str) -> bytes:
    return f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{uid}\r\nFN:{uid}\r\nEND:VCARD\r\n".encode()


def statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.django_db
@pytest.mark.parametrize("service", ["cal", "card"])
def test_a_put_asks_the_same_statements_at_any_size(alice, settings, service):
    settings.CALENDAR_MAX_EVENTS = 10_000
    account = Account.objects.get(email_address="alice@example.org")
    Account.objects.filter(pk=account.pk).update(max_disk_quota=50_000_000)
    assert alice.propfind(f"/dav/{service}/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    if service == "cal":
        calendar = calendars.get_calendar(account, "default")
        seed = lambda i: calendars.put_object(calendar, f"s{i}.ics", ics(f"s{i}"))  # noqa: E731
        put = lambda i: alice.put(CAL + f"n{i}.ics", ics(f"n{i}"), content_type="text/calendar")  # noqa: E731
        table = "calendars_calendarobject"
    else:
        book = contacts.default_book(account.pk)
        seed = lambda i: contacts.put_card(book, f"s{i}.vcf", vcf(f"s{i}"))  # noqa: E731
        put = lambda i: alice.put(BOOK + f"n{i}.vcf", vcf(f"n{i}"), content_type="text/vcard")  # noqa: E731
        table = "contacts_card"
    counts, seeded = [], 0
    for total in (3, 60):
        for i in range(seeded, total):
            seed(i)
        seeded = total
        put(total)  # the account's first HTTP write of this round: its caches warm
        with CaptureQueriesContext(connection) as queries:
            r = put(total + 1000)
        assert r.status_code == 201, r.content
        counts.append(len(queries))
        for sql in statements(queries):
            # No count of the account's objects, no sum of their sizes (the quota reads the row;
            # its measure for an account without one is never reached).
            assert not (f'COUNT("{table}"' in sql or f"COUNT(*) AS \"__count\" FROM \"{table}\"" in sql), sql
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
@pytest.mark.parametrize("service, table", [("cal", "calendars_calendar"), ("card", "contacts_addressbook")])
def test_a_put_reads_its_collection_and_the_locks_once(alice, service, table):
    """The resource lookup reads the collection for both the new name and its parent, the PUT
    reuses that row, and one query answers the locks of the name and of its parent."""
    assert alice.propfind(f"/dav/{service}/alice%40example.org/", ["D:resourcetype"]).status_code == 207
    url, body, media = ((CAL, ics, "text/calendar") if service == "cal" else (BOOK, vcf, "text/vcard"))
    ext = ".ics" if service == "cal" else ".vcf"
    assert alice.put(f"{url}warm{ext}", body("warm"), content_type=media).status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert alice.put(f"{url}new{ext}", body("new"), content_type=media).status_code == 201
    sql = statements(queries)
    reads = [s for s in sql if s.startswith("SELECT") and f'FROM "{table}"' in s]
    # One read to find the resource; the calendar's PUT locks its row once more in the transaction.
    assert len(reads) == (2 if service == "cal" else 1), reads
    assert len([s for s in sql if 'FROM "dav_lock"' in s]) == 1
