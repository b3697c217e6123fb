"""JMAP end to end against gunicorn: the documentation's curl examples, a third-party client
(jmapc), cached verification of Basic credentials, the per-user concurrency limit across
workers, and hostile request bodies.

Everything goes over real sockets to real gunicorn processes (tests/live.py); the database is
read back with `manage.py shell` in a separate process, never through this process's ORM.

Two techniques recur:

* Pinning a request to a worker. A sync worker that has accepted a connection whose request
  headers never end waits on it; meanwhile every other request is served by the other worker.
  `on_each_worker` uses two such stalled connections in turn, so that a check runs once on each
  of the two workers, deterministically.
* Holding a request slot. A POST whose headers announce a longer body than is sent keeps its
  worker inside the view, which has already counted the request (jmapapi/views.py acquires
  the slot before it reads the body).
"""
from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import secrets
import select
import shlex
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests
import requests.adapters
from prometheus_client.parser import text_string_to_metric_families

from .live import LiveServer, host_port, live_server, raw_http, stalled_connection

CORE = "urn:ietf:params:jmap:core"
STALWART = "urn:stalwart:jmap"
USING = [CORE, STALWART]
STRONG = "Tr0ubador-Quartz-Lantern-91"
# What a client may see in a 200 response to a bad request (RFC 8620 §3.6.2, §5.3; the
# registry's SetErrors). serverFail and friends are excluded: bad input is the client's fault.
METHOD_ERRORS = {
    "unknownMethod", "invalidArguments", "invalidResultReference", "forbidden", "accountNotFound",
    "accountNotSupportedByMethod", "accountReadOnly", "requestTooLarge", "stateMismatch", "anchorNotFound",
    "unsupportedFilter", "unsupportedSort", "cannotCalculateChanges", "unknownDataType",
}
SET_ERRORS = {
    "forbidden", "overQuota", "tooLarge", "rateLimit", "notFound", "invalidPatch", "willDestroy",
    "invalidProperties", "singleton", "alreadyExists", "validationFailed", "primaryKeyViolation",
    "invalidForeignKey", "objectIsLinked",
}
REQUEST_ERRORS = {"notJSON", "notRequest", "limit", "unknownCapability"}

# --- the seed page's examples (docs: ref/object/authentication), character for character ----
SEED_GET = """curl -X POST https://mail.example.com/api \\
-H 'Authorization: Bearer $TOKEN' \\
-H 'Content-Type: application/json' \\
-d '{
"methodCalls": [
[
"x:Authentication/get",
{
"ids": [
"singleton"
]
},
"c1"
]
],
"using": [
"urn:ietf:params:jmap:core",
"urn:stalwart:jmap"
]
}'"""

SEED_SET = """curl -X POST https://mail.example.com/api \\
-H 'Authorization: Bearer $TOKEN' \\
-H 'Content-Type: application/json' \\
-d '{
"methodCalls": [
[
"x:Authentication/set",
{
"update": {
"singleton": {
"directoryId": "<Directory id>"
}
}
},
"c1"
]
],
"using": [
"urn:ietf:params:jmap:core",
"urn:stalwart:jmap"
]
}'"""

# The defaults the seed page documents for the Authentication singleton.
DOCUMENTED_DEFAULTS = {
    "directoryId": None, "passwordHashAlgorithm": "argon2id", "passwordMinLength": 8, "passwordMaxLength": 128,
    "passwordMinStrength": "three", "passwordDefaultExpiry": None, "maxAppPasswords": 5, "maxApiKeys": 5,
}


# --- helpers --------------------------------------------------------------------------------
def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Jmap:
    """Speaks JMAP over HTTP as one caller."""

    def __init__(self, url: str, authorization: str):
        self.url, self.authorization = url, authorization

    def post(self, body, path: str = "/jmap/", content_type: str | None = "application/json",
             timeout: float = 60) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = {"Authorization": self.authorization}
        if content_type:
            headers["Content-Type"] = content_type
        return requests.post(self.url + path, data=data, headers=headers, timeout=timeout)

    def request(self, calls: list, using=USING) -> list:
        resp = self.post({"using": using, "methodCalls": calls})
        assert resp.status_code == 200, resp.text
        return resp.json()["methodResponses"]

    def ok(self, name: str, args: dict):
        [(got_name, got, _)] = self.request([[name, args, "c0"]])
        assert got_name == name, got
        return got

    def echo(self) -> requests.Response:
        return self.post({"using": [CORE], "methodCalls": [["Core/echo", {"ping": 1}, "e"]]})




