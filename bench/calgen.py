#!/usr/bin/env python3
"""The benchmark calendar (issue 14): N events, one an hour from 1 January 2026, every tenth
weekly for a year (COUNT=52), UTC times. bench/calendar_store.py and bench/dav.py share it.

    .venv/bin/python bench/calgen.py --count 10000 [--name davbench] [--calendar bench]

As a script it fills our store through calendars.services.put_object() in-process (what a PUT
stores, without HTTP), on the database of the environment (DATABASE_URL, STALWART_VAR_DIR) as
manage.py does, creating the account with a password first; it prints one JSON line: login,
password, calendar, count and seconds. bench/dav.py runs it against its server's throw-away
database and writes the same events as files for Radicale.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

UTC = timezone.utc
BASE = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
FMT = "%Y%m%dT%H%M%SZ"


def ics(n: int, start: datetime | None = None, summary: str = "Event") -> bytes:
    """Event n; it starts n hours after BASE unless `start` says otherwise."""
    start = BASE + timedelta(hours=n) if start is None else start
    rule = "RRULE:FREQ=WEEKLY;COUNT=52\r\n" if n % 10 == 0 else ""
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{n}\r\n"
            f"DTSTAMP:20260101T000000Z\r\nDTSTART:{start:{FMT}}\r\nDTEND:{start + timedelta(hours=1):{FMT}}\r\n"
            f"{rule}SUMMARY:{summary} {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").encode()


def name(n: int) -> str:
    return f"e{n}.ics"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--name", default="davbench")
    parser.add_argument("--calendar", default="bench")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")
    import django

    django.setup()
    # why: Django must be set up first; importing this module for ics() must not need it
    from django.db import connection

    from accounts import services as accounts
    from accounts.models import Account, Domain, SystemSettings
    from calendars import services

    domain, _ = Domain.objects.get_or_create(name="bench.example")
    system = SystemSettings.load()
    if system.default_domain_id is None:
        system.default_domain = domain
        system.save()
    account = accounts.create_account({"name": args.name, "domain": domain.pk, "roles_mode": Account.RolesMode.USER,
                                       "kind": "user"}, "bench", password=PASSWORD)
    calendar = services.create_calendar(account, args.calendar)
    began = time.perf_counter()
    for n in range(args.count):
        services.put_object(calendar, name(n), ics(n))
        if n and n % 2000 == 0:
            print(f"  {n:,} events, {n / (time.perf_counter() - began):,.0f}/s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - began
    with connection.cursor() as cursor:
        # What autovacuum would have done by the time a calendar this size is read.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(json.dumps({"login": f"{args.name}@{domain.name}", "password": PASSWORD, "calendar": args.calendar,
                      "count": args.count, "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
