"""Trace events of what the server does, for whoever watches /api/live/tracing (telemetry.live).

`emit("auth.failed", accountName=..., remoteIp=...)` is one call wherever something happens (an
HTTP request, a login, a JMAP method call, a delivery, a submission, a ban, a certificate
renewal). Events go to every worker and process of the server, whichever of them holds the
stream:

- with REDIS_URL, published on the channel TRACE_CHANNEL (every node hears them);
- on the embedded default, appended as one JSON line each to `<var dir>/trace/events.jsonl`,
  which the listening workers read from where they left off every TRACE_POLL_MS (like the
  journal's polling of push, without a database write per event). The file is renamed to
  `events.jsonl.1` past 4 MiB, replacing the previous one; a reader finishes the old file
  through the descriptor it holds, then opens the new one.

Nobody listening costs next to nothing: `emit` returns after a clock read and a compare. Once a
second at most, a process looks whether anyone listens: a flag each listening worker refreshes
every few seconds (a Redis key with a TTL, or the modification time of `<var dir>/trace/listening`),
so emitting starts within a second of a stream opening and stops some seconds after the last
one closes.

A leaf module, like telemetry.metrics: it imports nothing of ours, so every app counts into it.

Secrets never get here: callers pass names, addresses, routes and outcomes, never a password, a
token or a header; and a key whose name says it holds one is dropped, whatever the caller.
"""
from __future__ import annotations

import contextvars
import datetime
import ipaddress
import json
import logging
import os
import random
import threading
import time
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0      # seconds between two looks at the listening flag, per process
FLAG_TTL = 10          # a flag older than this means nobody listens any more
REFRESH_EVERY = 3      # how often a listening worker refreshes the flag
ROTATE_AT = 4 * 1024 * 1024
MAX_STRING = 512
# Key names that could hold a credential: dropped from every event (case-insensitive substrings).
SECRET_WORDS = ("password", "secret", "token", "authorization", "cookie", "apikey", "otp")
# String values of these keys are addresses (the IpAddr type of the reference's values).
IP_KEYS = frozenset({"remoteIp", "localIp", "ip"})
# Numbers under these keys are milliseconds (the reference's Duration).
DURATION_KEYS = frozenset({"elapsed"})

_span: contextvars.ContextVar[int | None] = contextvars.ContextVar("trace_span", default=None)
_next_check = 0.0
_listening = False
_local = threading.local()
_failing = False
_dir_ready = False


# --- where events go ----------------------------------------------------------------------------
def redis_mode() -> bool:
    return bool(settings.REDIS_URL)


def channel() -> str:
    return settings.TRACE_CHANNEL


def flag_key() -> str:
    return settings.TRACE_CHANNEL + ":listening"


def directory() -> Path:
    return Path(settings.VAR_DIR) / "trace"


def events_path() -> Path:
    return directory() / "events.jsonl"


def flag_path() -> Path:
    return directory() / "listening"


def ensure_directory() -> None:
    global _dir_ready
    if not _dir_ready:
        directory().mkdir(mode=0o700, parents=True, exist_ok=True)
        _dir_ready = True


def redis_client():
    client = getattr(_local, "client", None)
    if client is None:
        # why: redis is needed only when REDIS_URL is set; the embedded default never loads it.
        import redis

        client = _local.client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                                      socket_connect_timeout=2)
    return client


def _trouble(exc: Exception, what: str) -> None:
    global _failing
    if not _failing:
        log.warning("trace: could not %s (%s); live tracing misses events until it can", what,
                    exc.__class__.__name__)
    _failing = True
    _local.client = None


# --- is anyone listening? -------------------------------------------------------------------------
def _look() -> bool:
    try:
        if redis_mode():
            return bool(redis_client().exists(flag_key()))
        return flag_path().stat().st_mtime > time.time() - FLAG_TTL
    except FileNotFoundError:
        return False
    except Exception as exc:
        _trouble(exc, "read the listening flag")
        return False


