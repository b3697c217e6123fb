"""The outbound engine: hand a message to the relay route over SMTP and say, per recipient,
whether it was accepted, refused for now (try again) or refused for good.

smtplib, not aiosmtplib: the callers (EmailSubmission/set in a request, the periodic job that
sends delayed and retried submissions, `manage.py relay test`) are synchronous, and one relay
conversation per call gains nothing from an event loop; smtplib is the standard library.

Classification (RFC 5321 §4.2.1): a 2yz reply is success, 4yz a temporary failure, 5yz a
permanent one. Anything that is not a reply (a refused or dropped connection, a timeout, a TLS
handshake or certificate failure, an unreadable secret) is temporary: the message is fine,
the path is not. The password is never logged, never put in a result or an exception text
(smtplib's debug output, which would show it, stays off).
"""
from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from directories.base import DirectoryError, SecretRef

from . import addresses
from .models import MtaRoute

log = logging.getLogger(__name__)

SENT, TEMPORARY, PERMANENT = "sent", "temporary", "permanent"


@dataclass(frozen=True)
class RecipientResult:
    address: str
    status: str              # sent | temporary | permanent
    code: int | None         # the relay's reply code, None when there was no reply
    message: str             # the relay's reply text, or what went wrong
    stage: str = "data"      # where it was decided: connect, tls, auth, mail, rcpt, data


@dataclass(frozen=True)
class SendResult:
    route: str
    recipients: tuple[RecipientResult, ...]

    def with_status(self, status: str) -> list[RecipientResult]:
        return [r for r in self.recipients if r.status == status]

    @property
    def sent(self) -> list[RecipientResult]:
        return self.with_status(SENT)

    @property
    def temporary(self) -> list[RecipientResult]:
        return self.with_status(TEMPORARY)

    @property
    def permanent(self) -> list[RecipientResult]:
        return self.with_status(PERMANENT)


class RelayFailure(Exception):
    """The conversation stopped before any recipient was decided on its own."""

    def __init__(self, stage: str, message: str, code: int | None = None):
        super().__init__(message)
        self.stage, self.message, self.code = stage, message, code

    @property
    def status(self) -> str:
        return classify(self.code)


def classify(code: int | None) -> str:
    if code is not None and 200 <= code < 300:
        return SENT
    if code is not None and 500 <= code < 600:
        return PERMANENT
    return TEMPORARY


def _text(reply) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def default_route() -> MtaRoute | None:
    return MtaRoute.objects.filter(name=settings.SUBMISSION_ROUTE).first()


def tls_context(route: MtaRoute) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if route.allow_invalid_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _secret(route: MtaRoute) -> str | None:
    ref = SecretRef(kind=route.auth_secret_kind, value=route.auth_secret, variable=route.auth_secret_variable,
                    path=route.auth_secret_file)
    try:
        return ref.resolve()
    except DirectoryError as exc:
        raise RelayFailure("auth", f"cannot read the relay's secret: {exc}") from None


def _ehlo_name() -> str:
    return settings.SUBMISSION_EHLO_NAME or socket.getfqdn()


