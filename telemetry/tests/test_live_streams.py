"""/api/token/{tracing,metrics}, /api/live/tracing and /api/live/metrics (docs/telemetry.md)
against gunicorn with two event-loop workers, read by a real SSE client (httpx-sse).

What a stream shows must be the whole server's: each test notes the worker that holds its
stream and makes requests on fresh connections until some land on the other worker, then
expects them in the stream (counted in the metrics, traced in the log). On SQLite the events
cross workers through the events file; with DATABASE_URL and REDIS_URL, through Redis.
"""
from __future__ import annotations

import base64
import queue
import secrets
import socket
import threading
import time
from urllib.parse import urlencode

import httpx
import pytest
import requests
from httpx_sse import connect_sse

from tests.live import connection_owner, host_port, live_server

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
DOMAIN = "livetel.example"
END = ("end", None)
WAIT = 20  # seconds a test waits for what must come (a frame a second; pings after 30 s)


def basic(login: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def make_user(server, roles_mode: str) -> str:
    name = f"live{secrets.token_hex(3)}"
    return server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "live telemetry tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": {roles_mode!r}, "kind": "user"}},
                               "test", password={PASSWORD!r})
result = acct.email_address
""")


@pytest.fixture(scope="module")
def server():
    with live_server(workers=2) as live:
        live.admin = make_user(live, "admin")
        live.user = make_user(live, "user")
        yield live


class Sse:
    """One stream, its events read by httpx-sse in a thread of its own and queued."""

    def __init__(self, url: str, headers: dict | None = None):
        self.client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._cm = connect_sse(self.client, "GET", url, headers=headers or {})
        self.source = self._cm.__enter__()
        self.response = self.source.response
        self.status = self.response.status_code
        self.raw: list[str] = []
        self.events: queue.Queue = queue.Queue()
        self.local_port = None
        stream = self.response.extensions.get("network_stream")
        if stream is not None:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                self._sock, self.local_port = sock, sock.getsockname()[1]
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.response.read()
            self.close()

    def _read(self) -> None:
        try:
            for sse in self.source.iter_sse():  # checks the Content-Type is text/event-stream
                self.raw.append(sse.data)
                self.events.put((sse.event, sse.json()))
        except Exception:  # closed under us
            pass
        self.events.put(END)

    def next(self, timeout: float = WAIT):
        return self.events.get(timeout=timeout)

    def next_of(self, event: str, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while True:
            name, data = self.next(max(0.1, deadline - time.monotonic()))
            assert (name, data) != END, "the stream ended"
            if name == event:
                return data

    def close(self) -> None:
        try:
            if getattr(self, "_sock", None) is not None:
                self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._cm.__exit__(None, None, None)
        except Exception:  # already closed by the server
            pass
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def token(server, kind: str, login: str) -> str:
    resp = requests.post(f"{server.url}/api/token/{kind}", headers={"Authorization": basic(login)}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.text


def live_url(server, kind: str, **params) -> str:
    return f"{server.url}/api/live/{kind}?{urlencode(params)}"


def request_on_fresh_connection(server, path: str, headers: dict | None = None) -> tuple[int, int | None]:
    """(status, pid of the worker that answered) of a GET on a connection of its own."""
    host, port = host_port(server.url)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    with socket.create_connection((host, port), timeout=30) as sock:
        # Found before the request is sent: once answered, the connection is gone.
        owner = connection_owner(port, sock.getsockname()[1])
        sock.sendall((head + "\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), owner


def stream_owner(server, stream: Sse) -> int:
    pid = connection_owner(host_port(server.url)[1], stream.local_port)
    assert pid is not None
    return pid


def counters(frame: list) -> dict:
    return {item["metric"]: item for item in frame}


# --- tokens -----------------------------------------------------------------------------------------
def test_token_kinds_and_their_permissions(server):
    for kind in ("tracing", "metrics", "eventsource"):
        for method in ("GET", "POST"):
            resp = requests.request(method, f"{server.url}/api/token/{kind}",
                                    headers={"Authorization": basic(server.admin)}, timeout=30)
            assert resp.status_code == 200 and resp.text and resp.headers["Cache-Control"] == "no-store"
    for kind in ("tracing", "metrics"):
        resp = requests.get(f"{server.url}/api/token/{kind}", headers={"Authorization": basic(server.user)}, timeout=30)
        assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/problem+json"
        assert ("liveTracing" if kind == "tracing" else "liveMetrics") in resp.json()["detail"]
        resp = requests.get(f"{server.url}/api/token/{kind}", timeout=30)
        assert resp.status_code == 401 and "WWW-Authenticate" in resp.headers
    resp = requests.get(f"{server.url}/api/token/nope", headers={"Authorization": basic(server.admin)}, timeout=30)
    assert resp.status_code == 404 and resp.headers["Content-Type"] == "application/problem+json"


def test_a_token_opens_only_its_own_stream(server):
    tokens = {kind: token(server, kind, server.admin) for kind in ("tracing", "metrics", "eventsource")}
    for kind, other in (("tracing", "metrics"), ("metrics", "tracing"), ("tracing", "eventsource"),
                        ("metrics", "eventsource")):
        resp = requests.get(live_url(server, kind, token=tokens[other]), timeout=30)
        assert resp.status_code == 401, (kind, other, resp.text)
        assert resp.headers["Content-Type"] == "application/problem+json" and "WWW-Authenticate" in resp.headers
    # An eventsource stream refuses the live tokens too.
    for other in ("tracing", "metrics"):
        resp = requests.get(f"{server.url}/jmap/eventsource/?types=*&closeafter=no&ping=0&token={tokens[other]}",
                            timeout=30)
        assert resp.status_code == 401


def test_expired_and_tampered_tokens_are_refused(server):
    expired = server.shell_json(f"""
