"""JMAP over WebSocket (RFC 8887): one connection, its messages, its push.

The upgrade request (`GET /jmap/ws`, subprotocol `jmap`) goes through the HTTP service's whole
chain first, as an ordinary GET (stalwart_site.asgi hands it over): the edge (block list, access
rule, forwarded addresses), then the view (jmapapi.push_views.websocket), which authenticates
the caller (Basic, Bearer, or a `token=` from /api/token/websocket) and answers with the
`Caller` to serve. Any other answer (401, 403, 429…) is sent back as the HTTP response to the
upgrade, and no WebSocket is opened.

Each text message is one of RFC 8887's:

- `Request`: run by the same engine, with the same limits, as a POST to the API URL, in the
  worker's one synchronous thread (where every view runs); the credentials are verified again
  for each one (a cached verdict, as for every HTTP request), so a revoked password or key
  ends the connection (close 1008) at its next request;
- `WebSocketPushEnable` / `WebSocketPushDisable`: the connection's subscription on the worker's
  push hub (jmapapi.push), the one EventSource streams use, with the same throttle.

Whatever goes wrong with a message is answered with a `RequestError` (RFC 8887 §4.3.4), and the
connection stays usable. A connection with no push subscription that sends nothing for
WEBSOCKET_IDLE_TIMEOUT seconds is closed; the worker pings every connection and drops one whose
client no longer answers (network.worker.WebSocket).
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import json
import logging
import time
import zlib
from dataclasses import dataclass, field

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core import signals, signing

from accounts import login
from accounts import permissions as catalogue
from accounts.authz import account_permissions
from accounts.http_auth import Principal, authenticate_header, charge
from accounts.models import Account
from journal import services as journal
from registry import context, ids
from registry import services as registry_services
from stalwart_site import untrusted

from . import engine, inflight, push
from .models import Jmap

log = logging.getLogger(__name__)

PATHS = ("/jmap/ws", "/jmap/ws/")
# The scope key the ASGI handler marks the upgrade request with (a client cannot set it).
HANDSHAKE = "stalwart.websocket"
SUBPROTOCOL = "jmap"
CAPABILITY = "urn:ietf:params:jmap:websocket"
TOKEN_SALT = "stalwart.jmap.websocket-token"
TOKEN_KIND = "websocket"
# Close codes (RFC 6455 §7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
POLICY_VIOLATION = 1008

NOT_JSON = "urn:ietf:params:jmap:error:notJSON"
NOT_REQUEST = "urn:ietf:params:jmap:error:notRequest"
LIMIT = "urn:ietf:params:jmap:error:limit"

# The open connections of this worker: told to close when it stops (network.worker).
connections: set[Connection] = set()


class TokenError(Exception):
    pass


def served() -> bool:
    """Whether this server opens WebSockets: the `asgi` serving model does, `sync` (WSGI) has no
    upgrade at all, so its session must not send clients there."""
    return settings.SERVER_MODEL == "asgi"


# --- who is calling ------------------------------------------------------------------------------
def _catalogue_digest(names: list[str]) -> int:
    return zlib.crc32("\n".join(names).encode())


def mint_token(principal) -> str:
    """A token that opens one WebSocket for EVENTSOURCE_TOKEN_TTL seconds, with at most the
    permissions of the credential that asked for it: they travel as a bitmap over the sorted
    permission catalogue (and its digest, so that a token minted before the catalogue changed is
    refused rather than read against another list)."""
    if principal.recovery:
        raise TokenError("The recovery administrator cannot have a WebSocket token.")
    names = sorted(catalogue.all_permissions())
    bits = 0
    for index, name in enumerate(names):
        if name in principal.permissions:
            bits |= 1 << index
    packed = base64.urlsafe_b64encode(bits.to_bytes((len(names) + 7) // 8, "little")).decode().rstrip("=")
    return signing.dumps({"k": TOKEN_KIND, "a": principal.account_id, "c": _catalogue_digest(names), "p": packed},
                         salt=TOKEN_SALT, compress=True)


def token_grant(token: str) -> tuple[int, frozenset[str]]:
    """(account id, permissions granted) of a valid token; TokenError otherwise."""
    if len(token) > 2048:
        raise TokenError("The token is not valid.")
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.EVENTSOURCE_TOKEN_TTL)
    except signing.SignatureExpired:
        raise TokenError("The token has expired; ask /api/token/websocket for a new one.") from None
    except (signing.BadSignature, ValueError):
        raise TokenError("The token is not valid.") from None
    names = sorted(catalogue.all_permissions())
    if (not isinstance(data, dict) or data.get("k") != TOKEN_KIND or not isinstance(data.get("a"), int)
            or data.get("c") != _catalogue_digest(names) or not isinstance(data.get("p"), str)):
        raise TokenError("The token is not valid.")
    try:
        raw = base64.urlsafe_b64decode(data["p"] + "=" * (-len(data["p"]) % 4))
    except ValueError:
        raise TokenError("The token is not valid.") from None
    bits = int.from_bytes(raw, "little")
    return data["a"], frozenset(name for index, name in enumerate(names) if bits >> index & 1)


@dataclass
class Caller:
    """How a connection's caller is verified again for each request: its Authorization header
    (kept in memory only, never logged), or the grant of the token it opened with."""

    account_id: int
    remote_ip: str | None
    header: str | None = field(default=None, repr=False)
    granted: frozenset[str] = field(default_factory=frozenset, repr=False)
    # The connection slot (WEBSOCKET_MAX_PER_ACCOUNT) to give back at the end.
    slot: bool = False
    # The HTTP service's limit for authenticated requests when the connection opened (the edge
    # put it in the upgrade request's context): each request is charged against it.
    account_limit: tuple[int, float] | None = None
    # maxSizeRequest as last read: a larger message is refused before it is parsed (the request
    # itself checks the current value again).
    max_size: int = 10_000_000

    def verify(self) -> Principal:
        """The caller's principal now, charged to its account's request limit; login.AuthError
        when its credentials no longer hold. Runs inside a request context."""
        if self.header is not None:
            principal = authenticate_header(self.header, self.remote_ip)
            if principal.account_id != self.account_id:
                raise login.AuthFailed("The credentials now name another account.")
            return principal
        account = Account.objects.select_related("domain").filter(pk=self.account_id, is_active=True).first()
        if account is None:
            raise login.AuthFailed("The account cannot log in.")
        permissions = account_permissions(account) & self.granted
        if "authenticate" not in permissions:
            raise login.Unauthorized("This account may not log in.")
        principal = Principal(account_id=account.pk, name=account.email_address, permissions=frozenset(permissions),
                              credential_kind="websocket-token", tenant_id=account.tenant_id,
                              extra={"account": account})
        charge(principal, self.remote_ip, context.current())
        return principal


# --- push state ---------------------------------------------------------------------------------
def encode_push_state(known: dict[str, int]) -> str:
    """The states a connection's client was told, as one short opaque string (RFC 8887 §4.3.5):
    `<type index>:<counter>` pairs."""
    return ".".join(f"{push.DATA_TYPES.index(name)}:{value}" for name, value in sorted(
        known.items(), key=lambda item: push.DATA_TYPES.index(item[0])))


def decode_push_state(value) -> dict[str, int] | None:
    if not isinstance(value, str) or len(value) > 1024:
        return None
    out = {}
    for pair in filter(None, value.split(".")):
        index, _, counter = pair.partition(":")
        if not (index.isascii() and index.isdigit() and counter.isascii() and counter.isdigit()
                and len(counter) <= 19 and int(index) < len(push.DATA_TYPES)):
            return None
        out[push.DATA_TYPES[int(index)]] = int(counter)
    return out


# --- one connection -------------------------------------------------------------------------------
class MessageError(Exception):
    """A message answered with a RequestError (RFC 8887 §4.3.4)."""

    def __init__(self, type: str, detail: str, status: int = 400, **extra):
        super().__init__(detail)
        self.type, self.detail, self.status, self.extra = type, detail, status, extra


class CallerGone(Exception):
    """The caller's credentials no longer hold: the connection is closed."""


