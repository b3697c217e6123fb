"""The delivery test: how mail for an address or a domain would leave this server, stage by stage,
as the reference's live delivery test reports it (spec http.md §8.6).

`run(target, timeout)` is an async generator of stage dicts (`{"type": "mxLookupStart", ...}`,
the reference's names and fields): MX lookup, MTA-STS policy, TLS-RPT record, then for each mail
exchanger (in preference order, at most DELIVERY_TEST_MAX_MX) the MTA-STS check of its name, its
TLSA (DANE) records, its addresses and, for each address (at most DELIVERY_TEST_MAX_IPS), an SMTP
conversation: greeting, EHLO, STARTTLS with the certificate verified, EHLO again, and for an
address target MAIL FROM:<> and RCPT TO, then RSET and QUIT. DATA is never sent. The first
exchanger that accepts the recipient (or, for a domain, completes the TLS handshake) ends it.

Every failure is a stage of its own ("...Error" with a reason), never an exception: the caller
streams what it gets. Each stage waits at most `timeout` seconds and the whole test at most
DELIVERY_TEST_MAX_SECONDS.

The target is chosen by whoever calls, so the test is also a way to make this server open
connections: every address it would connect to (an exchanger's, the MTA-STS policy host's) must
be a public one, unless DELIVERY_TEST_ALLOW_PRIVATE says otherwise (tests, labs).

Nothing here blocks the event loop: DNS goes through dnspython's asyncio resolver, and the SMTP
and HTTPS conversations (smtplib, http.client, as submission.outbound uses them) run step by step
in the loop's thread pool, each step bounded by its socket's timeout.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import http.client
import ipaddress
import smtplib
import socket
import ssl
import time
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.resolver
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from contactform import services as contactform

from . import addresses

# RFC 8461 §3.3: a policy body larger than this is not a policy.
MAX_POLICY_BYTES = 64 * 1024


class TargetError(ValueError):
    """The target is neither a domain name nor an address."""


class OutOfTime(TimeoutError):
    """The whole test has used DELIVERY_TEST_MAX_SECONDS."""


def parse_target(raw: str) -> tuple[str, str | None]:
    """(domain, address or None) of a target as the reference takes it: lowercased, an address
    when it holds an "@". The domain is a host name of at least two labels (IDNA encoded), never
    an address literal."""
    target = raw.strip().lower()
    local = None
    if "@" in target:
        if not addresses.is_address(target):
            raise TargetError("The target is not a valid email address.")
        local, _, domain = target.rpartition("@")
        if not local.isascii():
            raise TargetError("An address with a non-ASCII local part needs SMTPUTF8, which the test does not use.")
    else:
        domain = target
    domain = domain[:-1] if domain.endswith(".") else domain
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetError("The target's domain is not a valid domain name.") from None
    labels = ascii_domain.split(".")
    if (len(labels) < 2 or len(ascii_domain) > 253 or not all(labels)
            or not all(len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
                       and not label.startswith("-") and not label.endswith("-") for label in labels)
            or labels[-1].isdigit()):
        raise TargetError("The target's domain is not a valid domain name.")
    return ascii_domain, (None if local is None else f"{local}@{ascii_domain}")


def public_destination(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether the test may connect to `ip`: a global unicast address, or any unicast address
    when DELIVERY_TEST_ALLOW_PRIVATE is set."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    return ip.is_global or bool(settings.DELIVERY_TEST_ALLOW_PRIVATE)


def refusal(ip) -> str:
    return (f"Refused to connect to {ip}: not a public address (set DELIVERY_TEST_ALLOW_PRIVATE to test "
            "private or loopback destinations).")


def _resolver() -> dns.asyncresolver.Resolver:
    """The resolver of the contact form's MX check: DNS_SERVERS, else the system's."""
    resolver = contactform.configure(dns.asyncresolver.Resolver(configure=contactform.system_resolver_wanted()))
    # DNSSEC: the resolver's AD bit says whether it validated an answer (DANE needs it).
    resolver.use_edns(0, dns.flags.DO, 1232)
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OutOfTime):
        return str(exc)
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return "Domain not found (NXDOMAIN)"
    if isinstance(exc, dns.resolver.NoAnswer):
        return "No records found"
    if isinstance(exc, (dns.exception.Timeout, TimeoutError)) or (
            # smtplib turns a read's timeout into "Connection unexpectedly closed: timed out"
            isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError)):
        return "Timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"Certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused"
    text = str(exc) or type(exc).__name__
    return text[:300]


def _reply(code: int, message) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"[:300]


def parse_policy(text: str) -> dict:
    """An MTA-STS policy body (RFC 8461 §3.2) as {"mode", "mx", "maxAge"}; ValueError when it is
    not one."""
    fields: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"Malformed policy line: {line[:80]!r}")
        fields.setdefault(key.strip(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        raise ValueError("The policy's version is not STSv1.")
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        raise ValueError(f"The policy's mode {mode!r} is not enforce, testing or none.")
    max_age = (fields.get("max_age") or [""])[0]
    if not max_age.isdigit() or len(max_age) > 10:
        raise ValueError("The policy has no valid max_age.")
    mx = fields.get("mx", [])
    if mode != "none" and not mx:
        raise ValueError("The policy names no mx.")
    return {"mode": mode, "mx": mx, "maxAge": int(max_age)}


def policy_allows(policy: dict, host: str) -> bool:
    """RFC 8461 §4.1: the host matches an mx pattern, "*." standing for exactly one label."""
    host = host.rstrip(".").lower()
    for pattern in policy["mx"]:
        pattern = pattern.rstrip(".").lower()
        if pattern.startswith("*."):
            head, _, rest = host.partition(".")
            if head and rest == pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def _tlsa_entries(answer) -> list[dict]:
    return [{"usage": r.usage, "selector": r.selector, "matchingType": r.mtype, "data": r.cert.hex()}
            for r in answer]


def dane_matches(entries: list[dict], der: bytes) -> bool:
    """Whether a DANE-EE (usage 3) record matches the server's certificate (RFC 7671 §5.1)."""
    spki = None
    for entry in entries:
        if entry["usage"] != 3:
            continue
        if entry["selector"] == 1:
            if spki is None:
                spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            data = spki
        else:
            data = der
        digest = {0: lambda b: b, 1: lambda b: hashlib.sha256(b).digest(),
                  2: lambda b: hashlib.sha512(b).digest()}.get(entry["matchingType"])
        if digest is not None and digest(data).hex() == entry["data"]:
            return True
    return False


