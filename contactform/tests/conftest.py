"""Fixtures of the contact form tests: a real SMTP server and a DNS server on loopback, and the
form enabled through the service layer."""
from __future__ import annotations

import pytest

from registry import services as registry

from tests.mailservers import DnsServer, SmtpServer

from .zone import SILENT, ZONE

RECIPIENTS = ["sales@example.org", "support@example.org"]


@pytest.fixture(autouse=True)
def dns_server(settings):
    """Every MX lookup of these tests goes to this server, never to the machine's resolver."""
    with DnsServer(ZONE, SILENT) as server:
        settings.DNS_SERVERS = [f"127.0.0.1:{server.port}"]
        settings.DNS_TIMEOUT = 1
        yield server


@pytest.fixture
def smtp(settings):
    with SmtpServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = server.port
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5
        yield server


@pytest.fixture
def configure(db):
    """configure(**model field values) -> HttpForm, through the service layer."""
    from contactform.objects import HTTP_FORM

    def apply(**values):
        return registry.update(HTTP_FORM, 1, values, "test")

    return apply


@pytest.fixture
def enabled(configure):
    """The form on, mailing RECIPIENTS, with the fields of the documentation's example."""
    return configure(
        enable=True, deliver_to=RECIPIENTS, field_email="email", field_name="name", field_subject="subject",
        field_honey_pot="website",
    )
