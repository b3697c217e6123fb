"""What every machine endpoint (JSON, JMAP, OAuth, form and discovery endpoints; not the HTML
pages) shares: the method rules, the CORS preflight, the authentication of the caller, the body
limit, problem+json errors, and the address the server advertises.

It sits below the faces: jmapapi, oauth, wellknown, contactform and telemetry import it, so
none of them needs another app's views. It imports accounts (credentials), registry and
stalwart_site's leaf helpers only.
"""
from __future__ import annotations

import functools

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import login
from accounts.http_auth import NoCredentials, authenticate_header
from accounts.models import SystemSettings
from registry import context
from registry import services as registry_services
from stalwart_site.http import BodyError, preflight, read_body, with_cors
from stalwart_site.problem import problem

REALM = 'realm="Stalwart Server"'
CHALLENGES = f'Bearer {REALM}, resource_metadata="/.well-known/oauth-protected-resource", Basic {REALM}'


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def auth_problem(exc: login.AuthError) -> HttpResponse:
    if isinstance(exc, login.RateLimited):
        return problem(429, "You have made too many requests; try again in a few seconds.",
                       title="Too Many Requests", headers=exc.verdict.headers())
    if exc.status == 429:
        return problem(429, "Too many authentication attempts; try again later.",
                       title="Too Many Authentication Attempts", headers={"Retry-After": "60"})
    if exc.status == 503:
        # The external directory is down: a temporary failure, not the client's credentials.
        response = problem(503, str(exc), title="Service Unavailable",
                           headers={"Retry-After": str(getattr(exc, "retry_after", 30))})
        # The outage is logged once when it starts (accounts.external), not per request.
        response._has_been_logged = True
        return response
    if exc.status == 403:
        return problem(403, str(exc))
    if exc.status == 402:
        # A Basic login cannot carry a one-time code: use an app password or OAuth.
        return problem(402, "MFA code required", title="MFA code required")
    detail = "You have to authenticate first." if isinstance(exc, NoCredentials) else str(exc)
    response = problem(401, detail)
    # Two challenges, one header each: Bearer (OAuth, API keys) and Basic.
    response.headers["WWW-Authenticate"] = CHALLENGES
    return response


# The settings every authenticated request may read besides what the verification depends on:
# SystemSettings gives the advertised address. An endpoint adds its own (JMAP: its limits).
SETTINGS_TYPES = ("SystemSettings",)


def authenticate(request):
    """The caller's Principal (its credentials verified, its request charged to its account's
    rate limit), or the error response to send. The states the verdict cache and the settings
    are keyed on come from the request context, read once at the edge (registry.context)."""
    try:
        return authenticate_header(request.META.get("HTTP_AUTHORIZATION"), client_ip(request)), None
    except login.AuthError as exc:
        return None, auth_problem(exc)


def public_base(request=None) -> str:
    """The URL every advertised address starts with (no trailing slash).

    SystemSettings.publicUrl when set, else the PUBLIC_URL variable when set; else the address
    the client reached: the listener's scheme and the Host header, which get_host() checks
    against ALLOWED_HOSTS (a foreign name is Django's 400, never echoed into a document). Without
    a request (a command, a background job) the address `make run` serves on.
    """
    configured = registry_services.current(SystemSettings).public_url or settings.PUBLIC_URL_CONFIGURED
    if configured:
        return configured.rstrip("/")
    if request is None:
        return settings.PUBLIC_URL
    return f"{request.scheme}://{request.get_host()}"


# `endpoint(ANY)`: every method reaches the view (a catch-all, a redirect the reference answers
# whatever the method).
ANY = "*"
NOT_FOUND = "The requested resource does not exist on this server."


def endpoint(*methods: str, options: str | None = None, cors: bool = False, auth: bool = False,
             states: tuple[str, ...] = SETTINGS_TYPES, max_body: int | None = None, body_name: str = "request body",
             allow: str | None = None, refusal: str | None = None, outage=None):
    """The rules of a machine endpoint, in the order they apply:

    1. `options`: "cors" answers OPTIONS with the CORS preflight (204 and the CORS headers, as
       the reference does under /auth/, /api/ and /.well-known/); "bare" with an empty 204.
    2. a method outside `methods` is a 405 problem+json with Allow (`allow`, or the methods),
       not Django's empty 405 nor the CSRF middleware's HTML 403: these endpoints use no cookies.
    3. `auth`: the caller authenticates (Basic, Bearer, API key) or gets the 401/403/429
       problem; the Principal is `request.principal`. The states of `states` (settings the
       view reads) join those the edge reads in its one query (registry.context).
    4. `max_body`: the body, at most that many bytes, is read into `request.payload`; a larger
       one (whatever its Content-Length claims) is a 400 problem+json ("The <body_name> is
       larger than … bytes.").
    5. `cors`: every answer, errors included, carries the CORS headers.

    `ANY` as the only method takes every method (there is then no 405).

    `outage(exc)` answers instead of the 503 problem when the external directory that checks the
    caller's credentials is down (OAuth endpoints: RFC 6749's `temporarily_unavailable`).
    """
    context.needs(*states)
    shown = allow or ", ".join(methods + (("OPTIONS",) if options and "OPTIONS" not in methods else ()))
    detail = refusal or f"This endpoint takes {shown} requests."

    def wrap(view):
        @csrf_exempt
        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            response = _dispatch(view, request, args, kwargs)
            return with_cors(response) if cors else response

        # The mark tests/test_endpoint_coverage.py looks for on every machine view of the URL table.
        inner.endpoint_methods = methods

        def _dispatch(view, request, args, kwargs):
            if request.method == "OPTIONS" and options and "OPTIONS" not in methods:
                return preflight(request) if options == "cors" else HttpResponse(status=204)
            if request.method not in methods and methods != (ANY,):
                return problem(405, detail, headers={"Allow": shown})
            if auth:
                request.principal, error = authenticate(request)
                if error is not None and outage is not None and error.status_code == 503:
                    return outage()
                if error is not None:
                    return error
            if max_body is not None:
                try:
                    request.payload = read_body(request, max_body, body_name)
                except BodyError as exc:
                    return problem(400, str(exc), title="Invalid parameters")
            return view(request, *args, **kwargs)

        return inner

    return wrap


def not_found(*, options: str | None = None):
    """A catch-all: every method (OPTIONS the preflight when `options` says so) gets the
    reference's fallthrough, 404 problem+json, through the same rules as every endpoint."""
    @endpoint(ANY, options=options)
    def view(request, *args, **kwargs):
        return problem(404, NOT_FOUND)

    return view
