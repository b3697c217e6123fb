"""The outbound engine (submission/outbound.py) against real SMTP servers (aiosmtpd, started
here on loopback ports): plain SMTP, STARTTLS with a self-signed certificate (accepted only when
the route allows invalid certificates), implicit TLS, AUTH PLAIN and LOGIN with the right and a
wrong password, per-recipient 4xx and 5xx answers, and a dead port. The password never shows in
a log record or a result."""
from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db import connection

from submission import outbound
from submission.models import MtaRoute
from tests.live import free_port

from .sinks import PASSWORD, USER, self_signed, server_context, sink

pytestmark = pytest.mark.django_db

MESSAGE = (b"From: Bob <bob@example.org>\nTo: carol@example.net\nSubject: Hello\n"
           b"Message-ID: <t1@example.org>\n\nHi Carol,\n.leading dot\nBob\n")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return server_context(*self_signed(tmp_path_factory.mktemp("sink-tls")))


@pytest.fixture(autouse=True)
def ehlo_name(settings):
    settings.SUBMISSION_EHLO_NAME = "mail.example.org"


def route(port: int, **fields) -> MtaRoute:
    values = {"name": "relay", "address": "127.0.0.1", "port": port, "start_tls": "disable",
              "timeout": dt.timedelta(seconds=5), **fields}
    return MtaRoute.objects.create(**values)


def statuses(result) -> dict[str, str]:
    return {r.address: r.status for r in result.recipients}


def test_plain_relay_with_per_recipient_results(caplog):
    with sink() as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org",
                               ["carol@example.net", "tempfail@example.net", "permfail@example.net", "dan@example.net"],
                               route(port))
    assert statuses(result) == {"carol@example.net": "sent", "tempfail@example.net": "temporary",
                                "permfail@example.net": "permanent", "dan@example.net": "sent"}
    by = {r.address: r for r in result.recipients}
    assert by["tempfail@example.net"].code == 450 and "busy" in by["tempfail@example.net"].message
    assert by["permfail@example.net"].code == 550 and by["permfail@example.net"].stage == "rcpt"
    assert by["carol@example.net"].code == 250 and "Queued as TEST1" in by["carol@example.net"].message
    [got] = handler.received
    assert got.mail_from == "bob@example.org" and got.rcpt_tos == ["carol@example.net", "dan@example.net"]
    # Line ends became CRLF on the wire and the leading dot was stuffed and unstuffed intact.
    assert got.content.replace(b"\r\n", b"\n") == MESSAGE
    assert b".leading dot" in got.content


def test_default_route_is_found_by_name(settings):
    settings.SUBMISSION_ROUTE = "outbound"
    result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"])
    assert statuses(result) == {"carol@example.net": "temporary"}
    assert 'no route named "outbound"' in result.recipients[0].message
    with sink() as (handler, port):
        route(port, name="outbound")
        assert statuses(outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"])) == {
            "carol@example.net": "sent"}
    assert len(handler.received) == 1


def test_every_recipient_refused_sends_no_data():
    with sink() as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["permfail@example.net", "tempfail@example.net"],
                               route(port))
    assert statuses(result) == {"permfail@example.net": "permanent", "tempfail@example.net": "temporary"}
    assert handler.received == []


def test_a_dead_port_is_temporary():
    result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net", "dan@example.net"], route(free_port()))
    assert statuses(result) == {"carol@example.net": "temporary", "dan@example.net": "temporary"}
    assert result.recipients[0].stage == "connect" and result.recipients[0].code is None
    assert "cannot connect to 127.0.0.1" in result.recipients[0].message


def test_starttls_with_a_self_signed_certificate_when_allowed(certificate):
    with sink(starttls=certificate) as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"],
                               route(port, start_tls="require", allow_invalid_certs=True))
    assert statuses(result) == {"carol@example.net": "sent"}
    assert len(handler.received) == 1


def test_starttls_verifying_a_self_signed_certificate_fails_temporarily(certificate):
    with sink(starttls=certificate) as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"],
                               route(port, start_tls="require", allow_invalid_certs=False))
    [refused] = result.recipients
    assert (refused.status, refused.stage) == ("temporary", "tls")
    assert "CERTIFICATE_VERIFY_FAILED" in refused.message
    assert handler.received == []


def test_starttls_required_but_not_offered():
    with sink() as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], route(port, start_tls="require"))
    assert (result.recipients[0].status, result.recipients[0].stage) == ("temporary", "tls")
    assert "does not offer STARTTLS" in result.recipients[0].message
    assert handler.received == []


