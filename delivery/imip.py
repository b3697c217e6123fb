"""iMIP in (RFC 6047): the iTIP objects a delivered message carries, applied to the recipient's
calendars by the store's own scheduling (`calendars.scheduling.deliver`), besides the mail.

Mail From can be forged, so nothing here believes a message unless (docs/calendars.md,
"Scheduling by mail"):

- scheduling is on (`x:CalendarScheduling` `enable`), ingestion is on (`CALENDAR_IMIP_INBOUND`)
  and the account has `calendarSchedulingReceive`;
- the sender is authenticated: the MTA in front of us vouches, in its Authentication-Results
  header (the topmost one with our `CALENDAR_IMIP_AUTHSERV_ID`), for `dmarc=pass` of the From
  domain (`CALENDAR_IMIP_REQUIRE_DMARC`, on by default as in the reference);
- the From address is one address, not one of this server's domains (accounts here schedule
  through the store, never by mail), and the envelope sender, when there is one, is of the same domain;
- the From address is the single ATTENDEE of a REPLY, or the ORGANIZER of a REQUEST/CANCEL.

Everything else is the store's rules: a REPLY changes only the PARTSTAT of the sender's own
ATTENDEE line in a copy the recipient organizes; a REQUEST/CANCEL changes only a copy with the
same organizer. An invitation for an event the recipient does not have yet is added only from a
sender in its contacts, or from anyone with `autoAddInvitations`; otherwise it is only filed in the
scheduling inbox. A malformed, oversized (`itipMaxSize`) or hostile calendar part is skipped: the
mail is always kept, and nothing here can fail a delivery.
"""
from __future__ import annotations

import copy
import email
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass
from email.utils import getaddresses

import authres
import icalendar
from django.conf import settings
from django.db import transaction

from accounts.authz import account_permissions
from accounts.models import Account, Alias, Domain
from calendars import ical, itip, scheduling
from calendars import services as calendars
from calendars.errors import CalendarError
from calendars.models import CalendarObject, ScheduleMessage
from contacts.models import CardProperty

log = logging.getLogger(__name__)

METHODS = ("REQUEST", "REPLY", "CANCEL")
PERMISSION = "calendarSchedulingReceive"
MAX_PARTS = 8  # calendar parts looked at in one message: an invitation has one, or two (invite.ics)
# Cheap enough for every message: most mail carries no calendar and is never parsed here.
_HINT = re.compile(rb"text/calendar|application/ics|\.ics", re.I)


@dataclass(frozen=True)
class Result:
    """What became of one iTIP object of a message (for the log and the tests)."""

    method: str
    uid: str
    status: str  # a request-status of the store ("2.0", "3.8", …) or "ignored"
    reason: str = ""


def _ignored(method: str, uid: str, reason: str) -> Result:
    return Result(method, uid, "ignored", reason)


# --- the message ------------------------------------------------------------------------------
def calendar_parts(msg) -> list[tuple[bytes, str]]:
    """(decoded octets, charset) of the parts that may hold an iTIP object: `text/calendar` with
    a `method` parameter (RFC 6047 §2.4), else a text/calendar or .ics attachment."""
    primary, other = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = (part.get_filename() or "").lower()
        if ctype == "text/calendar" and part.get_param("method"):
            primary.append(part)
        elif ctype in ("text/calendar", "application/ics") or filename.endswith(".ics"):
            other.append(part)
        if len(primary) + len(other) >= MAX_PARTS:
            break
    out = []
    for part in primary or other:
        payload = part.get_payload(decode=True)
        if payload is not None:
            out.append((payload, part.get_content_charset() or "utf-8"))
    return out


def _text(payload: bytes, charset: str) -> str | None:
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None


