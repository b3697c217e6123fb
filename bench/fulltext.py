#!/usr/bin/env python3
"""Speed of full-text search (fulltext/) in the shape of Email/query with a text filter.

    .venv/bin/python bench/fulltext.py [--sizes 1000,100000] [--runs 200]
    DATABASE_URL=postgres://… .venv/bin/python bench/fulltext.py

For each size N: a throw-away database (a SQLite file, or a PostgreSQL database next to the
one DATABASE_URL names) gets N synthetic messages in one account, indexed through
`fulltext.services.index_many` (subject, from, to, cc, a body of about 150 words drawn from a
Zipf-distributed vocabulary of 20,000 words, some attachment names), and a message table with
a received date (indexed with the account). Then, in this process, it times the ORM query
Email/query would run: the account's messages whose text matches, newest first, the first 50:

    Message.objects.filter(account_id=…).filter(q(…, Match("text", words)))
           .order_by("-received_at")[:50]

for one word and for two words (drawn from the 2,000 most frequent words, as a person would
search, so both rare and common words come up), and for the most common word alone (the worst
case: it is in most messages). Prints p50/p99 in milliseconds, the indexing rate and the
database's size. One process, one core.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, models, transaction  # noqa: E402

from fulltext import services as ft  # noqa: E402
from fulltext.text import Match  # noqa: E402

ACCOUNT = 1
VOCABULARY = 20_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fa", "gu", "ha", "ji",
             "pe", "qu", "ri", "so", "tu", "we", "xa", "yo", "zu", "an", "er", "in", "or", "ul"]


class Message(models.Model):
    """The part of an Email row the query sorts and filters on."""

    account_id = models.BigIntegerField()
    received_at = models.DateTimeField()

    class Meta:
        app_label = "fulltext"
        db_table = "bench_fulltext_message"
        managed = False
        indexes = [models.Index(fields=["account_id", "-received_at"], name="bench_ft_recv")]


def vocabulary(rng: random.Random) -> list[str]:
    words = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: rng.random())  # rank order is random, Zipf weights below


def generate(n: int, rng: random.Random, vocab: list[str]):
    cum, total = [], 0.0
    for rank in range(len(vocab)):
        total += 1 / (rank + 1)
        cum.append(total)

    def draw(k):
        return rng.choices(vocab, cum_weights=cum, k=k)

    people = [f"{rng.choice(vocab).title()} {rng.choice(vocab).title()}" for _ in range(500)]
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i in range(1, n + 1):
        body_words = draw(rng.randint(60, 240))
        # Sentences: a capital, commas, a full stop every ten words or so.
        body = " ".join(w + ("." if j % 11 == 10 else "," if j % 7 == 6 else "")
                        for j, w in enumerate(body_words))
        sender, rcpt = rng.choice(people), rng.choice(people)
        fields = {
            "subject": " ".join(draw(rng.randint(3, 9))).capitalize(),
            "from": f"{sender} <{sender.lower().replace(' ', '.')}@example.org>",
            "to": f"{rcpt} <{rcpt.lower().replace(' ', '.')}@example.net>",
            "cc": "" if rng.random() < 0.7 else f"team@{rng.choice(vocab)}.example.com",
            "body": body,
            "attachmentNames": "" if rng.random() < 0.8 else f"{rng.choice(vocab)}-{i}.pdf",
        }
        yield i, start + timedelta(seconds=rng.randint(0, 2 * 365 * 86400)), fields


def populate(n: int, seed: int) -> tuple[list[str], float]:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    with connection.schema_editor() as editor:
        editor.create_model(Message)
        for index in Message._meta.indexes:
            editor.add_index(Message, index)
    messages = list(generate(n, rng, vocab))  # generated first: the rate is the indexing alone
    began = time.perf_counter()
    batch, rows = [], []
    for doc_id, received, fields in messages:
        batch.append((doc_id, fields))
        rows.append(Message(id=doc_id, account_id=ACCOUNT, received_at=received))
        if len(batch) == 1000:
            with transaction.atomic():
                Message.objects.bulk_create(rows)
                ft.index_many(ACCOUNT, "email", batch)
            batch, rows = [], []
    if batch:
        with transaction.atomic():
            Message.objects.bulk_create(rows)
            ft.index_many(ACCOUNT, "email", batch)
    elapsed = time.perf_counter() - began
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return vocab, n / elapsed


def page(words: str) -> list:
    return list(Message.objects.filter(account_id=ACCOUNT).filter(ft.q(ACCOUNT, "email", Match("text", words)))
                .order_by("-received_at").values_list("id", flat=True)[:50])


def timed(queries: list[str]) -> tuple[float, float, float]:
    page(queries[0])  # warm the statement and the pages
    times, hits = [], []
    for words in queries:
        began = time.perf_counter()
        hits.append(len(page(words)))
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))], statistics.mean(hits)


def size_of_database() -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return f"{pages * cursor.fetchone()[0] / 1e6:.0f} MB"
        cursor.execute("SELECT pg_database_size(current_database())")
        return f"{cursor.fetchone()[0] / 1e6:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    vendor = connection.vendor
    if vendor == "sqlite":
        print(f"database: SQLite {connection.Database.sqlite_version} (a file, WAL)")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            print(f"database: PostgreSQL {cursor.fetchone()[0]}")
    for n in (int(s) for s in args.sizes.split(",")):
        workdir = tempfile.mkdtemp(prefix="bench-fulltext-")
        if vendor == "sqlite":
            # A file, as the server has, not SQLite's in-memory test database.
            connection.settings_dict["TEST"]["NAME"] = str(Path(workdir) / "bench.sqlite3")
        old = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            vocab, rate = populate(n, args.seed)
            rng = random.Random(args.seed + 1)
            common = vocab[:2000]
            one = [rng.choice(common) for _ in range(args.runs)]
            two = [f"{rng.choice(common)} {rng.choice(common)}" for _ in range(args.runs)]
            worst = [vocab[0]] * max(20, args.runs // 5)
            print(f"\nN={n:,} messages, one account; indexed at {rate:,.0f} messages/s; database {size_of_database()}")
            for label, queries in (("one word", one), ("two words", two), ("most common word", worst)):
                p50, p99, hits = timed(queries)
                print(f"  {label:<17} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   (first page: {hits:.0f} ids on average)")
        finally:
            connection.creation.destroy_test_db(old, verbosity=0)


if __name__ == "__main__":
    main()
