"""Delivery: a message handed over by an MTA (LMTP, `manage.py deliver`) filed for each of its
recipients, after their Sieve script and vacation response.

    outcomes = deliver(raw, envelope_from, ["alice@example.org", "bob@example.org"])
    outcomes[0].status   # "delivered" | "temporary" | "permanent"
    outcomes[0].reply()  # "250 2.0.0 Delivered", "452 4.2.2 Mailbox over quota.", ...

One outcome per recipient, in order. A message is never lost: what the recipient's account
keeps is written in one transaction per recipient, so a failure leaves nothing of it and
answers a temporary failure (the MTA keeps the message and tries again). A recipient whose
address reaches an account already served in this call gets that account's outcome (the
message is filed once per account, as the reference does).
"""
from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.db import transaction
from django.utils import timezone

import sieve
from accounts.authz import account_permissions
from accounts.models import Account, Alias
from blobs import services as blobs
from mail import store
from mail.models import Mailbox
from submission import outbound, vacation
from submission.addresses import send_as
from telemetry import trace

from . import imip, scripts

log = logging.getLogger(__name__)

DELIVERED, TEMPORARY, PERMANENT = "delivered", "temporary", "permanent"
SUBADDRESS_SEPARATOR = "+"
# RFC 5232 system flags and the JMAP keywords they are (RFC 8621 §4.1.1).
SYSTEM_FLAGS = {"\\seen": "$seen", "\\flagged": "$flagged", "\\answered": "$answered", "\\draft": "$draft",
                "\\deleted": "$deleted"}
MAX_REASON = 200


@dataclass(frozen=True)
class Outcome:
    recipient: str
    status: str
    code: int
    enhanced: str
    message: str

    def reply(self) -> str:
        """The LMTP reply line for this recipient (RFC 2033 §4.2, RFC 3463 status codes)."""
        return f"{self.code} {self.enhanced} {self.message}"

    def to(self, recipient: str) -> "Outcome":
        return Outcome(recipient, self.status, self.code, self.enhanced, self.message)


def _delivered(rcpt: str, message: str = "Delivered") -> Outcome:
    return Outcome(rcpt, DELIVERED, 250, "2.0.0", message)


def unknown(rcpt: str) -> Outcome:
    return Outcome(rcpt, PERMANENT, 550, "5.1.1", "Mailbox not found.")


def _transient(rcpt: str) -> Outcome:
    return Outcome(rcpt, TEMPORARY, 451, "4.3.0", "Transient server failure.")


def _over_quota(rcpt: str) -> Outcome:
    # The reference answers a full mailbox with a temporary failure: the MTA keeps the message
    # and tries again, so that mail arrives once the user has made room.
    return Outcome(rcpt, TEMPORARY, 452, "4.2.2", "Mailbox over quota.")


def _one_line(text: str) -> str:
    text = " ".join((text or "").split())
    return "".join(ch for ch in text if ch.isprintable())[:MAX_REASON] or "Rejected."


# --- recipients -------------------------------------------------------------------------------
def normalise(address: str) -> str:
    address = (address or "").strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address.lower()


def resolve(address: str) -> Account | None:
    """The account mail to `address` goes to: the account of that address, else the account of
    an enabled alias, else the same without a `+detail` (RFC 5233 subaddress), else the owner
    of the domain's catch-all alias `*@domain`."""
    address = normalise(address)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    candidates = [local]
    if SUBADDRESS_SEPARATOR in local:
        base = local.split(SUBADDRESS_SEPARATOR, 1)[0]
        if base:
            candidates.append(base)
    for name in candidates:
        account = Account.objects.filter(email_address=f"{name}@{domain}").first()
        if account is not None:
            return account
        alias = (Alias.objects.select_related("account").filter(name=name, domain__name=domain, enabled=True)
                 .first())
        if alias is not None:
            return alias.account
    alias = Alias.objects.select_related("account").filter(name="*", domain__name=domain, enabled=True).first()
    return alias.account if alias is not None else None


def may_receive(account: Account) -> bool:
    return "emailReceive" in account_permissions(account)


# --- mailboxes and keywords -------------------------------------------------------------------
def _inbox(account_id: int) -> int:
    pk = Mailbox.objects.filter(account_id=account_id, role="inbox").values_list("pk", flat=True).first()
    if pk is None and not Mailbox.objects.filter(account_id=account_id).exists():
        # An account made before the mail store existed has no mailboxes yet.
        store.create_role_mailboxes(account_id)
        pk = Mailbox.objects.filter(account_id=account_id, role="inbox").values_list("pk", flat=True).first()
    if pk is None:
        raise store.StoreError("serverFail", f"Account {account_id} has no inbox.")
    return pk


