"""Small HTTP helpers shared by the machine endpoints of every app: the reference's permissive
CORS header set, the CORS preflight answer, and the method rules of an endpoint."""
from __future__ import annotations

import functools

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from .problem import problem

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, X-Requested-With",
    "Access-Control-Allow-Methods": "POST, GET, PATCH, PUT, DELETE, HEAD, OPTIONS",
}


def with_cors(response: HttpResponse) -> HttpResponse:
    for name, value in CORS.items():
        response[name] = value
    return response


def preflight(request=None) -> HttpResponse:
    """204 with the CORS headers: the answer to OPTIONS under /auth/, /api/ and /.well-known/."""
    return with_cors(HttpResponse(status=204))


def endpoint(*methods: str, cors: bool = False):
    """The method rules of a machine endpoint: others get 405 problem+json with Allow (not
    Django's empty 405, nor the CSRF middleware's HTML 403: these endpoints use no cookies);
    with `cors`, OPTIONS is a CORS preflight answered 204 (the reference does so under /auth/
    and /.well-known/)."""
    allowed = ", ".join(methods + (("OPTIONS",) if cors and "OPTIONS" not in methods else ()))

    def wrap(view):
        @csrf_exempt
        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            if request.method in methods:
                return view(request, *args, **kwargs)
            if cors and request.method == "OPTIONS":
                return preflight(request)
            return problem(405, f"This endpoint takes {allowed} requests.", headers={"Allow": allowed})
        return inner

    return wrap


class BodyError(ValueError):
    """A request body that cannot be read within its limit; the message says why, for a 400."""


def read_body(request, limit: int, what: str = "request body") -> bytes:
    """The body, at most `limit` bytes: refused early when Content-Length says more, and read
    no further than one byte past the limit whatever it claimed (or when it is absent)."""
    raw = request.META.get("CONTENT_LENGTH") or ""
    if raw:
        try:
            declared = int(raw)
        except ValueError:
            raise BodyError("Invalid Content-Length.") from None
        if declared > limit:
            raise BodyError(f"The {what} is larger than {limit} bytes.")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BodyError(f"The {what} is larger than {limit} bytes.")
    return body
