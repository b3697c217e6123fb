"""RFC 6764 redirects, the /.well-known/ preflight, and robots.txt."""
import pytest

from stalwart_site.http import CORS

from .helpers import problem_of

# The request pipeline reads its settings (blocked addresses, access rules) from the database.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path, target", [
    ("/.well-known/caldav", "/dav/cal"), ("/.well-known/caldav/", "/dav/cal"),
    ("/.well-known/caldav/some/where", "/dav/cal"), ("/.well-known/carddav", "/dav/card"),
    ("/.well-known/carddav/x", "/dav/card"),
])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PROPFIND", "REPORT"])
def test_dav_redirects(client, path, target, method):
    resp = client.generic(method, path)
    assert resp.status_code == 307
    assert resp["Location"] == target
    assert resp["Cache-Control"] == "no-cache"
    assert resp.content == b""


def test_dav_redirect_needs_no_csrf_token():
    from django.test import Client

    resp = Client(enforce_csrf_checks=True).post("/.well-known/caldav", data="<x/>", content_type="text/xml")
    assert resp.status_code == 307


@pytest.mark.parametrize("path", ["/.well-known/anything", "/.well-known/security.txt",
                                  "/.well-known/a/b/c", "/.well-known/"])
def test_preflight_anywhere_below_well_known(client, path):
    resp = client.options(path)
    assert resp.status_code == 204
    assert {name: resp[name] for name in CORS} == CORS
    problem_of(client.get(path), 404)


def test_the_other_well_knowns_still_answer(client, db):
    resp = client.get("/.well-known/jmap")
    assert resp.status_code == 307 and resp["Location"] == "/jmap/session"
    assert client.get("/.well-known/openid-configuration").status_code == 200
    assert client.get("/.well-known/oauth-authorization-server").status_code == 200


def test_robots(client):
    resp = client.get("/robots.txt")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "text/plain"
    assert resp.content == b"User-agent: *\nDisallow: /\n"
    assert client.head("/robots.txt").status_code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_robots_wrong_methods(client, method):
    resp = client.generic(method, "/robots.txt")
    problem_of(resp, 405)
    assert resp["Allow"] == "GET, HEAD"
