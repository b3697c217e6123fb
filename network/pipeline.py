"""The front of the HTTP service, in the reference's order: client address (forwarded headers
when configured and sent by a trusted proxy) → blocked IP (403 before anything else) → access
rule → rate limit → route → scan-path ban on unknown paths → global response headers.

Everything a request needs is compiled once per change of the settings and kept per worker
under the states of the objects it comes from; a request then costs one small query (the
states) and, for rate limits, one cache operation.
"""
from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from dataclasses import dataclass, field

from accounts.models import SystemSettings
from registry import context, memo
from security import ratelimit
from security.models import Security
from security.services import ClientAddress
from stalwart_site.http import CORS
from stalwart_site.problem import problem

from .expr import compile_rule
from .expr import to_status
from .models import DEFAULT_RULE, Http, NetworkListener

STATE_NAMES = ("Http", "NetworkListener", "BlockedIp", "AllowedIp", "Security", "SystemSettings")
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
_MEMO_TTL = 300  # seconds: expired bans/allowances are seen within this time even without a change
_CONFIG = "network.config"
# Every request's edge reads these states (with the other apps' and the settings singletons').
context.needs(*STATE_NAMES)


def drop_config() -> None:
    memo.forget(_CONFIG)


@dataclass
class Config:
    token: tuple
    use_x_forwarded: bool
    trusted_proxies: list  # ip_network objects: SystemSettings.proxyTrustedNetworks
    rule: object | None  # a compiled network.expr rule; None when everything is allowed
    headers: list[tuple[str, str]]
    hsts: bool
    anonymous: tuple[int, float] | None
    authenticated: tuple[int, float] | None
    listeners_exact: dict[tuple[str, int], tuple[str, bool]] = field(default_factory=dict)
    listeners_port: dict[int, tuple[str, bool]] = field(default_factory=dict)
    default_listener: tuple[str, bool] = ("http", False)
    scan_paths: list[re.Pattern] = field(default_factory=list)
    scan_ban_period: object = None

    def listener(self, local_ip: str | None, local_port: int | None) -> tuple[str, bool]:
        if local_port is not None:
            hit = self.listeners_exact.get((local_ip, local_port)) or self.listeners_port.get(local_port)
            if hit:
                return hit
        return self.default_listener


def _rate(count, period) -> tuple[int, float] | None:
    if count is None or period is None:
        return None
    return count, max(1.0, period.total_seconds())


def _build(token: tuple) -> Config:


    http = Http.load()
    rule_source = http.allowed_endpoints or DEFAULT_RULE
    rule = None
    if rule_source != DEFAULT_RULE:
        try:
            rule = compile_rule(rule_source, Http._meta.get_field("allowed_endpoints").variables)
        except Exception:  # refused at save; a rule written around the service layer fails open, as the reference's
            rule = None
    headers = [(name.strip(), value.strip()) for name, value in (http.response_headers or {}).items()]
    if http.use_permissive_cors:
        headers += list(CORS.items())
    cfg = Config(
        token=token, use_x_forwarded=http.use_x_forwarded, trusted_proxies=_networks(
            SystemSettings.load().proxy_trusted_networks), rule=rule, headers=headers, hsts=http.enable_hsts,
        anonymous=_rate(http.rate_limit_anonymous_count, http.rate_limit_anonymous_period),
        authenticated=_rate(http.rate_limit_authenticated_count, http.rate_limit_authenticated_period),
    )
    first = None
    for listener in NetworkListener.objects.filter(enabled=True, protocol="http").order_by("name"):
        entry = (listener.name, listener.use_tls)
        first = first or entry
        for bind in listener.bind:
            host, _, port = bind.rpartition(":")
            host = host.strip("[]")
            if ipaddress.ip_address(host).is_unspecified:
                cfg.listeners_port.setdefault(int(port), entry)
            else:
                cfg.listeners_exact[(str(ipaddress.ip_address(host)), int(port))] = entry
    if first:
        cfg.default_listener = first
    sec = Security.load()
    cfg.scan_paths = [re.compile(fnmatch.translate(glob.lower())) for glob in (sec.scan_ban_paths or [])]
    cfg.scan_ban_period = sec.scan_ban_period
    return cfg


def config(states: dict[str, int]) -> Config:
    token = tuple(states[name] for name in STATE_NAMES)
    return memo.get(_CONFIG, token, lambda: _build(token), ttl=_MEMO_TTL)


# --- client address ---------------------------------------------------------------------
def _networks(masks) -> list:
    out = []
    for mask in masks or []:
        try:
            out.append(ipaddress.ip_network(mask, strict=False))
        except ValueError:  # refused at save; a value written around the service layer is skipped
            continue
    return out


def normal_ip(text: str | None) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 unmapped), or None."""
    # str(): a ClientAddress would otherwise be the cache's key, and its flags are no part of it.
    return _normal_ip(None if text is None else str(text))


# Every request parses its peer's address several times, and a worker sees few distinct peers.
@functools.lru_cache(maxsize=4096)
def _normal_ip(text: str | None) -> str | None:
    try:
        ip = ipaddress.ip_address((text or "").strip().split("%")[0])
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def _forwarded_node(text: str) -> str | None:
    """The address of one RFC 7239 node ("192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]:4711"),
    or None for an obfuscated or "unknown" node and for anything else."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    return normal_ip(text)


