"""Real servers on loopback for the delivery test's tests, on tests.mailservers: the zone its DNS
server answers from, with the AD bit on the names the zone calls DNSSEC-secure; mail exchangers
with and without STARTTLS, on one port and several loopback addresses (127.0.0.1, 127.0.0.2,
...), recording the commands they were sent; a port that accepts connections and never greets;
and a certificate authority whose file, given as SSL_CERT_FILE, makes the exchanger's
certificate verify.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import socket
import ssl
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import free_port
from tests.mailservers import SmtpServer

TLS_IP, PLAIN_IP, CLOSED_IP, SILENT_IP, STS_IP = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.4"
MX_TLS = "mx.tls.test"


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


@dataclass
class Authority:
    ca_file: Path
    cert_file: Path
    key_file: Path
    spki_sha256: str  # of the exchanger's certificate, for its TLSA record (3 1 1)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def authority(directory: Path, host: str = MX_TLS) -> Authority:
    """A CA and a certificate it signs for `host`."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Delivery test CA")).issuer_name(_name("Delivery test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "mx.pem", directory / "mx.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Authority(*paths, hashlib.sha256(spki).hexdigest())


def zone(port: int, spki_sha256: str) -> dict:
    """name -> {type: [rdata]}; the `secure` entry lists the names answered with the AD bit."""
    return {
        # A STARTTLS exchanger with a certificate for its name, DANE and TLS-RPT.
        "tls.test.": {"MX": [f"10 {MX_TLS}."]},
        f"{MX_TLS}.": {"A": [TLS_IP]},
        f"_{port}._tcp.{MX_TLS}.": {"TLSA": [f"3 1 1 {spki_sha256}"]},
        "_smtp._tls.tls.test.": {"TXT": ['"v=TLSRPTv1; rua=mailto:tlsrpt@tls.test,https://reports.tls.test/v1"']},
        # An exchanger without STARTTLS.
        "plain.test.": {"MX": ["10 mx.plain.test."]},
        "mx.plain.test.": {"A": [PLAIN_IP]},
        # Nothing listens there.
        "closed.test.": {"MX": ["10 mx.closed.test."]},
        "mx.closed.test.": {"A": [CLOSED_IP]},
        # The first exchanger is down, the second takes the mail.
        "two.test.": {"MX": ["20 mx.tls.test.", "10 down.two.test."]},
        "down.two.test.": {"A": [CLOSED_IP]},
        # Accepts the connection and never says a word.
        "silent.test.": {"MX": ["10 mx.silent.test."]},
        "mx.silent.test.": {"A": [SILENT_IP]},
        # An MTA-STS record whose policy host does not answer on 443.
        "sts.test.": {"MX": [f"10 {MX_TLS}."]},
        "_mta-sts.sts.test.": {"TXT": ['"v=STSv1; id=20260101"']},
        "mta-sts.sts.test.": {"A": [STS_IP]},
        # A domain without MX records, and a null MX.
        "nomx.test.": {"A": [TLS_IP]},
        "nullmx.test.": {"MX": ["0 ."]},
        "secure": {f"_{port}._tcp.{MX_TLS}."},
    }


@dataclass
class Exchanger:
    """An aiosmtpd handler: refuses `nobody@…` at RCPT, records every command it sees."""

    commands: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's name
        self.commands.append("EHLO")
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        self.commands.append(f"MAIL FROM:<{address.strip('<>')}>")  # aiosmtpd gives the null path as "<>"
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        self.commands.append(f"RCPT TO:<{address}>")
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_RSET(self, server, session, envelope):  # noqa: N802
        self.commands.append("RSET")
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.commands.append("DATA")
        return "250 2.0.0 Queued"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        self.commands.append("QUIT")
        return "221 Bye"


class Exchangers:
    """The mail exchangers of the zone, on one free port: STARTTLS on TLS_IP, plain on
    PLAIN_IP, a listener that never answers on SILENT_IP; nothing on CLOSED_IP."""

    def __init__(self, ca: Authority):
        self.ca = ca
        self.port = free_port()
        self.tls, self.plain = Exchanger(), Exchanger()
        self._stack = ExitStack()

    def __enter__(self):
        for handler, ip, kwargs in ((self.tls, TLS_IP, {"tls_context": self.ca.server_context()}),
                                    (self.plain, PLAIN_IP, {})):
            self._stack.enter_context(SmtpServer(handler, ip, self.port, server_hostname=MX_TLS, **kwargs))
        silent = socket.socket()
        silent.bind((SILENT_IP, self.port))
        silent.listen(4)
        self._stack.callback(silent.close)
        return self

    def __exit__(self, *exc):
        self._stack.close()
