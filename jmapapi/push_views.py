"""The EventSource endpoint (RFC 8620 §7.3) and the token a browser opens it with.

`GET /jmap/eventsource/?types=…&closeafter=…&ping=…` authenticates as every endpoint does
(Basic, Bearer), or with `token=`: what `/api/token/eventsource` hands an authenticated caller.
A browser's EventSource cannot send an Authorization header, so a page asks for a token with
its credentials and opens the stream with it. The token is signed (Django's signing, with the
server's SECRET_KEY and a salt of its own purpose), bound to one account and to the types its
credential could read, usable for EVENTSOURCE_TOKEN_TTL seconds (60) to open streams, and good
for nothing else; nothing is stored. The access log never prints query strings
(gunicorn.conf.py), so the token is not logged.

The view itself is synchronous (checks, the states the stream starts from: one query); the
stream it returns runs on the worker's event loop (jmapapi.push) and holds no thread and no
database connection while it waits.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from accounts import login
from journal import services as journal
from network import endpoint, live_token
from registry import context, ids
from registry import services as registry_services
from stalwart_site.problem import problem

from . import inflight, push
from . import websocket as ws
from .models import Jmap

EVENTSOURCE = live_token.KINDS["eventsource"]
TOKEN_SALT = EVENTSOURCE.salt
INVALID = "Invalid parameters"
TokenError = live_token.TokenError


def _claims(kind: live_token.Kind, permissions) -> dict:
    """What a token of `kind` carries besides its account: an eventsource token, the types the
    credential that minted it could read."""
    if kind is EVENTSOURCE:
        return {"t": [push.DATA_TYPES.index(name) for name in push.readable_types(permissions)]}
    return {}


def mint_token(principal) -> str:
    return live_token.mint(EVENTSOURCE, principal.account_id, _claims(EVENTSOURCE, principal.permissions))


def _readable(permissions, claims: dict) -> list[str]:
    """The types an eventsource token lets its stream hear: those the credential that minted it
    could read (its claims), and the account can still read."""
    raw = claims.get("t", [])
    minted = {push.DATA_TYPES[i] for i in (raw if isinstance(raw, list) else [])
              if isinstance(i, int) and 0 <= i < len(push.DATA_TYPES)}
    return [name for name in push.readable_types(permissions) if name in minted]


def token_caller(token: str) -> tuple[int, list[str]]:
    """(account id, readable types) of a valid eventsource token; TokenError otherwise."""
    caller = live_token.verify(EVENTSOURCE.name, token)
    return caller.account.pk, _readable(caller.permissions, caller.claims)


def _unauthorized(detail: str) -> HttpResponse:
    response = problem(401, detail)
    response.headers["WWW-Authenticate"] = endpoint.CHALLENGES
    return response


def _parameters(query) -> tuple[list[str] | None, bool, int] | HttpResponse:
    raw_types = query.get("types", "*")
    if raw_types.strip() == "*":
        types = None
    else:
        types = [name.strip() for name in raw_types.split(",")]
        unknown = [name for name in types if name not in push.DATA_TYPES]
        if not types or unknown:
            shown = ", ".join(repr(name) for name in unknown[:5]) or "''"
            return problem(400, f"Unknown data type {shown} in types: a comma-separated list of "
                                f"{', '.join(push.DATA_TYPES)}, or *.", title=INVALID)
    close_after = query.get("closeafter", "no")
    if close_after not in ("state", "no"):
        return problem(400, "closeafter must be state or no.", title=INVALID)
    raw_ping = query.get("ping", "0") or "0"
    maximum = settings.EVENTSOURCE_MAX_PING
    if not raw_ping.isascii() or not raw_ping.isdigit() or len(raw_ping) > 9 or int(raw_ping) > maximum:
        return problem(400, f"ping must be a number of seconds from 0 (no pings) to {maximum}.", title=INVALID)
    ping = int(raw_ping)
    if ping:
        ping = max(ping, settings.EVENTSOURCE_MIN_PING)
    return types, close_after == "state", ping


@endpoint.endpoint("GET", options="bare", refusal="The EventSource endpoint takes GET requests.")
def eventsource(request):
    caller = live_token.stream_caller(request, EVENTSOURCE.name)
    if isinstance(caller, HttpResponse):
        return caller
    account_id = caller.account_id
    if caller.by_token:
        readable = _readable(caller.permissions, caller.claims)
    else:
        readable = push.readable_types(caller.permissions)

    parsed = _parameters(request.GET)
    if isinstance(parsed, HttpResponse):
        return parsed
    types, close_after_state, ping = parsed
    wanted = [name for name in readable if types is None or name in types]

    limit = settings.EVENTSOURCE_MAX_PER_ACCOUNT or None
    slot = inflight.acquire("eventsource", account_id, limit)
    if slot is False:
        return problem(429, f"This account already has {limit} EventSource connections open.",
                       title="Too Many Requests", headers={"Retry-After": "30"})

    try:
        known = {name: int(value) for name, value in journal.states(account_id, wanted).items()}
    except BaseException:
        if slot:
            inflight.release("eventsource", account_id)
        raise
    sub = push.Subscriber(account_id, wanted, known)
    body = push.stream(sub, ids.encode(account_id), ping=ping, close_after_state=close_after_state)
    return inflight.SlotStream(body, "eventsource", account_id, slot)


@endpoint.endpoint("GET", options="bare", refusal="The JMAP WebSocket endpoint takes GET requests (an upgrade).")
def websocket(request):
    """The upgrade request of a JMAP WebSocket (RFC 8887), which the ASGI handler runs through the
    HTTP chain before it opens the connection (jmapapi.websocket): the answer names the caller
    to serve (`jmap_websocket`), or is sent back as the refusal. Without an upgrade (a plain GET,
    or the sync serving model, which has no WebSocket), 400."""
    if not (getattr(request, "scope", None) or {}).get(ws.HANDSHAKE):
        return problem(400, "This is the JMAP WebSocket endpoint: open it with a WebSocket upgrade and the "
                            "subprotocol jmap.", title=INVALID)
    token = request.GET.get("token")
    header = request.META.get("HTTP_AUTHORIZATION")
    remote_ip = endpoint.client_ip(request)
    if token is not None:
        try:
            account_id, granted = ws.token_grant(token)
        except ws.TokenError as exc:
            return _unauthorized(str(exc))
        if header:
            principal, error = endpoint.authenticate(request)
            if error is not None:
                return error
            if principal.account_id != account_id:
                return problem(403, "The token belongs to another account than the credentials sent with it.")
        caller = ws.Caller(account_id, remote_ip, granted=granted)
        try:
            caller.verify()
        except login.AuthError as exc:
            return endpoint.auth_problem(exc)
    else:
        principal, error = endpoint.authenticate(request)
        if error is not None:
            return error
        caller = ws.Caller(principal.account_id, remote_ip, header=header)
    caller.max_size = jmap_limits().max_request_size
    edge = context.current()
    caller.account_limit = edge.account_limit if edge is not None else None

    limit = settings.WEBSOCKET_MAX_PER_ACCOUNT or None
    slot = inflight.acquire(ws.TOKEN_KIND, caller.account_id, limit)
    if slot is False:
        return problem(429, f"This account already has {limit} WebSocket connections open.",
                       title="Too Many Requests", headers={"Retry-After": "30"})
    caller.slot = bool(slot)
    response = HttpResponse(status=200)
    response.jmap_websocket = caller
    return response


def jmap_limits():
    return registry_services.current(Jmap)


def _session_caller(request):
    """(account id, permissions) of the browser session whose cookie came with a POST that
    carries the page's CSRF token; the problem to answer otherwise.

    The machine endpoints run without the session middleware (network.middleware.pages_only), so
    the session is read here as a page would read it, with the same checks (the session
    credential's scope, revoked app passwords, an expired password). A token is a credential:
    only a same-origin page may have one minted with its cookie. A cross-site page can make a
    browser send the cookie (a form POST; SameSite=Lax keeps it off cross-site subrequests in
    current browsers, not in every one), but it cannot read the CSRF token, and the check
    below refuses a POST without it or from a foreign Origin. A GET is never enough with a
    cookie, although reading its answer cross-origin would need CORS with credentials, which
    /api never grants: the token must not depend on that staying true."""
    # why: only this path reads a session on a machine endpoint; the others never load it.
    from importlib import import_module

    from django.contrib import auth
    from django.middleware.csrf import CsrfViewMiddleware

    from accounts.authz import password_expired, session_permissions
    from accounts.middleware import ExpiredPasswordMiddleware

    if request.method != "POST":
        return problem(405, "A token is minted with the session cookie only by a POST with the page's CSRF "
                            "token (X-CSRFToken); send an Authorization header otherwise.",
                       headers={"Allow": "POST"})
    refused = CsrfViewMiddleware(lambda r: None).process_view(request, _session_caller, (), {})
    if refused is not None:
        return problem(403, "The CSRF check failed: send the page's CSRF token in X-CSRFToken, from the "
                            "server's own origin.")
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    request.user = auth.get_user(request)
    ExpiredPasswordMiddleware._restore_session_credential(request)
    user = request.user
    if not user.is_authenticated:
        return _unauthorized("The session has ended; log in again.")
    if password_expired(user):
        return problem(403, "The password has expired; change it before anything else.")
    return user.pk, session_permissions(user)


@endpoint.endpoint(endpoint.ANY, options="bare")
def token(request, kind: str):
    """A short-lived token for the live stream `kind` (the reference's /api/token/{kind}, with the
    kinds of network.live_token.KINDS), for the caller's Authorization header or, from the
    administration pages, for their session (a POST with the CSRF token)."""
    if kind == ws.TOKEN_KIND:
        return _websocket_token(request)
    entry = live_token.KINDS.get(kind)
    if entry is None:
        return problem(404, endpoint.NOT_FOUND)
    if not request.META.get("HTTP_AUTHORIZATION") and settings.SESSION_COOKIE_NAME in request.COOKIES:
        found = _session_caller(request)
        if isinstance(found, HttpResponse):
            return found
        account_id, permissions = found
    else:
        principal, error = endpoint.authenticate(request)
        if error is not None:
            return error
        account_id, permissions = principal.account_id, principal.permissions
    if not live_token.may_mint(entry, permissions):
        return problem(403, f"A {kind} token needs the {entry.permission} permission.")
    response = HttpResponse(live_token.mint(entry, account_id, _claims(entry, permissions)),
                            content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _websocket_token(request):
    """A WebSocket token (jmapapi.websocket): it carries the permissions of the credential that
    asked, not one kind's, so it is minted from an Authorization header only."""
    principal, error = endpoint.authenticate(request)
    if error is not None:
        return error
    try:
        minted = ws.mint_token(principal)
    except ws.TokenError as exc:
        return problem(403, str(exc))
    response = HttpResponse(minted, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response

