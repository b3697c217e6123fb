"""EmailSubmission (RFC 8621 §7): the service every face uses, and the sender.

Creating a submission checks it (§7.5's SetErrors), files the row, holds the message's blob and
journals it, in the caller's transaction; nothing is sent there. Sending is `deliver(pk)`: after
the commit for an immediate submission (EmailSubmission/set registers it with on_commit), and
from `manage.py submissions run` for delayed sends and retries. A sender first claims the row
(one conditional UPDATE: the row is due, not canceled, and no other sender's lease is running),
so two senders never send one message twice: the UPDATE is atomic on both databases (PostgreSQL
re-checks its WHERE on the locked row; SQLite writes one at a time), and the batch picker uses
SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL so concurrent runners take different rows.

undoStatus (§7): "pending" while no recipient has accepted the message (it can be canceled);
"final" once the relay accepted it for one recipient or every recipient is decided; "canceled"
by the client. Recipients the relay refused for now stay "queued" and are tried again with
back-off, until SUBMISSION_GIVE_UP_AFTER.
"""
from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal
from mail.models import Email
from registry import ids
from registry.errors import InvalidProperties, NotFound, SetError
from telemetry import trace

from . import addresses, outbound, senders
from .models import EmailSubmission, Identity

log = logging.getLogger(__name__)

TYPE = "EmailSubmission"
OWNER = "submission"  # the blob store's owner kind of a submitted message
PENDING, FINAL, CANCELED = (EmailSubmission.UndoStatus.PENDING, EmailSubmission.UndoStatus.FINAL,
                            EmailSubmission.UndoStatus.CANCELED)
# spec/jmap.md §2.3: the reference's account capability, as it advertises it.
SUBMISSION_EXTENSIONS = {"FUTURERELEASE": [], "SIZE": [], "DSN": [], "DELIVERYBY": [], "MT-PRIORITY": ["MIXER"],
                         "REQUIRETLS": []}
MAX_DELAYED_SEND = 2_592_000  # 30 days, in seconds
# The SMTP parameters of those extensions (RFC 4865, 1870, 3461, 2852, 6710, 8689), plus BODY
# and SMTPUTF8; anything else in an envelope is refused.
MAIL_PARAMETERS = {"HOLDUNTIL", "HOLDFOR", "SIZE", "RET", "ENVID", "BY", "MT-PRIORITY", "REQUIRETLS", "BODY",
                   "SMTPUTF8"}
RCPT_PARAMETERS = {"NOTIFY", "ORCPT"}
_PARAMETER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_PARAMETER_VALUE = re.compile(r"^[\x21-\x3c\x3e-\x7e]{0,500}$")  # RFC 5321 esmtp-value
MAX_PARAMETERS = 16
# How long a sender's claim on a row lasts; beyond it the row is taken to be abandoned.
MIN_LEASE = timedelta(minutes=15)

PROPERTIES = ("id", "identityId", "emailId", "threadId", "envelope", "sendAt", "undoStatus", "deliveryStatus",
              "dsnBlobIds", "mdnBlobIds")
SERVER_SET = ("id", "threadId", "sendAt", "deliveryStatus", "dsnBlobIds", "mdnBlobIds")


# --- SetErrors of RFC 8621 §7.5 ---------------------------------------------------------------
class InvalidEmail(SetError):
    type = "invalidEmail"


class TooManyRecipients(SetError):
    type = "tooManyRecipients"


class NoRecipients(SetError):
    type = "noRecipients"


class InvalidRecipients(SetError):
    type = "invalidRecipients"


class ForbiddenToSend(SetError):
    type = "forbiddenToSend"


class TooLarge(SetError):
    type = "tooLarge"


class CannotUnsend(SetError):
    type = "cannotUnsend"


# --- reading ----------------------------------------------------------------------------------
def utc(dt: datetime) -> str:
    return dt.astimezone(dt_timezone.utc).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


def visible(account_id: int):
    """The account's submissions as JMAP shows them: the one queryset every read starts from."""
    return EmailSubmission.objects.filter(account_id=account_id, hidden=False)