def listening() -> bool:
    global _next_check, _listening
    now = time.monotonic()
    if now < _next_check:
        return _listening
    _next_check = now + CHECK_EVERY
    _listening = _look()
    return _listening


def refresh_flag() -> None:
    """Called by a listening worker every REFRESH_EVERY seconds (and when a stream opens)."""
    global _next_check, _listening
    try:
        if redis_mode():
            redis_client().set(flag_key(), b"1", ex=FLAG_TTL)
        else:
            ensure_directory()
            path = flag_path()
            path.touch(mode=0o600)
            os.utime(path)
    except Exception as exc:
        _trouble(exc, "set the listening flag")
        return
    # This process emits at once, without waiting for its next look.
    _listening, _next_check = True, time.monotonic() + CHECK_EVERY


# --- spans ------------------------------------------------------------------------------------------
def start_span():
    """A new span for what the current context does next (a request, a delivery), when anyone
    listens; the value to give end_span."""
    if not listening():
        return None
    # 48 bits: a JavaScript number holds it exactly.
    return _span.set(random.getrandbits(48) or 1)


def end_span(token) -> None:
    if token is not None:
        _span.reset(token)


# --- events -----------------------------------------------------------------------------------------
def _typed(key: str | None, value):
    if value is None:
        return ["Null", None]
    if isinstance(value, bool):
        return ["Boolean", value]
    if isinstance(value, int):
        if key in DURATION_KEYS:
            return ["Duration", value]
        return ["UnsignedInt" if value >= 0 else "Integer", value]
    if isinstance(value, float):
        if key in DURATION_KEYS:
            return ["Duration", round(value)]
        return ["Float", value]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ["IpAddr", str(value)]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return ["UTCDateTime", value.isoformat(timespec="seconds") + "Z"]
    if isinstance(value, (list, tuple)):
        return ["List", [_typed(None, item) for item in value[:32]]]
    text = str(value)[:MAX_STRING]
    return ["IpAddr" if key in IP_KEYS else "String", text]


def _secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def record(event: str, keys: dict) -> dict:
    """The event as it travels: {"e": type, "t": unix time, "k": [[key, @type, value], ...]}."""
    pairs = []
    span = _span.get()
    if span is not None:
        pairs.append(["spanId", "UnsignedInt", span])
    for key, value in keys.items():
        if not _secret(key):
            pairs.append([key, *_typed(key, value)])
    return {"e": event, "t": time.time(), "s": span, "k": pairs}


def emit(event: str, **keys) -> None:
    """Send one event to the live streams, if any (see the module's docstring)."""
    if not listening():
        return
    try:
        line = json.dumps(record(event, keys), separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return
    publish(line)


def publish(line: str) -> None:
    global _failing
    try:
        if redis_mode():
            redis_client().publish(channel(), line)
        else:
            _append((line + "\n").encode())
    except Exception as exc:  # tracing never fails what it watches
        _trouble(exc, "publish an event")
    else:
        _failing = False


def _append(data: bytes) -> None:
    """One write with O_APPEND: lines of several processes never interleave, and the file is
    reopened by its name each time, so a rotation is seen at the next event."""
    ensure_directory()
    path = events_path()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > ROTATE_AT:
        try:
            os.replace(path, path.with_name(path.name + ".1"))
        except OSError:
            pass


def decode(raw: bytes | str) -> dict | None:
    """An event read from the channel or the file, or None for anything malformed."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(data, dict) or not isinstance(data.get("e"), str) or not isinstance(data.get("k"), list)
            or not isinstance(data.get("t"), (int, float))):
        return None
    return data


# The keys events carry (docs/telemetry.md): a per-key filter of /api/live/tracing names one.
KEYS = ("spanId", "method", "url", "endpoint", "code", "remoteIp", "elapsed", "accountName", "accountId",
        "reason", "result", "name", "from", "to", "status", "details", "id", "domain", "sent",
        "temporary", "permanent", "size")
