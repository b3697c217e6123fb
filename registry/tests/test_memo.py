"""registry.memo and rolled-back transactions: a value built from a state that a transaction
moved is not kept once that transaction (or savepoint) rolls back, since the state number it
was kept under is handed out again, later, for other contents."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from network.models import Http
from registry import context, memo
from registry import services as registry_services

pytestmark = pytest.mark.django_db


class Refused(Exception):
    pass


def _set_headers(headers):
    registry_services.update(Http._declaration, Http.SINGLETON_PK, {"response_headers": headers}, "test")


def test_a_value_built_in_a_rolled_back_transaction_is_not_served(client):
    before = context.read("Http")["Http"]
    with pytest.raises(Refused), transaction.atomic():
        _set_headers({"X-Rolled": "back"})
        # Built inside the transaction, under its uncommitted state: the settings singleton and
        # the edge's compiled configuration (a request on the same connection).
        assert registry_services.current(Http).response_headers == {"X-Rolled": "back"}
        assert client.get("/healthz/live")["X-Rolled"] == "back"
        raise Refused
    assert context.read("Http")["Http"] == before
    # The next change takes the same state number, with other contents.
    _set_headers({"X-Kept": "yes"})
    assert context.read("Http")["Http"] == before + 1
    assert registry_services.current(Http).response_headers == {"X-Kept": "yes"}
    resp = client.get("/healthz/live")
    assert resp["X-Kept"] == "yes" and not resp.has_header("X-Rolled")


def test_memo_get_keeps_a_value_while_its_transaction_lives_and_drops_it_on_rollback():
    builds = []

    def build(value):
        def make():
            builds.append(value)
            return value
        return make

    with pytest.raises(Refused), transaction.atomic():
        registry_services.bump_state("Http")
        token = context.read("Http")["Http"]
        assert memo.get("test-memo", token, build("inside")) == "inside"
        # Kept for the rest of its own transaction: no second build.
        assert memo.get("test-memo", token, build("again")) == "inside"
        raise Refused
    assert memo.get("test-memo", token, build("after")) == "after"
    assert builds == ["inside", "after"]


def test_a_value_built_before_any_change_is_kept_across_a_rollback():
    """Built from committed states (nothing moved yet), a value survives an unrelated rollback:
    the ordinary read path keeps its memo."""
    token = context.read("Http")["Http"]
    assert memo.get("test-memo-2", token, lambda: "committed") == "committed"
    with pytest.raises(Refused), transaction.atomic():
        registry_services.bump_state("Jmap")
        raise Refused
    with CaptureQueriesContext(connection) as queries:
        assert memo.get("test-memo-2", token, lambda: "rebuilt") == "committed"
    assert len(queries) == 0


def test_peek_serves_only_a_fresh_value_and_never_builds():
    token = context.read("Http")["Http"]
    assert memo.peek("test-memo-3", token) is None  # nothing kept: nothing built either
    assert memo.peek("test-memo-3", token) is None
    memo.get("test-memo-3", token, lambda: "kept")
    assert memo.peek("test-memo-3", token) == "kept"
    assert memo.peek("test-memo-3", token + 1) is None  # kept under another state
    # A value built in a transaction that rolled back is not peeked at either.
    with pytest.raises(Refused), transaction.atomic():
        registry_services.bump_state("Http")
        moved = context.read("Http")["Http"]
        memo.get("test-memo-3", moved, lambda: "uncommitted")
        assert memo.peek("test-memo-3", moved) == "uncommitted"  # its own transaction sees it
        raise Refused
    assert memo.peek("test-memo-3", moved) is None
