"""HTTP faces of JMAP: the API endpoint, the session resource and the well-known redirect."""
from __future__ import annotations

import json

from django.core.cache import cache
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from accounts import services
from accounts.http_auth import NoCredentials, authenticate_header
from registry import ids
from registry import services as registry_services
from stalwart_site.problem import problem

from . import engine
from .models import Jmap
from .registry_methods import FILTER_LIMITS

REALM = 'realm="Stalwart Server"'


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def auth_problem(exc: services.AuthError) -> HttpResponse:
    if isinstance(exc, services.RateLimited):
        return problem(429, "You have made too many requests; try again in a few seconds.",
                       title="Too Many Requests", headers=exc.verdict.headers())
    if exc.status == 429:
        return problem(429, "Too many authentication attempts; try again later.",
                       title="Too Many Authentication Attempts", headers={"Retry-After": "60"})
    if exc.status == 403:
        return problem(403, str(exc))
    if exc.status == 402:
        # A Basic login cannot carry a one-time code: use an app password or OAuth.
        return problem(402, "MFA code required", title="MFA code required")
    detail = "You have to authenticate first." if isinstance(exc, NoCredentials) else str(exc)
    response = problem(401, detail)
    # Two challenges, one header each: Bearer (OAuth, API keys) and Basic.
    response.headers["WWW-Authenticate"] = (
        f'Bearer {REALM}, resource_metadata="/.well-known/oauth-protected-resource", Basic {REALM}'
    )
    return response


def authenticate(request):
    """The caller's Principal (its credentials verified, its request charged to its rate
    limit), or the error response to send. The states the verdict cache and the settings are
    keyed on come from the request context, read once at the edge."""
    try:
        return authenticate_header(request.META.get("HTTP_AUTHORIZATION"), client_ip(request)), None
    except services.AuthError as exc:
        return None, auth_problem(exc)


def jmap_limits(request=None) -> Jmap:
    return registry_services.current(Jmap)


def base_url(request=None) -> str:
    return services.public_url()


@csrf_exempt
def api(request):
    if request.method == "OPTIONS":
        return HttpResponse(status=204)
    if request.method != "POST":
        return problem(405, "The JMAP API takes POST requests.", headers={"Allow": "POST, OPTIONS"})
    principal, error = authenticate(request)
    if error is not None:
        return error
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type and content_type.split(";")[0].strip().lower() != "application/json":
        return problem(400, "The Content-Type header must be application/json.",
                       type="urn:ietf:params:jmap:error:notJSON")
    limits = jmap_limits(request)
    slot = _acquire(principal, limits)
    if slot is False:
        return problem(400, "Too many concurrent requests.", type="urn:ietf:params:jmap:error:limit",
                       limit="maxConcurrentRequests",
                       headers={"RateLimit-Policy": f'"concurrent-requests";q={limits.max_concurrent_requests};'
                                                    'qu="concurrent-requests"',
                                "RateLimit": '"concurrent-requests";r=0'})
    try:
        req = engine.parse(read_request(request, limits.max_request_size), limits)
        result = engine.run(req, principal, limits)
    except engine.RequestError as exc:
        return problem(exc.status, exc.detail, type=exc.type, **exc.extra)
    finally:
        if slot:
            _release(principal)
    return HttpResponse(json.dumps(result, separators=(",", ":")), content_type="application/json; charset=utf-8")


def read_request(request, limit: int) -> bytes:
    """The body, up to the advertised maxSizeRequest and not one byte more.

    Read here rather than through request.body, which is capped by Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB, answered with an HTML 400) and knows nothing of the
    limit the session advertises. A client whose body is larger, whatever its Content-Length
    says (or without one), gets the JMAP limit problem.
    """
    too_large = engine.RequestError("urn:ietf:params:jmap:error:limit",
                                    f"The request is larger than the server accepts ({limit} bytes).",
                                    limit="maxSizeRequest")
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared and not declared.isdigit():
        raise engine.RequestError("urn:ietf:params:jmap:error:notRequest", "Invalid Content-Length.")
    if declared and int(declared) > limit:
        raise too_large
    body = request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def _slot_key(principal) -> str:
    return f"jmap-inflight:{principal.account_id}"


def _acquire(principal, limits):
    """Count the caller's requests in flight; False when over maxConcurrentRequests."""
    if limits.max_concurrent_requests is None or principal.has("unlimitedRequests"):
        return None
    key = _slot_key(principal)
    cache.add(key, 0, 300)
    try:
        current = cache.incr(key)
    except ValueError:
        cache.add(key, 1, 300)
        current = 1
    if current > limits.max_concurrent_requests:
        _release(principal)
        return False
    return True


def _release(principal) -> None:
    try:
        cache.decr(_slot_key(principal))
    except ValueError:
        pass


def session(request):
    if request.method not in ("GET", "HEAD"):
        return problem(405, "The session resource takes GET requests.", headers={"Allow": "GET"})
    principal, error = authenticate(request)
    if error is not None:
        return error
    return JsonResponse(session_document(principal, request), json_dumps_params={"separators": (",", ":")})


def session_document(principal, request=None) -> dict:
    limits = jmap_limits(request) if request is not None else Jmap.load()
    base = base_url(request)
    unlimited = 4294967295
    account_id = ids.encode(principal.account_id)
    return {
        "capabilities": {
            "urn:ietf:params:jmap:core": {
                "maxSizeUpload": limits.max_upload_size,
                "maxConcurrentUpload": limits.max_concurrent_uploads or unlimited,
                "maxSizeRequest": limits.max_request_size,
                "maxConcurrentRequests": limits.max_concurrent_requests or unlimited,
                "maxCallsInRequest": limits.max_method_calls,
                "maxObjectsInGet": limits.get_max_results,
                "maxObjectsInSet": limits.set_max_objects,
                "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
            },
            # Our own limits on /query filters (the reference advertises none here).
            STALWART_CAP: dict(FILTER_LIMITS),
        },
        "accounts": {
            account_id: {"name": principal.name, "isPersonal": True, "isReadOnly": False,
                         "accountCapabilities": {STALWART_CAP: {}}},
        },
        # Core is not an account capability in RFC 8620, but clients such as jmapc find the
        # account to use through it.
        "primaryAccounts": {"urn:ietf:params:jmap:core": account_id, STALWART_CAP: account_id},
        "username": principal.name,
        "apiUrl": f"{base}/jmap/",
        "downloadUrl": f"{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}",
        "uploadUrl": f"{base}/jmap/upload/{{accountId}}/",
        "eventSourceUrl": f"{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
        "state": engine.session_state(principal),
    }


STALWART_CAP = engine.STALWART


def well_known(request):
    response = HttpResponseRedirect("/jmap/session")
    response.status_code = 307
    response["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return response


def schema(request, digest: str | None = None):
    """GET /api/schema redirects to /api/schema/<sha256>, which is immutable and cacheable."""
    from registry.schema import document

    principal, error = authenticate(request)
    if error is not None:
        return error
    body, current = document()
    if digest != current:
        response = HttpResponseRedirect(f"/api/schema/{current}")
        response["Cache-Control"] = "no-cache"
        return response
    response = HttpResponse(body, content_type="application/json")
    # private: the document is only for callers who authenticated. "public" would let a shared
    # cache store the answer to an authenticated request and hand it to anyone (RFC 9111 §3.5).
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["ETag"] = f'"{current}"'
    return response