READ_AUTHENTICATION = """
from accounts.models import Authentication
from registry import ids
from registry.models import AuditEvent
a = Authentication.load()
result = {
    "directory": a.directory_id, "algorithm": a.password_hash_algorithm, "min": a.password_min_length,
    "max": a.password_max_length, "strength": a.password_min_strength,
    "expiry": a.password_default_expiry.total_seconds() if a.password_default_expiry else None,
    "app_passwords": a.max_app_passwords, "api_keys": a.max_api_keys,
    "roles": [sorted(ids.encode(r.pk) for r in getattr(a, f).all())
              for f in ("default_user_roles", "default_group_roles", "default_tenant_roles", "default_admin_roles")],
    "audit": AuditEvent.objects.filter(object_type="Authentication").count(),
}
"""


def bootstrap(server: LiveServer) -> tuple[str, str] | None:
    out = server.manage("bootstrap").stdout
    login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M)
    password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M)
    return (login.group(1), password.group(1)) if login and password else None


@dataclass
class Site:
    server: LiveServer
    login: str
    password: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin(self) -> Jmap:
        return Jmap(self.url, basic(self.login, self.password))

    def domain_id(self) -> str:
        return self.admin.ok("x:Domain/query", {"filter": {"name": "example.org"}})["ids"][0]

    def create_user(self, prefix: str, password: str = STRONG) -> tuple[str, str]:
        """A new user account; returns (its id, its login)."""
        name = f"{prefix}{secrets.token_hex(3)}"
        got = self.admin.ok("x:Account/set", {"create": {"u": {
            "@type": "User", "name": name, "domainId": self.domain_id(),
            "credentials": {"0": {"@type": "Password", "secret": password}}}}})
        assert got["notCreated"] is None, got
        return got["created"]["u"]["id"], f"{name}@example.org"


@contextmanager
def first_run_site(live: LiveServer, **server_kw):
    """The first administrator, made by `manage.py bootstrap` on `live`; should another module
    have bootstrapped it already, a fresh server of this module's own is used instead."""
    with ExitStack() as stack:
        server, creds = live, bootstrap(live)
        if creds is None:
            server = stack.enter_context(live_server(**server_kw))
            creds = bootstrap(server)
        assert creds, "bootstrap printed no password"
        yield Site(server, *creds)


@pytest.fixture(scope="module")
def site(live):
    with first_run_site(live, workers=2) as s:
        yield s
        # Leave the shared server's settings as the other modules expect them.
        s.admin.ok("x:Authentication/set", {"update": {"singleton": {
            "directoryId": None, "passwordHashAlgorithm": "argon2id"}}})




def on_each_worker(url: str, check) -> list:
    """Run check() on each of the two sync workers (2-worker servers only), in turn."""
    with ExitStack() as stack:
        first = stack.enter_context(stalled_connection(url))  # worker A waits on it
        results = [check()]  # so worker B serves this
        stack.enter_context(stalled_connection(url))  # worker B, the only one free, waits on this one
        first.close()  # worker A is free again
        results.append(check())  # and serves this
    return results




def run_seed_curl(command: str, url: str, token: str, directory_id: str | None = None) -> dict:
    """Run a seed example with the real curl; only the host and the token are substituted."""
    assert shutil.which("curl"), "curl is required"
    text = command.replace("https://mail.example.com", url).replace("$TOKEN", token)
    if directory_id is not None:
        text = text.replace("<Directory id>", directory_id)
    argv = shlex.split(text.replace("\\\n", " "))  # the shell's line continuations
    assert argv[:4] == ["curl", "-X", "POST", url + "/api"], argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# --- 1. the seed page's curl examples ---------------------------------------------------------
@pytest.fixture(scope="module")
def api_key(site) -> str:
    got = site.admin.ok("x:ApiKey/set", {"create": {"k": {"description": "curl"}}})
    secret = got["created"]["k"]["secret"]
    assert len(secret) == 42 and secret.startswith("API_"), secret
    return secret


def test_seed_get_example_returns_the_singleton_with_its_defaults(site, api_key):
    body = run_seed_curl(SEED_GET, site.url, api_key)
    [(name, got, call_id)] = body["methodResponses"]
    assert (name, call_id) == ("x:Authentication/get", "c1"), body
    [singleton] = got["list"]
    assert got["notFound"] == []
    assert singleton["id"] == "singleton"
    assert {k: singleton[k] for k in DOCUMENTED_DEFAULTS} == DOCUMENTED_DEFAULTS
    for key in ("defaultUserRoleIds", "defaultGroupRoleIds", "defaultTenantRoleIds", "defaultAdminRoleIds"):
        assert isinstance(singleton[key], dict) and all(v is True for v in singleton[key].values()), key
    assert isinstance(body["sessionState"], str) and body["sessionState"]


