"""telemetry.trace and the filter of the live tracing stream, in process (the embedded default:
the events file under the var dir). The streams themselves are tested against gunicorn
(test_live_streams.py)."""
from __future__ import annotations

import datetime
import json
import os
import time

import pytest

from telemetry import live, trace


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.REDIS_URL = ""
    trace._dir_ready = False
    trace._next_check = 0.0
    trace._listening = False
    yield tmp_path
    trace._dir_ready = False
    trace._next_check = 0.0
    trace._listening = False


def lines(var_dir) -> list[dict]:
    path = var_dir / "trace" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_nobody_listening_writes_nothing(var_dir):
    trace.emit("http.request-url", url="/x")
    assert not (var_dir / "trace").exists()
    # A flag left by a listener that went away long ago does not count.
    (var_dir / "trace").mkdir()
    flag = var_dir / "trace" / "listening"
    flag.touch()
    old = time.time() - trace.FLAG_TTL - 5
    os.utime(flag, (old, old))
    trace._next_check = 0.0
    trace.emit("http.request-url", url="/x")
    assert lines(var_dir) == []


def test_a_listener_gets_typed_keys_and_no_secret(var_dir):
    trace.refresh_flag()
    span = trace.start_span()
    try:
        trace.emit("auth.failed", accountName="jane@example.org", remoteIp="192.0.2.1", code=401, delta=-2,
                   elapsed=12.4, ok=True, password="hunter2", accountSecret="s", Authorization="Basic x",
                   api_token="t", when=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                   names=["a", 1], nothing=None)
    finally:
        trace.end_span(span)
    [event] = lines(var_dir)
    assert event["e"] == "auth.failed"
    keys = {k: (t, v) for k, t, v in event["k"]}
    span_type, span_id = keys.pop("spanId")
    assert span_type == "UnsignedInt" and span_id == event["s"]
    assert keys == {
        "accountName": ("String", "jane@example.org"), "remoteIp": ("IpAddr", "192.0.2.1"),
        "code": ("UnsignedInt", 401), "delta": ("Integer", -2), "elapsed": ("Duration", 12), "ok": ("Boolean", True),
        "when": ("UTCDateTime", "2026-01-02T03:04:05Z"), "names": ("List", [["String", "a"], ["UnsignedInt", 1]]),
        "nothing": ("Null", None),
    }
    assert "hunter2" not in json.dumps(event)
    # Outside the span, no span id.
    trace.emit("http.request-url", url="/y")
    assert lines(var_dir)[-1]["s"] is None


def test_the_events_file_is_rotated(var_dir, monkeypatch):
    monkeypatch.setattr(trace, "ROTATE_AT", 200)
    trace.refresh_flag()
    for i in range(10):
        trace.emit("http.request-url", url=f"/{i}")
    path = var_dir / "trace" / "events.jsonl"
    assert (var_dir / "trace" / "events.jsonl.1").exists()
    assert not path.exists() or path.stat().st_size <= 200 + 200


def event(*keys, span=None):
    return {"e": "x", "t": 0, "s": span, "k": [list(k) for k in keys]}


def test_the_filter_text_keys_and_spans():
    everything = live.TraceFilter(None, {})
    assert everything.passes(event())
    text = live.TraceFilter("exam", {})
    assert text.passes(event(("accountName", "String", "jane@example.org")))
    assert not text.passes(event(("accountName", "String", "jane@other.org")))
    # Numbers never match; booleans as true/false; addresses as text.
    assert not live.TraceFilter("401", {}).passes(event(("code", "UnsignedInt", 401)))
    assert live.TraceFilter("true", {}).passes(event(("ok", "Boolean", True)))
    assert live.TraceFilter("192.0.2", {}).passes(event(("remoteIp", "IpAddr", "192.0.2.7")))
    # Every key filter must match its own key (names compared lowercased).
    keys = live.TraceFilter(None, {"remoteip": "192.0.2.7", "url": "/jmap"})
    assert not keys.passes(event(("remoteIp", "IpAddr", "192.0.2.7"), ("url", "String", "/dav/x")))
    assert not keys.passes(event(("url", "String", "/jmap/"), ("other", "String", "192.0.2.7")))
    assert keys.passes(event(("remoteIp", "IpAddr", "192.0.2.7"), ("url", "String", "/jmap/"), span=5))
    # Then the rest of span 5 passes, whatever it carries; other spans do not.
    assert keys.passes(event(("name", "String", "Mailbox/get"), span=5))
    assert not keys.passes(event(("name", "String", "Mailbox/get"), span=6))


def test_the_trace_event_shape():
    shaped = live.trace_event({"e": "http.request-url", "t": 1767323045.5, "s": 1, "k": [
        ["spanId", "UnsignedInt", 1], ["url", "String", "/jmap/"], ["names", "List", [["String", "a"]]]]})
    assert shaped == {"event": "http.request-url", "timestamp": "2026-01-02T03:04:05Z", "keyValues": {
        "0": {"key": "spanId", "value": {"@type": "UnsignedInt", "value": 1}},
        "1": {"key": "url", "value": {"@type": "String", "value": "/jmap/"}},
        "2": {"key": "names", "value": {"@type": "List", "value": [{"@type": "String", "value": "a"}]}},
    }}


def test_malformed_lines_are_skipped():
    for raw in (b"", b"{", b"[]", b'{"e": 1, "k": [], "t": 0}', b'{"e": "x", "k": {}, "t": 0}', b"\xff"):
        assert trace.decode(raw) is None
