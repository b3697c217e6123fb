"""HTTP faces of JMAP: the API endpoint, the session resource and the well-known redirect."""
from __future__ import annotations

import json

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema

from network import endpoint
from network.drf import PROBLEM, ApiView, same_as_get
from registry import ids
from registry import services as registry_services
from registry.schema import document
from stalwart_site.problem import problem

from . import capabilities, engine, inflight, websocket
from . import blob_views  # noqa: F401  (registers the blob capability with its methods)
from .blob_methods import max_size_upload
from .models import Jmap
from .registry_methods import FILTER_LIMITS

# The settings objects requests read, besides what the verification of credentials depends on.
SETTINGS_TYPES = ("Jmap", "SystemSettings")


def jmap_limits(request=None) -> Jmap:
    return registry_services.current(Jmap)


@endpoint.endpoint("POST", options="bare", auth=True, states=SETTINGS_TYPES,
                   refusal="The JMAP API takes POST requests.")
def api(request):
    principal = request.principal
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type and content_type.split(";")[0].strip().lower() != "application/json":
        return problem(400, "The Content-Type header must be application/json.",
                       type="urn:ietf:params:jmap:error:notJSON")
    limits = jmap_limits(request)
    limit = limits.max_concurrent_requests
    if limit is not None and principal.has("unlimitedRequests"):
        limit = None
    slot = inflight.acquire("inflight", principal.account_id, limit)
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
            inflight.release("inflight", principal.account_id)
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


@endpoint.endpoint("GET", "HEAD", auth=True, states=SETTINGS_TYPES, allow="GET",
                   refusal="The session resource takes GET requests.")
def session(request):
    return JsonResponse(session_document(request.principal, request), json_dumps_params={"separators": (",", ":")})


def session_document(principal, request=None) -> dict:
    limits = jmap_limits(request) if request is not None else Jmap.load()
    base = endpoint.public_base(request)
    unlimited = 4294967295
    account_id = ids.encode(principal.account_id)
    return {
        "capabilities": {
            "urn:ietf:params:jmap:core": {
                "maxSizeUpload": max_size_upload(limits),
                "maxConcurrentUpload": limits.max_concurrent_uploads or unlimited,
                "maxSizeRequest": limits.max_request_size,
                "maxConcurrentRequests": limits.max_concurrent_requests or unlimited,
                "maxCallsInRequest": limits.max_method_calls,
                "maxObjectsInGet": limits.get_max_results,
                "maxObjectsInSet": limits.set_max_objects,
                "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
            },
            **capabilities.session_values(limits),
            # Our own limits on /query filters (the reference advertises none here).
            STALWART_CAP: dict(FILTER_LIMITS),
            # RFC 8887: the same address as the others, its scheme ws or wss (jmapapi.websocket);
            # only where the serving model has WebSockets at all.
            **({websocket.CAPABILITY: {"url": "ws" + base.removeprefix("http") + websocket.PATHS[0],
                                       "supportsPush": True}} if websocket.served() else {}),
        },
        "accounts": {
            account_id: {"name": principal.name, "isPersonal": True, "isReadOnly": False,
                         "accountCapabilities": {**capabilities.account_values(principal, limits), STALWART_CAP: {}}},
        },
        # Core is not an account capability in RFC 8620, but clients such as jmapc find the
        # account to use through it.
        "primaryAccounts": {"urn:ietf:params:jmap:core": account_id,
                            **{urn: account_id for urn in capabilities.primary_for(principal, limits)},
                            STALWART_CAP: account_id},
        "username": principal.name,
        "apiUrl": f"{base}/jmap/",
        "downloadUrl": f"{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}",
        "uploadUrl": f"{base}/jmap/upload/{{accountId}}/",
        "eventSourceUrl": f"{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
        "state": engine.session_state(principal),
    }


STALWART_CAP = engine.STALWART


@endpoint.endpoint("GET", "HEAD", options="cors")
def well_known(request):
    response = HttpResponseRedirect("/jmap/session")
    response.status_code = 307
    response["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return response


class SchemaView(ApiView):
    """GET /api/schema redirects to /api/schema/<sha256>, which is immutable and cacheable."""

    @extend_schema(summary="The management objects' schema",
                   description="/api/schema redirects to /api/schema/{digest}, the document itself (immutable). "
                               "Any method.",
                   responses={200: OpenApiTypes.OBJECT, 302: None, 401: PROBLEM})
    def get(self, request, digest: str | None = None):
        return schema_answer(digest)

    # Any method, as before DRF: the document does not depend on it.
    post = put = patch = delete = options = same_as_get()


class SchemaDocumentView(SchemaView):
    @extend_schema(operation_id="schema_document", summary="The management objects' schema, by digest",
                   description="The document when {digest} is current (cacheable, immutable); else a redirect to "
                               "the current one. Any method.",
                   responses={200: OpenApiTypes.OBJECT, 302: None, 401: PROBLEM})
    def get(self, request, digest: str | None = None):
        return schema_answer(digest)


schema = SchemaView.as_view()
schema_document = SchemaDocumentView.as_view()


def schema_answer(digest: str | None):
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
