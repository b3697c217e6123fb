"""RFC 7807 problem details: the one way JSON endpoints report request-level errors."""
from __future__ import annotations

import json

from django.http import HttpResponse

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 402: "MFA code required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}


def problem(status: int, detail: str, *, type: str = "about:blank", title: str | None = None,
            headers: dict | None = None, **extra) -> HttpResponse:
    body = {"type": type, "status": status}
    if title or type == "about:blank":
        body["title"] = title or TITLES.get(status, "Error")
    body["detail"] = detail
    body.update(extra)
    response = HttpResponse(json.dumps(body), status=status, content_type="application/problem+json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response
