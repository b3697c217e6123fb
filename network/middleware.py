"""The HTTP service's request pipeline (network/pipeline.py says what each step does).

EdgeMiddleware is the first of the chain: nothing runs for a blocked address, and the global
headers are the last thing put on a response. RateLimitMiddleware sits after Django's
authentication middleware, because a page visitor with a session is charged to the account,
not to the address; requests with an Authorization header are charged when their credentials
are verified (accounts/http_auth.py), to the account.
"""
from __future__ import annotations

from django.db import DatabaseError

from security import ratelimit
from security import services as security
from stalwart_site.problem import problem

from . import pipeline


# Machine endpoints: no session, no CSRF token, no messages, no user; they skip the page
# middleware (sessions, CSRF, authentication, messages, WhiteNoise, …), which costs every
# request, and keep only what they need. Paths for people (/, /admin/, /account/, /login,
# /device, /static/) take the whole chain.
MACHINE_PREFIXES = ("/jmap", "/api", "/auth/", "/.well-known/", "/healthz/", "/metrics/", "/robots.txt", "/mail/",
                    "/autodiscover/", "/Autodiscover/", "/AutoDiscover/", "/form", "/dav/")


def lean_chain():
    """Django's view dispatch (URL resolution, the view, exception to response) behind the two
    middlewares that machine endpoints need: security headers and the rate limit."""
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.exception import convert_exception_to_response
    from django.middleware.security import SecurityMiddleware

    handler = BaseHandler()
    handler._view_middleware, handler._template_response_middleware, handler._exception_middleware = [], [], []
    chain = convert_exception_to_response(handler._get_response)
    chain = convert_exception_to_response(RateLimitMiddleware(chain))
    return convert_exception_to_response(SecurityMiddleware(chain))


class EdgeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.lean = lean_chain()

    def __call__(self, request):
        meta = request.META
        try:
            states = pipeline.states_now()
            cfg = pipeline.config(states)
        except DatabaseError:
            # The database is down: let the request through untouched, so that /healthz/ready
            # can say so (503) and everything else fails the way it would anyway.
            return self.get_response(request)
        request.stalwart_edge = (cfg, states)
        ip = pipeline.client_address(meta, cfg)
        meta["STALWART_PEER_ADDR"] = pipeline.normal_ip(meta.get("REMOTE_ADDR")) or meta.get("REMOTE_ADDR")
        meta["REMOTE_ADDR"] = ip  # every view's client address from here on

        # 1. Blocked addresses: refused before anything else, without the global headers.
        if security.is_blocked(ip, states):
            return problem(403, "Forbidden")

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

        path = request.path_info
        response = (self.lean if path.startswith(MACHINE_PREFIXES) else self.get_response)(request)

        # 3. A request for an unknown resource whose path only scanners ask for bans its sender.
        if (response.status_code == 404 and getattr(request, "resolver_match", None) is None
                and cfg.scan_paths and pipeline.scan_match(cfg, (meta.get("RAW_URI") or request.path).split("?")[0])
                and not security.is_allowed(ip, states)):
            from security.models import BlockedIp

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
    from http import HTTPStatus

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


def charge_account(principal, remote_ip: str | None, request=None) -> None:
    """The authenticated limit of an API request, charged once its credentials are verified."""
    from accounts import login

    states = None
    cfg = None
    edge = getattr(request, "stalwart_edge", None) if request is not None else None
    if edge is not None:
        cfg, states = edge
    else:
        states = pipeline.states_now()
        cfg = pipeline.config(states)
    if cfg.authenticated is None or principal.has("unlimitedRequests") or security.is_allowed(remote_ip, states):
        return
    verdict = ratelimit.hit(f"http-auth:{principal.account_id}", cfg.authenticated[0], cfg.authenticated[1])
    if not verdict.allowed:
        raise login.RateLimited(verdict)