def test_seed_set_example_stores_the_directory_and_refuses_an_unknown_one(site, api_key):
    out = site.server.shell("from accounts.models import Directory; d=Directory.objects.create(description='LDAP'); "
                            "from registry import ids; print(ids.encode(d.pk))")
    directory_id = out.strip().splitlines()[-1]
    assert re.fullmatch(r"[a-z792013]+", directory_id), out
    before = site.server.shell_json(READ_AUTHENTICATION)

    body = run_seed_curl(SEED_SET, site.url, api_key, directory_id)
    [(name, got, call_id)] = body["methodResponses"]
    assert (name, call_id) == ("x:Authentication/set", "c1"), body
    assert got["updated"] == {"singleton": None} and not got["notUpdated"], got
    stored = site.server.shell_json(READ_AUTHENTICATION)
    assert stored["directory"] is not None
    assert site.server.shell_json(f"from registry import ids\nresult = ids.encode({stored['directory']})") == directory_id
    assert stored["audit"] == before["audit"] + 1  # one changed property, one audit event
    fetched = run_seed_curl(SEED_GET, site.url, api_key)["methodResponses"][0][1]["list"][0]
    assert fetched["directoryId"] == directory_id

    missing = site.server.shell_json("from accounts.models import Directory\nfrom registry import ids\n"
                                      "result = ids.encode((Directory.objects.order_by('-pk').first().pk) + 1000)")
    body = run_seed_curl(SEED_SET, site.url, api_key, missing)
    [(name, got, _)] = body["methodResponses"]
    assert name == "x:Authentication/set"
    assert got["updated"] is None
    assert got["notUpdated"]["singleton"]["type"] == "invalidForeignKey", got
    after = site.server.shell_json(READ_AUTHENTICATION)
    assert after == stored  # nothing written, not even an audit event

    # While a directory is active the administrator's internal password no longer logs in (the
    # directory decides): the API key, a local credential, switches back.
    Jmap(site.url, f"Bearer {api_key}").ok("x:Authentication/set", {"update": {"singleton": {"directoryId": None}}})
    assert site.server.shell_json(READ_AUTHENTICATION)["directory"] is None


# --- 2. jmapc ---------------------------------------------------------------------------------
class PlainHttpAdapter(requests.adapters.HTTPAdapter):
    """jmapc always asks for https://{host}/.well-known/jmap; this sends such requests over
    plain HTTP to the same host and port. It is mounted on jmapc's own requests session for
    the test server's address only: jmapc's code and ours run unchanged, and every later URL
    comes from the session document (PUBLIC_URL, plain http here)."""

    def send(self, request, *args, **kwargs):
        request = request.copy()
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, *args, **kwargs)


def test_jmapc_reads_the_session_and_calls_echo_and_authentication_get(site):
    import jmapc
    from jmapc.methods import CoreEcho, CoreEchoResponse, CustomMethod, CustomResponse

    host = urlsplit(site.url).netloc  # 127.0.0.1:PORT
    client = jmapc.Client.create_with_password(host, site.login, site.password)
    adapter = PlainHttpAdapter()
    client.requests_session.mount(f"https://{host}/", adapter)

    session = client.jmap_session  # GET https://host/.well-known/jmap -> 307 -> /jmap/session
    assert session.username == site.login
    assert session.api_url == site.url + "/jmap/"
    assert session.capabilities.core.max_calls_in_request == 16
    assert session.capabilities.core.max_concurrent_requests == 4
    assert STALWART in session.capabilities.urns
    account_id = client.account_id  # primaryAccounts[core]
    assert re.fullmatch(r"[a-z792013]+", account_id)

    echo = client.request(CoreEcho(data={"hello": ["jmapc", 1, None]}))
    assert isinstance(echo, CoreEchoResponse) and echo.data == {"hello": ["jmapc", 1, None]}

    method = CustomMethod(data={"ids": ["singleton"]})
    method.jmap_method = "x:Authentication/get"
    got = client.request(method)
    assert isinstance(got, CustomResponse), got
    assert got.account_id == account_id
    [singleton] = got.data["list"]
    assert singleton["id"] == "singleton" and singleton["passwordMinLength"] == 8

    # Several calls in one request, as jmapc numbers them; the session state did not change.
    state = session.state
    results = client.request([CoreEcho(data={"n": 1}), CoreEcho(data={"n": 2})])
    assert [r.response.data for r in results] == [{"n": 1}, {"n": 2}]
    assert client.jmap_session.state == state


# --- 3. verification is cached; a password change is seen at once by every worker -----------
def verifications(url: str) -> float:
    """How many passwords the server has verified, all workers together (stalwart_logins_total:
    one per call of accounts.login.authenticate, success or failure; a cached verdict is not
    one). The scrape itself carries no credentials, so it verifies nothing."""
    text = requests.get(url + "/metrics/prometheus", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "stalwart_logins_total")


