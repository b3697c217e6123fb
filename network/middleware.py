"""The HTTP service's request pipeline (network/pipeline.py says what each step does).

EdgeMiddleware is the first of the chain after the request counters: it reads the request
context (the object states, registry.context), refuses blocked addresses, applies the access
rule, and puts the global headers on the response last. RateLimitMiddleware sits after Django's
authentication middleware, because a page visitor with a session is charged to the account,
not to the address; requests with an Authorization header are charged when their credentials
are verified (accounts/http_auth.py), to the account, with the limit the edge put in the
request context.

There is one middleware chain for every request, so the request counters (ours and
django-prometheus', which bracket it) see every response. The middleware that only pages need
(static files, sessions, CSRF, authentication, messages, …) is listed in settings.MIDDLEWARE
wrapped by pages_only(): machine endpoints pass straight through it.
"""
from __future__ import annotations

from http import HTTPStatus

from django.db import DatabaseError
from django.utils.module_loading import import_string

from registry import context
from security import ratelimit
from security import services as security
from security.models import BlockedIp
from stalwart_site.problem import problem

from . import pipeline

# Machine endpoints: no session, no CSRF token, no messages, no user; they skip the page
# middleware (sessions, CSRF, authentication, messages, WhiteNoise, …), which costs every
# request, and keep only what they need. Paths for people (/, /admin/, /account/, /login,
# /device, /static/) take the whole chain.
MACHINE_PREFIXES = ("/jmap", "/api", "/auth/", "/.well-known/", "/healthz/", "/metrics/", "/robots.txt", "/mail/",
                    "/autodiscover/", "/Autodiscover/", "/AutoDiscover/", "/form", "/dav/")


def is_machine(request) -> bool:
    return request.path_info.startswith(MACHINE_PREFIXES)


def pages_only(path: str):
    """The middleware class at `path`, applied to pages only: a machine endpoint's request
    goes past it untouched (its view, exception and template hooks included).

    A subclass, so that what checks for the class (the admin's system checks look for the
    session, authentication and message middleware) still finds it.
    """
    inner = import_string(path)

    def __call__(self, request):
        if is_machine(request):
            return self.get_response(request)
        return inner.__call__(self, request)

    # pages_only and is_machine let the asgi handler (stalwart_site/asgi.py) build the chain of
    # the machine endpoints without these classes, which they would only pass through.
    attrs = {"__call__": __call__, "__module__": __name__, "__doc__": f"{inner.__name__}, for pages only.",
             "pages_only": True, "is_machine": staticmethod(is_machine)}
    if hasattr(inner, "process_view"):
        attrs["process_view"] = lambda self, request, *args: (
            None if is_machine(request) else inner.process_view(self, request, *args))
    if hasattr(inner, "process_exception"):
        attrs["process_exception"] = lambda self, request, exc: (
            None if is_machine(request) else inner.process_exception(self, request, exc))
    if hasattr(inner, "process_template_response"):
        attrs["process_template_response"] = lambda self, request, response: (
            response if is_machine(request) else inner.process_template_response(self, request, response))
    return type(f"Page{inner.__name__}", (inner,), attrs)


# The page middleware, as settings.MIDDLEWARE names it.
PageStaticFiles = pages_only("whitenoise.middleware.WhiteNoiseMiddleware")
PageSessions = pages_only("django.contrib.sessions.middleware.SessionMiddleware")
PageCommon = pages_only("django.middleware.common.CommonMiddleware")
PageCsrf = pages_only("django.middleware.csrf.CsrfViewMiddleware")
PageAuthentication = pages_only("django.contrib.auth.middleware.AuthenticationMiddleware")
PageExpiredPassword = pages_only("accounts.middleware.ExpiredPasswordMiddleware")
PageMessages = pages_only("django.contrib.messages.middleware.MessageMiddleware")
PageClickjacking = pages_only("django.middleware.clickjacking.XFrameOptionsMiddleware")


class EdgeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            ctx, token = context.begin()
        except DatabaseError:
            # The database is down: let the request through untouched, so that /healthz/ready
            # can say so (503) and everything else fails the way it would anyway.
            return self.get_response(request)
        try:
            return self.serve(request, ctx)
        finally:
            context.end(token)

    def serve(self, request, ctx):
        meta = request.META
        states = ctx.states
        cfg = pipeline.config(states)
        request.stalwart_edge = (cfg, states)
        ip = pipeline.client_address(meta, cfg)
        meta["STALWART_PEER_ADDR"] = pipeline.normal_ip(meta.get("REMOTE_ADDR")) or meta.get("REMOTE_ADDR")
        meta["REMOTE_ADDR"] = ip  # every view's client address from here on

        # 1. Blocked addresses: refused before anything else, without the global headers. The
        # one block check of the request: authentication takes the address as checked.
        if security.is_blocked(ip, states):
            return problem(403, "Forbidden")
        ctx.checked_address = ip
        ctx.account_limit = cfg.authenticated

        local_ip, local_port = pipeline.local_address(meta)
        listener, tls = cfg.listener(local_ip, local_port)
        tls = tls or request.is_secure()
        request.stalwart_listener = listener

        # 2. The access rule; clients on this machine are always let through (no lock-out), but
        # not a client a proxy only says is on loopback.
        if cfg.rule is not None and not security.is_direct_loopback(ip):
            status = pipeline.rule_status(cfg, pipeline.RuleContext(request, listener, local_ip, local_port, tls))
            if status != 200:
                return self.finish(cfg, tls, problem(status, pipeline_title(status)))

        response = self.get_response(request)

        # 3. A request for an unknown resource whose path only scanners ask for bans its sender.
        if (response.status_code == 404 and getattr(request, "resolver_match", None) is None
                and cfg.scan_paths and pipeline.scan_match(cfg, (meta.get("RAW_URI") or request.path).split("?")[0])
                and not security.is_allowed(ip, states)):
            security.ban(ip, BlockedIp.Reason.PORT_SCANNING, cfg.scan_ban_period, actor="scan-ban")
        return self.finish(cfg, tls, response)

    @staticmethod
    def finish(cfg, tls, response):
        # What CommonMiddleware does on the page chain: a length, so gunicorn need not chunk.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        for name, value in cfg.headers:
            response[name] = value
        if cfg.hsts and tls:
            response[pipeline.HSTS[0]] = pipeline.HSTS[1]
        return response


def pipeline_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Refused"


class RateLimitMiddleware:
    """Fixed-window limits: anonymous requests per address, session users per account."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        edge = getattr(request, "stalwart_edge", None)
        if edge is not None and "HTTP_AUTHORIZATION" not in request.META:
            cfg, states = edge
            ip = request.META.get("REMOTE_ADDR")
            if not security.is_allowed(ip, states):
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    limit, key = cfg.authenticated, f"http-auth:{user.pk}"
                else:
                    limit, key = cfg.anonymous, f"http-anon:{ip}"
                if limit is not None:
                    verdict = ratelimit.hit(key, limit[0], limit[1])
                    if not verdict.allowed:
                        return pipeline.rate_limited(verdict)
        return self.get_response(request)
