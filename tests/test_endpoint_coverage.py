"""Every machine endpoint of the URL table goes through network/endpoint.py's decorator (or is a
network/drf.py ApiView), so a new endpoint cannot forget the method rules, CSRF exemption,
problem+json errors and the request context's states. The HTML pages people use are the only
views that may skip it.

And the three endpoints that used to skip it still answer as the reference does: every method
is taken (no 405, spec http.md §2: "any"), without a CSRF token.
"""
from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from network.drf import ApiView

# The pages a person uses in a browser (HTML, sessions, CSRF tokens), not machine endpoints.
PAGES = {"", "login", "device", "device/", "calendar/rsvp"}
PAGE_TREES = ("admin/", "account/")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern), pattern.callback


def _is_endpoint(callback) -> bool:
    if hasattr(callback, "endpoint_methods"):
        return True
    view_class = getattr(callback, "cls", None)
    return isinstance(view_class, type) and issubclass(view_class, ApiView)


def test_every_machine_view_uses_the_endpoint_decorator():
    table = list(_walk(get_resolver().url_patterns))
    machine = [(route, view) for route, view in table
               if route not in PAGES and not route.startswith(PAGE_TREES)]
    assert len(machine) > 30, "the walk missed the included URL files"
    bare = [f"{route} -> {view.__module__}.{getattr(view, '__name__', view)}"
            for route, view in machine if not _is_endpoint(view)]
    assert bare == []


def test_the_walk_would_see_a_bare_view():
    """The marker is the decorator's own: a plain csrf_exempt view does not carry it."""
    from django.views.decorators.csrf import csrf_exempt

    from network.endpoint import ANY, endpoint

    def plain(request):
        return None

    assert not _is_endpoint(csrf_exempt(plain))
    assert _is_endpoint(endpoint(ANY)(plain))


# --- the endpoints that were put on the decorator -----------------------------------------------
DAV = [("/.well-known/caldav", "/dav/cal"), ("/.well-known/carddav/x/y", "/dav/card")]


@pytest.mark.parametrize("path, target", DAV)
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PROPFIND", "DELETE", "MKCALENDAR"])
def test_dav_well_known_takes_every_method(db, path, target, method):
    resp = Client(enforce_csrf_checks=True).generic(method, path, data="<x/>", content_type="text/xml")
    assert resp.status_code == 307, resp.content
    assert resp["Location"] == target and resp["Cache-Control"] == "no-cache"
    assert resp.content == b""
    # The redirect carries nothing the decorator adds only on refusals or CORS endpoints.
    assert "Allow" not in resp and "Access-Control-Allow-Origin" not in resp


V2 = "/autodiscover/autodiscover.json/v1.0/jane@example.org"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_autodiscover_v2_takes_every_method(db, method):
    client = Client(enforce_csrf_checks=True)
    resp = client.generic(method, V2 + "?Protocol=AutodiscoverV1", data="{}", content_type="application/json")
    assert resp.status_code == 200, resp.content
    assert resp["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(resp.content)["Protocol"] == "AutodiscoverV1"
    assert "Access-Control-Allow-Origin" not in resp
    # Its errors are unchanged: problem+json without an address, the reference's JSON for a protocol.
    missing = client.generic(method, "/autodiscover/autodiscover.json")
    assert missing.status_code == 400 and missing["Content-Type"] == "application/problem+json"
    assert json.loads(missing.content)["detail"] == "Missing domain in email address"
    wrong = client.generic(method, V2 + "?Protocol=Ews")
    assert wrong.status_code == 400 and json.loads(wrong.content)["ErrorCode"] == "InvalidProtocol"


def test_openapi_document_refuses_other_methods_as_every_api_endpoint(client, db):
    assert client.get("/api/openapi.json").json()["openapi"].startswith("3.")
    resp = client.put("/api/openapi.json", data="{}", content_type="application/json")
    assert resp.status_code == 405 and resp["Content-Type"] == "application/problem+json"
    assert resp["Allow"] == "GET, HEAD, OPTIONS"
    assert resp.json()["detail"] == "This endpoint takes GET, HEAD, OPTIONS requests."
    preflight = client.options("/api/openapi.json")
    assert preflight.status_code == 204 and preflight.content == b""


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_contact_form_is_on_the_decorator_whatever_its_state(db, method):
    """Disabled (the default): 404 for every method, CSRF token or not."""
    resp = Client(enforce_csrf_checks=True).generic(method, "/form")
    assert resp.status_code == 404 and resp["Content-Type"] == "application/problem+json"