def sender_of(msg) -> str | None:
    """The one From address, lower-cased; None when there is none, or several."""
    values = [str(v) for v in msg.get_all("From", [])]
    found = [addr.strip().lower() for _, addr in getaddresses(values) if addr and "@" in addr]
    return found[0] if len(set(found)) == 1 and len(values) == 1 else None


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def _aligned(a: str, b: str) -> bool:
    """Relaxed alignment, as DMARC's: the same domain, or one a subdomain of the other."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def dmarc_pass(msg, sender: str) -> bool:
    """Whether our MTA says DMARC passed for the From domain. Only the topmost header with our
    authserv-id counts: RFC 8601 §5 has the MTA remove any that claim its id, so the one on
    top is its own, and a sender cannot write it."""
    authserv = settings.CALENDAR_IMIP_AUTHSERV_ID.strip().lower()
    if not authserv:
        return False
    for value in msg.get_all("Authentication-Results", []):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(str(value))
        except Exception:  # noqa: BLE001 - authres raises its own and ValueError/IndexError
            continue
        if (header.authserv_id or "").strip().lower() != authserv:
            continue
        for result in header.results:
            if str(result.method).lower() != "dmarc" or str(result.result).lower() != "pass":
                continue
            for prop in result.properties:
                if (prop.type, prop.name) == ("header", "from") and str(prop.value).lower() == _domain(sender):
                    return True
        return False
    return False


def _is_local(address: str) -> bool:
    """An address of this server: an account's, an alias's, or any of a domain hosted here."""
    local, _, domain = address.rpartition("@")
    return (Domain.objects.filter(name=domain).exists() or Account.objects.filter(email_address=address).exists()
            or Alias.objects.filter(name=local, domain__name=domain).exists())


def own_addresses(account) -> set[str]:
    return scheduling.own_addresses(account)


def _known_contact(account, sender: str) -> bool:
    return CardProperty.objects.filter(book__account=account, name="EMAIL", value__iexact=sender).exists()


# --- one iTIP object --------------------------------------------------------------------------
def _dtstamp(cal):
    stamps = [c["DTSTAMP"].dt for c in itip.components(cal) if "DTSTAMP" in c]
    return max(stamps, default=None)


def _stale(incoming, stored) -> bool:
    """RFC 5546 §2.1.5: an older SEQUENCE, or the same one with an older DTSTAMP, is out of date."""
    new, old = itip.sequence(incoming), itip.sequence(stored)
    if new != old:
        return new < old
    try:
        a, b = _dtstamp(incoming), _dtstamp(stored)
        return a is not None and b is not None and a < b
    except TypeError:  # a date against a date-time: no order to go by
        return False


def apply_one(account, sender: str, cal: icalendar.Calendar, conf=None) -> Result:
    conf = conf or scheduling.config()
    method = str(cal.get("METHOD", "")).strip().upper()
    uid = itip.uid(cal)
    if method not in METHODS:
        return _ignored(method, uid, "method")
    if not uid or len({str(c.get("UID", "")) for c in itip.components(cal)}) != 1:
        return _ignored(method, uid, "uid")
    own = own_addresses(account)
    attendees = itip.attendees(cal, server_only=False)
    existing = (CalendarObject.objects.filter(account=account, uid=uid).order_by("pk").first())
    stored = None
    if existing is not None:
        try:
            stored = icalendar.Calendar.from_ical(existing.data)
        except ValueError:
            return _ignored(method, uid, "stored copy unreadable")
    if method == "REPLY":
        if set(attendees) != {sender}:
            return _ignored(method, uid, "the sender is not the one attendee of the reply")
        if stored is None or itip.organizer(stored) not in own:
            return _ignored(method, uid, "not an event the recipient organizes")
        if sender not in itip.attendees(stored, server_only=False):
            return _ignored(method, uid, "the sender is not an attendee of the event")
        if itip.sequence(cal) < itip.sequence(stored):
            return _ignored(method, uid, "out of date")
    else:
        if itip.organizer(cal) != sender:
            return _ignored(method, uid, "the sender is not the organizer")
        if not own & set(attendees):
            return _ignored(method, uid, "the recipient is not an attendee")
        if stored is not None:
            if itip.organizer(stored) != sender:
                return _ignored(method, uid, "the copy has another organizer")
            if _instances_only(cal) and any("RECURRENCE-ID" not in c for c in itip.components(stored)):
                return _apply_instances(account, existing, stored, sender, cal, method)
            if _stale(cal, stored):
                return _ignored(method, uid, "out of date")
        elif method == "CANCEL":
            return _ignored(method, uid, "no copy to cancel")
        elif not (conf.auto_add_invitations or _known_contact(account, sender)):
            # Left where the account's client shows it, for its user to take or leave; the
            # calendar is not touched (the reference's autoAddInvitations off).
            ScheduleMessage.objects.create(account=account, uid=uid[:255], method=method, sender=sender[:320],
                                           data=cal.to_ical().decode())
            return Result(method, uid, "inbox", "an invitation from a stranger: scheduling inbox only "
                          "(autoAddInvitations off)")
    message = itip.Message(method, sender, [itip.address(account.email_address)], cal)
    with transaction.atomic():
        status = scheduling.deliver(account, message)
    return Result(method, uid, status)


def _rid(comp):
    return comp["RECURRENCE-ID"].to_ical() if "RECURRENCE-ID" in comp else None


def _instances_only(cal) -> bool:
    comps = itip.components(cal)
    return bool(comps) and all("RECURRENCE-ID" in c for c in comps)


def _older(incoming, current) -> bool:
    return _stale(_wrap(copy.deepcopy(incoming)), _wrap(copy.deepcopy(current)))


def _apply_instances(account, existing, stored, sender: str, cal, method: str) -> Result:
    """A REQUEST or CANCEL of some instances of a series the recipient has (what Google and
    Outlook send when one occurrence changes): merged into the copy, never replacing the series.
    A changed instance becomes (or replaces) its override; a cancelled one is its override marked
    cancelled, or an EXDATE of the series."""
    uid = itip.uid(cal)
    own = own_addresses(account)
    by_rid = {_rid(c): c for c in itip.components(stored)}
    master = by_rid[None]
    changed = False
    for comp in itip.components(cal):
        rid = _rid(comp)
        current = by_rid.get(rid, master)
        if _older(comp, current):
            continue
        if method == "CANCEL":
            if rid in by_rid:
                by_rid[rid].pop("STATUS", None)
                by_rid[rid].add("STATUS", "CANCELLED")
            else:
                master.add("EXDATE", comp["RECURRENCE-ID"].dt)
        else:
            item = copy.deepcopy(comp)
            answered = {}
            if rid in by_rid and itip.sequence(_wrap(item)) <= itip.sequence(_wrap(current)):
                answered = {a: p for a, p in itip.attendees(_wrap(current), server_only=False).items() if a in own}
            props = item.get("ATTENDEE")
            for prop in props if isinstance(props, list) else [props] if props is not None else []:
                if itip.address(prop) in answered:
                    prop.params["PARTSTAT"] = answered[itip.address(prop)]
                else:
                    prop.params.setdefault("PARTSTAT", "NEEDS-ACTION")
            if rid in by_rid:
                stored.subcomponents[stored.subcomponents.index(by_rid[rid])] = item
            else:
                stored.add_component(item)
            by_rid[rid] = item
        changed = True
    if not changed:
        return _ignored(method, uid, "out of date")
    try:
        with transaction.atomic():
            calendars.put_object(existing.calendar, existing.name, stored.to_ical(), schedule=False)
            ScheduleMessage.objects.create(account=account, uid=uid[:255], method=method, sender=sender[:320],
                                           data=cal.to_ical().decode())
    except CalendarError as exc:
        return _ignored(method, uid, f"refused by the store ({exc.condition})")
    return Result(method, uid, itip.DELIVERED)


def _wrap(comp):
    cal = icalendar.Calendar()
    cal.add_component(comp)
    return cal


# --- the whole message ------------------------------------------------------------------------
def receive(account, raw: bytes, envelope_from: str) -> list[Result]:
    """Apply the iTIP objects of one delivered message to one account; never raises for the
    message's sake (a failure is logged and the object skipped)."""
    if not settings.CALENDAR_IMIP_INBOUND or not _HINT.search(raw):
        return []
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        parts = calendar_parts(msg)
    except (RecursionError, ValueError, TypeError, LookupError, AttributeError, IndexError) as exc:
        log.info("imip: account %s: the message cannot be read for iTIP (%s)", account.pk, type(exc).__name__)
        return []
    if not parts:
        return []
    conf = scheduling.config()
    if not conf.enable or PERMISSION not in account_permissions(account):
        return []
    sender = sender_of(msg)
    if sender is None:
        return [_ignored("", "", "no single From address")]
    envelope = (envelope_from or "").strip().lower()
    if envelope and not _aligned(_domain(envelope), _domain(sender)):
        return [_ignored("", "", "the envelope sender is of another domain than From")]
    if settings.CALENDAR_IMIP_REQUIRE_DMARC and not dmarc_pass(msg, sender):
        return [_ignored("", "", "the sender is not authenticated (no DMARC pass)")]
    if _is_local(sender):
        return [_ignored("", "", "the sender is an account of this server")]
    results, seen = [], set()
    max_size = conf.itip_max_size
    for payload, charset in parts:
        if len(payload) > max_size:
            results.append(_ignored("", "", "the calendar part is too large"))
            continue
        text = _text(payload, charset)
        if text is None:
            results.append(_ignored("", "", "the calendar part is not text"))
            continue
        key = hashlib.sha256(text.strip().replace("\r\n", "\n").encode()).digest()
        if key in seen:
            continue
        seen.add(key)
        try:
            cal = ical.parse(text.encode("utf-8"), max_size=max_size)
            results.append(apply_one(account, sender, cal, conf))
        except CalendarError as exc:
            results.append(_ignored("", "", f"invalid iCalendar ({exc.condition})"))
        except Exception:  # noqa: BLE001 - a hostile object must never cost the mail
            log.exception("imip: account %s: an iTIP object from %s failed", account.pk, sender)
            results.append(_ignored("", "", "failed"))
    for r in results:
        log.info("imip: %s %s from <%s> for account %s: %s %s", r.method, r.uid[:80], sender, account.pk,
                 r.status, r.reason)
    return results