def test_basic_credentials_are_verified_once_and_a_changed_password_is_refused_everywhere(site):
    """Counted, not timed: this test used to tell a verification from a cached verdict by how long
    the request took against one scrypt hash, which a loaded machine blurs either way."""
    admin = site.admin
    shared_cache = bool(site.server.env.get("REDIS_URL"))
    metrics = admin.ok("x:Metrics/get", {"ids": ["singleton"]})["list"][0]["prometheus"]
    admin.ok("x:Metrics/set", {"update": {"singleton": {"prometheus": {"@type": "Enabled"}}}})
    admin.ok("x:Authentication/set", {"update": {"singleton": {"passwordHashAlgorithm": "scrypt"}}})
    try:
        user_id, login = site.create_user("carol")
        stored = site.server.shell_json("from accounts.models import Credential\nfrom accounts import hashing\n"
                                         f"c = Credential.objects.get(account__email_address={login!r}, kind='password')\n"
                                         "result = hashing.algorithm_of(c.secret_hash)")
        assert stored == "scrypt"

        carol = Jmap(site.url, basic(login, STRONG))

        def counted(jmap):
            before = verifications(site.url)
            status = jmap.echo().status_code
            return status, verifications(site.url) - before

        series = on_each_worker(site.url, lambda: [counted(carol) for _ in range(4)])
        assert all(status == 200 for s in series for status, _ in s), series
        # The first request of all verifies the password.
        assert series[0][0][1] == 1, series
        # Every later request on the same worker reuses the verdict.
        for s in series:
            assert [n for _, n in s[1:]] == [0, 0, 0], series
        # The other worker verifies once more unless the cache is shared (REDIS_URL).
        assert series[1][0][1] == (0 if shared_cache else 1), series
        # A wrong password is never cached: each attempt is verified.
        wrong = Jmap(site.url, basic(login, STRONG + "x"))
        assert [counted(wrong) for _ in range(2)] == [(401, 1), (401, 1)]

        # Both workers now hold a verdict for the old password. Change it over JMAP ...
        new_password = "Granite-Walrus-Harmonica-77"
        got = admin.ok("x:Account/set", {"update": {user_id: {"credentials/0/secret": new_password}}})
        assert got["updated"] == {user_id: None}, got

        # ... and the old one is refused at once, on each worker, the new one accepted.
        def old_refused_new_accepted():
            old = [carol.echo().status_code for _ in range(3)]
            new = Jmap(site.url, basic(login, new_password)).echo().status_code
            return old, new

        for old, new in on_each_worker(site.url, old_refused_new_accepted):
            assert old == [401, 401, 401] and new == 200
        # And without pinning, from several connections at once.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = [r.status_code for r in pool.map(lambda _: carol.echo(), range(12))]
        assert statuses == [401] * 12
    finally:
        admin.ok("x:Authentication/set", {"update": {"singleton": {"passwordHashAlgorithm": "argon2id"}}})
        admin.ok("x:Metrics/set", {"update": {"singleton": {"prometheus": metrics}}})


# --- 4. maxConcurrentRequests across workers (shared cache) ----------------------------------
@contextmanager
def _redis_site(**env):
    """Two workers sharing a Redis cache (this test process's LIVE_REDIS_URL, tests/workers.py;
    a key prefix of their own)."""
    url = os.environ["LIVE_REDIS_URL"]
    with live_server(workers=2, extra_env={"REDIS_URL": url, **env}) as server:
        creds = bootstrap(server)
        assert creds
        try:
            yield Site(server, *creds)
        finally:
            import redis

            client = redis.Redis.from_url(url)
            for key in client.scan_iter(match=server.env["CACHE_KEY_PREFIX"] + ":*"):
                client.delete(key)


@pytest.fixture(scope="module")
def redis_site():
    with _redis_site() as site:
        yield site


@contextmanager
def request_waiting_for_its_body(url: str, authorization: str):
    """POST /jmap/ announcing 1000 bytes of body and sending 12: the view has taken its slot
    and waits in the body read until the connection closes."""
    sock = socket.create_connection(host_port(url), timeout=30)
    try:
        sock.sendall(b"POST /jmap/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Authorization: " + authorization.encode() + b"\r\nContent-Length: 1000\r\n\r\n"
                     b'{"using": [')
        yield sock
    finally:
        sock.close()


def answered(sock: socket.socket) -> bool:
    """Whether the server has sent something on (or closed) this connection."""
    return bool(select.select([sock], [], [], 0)[0])


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def sync_redis_site():
    """As redis_site, on the sync workers: there a view takes its concurrency slot and then
    waits in its body read, which holds a request in flight on demand. The event-loop worker
    reads the whole body before the view runs, so nothing can be held there from outside; the
    limit itself lives in the shared cache and is the same code under either model."""
    with _redis_site(SERVER_MODEL="sync") as site:
        yield site


