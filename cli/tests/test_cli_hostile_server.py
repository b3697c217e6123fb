"""manage.py remote mode against a server that answers what it likes (final pass of issue 10):
an odd session, a broken gzip body, a schema redirect to another origin, terminal escapes in
an error. Each is an `error:` line and exit status 1, never a traceback, a leaked credential or
a rewritten terminal."""
from __future__ import annotations

import gzip
import http.server
import json
import threading

import pytest

from cli.tests.test_cli import _local_mode, run  # noqa: F401 - the fixture is used by name

SCHEMA = json.dumps({"objects": {}, "fields": {}, "enums": {}}).encode()


class FakeServer:
    """A JMAP server whose answers the test writes: path -> (status, headers, body)."""

    def __init__(self):
        self.routes, self.seen = {}, []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                fake.seen.append((self.headers.get("Host"), self.path, self.headers.get("Authorization")))
                status, headers, body = fake.routes.get(self.path, (404, {}, b"{}"))
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def session(self, capabilities=None):
        caps = {"urn:ietf:params:jmap:core": {}} if capabilities is None else capabilities
        self.routes["/jmap/session"] = (200, {}, json.dumps({"capabilities": caps, "apiUrl": "/jmap/"}).encode())


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    server = FakeServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def remote(fake, *args):
    return run(*args, "--url", f"http://127.0.0.1:{fake.port}", "--user", "admin", "--password", "secret-pw")


@pytest.mark.parametrize("capabilities", [
    [1, 2],
    {"urn:ietf:params:jmap:core": "yes"},
    {"urn:ietf:params:jmap:core": {"maxObjectsInGet": "abc", "maxObjectsInSet": None}},
    {"urn:ietf:params:jmap:core": {"maxObjectsInGet": 1e308, "maxObjectsInSet": True}},
])
def test_a_session_of_odd_types_is_no_traceback(fake, capabilities):
    fake.session(capabilities)
    fake.routes["/api/schema"] = (200, {}, SCHEMA)
    code, _, err = remote(fake, "get", "role", "b")
    assert code == 1 and err.startswith("error: ") and "Traceback" not in err, err


# Named ids: gzip's header carries a time, and parallel workers must collect the same test ids.
@pytest.mark.parametrize("body", [b"\x1f\x8b\x08garbage", gzip.compress(b"{}", mtime=0)[:-6]],
                         ids=["garbage", "truncated"])
def test_a_broken_gzip_body_is_an_error_line(fake, body):
    fake.routes["/jmap/session"] = (200, {}, body)
    code, _, err = remote(fake, "get", "role", "b")
    assert (code, err.count("\n")) == (1, 1) and err.startswith("error: unexpected server response: a gzip"), err


def test_a_gzip_bomb_is_refused_before_it_fills_memory(fake, monkeypatch):
    from cli import transport

    monkeypatch.setattr(transport, "MAX_INFLATED", 1024)
    fake.routes["/jmap/session"] = (200, {}, gzip.compress(b" " * 100_000))
    code, _, err = remote(fake, "get", "role", "b")
    assert code == 1 and "larger than 1024 bytes" in err, err


def test_the_schema_is_never_fetched_from_another_origin(fake):
    fake.session()
    # Same port, another host name: another origin, which must not receive the credentials.
    fake.routes["/api/schema"] = (302, {"Location": f"http://localhost:{fake.port}/api/schema/abc"}, b"")
    fake.routes["/api/schema/abc"] = (200, {}, SCHEMA)
    code, _, err = remote(fake, "get", "role", "b")
    assert code == 1 and "redirected the schema to another origin" in err, err
    assert [seen for seen in fake.seen if seen[0].startswith("localhost")] == []


def test_terminal_escapes_in_a_server_error_are_shown_escaped(fake):
    fake.session()
    fake.routes["/api/schema"] = (200, {}, json.dumps({"objects": {"x:Role": {"type": "object"}},
                                                       "fields": {"x:Role": {"properties": {}}},
                                                       "enums": {}}).encode())
    description = "\x1b]0;pwned\x07\x1b[2J\rerror: forged line\nsecond"
    fake.routes["/jmap"] = (200, {}, json.dumps({"methodResponses": [
        ["error", {"type": "serverFail", "description": description}, "c0"]]}).encode())
    code, _, err = remote(fake, "get", "role", "b")
    assert code == 1, err
    assert not any(c in err for c in "\x1b\x07\r") and err.count("\n") == 1, repr(err)
    assert "\\x1b]0;pwned" in err, repr(err)
