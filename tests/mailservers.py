"""Real mail servers on loopback for the tests of every app that speaks to one: an SMTP server
(aiosmtpd's Controller, with any handler) and a small authoritative DNS server (dnspython's wire
format, in a thread). The contact form's tests and the delivery test's use these same two; each
brings its own zone and handlers.
"""
from __future__ import annotations

import email
import email.policy
import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller

from tests.live import free_port


class SmtpSink:
    """An aiosmtpd handler that accepts every message and keeps its envelope."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.envelopes]


class SmtpServer:
    """aiosmtpd on `hostname`:`port` (a free port by default) with `handler` (an SmtpSink by
    default); `controller` takes the Controller's other arguments (tls_context, authenticator…)."""

    def __init__(self, handler=None, hostname: str = "127.0.0.1", port: int | None = None, **controller):
        self.sink = SmtpSink() if handler is None else handler
        self.port = port or free_port()
        self.controller = Controller(self.sink, hostname=hostname, port=self.port, ready_timeout=10, **controller)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def envelopes(self):
        return self.sink.envelopes

    def messages(self):
        return self.sink.messages()


class DnsServer:
    """UDP on 127.0.0.1:<port>, answering from a zone: name -> {type: [rdata text]}. A name it
    does not hold is NXDOMAIN, a type the name lacks is NOERROR with no records; the names of
    the zone's `secure` entry are answered with the AD bit (DNSSEC-validated), and the names of
    `silent` never (the resolver times out)."""

    def __init__(self, zone: dict, silent=frozenset()):
        self.zone = zone
        self.silent = frozenset(silent)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001  (not DNS: ignore it)
                continue
            question = query.question[0]
            name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if name in self.silent:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if name in self.zone.get("secure", ()):
                response.flags |= dns.flags.AD
            if name not in self.zone:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif rdtype in self.zone[name]:
                response.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype, *self.zone[name][rdtype]))
            self.sock.sendto(response.to_wire(), peer)