def to_json(sub: EmailSubmission) -> dict:
    return {"id": ids.encode(sub.pk), "identityId": ids.encode(sub.identity_pk), "emailId": ids.encode(sub.email_pk),
            "threadId": ids.encode(sub.thread_pk), "envelope": sub.envelope, "sendAt": utc(sub.send_at),
            "undoStatus": sub.undo_status, "deliveryStatus": sub.delivery_status or None, "dsnBlobIds": [],
            "mdnBlobIds": []}


def load(account_id: int, submission_id, *, lock: bool = True) -> EmailSubmission:
    pk = ids.decode(submission_id) if isinstance(submission_id, str) else None
    rows = visible(account_id)
    if lock:
        rows = rows.select_for_update()
    sub = rows.filter(pk=pk).first() if pk is not None else None
    if sub is None:
        raise NotFound(f"EmailSubmission {str(submission_id)[:64]} not found.")
    return sub


# --- create -----------------------------------------------------------------------------------
def _id_property(values: dict, prop: str, resolve) -> int | None:
    value = values.get(prop)
    if not isinstance(value, str):
        raise InvalidProperties(f'"{prop}" is required and must be an id.', properties=[prop])
    resolved = resolve(value)
    return ids.decode(resolved) if resolved else None


def _parameters(value, allowed: set[str], where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_PARAMETERS:
        raise InvalidProperties(f"{where}: parameters must be null or an object of at most {MAX_PARAMETERS} "
                                "parameters.", properties=["envelope"])
    out = {}
    for name, arg in value.items():
        if not _PARAMETER_NAME.match(name) or not (arg is None or (isinstance(arg, str)
                                                                   and _PARAMETER_VALUE.match(arg))):
            raise InvalidProperties(f"{where}: the parameter {name[:64]!r} is not a valid SMTP parameter.",
                                    properties=["envelope"])
        if name.upper() not in allowed:
            raise InvalidProperties(f"{where}: the parameter {name[:64]} is not supported (see "
                                    "submissionExtensions).", properties=["envelope"])
        out[name] = arg
    return out


def _address(value, allowed: set[str], where: str) -> dict:
    if not isinstance(value, dict) or set(value) - {"email", "parameters"} or not isinstance(value.get("email"), str):
        raise InvalidProperties(f'{where} must be an Address: {{"email", "parameters"}}.', properties=["envelope"])
    if len(value["email"]) > addresses.MAX_ADDRESS_LENGTH:
        raise InvalidProperties(f"{where}: the address is too long.", properties=["envelope"])
    return {"email": value["email"], "parameters": _parameters(value.get("parameters"), allowed, where)}


def _envelope(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"mailFrom", "rcptTo"} or "mailFrom" not in value:
        raise InvalidProperties('"envelope" must be null or {"mailFrom", "rcptTo"}.', properties=["envelope"])
    rcpt = value.get("rcptTo")
    if not isinstance(rcpt, list) or len(rcpt) > 10 * max(settings.SUBMISSION_MAX_RECIPIENTS, 1):
        raise InvalidProperties('"envelope/rcptTo" must be an array of Address objects.', properties=["envelope"])
    return {"mailFrom": _address(value["mailFrom"], MAIL_PARAMETERS, "envelope/mailFrom"),
            "rcptTo": [_address(a, RCPT_PARAMETERS, f"envelope/rcptTo/{i}") for i, a in enumerate(rcpt)]}


def _emails(meta_value) -> list[str]:
    return [a["email"] for a in meta_value or () if isinstance(a, dict) and a.get("email")]


def _send_at(mail_from: dict, now: datetime) -> datetime:
    """FUTURERELEASE (RFC 4865): HOLDUNTIL (a date-time) or HOLDFOR (seconds), at most
    maxDelayedSend ahead; a time already past releases the message now."""
    params = {k.upper(): v for k, v in (mail_from.get("parameters") or {}).items()}
    hold_until, hold_for = params.get("HOLDUNTIL"), params.get("HOLDFOR")
    if hold_until is not None and hold_for is not None:
        raise InvalidProperties("envelope/mailFrom: HOLDUNTIL and HOLDFOR cannot both be given.",
                                properties=["envelope"])
    if hold_for is not None:
        if not (isinstance(hold_for, str) and hold_for.isdigit() and len(hold_for) <= 12):
            raise InvalidProperties("envelope/mailFrom: HOLDFOR must be a number of seconds.",
                                    properties=["envelope"])
        when = now + timedelta(seconds=min(int(hold_for), MAX_DELAYED_SEND + 1))
    elif hold_until is not None:
        try:
            when = parse_datetime(hold_until) if isinstance(hold_until, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise InvalidProperties("envelope/mailFrom: HOLDUNTIL must be a date-time with a time zone "
                                    "(RFC 3339).", properties=["envelope"])
    else:
        return now
    if when > now + timedelta(seconds=MAX_DELAYED_SEND):
        raise InvalidProperties(f"envelope/mailFrom: a message can be held for at most {MAX_DELAYED_SEND} seconds "
                                "(maxDelayedSend).", properties=["envelope"])
    return max(when, now)


def create(account: Account, values, *, may_send: bool, resolve=lambda value: value,
           now: datetime | None = None) -> EmailSubmission:
    """Check and file a submission (RFC 8621 §7.5); raises the SetError to answer. Nothing is
    sent here: the caller hands the row to `deliver` after its transaction commits."""
    now = now or timezone.now()
    if not may_send:
        raise ForbiddenToSend("This account is not allowed to send mail.")
    if not isinstance(values, dict):
        raise InvalidProperties("An EmailSubmission must be an object.")
    unknown = [p for p in values if p not in ("identityId", "emailId", "envelope", "undoStatus")]
    if unknown:
        reason = "is set by the server" if unknown[0] in SERVER_SET else "is not an EmailSubmission property"
        raise InvalidProperties(f'"{unknown[0][:64]}" {reason}.', properties=[unknown[0][:64]])
    if values.get("undoStatus", PENDING) != PENDING:
        raise InvalidProperties('A submission is created "pending".', properties=["undoStatus"])
    identity_pk = _id_property(values, "identityId", resolve)
    email_pk = _id_property(values, "emailId", resolve)
    envelope = _envelope(values.get("envelope"))
    identity = Identity.objects.filter(account=account, pk=identity_pk).first() if identity_pk else None
    if identity is None:
        raise InvalidProperties("Identity not found.", properties=["identityId"])
    email = (Email.objects.filter(account=account, pk=email_pk).only("pk", "thread_id", "blob_id", "size", "meta")
             .first() if email_pk else None)
    if email is None:
        raise InvalidProperties("Email not found.", properties=["emailId"])

    meta = email.meta
    from_addresses, sender_addresses = _emails(meta.get("from")), _emails(meta.get("sender"))
    if not from_addresses:
        raise InvalidEmail("The message has no From address.", properties=["from"])
    if len(sender_addresses) > 1:
        raise InvalidEmail("The message has more than one Sender address.", properties=["sender"])
    if len(from_addresses) > 1 and not sender_addresses:
        # RFC 5322 §3.6.2: several authors need a Sender, which is also the envelope's sender.
        raise InvalidEmail("The message has several From addresses and no Sender.", properties=["sender"])
    if email.size > settings.SUBMISSION_MAX_SIZE:
        raise TooLarge(f"The message is larger than {settings.SUBMISSION_MAX_SIZE} octets.",
                       maxSize=settings.SUBMISSION_MAX_SIZE)

    if envelope is None:
        # §7: derived from the message: the Sender, else the From; the To, Cc and Bcc recipients.
        mail_from = {"email": (sender_addresses or from_addresses)[0], "parameters": None}
        rcpt = list(dict.fromkeys(a for prop in ("to", "cc", "bcc") for a in _emails(meta.get(prop))))
        envelope = {"mailFrom": mail_from, "rcptTo": [{"email": a, "parameters": None} for a in rcpt]}
        given_mail_from = None
    else:
        seen: dict[str, dict] = {}
        for address in envelope["rcptTo"]:
            seen.setdefault(address["email"], address)
        envelope["rcptTo"] = list(seen.values())
        given_mail_from = envelope["mailFrom"]["email"]
    recipients = [a["email"] for a in envelope["rcptTo"]]
    if not recipients:
        raise NoRecipients("The envelope has no recipients.")
    if len(recipients) > settings.SUBMISSION_MAX_RECIPIENTS:
        raise TooManyRecipients(f"At most {settings.SUBMISSION_MAX_RECIPIENTS} recipients.",
                                maxRecipients=settings.SUBMISSION_MAX_RECIPIENTS)
    invalid = [a for a in recipients if not addresses.is_address(a)]
    if invalid:
        raise InvalidRecipients("Some recipients are not addresses mail can be sent to.",
                                invalidRecipients=invalid[:100])
    refused = senders.check(account, identity, from_addresses, sender_addresses, given_mail_from)
    if refused is not None:
        raise refused
    send_at = _send_at(envelope["mailFrom"], now)

    sub = EmailSubmission.objects.create(
        account=account, identity_pk=identity.pk, email_pk=email.pk, thread_pk=email.thread_id, blob_id=email.blob_id,
        envelope=envelope, send_at=send_at, undo_status=PENDING, next_attempt_at=send_at,
        delivery_status={a: {"smtpReply": "", "delivered": "queued", "displayed": "unknown"} for a in recipients})
    try:
        blobs.hold(account.pk, email.blob_id, OWNER, str(sub.pk))
    except blobs.NotFound:
        raise InvalidEmail("The message's content is gone.", properties=["blobId"]) from None
    journal.record(account.pk, TYPE, created=[ids.encode(sub.pk)])
    return sub


# --- update and destroy -----------------------------------------------------------------------
def update(account_id: int, submission_id, patch, *, now: datetime | None = None) -> EmailSubmission:
    """The one change a client may make (§7.5): undoStatus to "canceled" while pending."""
    now = now or timezone.now()
    if not isinstance(patch, dict):
        raise InvalidProperties("A patch must be an object.")
    sub = load(account_id, submission_id)
    for prop, value in patch.items():
        if prop == "id" and value == ids.encode(sub.pk):
            continue
        if prop != "undoStatus":
            raise InvalidProperties(f'"{prop[:64]}" cannot be changed.', properties=[prop[:64]])
        if value not in (PENDING, FINAL, CANCELED):
            raise InvalidProperties('"undoStatus" is "pending", "final" or "canceled".', properties=["undoStatus"])
        if value == sub.undo_status:
            continue
        if value != CANCELED:
            raise InvalidProperties('"undoStatus" can only be set to "canceled".', properties=["undoStatus"])
        # Only while nothing was relayed and no sender is at work on it: the same conditions
        # a sender claims the row under, so the two cannot both win.
        canceled = EmailSubmission.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=sub.pk, undo_status=PENDING,
        ).update(undo_status=CANCELED, next_attempt_at=None, claim_token="", claimed_until=None)
        if not canceled:
            raise CannotUnsend("The message is being sent or was sent already.")
        sub.undo_status = CANCELED
        sub.delivery_status = {a: {**s, "delivered": "no" if s["delivered"] == "queued" else s["delivered"]}
                               for a, s in sub.delivery_status.items()}
        EmailSubmission.objects.filter(pk=sub.pk).update(delivery_status=sub.delivery_status)
    journal.record(account_id, TYPE, updated=[ids.encode(sub.pk)])
    return sub


def destroy(account_id: int, submission_id) -> EmailSubmission:
    """Forget a submission. It does not cancel it (as in the reference; cancel with undoStatus):
    one still being sent disappears from JMAP and is deleted once the sender is done."""
    sub = load(account_id, submission_id)
    object_id = ids.encode(sub.pk)
    if sub.next_attempt_at is not None:
        EmailSubmission.objects.filter(pk=sub.pk).update(hidden=True)
    else:
        _delete(sub)
    journal.record(account_id, TYPE, destroyed=[object_id])
    return sub


def _delete(sub: EmailSubmission) -> None:
    blobs.release(sub.account_id, sub.blob_id, OWNER, str(sub.pk))
    EmailSubmission.objects.filter(pk=sub.pk).delete()


# --- sending ----------------------------------------------------------------------------------
def strip_bcc(raw: bytes) -> bytes:
    """The message without its Bcc header fields (RFC 5322 §3.6.3: the other recipients must not
    see them). Only the header section is touched; the rest goes out byte for byte."""
    match = re.search(rb"\r?\n\r?\n", raw)
    head, rest = (raw[:match.start()], raw[match.start():]) if match else (raw, b"")
    lines = re.split(rb"(?<=\n)", head)
    out, skipping = [], False
    for line in lines:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line[:4].lower() == b"bcc:"
        if not skipping:
            out.append(line)
    return b"".join(out) + rest


def _lease(route) -> timedelta:
    timeout = route.timeout if route is not None else timedelta(seconds=60)
    return max(MIN_LEASE, timeout * 8)


def claim(pk: int, now: datetime, lease: timedelta) -> str | None:
    """Take the row for sending if it is due, not canceled and no other sender holds it; the
    token to finish with, or None."""
    token = secrets.token_hex(16)
    claimed = EmailSubmission.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=pk, next_attempt_at__lte=now, undo_status__in=(PENDING, FINAL),
    ).update(claim_token=token, claimed_until=now + lease)
    return token if claimed else None


