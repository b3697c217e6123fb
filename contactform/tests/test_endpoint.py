"""POST /form over Django's test client, delivering to a real SMTP server (aiosmtpd) on
loopback, with the MX check answered by a DNS server on loopback (spec http.md §10.2)."""
from __future__ import annotations

import email.utils
import ipaddress
import json
import secrets
from datetime import datetime, timedelta, timezone

import pytest

from contactform import services
from registry import services as registry

from .conftest import RECIPIENTS



@pytest.fixture
def visitor():
    """A client address of its own per test: the rate counters outlive a test (they are kept
    outside the test database), so a shared address would carry counts from test to test."""
    return str(ipaddress.ip_address(f"2001:db8:f0::{secrets.token_hex(2)}:{secrets.token_hex(2)}"))

GOOD = {"name": "Jane Doe", "email": "Jane@Example.com", "subject": "Pricing", "message": "How much is it?"}


def post(client, data=None, *, content_type="application/x-www-form-urlencoded", body=None, **extra):
    from urllib.parse import urlencode

    if body is None:
        body = urlencode(list((data or GOOD).items()))
    # CONTENT_TYPE given as well: the test client leaves it out of a request with an empty body.
    return client.generic("POST", "/form", body, content_type=content_type, CONTENT_TYPE=content_type, **extra)


def multipart(fields, boundary="----form-boundary-42", files=()):
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n')
    for name, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n{content}\r\n")
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def when(date: str) -> datetime:
    parsed = email.utils.parsedate_to_datetime(str(date))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)  # "-0000": UTC, zone unknown


def data_of(resp):
    assert resp["Content-Type"].startswith("application/json"), resp["Content-Type"]
    return resp.json()


def problem_of(resp, status):
    assert resp.status_code == status, resp.content
    assert resp["Content-Type"] == "application/problem+json"
    body = json.loads(resp.content)
    assert body["status"] == status
    return body


# --- routing ------------------------------------------------------------------------------
class TestRouting:
    @pytest.mark.parametrize("method", ["GET", "POST", "PUT", "OPTIONS"])
    def test_disabled_is_404_for_every_method(self, client, db, smtp, method):
        resp = client.generic(method, "/form", "email=a%40example.com&x=1",
                              content_type="application/x-www-form-urlencoded")
        assert problem_of(resp, 404)["title"] == "Not Found"
        assert smtp.envelopes == []

    def test_enabled_without_recipients_is_disabled(self, client, configure, smtp):
        # An enabled form with no recipients cannot be saved; a row holding it anyway (older data,
        # a direct database edit) serves nothing.
        from contactform.models import HttpForm

        HttpForm.objects.update_or_create(pk=1, defaults={"enable": True, "deliver_to": []})
        registry.touch("HttpForm", "singleton")  # what was cached under the old state is stale
        assert problem_of(post(client), 404)

    def test_options_is_a_preflight(self, client, enabled):
        resp = client.options("/form")
        assert resp.status_code == 204
        assert resp.content == b""
        assert resp["Access-Control-Allow-Origin"] == "*"

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
    def test_other_methods_are_405(self, client, enabled, method):
        resp = client.generic(method, "/form")
        assert resp.status_code == 405
        assert resp["Allow"] == "POST, OPTIONS"
        if method != "HEAD":
            assert problem_of(resp, 405)["title"] == "Method Not Allowed"

    def test_no_csrf_token_needed(self, enabled, smtp):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        resp = post(strict, HTTP_ORIGIN="https://www.example.net", HTTP_REFERER="https://www.example.net/contact")
        assert resp.status_code == 200, resp.content
        assert len(smtp.envelopes) == 1