def _https_get(host: str, ip: str, port: int, path: str, timeout: float) -> tuple[int, str, bytes]:
    """GET https://host{path} from the address `ip` (already checked), the certificate verified
    against `host`; no redirect is followed (RFC 8461 §3.3). (status, content type, body)."""
    context = ssl.create_default_context()
    raw = socket.create_connection((ip, port), timeout)
    try:
        sock = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = sock
    try:
        conn.request("GET", path, headers={"Host": host, "Accept": "text/plain", "User-Agent": "Stalwart delivery test"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read(MAX_POLICY_BYTES + 1)
    finally:
        conn.close()


class _Clock:
    """The stage timeout and the whole test's deadline."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.deadline = time.monotonic() + max(1, settings.DELIVERY_TEST_MAX_SECONDS)

    def left(self) -> float:
        """Seconds the next stage may take; TimeoutError once the whole test is out of time."""
        rest = self.deadline - time.monotonic()
        if rest <= 0.05:
            raise OutOfTime("The delivery test ran out of time (DELIVERY_TEST_MAX_SECONDS).")
        return min(self.timeout, rest)


def _ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


async def _blocking(fn, *args, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def run(target: str, timeout: float) -> AsyncIterator[dict]:
    """The stages of the delivery test of `target` (parsed with parse_target), as they happen."""
    domain, email = parse_target(target)
    clock = _Clock(timeout)
    resolver = _resolver()

    async def lookup(name: str, rdtype: str):
        left = clock.left()
        return await resolver.resolve(dns.name.from_text(name), rdtype, search=False, lifetime=left)

    yield {"type": "mxLookupStart", "domain": domain}
    start = time.monotonic()
    try:
        answer = await lookup(domain, "MX")
    except (dns.exception.DNSException, TimeoutError) as exc:
        reason = "No MX records found" if isinstance(exc, dns.resolver.NoAnswer) else _reason(exc)
        yield {"type": "mxLookupError", "reason": reason, "elapsed": _ms(start)}
        return
    records: dict[int, list[str]] = {}
    for record in sorted(answer, key=lambda r: r.preference):
        records.setdefault(record.preference, []).append(record.exchange.to_text(omit_final_dot=True).lower())
    hosts = [host for pref in sorted(records) for host in records[pref] if host not in ("", ".")]
    if not hosts:  # RFC 7505: "0 ." says the domain takes no mail
        yield {"type": "mxLookupError", "reason": "Null MX record", "elapsed": _ms(start)}
        return
    yield {"type": "mxLookupSuccess", "elapsed": _ms(start),
           "mxs": [{"exchanges": records[pref], "preference": pref} for pref in sorted(records)]}

    policy = None
    async for stage in _mta_sts(domain, lookup, clock):
        if stage["type"] == "mtaStsFetchSuccess":
            policy = stage["policy"]
        yield stage
    async for stage in _tls_rpt(domain, lookup):
        yield stage

    ehlo_name = settings.SUBMISSION_EHLO_NAME or await _blocking(socket.getfqdn)
    port = settings.DELIVERY_TEST_SMTP_PORT
    for host in hosts[:max(1, settings.DELIVERY_TEST_MAX_MX)]:
        yield {"type": "deliveryAttemptStart", "hostname": host}
        if policy is not None and policy["mode"] != "none":
            if policy_allows(policy, host):
                yield {"type": "mtaStsVerifySuccess"}
            else:
                yield {"type": "mtaStsVerifyError", "reason": "Not authorized by policy"}
                if policy["mode"] == "enforce":
                    continue

        yield {"type": "tlsaLookupStart"}
        start = time.monotonic()
        tlsa = None
        try:
            answer = await lookup(f"_{port}._tcp.{host}", "TLSA")
            if not answer.response.flags & dns.flags.AD:
                yield {"type": "tlsaNotFound", "elapsed": _ms(start),
                       "reason": "TLSA records found, but the resolver did not validate them with DNSSEC"}
            else:
                tlsa = _tlsa_entries(answer)
                yield {"type": "tlsaLookupSuccess", "record": {"entries": tlsa}, "elapsed": _ms(start)}
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            yield {"type": "tlsaNotFound", "elapsed": _ms(start), "reason": "No TLSA records found for MX"}
        except (dns.exception.DNSException, TimeoutError) as exc:
            yield {"type": "tlsaLookupError", "elapsed": _ms(start), "reason": _reason(exc)}

        yield {"type": "ipLookupStart"}
        start = time.monotonic()
        ips, failure = [], None
        for rdtype in ("A", "AAAA"):
            try:
                ips += [ipaddress.ip_address(r.address) for r in await lookup(host, rdtype)]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.DNSException, TimeoutError) as exc:
                failure = _reason(exc)
                break
        if failure or not ips:
            yield {"type": "ipLookupError", "reason": failure or "No IP addresses found for host", "elapsed": _ms(start)}
            continue
        ips = ips[:max(1, settings.DELIVERY_TEST_MAX_IPS)]
        yield {"type": "ipLookupSuccess", "remoteIps": [str(ip) for ip in ips], "elapsed": _ms(start)}

        for ip in ips:
            done = False
            async for stage in _smtp(host, ip, port, email, ehlo_name, tlsa, clock):
                if stage is True:
                    done = True
                else:
                    yield stage
            if done:
                return


async def _mta_sts(domain: str, lookup, clock: _Clock) -> AsyncIterator[dict]:
    yield {"type": "mtaStsFetchStart"}
    start = time.monotonic()
    try:
        answer = await lookup(f"_mta-sts.{domain}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        yield {"type": "mtaStsNotFound", "elapsed": _ms(start)}
        return
    except (dns.exception.DNSException, TimeoutError) as exc:
        yield {"type": "mtaStsFetchError", "reason": _reason(exc), "elapsed": _ms(start)}
        return
    texts = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    found = [t for t in texts if t.replace(" ", "").startswith("v=STSv1")]
    if not found:
        yield {"type": "mtaStsNotFound", "elapsed": _ms(start)}
        return
    if len(found) > 1:  # RFC 8461 §3.1: then there is no policy
        yield {"type": "mtaStsFetchError", "reason": "More than one STSv1 TXT record", "elapsed": _ms(start)}
        return
    record = dict(part.strip().partition("=")[::2] for part in found[0].split(";") if "=" in part)
    host = f"mta-sts.{domain}"
    try:
        ips = []
        for rdtype in ("A", "AAAA"):
            try:
                ips += [ipaddress.ip_address(r.address) for r in await lookup(host, rdtype)]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
        if not ips:
            raise LookupError(f"{host} has no address")
        allowed = [ip for ip in ips if public_destination(ip)]
        if not allowed:
            raise PermissionError(refusal(ips[0]))
        status, content_type, body = await _blocking(_https_get, host, str(allowed[0]), 443,
                                                     "/.well-known/mta-sts.txt", clock.left())
        if status != 200:
            raise ValueError(f"https://{host}/.well-known/mta-sts.txt answered {status}")
        if content_type.split(";")[0].strip().lower() != "text/plain":
            raise ValueError(f"The policy's content type is {content_type or 'missing'}, not text/plain")
        if len(body) > MAX_POLICY_BYTES:
            raise ValueError("The policy is larger than 64 KiB")
        policy = parse_policy(body.decode("utf-8", "replace"))
    except (OSError, ValueError, LookupError, TimeoutError, dns.exception.DNSException, http.client.HTTPException) as exc:
        yield {"type": "mtaStsFetchError", "reason": _reason(exc), "elapsed": _ms(start)}
        return
    yield {"type": "mtaStsFetchSuccess", "policy": {"id": record.get("id", ""), **policy}, "elapsed": _ms(start)}


async def _tls_rpt(domain: str, lookup) -> AsyncIterator[dict]:
    yield {"type": "tlsRptLookupStart"}
    start = time.monotonic()
    try:
        answer = await lookup(f"_smtp._tls.{domain}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        yield {"type": "tlsRptNotFound", "elapsed": _ms(start)}
        return
    except (dns.exception.DNSException, TimeoutError) as exc:
        yield {"type": "tlsRptLookupError", "reason": _reason(exc), "elapsed": _ms(start)}
        return
    texts = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    found = [t for t in texts if t.replace(" ", "").startswith("v=TLSRPTv1")]
    if not found:
        yield {"type": "tlsRptNotFound", "elapsed": _ms(start)}
        return
    rua = []
    for part in found[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() != "rua":
            continue
        for uri in value.split(","):
            uri = uri.strip()
            if uri.lower().startswith("mailto:"):
                rua.append({"type": "mail", "email": uri[7:]})
            elif uri.lower().startswith("https:"):
                rua.append({"type": "http", "url": uri})
    if not rua:
        yield {"type": "tlsRptLookupError", "reason": "The TLS-RPT record has no valid rua", "elapsed": _ms(start)}
        return
    yield {"type": "tlsRptLookupSuccess", "rua": rua, "elapsed": _ms(start)}


async def _smtp(host: str, ip, port: int, email: str | None, ehlo_name: str, tlsa: list[dict] | None,
                clock: _Clock) -> AsyncIterator[dict | bool]:
    """One SMTP conversation; yields its stages, and True when it reached its goal."""
    yield {"type": "connectionStart", "remoteIp": str(ip)}
    start = time.monotonic()
    if not public_destination(ip):
        yield {"type": "connectionError", "elapsed": 0, "reason": refusal(ip)}
        return
    smtp = smtplib.SMTP(local_hostname=ehlo_name)
    try:
        try:
            left = clock.left()
            smtp.timeout = left
            smtp.sock = await _blocking(socket.create_connection, (str(ip), port), left)
            smtp._host = host  # the name STARTTLS verifies the certificate against
        except (OSError, TimeoutError) as exc:
            yield {"type": "connectionError", "elapsed": _ms(start), "reason": _reason(exc)}
            return
        yield {"type": "connectionSuccess", "elapsed": _ms(start)}

        async def step(name: str, fn, *args, expect=(250,), **kwargs):
            """Runs one command; returns (stages, ok)."""
            begin = time.monotonic()
            try:
                smtp.sock.settimeout(clock.left())
                code, message = await _blocking(fn, *args, **kwargs)
            except (OSError, TimeoutError, smtplib.SMTPException) as exc:
                return [{"type": f"{name}Error", "elapsed": _ms(begin), "reason": _reason(exc)}], False
            if code not in expect:
                return [{"type": f"{name}Error", "elapsed": _ms(begin), "reason": _reply(code, message)}], False
            return [{"type": f"{name}Success", "elapsed": _ms(begin)}], True

        yield {"type": "readGreetingStart"}
        stages, ok = await step("readGreeting", smtp.getreply, expect=(220,))
        for stage in stages:
            yield stage
        if not ok:
            return
        yield {"type": "ehloStart"}
        stages, ok = await step("ehlo", smtp.ehlo)
        for stage in stages:
            yield stage
        if not ok:
            return

        yield {"type": "startTlsStart"}
        if not smtp.has_extn("starttls"):
            yield {"type": "startTlsError", "elapsed": 0, "reason": "STARTTLS not advertised by host"}
            await _quietly_quit(smtp)
            return
        stages, ok = await step("startTls", smtp.starttls, context=ssl.create_default_context(), expect=(220,))
        for stage in stages:
            yield stage
        if not ok:
            return
        if tlsa is not None:
            der = smtp.sock.getpeercert(binary_form=True) or b""
            if dane_matches(tlsa, der):
                yield {"type": "daneVerifySuccess"}
            else:
                yield {"type": "daneVerifyError", "reason": "No DANE-EE TLSA record matches the certificate"}
        yield {"type": "ehloStart"}
        stages, ok = await step("ehlo", smtp.ehlo)
        for stage in stages:
            yield stage
        if not ok:
            return

        reached = email is None
        if email is not None:
            yield {"type": "mailFromStart"}
            stages, ok = await step("mailFrom", smtp.mail, "")
            for stage in stages:
                yield stage
            if ok:
                yield {"type": "rcptToStart"}
                stages, reached = await step("rcptTo", smtp.rcpt, email, expect=(250, 251))
                for stage in stages:
                    yield stage

        yield {"type": "quitStart"}
        begin = time.monotonic()
        await _quietly_quit(smtp, clock, reset=email is not None)
        yield {"type": "quitCompleted", "elapsed": _ms(begin)}
        if reached:
            yield True
    finally:
        smtp.close()


async def _quietly_quit(smtp: smtplib.SMTP, clock: _Clock | None = None, reset: bool = False) -> None:
    """RSET (after MAIL FROM) and QUIT; the answers do not matter."""
    def bye():
        try:
            if reset:
                smtp.rset()
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
    try:
        if clock is not None:
            smtp.sock.settimeout(clock.left())
        await _blocking(bye)
    except (OSError, TimeoutError):
        pass
