"""The request context (issue 11 §2): states read once at the edge, one block check, the
account's rate limit charged explicitly, every response counted, and no memo surviving a test."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from network.models import Http
from registry import services as registry_services
from security import services as security
from tests.clients import Jmap, basic

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.41"


@pytest.fixture
def admin(client, admin_account):
    return Jmap(client, basic("admin@example.org"))


def _count(sql, needle):
    return sum(needle in q for q in sql)


# --- read once -------------------------------------------------------------------------------
def test_a_request_reads_the_states_once_and_checks_the_block_list_once(admin, monkeypatch):
    admin.post({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]},
               REMOTE_ADDR=CLIENT)  # the verdict and the lists are cached from here on
    checks = []
    real = security.is_blocked
    monkeypatch.setattr(security, "is_blocked", lambda *a, **kw: checks.append(a) or real(*a, **kw))
    with CaptureQueriesContext(connection) as captured:
        resp = admin.post({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]},
                          REMOTE_ADDR=CLIENT)
    assert resp.status_code == 200
    assert _count([q["sql"] for q in captured.captured_queries], "registry_objectstate") == 1
    assert len(checks) == 1


def test_a_blocked_client_is_refused_at_the_edge(admin):
    security.ban(CLIENT, "authFailure", timedelta(minutes=5))
    resp = admin.post({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]},
                      REMOTE_ADDR=CLIENT)
    assert resp.status_code == 403


def test_the_account_rate_limit_is_charged_once_per_request(admin, make_account):
    admin.ok("x:Http/set", {"update": {"singleton": {"rateLimitAuthenticated": {"count": 3, "period": 60000}}}})
    make_account("bob")
    bob = Jmap(admin.client, basic("bob@example.org"))
    echo = {"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]}
    statuses = [bob.post(echo, REMOTE_ADDR=CLIENT).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = bob.post(echo, REMOTE_ADDR=CLIENT)
    assert refused["Content-Type"] == "application/problem+json" and refused.json()["status"] == 429


# --- every response counted ------------------------------------------------------------------
def _scrape(client):
    resp = client.get("/metrics/prometheus")
    assert resp.status_code == 200
    return resp.content.decode()


def _value(text, name, **labels):
    """The sum of the samples of `name` that carry `labels`."""
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_jmap_responses_are_in_the_prometheus_response_counters(admin, client):
    got = admin.ok("x:Metrics/set", {"update": {"singleton": {"prometheus": {"@type": "Enabled"}}}})
    assert got["updated"] == {"singleton": None}
    before = _scrape(client)
    admin.ok("Core/echo", {})
    after = _scrape(client)
    for name, labels in [
        ("django_http_responses_total_by_status_total", {"status": "200"}),
        ("django_http_responses_total_by_status_view_method_total",
         {"status": "200", "method": "POST", "view": "jmapapi.views.api"}),
        ("django_http_requests_total_by_view_transport_method_total", {"method": "POST", "view": "jmapapi.views.api"}),
        ("stalwart_http_requests_total", {"endpoint": "/jmap/", "status": "200"}),
    ]:
        assert _value(after, name, **labels) > _value(before, name, **labels), name


# --- no memo outlives its test ---------------------------------------------------------------
# The two tests below run in this order. The first sets a response header; the database rolls
# back, and the second moves the Http state to the same number. A memo that survived the first
# test (the edge's compiled configuration did) would hand the second one its header.
def _update_http(**values):
    registry_services.update(Http._declaration, Http.SINGLETON_PK, values, "test")


def test_response_headers_are_sent(client):
    _update_http(response_headers={"X-Leak-Check": "one"})
    assert client.get("/healthz/live")["X-Leak-Check"] == "one"


def test_response_headers_of_an_earlier_test_are_not_sent(client):
    _update_http(enable_hsts=True)
    assert not client.get("/healthz/live").has_header("X-Leak-Check")


# --- the views take the context, not their own reads -----------------------------------------
def test_an_anonymous_registration_checks_the_block_list_once(client, db, monkeypatch):
    from oauth.models import OidcProvider

    registry_services.update(OidcProvider._declaration, OidcProvider.SINGLETON_PK,
                             {"anonymous_client_registration": True}, "test")
    checks = []
    real = security.is_blocked
    monkeypatch.setattr(security, "is_blocked", lambda *a, **kw: checks.append(a) or real(*a, **kw))
    resp = client.post("/auth/register", data='{"redirect_uris": ["https://app.example.net/cb"]}',
                       content_type="application/json", REMOTE_ADDR=CLIENT)
    assert resp.status_code == 201, resp.content
    assert len(checks) == 1  # the edge's


def test_a_scrape_reads_the_states_once(client, admin):
    admin.ok("x:Metrics/set", {"update": {"singleton": {"prometheus": {"@type": "Enabled"}}}})
    assert client.get("/metrics/prometheus").status_code == 200  # the settings are kept from here on
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/metrics/prometheus").status_code == 200
    assert _count([q["sql"] for q in captured.captured_queries], "registry_objectstate") == 1
