"""Contact form submissions: the checks of the reference, in its order, then one email to the
recipients through Django's email backend (the SMTP relay of EMAIL_HOST/EMAIL_PORT).

`submit()` is the one entry point; the view only parses the HTTP request and translates the
Result. Reference: spec http.md §10.2 steps 4-10 (steps 1-3, routing and body parsing, are the
view's).
"""
from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import urlsplit

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from registry import services as registry
from security import ratelimit
from security import services as security

from .models import HttpForm

log = logging.getLogger(__name__)

INVALID_EMAIL = "Please enter a valid email address."
EMPTY_FORM = "Empty form"
HONEYPOT = "Honey pot field present"
NOT_DELIVERED = "The message could not be delivered. Please try again later."


def no_mx(domain: str) -> str:
    return f'No MX records found for domain "{domain}". Please enter a valid email address.'


def dns_unavailable(domain: str) -> str:
    return f'The domain "{domain}" could not be checked. Please try again later.'


@dataclass(frozen=True)
class Result:
    """What became of a submission.

    kind: "sent" (200), "failed" (400 with `details`, the reference's {"data": …} answer),
    "honeypot" (400 problem+json) or "limited" (429 problem+json, `retry_after` seconds).
    """

    kind: str
    details: str | None = None
    retry_after: int | None = None

    @property
    def success(self) -> bool:
        return self.kind == "sent"


def current() -> HttpForm:
    """The settings as they are now (cached under the HttpForm state)."""
    return registry.current(HttpForm)


# --- values ---------------------------------------------------------------------------------
def _first(fields: list[tuple[str, str]], name: str | None) -> str:
    """The first non-empty value of the field `name`, trimmed, or ""."""
    if not name:
        return ""
    for key, value in fields:
        if key == name and value.strip():
            return value.strip()
    return ""


def one_line(text: str) -> str:
    """`text` made safe for a header: every run of white space (CR and LF included) becomes one
    space and other control characters go, so no value can end a header and start another."""
    text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(text.split())


# --- the sender's address -------------------------------------------------------------------
def _syntax_ok(email: str) -> bool:
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def _tld_ok(domain: str) -> bool:
    """A stand-in for the reference's public-suffix check: a dot, and a top-level label made of
    letters (or an IDNA "xn--" label)."""
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(labels):
        return False
    tld = labels[-1]
    return (tld.isalpha() and len(tld) >= 2) or tld.startswith("xn--")


def configure(resolver):
    """`resolver` (dnspython's, sync or asyncio, made with configure=not bool(DNS_SERVERS)) asking
    DNS_SERVERS when they are set; the system's resolvers are read otherwise. The one reading of
    the setting, shared by the MX check here and the delivery test (submission.deliverytest)."""
    servers = getattr(settings, "DNS_SERVERS", None) or []
    if servers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in map(_host_port, servers)]
    return resolver


def system_resolver_wanted() -> bool:
    return not (getattr(settings, "DNS_SERVERS", None) or [])


def _resolver():
    return configure(dns.resolver.Resolver(configure=system_resolver_wanted()))


