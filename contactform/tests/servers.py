"""Real servers on loopback for the contact form tests: an SMTP server (aiosmtpd) that keeps
what it receives, and a small authoritative DNS server (dnspython's wire format) for the MX check.
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

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.envelopes]


class SmtpServer:
    def __init__(self):
        self.sink = SmtpSink()
        self.port = free_port()
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)

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


# name -> {type: [rdata text]}; a name with no entry for a type answers NOERROR with no records.
ZONE = {
    "example.com.": {"MX": ["10 mx.example.com."], "A": ["192.0.2.10"]},
    "mx.example.com.": {"A": ["192.0.2.10"]},
    "a-only.example.net.": {"A": ["192.0.2.20"]},
    "null-mx.example.org.": {"MX": ["0 ."]},
    "no-mail.example.org.": {"TXT": ['"nothing here"']},
}
SILENT = {"slow.example.com."}  # never answered: the resolver times out


class DnsServer:
    """UDP on 127.0.0.1:<port>, answering from ZONE (NXDOMAIN for unknown names)."""

    def __init__(self, zone=None):
        self.zone = zone or ZONE
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
            if name in SILENT:
                continue
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if name not in self.zone:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif rdtype in self.zone[name]:
                response.answer.append(dns.rrset.from_text(name, 300, "IN", rdtype, *self.zone[name][rdtype]))
            self.sock.sendto(response.to_wire(), peer)