def test_max_concurrent_requests_is_enforced_across_workers(sync_redis_site):
    site = sync_redis_site
    admin = site.admin
    got = admin.ok("x:Jmap/set", {"update": {"singleton": {"maxConcurrentRequests": 1}}})
    assert got["updated"] == {"singleton": None}, got
    _, login = site.create_user("dave")
    _, other_login = site.create_user("erin")
    dave, erin = Jmap(site.url, basic(login, STRONG)), Jmap(site.url, basic(other_login, STRONG))
    assert dave.echo().status_code == 200  # alone: within the limit
    session = requests.get(site.url + "/jmap/session", headers={"Authorization": dave.authorization}, timeout=30)
    assert session.json()["capabilities"][CORE]["maxConcurrentRequests"] == 1

    with ExitStack() as stack:
        # One worker sits in the first request's body read; the requests below are served by the
        # other one. Should a probe reach the server before the held request has taken its slot,
        # the held request is the one refused (it gets an answer): then hold another.
        held = stack.enter_context(request_waiting_for_its_body(site.url, dave.authorization))
        deadline = time.monotonic() + 30
        while (refused := dave.echo()).status_code != 400:
            assert refused.status_code == 200 and time.monotonic() < deadline, "the second request was never refused"
            if answered(held):
                held.close()
                held = stack.enter_context(request_waiting_for_its_body(site.url, dave.authorization))
            time.sleep(0.05)
        assert not answered(held)
        problem = refused.json()
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert problem["type"] == "urn:ietf:params:jmap:error:limit"
        assert problem["limit"] == "maxConcurrentRequests" and problem["status"] == 400
        assert refused.headers["RateLimit-Policy"] == '"concurrent-requests";q=1;qu="concurrent-requests"'
        assert refused.headers["RateLimit"].startswith('"concurrent-requests";r=0')
        assert dave.echo().status_code == 400  # still held
        assert erin.echo().status_code == 200  # the limit is per user
        assert admin.echo().status_code == 200  # administrators hold unlimitedRequests
        assert not answered(held)  # the held request has been waiting all along
    # The connection is gone: the first request fails its body read and frees the slot.
    assert wait_for(lambda: dave.echo().status_code == 200), "the slot was never released"
    assert [dave.echo().status_code for _ in range(3)] == [200] * 3


# --- 5. bad input: never a 500, never a partial write ---------------------------------------
def _nested(depth: int, leaf: str = "") -> str:
    return "[" * depth + leaf + "]" * depth


def _envelope(calls: str, using: str = json.dumps([CORE])) -> bytes:
    return f'{{"using":{using},"methodCalls":{calls}}}'.encode()


WRONG = [True, False, "", "x", "\u0000", "\ud800", [], [1], {"a": 1}, 1.5, -1, 10**30, -(10**30), 2**63, "singleton"]