def test_implicit_tls(certificate):
    with sink(implicit=certificate) as (handler, port):
        ok = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"],
                           route(port, implicit_tls=True, allow_invalid_certs=True))
        MtaRoute.objects.all().delete()
        verified = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], route(port, implicit_tls=True))
    assert statuses(ok) == {"carol@example.net": "sent"}
    assert (verified.recipients[0].status, verified.recipients[0].stage) == ("temporary", "tls")
    assert len(handler.received) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_the_right_password(certificate, mechanism, caplog):
    caplog.set_level(logging.DEBUG)
    with sink(starttls=certificate, auth=True, mechanisms=(mechanism,)) as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], route(
            port, start_tls="require", allow_invalid_certs=True, auth_username=USER, auth_secret_kind="value",
            auth_secret=PASSWORD))
    assert statuses(result) == {"carol@example.net": "sent"}
    assert handler.logins == [(mechanism, USER)]
    assert PASSWORD not in caplog.text and PASSWORD not in repr(result)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_a_wrong_password_is_refused_permanently(certificate, mechanism, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-relay-password"
    with sink(starttls=certificate, auth=True, mechanisms=(mechanism,)) as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], route(
            port, start_tls="require", allow_invalid_certs=True, auth_username=USER, auth_secret_kind="value",
            auth_secret=wrong))
    [refused] = result.recipients
    assert (refused.status, refused.stage, refused.code) == ("permanent", "auth", 535)
    assert handler.received == [] and handler.failed_logins >= 1
    assert wrong not in caplog.text and wrong not in repr(result)


def test_credentials_are_never_sent_in_clear(caplog):
    with sink() as (handler, port):
        result = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], route(
            port, start_tls="optional", auth_username=USER, auth_secret_kind="value", auth_secret=PASSWORD))
    assert (result.recipients[0].status, result.recipients[0].stage) == ("temporary", "auth")
    assert "not encrypted" in result.recipients[0].message
    assert handler.received == [] and handler.logins == []


def test_secret_from_the_environment_and_its_absence(certificate, monkeypatch):
    with sink(starttls=certificate, auth=True) as (handler, port):
        relay = route(port, start_tls="require", allow_invalid_certs=True, auth_username=USER,
                      auth_secret_kind="env", auth_secret_variable="TEST_RELAY_SECRET")
        monkeypatch.delenv("TEST_RELAY_SECRET", raising=False)
        missing = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], relay)
        monkeypatch.setenv("TEST_RELAY_SECRET", PASSWORD)
        ok = outbound.send(MESSAGE, "bob@example.org", ["carol@example.net"], relay)
    assert (missing.recipients[0].status, missing.recipients[0].stage) == ("temporary", "auth")
    assert "TEST_RELAY_SECRET" in missing.recipients[0].message
    assert statuses(ok) == {"carol@example.net": "sent"}


def test_the_secret_is_encrypted_at_rest():
    relay = route(2525, auth_username=USER, auth_secret_kind="value", auth_secret=PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_secret FROM submission_mtaroute WHERE id = %s", [relay.pk])
        [stored] = cursor.fetchone()
    assert PASSWORD not in stored and stored.startswith("fernet:")
    assert MtaRoute.objects.get(pk=relay.pk).auth_secret == PASSWORD


def test_probe_checks_the_session_without_sending(certificate):
    with sink(starttls=certificate, auth=True) as (handler, port):
        text = outbound.probe(route(port, start_tls="require", allow_invalid_certs=True, auth_username=USER,
                                    auth_secret_kind="value", auth_secret=PASSWORD))
    assert "STARTTLS" in text and f"authenticated as {USER}" in text and "250" in text
    assert handler.received == [] and len(handler.logins) == 1
    with pytest.raises(outbound.RelayFailure) as failure:
        outbound.probe(route(free_port(), name="dead"))
    assert failure.value.stage == "connect"


def test_addresses_that_would_inject_commands_are_refused_before_connecting():
    with sink() as (handler, port):
        relay = route(port)
        result = outbound.send(MESSAGE, "bob@example.org",
                               ["carol@example.net", "x@example.net\r\nRCPT TO:<victim@example.com>", "a b@c.d"], relay)
        forged = outbound.send(MESSAGE, "bob@example.org>\r\nRSET", ["carol@example.net"], relay)
    assert [r.status for r in result.recipients] == ["sent", "permanent", "permanent"]
    assert result.recipients[1].message == "invalid recipient address"
    assert [r.rcpt_tos for r in handler.received] == [["carol@example.net"]]
    assert [(r.status, r.message) for r in forged.recipients] == [("permanent", "invalid envelope sender")]
