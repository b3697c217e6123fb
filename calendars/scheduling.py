"""Implicit scheduling (RFC 6638 §3.2) between the accounts of this server, and iMIP out.

`services.put_object` / `delete_object` call `after_put` / `after_delete` inside their
transaction. What an account may send is decided by its own address alone: it schedules as
organizer only when the ORGANIZER is its address, and replies only for the attendees that are
its address. A delivery never trusts the message either: a REQUEST or CANCEL changes an
attendee's existing copy only when that copy has the same organizer, and a REPLY changes the
organizer's copy only when the replier is one of its attendees. So naming another account as
organizer reaches nobody's calendar but one's own.

Every delivered message is also kept in the recipient's scheduling inbox (`ScheduleMessage`),
which the DAV layer lists at the principal's schedule-inbox-URL.

`x:CalendarScheduling` governs all of it: `enable` off sends and applies nothing, and
`maxRecipients` refuses a change that would send to more (the whole write, as the reference).
How each message went is written back on the storing copy (`schedule_statuses`, RFC 6638 §3.2.9).
"""
from __future__ import annotations

import hashlib

import icalendar
from django.contrib.auth import get_user_model
from django.db import transaction

from . import itip, services
from .errors import CalendarError
from accounts.models import Alias, Domain
from registry import services as registry

from .models import CalendarObject, CalendarScheduling, ScheduleMessage


def config() -> CalendarScheduling:
    """The `x:CalendarScheduling` settings as they are now (read once per change of them)."""
    return registry.current(CalendarScheduling)


def own_addresses(account) -> set[str]:
    """The account's address and its enabled aliases (a catch-all `*@domain` is not an address
    anyone invites)."""
    own = {itip.address(account.email_address)}
    for name, domain in (Alias.objects.filter(account=account, enabled=True).exclude(name="*")
                         .values_list("name", "domain__name")):
        own.add(itip.address(f"{name}@{domain}"))
    return own


def _accounts(addresses) -> dict[str, object]:
    """{address: account} of the addresses that are an account's here, or an enabled alias of one."""
    wanted = sorted({a for a in addresses if a})
    if not wanted:
        return {}
    found = {itip.address(a.email_address): a for a in get_user_model().objects.filter(email_address__in=wanted)}
    rest = {a.rpartition("@")[::2]: a for a in wanted if a not in found and "@" in a}
    if rest:
        names = {local for local, _ in rest}
        for alias in (Alias.objects.select_related("account", "domain")
                      .filter(enabled=True, name__in=names, domain__name__in={d for _, d in rest})):
            address = rest.get((alias.name.lower(), alias.domain.name.lower()))
            if address is not None:
                found[address] = alias.account
    return found


def _parse(text: str | None) -> icalendar.Calendar | None:
    if text is None:
        return None
    try:
        return icalendar.Calendar.from_ical(text)
    except ValueError:
        return None


def after_put(calendar, previous_text: str | None, new_cal: icalendar.Calendar) -> list[itip.Message]:
    if not itip.organizer(new_cal):
        return []  # not a scheduling object: nothing to send, whatever it was before
    conf = config()
    if not conf.enable:
        return []
    own = own_addresses(calendar.account)
    old = _parse(previous_text)
    sent = itip.organizer_messages(old, new_cal, own=own)
    _check_recipients(sent, conf)
    reply = itip.attendee_reply(old, new_cal, own=own)
    if reply is not None:
        sent.append(reply)
    for message in sent:
        dispatch(message)
    return sent


def after_delete(calendar, previous_text: str) -> list[itip.Message]:
    old = _parse(previous_text)
    if old is None:
        return []
    conf = config()
    if not conf.enable:
        return []
    # No maxRecipients here: refusing the delete of an event invited under a higher limit would
    # keep it forever; its CANCEL goes to the people invited already.
    sent = itip.organizer_messages(old, None, own=own_addresses(calendar.account))
    for message in sent:
        dispatch(message)
    return sent


def _check_recipients(sent: list[itip.Message], conf: CalendarScheduling) -> None:
    """`maxRecipients`: a change that would invite or cancel more people than that is refused as a
    whole (CalDAV's max-attendees-per-instance, as the reference answers), before anything is sent."""
    count = sum(len(m.recipients) for m in sent)
    if count > conf.max_recipients:
        raise CalendarError("max-attendees-per-instance",
                            f"This change would send to {count} recipients; the server sends to at most "
                            f"{conf.max_recipients} at once (CalendarScheduling maxRecipients).")


