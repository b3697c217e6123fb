"""bench/mailgen.py's bulk path stores exactly what `mail.store.import_raw` stores for the same
messages: the benchmarks measure the rows a real account has."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from django.db import connection

from blobs import services as blobs
from blobs.models import Hold
from fulltext.models import Document
from mail import store
from mail.models import Email, Keyword, Mailbox, Membership, ThreadKey

# A script of bench/, not a package; bench/ is not put on sys.path (its mail.py, journal.py and
# fulltext.py would shadow the apps).
_spec = importlib.util.spec_from_file_location("mailgen", Path(__file__).resolve().parent.parent / "bench" / "mailgen.py")
mailgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mailgen)


def _boxes(account_pk):
    for i, name in enumerate(mailgen.FOLDERS):
        Mailbox.objects.create(account_id=account_pk, name=name, sort_order=10 + i)
    out = dict(Mailbox.objects.filter(account_id=account_pk).values_list("name", "pk"))
    out.update(Mailbox.objects.filter(account_id=account_pk, role__isnull=False).values_list("role", "pk"))
    return out


def _snapshot(account_pk):
    """Everything the store keeps for an account's mail, with its own ids replaced by positions."""
    emails = list(Email.objects.filter(account_id=account_pk).order_by("pk"))
    position = {e.pk: i for i, e in enumerate(emails)}
    thread_position = {}
    for e in emails:
        thread_position.setdefault(e.thread_id, len(thread_position))
    names = dict(Mailbox.objects.filter(account_id=account_pk).values_list("pk", "name"))
    rows = []
    for e in emails:
        view = blobs.resolve(account_pk, [e.blob_id]).get(e.blob_id)
        holds = sorted(Hold.objects.filter(account_blob__account_id=account_pk, account_blob__jmap_id=e.blob_id)
                       .values_list("owner_kind", "owner_id", "expires_at"))
        doc = Document.objects.get(account_id=account_pk, kind="email", doc_id=e.pk)
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM fulltext_fts WHERE rowid = %s", [doc.id])
                words = cursor.fetchall()
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT vector::text FROM fulltext_document WHERE id = %s", [doc.id])
                words = cursor.fetchall()
        rows.append({
            "fields": {f.name: getattr(e, f.name) for f in Email._meta.concrete_fields
                       if f.name not in ("id", "account", "thread", "blob_id")},
            "thread": thread_position[e.thread_id],
            "octets": blobs.read(view.blob),
            "holds": sorted((kind, position[int(owner)], expires) for kind, owner, expires in holds),
            "mailboxes": sorted(names[m] for m in Membership.objects.filter(email=e).values_list("mailbox_id",
                                                                                                flat=True)),
            "membership_dates": set(Membership.objects.filter(email=e).values_list("received_at", flat=True)),
            "keywords": sorted(Keyword.objects.filter(email=e).values_list("keyword", flat=True)),
            "document": doc.fields,
            "words": words,
        })
    keys = sorted((d, thread_position[t]) for d, t in ThreadKey.objects.filter(account_id=account_pk)
                  .values_list("digest", "thread_id"))
    counters = {m.name: (m.total_emails, m.unread_emails, m.total_threads, m.unread_threads)
                for m in Mailbox.objects.filter(account_id=account_pk)}
    return rows, keys, counters


def test_bulk_import_stores_what_import_stores(make_account):
    bulk, one_by_one = make_account("bulk"), make_account("single")
    corpus = list(mailgen.Corpus(60, seed=5))
    corpus.append(corpus[3])  # the same octets twice: the blob store's dedup path
    bulk_boxes, single_boxes = _boxes(bulk.pk), _boxes(one_by_one.pk)
    # Bulk first: its blobs are new; the imports then find the same octets stored (deduplicated).
    filed = mailgen.bulk_import(bulk.pk, [(raw, [bulk_boxes[b] for b in names], kw, at)
                                          for raw, names, kw, at in corpus], chunk=7)
    assert filed == len(corpus)
    for raw, names, kw, at in corpus:
        store.import_raw(one_by_one.pk, raw, [single_boxes[b] for b in names], keywords=kw, received_at=at)
    got, expected = _snapshot(bulk.pk), _snapshot(one_by_one.pk)
    assert len(got[0]) == len(corpus)
    for i, (a, b) in enumerate(zip(got[0], expected[0])):
        assert a == b, i
    assert got[1] == expected[1]
    assert got[2] == expected[2]
    # The corpus has threads, several mailboxes and unread mail: the comparison compared something.
    assert len({r["thread"] for r in got[0]}) < len(corpus) - 5
    assert sum(c[0] for c in got[2].values()) > len(corpus) and any(c[3] for c in got[2].values())


def test_corpus_plants_the_probe_words():
    corpus = mailgen.Corpus(3000, seed=1)
    texts = [raw for raw, _, _, _ in corpus]
    assert 3 <= sum(mailgen.RARE.encode() in t for t in texts) == corpus.planted[mailgen.RARE] <= 3
    assert 20 <= sum(mailgen.MIDDLE.encode() in t for t in texts) <= 100
    assert sum(mailgen.FREQUENT.encode() in t for t in texts) > 1000