def bad_bodies() -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = []
    add = lambda label, body: cases.append((label, body if isinstance(body, bytes) else json.dumps(body).encode()))  # noqa: E731
    valid = json.dumps({"using": USING, "methodCalls": [["x:Authentication/set", {"update": {"singleton": {
        "passwordMinLength": 12}}}, "s"]]}).encode()
    # Truncated JSON (a whole valid body would change the settings: every prefix must not).
    for cut in range(0, len(valid), 5):
        add(f"truncated at {cut}", valid[:cut])
    # Deep nesting, everywhere.
    add("10000 nested arrays", _nested(10000).encode())
    add("10000 nested objects", ('{"a":' * 10000 + "1" + "}" * 10000).encode())
    add("10000 nested in using", _envelope("[]", _nested(10000)))
    add("10000 nested in methodCalls", _envelope(_nested(10000)))
    add("10000 nested in echo", _envelope(f'[["Core/echo",{{"a":{_nested(10000)}}},"c"]]'))
    for depth in (120, 125, 126, 127, 128, 129, 500, 940, 945, 950, 990, 999, 1000, 1001, 3000):
        add(f"{depth} nested in echo", _envelope(f'[["Core/echo",{{"a":{_nested(depth, "1")}}},"c"]]'))
        add(f"{depth} nested in set", _envelope(f'[["x:Authentication/set",{{"update":{{"singleton":'
                                                f'{{"passwordMinLength":{_nested(depth, "9")}}}}}}},"c"]]'))
    # Numbers no one can hold.
    for number in ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", "9" * 5000, "9" * 400, "-0", "1e-999",
                   "123456789012345678901234567890"):
        add(f"number {number[:12]} in echo", _envelope(f'[["Core/echo",{{"n":{number}}},"c"]]'))
        add(f"number {number[:12]} in set", _envelope(
            f'[["x:Authentication/set",{{"update":{{"singleton":{{"maxApiKeys":{number}}}}}}},"c"]]'))
    # NUL bytes and invalid UTF-8.
    add("raw NUL", b'{"using":["' + CORE.encode() + b'"],"methodCalls":[["Core/echo",{"a":"\x00"},"c"]]}')
    add("NUL only", b"\x00" * 64)
    add("invalid utf-8", b'{"using":["\xff\xfe"],"methodCalls":[]}')
    add("overlong utf-8", b'{"using":["\xc0\xaf"],"methodCalls":[]}')
    add("invalid utf-8 in a value", b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["x:Authentication/set",'
                                    b'{"update":{"singleton":{"passwordHashAlgorithm":"scr\xffypt"}}},"c"]]}')
    add("utf-16 body", json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {}, "c"]]}).encode("utf-16"))
    add("lone surrogates", _envelope('[["Core/echo",{"\\ud800":"\\udfff"},"\\ud800"]]'))
    add("NUL in method name", {"using": USING, "methodCalls": [["x:Authentication/set\u0000", {}, "c"]]})
    add("NUL in call id", {"using": USING, "methodCalls": [["x:Authentication/get", {}, "c\u0000"]]})
    # The envelope, every position, every wrong type.
    for value in [None, *WRONG, {}]:
        add(f"body {value!r:.20}", value)
        add(f"using {value!r:.20}", {"using": value, "methodCalls": []})
        add(f"using [{value!r:.20}]", {"using": [value], "methodCalls": []})
        add(f"methodCalls {value!r:.20}", {"using": USING, "methodCalls": value})
        add(f"methodCalls [{value!r:.20}]", {"using": USING, "methodCalls": [value]})
        add(f"call name {value!r:.20}", {"using": USING, "methodCalls": [[value, {}, "c"]]})
        add(f"call args {value!r:.20}", {"using": USING, "methodCalls": [["x:Authentication/get", value, "c"]]})
        add(f"call id {value!r:.20}", {"using": USING, "methodCalls": [["x:Authentication/get", {}, value]]})
        add(f"createdIds {value!r:.20}", {"using": USING, "methodCalls": [], "createdIds": value})
        add(f"createdIds entry {value!r:.20}", {"using": USING, "methodCalls": [], "createdIds": {"a": value}})
    for call in ([], ["x:Authentication/get"], ["x:Authentication/get", {}], ["x:Authentication/get", {}, "c", "d"]):
        add(f"call of {len(call)}", {"using": USING, "methodCalls": [call]})
    add("unknown capability", {"using": ["urn:example:nothing"], "methodCalls": []})
    add("unknown envelope keys", {"using": USING, "methodCalls": [["x:Authentication/get", {}, "c"]], "x": 1,
                                  "methodcalls": 2})
    add("empty body", b"")
    # x:Authentication/set: arguments of the method, every wrong type.
    for key in ("accountId", "update", "create", "destroy", "ifInState", "#update", "#destroy"):
        for value in WRONG:
            add(f"set {key}={value!r:.20}", {"using": USING, "methodCalls": [["x:Authentication/set", {key: value}, "c"]]})
    for value in [None, *WRONG]:
        add(f"set update.singleton={value!r:.20}", {"using": USING, "methodCalls": [
            ["x:Authentication/set", {"update": {"singleton": value}}, "c"]]})
    add("set update of another id", {"using": USING, "methodCalls": [
        ["x:Authentication/set", {"update": {"b": {"passwordMinLength": 12}}}, "c"]]})
    add("set create", {"using": USING, "methodCalls": [
        ["x:Authentication/set", {"create": {"k": {"passwordMinLength": 12}}}, "c"]]})
    add("set destroy", {"using": USING, "methodCalls": [["x:Authentication/set", {"destroy": ["singleton"]}, "c"]]})
    for account_id in ("zz-z", "", "a" * 14, 1, True, []):
        add(f"set accountId {account_id!r}", {"using": USING, "methodCalls": [
            ["x:Authentication/set", {"accountId": account_id, "update": {"singleton": {"passwordMinLength": 12}}},
             "c"]]})
    add("set stale ifInState", {"using": USING, "methodCalls": [
        ["x:Authentication/set", {"ifInState": "no-such-state", "update": {"singleton": {"passwordMinLength": 12}}},
         "c"]]})
    # Each property of the singleton, every wrong type; and broken patch paths.
    properties = ["directoryId", "defaultUserRoleIds", "defaultGroupRoleIds", "defaultTenantRoleIds",
                  "defaultAdminRoleIds", "passwordHashAlgorithm", "passwordMinLength", "passwordMaxLength",
                  "passwordMinStrength", "passwordDefaultExpiry", "maxAppPasswords", "maxApiKeys"]
    out_of_range = {"passwordMinLength": [0, 101], "passwordMaxLength": [0, 1001], "maxAppPasswords": [0],
                    "maxApiKeys": [0], "passwordDefaultExpiry": [-5, 2**62], "passwordMinStrength": ["five", 3, "Three"],
                    "passwordHashAlgorithm": ["md5", "Argon2id", "argon2id "]}
    for prop in properties:
        for value in [*WRONG, {"zzzz": True}, {"b": False}, {"b": 1}, {"b": None}, *out_of_range.get(prop, [])]:
            add(f"{prop}={value!r:.20}", {"using": USING, "methodCalls": [
                ["x:Authentication/set", {"update": {"singleton": {prop: value}}}, "c"]]})
        add(f"{prop}/x/y", {"using": USING, "methodCalls": [
            ["x:Authentication/set", {"update": {"singleton": {f"{prop}/x/y": 1}}}, "c"]]})
    for patch in ({"defaultUserRoleIds/zzzz": True}, {"defaultUserRoleIds/b": False}, {"nonsense": 1},
                  {"id": "other"}, {"": 1}, {"/": 1}, {"passwordMinLength": 5, "passwordMaxLength": 4},
                  {"passwordMinLength": 12, "passwordHashAlgorithm": "md5"},
                  {"passwordMinLength": 12, "directoryId": "zzzzzzzzz"},
                  {"passwordMinLength": 12, "defaultUserRoleIds": {"zzzz": True}},
                  {"passwordMinLength": 12, "maxApiKeys": 10**30}):
        add(f"patch {patch!r:.40}", {"using": USING, "methodCalls": [
            ["x:Authentication/set", {"update": {"singleton": patch}}, "c"]]})
    add("unknown get property", {"using": USING, "methodCalls": [
        ["x:Authentication/get", {"properties": ["nonsense"]}, "c"]]})
    add("unknown get argument", {"using": USING, "methodCalls": [["x:Authentication/get", {"nonsense": 1}, "c"]]})
    # Result references: over the call limit, broken, and a long valid chain.
    ref = {"resultOf": "c0", "name": "Core/echo", "path": "/ids"}
    add("300 result references", {"using": USING, "methodCalls": [["Core/echo", {"ids": ["x"]}, "c0"]] + [
        ["x:Authentication/get", {"#ids": ref}, f"c{i}"] for i in range(1, 300)]})
    add("16 chained references", {"using": USING, "methodCalls": [["Core/echo", {"ids": ["singleton"]}, "c0"]] + [
        ["Core/echo", {"#ids": {"resultOf": f"c{i - 1}", "name": "Core/echo", "path": "/ids"}}, f"c{i}"]
        for i in range(1, 15)] + [["x:Authentication/get", {"#ids": {"resultOf": "c14", "name": "Core/echo",
                                                                      "path": "/ids"}}, "g"]]})
    for bad_ref in (1, "x", [], {}, {"resultOf": "c0"}, {**ref, "path": 1}, {**ref, "path": "ids"},
                    {**ref, "path": "/" + "/a" * 5000}, {**ref, "path": "/ids/*/*/*"}, {**ref, "name": "x"},
                    {**ref, "resultOf": "nope"}):
        add(f"reference {bad_ref!r:.30}", {"using": USING, "methodCalls": [["Core/echo", {"ids": ["singleton"]}, "c0"], [
            "x:Authentication/set", {"#update": bad_ref}, "c1"]]})
    add("#ids and ids", {"using": USING, "methodCalls": [["Core/echo", {"ids": ["singleton"]}, "c0"], [
        "x:Authentication/get", {"ids": ["singleton"], "#ids": ref}, "c1"]]})
    add("17 calls", {"using": USING, "methodCalls": [["Core/echo", {}, f"c{i}"] for i in range(17)]})
    return cases


