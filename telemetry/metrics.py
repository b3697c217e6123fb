"""The service's own Prometheus metrics, and the exposition a scrape reads.

A leaf module: it imports prometheus_client and nothing of ours, so the apps below telemetry
(accounts, security, jmapapi) count into it with a one-line call and no import cycle.

Every label takes values from a small fixed set (URL routes, status codes, JMAP method names
that exist, login outcomes, ban reasons), never from what a client sends, so the number of
series stays bounded whatever the traffic.

Under gunicorn (several worker processes) gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before
anything is imported: prometheus_client then keeps each worker's values in a file there, and a
scrape, whichever worker answers it, adds them up (MultiProcessCollector). Without the variable
(tests, manage.py) the values live in this process and the default registry is exposed.
"""
from __future__ import annotations

import functools
import inspect
import os

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client import multiprocess

from . import trace

# The `_created` companion of every counter doubles the series and is not aggregated across
# workers: leave it out in either mode, so both expose the same families.
prometheus_client.disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HTTP_REQUESTS = Counter(
    "stalwart_http_requests_total", "HTTP requests answered, by URL route and status code.", ["endpoint", "status"])
JMAP_CALLS = Counter(
    "stalwart_jmap_method_calls_total", "JMAP method calls, by method and result (ok or error).", ["method", "result"])
LOGINS = Counter(
    "stalwart_logins_total", "Verifications of a password, app password or API key, by outcome.", ["result"])
BANS = Counter("stalwart_bans_total", "IP addresses banned, by reason.", ["reason"])

# AuthError.reason (accounts.login) -> label value.
LOGIN_RESULTS = {
    "failed": "failure", "expired": "expired", "error": "error", "unauthorized": "unauthorized",
    "ipUnauthorized": "ip_unauthorized", "mfaRequired": "mfa_required", "banned": "banned",
    "unavailable": "unavailable",
}
# security.models.BlockedIp.Reason values.
BAN_REASONS = ("authFailure", "rcptToFailure", "loitering", "portScanning", "manual", "other")

# Known label values start at 0, so that rate() and increase() see the first event.
for _result in ("success", *LOGIN_RESULTS.values()):
    LOGINS.labels(_result)
for _reason in BAN_REASONS:
    BANS.labels(_reason)


# --- counting, called from the other apps ---------------------------------------------------
# The labelled series once found: labels() validates and looks its arguments up under a lock,
# which on every request cost more than the count. The label values are bounded (above), and
# so is this dict.
_children: dict[tuple, object] = {}


def _series(metric, *values: str):
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def count_request(endpoint: str, status: int) -> None:
    _series(HTTP_REQUESTS, endpoint, str(status)).inc()


def jmap_call(name: str, response: list) -> None:
    """One dispatched method call and its (first) response, ["name", {...}, "callId"]."""
    if response[0] == "error":
        # Only methods that exist are named: an unknown name is whatever the client sent.
        method = "unknown" if response[1].get("type") == "unknownMethod" else name.replace("\\/", "/")
        _series(JMAP_CALLS, method, "error").inc()
        if trace.listening():
            trace.emit("jmap.method-call", name=name[:128], result="error", reason=str(response[1].get("type", "")))
    else:
        _series(JMAP_CALLS, response[0], "ok").inc()
        if trace.listening():
            trace.emit("jmap.method-call", name=response[0], result="ok")


# AuthError.reason -> the trace event of the failure (the reference's auth.* and security.*).
LOGIN_EVENTS = {"mfaRequired": "auth.mfa-required", "banned": "security.ip-blocked", "error": "auth.error",
                "unavailable": "auth.error"}


def counts_logins(fn):
    """Count the outcome of each call of a login function: success, or the AuthError's reason;
    and trace it (the login name and address, never the secret) when anyone watches."""
    parameters = list(inspect.signature(fn).parameters)

    def argument(name, args, kwargs):
        if name in kwargs:
            return kwargs[name]
        at = parameters.index(name) if name in parameters else len(args)
        return args[at] if at < len(args) else None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            reason = getattr(exc, "reason", None)
            if isinstance(reason, str):
                LOGINS.labels(LOGIN_RESULTS.get(reason, "other")).inc()
                if trace.listening():
                    trace.emit(LOGIN_EVENTS.get(reason, "auth.failed"), accountName=argument("login", args, kwargs),
                               remoteIp=argument("remote_ip", args, kwargs), reason=reason)
            raise
        LOGINS.labels("success").inc()
        if trace.listening() and result is not None:
            account = getattr(result, "account", None)
            trace.emit("auth.success", accountName=getattr(account, "email_address", None) or getattr(account, "name", None),
                       accountId=getattr(account, "pk", None), remoteIp=argument("remote_ip", args, kwargs))
        return result

    return wrapper


# BlockedIp reason -> the reference's event type of such a ban.
BAN_EVENTS = {
    "authFailure": "security.authentication-ban", "rcptToFailure": "security.abuse-ban",
    "loitering": "security.loiter-ban", "portScanning": "security.scan-ban", "manual": "security.manual-ban",
    "other": "security.manual-ban",
}


def ban(reason: str, address: str | None = None) -> None:
    BANS.labels(reason if reason in BAN_REASONS else "other").inc()
    trace.emit(BAN_EVENTS.get(reason, "security.manual-ban"), remoteIp=address, reason=reason)


# --- exposition -----------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(*extra_collectors) -> bytes:
    """The text exposition of every metric: the whole server's under gunicorn, this process's
    otherwise, then the `extra_collectors` (computed at scrape time, e.g. from the database)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    out = generate_latest(registry)
    if extra_collectors:
        extra = CollectorRegistry()
        for collector in extra_collectors:
            extra.register(collector)
        out += generate_latest(extra)
    return out
