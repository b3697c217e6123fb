"""JMAP push over EventSource (RFC 8620 §7.3, docs/push.md) against gunicorn with the project's
event-loop worker: two worker processes, so that a change committed by one reaches the streams
held by the other; on SQLite the workers read the journal, with DATABASE_URL and REDIS_URL set
they hear it on the Redis channel. Changes are made through JMAP by another connection.

Nothing here depends on the kernel's choice of worker or on the test machine's speed: the second
stream is opened while the first one's worker is paused, so it is held by the other; and "a
change reaches the stream within a second" is counted in the stream's own pings, one a second,
sent by the same event loop that delivers the change. Wall-clock latency is the benchmark's
(bench/eventsource.py, docs/performance.md).
"""
from __future__ import annotations

import base64
import json
import os
import signal
import queue
import secrets
import time
from urllib.parse import quote

import pytest
import requests

from .live import connection_owner, live_server, on_two_workers
from .sse import END, Stream, port_of

MAIL = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
SUBMISSION = [*MAIL, "urn:ietf:params:jmap:submission"]
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
DOMAIN = "push.example"
# The reference's promise, and the brief's: a committed change reaches every stream within 1 s,
# counted in pings of a stream that asks for one a second (the `server` below allows it).
PING = 1


def basic(login: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()


def make_users(server, count: int) -> list[tuple[str, str]]:
    """`count` new users: [(JMAP account id, login)]."""
    names = [f"push{secrets.token_hex(3)}" for _ in range(count)]
    return [tuple(pair) for pair in server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import ids, services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "push tests"}}, "test")
