"""Two first indexings of one document at once: both succeed, one document remains, and its
words are those of one of them (never both, never an error)."""
from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from fulltext import services as ft
from fulltext.models import Document
from fulltext.services import Match


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason=(
    "the server's SQLite transactions are IMMEDIATE, so writers queue at BEGIN and this race "
    "cannot happen; the test database is in memory with shared-cache table locks, unlike it"))
def test_concurrent_first_index_of_one_document():
    barrier = threading.Barrier(2)
    errors = []

    def work(word):
        try:
            barrier.wait()
            # In a transaction of its own, as the store's: the other writer's row is not
            # visible until it commits.
            with transaction.atomic():
                ft.index(7, "email", 42, {"subject": word})
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in ("apple", "banana")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Document.objects.filter(account_id=7, kind="email", doc_id=42).count() == 1
    apple = ft.search(7, "email", Match("subject", "apple"))
    banana = ft.search(7, "email", Match("subject", "banana"))
    assert (apple, banana) in (({42}, set()), (set(), {42}))
