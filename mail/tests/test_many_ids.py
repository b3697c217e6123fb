"""Destroying more emails than SQLite takes parameters in one statement (32,766 in its usual
builds): every id list goes in slices (stalwart_site/sqlparams.py). The test lowers this
connection's limit to 999, the figure Django itself assumes for SQLite when it slices its own
statements, rather than filling a mailbox with 33,000 messages: a statement that names all
1,000 emails at once fails here as it would at 33,000 in production."""
from __future__ import annotations

import contextlib
import sqlite3

import pytest
from django.db import connection

from mail import store
from registry import ids

from .conftest import message
from .test_counters import _check

LIMIT = 999
EMAILS = 1000


@pytest.fixture(autouse=True)
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's parameter limit; psycopg's client-side binding has none")


@contextlib.contextmanager
def variable_limit(n: int):
    connection.ensure_connection()
    raw = connection.connection
    before = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, n)
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)


def _fill(who, mailbox: str, count: int, also: str | None = None) -> None:
    boxes = [ids.decode(mailbox)] + ([ids.decode(also)] if also else [])
    for n in range(count):
        store.store_message(who.pk, message(subject=f"Note {n}", message_id=f"many-{mailbox}-{n}@example.com"),
                            mailbox_pks=boxes)


def test_a_mailbox_of_more_emails_than_a_statement_takes_is_destroyed(alice):
    big = alice.ok("Mailbox/set", {"create": {"b": {"name": "Big"}}})["created"]["b"]["id"]
    inbox = alice.mailboxes()["inbox"]
    _fill(alice, big, EMAILS)
    _fill(alice, big, 3, also=inbox)  # these stay, in the Inbox only
    with variable_limit(LIMIT):
        with pytest.raises(Exception, match="too many SQL variables"):  # the limit bites
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 WHERE 1 IN ({','.join(['%s'] * (LIMIT + 1))})", [1] * (LIMIT + 1))
        got = alice.ok("Mailbox/set", {"destroy": [big], "onDestroyRemoveEmails": True})
    assert got["destroyed"] == [big], got
    left = alice.ok("Email/query", {})["ids"]
    assert len(left) == 3
    _check(alice)