def check_response(label: str, resp: requests.Response) -> None:
    assert resp.status_code in (200, 400, 401), (label, resp.status_code, resp.text[:500])
    if resp.status_code == 400:
        problem = resp.json()
        assert resp.headers["Content-Type"] == "application/problem+json", label
        assert problem["status"] == 400, (label, problem)
        kind = problem["type"].rsplit(":", 1)[-1]
        assert problem["type"].startswith("urn:ietf:params:jmap:error:") and kind in REQUEST_ERRORS, (label, problem)
        return
    if resp.status_code == 401:
        return
    assert resp.headers["Content-Type"].startswith("application/json"), label
    # The response is strict JSON: no NaN or Infinity.
    body = json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"{label}: {c} in the response"))
    assert isinstance(body["sessionState"], str), label
    for name, args, call_id in body["methodResponses"]:
        assert isinstance(call_id, str) and isinstance(args, dict), (label, name)
        if name == "error":
            assert args.get("type") in METHOD_ERRORS, (label, args)
        if name.endswith("/set"):
            assert args.get("updated") is None and args.get("created") is None, (label, args)
            assert args.get("destroyed") is None, (label, args)
            for branch in ("notCreated", "notUpdated", "notDestroyed"):
                for error in (args.get(branch) or {}).values():
                    assert error.get("type") in SET_ERRORS, (label, branch, error)