def find_mailbox(account_id: int, name: str) -> int | None:
    """The mailbox a `fileinto` names: "INBOX" (any case) is the inbox; a path with "/" walks
    the tree; a single name that matches no mailbox may name a role ("Junk", "Trash")."""
    if name.upper() == "INBOX":
        return _inbox(account_id)
    parent = None
    for part in name.split("/"):
        parent = (Mailbox.objects.filter(account_id=account_id, parent_id=parent, name=part)
                  .values_list("pk", flat=True).first())
        if parent is None:
            break
    if parent is None and "/" not in name and name.lower() in Mailbox.ROLES:
        parent = Mailbox.objects.filter(account_id=account_id, role=name.lower()).values_list("pk", flat=True).first()
    return parent


def keywords(flags) -> dict:
    out = {}
    for flag in flags:
        keyword = SYSTEM_FLAGS.get(flag.lower(), flag.lower())
        if store.valid_keyword(keyword):
            out[keyword] = True
    return out


# --- the run of one recipient -----------------------------------------------------------------
@dataclass
class _Plan:
    """What one recipient's scripts decided."""
    targets: dict          # keywords (a sorted tuple) -> mailbox pks
    redirects: list        # addresses
    vacations: list        # sieve.Vacation actions
    reject: sieve.Reject | None = None
    kept: bool = False     # some copy is filed


def _plan(account: Account, rcpt: str, envelope_from: str, message) -> _Plan:
    plan = _Plan(targets={}, redirects=[], vacations=[])
    limits = sieve.Limits.from_settings()
    try:
        script = scripts.active_script(account.pk)
    except sieve.SieveError as exc:
        log.warning("delivery: the active script of account %s no longer compiles (%s); keeping", account.pk, exc)
        script = None
    vacation_text = vacation.vacation_script(account)
    if script is None and vacation_text is None:
        # The common case: nothing to run, the inbox without keywords.
        plan.targets[()] = {_inbox(account.pk)}
        return plan
    addresses = tuple(sorted(send_as(account).addresses))
    envelope = sieve.Envelope(mail_from=envelope_from, rcpt_to=normalise(rcpt), user_addresses=addresses)
    actions = [sieve.Keep(implicit=True)]
    if script is not None:
        result = sieve.evaluate(script, message(), envelope, limits)
        if result.error:
            log.info("delivery: script of account %s stopped: %s", account.pk, result.error)
        actions = result.actions
    for action in actions:
        if isinstance(action, sieve.Reject):
            plan.reject = action
        elif isinstance(action, sieve.Keep):
            plan.targets.setdefault(tuple(sorted(keywords(action.flags))), set()).add(_inbox(account.pk))
        elif isinstance(action, sieve.FileInto):
            mailbox = find_mailbox(account.pk, action.mailbox)
            if mailbox is None:
                # No `mailbox` extension (:create): RFC 5228 §2.10.6, an action that cannot be
                # done keeps the message, here in the inbox.
                log.info("delivery: account %s has no mailbox %r; filed in the inbox", account.pk, action.mailbox)
                mailbox = _inbox(account.pk)
            plan.targets.setdefault(tuple(sorted(keywords(action.flags))), set()).add(mailbox)
        elif isinstance(action, sieve.Redirect):
            plan.redirects.append(action.address)
        elif isinstance(action, sieve.Vacation):
            plan.vacations.append(action)
    if plan.reject is None and vacation_text is not None:
        # The vacation response runs as a script of its own (submission.vacation).
        result = sieve.evaluate(sieve.parse(vacation_text, limits), message(), envelope, limits)
        plan.vacations.extend(a for a in result.actions if isinstance(a, sieve.Vacation))
    return plan


def _store(account: Account, raw: bytes, targets: dict) -> None:
    """Every copy the recipient keeps, in one transaction, journaled at its end. The parse and
    the blob's file come before it, so that the write lock (SQLite's, or PostgreSQL's row locks
    of the inbox and the journal) is held for the writes alone; a failure leaves at most a file
    no row names, which the blob store's collection removes."""
    touched = store.Touched()
    prepared = store.prepare(raw)
    with blobs.staging(raw) as staged:
        with transaction.atomic():
            for flags, mailboxes in targets.items():
                store.store_message(account.pk, raw, mailbox_pks=sorted(mailboxes),
                                    keywords=dict.fromkeys(flags, True), touched=touched, savepoint=False,
                                    prepared=prepared, staged=staged, unlimited=account.max_disk_quota is None)
            touched.record(account.pk)


