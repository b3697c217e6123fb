#!/usr/bin/env python3
"""The mail store's hot paths as the account grows (issue 13's speed list).

    .venv/bin/python bench/mail.py [--sizes 1000 100000] [--repeat 200]
    DATABASE_URL=postgres://… .venv/bin/python bench/mail.py

In-process, on a throw-away database that Django's test runner creates and drops (a SQLite
file in a temporary directory by default). For each size N, one account gets N messages through
the store's own import function (`mail.store.import_raw`: parse, blob, thread, memberships,
keywords, journal; no HTTP), one in three a reply in a thread, half of them read. Then it times
whole JMAP requests through Django's test client (authentication, the engine, JSON), beside
Core/echo through the same path:

1. Email/query inMailbox, sort receivedAt descending, limit 50;
2. the same with collapseThreads;
3. Email/query with a text filter (over the full-text index);
4. Email/get of 50 ids with preview and the usual list properties;
5. Email/changes after 100 changes;

and prints p50/p99 in milliseconds, and the import rate of the generator.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
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

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases  # noqa: E402

from accounts import services  # noqa: E402
from accounts.models import Account, Domain, SystemSettings  # noqa: E402
from mail import store  # noqa: E402
from mail.models import Mailbox  # noqa: E402
from registry import ids  # noqa: E402

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
WORDS = ("budget", "meeting", "travel", "invoice", "report", "lunch", "review", "launch", "quarterly", "draft")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def message(i: int) -> bytes:
    subject = f"{WORDS[i % 10]} {WORDS[(i // 10) % 10]} {i // 3}"
    lines = [f"From: Sender {i % 97} <sender{i % 97}@example.com>", "To: bench@bench.example",
             f"Subject: {'Re: ' if i % 3 else ''}{subject}", f"Message-ID: <{i}@bench>",
             f"Date: Mon, 07 Dec 2026 10:{i % 60:02d}:00 +0000"]
    if i % 3:
        lines += [f"In-Reply-To: <{i - 1}@bench>", f"References: <{i - (i % 3)}@bench> <{i - 1}@bench>"]
    body = f"Hello, message {i} about the {WORDS[(i * 7) % 10]} with a few more words to fill a preview line."
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def fill(account: int, inbox: int, count: int, start: int = 0) -> float:
    began = time.perf_counter()
    base = 1_700_000_000
    for chunk in range(start, start + count, 500):
        with transaction.atomic():
            for i in range(chunk, min(chunk + 500, start + count)):
                store.import_raw(account, message(i), [inbox], keywords={"$seen": True} if i % 2 else {},
                                 received_at=datetime.datetime.fromtimestamp(base + i * 60, tz=datetime.timezone.utc))
    return count / (time.perf_counter() - began)


class Bench:
    def __init__(self, login: str, account_id: str):
        self.client = Client()
        self.auth = "Basic " + base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()
        self.account_id = account_id

    def call(self, name: str, args: dict) -> dict:
        body = json.dumps({"using": USING, "methodCalls": [[name, {"accountId": self.account_id, **args}, "c"]]})
        resp = self.client.post("/jmap/", body, content_type="application/json", HTTP_AUTHORIZATION=self.auth)
        answer = resp.json()["methodResponses"][0]
        assert answer[0] == name, answer
        return answer[1]

    def timed(self, name: str, args: dict, repeat: int) -> tuple[float, float]:
        self.call(name, args)
        samples = []
        for _ in range(repeat):
            begin = time.perf_counter()
            self.call(name, args)
            samples.append(time.perf_counter() - begin)
        return percentiles(samples)


def run(size: int, repeat: int, domain) -> None:
    name = f"bench{size}"
    account = services.create_account({"name": name, "domain": domain.pk, "roles_mode": Account.RolesMode.USER,
                                       "kind": "user"}, "bench", password=PASSWORD)
    inbox = Mailbox.objects.get(account=account, role="inbox").pk
    rate = fill(account.pk, inbox, size)
    bench = Bench(f"{name}@{domain.name}", ids.encode(account.pk))
    inbox_id = ids.encode(inbox)
    newest = [{"property": "receivedAt", "isAscending": False}]
    query = {"filter": {"inMailbox": inbox_id}, "sort": newest, "limit": 50}
    page = bench.call("Email/query", query)["ids"]
    since = bench.call("Email/get", {"ids": []})["state"]
    # 100 changes: 50 flagged, then unflagged again.
    for flag in (True, None):
        for email_id in page:
            bench.call("Email/set", {"update": {email_id: {"keywords/$flagged": flag}}})
    print(f"\nN = {size:,} messages (imported at {rate:,.0f} messages/s, in-process, {connection.vendor})")
    rows = [
        ("Core/echo", "Core/echo", {}),
        ("Email/query inMailbox, receivedAt, 50", "Email/query", query),
        ("  with collapseThreads", "Email/query", {**query, "collapseThreads": True}),
        ("  with a text filter (full-text)", "Email/query", {**query, "filter": {"inMailbox": inbox_id,
                                                                                "text": "quarterly"}}),
        ("Email/get 50 with preview", "Email/get", {"ids": page, "properties": [
            "threadId", "mailboxIds", "keywords", "from", "to", "subject", "receivedAt", "size", "preview",
            "hasAttachment"]}),
        ("Email/changes after 100 changes", "Email/changes", {"sinceState": since}),
    ]
    for label, method_name, args in rows:
        runner = _Echo(bench) if method_name == "Core/echo" else bench
        p50, p99 = runner.timed(method_name, args, repeat)
        print(f"  {label:42s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    explain(bench, query)


def explain(bench: Bench, query: dict) -> None:
    """The database's plan of the first page's statement: the index walk the docs promise."""
    with CaptureQueriesContext(connection) as queries:
        bench.call("Email/query", query)
    sql = next(q["sql"] for q in queries.captured_queries if "mail_membership" in q["sql"])
    prefix = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        cursor.execute(f"{prefix} {sql}")
        plan = [" ".join(str(col) for col in row) for row in cursor.fetchall()]
    print("  plan of Email/query's page:\n    " + "\n    ".join(plan))


class _Echo(Bench):
    """Core/echo takes no accountId."""

    def __init__(self, other: Bench):
        self.client, self.auth, self.account_id = other.client, other.auth, other.account_id

    def call(self, name: str, args: dict) -> dict:
        body = json.dumps({"using": USING, "methodCalls": [[name, {"x": 1}, "c"]]})
        resp = self.client.post("/jmap/", body, content_type="application/json", HTTP_AUTHORIZATION=self.auth)
        return resp.json()["methodResponses"][0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--repeat", type=int, default=200)
    options = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="bench-mail-")
    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = str(Path(scratch) / "mail.sqlite3")
    settings.STORAGES["blobs"] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                  "OPTIONS": {"location": str(Path(scratch) / "blobs")}}
    old = setup_databases(verbosity=0, interactive=False)
    try:
        domain, _ = Domain.objects.get_or_create(name="bench.example")
        system = SystemSettings.load()
        system.default_domain = domain
        system.save()
        for size in options.sizes:
            run(size, options.repeat, domain)
    finally:
        teardown_databases(old, verbosity=0)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
