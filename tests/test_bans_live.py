"""Bans and forwarded client addresses through a real server with several workers (issue 10,
items 7 and 8): failures that used to answer 401 forever now ban whichever worker sees them, a
forwarded loopback address is never exempt, and forwarded headers count only from a trusted
proxy. The test itself is the proxy (127.0.0.1); 127.0.0.2 is an untrusted peer."""
from __future__ import annotations

import re
import socket

import pytest
import requests

from .live import host_port, live_server

BAN_AFTER = 2  # authBanRate count: the third failure bans


@pytest.fixture(scope="module")
def site():
    with live_server(workers=3) as server:
        server.manage("update", "security", "--field", f'authBanRate={{"count": {BAN_AFTER}, "period": 3600000}}')
        server.manage("update", "systemsettings", "--field", 'proxyTrustedNetworks={"127.0.0.1": true}')
        server.manage("update", "http", "--field", "useXForwarded=true")
        yield server


# Failures count per address and per the name they were tried under (a client id here). Every
# call hands out an address never used before in this module: a random one could repeat an
# address an earlier case had banned, and that case's ban would answer the new case's first try.
_ADDRESSES = (f"203.0.113.{host}" for host in range(1, 255))


def _address() -> str:
    return next(_ADDRESSES)


FAILURES = {
    "garbage OAuth token on /jmap/session": lambda url, h: requests.get(
        url + "/jmap/session", headers={**h, "Authorization": "Bearer sw1.garbage"}, timeout=30),
    "garbage Bearer on /api/account": lambda url, h: requests.get(
        url + "/api/account", headers={**h, "Authorization": "Bearer nonsense"}, timeout=30),
    "garbage token at /auth/userinfo": lambda url, h: requests.get(
        url + "/auth/userinfo", headers={**h, "Authorization": "Bearer sw1.x"}, timeout=30),
    "unknown authorization code at /auth/token": lambda url, h: requests.post(url + "/auth/token", headers=h, data={
        "grant_type": "authorization_code", "code": "guess", "client_id": "pub",
        "redirect_uri": "https://a.example/cb", "code_verifier": "v" * 43}, timeout=30),
    "unknown device code at /auth/token": lambda url, h: requests.post(url + "/auth/token", headers=h, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "guess", "client_id": "tv"},
        timeout=30),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_every_failure_bans_across_workers(site, failure):
    """Each request is a new connection, so gunicorn spreads them over the three workers."""
    outside = {"X-Forwarded-For": _address()}
    statuses = [FAILURES[failure](site.url, outside).status_code for _ in range(BAN_AFTER + 1)]
    assert statuses[0] in (400, 401), statuses
    assert requests.get(site.url + "/healthz/live", headers=outside, timeout=30).status_code == 403, statuses
    # Nobody else is affected: another address, and the proxy itself (never banned).
    assert requests.get(site.url + "/healthz/live", headers={"X-Forwarded-For": _address()},
                        timeout=30).status_code == 200
    assert requests.get(site.url + "/healthz/live", timeout=30).status_code == 200


# Each case claims another loopback address: a ban left by one case must not make the next pass.
@pytest.mark.parametrize("claim", [{"X-Forwarded-For": "127.0.0.1"}, {"X-Forwarded-For": "::1"},
                                   {"Forwarded": "for=127.0.0.9"}, {"Forwarded": 'for="127.0.0.10:4711"'}],
                         ids=["xff-v4", "xff-v6", "forwarded-v4", "forwarded-quoted-port"])
def test_a_forwarded_loopback_address_is_not_exempt(site, claim):
    assert requests.get(site.url + "/healthz/live", headers=claim, timeout=30).status_code == 200
    for _ in range(BAN_AFTER + 1):
        requests.get(site.url + "/jmap/session", headers={**claim, "Authorization": "Bearer sw1.x"}, timeout=30)
    assert requests.get(site.url + "/healthz/live", headers=claim, timeout=30).status_code == 403
    # The real loopback peer stays exempt.
    assert requests.get(site.url + "/healthz/live", timeout=30).status_code == 200


def _get_from(source: str, url: str, path: str, headers: dict) -> int:
    host, port = host_port(url)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((host, port), timeout=30, source_address=(source, 0)) as sock:
        sock.sendall(head.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(re.match(rb"HTTP/1\.[01] (\d{3})", data).group(1))


def test_forwarded_headers_count_only_from_a_trusted_proxy(site):
    """An access rule refuses one outside address. Claimed through the trusted proxy, the
    address is refused; claimed by an untrusted peer, the header is ignored."""
    refused = _address()
    site.manage("update", "http", "--field",
                f'allowedEndpoints={{"match": [{{"if": "remote_ip == \'{refused}\'", "then": "403"}}], "else": "200"}}')
    try:
        claim = {"X-Forwarded-For": refused}
        assert _get_from("127.0.0.1", site.url, "/healthz/live", claim) == 403
        assert _get_from("127.0.0.2", site.url, "/healthz/live", claim) == 200
        assert _get_from("127.0.0.2", site.url, "/healthz/live", {"Forwarded": f"for={refused}"}) == 200
    finally:
        site.manage("update", "http", "--field", 'allowedEndpoints={"match": [], "else": "200"}')
