"""The two live telemetry streams: metrics (§8.9) and trace events (§8.8), as server-sent events.

Both are async generators on the worker's event loop (stalwart_site.asgi streams them): an open
stream holds no thread and no database connection.

Metrics are the whole server's: under gunicorn every worker counts into the multiprocess
directory and each frame adds up all of them (as /metrics/prometheus does), whichever worker
holds the stream. They are the node's own counters: with several nodes, each node's stream
shows that node.

Trace events come from every worker and process through telemetry.trace (Redis, or the events
file). One `TraceHub` per worker reads them while the worker has tracing streams open, and
hands each event to the streams whose filter it passes.
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from stalwart_site import pubsub

from . import metrics, trace

log = logging.getLogger(__name__)

PING_INTERVAL = 30          # seconds of silence before a ping frame (the reference's)
TRACE_THROTTLE = 1.0        # at most one trace frame a second (the reference's)
MAX_BATCH = 500             # events kept for one frame; older ones are dropped under a flood
MAX_ACTIVE_SPANS = 1000     # spans a filter remembers as matched

# --- metrics ----------------------------------------------------------------------------------------
# Counters, named as the reference's event types, each the sum of some of our Prometheus series.
LOGIN_EVENTS = {
    "success": "auth.success", "failure": "auth.failed", "expired": "auth.failed", "unauthorized": "auth.failed",
    "ip_unauthorized": "auth.failed", "mfa_required": "auth.mfa-required", "banned": "security.ip-blocked",
    "error": "auth.error", "unavailable": "auth.error",
}
BAN_EVENTS = metrics.BAN_EVENTS
COUNTERS = ("http.request-url", "http.request-error", "jmap.method-call", "jmap.method-error",
            *dict.fromkeys(LOGIN_EVENTS.values()), *dict.fromkeys(BAN_EVENTS.values()))
# Gauges read from the database when a stream opens (the reference refreshes its counts then).
GAUGES = ("user.count", "domain.count")
HISTOGRAMS = ("http.request-time",)
LATENCY_FAMILY = "django_http_requests_latency_seconds_by_view_method"

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-metrics")


def _registry():
    if metrics.multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def read_metrics() -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """(counter name -> total, histogram name -> (count, sum in ms)) of the whole server."""
    counters = dict.fromkeys(COUNTERS, 0.0)
    histograms = {name: (0.0, 0.0) for name in HISTOGRAMS}
    latency_count = latency_sum = 0.0
    for family in _registry().collect():
        if family.name == "stalwart_http_requests":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counters["http.request-url"] += s.value
                    if s.labels.get("status", "").startswith("5"):
                        counters["http.request-error"] += s.value
        elif family.name == "stalwart_jmap_method_calls":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counters["jmap.method-call"] += s.value
                    if s.labels.get("result") == "error":
                        counters["jmap.method-error"] += s.value
        elif family.name == "stalwart_logins":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counters[LOGIN_EVENTS.get(s.labels.get("result"), "auth.error")] += s.value
        elif family.name == "stalwart_bans":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counters[BAN_EVENTS.get(s.labels.get("reason"), "security.manual-ban")] += s.value
        elif family.name == LATENCY_FAMILY:
            for s in family.samples:
                if s.name.endswith("_count"):
                    latency_count += s.value
                elif s.name.endswith("_sum"):
                    latency_sum += s.value
    histograms["http.request-time"] = (latency_count, latency_sum * 1000)
    return counters, histograms


def read_gauges(names) -> dict[str, int]:
    """The database gauges among `names` (all when empty): one count query each."""
    # why: the models are needed only when a stream opens; the counters above read no database.
    from accounts.models import Account, Domain

    wanted = [name for name in GAUGES if not names or name in names]
    out = {}
    for name in wanted:
        if name == "user.count":
            out[name] = Account.objects.filter(kind=Account.Kind.USER).count()
        elif name == "domain.count":
            out[name] = Domain.objects.count()
    return out


def _number(value: float):
    return int(value) if float(value).is_integer() else round(value, 3)


def metrics_frame(counters, histograms, gauges, counter_filter, metric_filter) -> bytes:
    """One `metrics` frame. As in the reference, an empty filter for a class takes all of it:
    naming only counters still streams every gauge and histogram."""
    items = []
    for name, value in counters.items():
        if not counter_filter or name in counter_filter:
            items.append({"metric": name, "@type": "Counter", "count": _number(value)})
    for name, value in gauges.items():
        if not metric_filter or name in metric_filter:
            items.append({"metric": name, "@type": "Gauge", "count": _number(value)})
    for name, (count, total) in histograms.items():
        if not metric_filter or name in metric_filter:
            items.append({"metric": name, "@type": "Histogram", "count": _number(count), "sum": _number(total)})
    return f"event: metrics\ndata: {json.dumps(items, separators=(',', ':'))}\n\n".encode()


async def metrics_stream(interval: int, counter_filter: frozenset, metric_filter: frozenset, gauges: dict):
    loop = asyncio.get_running_loop()
    while True:
        try:
            counters, histograms = await loop.run_in_executor(_executor, read_metrics)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a metrics file being rewritten: the next tick reads it again
            log.warning("live metrics: could not read the metrics (%s)", exc.__class__.__name__)
        else:
            yield metrics_frame(counters, histograms, gauges, counter_filter, metric_filter)
        await asyncio.sleep(interval)


# --- tracing ----------------------------------------------------------------------------------------
def _text(kind: str, value) -> str | None:
    """What a filter is matched against: strings, addresses and times; booleans as true/false;
    numbers and lists never (as in the reference)."""
    if kind in ("String", "IpAddr", "UTCDateTime"):
        return value if isinstance(value, str) else None
    if kind == "Boolean":
        return "true" if value else "false"
    return None


class TraceFilter:
    """`filter`: a substring of any value; `keys`: {lowercased key name: substring of its value},
    all of which must match. Once an event matches, the later events of its span pass too."""

    def __init__(self, text: str | None, keys: dict[str, str]):
        self.text = text
        self.keys = keys
        self.active: OrderedDict[int, None] = OrderedDict()

    def passes(self, event: dict) -> bool:
        if self.text is None and not self.keys:
            return True
        span = event.get("s")
        if span is not None and span in self.active:
            return True
        text_ok = self.text is None
        matched = set()
        for item in event["k"]:
            if not isinstance(item, list) or len(item) != 3:
                continue
            key, kind, value = item
            text = _text(kind, value)
            if text is None or not isinstance(key, str):
                continue
            needle = self.keys.get(key.lower())
            if needle is not None and needle in text:
                matched.add(key.lower())
            if not text_ok and self.text in text:
                text_ok = True
        if not text_ok or len(matched) != len(self.keys):
            return False
        if span is not None:
            self.active[span] = None
            if len(self.active) > MAX_ACTIVE_SPANS:
                self.active.popitem(last=False)
        return True


def _value(kind: str, value) -> dict:
    if kind == "List" and isinstance(value, list):
        return {"@type": "List", "value": [_value(*item) for item in value if isinstance(item, list) and len(item) == 2]}
    return {"@type": kind, "value": value}


def trace_event(event: dict) -> dict:
    """The reference's TraceEvent: event type, UTC time, and the keys in order."""
    when = datetime.datetime.fromtimestamp(event["t"], datetime.timezone.utc)
    key_values = {}
    for i, item in enumerate(event["k"]):
        if isinstance(item, list) and len(item) == 3:
            key_values[str(i)] = {"key": item[0], "value": _value(item[1], item[2])}
    return {"event": event["e"], "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "keyValues": key_values}


class TraceSubscriber:
    __slots__ = ("filter", "pending", "wake", "dropped")

    def __init__(self, trace_filter: TraceFilter):
        self.filter = trace_filter
        self.pending: list[dict] = []
        self.wake = asyncio.Event()
        self.dropped = 0

    def offer(self, event: dict) -> None:
        if self.filter.passes(event):
            if len(self.pending) >= MAX_BATCH:
                self.pending.pop(0)
                self.dropped += 1
            self.pending.append(event)
            self.wake.set()


class TraceHub:
    """The worker's one reader of trace events, for all its tracing streams."""

    def __init__(self):
        self.subscribers: set[TraceSubscriber] = set()
        self._tasks: list[asyncio.Task] = []

    def add(self, sub: TraceSubscriber) -> None:
        self.subscribers.add(sub)
        if not self._tasks or all(task.done() for task in self._tasks):
            loop = asyncio.get_running_loop()
            reader = self._redis() if trace.redis_mode() else self._tail()
            self._tasks = [loop.create_task(self._flag()), loop.create_task(reader)]

    def remove(self, sub: TraceSubscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers:
            for task in self._tasks:
                if not task.done():
                    task.cancel()
            self._tasks = []

    def deliver(self, raw) -> None:
        event = trace.decode(raw)
        if event is not None:
            for sub in tuple(self.subscribers):
                sub.offer(event)

    async def _flag(self) -> None:
        loop = asyncio.get_running_loop()
        while self.subscribers:
            await loop.run_in_executor(None, trace.refresh_flag)
            await asyncio.sleep(trace.REFRESH_EVERY)

    async def _tail(self) -> None:
        """Reads the events file from its end as it was when the first stream opened, follows
        its growth, and moves to the new file after a rotation (having finished the old one)."""
        path = trace.events_path()
        interval = max(settings.TRACE_POLL_MS, 10) / 1000
        fh, inode, rest = None, None, b""
        try:
            try:
                st = os.stat(path)
                fh, inode = open(path, "rb"), st.st_ino
                fh.seek(st.st_size)
            except FileNotFoundError:
                pass
            while self.subscribers:
                if fh is None:
                    try:
                        fh = open(path, "rb")
                        inode = os.fstat(fh.fileno()).st_ino
                    except FileNotFoundError:
                        fh = None
                if fh is not None:
                    data = rest + fh.read()
                    *lines, rest = data.split(b"\n")
                    for line in lines:
                        if line:
                            self.deliver(line)
                    try:
                        current = os.stat(path).st_ino
                    except FileNotFoundError:
                        current = None
                    if current != inode:
                        # Rotated: what the old file still held was read above.
                        fh.close()
                        fh, rest = None, b""
                        continue
                await asyncio.sleep(interval)
        finally:
            if fh is not None:
                fh.close()

    async def _redis(self) -> None:
        await pubsub.listen(trace.channel(), self.deliver, running=lambda: bool(self.subscribers),
                            label="live tracing")


hub = TraceHub()


def ping_frame() -> bytes:
    return f'event: ping\ndata: {{"interval": {PING_INTERVAL * 1000}}}\n\n'.encode()


async def trace_stream(sub: TraceSubscriber):
    """The first frame is a ping; then trace frames, at most one a second, of what passed the
    filter; a ping after PING_INTERVAL seconds without one."""
    hub.add(sub)
    try:
        yield ping_frame()
        last_frame = time.monotonic()
        last_sent = 0.0
        while True:
            if not sub.pending:
                try:
                    await asyncio.wait_for(sub.wake.wait(), max(0.0, last_frame + PING_INTERVAL - time.monotonic()))
                except TimeoutError:
                    yield ping_frame()
                    last_frame = time.monotonic()
                    continue
            wait = last_sent + TRACE_THROTTLE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            batch, sub.pending = sub.pending, []
            sub.wake.clear()
            if not batch:
                continue
            body = json.dumps([trace_event(event) for event in batch], separators=(",", ":"))
            yield f"event: trace\ndata: {body}\n\n".encode()
            last_sent = last_frame = time.monotonic()
    finally:
        hub.remove(sub)