# --- delivery -----------------------------------------------------------------------------
class TestDelivery:
    def test_urlencoded_submission_is_mailed(self, client, enabled, smtp, visitor):
        before = datetime.now(timezone.utc).replace(microsecond=0)
        resp = post(client, REMOTE_ADDR=visitor, REMOTE_PORT="51234")
        assert resp.status_code == 200
        assert data_of(resp) == {"data": {"success": True, "details": None}}
        assert resp["Access-Control-Allow-Origin"] == "*"

        [envelope] = smtp.envelopes
        assert envelope.mail_from == "jane@example.com"  # trimmed and lowercased
        assert sorted(envelope.rcpt_tos) == RECIPIENTS
        [msg] = smtp.messages()
        assert email.utils.parseaddr(msg["From"]) == ("Jane Doe", "jane@example.com")
        assert sorted(a.addr_spec for a in msg["To"].addresses) == RECIPIENTS
        assert msg["Subject"] == "Pricing"
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@127.0.0.1>")
        assert when(msg["Date"]) >= before
        assert msg.get_content_type() == "text/plain"
        lines = msg.get_content().splitlines()
        assert lines[:4] == ["name: Jane Doe", "email: Jane@Example.com", "subject: Pricing",
                             "message: How much is it?"]
        assert lines[4].startswith("Date: ")
        assert when(lines[4][6:]) >= before
        assert lines[5] == f"IP: {visitor}:51234"
        assert len(lines) == 6

    def test_multipart_submission_keeps_order_and_skips_empty_fields(self, client, enabled, smtp):
        body, ctype = multipart(
            [("subject", "Hello"), ("message", "line one\r\nline two"), ("phone", ""), ("name", "Zoë Ünïcode"),
             ("email", "zoe@example.com"), ("website", "")],
            files=[("attachment", "cv.pdf", "%PDF-binary")],
        )
        resp = post(client, body=body, content_type=ctype)
        assert resp.status_code == 200, resp.content
        assert data_of(resp)["data"]["success"] is True
        [msg] = smtp.messages()
        assert email.utils.parseaddr(str(msg["From"])) == ("Zoë Ünïcode", "zoe@example.com")
        lines = msg.get_content().splitlines()
        # Empty fields (phone, the empty honeypot) and uploaded files are left out.
        assert lines[:5] == ["subject: Hello", "message: line one", "line two", "name: Zoë Ünïcode",
                             "email: zoe@example.com"]
        assert lines[5].startswith("Date: ") and lines[6] == "IP: 127.0.0.1"

    def test_defaults_when_fields_are_absent(self, client, configure, smtp):
        configure(enable=True, deliver_to=["desk@example.org"])  # no field names configured
        resp = post(client, {"comment": "Nice site"})
        assert resp.status_code == 200, resp.content
        [envelope] = smtp.envelopes
        assert envelope.mail_from == "postmaster@localhost"
        [msg] = smtp.messages()
        assert email.utils.parseaddr(msg["From"]) == ("Anonymous", "postmaster@localhost")
        assert msg["Subject"] == "Contact form submission"
        assert msg.get_content().splitlines()[0] == "comment: Nice site"

    def test_header_injection_is_impossible(self, client, enabled, smtp):
        resp = post(client, {
            "name": "Mallory\r\nBcc: victim@example.net", "email": "mallory@example.com",
            "subject": "Hi\r\nX-Injected: yes\nCc: victim2@example.net\rReply-To: evil@example.net",
            "message": "body",
        })
        assert resp.status_code == 200, resp.content
        [envelope] = smtp.envelopes
        assert sorted(envelope.rcpt_tos) == RECIPIENTS  # no extra recipient
        [msg] = smtp.messages()
        for header in ("Bcc", "Cc", "X-Injected", "Reply-To"):
            assert msg[header] is None, header
        assert msg["Subject"] == "Hi X-Injected: yes Cc: victim2@example.net Reply-To: evil@example.net"
        assert email.utils.parseaddr(msg["From"]) == ("Mallory Bcc: victim@example.net", "mallory@example.com")

    def test_smtp_server_down_is_a_400_failure_not_a_500(self, client, enabled, settings, caplog):
        from tests.live import free_port

        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
        settings.EMAIL_HOST_PASSWORD = "s3cret-relay-password"
        resp = post(client)
        assert resp.status_code == 400
        assert data_of(resp) == {"data": {"success": False, "details": services.NOT_DELIVERED}}
        assert "ConnectionRefusedError" in caplog.text
        assert "s3cret-relay-password" not in caplog.text

    def test_relay_refusing_every_recipient_is_a_failure(self, client, enabled, smtp):
        async def refuse(server, session, envelope, address, rcpt_options):
            return "550 5.1.1 No such user"

        smtp.sink.handle_RCPT = refuse
        resp = post(client)
        assert resp.status_code == 400
        assert data_of(resp)["data"] == {"success": False, "details": services.NOT_DELIVERED}
        assert smtp.envelopes == []