def _host_port(server: str) -> tuple[str, int]:
    """"192.0.2.1", "192.0.2.1:5353", "::1" or "[::1]:5353"."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 53


def mail_domain(domain: str) -> str:
    """Whether `domain` can receive mail: "ok", "none" (no such domain, a null MX, or neither MX
    nor address records: RFC 5321 §5.1 falls back to the A/AAAA records), or "error" (DNS could
    not answer in time)."""

    budget = float(getattr(settings, "DNS_TIMEOUT", 5))
    deadline = time.monotonic() + budget
    try:
        name = dns.name.from_text(domain)
    except (UnicodeError, ValueError, dns.exception.DNSException):
        return "none"  # not a name DNS can hold (an over-long label, say): no mail there either
    try:
        resolver = _resolver()
    except (dns.exception.DNSException, ValueError, OSError):  # no /etc/resolv.conf, a bad DNS_SERVERS
        return "error"

    def query(rdtype):
        return resolver.resolve(name, rdtype, search=False, lifetime=max(0.1, deadline - time.monotonic()))

    try:
        answer = query("MX")
        records = list(answer)
        # RFC 7505: a single MX of preference 0 naming the root says "no mail here".
        if len(records) == 1 and records[0].exchange == dns.name.root:
            return "none"
        return "ok"
    except dns.resolver.NXDOMAIN:
        return "none"
    except dns.resolver.NoAnswer:
        pass
    except dns.exception.DNSException:
        return "error"
    for rdtype in ("A", "AAAA"):
        try:
            query(rdtype)
            return "ok"
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException:
            return "error"
    return "none"


def check_sender(form: HttpForm, email: str) -> str | None:
    """Why `email` is refused as the sender, or None."""
    if email == form.default_from_address.strip().lower():
        return None
    # Always checked, whatever validateDomain says: the address goes into the From header and
    # the envelope, so it must be one address and nothing more.
    if not _syntax_ok(email):
        return INVALID_EMAIL
    if not form.validate_domain:
        return None
    local, _, domain = email.rpartition("@")
    if not local or not _tld_ok(domain):
        return INVALID_EMAIL
    status = mail_domain(domain)
    if status == "none":
        return no_mx(domain)
    if status == "error":
        log.warning("contact form: DNS lookup for %s failed or timed out", domain)
        return dns_unavailable(domain)
    return None


def ascii_address(email: str) -> str | None:
    """`email` as the From header and the envelope can carry it: an internationalised domain in
    its IDNA (xn--) form; None for what has no ASCII form, such as a non-ASCII local part (Django's
    validator lets "\\u017f" through, since it case-folds to "s")."""
    local, _, domain = email.rpartition("@")
    if not local.isascii():
        return None
    if domain.isascii():
        return email
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


# --- the message ----------------------------------------------------------------------------
def server_hostname() -> str:
    return urlsplit(getattr(settings, "PUBLIC_URL", "")).hostname or "localhost"


def build_message(form: HttpForm, fields, email: str, name: str, subject: str, remote_ip, remote_port=None,
                  now: float | None = None) -> EmailMessage:
    lines = []
    for key, value in fields:
        if value.strip():
            lines.append(f"{key}: {value.strip()}".replace("\r\n", "\n").replace("\r", "\n"))
    lines.append(f"Date: {formatdate(now, usegmt=True)}")
    lines.append(f"IP: {remote_ip}:{remote_port}" if remote_port else f"IP: {remote_ip}")
    return EmailMessage(
        subject=subject, body="\n".join(lines) + "\n", from_email=formataddr((name, email)), to=list(form.deliver_to),
        headers={
            "Auto-Submitted": "auto-generated",
            # Set here: Django's own would ask the resolver for this machine's name.
            "Message-ID": make_msgid(domain=server_hostname()),
        },
    )


def deliver(message: EmailMessage) -> bool:
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # noqa: BLE001  (smtplib, socket and encoding errors alike: never a 500)
        # The exception names what failed (connection refused, a reply code); it holds no credentials.
        log.warning("contact form: delivery to %d recipient(s) through %s:%s failed: %s: %s",
                    len(message.to), settings.EMAIL_HOST, settings.EMAIL_PORT, type(exc).__name__, exc)
        return False
    return True


# --- the whole submission -------------------------------------------------------------------
def submit(form: HttpForm, fields: list[tuple[str, str]], remote_ip: str | None, remote_port=None) -> Result:
    """Check a parsed submission (field name, value pairs in submission order) and mail it."""
    # 4. The form's own rate, per client address; loopback and allowed addresses are exempt.
    if form.rate_limit_count is not None and form.rate_limit_period and not security.is_allowed(remote_ip):
        verdict = ratelimit.hit(f"form:{remote_ip or 'unknown'}", form.rate_limit_count,
                                form.rate_limit_period.total_seconds())
        if not verdict.allowed:
            return Result("limited", retry_after=verdict.reset)
    # 5. A filled honeypot refuses the submission (it is not silently dropped).
    honeypot = form.field_honey_pot
    if honeypot and any(key == honeypot and value for key, value in fields):
        return Result("honeypot", HONEYPOT)
    # 6. The sender, the name and the subject: the configured field's value, else the default.
    email = (_first(fields, form.field_email) or form.default_from_address).strip().lower()
    name = one_line(_first(fields, form.field_name)) or one_line(form.default_name)
    subject = one_line(_first(fields, form.field_subject)) or one_line(form.default_subject)
    # 7. The sender's address.
    refusal = check_sender(form, email)
    if refusal:
        return Result("failed", refusal)
    email = ascii_address(email)
    if email is None:
        return Result("failed", INVALID_EMAIL)
    # 8. Nothing filled in.
    if not any(value.strip() for _key, value in fields):
        return Result("failed", EMPTY_FORM)
    # 9. One message to every recipient.
    if not form.deliver_to:
        return Result("failed", NOT_DELIVERED)
    message = build_message(form, fields, email, name, subject, remote_ip, remote_port)
    if not deliver(message):
        return Result("failed", NOT_DELIVERED)
    log.info("contact form: submission from %s mailed to %d recipient(s)", remote_ip, len(message.to))
    return Result("sent")