def vacation_reply(action: sieve.Vacation) -> bytes:
    """The reply a Vacation action plans, as a message (RFC 5230 §5, RFC 3834 §3)."""
    if action.mime:
        msg = email.message_from_string(action.body, policy=email.policy.SMTP)
    else:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg.set_content(action.body, charset="utf-8")
    clean = lambda text: re.sub(r"[\r\n]+", " ", text or "")  # noqa: E731 - one use per header
    domain = action.from_address.rpartition("@")[2] or "localhost"
    for name, value in (("From", action.from_address), ("To", action.recipient), ("Subject", action.subject),
                        ("Date", format_datetime(timezone.now())), ("Message-ID", make_msgid(domain=domain)),
                        ("Auto-Submitted", "auto-replied"), ("In-Reply-To", action.in_reply_to),
                        ("References", action.references)):
        if value:
            del msg[name]
            msg[name] = clean(value)
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    return msg.as_bytes()


def _after(account: Account, raw: bytes, envelope_from: str, plan: _Plan) -> None:
    """Redirects and vacation replies, once the message is safe. A redirect the relay did not
    take leaves the user a copy, so that a message is never lost for a relay's sake."""
    lost = not plan.kept
    for address in dict.fromkeys(plan.redirects):
        result = outbound.send(raw, envelope_from, [address])
        if result.recipients and result.recipients[0].status == outbound.SENT:
            lost = False
        else:
            log.warning("delivery: redirect of account %s to %s failed: %s", account.pk, address,
                        result.recipients[0].message if result.recipients else "")
    if plan.redirects and lost:
        _store(account, raw, {(): {_inbox(account.pk)}})
    for action in plan.vacations:
        if not vacation.claim_reply(account.pk, action.tracking_key, action.period_seconds):
            continue
        result = outbound.send(vacation_reply(action), "", [action.recipient])
        if not result.recipients or result.recipients[0].status != outbound.SENT:
            log.warning("delivery: vacation reply of account %s to %s not sent", account.pk, action.recipient)


def deliver_to(account: Account, rcpt: str, raw: bytes, envelope_from: str, message) -> Outcome:
    """The outcome of one account's delivery; raises only for the unexpected (the caller turns
    that into a temporary failure)."""
    if not may_receive(account):
        return Outcome(rcpt, PERMANENT, 550, "5.5.0", "This account is not authorized to receive email.")
    plan = _plan(account, rcpt, envelope_from, message)
    if plan.reject is not None:
        return Outcome(rcpt, PERMANENT, 550, "5.7.1", _one_line(plan.reject.reason))
    if plan.targets:
        try:
            _store(account, raw, plan.targets)
        except store.StoreError as exc:
            if exc.type == "overQuota":
                return _over_quota(rcpt)
            raise
        plan.kept = True
        try:
            # After the mail is safe, in transactions of its own: a calendar part, whatever it
            # holds, never costs the message (docs/calendars.md, "Scheduling by mail").
            imip.receive(account, raw, envelope_from)
        except Exception:
            log.exception("delivery: iMIP for account %s", account.pk)
    try:
        _after(account, raw, envelope_from, plan)
    except Exception:  # the message is filed: a failed reply must not make the MTA send it again
        log.exception("delivery: after filing for account %s", account.pk)
    return _delivered(rcpt, "Delivered" if plan.targets or plan.redirects else "Discarded")


def deliver(raw: bytes, envelope_from: str, recipients) -> list[Outcome]:
    """One outcome per recipient (see the module's docstring)."""
    parsed = []

    def message():
        if not parsed:
            parsed.append(sieve.Message.from_bytes(raw))
        return parsed[0]

    envelope_from = normalise(envelope_from)
    span = trace.start_span()
    try:
        outcomes = _deliver_all(raw, envelope_from, recipients, message)
    finally:
        trace.end_span(span)
    return outcomes


def _deliver_all(raw: bytes, envelope_from: str, recipients, message) -> list[Outcome]:
    outcomes, by_account = [], {}
    for rcpt in recipients:
        try:
            account = resolve(rcpt)
            if account is None:
                outcomes.append(unknown(rcpt))
                continue
            if account.pk in by_account:
                outcomes.append(by_account[account.pk].to(rcpt))
                continue
            outcome = deliver_to(account, rcpt, raw, envelope_from, message)
        except Exception:
            log.exception("delivery to %s failed", rcpt)
            outcome = _transient(rcpt)
        else:
            by_account[account.pk] = outcome
        outcomes.append(outcome)
    for outcome in outcomes:
        log.info("delivery from <%s> to <%s>: %s", envelope_from, outcome.recipient, outcome.reply())
        # The reference's events of a message filed (ham) or refused.
        trace.emit("message-ingest.ham" if outcome.status == DELIVERED else "message-ingest.error",
                   **{"from": envelope_from, "to": outcome.recipient, "status": outcome.status,
                      "code": outcome.code, "size": len(raw)})
    return outcomes
