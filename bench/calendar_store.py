#!/usr/bin/env python3
"""The calendar store's cost as a calendar grows (issue 14), below HTTP: what the /dav layer
adds comes on top.

    .venv/bin/python bench/calendar_store.py [--sizes 1000 10000] [--repeat 50]
    DATABASE_URL=postgres://… .venv/bin/python bench/calendar_store.py

In-process, on a throw-away database that Django's test runner creates and drops (a SQLite
file in a temporary directory by default, `test_<name>` on PostgreSQL). For each size N, one
calendar gets N events, one a hour from 1 January 2026, 10 % of them weekly for a year
(COUNT=52), with UTC times: bench/calgen.py, shared with bench/dav.py. Then it times, p50/p99 in milliseconds:

1. put_object() of one new event (what PUT costs, independent of N);
2. list_objects() and list_etags(): names, etags and sizes of every object (PROPFIND Depth 1 getetag);
3. collection_changes() after 100 changes (sync-collection);
4. calendar_query() of one week, VEVENT time-range (calendar-query, etags only);
5. get_objects() of 100 random names with their data (calendar-multiget).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from lxml import etree  # noqa: E402

from accounts.models import Account, Domain  # noqa: E402
from calendars import query, services  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calgen import ics  # noqa: E402  (the shared generator)

UTC = timezone.utc
WEEK = etree.fromstring(
    b'<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
    b'<C:comp-filter name="VEVENT"><C:time-range start="20260601T000000Z" end="20260608T000000Z"/>'
    b'</C:comp-filter></C:comp-filter></C:filter>')


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - begin)
    return percentiles(samples)


def run(size: int, repeat: int) -> None:
    domain, _ = Domain.objects.get_or_create(name="bench.example")
    account = Account.objects.create(name=f"cal{size}", domain=domain, email_address=f"cal{size}@bench.example")
    calendar = services.create_calendar(account, f"bench{size}")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    begin = time.perf_counter()
    for n in range(size):
        services.put_object(calendar, f"e{n}.ics", ics(n, base + timedelta(hours=n)))
    filled = time.perf_counter() - begin
    since = services.sync_state(account)
    for n in range(100):
        services.put_object(calendar, f"e{n}.ics", ics(n, base + timedelta(hours=n), "Changed"))
    names = [f"e{n}.ics" for n in range(size)]
    counter = iter(range(size, 10**9))
    hits = len(query.calendar_query(calendar, WEEK))
    print(f"\nN = {size:,} events ({filled:.1f} s to fill, {filled / size * 1000:.1f} ms per PUT; "
          f"{hits} in the week)")
    for label, fn in [
        ("put_object() one new event", lambda: services.put_object(
            calendar, f"new{next(counter)}.ics", ics(next(counter), base + timedelta(hours=3)))),
        ("list_objects() (models, no data)", lambda: services.list_objects(calendar)),
        ("list_etags() (PROPFIND D1 getetag)", lambda: services.list_etags(calendar)),
        ("collection_changes() after 100", lambda: services.collection_changes(calendar, since, 2000)),
        ("calendar_query() one week", lambda: query.calendar_query(calendar, WEEK)),
        ("get_objects() 100 with data", lambda: services.get_objects(calendar, random.sample(names, 100))),
    ]:
        p50, p99 = timed(fn, repeat)
        print(f"  {label:40s} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=50)
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-calendars-")
    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(Path(scratch) / "calendars.sqlite3")
    print(f"database: {connection.vendor}")
    old = setup_databases(verbosity=0, interactive=False)
    try:
        for size in options.sizes:
            run(size, options.repeat)
    finally:
        teardown_databases(old, verbosity=0)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
