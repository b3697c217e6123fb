"""Requests the server makes to URLs its users give it (Web Push endpoints): which targets are
refused, and a POST that goes only to the address that was checked.

A URL a user hands the server must not let them reach what only the server can reach: its own
loopback services, the private network it sits on, a cloud's metadata endpoint. So:

- only `https` URLs, with a host and without user information;
- every address the host resolves to must be public (`ipaddress`'s `is_global`, not multicast);
  loopback, private, link-local (169.254.169.254 and the other metadata addresses), shared,
  reserved and unspecified ones are refused; an IPv6 address that carries an IPv4 one
  (IPv4-mapped, NAT64 64:ff9b::/96, 6to4) is judged as that IPv4 address;
  an operator may let some networks through (`EGRESS_ALLOWED_NETWORKS`, e.g. a push service on
  the LAN);
- the request connects to the address that was checked (not to a second resolution, which a
  DNS answer with a short TTL could point elsewhere), verifying the certificate for the URL's
  host name;
- a redirect is never followed: it is the answer, and the caller treats it as a failure.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

MAX_URL_LENGTH = 2048


class Refused(ValueError):
    """The URL may not be reached from the server; the message says why (safe to show its user)."""


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent on the request line

    @property
    def origin(self) -> str:
        default = self.port == 443
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}" + ("" if default else f":{self.port}")


def _allowed_networks():
    out = []
    for item in settings.EGRESS_ALLOWED_NETWORKS:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:  # reported by the system check (jmapapi.E002); lets nothing through
            continue
    return out


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that carries an IPv4 one reaches that one: judged as it.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
    if any(ip.version == net.version and ip in net for net in _allowed_networks()):
        return True
    return ip.is_global and not ip.is_multicast


def parse(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an https URL, or Refused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise Refused(f"The URL must be a string of at most {MAX_URL_LENGTH} characters.")
    if any(ord(c) < 0x21 or ord(c) == 0x7f for c in url):
        raise Refused("The URL holds spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError:
        raise Refused("The URL is not valid.") from None
    if parts.scheme.lower() != "https":
        raise Refused("The URL must be https.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("The URL must not hold user information.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("The URL has no host.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path


def resolve(url: str) -> Target:
    """The URL checked and its host resolved to one allowed address; Refused otherwise."""
    host, port, path = parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Refused(f"The host {host} cannot be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise Refused(f"The host {host} cannot be resolved.")
    # Every address, not only the first: a name with one public and one private address would
    # otherwise reach the private one whenever the resolver's order changes.
    if not all(address_allowed(a) for a in addresses):
        raise Refused(f"The host {host} resolves to an address the server does not send to "
                      "(loopback, private, link-local or reserved).")
    return Target(url, host, port, addresses[0], path)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to the checked address of `target`; the response's status (a 3xx is returned,
    not followed). Network and TLS failures raise urllib3.exceptions.HTTPError or OSError."""
    pool = urllib3.HTTPSConnectionPool(
        target.address, target.port, server_hostname=target.host, assert_hostname=target.host,
        cert_reqs="CERT_REQUIRED", timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False,
        maxsize=1)
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != 443:
        host_header += f":{target.port}"
    try:
        resp = pool.urlopen("POST", target.path, body=body, headers={"Host": host_header, **headers},
                            redirect=False, retries=False, assert_same_host=False, preload_content=False)
        try:
            resp.read(65536)  # the answer is not used; read a little so the connection ends cleanly
        finally:
            resp.release_conn()
        return resp.status
    finally:
        pool.close()
