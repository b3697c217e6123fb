"""Long lists of ids in SQL statements, in slices the database accepts.

SQLite refuses a statement with more parameters than its connection's limit
(SQLITE_LIMIT_VARIABLE_NUMBER, 32,766 in the builds of Debian and Python): destroying a mailbox
of 40,000 emails with one `pk__in` would fail. Django itself assumes 999 for SQLite and slices
its own deletes (the related rows) accordingly. PostgreSQL through psycopg's client-side
binding has no such limit; a slice of 10,000 keeps statements of a sane size there too.

    for pks in in_slices(email_pks):
        Email.objects.filter(pk__in=pks).delete()
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from django.db import connection

LARGEST = 10_000
# Parameters a statement holds besides the slice (the account, a kind, a subquery's own).
OTHER_PARAMETERS = 64


def slice_size() -> int:
    if connection.vendor != "sqlite":
        return LARGEST
    connection.ensure_connection()
    limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    # Half of what is left: a statement may name the slice twice (a subquery and its filter).
    return max(1, min(LARGEST, (limit - OTHER_PARAMETERS) // 2))


def in_slices(values: Iterable) -> Iterator[list]:
    values = list(values)
    size = slice_size()
    for start in range(0, len(values), size):
        yield values[start:start + size]
