"""iTIP (RFC 5546) on icalendar objects, and the iMIP form of a message (RFC 6047). No HTTP, no
database: the store (`services`) decides who is on this server and what to write.

From one stored version to the next of a scheduling object resource (RFC 6638 §3.2):

- the organizer's change is a REQUEST to every attendee still invited and a CANCEL to every
  attendee removed; a deleted object is a CANCEL to all;
- an attendee's change of its own PARTSTAT is a REPLY to the organizer;
- an attendee or organizer marked `SCHEDULE-AGENT=CLIENT` (or NONE) is left to the client.

    msgs = itip.organizer_messages(old_cal, new_cal, own={"alice@example.org"})
    for m in msgs: m.method, m.recipients, m.calendar   # one message per recipient set
"""
from __future__ import annotations

import copy
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage

import icalendar

SCHEDULED = ("VEVENT", "VTODO")
PARTSTATS = {"NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED", "COMPLETED", "IN-PROCESS"}
# RFC 6638 §7.3: the request-status codes SCHEDULE-STATUS carries.
DELIVERED, SENT, NO_SCHEDULING = "1.2", "1.1", "5.3"
PRODID = "-//Stalwart Labs LLC//Stalwart Server//EN"


def address(value) -> str:
    """A calendar user address as compared: without `mailto:`, lower-cased."""
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def components(cal: icalendar.Calendar) -> list:
    return [c for c in cal.subcomponents if c.name in SCHEDULED]


def organizer(cal: icalendar.Calendar) -> str:
    """The organizer's address of the object ('' when it has none: not a scheduling object)."""
    for comp in components(cal):
        if "ORGANIZER" in comp:
            return address(comp["ORGANIZER"])
    return ""


def _client_scheduled(prop) -> bool:
    agent = str(getattr(prop, "params", {}).get("SCHEDULE-AGENT", "SERVER")).upper()
    return agent != "SERVER"


def organizer_by_client(cal: icalendar.Calendar) -> bool:
    return any("ORGANIZER" in c and _client_scheduled(c["ORGANIZER"]) for c in components(cal))