def forwarded_chain(meta) -> list[str | None] | None:
    """The client addresses a proxy chain reports, nearest proxy's last; None without a header.

    X-Forwarded-For is read first: every common proxy (nginx, HAProxy, Caddy, Traefik, cloud load
    balancers) writes it, and a header the proxy does not write passes through from the client
    untouched, so preferring the rarer Forwarded header would let a client choose its address.
    """
    xff = meta.get("HTTP_X_FORWARDED_FOR")
    if xff:
        return [_forwarded_node(item) for item in xff.split(",")]
    forwarded = meta.get("HTTP_FORWARDED")
    if forwarded:
        chain = []
        for element in forwarded.split(","):
            for pair in element.split(";"):
                key, _, value = pair.partition("=")
                if key.strip().lower() == "for":
                    chain.append(_forwarded_node(value))
        return chain or None
    return None


def _trusted(ip_text: str, networks) -> bool:
    ip = ipaddress.ip_address(ip_text)
    return any(ip in net for net in networks)


def client_address(meta, cfg: Config) -> ClientAddress:
    """The client of a request, resolved once (the edge middleware stores it in REMOTE_ADDR).

    With useXForwarded on, the forwarded headers count only when the direct peer is a trusted
    proxy (SystemSettings.proxyTrustedNetworks); they are then read from the nearest hop back,
    skipping the trusted proxies, so the client is the first hop no trusted proxy vouches for
    (what a client writes itself ahead of its real address is never reached). A garbled hop
    stops the walk at the hop before it.
    """
    peer = normal_ip(meta.get("REMOTE_ADDR")) or meta.get("REMOTE_ADDR") or ""
    peer_trusted = bool(cfg.trusted_proxies) and normal_ip(peer) is not None and _trusted(peer, cfg.trusted_proxies)
    if cfg.use_x_forwarded and peer_trusted:
        chain = forwarded_chain(meta)
        if chain:
            client = None
            for hop in reversed(chain):
                if hop is None:
                    break
                client = hop
                if not _trusted(hop, cfg.trusted_proxies):
                    break
            if client is not None:
                return ClientAddress.of(client, forwarded=True)
    return ClientAddress.of(peer, trusted_proxy=peer_trusted)


def local_address(meta) -> tuple[str | None, int | None]:
    """The address and port the request came in on: the gunicorn socket's (sync workers), else
    SERVER_NAME and SERVER_PORT, which Django's ASGI handler takes from the socket too (the
    ASGI scope's "server"), not from the Host header."""
    sock = meta.get("gunicorn.socket")
    if sock is not None:
        try:
            name = sock.getsockname()
            return normal_ip(str(name[0])), int(name[1])
        except (OSError, IndexError, ValueError):
            pass
    try:
        port = int(meta.get("SERVER_PORT") or 0) or None
    except ValueError:
        return None, None
    asgi = "wsgi.input" not in meta
    return (normal_ip(str(meta.get("SERVER_NAME") or "")) if asgi else None), port


# --- the rule's variables -----------------------------------------------------------------
class RuleContext(dict):
    """The variables of the access rule, each computed when the rule first reads it."""

    def __init__(self, request, listener: str, local_ip, local_port, tls: bool):
        super().__init__(listener=listener, remote_ip=request.META.get("REMOTE_ADDR") or "",
                         local_ip=local_ip or "", local_port=local_port or 0, protocol="https" if tls else "http",
                         is_tls=tls, method=request.method)
        self.request = request

    def __missing__(self, key):
        meta = self.request.META
        if key == "remote_port":
            try:
                value = int(meta.get("REMOTE_PORT") or 0)
            except ValueError:
                value = 0
        elif key == "url":
            value = meta.get("RAW_URI") or self.request.get_full_path()
        elif key == "path":
            value = (meta.get("RAW_URI") or self.request.get_full_path()).split("?", 1)[0]
        elif key == "headers":
            value = [f"{name[5:].replace('_', '-').lower()}: {text}" for name, text in meta.items()
                     if name.startswith("HTTP_")]
            for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                if meta.get(name):
                    value.append(f"{name.replace('_', '-').lower()}: {meta[name]}")
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return key in ("remote_port", "url", "path", "headers") or dict.__contains__(self, key)


def rule_status(cfg: Config, ctx) -> int:
    """The status the rule gives this request; errors and non-numbers allow, as in the reference."""

    try:
        status = to_status(cfg.rule.evaluate(ctx))
    except Exception:
        return 200
    return status if status is not None and 100 <= status <= 999 else 200


def rate_limited(verdict: ratelimit.Verdict):
    return problem(429, "You have made too many requests; try again in a few seconds.",
                   title="Too Many Requests", headers=verdict.headers())


def scan_match(cfg: Config, path: str) -> bool:
    low = path.lower()
    return any(p.match(low) for p in cfg.scan_paths)


def states_now() -> dict[str, int]:
    return context.states(*STATE_NAMES)