def connect(route: MtaRoute) -> smtplib.SMTP:
    """An open, greeted, encrypted-as-configured and authenticated session with the route's
    relay; raises RelayFailure. The caller quits it."""
    where = f"{route.address}:{route.port}"
    timeout = route.timeout.total_seconds()
    context = tls_context(route)
    try:
        if route.implicit_tls:
            smtp = smtplib.SMTP_SSL(route.address, route.port, local_hostname=_ehlo_name(), timeout=timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(route.address, route.port, local_hostname=_ehlo_name(), timeout=timeout)
    except smtplib.SMTPConnectError as exc:
        raise RelayFailure("connect", f"{where} refused the session: {exc.smtp_code} {_text(exc.smtp_error)}",
                           exc.smtp_code) from None
    except ssl.SSLError as exc:
        raise RelayFailure("tls", f"TLS with {where} failed: {exc.reason or exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise RelayFailure("connect", f"cannot connect to {where}: {exc or type(exc).__name__}") from None
    try:
        _open(route, smtp, context, where)
    except BaseException:
        _close(smtp)
        raise
    return smtp


def _open(route: MtaRoute, smtp: smtplib.SMTP, context: ssl.SSLContext, where: str) -> None:
    stage = "connect"
    try:
        smtp.ehlo_or_helo_if_needed()
        encrypted = route.implicit_tls
        if not route.implicit_tls and route.start_tls != MtaRoute.StartTls.DISABLE:
            if smtp.has_extn("starttls"):
                stage = "tls"
                smtp.starttls(context=context)
                smtp.ehlo()
                encrypted = True
            elif route.start_tls == MtaRoute.StartTls.REQUIRE:
                raise RelayFailure("tls", f"{where} does not offer STARTTLS, which this route requires.")
        if route.auth_username:
            stage = "auth"
            if not encrypted:
                raise RelayFailure("auth", f"refusing to send credentials to {where} over a connection that is not "
                                           "encrypted (set implicitTls or startTls).")
            secret = _secret(route)
            if secret is None:
                raise RelayFailure("auth", "the route has a username but no secret.")
            smtp.login(route.auth_username, secret)
    except RelayFailure:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise RelayFailure("auth", f"{where} refused the credentials of {route.auth_username}: {exc.smtp_code} "
                                   f"{_text(exc.smtp_error)}", exc.smtp_code) from None
    except smtplib.SMTPNotSupportedError:
        raise RelayFailure(stage, f"{where} does not offer AUTH, which this route needs.") from None
    except smtplib.SMTPResponseException as exc:
        raise RelayFailure(stage, f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                           exc.smtp_code) from None
    except ssl.SSLError as exc:
        raise RelayFailure("tls", f"TLS with {where} failed: {exc.reason or exc}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise RelayFailure(stage, f"the session with {where} failed: {exc or type(exc).__name__}") from None


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _crlf(raw: bytes) -> bytes:
    # SMTP lines end in CRLF (RFC 5321 §2.3.8); smtplib dot-stuffs bytes but leaves line ends alone.
    return re.sub(rb"\r?\n", b"\r\n", raw)


def send(raw: bytes, mail_from: str, rcpt_to: Sequence[str], route: MtaRoute | None = None) -> SendResult:
    """Relay `raw` from `mail_from` ("" for the null reverse path) to `rcpt_to` through `route`
    (default: the route named by SUBMISSION_ROUTE). Never raises for the relay's answers or a
    dead relay: every recipient gets a result."""
    recipients = list(dict.fromkeys(rcpt_to))
    # A line break in an address would be a second SMTP command (smtplib raises on it): such
    # an address, or one with spaces or controls, is refused here for good, before connecting.
    bad = [r for r in recipients if not addresses.is_address(r)]
    if mail_from and not addresses.is_address(mail_from):
        bad = recipients
    if bad:
        why = "invalid envelope sender" if bad is recipients else "invalid recipient address"
        good = [] if bad is recipients else [r for r in recipients if r not in bad]
        refused = [RecipientResult(r, PERMANENT, None, why, "mail" if bad is recipients else "rcpt") for r in bad]
        if not good:
            return _log(SendResult(route.name if route else "", tuple(refused)))
        sent = send(raw, mail_from, good, route)
        by_address = {r.address: r for r in (*refused, *sent.recipients)}
        return SendResult(sent.route, tuple(by_address[r] for r in recipients))
    route = route or default_route()
    if route is None:
        result = SendResult("", tuple(RecipientResult(r, TEMPORARY, None, f'no route named "{settings.SUBMISSION_ROUTE}" '
                                                      "is configured", "connect") for r in recipients))
        log.warning("outbound: no route named %s", settings.SUBMISSION_ROUTE)
        return result
    try:
        smtp = connect(route)
    except RelayFailure as exc:
        return _log(SendResult(route.name, tuple(RecipientResult(r, exc.status, exc.code, exc.message, exc.stage)
                                                 for r in recipients)))
    try:
        return _log(SendResult(route.name, tuple(_transaction(smtp, _crlf(raw), mail_from, recipients))))
    finally:
        _close(smtp)


def _transaction(smtp: smtplib.SMTP, raw: bytes, mail_from: str, recipients: list[str]) -> list[RecipientResult]:
    decided: dict[str, RecipientResult] = {}

    def rest(status, code, message, stage):
        return [decided.get(r) or RecipientResult(r, status, code, message, stage) for r in recipients]

    stage = "mail"
    try:
        options = []
        if smtp.has_extn("size"):
            options.append(f"SIZE={len(raw)}")
        if not all(a.isascii() for a in (mail_from, *recipients)):
            if not smtp.has_extn("smtputf8"):
                return rest(PERMANENT, None, "the relay does not accept non-ASCII addresses (no SMTPUTF8)", stage)
            options.append("SMTPUTF8")
        code, reply = smtp.mail(mail_from, options)
        if classify(code) != SENT:
            smtp.rset()
            return rest(classify(code), code, _text(reply), stage)
        stage = "rcpt"
        accepted = []
        for address in recipients:
            code, reply = smtp.rcpt(address)
            if classify(code) == SENT:
                accepted.append(address)
            else:
                decided[address] = RecipientResult(address, classify(code), code, _text(reply), stage)
        if not accepted:
            smtp.rset()
            return rest(TEMPORARY, None, "", stage)
        stage = "data"
        try:
            code, reply = smtp.data(raw)
        except smtplib.SMTPDataError as exc:
            code, reply = exc.smtp_code, exc.smtp_error
        status = classify(code)
        for address in accepted:
            decided[address] = RecipientResult(address, status, code, _text(reply), stage)
        return rest(TEMPORARY, None, "", stage)
    except smtplib.SMTPResponseException as exc:
        return rest(classify(exc.smtp_code), exc.smtp_code, _text(exc.smtp_error), stage)
    except (OSError, smtplib.SMTPException) as exc:
        return rest(TEMPORARY, None, f"the relay session failed: {exc or type(exc).__name__}", stage)


def _log(result: SendResult) -> SendResult:
    log.info("outbound via %s: %d sent, %d temporary, %d permanent", result.route, len(result.sent),
             len(result.temporary), len(result.permanent))
    return result


def probe(route: MtaRoute) -> str:
    """Connect, secure and authenticate as the route says, then quit: what `relay test` checks
    without sending anything. Returns a description of the session; raises RelayFailure."""
    smtp = connect(route)
    try:
        if route.implicit_tls:
            tls = "implicit TLS"
        else:
            tls = "STARTTLS" if isinstance(smtp.sock, ssl.SSLSocket) else "no TLS"
        auth = f"authenticated as {route.auth_username}" if route.auth_username else "no authentication"
        code, reply = smtp.noop()
        return f"{route.address}:{route.port}: {tls}, {auth}; NOOP answered {code} {_text(reply)}"
    finally:
        _close(smtp)
