"""aiosmtpd sinks for the outbound tests: a real SMTP server on a loopback port, in a thread,
that records what it accepted, answers 450 to `tempfail…` and 550 to `permfail…` recipients,
and optionally offers STARTTLS, implicit TLS and AUTH (PLAIN, LOGIN) against one password."""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.mailservers import SmtpServer

USER, PASSWORD = "relay-user", "Sm7p-relay-S3cret"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 signed by itself (no CA anyone trusts)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "sink.crt", directory / "sink.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Sink:
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)  # (mechanism, username) that succeeded
    failed_logins: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address.startswith("tempfail"):
            return "450 4.2.1 Mailbox busy, try later"
        if address.startswith("permfail"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Queued as TEST1"

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
                and auth_data.password.decode() == PASSWORD:
            self.logins.append((mechanism, USER))
            return AuthResult(success=True)
        self.failed_logins += 1
        return AuthResult(success=False, handled=False)


@contextmanager
def sink(*, starttls: ssl.SSLContext | None = None, implicit: ssl.SSLContext | None = None, auth: bool = False,
         mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"), handler: Sink | None = None):
    """Run a sink (a new Sink, or `handler`); yields (Sink, port)."""
    handler = handler or Sink()
    kwargs = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=True)
    if auth:
        kwargs.update(authenticator=handler.authenticator, auth_required=True,
                      auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in mechanisms])
    with SmtpServer(handler, ssl_context=implicit, **kwargs) as server:
        yield handler, server.port
