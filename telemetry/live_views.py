"""/api/live/tracing and /api/live/metrics (reference §8.7–8.9): authenticated with an
Authorization header that holds the permission (liveTracing, liveMetrics), or with `?token=`
from /api/token/{tracing,metrics} (network.live_token), which carries that one permission.

The views are synchronous (the caller, the parameters, the database gauges: a few queries);
the streams they return run on the worker's event loop (telemetry.live).
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse

from network import endpoint, live_token
from stalwart_site.problem import problem

from . import live, trace

INVALID = "Invalid parameters"
MAX_FILTER = 256
MAX_KEY_FILTERS = 10
MAX_INTERVAL = 3600
KEYS = {key.lower(): key for key in trace.KEYS}

_open = 0


class LiveStream(StreamingHttpResponse):
    """Gives its place back when closed: the ASGI handler closes every streaming response once
    it ends, however, even one whose client left at once."""

    counted = False

    def close(self):
        global _open
        try:
            super().close()
        finally:
            if self.counted:
                self.counted = False
                _open -= 1


def _refusal(request, kind: str) -> HttpResponse | None:
    """None when the caller may open the `kind` stream; the problem to answer otherwise."""
    caller = live_token.stream_caller(request, kind)
    return caller if isinstance(caller, HttpResponse) else None


def _stream(body) -> HttpResponse:
    global _open
    limit = settings.LIVE_MAX_STREAMS
    if limit and _open >= limit:
        return problem(429, f"This worker already serves {limit} live streams.", title="Too Many Requests",
                       headers={"Retry-After": "30"})
    response = LiveStream(body, content_type="text/event-stream")
    response.counted = True
    _open += 1
    response["Cache-Control"] = "no-store"
    # A buffering proxy (nginx) would hold the frames back.
    response["X-Accel-Buffering"] = "no"
    return response


@endpoint.endpoint("GET", options="bare", refusal="The live metrics stream takes GET requests.")
def metrics(request):
    refused = _refusal(request, "metrics")
    if refused is not None:
        return refused
    query = request.GET
    unknown = sorted(name for name in query if name not in ("interval", "metrics", "token"))
    if unknown:
        return problem(400, f"Unknown parameter {unknown[0][:40]!r}: interval, metrics and token are known.",
                       title=INVALID)
    raw = query.get("interval", "30")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not 1 <= int(raw) <= MAX_INTERVAL:
        return problem(400, f"interval must be a number of seconds from 1 to {MAX_INTERVAL}.", title=INVALID)
    counters, others = set(), set()
    known_others = set(live.GAUGES) | set(live.HISTOGRAMS)
    for name in query.get("metrics", "").split(","):
        name = name.strip()
        if not name:
            continue
        if name in live.COUNTERS:
            counters.add(name)
        elif name in known_others:
            others.add(name)
        else:
            return problem(400, f"Unknown metric {name[:60]!r}; known: {', '.join(live.COUNTERS)}, "
                                f"{', '.join(sorted(known_others))}.", title=INVALID)
    gauges = live.read_gauges(others)
    body = live.metrics_stream(int(raw), frozenset(counters), frozenset(others), gauges)
    return _stream(body)


@endpoint.endpoint("GET", options="bare", refusal="The live tracing stream takes GET requests.")
def tracing(request):
    refused = _refusal(request, "tracing")
    if refused is not None:
        return refused
    text, keys = None, {}
    for name, value in request.GET.items():
        if name == "token":
            continue
        if len(value) > MAX_FILTER:
            return problem(400, f"A filter is at most {MAX_FILTER} characters.", title=INVALID)
        if name == "filter":
            text = value or None
            continue
        key = KEYS.get(name.lower())
        if key is None:
            return problem(400, f"Unknown key {name[:40]!r}: filter by filter= or by one of "
                                f"{', '.join(trace.KEYS)}.", title=INVALID)
        if value:
            keys[name.lower()] = value
    if len(keys) > MAX_KEY_FILTERS:
        return problem(400, f"At most {MAX_KEY_FILTERS} key filters.", title=INVALID)
    return _stream(live.trace_stream(live.TraceSubscriber(live.TraceFilter(text, keys))))