# --- refusals -----------------------------------------------------------------------------
class TestRefusals:
    def test_honeypot_filled_is_refused_and_nothing_sent(self, client, enabled, smtp):
        resp = post(client, {**GOOD, "website": "http://spam.example"})
        body = problem_of(resp, 400)
        assert body["detail"] == "Honey pot field present"
        assert body["title"] == "Invalid parameters"
        assert smtp.envelopes == []

    def test_empty_honeypot_is_fine(self, client, enabled, smtp):
        assert post(client, {**GOOD, "website": ""}).status_code == 200
        assert len(smtp.envelopes) == 1

    def test_oversized_is_refused_before_reading(self, client, configure, smtp):
        configure(enable=True, deliver_to=RECIPIENTS, max_size=1024)
        resp = post(client, {"message": "x" * 2000})
        assert "larger than 1024 bytes" in problem_of(resp, 400)["detail"]
        assert smtp.envelopes == []

    def test_body_longer_than_its_content_length_is_cut_off(self, configure, smtp, rf):
        """A lying Content-Length: the read stops at maxSize + 1 bytes whatever it claims."""
        from contactform import views

        configure(enable=True, deliver_to=RECIPIENTS, max_size=1024)
        request = rf.generic("POST", "/form", b"message=" + b"x" * 5000,
                             content_type="application/x-www-form-urlencoded")
        request.META["CONTENT_LENGTH"] = ""  # unknown length: only the cap bounds the read
        reads = []
        original = request.read
        request.read = lambda n=None: reads.append(n) or original(n)
        resp = views.form(request)
        assert "larger than 1024 bytes" in problem_of(resp, 400)["detail"]
        assert reads == [1025]
        assert smtp.envelopes == []

    @pytest.mark.parametrize("content_type, detail", [
        ("", "A Content-Type header is required."),
        ("garbage", "is not a media type"),
        ("text/plain", "must be sent as"),
        ("application/json", "must be sent as"),
        ("multipart/form-data", "has no boundary"),
    ])
    def test_missing_or_odd_content_type(self, client, enabled, smtp, content_type, detail):
        resp = client.generic("POST", "/form", b"email=a%40example.com&message=hi", CONTENT_TYPE=content_type)
        body = problem_of(resp, 400)
        assert body["title"] == "Invalid parameters"
        assert detail in body["detail"]
        assert smtp.envelopes == []

    @pytest.mark.parametrize("body", [
        b"this is not multipart at all",
        b'--b\r\nContent-Disposition: form-data; name="message"\r\n\r\nhi\r\n',  # never closed
        b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + b"x" * 10,
    ])
    def test_broken_multipart(self, client, enabled, smtp, body):
        resp = post(client, body=body, content_type="multipart/form-data; boundary=b")
        assert "multipart body is malformed" in problem_of(resp, 400)["detail"]
        assert smtp.envelopes == []

    def test_bad_utf8_urlencoded(self, client, enabled, smtp):
        resp = post(client, body=b"message=%FF%FE")
        assert "UTF-8" in problem_of(resp, 400)["detail"]

    def test_too_many_fields(self, client, enabled, smtp, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
        resp = post(client, body="&".join(f"f{i}=v" for i in range(20)))
        assert "too many fields" in problem_of(resp, 400)["detail"]

    @pytest.mark.parametrize("body", ["", "name=&email=&subject=&message=", "message=+++"])
    def test_empty_form(self, client, enabled, smtp, body):
        resp = post(client, body=body)
        assert resp.status_code == 400
        assert data_of(resp) == {"data": {"success": False, "details": "Empty form"}}
        assert smtp.envelopes == []

    @pytest.mark.parametrize("address", ["not-an-address", "jane@", "@example.com", "jane@example",
                                         "jane@example.123", "jane doe@example.com", "a@b@example.com"])
    def test_invalid_email(self, client, enabled, smtp, address):
        resp = post(client, {**GOOD, "email": address})
        assert resp.status_code == 400
        assert data_of(resp) == {"data": {"success": False, "details": "Please enter a valid email address."}}
        assert smtp.envelopes == []

    @pytest.mark.parametrize("domain", ["unknown.example.com", "null-mx.example.org", "no-mail.example.org"])
    def test_domain_without_mx(self, client, enabled, smtp, dns_server, domain):
        resp = post(client, {**GOOD, "email": f"jane@{domain}"})
        assert resp.status_code == 400
        assert data_of(resp)["data"] == {
            "success": False,
            "details": f'No MX records found for domain "{domain}". Please enter a valid email address.',
        }
        assert (f"{domain}.", "MX") in dns_server.queries
        assert smtp.envelopes == []

    def test_address_record_is_enough_without_mx(self, client, enabled, smtp, dns_server):
        """RFC 5321 §5.1: with no MX records, the domain's A/AAAA record is the mail host."""
        resp = post(client, {**GOOD, "email": "jane@a-only.example.net"})
        assert resp.status_code == 200, resp.content
        assert dns_server.queries[-2:] == [("a-only.example.net.", "MX"), ("a-only.example.net.", "A")]
        assert smtp.envelopes[0].mail_from == "jane@a-only.example.net"

    def test_dns_timeout_is_a_failure_with_its_own_message(self, client, enabled, smtp):
        resp = post(client, {**GOOD, "email": "jane@slow.example.com"})
        assert resp.status_code == 400
        assert data_of(resp)["data"]["details"] == (
            'The domain "slow.example.com" could not be checked. Please try again later.')
        assert smtp.envelopes == []

    def test_validate_domain_off_skips_dns_but_not_syntax(self, client, enabled, configure, smtp, dns_server):
        configure(validate_domain=False)
        assert post(client, {**GOOD, "email": "jane@unknown.example.com"}).status_code == 200
        assert dns_server.queries == []
        resp = post(client, {**GOOD, "email": "jane@example.com>, <other@example.net"})
        assert data_of(resp)["data"]["details"] == "Please enter a valid email address."
        assert len(smtp.envelopes) == 1

    def test_default_address_is_not_checked(self, client, configure, smtp, dns_server):
        configure(enable=True, deliver_to=RECIPIENTS, default_from_address="forms@localhost")
        assert post(client, {"message": "hi"}).status_code == 200
        assert dns_server.queries == []


# --- rate limit ---------------------------------------------------------------------------
class TestRateLimit:
    def test_limit_per_address(self, client, configure, enabled, smtp, visitor):
        configure(rate_limit_count=3, rate_limit_period=timedelta(hours=1))
        for _ in range(3):
            assert post(client, REMOTE_ADDR=visitor).status_code == 200
        resp = post(client, REMOTE_ADDR=visitor)
        body = problem_of(resp, 429)
        assert body["title"] == "Too Many Requests"
        assert 1 <= int(resp["Retry-After"]) <= 3600
        assert "RateLimit" not in resp  # the form's limit sends no RateLimit headers (§10.2 step 4)
        assert len(smtp.envelopes) == 3
        # Another address has its own counter.
        assert post(client, REMOTE_ADDR=visitor.rsplit(":", 1)[0] + ":ffff").status_code == 200

    def test_refused_submissions_count_too(self, client, configure, enabled, smtp, visitor):
        configure(rate_limit_count=2)
        for _ in range(2):
            assert post(client, {**GOOD, "website": "spam"}, REMOTE_ADDR=visitor).status_code == 400
        assert post(client, REMOTE_ADDR=visitor).status_code == 429
        assert smtp.envelopes == []

    def test_unparsable_bodies_do_not_count(self, client, configure, enabled, smtp, visitor):
        configure(rate_limit_count=1)
        for _ in range(3):
            assert post(client, content_type="text/plain", REMOTE_ADDR=visitor).status_code == 400
        assert post(client, REMOTE_ADDR=visitor).status_code == 200

    def test_loopback_is_exempt(self, client, configure, enabled, smtp, visitor):
        configure(rate_limit_count=1)
        for _ in range(3):
            assert post(client).status_code == 200  # the test client's REMOTE_ADDR is 127.0.0.1
        assert len(smtp.envelopes) == 3

    def test_allowed_ip_is_exempt(self, client, configure, enabled, smtp, visitor):
        from security.models import AllowedIp

        from registry import services as registry_services

        AllowedIp.objects.create(address=f"{visitor}/128")
        registry_services.touch("AllowedIp", "x")  # the allow list is re-read when its state moves
        configure(rate_limit_count=1)
        for _ in range(3):
            assert post(client, REMOTE_ADDR=visitor).status_code == 200

    def test_no_limit(self, client, configure, enabled, smtp, visitor):
        configure(rate_limit_count=None, rate_limit_period=None)
        for _ in range(8):
            assert post(client, REMOTE_ADDR=visitor).status_code == 200


def test_relay_login_is_used(client, enabled, smtp, settings):
    """EMAIL_HOST_USER/PASSWORD reach the relay (AUTH over the loopback connection)."""
    from aiosmtpd.smtp import AuthResult

    from tests.mailservers import SmtpServer

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"relay-pass")

    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as relay:
        settings.EMAIL_PORT = relay.port
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "relay", "relay-pass"
        assert post(client).status_code == 200
        assert seen and seen[0][1:] == (b"relay", b"relay-pass")
        assert len(relay.envelopes) == 1


# --- final hostile-input pass (issue 10) ------------------------------------------------------
def test_internationalised_sender_domain_is_mailed_in_idna_form(client, enabled, configure, smtp, visitor):
    """An IDN domain passes Django's validator but not formataddr(): it was a 500."""
    configure(validate_domain=False)
    resp = post(client, {**GOOD, "email": "jane@\u00e9xample.com"}, REMOTE_ADDR=visitor)
    assert resp.status_code == 200, resp.content
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "jane@xn--xample-9ua.com"


@pytest.mark.parametrize("sender", ["\u017fam@example.com"])  # "ſ" passes the validator, stays non-ASCII
def test_non_ascii_local_part_is_refused_not_a_500(client, enabled, smtp, visitor, sender):
    resp = post(client, {**GOOD, "email": sender}, REMOTE_ADDR=visitor)
    assert resp.status_code == 400, resp.content
    assert data_of(resp) == {"data": {"success": False, "details": services.INVALID_EMAIL}}
    assert not smtp.envelopes