def _reply(result: outbound.RecipientResult) -> str:
    if result.code is not None:
        return f"{result.code} {result.message}".strip()[:1000]
    # Not a reply of the relay (no connection, TLS, a timeout): shaped as the 4yz/5yz it stands for.
    code = "421 4.4.0" if result.status == outbound.TEMPORARY else "550 5.0.0"
    return f"{code} {result.message}"[:1000]


def retry_delay(attempts: int) -> timedelta:
    first = max(settings.SUBMISSION_RETRY_FIRST, 0)
    return timedelta(seconds=min(first * 2 ** max(attempts - 1, 0), max(settings.SUBMISSION_RETRY_MAX, first)))


@dataclass
class Outcome:
    pk: int
    claimed: bool
    sent: int = 0
    temporary: int = 0
    permanent: int = 0


def deliver(pk: int, now: datetime | None = None, token: str | None = None) -> Outcome:
    """Send a due submission to the recipients still queued, and record what the relay said.
    Safe to call from several processes at once: only the one that claims the row sends
    (`token`: the row was claimed already, by `claim_due`)."""
    now = now or timezone.now()
    route = outbound.default_route()
    token = token or claim(pk, now, _lease(route))
    if token is None:
        return Outcome(pk, claimed=False)
    sub = EmailSubmission.objects.filter(pk=pk, claim_token=token).first()
    if sub is None:
        return Outcome(pk, claimed=False)
    queued = [a for a, s in sub.delivery_status.items() if s.get("delivered") == "queued"]
    try:
        view = blobs.resolve(sub.account_id, [sub.blob_id]).get(sub.blob_id)
        raw = strip_bcc(blobs.read(view.blob)) if view is not None else None
    except (OSError, blobs.BlobError) as exc:
        log.warning("submission %s: cannot read the message: %s", pk, exc)
        raw = None
    if raw is None:
        results = [outbound.RecipientResult(a, outbound.TEMPORARY, None, "the message cannot be read from the "
                                            "blob store", "data") for a in queued]
    elif queued:
        results = list(outbound.send(raw, sub.envelope["mailFrom"]["email"], queued, route).recipients)
    else:
        results = []
    return _finish(sub, token, results, now)