result = []
for name in {names!r}:
    acct = services.create_account({{"name": name, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                                   "test", password={PASSWORD!r})
    result.append([ids.encode(acct.pk), acct.email_address])
""")]


@pytest.fixture(scope="module")
def server():
    # Pings may be asked for every second here (30 s at least by default, as in the reference).
    with live_server(workers=2, extra_env={"EVENTSOURCE_MIN_PING": "1", "ACCESS_LOG": "-"}) as live:
        live.users = make_users(live, 3)
        yield live


def url(server, **params) -> str:
    query = "&".join(f"{k}={quote(str(v), safe='*,')}" for k, v in params.items())
    return f"{server.url}/jmap/eventsource/?{query}"


def jmap(server, login: str, calls: list, using=MAIL) -> list:
    resp = requests.post(server.url + "/jmap/", json={"using": using, "methodCalls": calls},
                         headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["methodResponses"]


def create_mailbox(server, login: str) -> str:
    """A new mailbox through JMAP; returns the Mailbox state after it."""
    [[name, result, _]] = jmap(server, login, [["Mailbox/set", {
        "accountId": account_of(server, login), "create": {"m": {"name": f"box-{secrets.token_hex(3)}"}}}, "0"]])
    assert name == "Mailbox/set" and result["created"], result
    return result["newState"]


def account_of(server, login: str) -> str:
    return next(account for account, name in server.users if name == login)


def token_for(server, login: str) -> str:
    resp = requests.get(server.url + "/api/token/eventsource", headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.text


def told(stream: Stream, committed: float, timeout: float = 10) -> dict:
    """The stream's next StateChange, with at most one ping (PING s) among the frames its thread
    read after `committed` (when the change's request was answered) before it: within a ping
    interval of the worker's own event loop, which times both the pings and the journal reads or
    the Redis channel that bring the change. Whatever is read before it must be pings."""
    pings = 0
    while True:
        event, data, arrived = stream.next_timed(timeout)
        if event == "state":
            assert pings <= 1, f"told after {pings} pings of {PING} s"
            return data
        assert event == "ping", (event, data)
        pings += arrived > committed


def no_state(stream: Stream, seconds: float) -> None:
    """Nothing but pings for `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            event, data = stream.next(left)
        except queue.Empty:
            return
        assert event == "ping", (event, data)


def streams_on_two_workers(server, make) -> list[Stream]:
    """Two streams held by the two worker processes (tests.live.on_two_workers)."""
    streams = on_two_workers(server.url, make, lambda stream: stream.local_port)
    for stream in streams:
        assert stream.status == 200, stream.body
    return streams


# --- the change reaches every stream, across processes -------------------------------------------
def test_a_committed_change_reaches_streams_on_both_workers_within_a_second(server):
    account, login = server.users[0]
    streams = streams_on_two_workers(
        server, lambda: Stream(url(server, types="*", closeafter="no", ping=PING), {"Authorization": basic(login)}))
    try:
        for stream in streams:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-store"
        # Nothing but pings before a change (told() checks every frame before the state).
        state = create_mailbox(server, login)
        committed = time.monotonic()
        for stream in streams:
            assert told(stream, committed) == {"@type": "StateChange", "changed": {account: {"Mailbox": state}}}
        # The state is the one Mailbox/get reports.
        [[_, got, _]] = jmap(server, login, [["Mailbox/get", {"accountId": account, "ids": []}, "g"]])
        assert got["state"] == state
    finally:
        for stream in streams:
            stream.close()


def test_a_stream_hears_only_its_own_account_and_the_types_it_asked_for(server):
    (account, login), (_, other) = server.users[0], server.users[1]
    with Stream(url(server, types="Identity", closeafter="no", ping=PING),
                {"Authorization": basic(login)}) as ids_only:
        assert ids_only.status == 200
        create_mailbox(server, login)  # a type it did not ask for
        create_mailbox(server, other)  # another account
        [[_, made, _]] = jmap(server, login, [["Identity/set", {"accountId": account, "create": {"i": {
            "name": "Push", "email": login}}}, "0"]], using=SUBMISSION)
        assert made["created"], made
        change = told(ids_only, time.monotonic())
        assert change == {"@type": "StateChange", "changed": {account: {"Identity": made["newState"]}}}
        no_state(ids_only, 1.5)


def test_closeafter_state_ends_the_stream_after_the_first_state_frame(server):
    account, login = server.users[0]
    with Stream(url(server, types="Mailbox", closeafter="state", ping=PING),
                {"Authorization": basic(login)}) as stream:
        assert stream.status == 200
        state = create_mailbox(server, login)
        assert told(stream, time.monotonic()) == {"@type": "StateChange", "changed": {account: {"Mailbox": state}}}
        assert stream.next(5) == END


def test_ping_arrives_in_seconds_when_nothing_changes(server):
    _, login = server.users[2]
    with Stream(url(server, types="*", closeafter="no", ping=1), {"Authorization": basic(login)}) as stream:
        assert stream.status == 200
        assert stream.next(3) == ("ping", {"interval": 1})
        assert stream.next(3) == ("ping", {"interval": 1})


# --- the token a browser opens the stream with ----------------------------------------------------
def test_a_token_opens_the_stream_without_credentials_and_is_never_logged(server):
    account, login = server.users[0]
    token = token_for(server, login)
    with Stream(url(server, types="Mailbox", closeafter="state", ping=PING, token=token)) as stream:
        assert stream.status == 200
        state = create_mailbox(server, login)
        assert told(stream, time.monotonic()) == {"@type": "StateChange", "changed": {account: {"Mailbox": state}}}
    log = (server.var_dir / "gunicorn.log").read_text()
    assert "/jmap/eventsource/" in log and "/api/token/eventsource" in log
    assert token not in log and quote(token) not in log


def test_the_token_endpoint_needs_credentials_and_a_known_kind(server):
    _, login = server.users[0]
    resp = requests.get(server.url + "/api/token/eventsource", timeout=30)
    assert resp.status_code == 401 and resp.headers["Content-Type"] == "application/problem+json"
    resp = requests.get(server.url + "/api/token/nope", headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 404
    # The live telemetry kinds need their permission, which a user does not have.
    resp = requests.get(server.url + "/api/token/tracing", headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/problem+json"


def minted(server, login: str, code: str) -> str:
    """A token made in a shell against the server's database and key, `code` altering how."""
    return server.shell_json(f"""
import time
from accounts.models import Account
from accounts.authz import account_permissions
from accounts.http_auth import Principal
from django.core import signing
from jmapapi import push_views
acct = Account.objects.get(email_address={login!r})
principal = Principal(account_id=acct.pk, name=acct.email_address, permissions=account_permissions(acct))
{code}
""")


def test_expired_foreign_and_tampered_tokens_are_refused(server):
    _, login = server.users[0]
    good = token_for(server, login)
    expired = minted(server, login, "_now = time.time\ntime.time = lambda: _now() - 3600\n"
                                    "result = push_views.mint_token(principal)")
    foreign_salt = minted(server, login, "result = signing.dumps({'k': 'eventsource', 'a': acct.pk, 't': [0]}, "
                                         "salt='another purpose', compress=True)")
    other_kind = minted(server, login, "result = signing.dumps({'k': 'delivery', 'a': acct.pk, 't': [0]}, "
                                       "salt=push_views.TOKEN_SALT, compress=True)")
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for token, detail in ((expired, "expired"), (foreign_salt, "not valid"), (other_kind, "not valid"),
                          (tampered, "not valid"), ("", "not valid"), ("x" * 2000, "not valid")):
        resp = requests.get(url(server, types="*", closeafter="no", ping=0, token=token), timeout=30)
        assert resp.status_code == 401, (token[:20], resp.status_code, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert detail in resp.json()["detail"]
        assert "WWW-Authenticate" in resp.headers


def test_another_accounts_token_with_my_credentials_is_forbidden(server):
    (_, mine), (_, theirs) = server.users[0], server.users[1]
    token = token_for(server, theirs)
    resp = requests.get(url(server, types="*", closeafter="no", ping=0, token=token),
                        headers={"Authorization": basic(mine)}, timeout=30)
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/problem+json"


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"types": "Nope", "closeafter": "no", "ping": 0},
    {"types": "Email,Nope", "closeafter": "no", "ping": 0},
    {"types": "", "closeafter": "no", "ping": 0},
    {"types": "email", "closeafter": "no", "ping": 0},
    {"types": "*", "closeafter": "maybe", "ping": 0},
    {"types": "*", "closeafter": "no", "ping": -1},
    {"types": "*", "closeafter": "no", "ping": 10 ** 9},
    {"types": "*", "closeafter": "no", "ping": 3601},
    {"types": "*", "closeafter": "no", "ping": "1.5"},
    {"types": "*", "closeafter": "no", "ping": "٣"},
])
def test_bad_parameters_are_a_400_problem(server, params):
    _, login = server.users[0]
    resp = requests.get(url(server, **params), headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 400, (params, resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["title"] == "Invalid parameters"


def test_no_credentials_wrong_password_and_other_methods(server):
    _, login = server.users[0]
    resp = requests.get(url(server, types="*", closeafter="no", ping=0), timeout=30)
    assert resp.status_code == 401 and "WWW-Authenticate" in resp.headers
    resp = requests.get(url(server, types="*", closeafter="no", ping=0),
                        headers={"Authorization": "Basic " + base64.b64encode(f"{login}:wrong".encode()).decode()},
                        timeout=30)
    assert resp.status_code == 401
    resp = requests.post(url(server, types="*", closeafter="no", ping=0), headers={"Authorization": basic(login)},
                         timeout=30)
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET, OPTIONS"


# --- the per-account limit, and a closed connection frees its slot ----------------------------------
@pytest.fixture(scope="module")
def one_worker():
    with live_server(workers=1, extra_env={"EVENTSOURCE_MAX_PER_ACCOUNT": "2", "EVENTSOURCE_MIN_PING": "1"}) as live:
        live.users = make_users(live, 1)
        yield live


def test_the_connection_limit_per_account_and_a_closed_connection_frees_its_slot(one_worker):
    account, login = one_worker.users[0]
    auth = {"Authorization": basic(login)}
    first = Stream(url(one_worker, types="*", closeafter="no", ping=PING), auth)
    second = Stream(url(one_worker, types="*", closeafter="no", ping=PING), auth)
    try:
        assert (first.status, second.status) == (200, 200)
        third = Stream(url(one_worker, types="*", closeafter="no", ping=0), auth)
        assert third.status == 429, third.body
        assert json.loads(third.body)["status"] == 429
        first.close()
        deadline = time.monotonic() + 5
        while True:
            again = Stream(url(one_worker, types="*", closeafter="no", ping=PING), auth)
            if again.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert again.status == 200, "the closed stream's slot was never given back"
        try:
            # The stream that replaced it still hears changes; the closed one is gone from the hub.
            state = create_mailbox(one_worker, login)
            committed = time.monotonic()
            assert told(again, committed) == {"@type": "StateChange", "changed": {account: {"Mailbox": state}}}
            assert told(second, committed)["changed"][account]["Mailbox"] == state
        finally:
            again.close()
    finally:
        first.close()
        second.close()


# --- a browser's EventSource ----------------------------------------------------------------------
PAGE = """<!doctype html><meta charset="utf-8"><title>push</title>
<script>
window.events = []; window.pings = []; window.errors = 0;
fetch('/api/token/eventsource', {headers: {'Authorization': AUTH}})
  .then(r => r.text())
  .then(token => {
    const source = new EventSource('/jmap/eventsource/?types=Mailbox&closeafter=no&ping=1&token='
                                   + encodeURIComponent(token));
    source.addEventListener('state', e => window.events.push([JSON.parse(e.data), Date.now()]));
    source.addEventListener('ping', e => window.pings.push(Date.now()));
    source.onopen = () => { window.opened = true; };
    source.onerror = () => { window.errors += 1; };
  });
</script>"""


def test_a_browser_eventsource_opens_with_a_token_and_hears_a_change(server, chromium):
    """Chromium's own EventSource, from a page of the server's origin that the test serves
    itself (Playwright answers for the page's URL: the product has no such page, and a page of
    another origin would need CORS): the page asks for a token with its credentials, then opens
    the stream with the token alone, as a browser must."""
    account, login = server.users[1]
    context = chromium.new_context()
    try:
        context.route(server.url + "/push-test", lambda route: route.fulfill(
            status=200, content_type="text/html", body=PAGE.replace("AUTH", json.dumps(basic(login)))))
        page = context.new_page()
        page.goto(server.url + "/push-test")
        page.wait_for_function("() => window.opened === true")
        state = create_mailbox(server, login)
        committed_ms = page.evaluate("() => Date.now()")
        page.wait_for_function("() => window.events.length > 0", timeout=10_000)
        [[change, arrived_ms]] = page.evaluate("() => window.events")
        assert change == {"@type": "StateChange", "changed": {account: {"Mailbox": state}}}
        # Within a ping interval of the commit, counted in the stream's pings, as told() does.
        pings = page.evaluate("() => window.pings")
        assert sum(committed_ms < at < arrived_ms for at in pings) <= 1, (committed_ms, arrived_ms, pings)
        assert page.evaluate("() => window.errors") == 0
    finally:
        context.close()


def test_a_stopping_worker_ends_its_streams_at_once():
    """A worker told to stop (SIGTERM: a restart, a deploy) ends its streams instead of holding
    them for the graceful timeout; the client sees the end and reconnects (to another worker)."""
    with live_server(workers=1) as live:
        _, login = make_users(live, 1)[0]
        stream = Stream(url(live, types="*", closeafter="no", ping=0), {"Authorization": basic(login)})
        try:
            assert stream.status == 200
            worker = connection_owner(port_of(live.url), stream.local_port)
            assert worker is not None
            os.kill(worker, signal.SIGTERM)
            assert stream.next(5) == END  # gunicorn's graceful timeout is 10 s
        finally:
            stream.close()