def schedule_statuses(cal: icalendar.Calendar, sent: list[itip.Message]) -> bool:
    """RFC 6638 §3.2.9: write how each message went into the copy that caused it, the organizer's
    (SCHEDULE-STATUS on each ATTENDEE it invited) or the attendee's (on the ORGANIZER it replied
    to). True when the copy changed, so that the stored object is no longer the one the client
    sent."""
    before = cal.to_ical()
    for message in sent:
        if message.method == "REQUEST":
            itip.set_schedule_status(cal, message.statuses)
        elif message.method == "REPLY":
            itip.set_organizer_status(cal, message.statuses)
    return cal.to_ical() != before


def dispatch(message: itip.Message) -> dict[str, str]:
    """Deliver to the local recipients, hand the others to the iMIP sender; {address: status}."""
    local = _accounts(message.recipients)
    statuses, done = {}, {}
    for rcpt in message.recipients:
        account = local.get(rcpt)
        if account is not None:
            # An account invited by its address and an alias gets the message once.
            if account.pk not in done:
                done[account.pk] = deliver(account, message)
            statuses[rcpt] = done[account.pk]
    remote = [r for r in message.recipients if r not in local]
    # An address of a domain hosted here that is nobody's: no mail would reach anyone (RFC 6638
    # §7.3, 3.7 "invalid calendar user"), so none is sent.
    for rcpt in _unknown_local(remote):
        statuses[rcpt] = "3.7"
        remote.remove(rcpt)
    if remote:
        # After the commit: a relay that is slow or down must not hold the calendar's lock, and
        # a write that rolls back must send nothing.
        statuses.update({r: itip.SENT if itip.can_send() else itip.NO_SCHEDULING for r in remote})
        transaction.on_commit(lambda: itip.send_remote(message, remote))
    message.statuses = statuses
    return statuses


def _unknown_local(addresses: list[str]) -> list[str]:
    """The addresses of a domain of this server that mail delivery would give to nobody: no
    account or alias has it, nor its `+detail`-less form (RFC 5233), and the domain has no
    catch-all (the rules of `delivery.services.resolve`, which sits above this app)."""
    domains = {a.rpartition("@")[2] for a in addresses if "@" in a}
    hosted = set(Domain.objects.filter(name__in=domains).values_list("name", flat=True)) if domains else set()
    if not hosted:
        return []
    hosted -= set(Alias.objects.filter(enabled=True, name="*", domain__name__in=hosted)
                  .values_list("domain__name", flat=True))
    candidates = [a for a in addresses if a.rpartition("@")[2] in hosted]
    if not candidates:
        return []
    bases = {a: a.split("+", 1)[0] + "@" + a.rpartition("@")[2] if "+" in a.rpartition("@")[0] else a
             for a in candidates}
    known = set(_accounts(set(bases.values())))
    return [a for a in candidates if bases[a] not in known]


def _find(account, uid: str) -> CalendarObject | None:
    obj = (CalendarObject.objects.filter(account=account, uid=uid).select_related("calendar")
           .order_by("pk").first())
    return obj


def _name(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:32] + ".ics"


def deliver(account, message: itip.Message) -> str:
    """Apply one message to one local account's calendars; the RFC 6638 request-status."""
    uid = itip.uid(message.calendar)
    existing = _find(account, uid)
    stored = _parse(existing.data) if existing is not None else None
    own = own_addresses(account)
    if stored is not None and message.method in ("REQUEST", "CANCEL") and itip.organizer(stored) != message.sender:
        return "3.8"  # not the organizer of the copy it would change
    try:
        if message.method == "REQUEST":
            copy = itip.attendee_copy(message)
            if stored is not None:
                for me in own:
                    itip.keep_partstat(stored, copy, me)
                services.put_object(existing.calendar, existing.name, copy.to_ical(), schedule=False)
            else:
                calendar = services.default_calendar(account)
                if calendar is None:
                    return "5.3"
                services.put_object(calendar, _name(uid), copy.to_ical(), schedule=False)
        elif message.method == "CANCEL":
            if stored is None:
                return itip.DELIVERED
            for comp in itip.components(stored):
                comp.pop("STATUS", None)
                comp.add("STATUS", "CANCELLED")
            services.put_object(existing.calendar, existing.name, stored.to_ical(), schedule=False)
        elif message.method == "REPLY":
            if stored is None or itip.organizer(stored) not in own:
                return "3.7"
            if itip.apply_reply(stored, message):
                services.put_object(existing.calendar, existing.name, stored.to_ical(), schedule=False,
                                    keep_schedule_tag=True)
        else:
            return "3.14"
    except CalendarError:
        return "5.3"
    ScheduleMessage.objects.create(account=account, uid=uid[:255], method=message.method,
                                   sender=message.sender[:320], data=message.to_ical().decode())
    return itip.DELIVERED