def _finish(sub: EmailSubmission, token: str, results, now: datetime) -> Outcome:
    outcome = Outcome(sub.pk, claimed=True)
    status = dict(sub.delivery_status)
    errors = []
    for r in results:
        if r.status == outbound.SENT:
            outcome.sent += 1
            status[r.address] = {"smtpReply": _reply(r), "delivered": "unknown", "displayed": "unknown"}
        elif r.status == outbound.PERMANENT:
            outcome.permanent += 1
            status[r.address] = {"smtpReply": _reply(r), "delivered": "no", "displayed": "unknown"}
        else:
            outcome.temporary += 1
            status[r.address] = {"smtpReply": _reply(r), "delivered": "queued", "displayed": "unknown"}
            errors.append(f"{r.address}: {r.stage}: {r.message}")
    attempts = sub.attempts + 1
    left = [a for a, s in status.items() if s["delivered"] == "queued"]
    if left and now - sub.send_at >= timedelta(seconds=settings.SUBMISSION_GIVE_UP_AFTER):
        for a in left:
            status[a] = {**status[a], "delivered": "no"}
        left = []
    relayed = any(s["delivered"] in ("unknown", "yes") for s in status.values())
    undo = FINAL if relayed or not left else PENDING
    next_attempt = now + retry_delay(attempts) if left else None
    with transaction.atomic():
        # Finished only by the claim's holder; a canceled row stays canceled.
        done = EmailSubmission.objects.filter(pk=sub.pk, claim_token=token).exclude(undo_status=CANCELED).update(
            delivery_status=status, undo_status=undo, next_attempt_at=next_attempt, attempts=attempts,
            last_error="; ".join(errors)[:2000], claim_token="", claimed_until=None)
        if done and EmailSubmission.objects.filter(pk=sub.pk, hidden=True).exists():
            # Destroyed by the client (journalled then): deleted once nothing is left to send.
            if next_attempt is None:
                _delete(sub)
        elif done:
            journal.record(sub.account_id, TYPE, updated=[ids.encode(sub.pk)])
    log.info("submission %s: %d sent, %d to retry, %d refused%s", sub.pk, outcome.sent, outcome.temporary,
             outcome.permanent, f"; next attempt {next_attempt:%Y-%m-%d %H:%M:%S}" if next_attempt else "")
    trace.emit("delivery.completed" if not outcome.temporary else "delivery.attempt-end", id=ids.encode(sub.pk),
               accountId=ids.encode(sub.account_id), sent=outcome.sent, temporary=outcome.temporary,
               permanent=outcome.permanent)
    return outcome


