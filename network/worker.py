"""The event-loop worker: gunicorn's own ASGI worker, with the limits a server facing the
internet needs and gunicorn's does not enforce.

gunicorn.conf.py names it as worker_class when SERVER_MODEL is `asgi` (the default). Each
connection costs a few kilobytes and no thread, so a client that dribbles its request holds
nothing anybody else needs; Django's ASGI handler reads the whole body before it runs the
(synchronous) views, so a slow body never reaches them either.

What is added to gunicorn's protocol (gunicorn.asgi.protocol.ASGIProtocol), and why:

- **Read timeout.** gunicorn bounds the wait for a kept-alive connection's next request, but not
  the first request's headers, nor a body that progresses one byte at a time (each wait for a
  chunk is bounded, the whole is not). Here the headers of a request must be complete within
  `read_timeout` of the connection (or of the previous response), the body may not pause for
  longer than `read_timeout`, and must be complete within `body_timeout`. Past that: 408 and
  the connection is closed.
- **Largest body.** A declared length over `max_body` gets 413 before any of it is read; a
  chunked body is cut when it passes the limit. Nothing is buffered past it. A POST to the JMAP
  upload URL, and a PUT into the WebDAV file store, have their own, larger limit (`max_upload`,
  above the 50 MB `maxSizeUpload` the session advertises by default and DAV_MAX_FILE_SIZE): an
  upload the server advertises is never cut here, and the session never advertises more than
  this limit (jmapapi.blob_methods.max_size_upload).
- **Connections per worker.** gunicorn's asgi worker counts connections but never refuses
  one; over `worker_connections` a new connection gets 503 and is closed at once.
- **WebSocket refusals with a body.** gunicorn refuses an upgrade the application does not
  accept with a bare 403; here the application may answer with any HTTP response (ASGI's
  websocket denial response), so a JMAP client is told 401 with the challenges, or 429, as on
  every other endpoint. And a message's unmasking is one XOR of two big integers instead of a
  Python loop over its bytes (a 10 MB message held the event loop for about a second).
- **WebSocket keep-alive.** gunicorn answers a client's pings but sends none, so a connection
  whose client vanished without closing it stayed open. Here the server pings every
  `WEBSOCKET_PING_INTERVAL` and drops a connection whose pong does not come back within
  `WEBSOCKET_PING_TIMEOUT` (close 1011, the application sees the disconnect).
- **TLS fails closed.** gunicorn serves plain HTTP on a TLS listener whose context it could
  not build; this worker stops instead.

The limits come from the environment (gunicorn.conf.py reads and checks them at start-up:
HTTP_READ_TIMEOUT, HTTP_BODY_TIMEOUT, HTTP_MAX_BODY, WORKER_CONNECTIONS, WEBSOCKET_PING_INTERVAL,
WEBSOCKET_PING_TIMEOUT).
"""
from __future__ import annotations

import asyncio
import json
import os

from http import HTTPStatus

from gunicorn import sock
from gunicorn.asgi import protocol as gunicorn_protocol
from gunicorn.asgi import websocket as gunicorn_websocket
from gunicorn.workers import gasgi

# gunicorn's event-loop protocol knows the reason phrases of 37 statuses and writes "Unknown" for
# the others, among them WebDAV's 207, 423 and 507 and HTTP's own 412 and 416. Every status
# Python knows gets its standard phrase; the ones gunicorn has stay as they are.
for _status in HTTPStatus:
    gunicorn_protocol._REASON_PHRASES.setdefault(_status.value, _status.phrase)


