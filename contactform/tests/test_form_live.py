"""End to end: gunicorn as production runs it, configured by environment to relay through an SMTP
server (aiosmtpd) and to ask a DNS server of the test, both on loopback; a browser-like client
(requests) posts the form."""
from __future__ import annotations

import email
import email.policy

import pytest
import requests

from tests.live import live_server
from tests.mailservers import DnsServer, SmtpServer

from .zone import SILENT, ZONE

ENABLE = """
from registry import services
from contactform.objects import HTTP_FORM
services.update(HTTP_FORM, 1, {"enable": True, "deliver_to": ["desk@example.org"], "field_email": "email",
                               "field_name": "name", "field_subject": "subject", "field_honey_pot": "website"},
                "test")
result = True
"""


@pytest.fixture(scope="module")
def mail_stack():
    with SmtpServer() as smtp, DnsServer(ZONE, SILENT) as dns_server:
        env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "EMAIL_TIMEOUT": "5",
               "DNS_SERVERS": f"127.0.0.1:{dns_server.port}", "DNS_TIMEOUT": "2"}
        with live_server(workers=1, extra_env=env) as server:
            yield server, smtp, dns_server


@pytest.fixture(autouse=True)
def dns_server():
    """Replaces the package's autouse DNS fixture: the live server has its own (module-wide)."""
    yield None


def test_form_posted_to_gunicorn_is_mailed(mail_stack):
    server, smtp, dns_server = mail_stack
    assert requests.post(server.url + "/form", data={"message": "hi"}, timeout=10).status_code == 404
    assert server.shell_json(ENABLE) is True

    resp = requests.post(server.url + "/form", timeout=30, data={
        "name": "Jane Doe", "email": "jane@example.com", "subject": "Live", "message": "Through gunicorn",
        "website": "",
    })
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"data": {"success": True, "details": None}}
    assert ("example.com.", "MX") in dns_server.queries
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "jane@example.com" and envelope.rcpt_tos == ["desk@example.org"]
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert msg["Subject"] == "Live" and msg["Auto-Submitted"] == "auto-generated"
    lines = msg.get_content().splitlines()
    assert lines[:4] == ["name: Jane Doe", "email: jane@example.com", "subject: Live", "message: Through gunicorn"]
    assert lines[5].startswith("IP: 127.0.0.1:")  # gunicorn gives the client's port too

    # A multipart post (what an HTML form with enctype="multipart/form-data" sends), with a file.
    resp = requests.post(server.url + "/form", timeout=30, data={"email": "jane@example.com", "message": "Two"},
                         files={"cv": ("cv.txt", b"ignored")})
    assert resp.status_code == 200, resp.text
    assert len(smtp.envelopes) == 2

    # Refusals keep their shapes through the real server.
    resp = requests.post(server.url + "/form", data={"message": "x", "website": "spam"}, timeout=30)
    assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/problem+json"
    assert resp.json()["detail"] == "Honey pot field present"
    resp = requests.post(server.url + "/form", data={"email": "jane@nowhere.example.com", "message": "x"}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["data"]["details"].startswith('No MX records found for domain "nowhere.example.com"')
    assert requests.options(server.url + "/form", timeout=10).status_code == 204
    assert requests.get(server.url + "/form", timeout=10).status_code == 405
    assert len(smtp.envelopes) == 2