def _due(now: datetime):
    return (EmailSubmission.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
                                           next_attempt_at__lte=now, undo_status__in=(PENDING, FINAL))
            .order_by("next_attempt_at", "pk"))


def claim_due(now: datetime | None = None, limit: int = 100) -> list[tuple[int, str]]:
    """Claim up to `limit` submissions whose (next) attempt is due and that no sender holds:
    (pk, token) of each row this caller now owns."""
    now = now or timezone.now()
    lease = _lease(outbound.default_route())
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL: concurrent runners lock different rows (SKIP LOCKED) and claim them in the
        # same transaction, so they never queue on, nor share, a row.
        token = secrets.token_hex(16)
        with transaction.atomic():
            pks = list(_due(now).select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
            EmailSubmission.objects.filter(pk__in=pks).update(claim_token=token, claimed_until=now + lease)
        return [(pk, token) for pk in pks]
    # SQLite: each row is claimed by its own conditional UPDATE; writers take the database
    # lock in turn, so of two runners only one finds the row still unclaimed.
    out: list[tuple[int, str]] = []
    for _ in range(10):
        # Rows another runner claimed since this one read them are left out of the next read.
        candidates = list(_due(now).values_list("pk", flat=True)[:limit - len(out)])
        for pk in candidates:
            token = claim(pk, now, lease)
            if token is not None:
                out.append((pk, token))
        if not candidates or len(out) >= limit:
            break
    return out


def run_due(now: datetime | None = None, limit: int = 100) -> list[Outcome]:
    """One round of the periodic job: send what is due (delayed sends, retries, and immediate
    sends whose request ended before it could send them)."""
    return [deliver(pk, now, token) for pk, token in claim_due(now, limit)]


def send_after_commit(pk: int) -> None:
    """Send an immediate submission once the transaction that filed it has committed."""

    def send():
        try:
            deliver(pk)
        except Exception:  # noqa: BLE001 - the periodic job retries what this could not send
            log.exception("submission %s: sending after the commit failed; the periodic job will retry", pk)

    transaction.on_commit(send)
