"""Small HTTP helpers shared by the machine endpoints of every app: the reference's permissive
CORS header set, the CORS preflight answer, and the bounded body read. The endpoint decorator
that applies them is network.endpoint.endpoint."""
from __future__ import annotations

from django.http import HttpResponse

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
