"""Function calls of the hot paths (issue 11 §3): the CPU a Core/echo and a singleton /get cost,
counted without a clock.

The synchronous part of the asgi handler (stalwart_site/asgi.py: Handler._serve, the
request_started and request_finished receivers, the whole middleware chain and the view) is
called as the worker's thread calls it, with a Basic header whose verdict is already known, and
every Python and C function call in it is counted. The count is the same on every run (the
path does not depend on time or load), so the budgets below fail on a change that adds work to
every request; bench/inprocess.py counts the event loop's side too, and docs/performance.md
has the figures.
"""
from __future__ import annotations

import io
import json
import sys

import pytest
from django.db import connection

from stalwart_site.asgi import application
from tests.clients import STRONG_PASSWORD
from tests.test_asgi_handler import basic, scope

pytestmark = pytest.mark.django_db(transaction=True)

CORE = "urn:ietf:params:jmap:core"
# (Core/echo, singleton /get) per database: measured 2026-12-07 (docs/performance.md, "Less work
# per request": 907 and 949 on SQLite, 979 and 1021 on PostgreSQL with Redis) with some headroom;
# the code before that change made 1031 and 1073 on SQLite.
BUDGETS = {"sqlite": (1000, 1050), "postgresql": (1080, 1125)}


def serve(body: dict, auth: bytes):
    raw = json.dumps(body).encode()
    headers = [(b"host", b"127.0.0.1:8080"), (b"content-length", str(len(raw)).encode()),
               (b"content-type", b"application/json"), (b"authorization", auth)]
    return application._serve(scope("POST", "/jmap/", headers), io.BytesIO(raw))


def calls(body: dict, auth: bytes) -> int:
    for _ in range(3):  # the verdict verified, then found in the shared cache, then in the worker's
        response = serve(body, auth)
        assert response.status_code == 200, response.content
    count = 0

    def hook(frame, event, arg):
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1

    sys.setprofile(hook)
    try:
        response = serve(body, auth)
    finally:
        sys.setprofile(None)
    assert response.status_code == 200, response.content
    assert "error" not in json.loads(response.content)["methodResponses"][0][0]
    return count


def test_core_echo_stays_within_its_call_budget(builtin_role_rows, admin_account):
    auth = basic(admin_account.email_address, STRONG_PASSWORD)
    echo = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}
    assert calls(echo, auth) <= BUDGETS[connection.vendor][0]


@pytest.mark.parametrize("name", ["Authentication", "Http", "Security"])
def test_a_singleton_get_stays_within_its_call_budget(builtin_role_rows, admin_account, name):
    auth = basic(admin_account.email_address, STRONG_PASSWORD)
    get = {"using": [CORE, "urn:stalwart:jmap"], "methodCalls": [[f"x:{name}/get", {"ids": ["singleton"]}, "c0"]]}
    assert calls(get, auth) <= BUDGETS[connection.vendor][1]