def limits() -> dict:
    """The limits, from the environment; gunicorn.conf.py calls this in the master so that a
    bad value stops the server at start-up rather than every worker at boot."""

    def number(name: str, default: float, minimum: float) -> float:
        raw = os.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SystemExit(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise SystemExit(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    return {
        "read_timeout": number("HTTP_READ_TIMEOUT", 15, 0.1),
        "body_timeout": number("HTTP_BODY_TIMEOUT", 120, 0.1),
        "max_body": int(number("HTTP_MAX_BODY", 16 * 1024 * 1024, 1)),
        "max_upload": int(number("HTTP_MAX_UPLOAD_BODY", DEFAULT_MAX_UPLOAD_BODY, 1)),
        # A WebSocket's keep-alive (WebSocket.keepalive, below): 0 sends no pings.
        "ping_interval": number("WEBSOCKET_PING_INTERVAL", 30, 0),
        "ping_timeout": number("WEBSOCKET_PING_TIMEOUT", 20, 0.1),
    }


# Above the reference's default maxSizeUpload (50,000,000 bytes); stalwart_site.settings reads the
# same variable with the same default for the session document.
DEFAULT_MAX_UPLOAD_BODY = 64 * 1024 * 1024
UPLOAD_PATH = "/jmap/upload/"
# A file PUT into the WebDAV file store is an upload too (DAV_MAX_FILE_SIZE, 25 MiB by default, is
# above HTTP_MAX_BODY); the dav view enforces its own, smaller limit on what it reads.
DAV_FILE_PATH = "/dav/file/"


def _body_limit(limits: dict, request) -> int:
    path = request.path or ""
    if (request.method == "POST" and path.startswith(UPLOAD_PATH)) or (
            request.method == "PUT" and path.startswith(DAV_FILE_PATH)):
        return max(limits["max_upload"], limits["max_body"])
    return limits["max_body"]


def _problem(status: int, title: str, detail: str) -> bytes:
    body = json.dumps({"type": "about:blank", "status": status, "title": title, "detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {title}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
    return head + body


class Protocol(gunicorn_protocol.ASGIProtocol):
    def __init__(self, worker):
        super().__init__(worker)
        self._limits = worker.limits
        self._deadline = None  # the pending read-timeout call, if any
        self._body_deadline = None
        self._body_seen = 0
        self._body_limit = self._limits["max_body"]
        self._refused = False

    # -- connection ---------------------------------------------------------------------------
    def connection_made(self, transport):
        super().connection_made(transport)
        if self.worker.nr_conns > self.worker.worker_connections:
            self._refuse(503, "Service Unavailable", "Too many connections; try again shortly.")
            return
        self._arm(self._limits["read_timeout"])

    def connection_lost(self, exc):
        self._disarm()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super().connection_lost(exc)

    # -- parser callbacks ---------------------------------------------------------------------
    def _on_headers_complete(self):
        result = super()._on_headers_complete()
        request = self._current_request
        self._body_seen = 0
        self._body_limit = _body_limit(self._limits, request) if request is not None else self._limits["max_body"]
        if request is not None and (request.content_length or 0) > self._body_limit:
            self._refuse(413, "Content Too Large", f"The request body is larger than {self._body_limit} bytes.")
            return result
        if request is not None and (request.content_length or request.chunked):
            # The body's pace is watched from here; the total is bounded separately.
            self._arm(self._limits["read_timeout"])
            self._body_deadline = self.worker.loop.call_later(self._limits["body_timeout"], self._timed_out)
        else:
            self._disarm()
        return result

    def _on_body(self, chunk):
        if self._refused:
            return
        self._body_seen += len(chunk)
        if self._body_seen > self._body_limit:
            self._refuse(413, "Content Too Large", f"The request body is larger than {self._body_limit} bytes.")
            return
        self._arm(self._limits["read_timeout"])
        super()._on_body(chunk)

    def _on_message_complete(self):
        self._disarm()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        super()._on_message_complete()

    def _arm_keepalive_timer(self):
        # Waiting for the next request on a kept-alive connection: gunicorn's keep-alive timer
        # bounds the wait for its headers, so ours stands down until they arrive.
        self._disarm()
        super()._arm_keepalive_timer()

    # -- timers and refusals ------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.worker.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self):
        self._refuse(408, "Request Timeout", "The request was not received in time.")

    def _refuse(self, status: int, title: str, detail: str) -> None:
        """Answer with a problem+json and close: the request is never handed to the application
        (or, for a body, the application sees the client disconnect)."""
        if self._refused or self._closed:
            return
        self._refused = True
        self._disarm()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        self._safe_write(_problem(status, title, detail))
        self._close_transport()
        if self._body_receiver is not None:
            self._body_receiver.signal_disconnect()
        if self._request_ready is not None:
            # Wakes the connection's loop, which then sees the connection closed and ends.
            self._current_request = None
            self._request_ready.set()


class WebSocket(gunicorn_websocket.WebSocketProtocol):
    # Seconds between pings and for a pong to come back; set from the limits when the worker
    # starts (Worker.init_process). An interval of 0 sends no pings.
    ping_interval: float = 0.0
    ping_timeout: float = 20.0

    def __init__(self, transport, scope, app, log, **kwargs):
        scope.setdefault("extensions", {})["websocket.http.response"] = {}
        super().__init__(transport, scope, app, log, **kwargs)
        self._denial: tuple[int, list, list] | None = None
        self._pong = asyncio.Event()
        self._keepalive_task: asyncio.Task | None = None
        self._chunks = 0  # pieces of data received: a client still sending is alive

    # -- keep-alive ---------------------------------------------------------------------------
    # gunicorn answers the client's pings but sends none: a client whose network path died (a
    # laptop suspended, a NAT entry dropped) would hold its connection, its push subscription and
    # its account's WebSocket slot until the worker restarts. A ping goes out every
    # `ping_interval`; a connection that has not answered, nor sent anything, within
    # `ping_timeout` is dropped (close 1011, and the socket closed without waiting for the
    # closing handshake, which a dead peer would never finish), and the application sees it
    # disconnect.
    async def _send_accept(self, message):
        await super()._send_accept(message)
        if self.ping_interval > 0:
            self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive())

    async def run(self):
        try:
            await super().run()
        finally:
            if self._keepalive_task is not None:
                self._keepalive_task.cancel()
                self._keepalive_task = None

    def feed_data(self, data):
        self._chunks += 1
        super().feed_data(data)

    async def _read_frame(self):
        frame = await super()._read_frame()
        if frame is not None and frame[0] == gunicorn_websocket.OPCODE_PONG:
            self._pong.set()  # any pong will do (RFC 6455 §5.5.3 allows unsolicited ones)
        return frame

    def _ended(self) -> bool:
        return self.closed or self._close_sent

    async def _keepalive(self) -> None:
        try:
            while not self._ended():
                await asyncio.sleep(self.ping_interval)
                if self._ended():
                    return
                self._pong.clear()
                chunks = self._chunks
                await self._send_frame(gunicorn_websocket.OPCODE_PING, b"stalwart")
                try:
                    await asyncio.wait_for(self._pong.wait(), self.ping_timeout)
                except TimeoutError:
                    if self._ended():
                        return
                    if self._chunks != chunks:
                        # Its pong may be queued behind a large message still arriving.
                        continue
                    self.log.info("WebSocket: no pong within %g s; the connection is dropped", self.ping_timeout)
                    await self._send_close(gunicorn_websocket.CLOSE_INTERNAL_ERROR, "No pong in time.")
                    self.closed = True
                    self._close_event.set()
                    # Sent if the socket still takes it, then closed; aborted if even that hangs.
                    self.transport.close()
                    asyncio.get_running_loop().call_later(self.ping_timeout, self.transport.abort)
                    return
        except (OSError, RuntimeError):  # the connection went away while a frame was written
            return

    async def _send(self, message):
        kind = message["type"]
        if kind == "websocket.http.response.start":
            if self.accepted or self._denied or self._denial is not None:
                raise RuntimeError("The WebSocket was already answered")
            self._denial = (int(message["status"]), list(message.get("headers") or []), [])
            return
        if kind == "websocket.http.response.body":
            if self._denial is None or self._denied:
                raise RuntimeError("websocket.http.response.body before its start")
            self._denial[2].append(bytes(message.get("body", b"")))
            if not message.get("more_body"):
                self._write_denial(*self._denial)
            return
        await super()._send(message)

    def _write_denial(self, status: int, headers: list, chunks: list) -> None:
        self._denied = True
        self.closed = True
        self._close_event.set()
        body = b"".join(chunks)
        headers = [(name.decode("latin-1") if isinstance(name, bytes) else name,
                    value.decode("latin-1") if isinstance(value, bytes) else value) for name, value in headers
                   if (name.decode("latin-1") if isinstance(name, bytes) else name).lower()
                   not in ("content-length", "connection", "transfer-encoding")]
        gunicorn_protocol._validate_response_headers(headers)
        phrase = gunicorn_protocol._REASON_PHRASES.get(status, "Unknown")
        head = f"HTTP/1.1 {status} {phrase}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers)
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        try:
            self.transport.write(head.encode("latin-1") + body)
            self.transport.close()
        except (OSError, RuntimeError):
            pass

    def _unmask(self, payload, masking_key):
        length = len(payload)
        if not length:
            return payload
        mask = (masking_key * (length // 4 + 1))[:length]
        return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")


class Worker(gasgi.ASGIWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits()

    def init_process(self):
        # gunicorn's worker builds its protocol by the module-level name; this process only
        # ever runs this worker class, so the name is pointed at ours before serving starts.
        gasgi.ASGIProtocol = Protocol
        # Read where gunicorn's protocol opens a WebSocket, at each upgrade.
        gunicorn_websocket.WebSocketProtocol = WebSocket
        WebSocket.ping_interval = self.limits["ping_interval"]
        WebSocket.ping_timeout = self.limits["ping_timeout"]
        super().init_process()

    async def _shutdown(self):
        # why: this module is imported by gunicorn.conf.py in the master, before Django is set
        # up; the push hub (Django models) is only there once a worker serves.
        from jmapapi import push, websocket

        # Held EventSource streams and WebSockets would keep the worker for the whole graceful
        # timeout: they end now (a WebSocket with 1001, going away), and their clients reconnect
        # elsewhere.
        push.hub.end_all()
        websocket.end_all()
        await super()._shutdown()

    def _get_ssl_context(self):
        if not self.cfg.is_ssl:
            return None

        # No fallback: a TLS listener that cannot build its context must not serve in clear.
        return sock.ssl_context(self.cfg)
