"""The Content-Security-Policy of the pages people use: the admin (/admin/...), the account page
(/account/...) and the pages where people type passwords (/login, /device).

These pages load their script and style from static files only: with inline script forbidden, a
markup injection cannot run script that reads the password being typed, and frame-ancestors
keeps them out of other sites' frames. One constant header, so a decorator (for the two OAuth
pages) and a middleware (for the admin and account trees, whose views are Django's own) rather
than a dependency (django-csp).
"""
from __future__ import annotations

import functools

POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
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


# The trees that get the policy whatever view answers, including Django's admin views, its
# login and logout, and a 404 inside them.
PAGE_PREFIXES = ("/admin/", "/account/")


class PageCspMiddleware:
    """Sets POLICY on every response under PAGE_PREFIXES that has no policy of its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path_info.startswith(PAGE_PREFIXES) and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = POLICY
        return response
