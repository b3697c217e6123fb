"""The asgi serving model's handler (stalwart_site/asgi.py), driven as gunicorn's asgi worker
drives it: one ASGI call per request, through asgiref's ApplicationCommunicator.

The handler runs a request's synchronous work in one hop to the worker's thread and closes a
complete response there. What must not change with it: every response is whole, Django's
request_started and request_finished are sent once per request (request_finished is what
closes a request's database connections and caches), outside the event loop's thread, and a
request that fails (a body that is not JSON) still gets its answer and its close.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started

from tests.clients import STRONG_PASSWORD
from stalwart_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("203.0.113.7", 40000), "server": ("127.0.0.1", 8080)}


async def _call(method: str, path: str, body: bytes = b"", headers=()) -> tuple[int, dict, bytes]:
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-length", str(len(body)).encode()), *headers]
    app = ApplicationCommunicator(application, scope(method, path, headers))
    await app.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await app.receive_output(10)
    assert start["type"] == "http.response.start"
    chunks = []
    while True:
        message = await app.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await app.wait(10)
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, b"".join(chunks)


def call(*args, **kwargs) -> tuple[int, dict, bytes]:
    return asyncio.run(_call(*args, **kwargs))


@pytest.fixture
def signals_seen():
    seen = []

    def started(**kwargs):
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("finished", threading.get_ident()))

    request_started.connect(started)
    request_finished.connect(finished)
    yield seen
    request_started.disconnect(started)
    request_finished.disconnect(finished)


def basic(login: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{login}:{password}".encode())


def test_a_jmap_call_is_answered_whole_and_closed_once_off_the_loop(builtin_role_rows, admin_account, signals_seen):
    body = json.dumps({"using": ["urn:ietf:params:jmap:core"],
                       "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}).encode()
    auth = basic(admin_account.email_address, STRONG_PASSWORD)
    loop_thread = threading.get_ident()
    for _ in range(2):  # the second with the verdict cached, as a client that re-sends Basic
        status, headers, content = call("POST", "/jmap/", body, [(b"authorization", auth),
                                                                       (b"content-type", b"application/json")])
        assert status == 200, content
        assert int(headers["content-length"]) == len(content)
        assert json.loads(content)["methodResponses"] == [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]
    assert [name for name, _ in signals_seen] == ["started", "finished", "started", "finished"]
    assert all(thread != loop_thread for _, thread in signals_seen)


def test_a_refused_request_is_answered_and_closed(signals_seen):
    status, headers, content = call("POST", "/jmap/", b"{not json", [(b"content-type", b"application/json")])
    assert status == 401, content  # no credentials: refused before the body is parsed
    assert headers["content-type"].startswith("application/problem+json")
    assert [name for name, _ in signals_seen] == ["started", "finished"]


def test_pages_and_machine_endpoints_each_run_their_whole_chain(builtin_role_rows):
    """The handler runs machine endpoints through a chain without the page middleware: pages
    still get theirs (CSRF cookie, clickjacking header), machine endpoints none of it, and both
    keep the security headers and the request counters."""
    from telemetry.metrics import HTTP_REQUESTS

    status, headers, _ = call("GET", "/admin/login/")
    assert status == 200
    assert "csrftoken=" in headers.get("set-cookie", "")
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"

    counted = HTTP_REQUESTS.labels("/jmap/session", "401")
    before = counted._value.get()
    status, headers, content = call("GET", "/jmap/session")
    assert status == 401, content
    assert headers["content-type"].startswith("application/problem+json")
    assert "set-cookie" not in headers and "x-frame-options" not in headers
    assert headers["x-content-type-options"] == "nosniff"
    assert counted._value.get() == before + 1
