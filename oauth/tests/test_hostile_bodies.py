"""Hostile request bodies at the OAuth endpoints (issue 10, final hostile-input pass).

A body sent without its length (Transfer-Encoding: chunked) reaches the views through the
event-loop worker whole, up to HTTP_MAX_BODY: the endpoints' own limits, which read
Content-Length, let it through (a 1 MB device scope was stored). Over a real server, since only
the worker's ASGI path hands a chunked body to Django."""
import json

import requests

from tests.live import live_server


def _chunks(body: bytes):
    for i in range(0, len(body), 65536):
        yield body[i:i + 65536]


def test_endpoint_limits_hold_for_bodies_sent_without_their_length():
    with live_server(workers=1) as server:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        big_form = b"grant_type=refresh_token&client_id=c&token=t&scope=" + b"a" * 100_000
        for path in ("/auth/token", "/auth/device"):
            resp = requests.post(server.url + path, data=_chunks(big_form), headers=form, timeout=30)
            assert resp.status_code == 400, (path, resp.content[:300])
            assert resp.json() == {"error": "invalid_request", "error_description": "The request body is too large."}
        stored = server.shell_json("from oauth.models import DeviceAuthorization\nresult = DeviceAuthorization.objects.count()")
        assert stored == 0

        big_json = json.dumps({"type": "denyDevice", "code": "x", "state": "a" * (1024 * 1024)}).encode()
        resp = requests.post(server.url + "/api/auth", data=_chunks(big_json),
                             headers={"Content-Type": "application/json"}, timeout=30)
        assert resp.status_code == 400
        assert resp.json()["detail"] == "The request body is too large."