def test_bad_input_never_yields_a_500_nor_a_write(site):
    admin = site.admin
    before = site.server.shell_json(READ_AUTHENTICATION)
    get_calls = [["x:Authentication/get", {"ids": ["singleton"]}, "g"]]
    baseline = admin.request(get_calls)[0][1]["list"][0]
    log_path = site.server.var_dir / "gunicorn.log"
    log_start = log_path.stat().st_size
    cases = bad_bodies()
    assert len(cases) > 500
    for label, body in cases:
        resp = admin.post(body)
        check_response(label, resp)
        # Nothing changed (checked after each case that ran methods, so that a failure names its input).
        if resp.status_code == 200 and b"Authentication/set" in body:
            assert admin.request(get_calls)[0][1]["list"][0] == baseline, label
    # Over HTTP in other ways: bodies larger than announced, headers no client sends, no type.
    check_response("no content type", admin.post(_envelope("[]"), content_type=None))
    check_response("text/plain", admin.post(_envelope("[]"), content_type="text/plain"))
    check_response("form", admin.post(b"using=1", content_type="application/x-www-form-urlencoded"))
    auth = admin.authorization.encode()
    head = b"POST /jmap/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + auth + b"\r\nConnection: close\r\n"
    status, body = raw_http(site.url, head + b"Content-Length: 20000000\r\nContent-Type: application/json\r\n\r\n",
                            b'{"using": [')
    # Past HTTP_MAX_BODY the event-loop worker answers 413 before reading; the sync workers
    # leave it to the view's own limit.
    assert (status == 413 and json.loads(body)["status"] == 413) or (
        status == 400 and json.loads(body)["limit"] == "maxSizeRequest"), body
    for bad_header in (b"Content-Length: abc\r\n", b"Content-Length: -5\r\n", b"Content-Length: 5\r\nContent-Length: 7\r\n",
                       b"X-Nul: a\x00b\r\nContent-Length: 2\r\n", b"Content-Length: 2\r\nX-Bad: \xff\xfe\r\n"):
        status, _ = raw_http(site.url, head + bad_header + b"\r\n", b"{}")
        assert status in (400, 401), bad_header
    for authorization in (b"Basic \xff\xfe", b"Basic " + base64.b64encode(b"\xff:\xfe"), b"Bearer API_",
                          b"Bearer API_" + b"A" * 5000, b"Bearer API_!!!!", b"Basic", b"\x00", b"Bearer " + b"A" * 40,
                          b"Basic " + base64.b64encode(b"admin@example.org:" + b"x" * 100000)):
        status, _ = raw_http(site.url, b"POST /jmap/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             b"Authorization: " + authorization + b"\r\nContent-Length: 2\r\n\r\n", b"{}")
        assert status in (400, 401, 431), authorization[:40]  # 431: gunicorn's header size limit

    after = site.server.shell_json(READ_AUTHENTICATION)
    assert after == before, site.server.shell_json(  # the same values, roles and number of audit events
        "from registry.models import AuditEvent\nresult = [[e.actor, e.field, e.old_value, e.new_value] "
                     "for e in AuditEvent.objects.filter(object_type='Authentication').order_by('-id')[:3]]")
    assert admin.request(get_calls)[0][1]["list"][0] == baseline
    with open(log_path, "rb") as f:
        f.seek(log_start)
        log = f.read().decode(errors="replace")
    assert "Internal Server Error" not in log and "Traceback" not in log, log[-3000:]


def test_nesting_within_the_limit_is_echoed_faithfully(site):
    value = json.loads(_nested(100, '{"k":[1,2.5,"\\u00e9",null,true]}'))
    resp = site.admin.post({"using": [CORE], "methodCalls": [["Core/echo", {"v": value}, "c"]]})
    assert resp.status_code == 200
    assert resp.json()["methodResponses"] == [["Core/echo", {"v": value}, "c"]]
    too_deep = site.admin.post(_envelope(f'[["Core/echo",{{"v":{_nested(200, "1")}}},"c"]]'))
    assert too_deep.status_code == 400 and too_deep.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    huge = site.admin.post(_envelope('[["Core/echo",{"v":1e999},"c"]]'))
    assert huge.status_code == 400 and huge.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