import time
from accounts.models import Account
from network import live_token
acct = Account.objects.get(email_address={server.admin!r})
_now = time.time
time.time = lambda: _now() - 3600
result = live_token.mint(live_token.KINDS["tracing"], acct.pk)
""")
    good = token(server, "tracing", server.admin)
    for bad, detail in ((expired, "expired"), (good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"), "not valid"),
                        ("", "not valid"), ("x" * 2000, "not valid")):
        resp = requests.get(live_url(server, "tracing", token=bad), timeout=30)
        assert resp.status_code == 401 and detail in resp.json()["detail"], resp.text


def test_a_token_of_an_account_that_lost_the_permission_is_refused(server):
    login = make_user(server, "admin")
    minted = token(server, "metrics", login)
    server.shell_json(f"""
from accounts.models import Account
from registry import services as registry
acct = Account.objects.get(email_address={login!r})
registry.update(Account._declaration, acct.pk, {{"roles_mode": "user"}}, "test")
result = True
""")
    resp = requests.get(live_url(server, "metrics", token=minted), timeout=30)
    assert resp.status_code == 403 and "liveMetrics" in resp.json()["detail"]


def test_the_session_mints_a_token_only_with_a_post_and_the_csrf_token(server):
    browser = requests.Session()
    page = browser.get(server.url + "/admin/login/", timeout=30)
    csrf = browser.cookies["csrftoken"]
    assert page.status_code == 200
    resp = browser.post(server.url + "/admin/login/", data={"username": server.admin, "password": PASSWORD,
                                                            "csrfmiddlewaretoken": csrf, "next": "/admin/"},
                        headers={"Referer": server.url + "/admin/login/"}, timeout=30)
    assert resp.status_code == 200 and "sessionid" in browser.cookies
    csrf = browser.cookies["csrftoken"]
    url = server.url + "/api/token/metrics"
    # A cookie alone: no GET, no POST without the CSRF token, none from another origin.
    assert browser.get(url, timeout=30).status_code == 405
    assert browser.post(url, timeout=30).status_code == 403
    assert browser.post(url, headers={"X-CSRFToken": "x" * 32}, timeout=30).status_code == 403
    assert browser.post(url, headers={"X-CSRFToken": csrf, "Origin": "https://evil.example"}, timeout=30).status_code == 403
    resp = browser.post(url, headers={"X-CSRFToken": csrf, "Origin": server.url}, timeout=30)
    assert resp.status_code == 200, resp.text
    with Sse(live_url(server, "metrics", interval=1, token=resp.text)) as stream:
        assert stream.status == 200
        assert stream.next_of("metrics")
    # A session without the permission gets no token.
    plain = requests.Session()
    plain.get(server.url + "/admin/login/", timeout=30)
    plain.post(server.url + "/admin/login/", data={"username": server.user, "password": PASSWORD,
                                                   "csrfmiddlewaretoken": plain.cookies["csrftoken"]},
               headers={"Referer": server.url + "/admin/login/"}, timeout=30)
    resp = plain.post(url, headers={"X-CSRFToken": plain.cookies["csrftoken"], "Origin": server.url}, timeout=30)
    assert resp.status_code == 403, resp.text


# --- metrics ----------------------------------------------------------------------------------------
def test_live_metrics_are_the_whole_servers(server):
    with Sse(live_url(server, "metrics", interval=1, token=token(server, "metrics", server.admin))) as stream:
        assert stream.status == 200
        assert stream.response.headers["Cache-Control"] == "no-store"
        first = counters(stream.next_of("metrics"))
        for item in first.values():
            assert set(item) >= {"metric", "@type", "count"} and item["@type"] in ("Counter", "Gauge", "Histogram")
        assert first["user.count"]["@type"] == "Gauge" and first["user.count"]["count"] >= 2
        assert first["http.request-time"]["@type"] == "Histogram" and "sum" in first["http.request-time"]
        before = first["http.request-url"]["count"]
        owner = stream_owner(server, stream)
        made, elsewhere = 0, 0
        while elsewhere < 3 and made < 60:
            status, pid = request_on_fresh_connection(server, "/healthz/live")
            made += 1
            elsewhere += pid is not None and pid != owner
        assert elsewhere == 3, "no request reached the other worker"
        deadline = time.monotonic() + WAIT
        while True:
            now = counters(stream.next_of("metrics"))["http.request-url"]["count"]
            if now - before >= made or time.monotonic() > deadline:
                break
        assert now - before >= made, (before, now, made)


def test_the_metrics_filter(server):
    minted = token(server, "metrics", server.admin)
    with Sse(live_url(server, "metrics", interval=1, metrics="http.request-url", token=minted)) as stream:
        names = {(item["@type"], item["metric"]) for item in stream.next_of("metrics")}
    # Only the named counter; as in the reference, every gauge and histogram still.
    assert {n for t, n in names if t == "Counter"} == {"http.request-url"}
    assert ("Gauge", "user.count") in names and ("Histogram", "http.request-time") in names
    with Sse(live_url(server, "metrics", interval=1, metrics="user.count, jmap.method-call",
                      token=token(server, "metrics", server.admin))) as stream:
        names = {(item["@type"], item["metric"]) for item in stream.next_of("metrics")}
    assert {n for t, n in names if t == "Counter"} == {"jmap.method-call"}
    assert {n for t, n in names if t != "Counter"} == {"user.count"}


@pytest.mark.parametrize("params", [
    {"interval": "0"}, {"interval": "-1"}, {"interval": "1.5"}, {"interval": "x"}, {"interval": "3601"},
    {"interval": "9" * 30}, {"metrics": "nope"}, {"metrics": "http.request-url,smtp.nope"}, {"other": "1"},
])
def test_bad_metrics_parameters_are_a_400_problem(server, params):
    resp = requests.get(live_url(server, "metrics", **params), headers={"Authorization": basic(server.admin)},
                        timeout=30)
    assert resp.status_code == 400, (params, resp.text)
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["title"] == "Invalid parameters"


# --- tracing ----------------------------------------------------------------------------------------
def key_values(event: dict) -> dict:
    out = {}
    for index, kv in event["keyValues"].items():
        assert index.isdigit() and set(kv) == {"key", "value"} and "@type" in kv["value"], kv
        out[kv["key"]] = kv["value"]
    return out


def wait_for_trace(stream: Sse, match, timeout: float = WAIT) -> list[dict]:
    """The trace events until one `match`es (all of them, the matching one last)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            name, data = stream.next(max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        assert (name, data) != END, "the stream ended"
        if name == "ping":
            assert data == {"interval": 30000}
            continue
        assert name == "trace", name
        for event in data:
            seen.append(event)
            if match(event):
                return seen
    raise AssertionError(f"not traced; saw {[e['event'] for e in seen]}")


def test_live_tracing_shows_requests_of_every_worker(server):
    marker = f"/live-probe-{secrets.token_hex(4)}"
    with Sse(live_url(server, "tracing", filter=marker), headers={"Authorization": basic(server.admin)}) as stream:
        assert stream.status == 200 and stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.next() == ("ping", {"interval": 30000})
        owner = stream_owner(server, stream)
        # Emitting starts within a second of the stream opening (each process looks at the flag
        # once a second): ask until one of the other worker's requests is seen.
        for attempt in range(60):
            path = f"{marker}/{attempt}"
            status, pid = request_on_fresh_connection(server, path + "?token=query-secret")
            assert status == 404
            if pid is not None and pid != owner:
                try:
                    seen = wait_for_trace(stream, lambda e: key_values(e).get("url", {}).get("value") == path,
                                          timeout=3)
                except AssertionError:
                    continue
                break
        else:
            raise AssertionError("no request of the other worker was traced")
    event = seen[-1]
    assert event["event"] == "http.request-url" and event["timestamp"].endswith("Z")
    kv = key_values(event)
    assert kv["code"] == {"@type": "UnsignedInt", "value": 404}
    assert kv["method"] == {"@type": "String", "value": "GET"}
    assert kv["remoteIp"] == {"@type": "IpAddr", "value": "127.0.0.1"}
    assert kv["elapsed"]["@type"] == "Duration" and kv["spanId"]["@type"] == "UnsignedInt"
    # The query string (where live and RSVP tokens travel) is never traced.
    assert all("query-secret" not in raw for raw in stream.raw)


def test_a_matching_event_brings_the_rest_of_its_span_and_no_secret(server):
    login = make_user(server, "user")
    other = make_user(server, "user")
    with Sse(live_url(server, "tracing", accountName=login),
             headers={"Authorization": basic(server.admin)}) as stream:
        assert stream.next()[0] == "ping"
        body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [["Mailbox/get", {"ids": None}, "c0"]]}
        for _ in range(40):
            requests.post(server.url + "/jmap/", json=body, headers={"Authorization": basic(other)}, timeout=30)
            resp = requests.post(server.url + "/jmap/", json=body,
                                 headers={"Authorization": basic(login, "wrong-" + PASSWORD)}, timeout=30)
            assert resp.status_code == 401
            try:
                seen = wait_for_trace(stream, lambda e: e["event"] == "auth.failed", timeout=2)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("no auth.failed traced")
        failed = key_values(seen[-1])
        assert failed["accountName"]["value"] == login and failed["remoteIp"]["@type"] == "IpAddr"
        # A login's success matches the key filter; the method call and the request of its span
        # carry no account name and come with it. The other account's requests do not.
        resp = requests.post(server.url + "/jmap/", json=body, headers={"Authorization": basic(login)}, timeout=30)
        assert resp.status_code == 200
        seen = wait_for_trace(stream, lambda e: e["event"] == "http.request-url"
                              and key_values(e)["url"]["value"] == "/jmap/" and key_values(e)["code"]["value"] == 200)
    span = key_values(seen[-1])["spanId"]["value"]
    in_span = [e["event"] for e in seen if key_values(e).get("spanId", {}).get("value") == span]
    assert in_span == ["auth.success", "jmap.method-call", "http.request-url"], in_span
    assert {key_values(e).get("accountName", {}).get("value") for e in seen} <= {login, None}
    everything = "".join(stream.raw)
    assert PASSWORD not in everything and basic(login) not in everything and "Basic " not in everything