def attendees(cal: icalendar.Calendar, *, server_only: bool = True) -> dict[str, str]:
    """{address: PARTSTAT} of every attendee of every component (the master's PARTSTAT wins),
    leaving out those the client schedules itself when `server_only`."""
    out: dict[str, str] = {}
    for comp in components(cal):
        for prop in _list(comp.get("ATTENDEE")):
            if server_only and _client_scheduled(prop):
                continue
            key = address(prop)
            if key and (key not in out or "RECURRENCE-ID" not in comp):
                out[key] = str(prop.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
    return out


def uid(cal: icalendar.Calendar) -> str:
    for comp in components(cal):
        return str(comp.get("UID", ""))
    return ""


def sequence(cal: icalendar.Calendar) -> int:
    values = []
    for comp in components(cal):
        try:
            values.append(int(comp.get("SEQUENCE", 0)))
        except (TypeError, ValueError):
            values.append(0)
    return max(values, default=0)


@dataclass
class Message:
    """One iTIP message: `calendar` carries METHOD; `recipients` are addresses (no mailto:)."""

    method: str
    sender: str
    recipients: list[str]
    calendar: icalendar.Calendar
    statuses: dict[str, str] = field(default_factory=dict)

    def to_ical(self) -> bytes:
        return self.calendar.to_ical()


def _envelope(method: str, source: icalendar.Calendar) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("METHOD", method)
    for comp in source.subcomponents:
        if comp.name == "VTIMEZONE":
            cal.add_component(copy.deepcopy(comp))
    return cal


def _stamp(comp) -> None:
    comp.pop("DTSTAMP", None)
    comp.add("DTSTAMP", datetime.now(timezone.utc).replace(microsecond=0))


def _strip_schedule_params(comp) -> None:
    """SCHEDULE-AGENT, SCHEDULE-STATUS and SCHEDULE-FORCE-SEND are for the server, never sent on."""
    for name in ("ORGANIZER", "ATTENDEE"):
        for prop in _list(comp.get(name)):
            for param in ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND"):
                prop.params.pop(param, None)


def _without_alarms(comp):
    out = copy.deepcopy(comp)
    out.subcomponents = [c for c in out.subcomponents if c.name != "VALARM"]
    _strip_schedule_params(out)
    _stamp(out)
    return out


def request(cal: icalendar.Calendar, recipients: Iterable[str], sender: str) -> Message:
    out = _envelope("REQUEST", cal)
    for comp in components(cal):
        out.add_component(_without_alarms(comp))
    return Message("REQUEST", sender, sorted(set(recipients)), out)


def cancel(cal: icalendar.Calendar, recipients: Iterable[str], sender: str) -> Message:
    """A CANCEL of the whole object (RFC 5546 §3.2.5): the master with SEQUENCE raised."""
    out = _envelope("CANCEL", cal)
    wanted = set(recipients)
    for comp in components(cal):
        if "RECURRENCE-ID" in comp:
            continue
        item = _without_alarms(comp)
        item.pop("STATUS", None)
        item.add("STATUS", "CANCELLED")
        item.pop("SEQUENCE", None)
        item.add("SEQUENCE", sequence(cal) + 1)
        item.pop("ATTENDEE", None)
        for prop in _list(comp.get("ATTENDEE")):
            if address(prop) in wanted:
                item.add("ATTENDEE", copy.deepcopy(prop))
        _strip_schedule_params(item)
        out.add_component(item)
    return Message("CANCEL", sender, sorted(wanted), out)


def organizer_messages(old: icalendar.Calendar | None, new: icalendar.Calendar | None, *,
                       own: set[str]) -> list[Message]:
    """What the organizer's server sends when the object goes from `old` to `new` (None: absent).
    `own` are the addresses of the account storing it; nothing is sent unless one is the
    organizer and the organizer is not scheduled by the client."""
    ref = new if new is not None else old
    if ref is None:
        return []
    org = organizer(ref)
    if not org or org not in own or organizer_by_client(ref):
        return []
    before = set(attendees(old)) - own if old is not None else set()
    out = []
    if new is not None:
        now = set(attendees(new)) - own - {org}
        if now:
            out.append(request(new, now, org))
        gone = before - now
        if gone:
            out.append(cancel(old, gone, org))
    elif before:
        out.append(cancel(old, before - {org}, org))
    return [m for m in out if m.recipients]


def attendee_reply(old: icalendar.Calendar | None, new: icalendar.Calendar, *, own: set[str]) -> Message | None:
    """The REPLY an attendee's change sends (RFC 5546 §3.2.3): when one of the account's own
    addresses is an attendee of an object it does not organize, and its PARTSTAT is new."""
    org = organizer(new)
    if not org or org in own or organizer_by_client(new):
        return None
    mine = {a: p for a, p in attendees(new).items() if a in own}
    if not mine:
        return None
    previous = attendees(old) if old is not None else {}
    changed = {a: p for a, p in mine.items() if previous.get(a) != p}
    if not changed:
        return None
    me = sorted(changed)[0]
    out = _envelope("REPLY", new)
    for comp in components(new):
        out.add_component(_reply_item(comp, me))
    return Message("REPLY", me, [org], out)


def _reply_item(comp, who: str, partstat: str | None = None):
    """One component of a REPLY (RFC 5546 §3.2.3): `who`'s ATTENDEE line alone, its
    scheduling parameters dropped (and its PARTSTAT set, when given), without alarms,
    description or location."""
    item = _without_alarms(comp)
    item.pop("ATTENDEE", None)
    for prop in _list(comp.get("ATTENDEE")):
        if address(prop) == who:
            line = copy.deepcopy(prop)
            for param in ("SCHEDULE-AGENT", "SCHEDULE-STATUS", "SCHEDULE-FORCE-SEND", "RSVP"):
                line.params.pop(param, None)
            if partstat is not None:
                line.params["PARTSTAT"] = partstat
            item.add("ATTENDEE", line)
    for drop in ("DESCRIPTION", "LOCATION"):
        item.pop(drop, None)
    return item


def attendee_copy(message: Message) -> icalendar.Calendar:
    """The attendee's own calendar object from a REQUEST: without METHOD, with the attendee's
    PARTSTAT set to NEEDS-ACTION where the organizer left none."""
    out = icalendar.Calendar()
    for key, value in message.calendar.property_items(recursive=False):
        if key not in ("METHOD", "BEGIN", "END"):
            out.add(key, value)
    for comp in message.calendar.subcomponents:
        item = copy.deepcopy(comp)
        for prop in _list(item.get("ATTENDEE")):
            prop.params.setdefault("PARTSTAT", "NEEDS-ACTION")
        out.add_component(item)
    return out


def keep_partstat(previous: icalendar.Calendar, updated: icalendar.Calendar, who: str) -> None:
    """An organizer's update must not undo the attendee's answer: when the SEQUENCE did not move,
    the attendee's PARTSTAT of `previous` is kept in `updated` (RFC 5546 §2.1.5)."""
    if sequence(updated) > sequence(previous):
        return
    answered = attendees(previous, server_only=False).get(who)
    if not answered:
        return
    for comp in components(updated):
        for prop in _list(comp.get("ATTENDEE")):
            if address(prop) == who:
                prop.params["PARTSTAT"] = answered


def apply_reply(stored: icalendar.Calendar, reply: Message) -> bool:
    """Write a REPLY's PARTSTAT into the organizer's copy; True when it changed. A REPLY from an
    address that is not an attendee of the stored object changes nothing (RFC 5546 §3.2.3).

    A component whose PARTSTAT changed gets DTSTAMP (and LAST-MODIFIED, when it has one) set to
    now: in an object without METHOD they say when the store last revised it (RFC 5545
    §3.8.7.2, §3.8.7.3). SEQUENCE stays: an attendee's answer is not a change of the event
    (RFC 5546 §2.1.4), and raising it would make every attendee's copy out of date."""
    sender = reply.sender
    answers = {}
    for comp in components(reply.calendar):
        for prop in _list(comp.get("ATTENDEE")):
            if address(prop) == sender:
                partstat = str(prop.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
                if partstat in PARTSTATS:
                    answers[_rid(comp)] = partstat
    if not answers:
        return False
    changed = False
    for comp in components(stored):
        partstat = answers.get(_rid(comp), answers.get(None))
        if partstat is None:
            continue
        revised = False
        for prop in _list(comp.get("ATTENDEE")):
            if address(prop) == sender and str(prop.params.get("PARTSTAT", "")).upper() != partstat:
                prop.params["PARTSTAT"] = partstat
                revised = True
        if revised:
            _stamp(comp)
            if "LAST-MODIFIED" in comp:
                comp.pop("LAST-MODIFIED")
                comp.add("LAST-MODIFIED", datetime.now(timezone.utc).replace(microsecond=0))
            changed = True
    return changed


def _rid(comp):
    return comp["RECURRENCE-ID"].to_ical() if "RECURRENCE-ID" in comp else None


def set_schedule_status(cal: icalendar.Calendar, statuses: dict[str, str]) -> None:
    """RFC 6638 §3.2.9: the organizer's copy records, per attendee, how its message went (an
    attendee the client schedules itself is left as the client wrote it)."""
    for comp in components(cal):
        for prop in _list(comp.get("ATTENDEE")):
            status = statuses.get(address(prop))
            if status and not _client_scheduled(prop):
                prop.params["SCHEDULE-STATUS"] = status


def set_organizer_status(cal: icalendar.Calendar, statuses: dict[str, str]) -> None:
    """RFC 6638 §3.2.9: the attendee's copy records on ORGANIZER how its REPLY went."""
    for comp in components(cal):
        prop = comp.get("ORGANIZER")
        if prop is not None and not _client_scheduled(prop):
            status = statuses.get(address(prop))
            if status:
                prop.params["SCHEDULE-STATUS"] = status


# --- iMIP (RFC 6047) ----------------------------------------------------------------------------

def attendee_answer(stored: icalendar.Calendar, attendee: str, partstat: str) -> Message | None:
    """The REPLY `attendee` would send to set its PARTSTAT in the organizer's copy `stored`
    (RFC 5546 §3.2.3): every scheduled component with that attendee's line alone, DTSTAMP now,
    SEQUENCE as it is (a reply never moves it). None when the attendee is not in the object."""
    org = organizer(stored)
    who = address(attendee)
    if not org or partstat not in PARTSTATS or who not in attendees(stored, server_only=False):
        return None
    out = _envelope("REPLY", stored)
    for comp in components(stored):
        item = _reply_item(comp, who, partstat)
        if "ATTENDEE" in item:  # else an overridden instance the attendee is not invited to
            out.add_component(item)
    return Message("REPLY", who, [org], out)


# The answers an invitation's links offer, in the order the buttons appear.
RSVP_ANSWERS = (("ACCEPTED", "Accept"), ("TENTATIVE", "Maybe"), ("DECLINED", "Decline"))


def imip(message: Message, recipient: str, links: dict[str, str] | None = None) -> EmailMessage:
    """The email of one iTIP message to one recipient: a text/calendar part with the METHOD
    parameter, and the same object attached as invite.ics (what Outlook and Gmail read).
    `links` ({PARTSTAT: URL}, a REQUEST only) adds the answer links, in the text part and in
    an HTML alternative."""
    comps = components(message.calendar)
    summary = str(comps[0].get("SUMMARY", "")) if comps else ""
    verb = {"REQUEST": "Invitation", "CANCEL": "Cancelled", "REPLY": "Reply"}.get(message.method, message.method)
    mail = EmailMessage()
    mail["From"] = message.sender
    mail["To"] = recipient
    mail["Subject"] = f"{verb}: {summary}" if summary else verb
    text = f"{verb}: {summary}\n" if summary else f"{verb}\n"
    answers = [(label, links[partstat]) for partstat, label in RSVP_ANSWERS if links and links.get(partstat)]
    if answers:
        text += f"\nReply as {recipient}:\n" + "".join(f"  {label}: {url}\n" for label, url in answers)
    mail.set_content(text)
    if answers:
        mail.add_alternative(_html_body(verb, summary, recipient, answers), subtype="html")
    data = message.to_ical()
    mail.add_alternative(data.decode(), subtype="calendar", params={"method": message.method})
    mail.add_attachment(data, maintype="application", subtype="ics", filename="invite.ics")
    return mail


def _html_body(verb: str, summary: str, recipient: str, answers: list[tuple[str, str]]) -> str:
    colours = {"Accept": "#1a7f37", "Maybe": "#9a6700", "Decline": "#cf222e"}
    buttons = " ".join(
        f'<a href="{html.escape(url, quote=True)}" style="display:inline-block;padding:10px 18px;margin:4px;'
        f'border-radius:6px;color:#fff;background:{colours[label]};text-decoration:none;font-weight:bold">'
        f'{label}</a>' for label, url in answers)
    title = html.escape(f"{verb}: {summary}" if summary else verb)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f'<body style="font-family:sans-serif"><h1 style="font-size:20px">{title}</h1>'
            f'<p>Reply as {html.escape(recipient)}:</p><p>{buttons}</p>'
            f'<p style="color:#555;font-size:12px">Each link opens a page where you confirm your answer.</p>'
            f'</body></html>')


# The seam to the mail submission layer: `calendars` sits above `submission` and cannot import it,
# so the app that can send registers a callable here at start-up (one EmailMessage, the envelope
# sender, the recipient; it raises on a refusal). `scheduling` calls it after the write commits,
# so that no SMTP conversation holds a calendar's lock. Without one, remote attendees get nothing and
# their SCHEDULE-STATUS says so (5.3).
_sender: Callable[[EmailMessage, str, str], None] | None = None


def register_sender(func: Callable[[EmailMessage, str, str], None] | None) -> None:
    global _sender
    _sender = func


def can_send() -> bool:
    return _sender is not None


# The seam to the RSVP page: the app that serves /calendar/rsvp registers a callable that gives
# an invitation's answer links for one recipient ({PARTSTAT: URL}, or None: no links).
_links: Callable[[Message, str], dict[str, str] | None] | None = None


def register_links(func: Callable[[Message, str], dict[str, str] | None] | None) -> None:
    global _links
    _links = func


def send_remote(message: Message, recipients: Iterable[str]) -> dict[str, str]:
    """Hand the iMIP form of `message` to the registered sender; {recipient: SCHEDULE-STATUS}."""
    out = {}
    for rcpt in recipients:
        if _sender is None:
            out[rcpt] = NO_SCHEDULING
            continue
        links = None
        if _links is not None and message.method == "REQUEST":
            try:
                links = _links(message, rcpt)
            except Exception:  # noqa: BLE001 - an invitation without answer links is still an invitation
                links = None
        try:
            _sender(imip(message, rcpt, links), message.sender, rcpt)
            out[rcpt] = SENT
        except Exception:  # noqa: BLE001 - whatever the transport raises, the status records it
            out[rcpt] = "5.1"
    return out