def _offload(fn, *args):
    """Run synchronous work in the worker's one thread for it (where every view runs), as the
    HTTP requests are (stalwart_site.asgi)."""
    return asyncio.get_running_loop().run_in_executor(
        SyncToAsync.single_thread_executor, contextvars.copy_context().run, fn, *args)


class Connection:
    def __init__(self, scope, receive, send, caller: Caller):
        self.scope, self.receive, self._send, self.caller = scope, receive, send, caller
        self.account_key = ids.encode(caller.account_id)
        self.sub: push.Subscriber | None = None
        self._pusher: asyncio.Task | None = None
        self.closing = False

    # -- sending ---------------------------------------------------------------------------------
    async def send(self, message: dict) -> None:
        if self.closing:
            return
        await self._send({"type": "websocket.send", "text": json.dumps(message, separators=(",", ":"))})

    async def close(self, code: int, reason: str = "") -> None:
        if self.closing:
            return
        self.closing = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    def going_away(self) -> None:
        """The worker is stopping: the client is told to reconnect (elsewhere)."""
        asyncio.get_running_loop().create_task(self._close_quietly(GOING_AWAY, "The server is restarting."))

    async def _close_quietly(self, code: int, reason: str) -> None:
        try:
            await self.close(code, reason)
        except (OSError, RuntimeError):  # already gone
            pass

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        # A connection that neither asks anything nor listens for pushes holds a slot of its
        # account's WEBSOCKET_MAX_PER_ACCOUNT and a socket of the worker for nothing: after
        # WEBSOCKET_IDLE_TIMEOUT seconds of that, it is closed (1000). The keep-alive pings of the
        # worker (network.worker) do not count: they show the client is there, not that it uses
        # the connection.
        idle = max(settings.WEBSOCKET_IDLE_TIMEOUT, 0) or None
        while not self.closing:
            try:
                message = await asyncio.wait_for(self.receive(), idle if self.sub is None else None)
            except TimeoutError:
                await self.close(NORMAL, f"Idle for {idle} s: no request and no push subscription.")
                return
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive":
                continue
            try:
                await self.handle(message)
            except CallerGone as exc:
                await self.close(POLICY_VIOLATION, str(exc))
                return

    async def handle(self, message: dict) -> None:
        request_id = None
        try:
            text = message.get("text")
            if text is None:
                raise MessageError(NOT_JSON, "JMAP messages are sent in text frames, not binary ones.")
            size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
            if size > self.caller.max_size:
                raise too_large(self.caller.max_size)
            # A large message is parsed in the worker's thread, not on the loop every connection shares.
            body = parse(text) if size < 65536 else await _offload(parse, text)
            if not isinstance(body, dict):
                raise MessageError(NOT_REQUEST, "A message must be a JSON object.")
            if "id" in body and isinstance(body["id"], str):
                request_id = body["id"]
            kind = body.get("@type")
            if kind == "Request":
                if "id" in body and not isinstance(body["id"], str):
                    raise MessageError(NOT_REQUEST, '"id" must be a string.')
                await self.request(body, request_id, size, untrusted.may_hold_nul(text))
            elif kind == "WebSocketPushEnable":
                await self.push_enable(body)
            elif kind == "WebSocketPushDisable":
                self._unsubscribe()
            else:
                raise MessageError(NOT_REQUEST, '"@type" must be Request, WebSocketPushEnable or '
                                                'WebSocketPushDisable.')
        except MessageError as exc:
            error = {"@type": "RequestError", "type": exc.type, "status": exc.status, "detail": exc.detail,
                     **exc.extra}
            if request_id is not None:
                error["requestId"] = request_id
            await self.send(error)
        except (CallerGone, OSError, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - a bug costs one message, not the connection
            log.exception("JMAP WebSocket message failed")
            error = {"@type": "RequestError", "type": "about:blank", "status": 500, "title": "Internal Server Error",
                     "detail": "The server failed to process this message."}
            if request_id is not None:
                error["requestId"] = request_id
            await self.send(error)

    async def request(self, body: dict, request_id: str | None, size: int, may_hold_nul: bool) -> None:
        envelope = {key: value for key, value in body.items() if key not in ("@type", "id")}
        result = await _offload(_execute, self.scope, self.caller, envelope, size, may_hold_nul)
        response = {"@type": "Response", **result}
        if request_id is not None:
            response["requestId"] = request_id
        await self.send(response)

    async def push_enable(self, body: dict) -> None:
        types = body.get("dataTypes")
        if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
            raise MessageError(NOT_REQUEST, '"dataTypes" must be null or an array of type names.')
        unknown = [name for name in types or () if name not in push.DATA_TYPES]
        if unknown:
            raise MessageError(NOT_REQUEST, f"Unknown data type {unknown[0][:100]!r} in dataTypes.")
        since = None
        if body.get("pushState") is not None:
            since = decode_push_state(body["pushState"])
            if since is None:
                raise MessageError(NOT_REQUEST, '"pushState" is not a pushState this server gave out.')
        readable, current = await _offload(_push_start, self.scope, self.caller, types or None)
        self._unsubscribe()
        # RFC 8887 §4.3.5: with a pushState, every change since it is pushed at once; without
        # one, only changes from now on.
        known = current if since is None else {name: since.get(name, current[name]) for name in readable}
        sub = push.Subscriber(self.caller.account_id, readable, known)
        self.sub = sub
        push.hub.add(sub)
        if since is not None:
            sub.offer(current)
        self._pusher = asyncio.get_running_loop().create_task(self._push(sub))

    async def _push(self, sub: push.Subscriber) -> None:
        throttle = max(settings.EVENTSOURCE_THROTTLE_MS, 0) / 1000
        last_sent = 0.0
        try:
            while not self.closing:
                if not sub.pending:
                    await sub.wake.wait()
                if sub.ending:
                    await self._close_quietly(GOING_AWAY, "The server is restarting.")
                    return
                wait = last_sent + throttle - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                changed = sub.take()
                if not changed:
                    continue
                await self.send({"@type": "StateChange", "changed": {self.account_key: changed},
                                 "pushState": encode_push_state(sub.known)})
                last_sent = time.monotonic()
        except (OSError, RuntimeError):  # the client went away while a push was written
            return

    def _unsubscribe(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None
        if self.sub is not None:
            push.hub.remove(self.sub)
            self.sub = None


def too_large(limit: int) -> MessageError:
    return MessageError(LIMIT, f"The message is larger than the server accepts ({limit} bytes).",
                        limit="maxSizeRequest")


def parse(text: str):
    try:
        return untrusted.loads(text, max_depth=engine.MAX_NESTING, allow_nul=True)
    except untrusted.UntrustedJSONError as exc:
        raise MessageError(NOT_JSON, f"The message is not I-JSON: {exc}") from None


# --- the synchronous part (in the worker's thread) ---------------------------------------------

class _Request:
    """What Django's request_started/request_finished receivers are told: the same bracket as an
    HTTP request gets, so the thread's database connection is looked after the same way
    (closed when it is broken or older than CONN_MAX_AGE)."""

    def __init__(self, scope):
        self.scope = scope

    def __enter__(self):
        signals.request_started.send(sender=Connection, scope=self.scope)
        try:
            self._ctx, self._token = context.begin()
        except BaseException:
            signals.request_finished.send(sender=Connection)
            raise
        return self._ctx

    def __exit__(self, *exc):
        context.end(self._token)
        signals.request_finished.send(sender=Connection)
        return False


def _principal(ctx, caller: Caller) -> Principal:
    ctx.account_limit = caller.account_limit
    try:
        return caller.verify()
    except login.RateLimited:
        raise MessageError("about:blank", "You have made too many requests; try again in a few seconds.",
                           status=429, title="Too Many Requests") from None
    except login.DirectoryDown as exc:
        raise MessageError("about:blank", str(exc), status=503, title="Service Unavailable") from None
    except login.AuthError as exc:
        raise CallerGone(str(exc) or "Authentication failed.") from None


def _execute(scope, caller: Caller, envelope: dict, size: int, may_hold_nul: bool) -> dict:
    with _Request(scope) as ctx:
        principal = _principal(ctx, caller)
        limits = registry_services.current(Jmap)
        caller.max_size = limits.max_request_size
        if size > limits.max_request_size:
            raise too_large(limits.max_request_size)
        try:
            request = engine.check(envelope, limits, may_hold_nul)
        except engine.RequestError as exc:
            raise MessageError(exc.type, exc.detail, exc.status, **exc.extra) from None
        limit = limits.max_concurrent_requests
        if limit is not None and principal.has("unlimitedRequests"):
            limit = None
        slot = inflight.acquire("inflight", principal.account_id, limit)
        if slot is False:
            raise MessageError(LIMIT, "Too many concurrent requests.", limit="maxConcurrentRequests")
        try:
            return engine.run(request, principal, limits)
        except engine.RequestError as exc:
            raise MessageError(exc.type, exc.detail, exc.status, **exc.extra) from None
        finally:
            if slot:
                inflight.release("inflight", principal.account_id)


def _push_start(scope, caller: Caller, types: list[str] | None) -> tuple[list[str], dict[str, int]]:
    with _Request(scope) as ctx:
        principal = _principal(ctx, caller)
        readable = [name for name in push.readable_types(principal.permissions) if types is None or name in types]
        return readable, {name: int(value) for name, value in journal.states(caller.account_id, readable).items()}


# --- the ASGI side ------------------------------------------------------------------------------
async def serve(scope, receive, send, handshake) -> None:
    """One WebSocket connection. `handshake(scope)` runs the upgrade request through the HTTP
    chain and returns Django's response."""
    await receive()  # websocket.connect
    if scope.get("path") not in PATHS:
        await _refuse(scope, send, 404, "The requested resource does not exist on this server.", "Not Found")
        return
    if SUBPROTOCOL not in scope.get("subprotocols", ()):
        await _refuse(scope, send, 400, "The WebSocket subprotocol must be jmap (Sec-WebSocket-Protocol: jmap).",
                      "Invalid parameters")
        return
    response = await handshake(scope)
    caller = getattr(response, "jmap_websocket", None)
    if caller is None or response.status_code != 200:
        await _deny(scope, send, response.status_code, list(response.items()), response.content)
        return
    connection = Connection(scope, receive, send, caller)
    connections.add(connection)
    try:
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        await connection.run()
    except OSError:
        pass  # the client left while something was written to it
    except Exception:
        log.exception("JMAP WebSocket connection failed")
        await connection._close_quietly(1011, "Internal error.")
    finally:
        connections.discard(connection)
        connection._unsubscribe()
        if caller.slot:
            caller.slot = False
            await _offload(inflight.release, TOKEN_KIND, caller.account_id)


async def _refuse(scope, send, status: int, detail: str, title: str) -> None:
    body = json.dumps({"type": "about:blank", "status": status, "title": title, "detail": detail}).encode()
    await _deny(scope, send, status, [("Content-Type", "application/problem+json")], body)


async def _deny(scope, send, status: int, headers: list, body: bytes) -> None:
    """Refuse the upgrade with this HTTP response (the ASGI denial response, which the worker
    supports: network.worker); a server without it answers 403."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    await send({"type": "websocket.http.response.start", "status": status,
                "headers": [(str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in headers]})
    await send({"type": "websocket.http.response.body", "body": body})


def end_all() -> None:
    for connection in tuple(connections):
        connection.going_away()