def test_tracing_needs_the_permission(server):
    resp = requests.get(live_url(server, "tracing"), headers={"Authorization": basic(server.user)}, timeout=30)
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/problem+json"
    resp = requests.get(live_url(server, "tracing"), timeout=30)
    assert resp.status_code == 401
    resp = requests.post(live_url(server, "tracing"), headers={"Authorization": basic(server.admin)}, timeout=30)
    assert resp.status_code == 405 and resp.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("params", [
    {"nokey": "x"}, {"filter": "x" * 300}, {"url": "y" * 257},
    {f"{key}": "x" for key in ("url", "method", "code", "remoteip", "elapsed", "accountname", "accountid", "reason",
                               "result", "name", "from")},
])
def test_bad_tracing_parameters_are_a_400_problem(server, params):
    resp = requests.get(live_url(server, "tracing", **params), headers={"Authorization": basic(server.admin)},
                        timeout=30)
    assert resp.status_code == 400, (params, resp.text)
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["title"] == "Invalid parameters"


def test_a_delivery_by_another_process_is_traced(server):
    """`manage.py deliver` is a process of its own (as the LMTP listener is): its events reach
    the worker that holds the stream all the same."""
    sender = f"sender-{secrets.token_hex(4)}@elsewhere.example"
    message = f"From: {sender}\r\nTo: {server.user}\r\nSubject: traced\r\n\r\nHello.\r\n"
    with Sse(live_url(server, "tracing", filter=sender), headers={"Authorization": basic(server.admin)}) as stream:
        assert stream.next()[0] == "ping"
        # The command looks at the listening flag when it first emits; the stream's worker sets
        # it as the stream opens, in a thread of its own: wait until it is there.
        for _ in range(20):
            server.manage("deliver", "-f", sender, server.user, input=message)
            try:
                seen = wait_for_trace(stream, lambda e: e["event"] == "message-ingest.ham", timeout=3)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the delivery was not traced")
    kv = key_values(seen[-1])
    assert kv["from"]["value"] == sender and kv["to"]["value"] == server.user
    assert kv["status"]["value"] == "delivered" and kv["code"] == {"@type": "UnsignedInt", "value": 250}
