#!/usr/bin/env python3
"""The change journal's cost as it grows (issue 13: `Email/changes` after 100 changes).

    .venv/bin/python bench/journal.py [--sizes 1000 100000] [--repeat 300]
    DATABASE_URL=postgres://… .venv/bin/python bench/journal.py

In-process, on a throw-away database that Django's test runner creates and drops (a SQLite
file in a temporary directory by default, `test_<name>` on PostgreSQL). For each size N, one account
gets N journal entries of type "Email" (ten per record() call, with a Thread change beside
each, as a real import does), interleaved with as many of a second account, so the index also
has to skip a neighbour. Then, after 100 more changes, it times:

1. changes(since the state 100 changes ago, maxChanges=500): what a client polling finds;
2. changes(since "0") on the pruned-free journal with maxChanges=500: the oldest state, one page;
3. record() of one change in its own transaction;
4. state().

and prints p50/p99 in milliseconds, with the number of entries and, on PostgreSQL, the size
of the journal's table and indexes; then the database's plan of changes()'s one statement.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases  # noqa: E402

from accounts.models import Account, Domain  # noqa: E402
from journal import services as journal  # noqa: E402
from journal.models import Entry  # noqa: E402
from journal.services import Change  # noqa: E402


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def fill(account: int, other: int, count: int, prefix: str) -> None:
    """`count` changes for `account` (and as many for `other`), ten per record() call, with a
    Thread change beside each call, a thousand changes per transaction."""
    for start in range(0, count, 1000):
        with transaction.atomic():
            for n in range(start, min(start + 1000, count), 10):
                block = range(n, min(n + 10, count))
                journal.record_many(account, {"Email": Change(created=[f"{prefix}{i}" for i in block]),
                                              "Thread": Change(updated=[f"t{n // 10}"])})
                journal.record(other, "Email", created=[f"o{prefix}{i}" for i in block])


def run(size: int, repeat: int) -> None:
    domain, _ = Domain.objects.get_or_create(name="bench.example")
    account = Account.objects.create(name=f"bench{size}", domain=domain).pk
    other = Account.objects.create(name=f"other{size}", domain=domain).pk
    begin = time.perf_counter()
    fill(account, other, size - 100, "m")
    since = journal.state(account, "Email")
    fill(account, other, 100, "late")
    filled = time.perf_counter() - begin
    got = journal.changes(account, "Email", since, 500)
    assert len(got.created) == 100 and not got.has_more_changes, got
    rows = Entry.objects.count()
    size_note = ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('journal_entry'))")
            size_note = f", journal_entry {cursor.fetchone()[0]} with indexes"
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE journal_entry")
    print(f"\nN = {size:,} changes for the account ({rows:,} entries in the journal{size_note}; "
          f"filled in {filled:.1f} s)")
    counter = iter(range(10**9))
    # In this order: record() moves the state on, so the 100-change window is timed first.
    for label, fn in [
        ("changes() after 100 changes", lambda: journal.changes(account, "Email", since, 500)),
        ("changes() from state 0, 500 ids", lambda: journal.changes(account, "Email", "0", 500)),
        ("record() one change, own transaction", lambda: journal.record(account, "Email",
                                                                        updated=[f"m{next(counter) % 50}"])),
        ("state()", lambda: journal.state(account, "Email")),
    ]:
        p50, p99 = timed(fn, repeat)
        print(f"  {label:40s} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")
    explain(account, since)


def explain(account: int, since: str) -> None:
    """The plan of changes()'s one statement: the index range scan the docs promise."""
    with connection.execute_wrapper(_capture), CaptureQueriesContext(connection) as queries:
        journal.changes(account, "Email", since, 500)
    sql, params = _captured[-1]
    prefix = "EXPLAIN (ANALYZE, COSTS OFF)" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{prefix} {sql}", params)
        plan = [" ".join(str(col) for col in row) for row in cursor.fetchall()]
    print("  plan of changes():\n    " + "\n    ".join(plan))
    assert len(queries) == 1


_captured: list[tuple] = []


def _capture(execute, sql, params, many, context):
    _captured.append((sql, params))
    return execute(sql, params, many, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=300)
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-journal-")
    if connection.vendor == "sqlite":
        # A file, as in production (WAL, a real commit), not the test runner's in-memory default.
        connection.settings_dict["TEST"]["NAME"] = str(Path(scratch) / "journal.sqlite3")
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
