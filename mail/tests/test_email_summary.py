"""Email/get of list properties reads the small `summary` document, not the whole `meta`: the
same answers for every message of the corpus, for a row stored before summaries existed, and
after the data migration fills them."""
from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mail import store
from mail.models import Email

from .conftest import CORPUS

pytestmark = pytest.mark.django_db
LIST = list(store.LIST_PROPS)
fill = importlib.import_module("mail.migrations.0004_importspeed_email_summary").fill_summaries


def _get(who, eids, props):
    return who.ok("Email/get", {"ids": eids, "properties": ["id", *props]})["list"]


def test_list_properties_from_the_summary_equal_those_from_meta(alice):
    eids = [alice.import_(path.read_bytes())["id"] for path in sorted(CORPUS.glob("*.eml"))]
    listed = _get(alice, eids, LIST)
    # Asking for the headers too reads meta: the list properties must be the same.
    full = [{p: e[p] for p in ["id", *LIST]} for e in _get(alice, eids, [*LIST, "headers"])]
    assert listed == full and len(listed) == len(eids)
    # And the listing never loads a deferred meta row by row.
    with CaptureQueriesContext(connection) as ctx:
        _get(alice, eids, LIST)
    assert not any('"meta"' in q["sql"] for q in ctx.captured_queries)


def test_rows_without_a_summary_answer_the_same_and_the_migration_fills_them(alice):
    eids = [alice.import_(path.read_bytes())["id"] for path in sorted(CORPUS.glob("*.eml"))[:5]]
    before = _get(alice, eids, LIST)
    Email.objects.filter(account_id=alice.pk).update(summary={})
    assert _get(alice, eids, LIST) == before
    fill(django_apps, None)
    assert not Email.objects.filter(account_id=alice.pk, summary={}).exists()
    assert _get(alice, eids, LIST) == before
