"""The Content-Security-Policy of the pages where people type passwords (/login, /device,
/account/...).

These pages load their script and style from static files only: with inline script forbidden, a
markup injection cannot run script that reads the password being typed, and frame-ancestors
keeps them out of other sites' frames. A decorator rather than a dependency (django-csp): one
constant header on a handful of views.
"""
from __future__ import annotations

import functools

POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])


def strict_csp(view):
    @functools.wraps(view)
    def inner(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = POLICY
        return response
    return inner
