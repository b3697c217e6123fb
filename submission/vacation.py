"""The vacation response (RFC 8621 §8) and the replies already sent.

As in the reference, delivery does not know the VacationResponse object: it runs the Sieve
script `vacation_script()` builds from it, with `sieve`'s Vacation action (RFC 5230), and asks
`claim_reply()` before it sends what the action says. The reference's generated script wraps
the action in `currentdate` tests for fromDate and toDate; our Sieve has no `date` extension,
so the dates are applied here, when the script is asked for, with the same result."""
from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from email.policy import SMTP

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from journal import services as journal
from mail.htmltext import html_to_text
from registry.errors import InvalidProperties, NotFound

from .models import VacationReply, VacationResponse

TYPE = "VacationResponse"
SINGLETON = "singleton"
PROPERTIES = ("id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody")
FIELDS = {"isEnabled": "is_enabled", "fromDate": "from_date", "toDate": "to_date", "subject": "subject",
          "textBody": "text_body", "htmlBody": "html_body"}
MAX_SUBJECT = 998
MAX_BODY = 65_536
# RFC 8620 §1.4 UTCDate: "Z", upper-case letters, fractional seconds only when not zero.
_UTC_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")
# What the reply says when the user enabled a response with neither body.
DEFAULT_BODY = "I am away at the moment and will read your message when I am back."


def current(account_id: int) -> VacationResponse:
    """The account's response; an unsaved one with the defaults when it never set one."""
    return (VacationResponse.objects.filter(account_id=account_id).first()
            or VacationResponse(account_id=account_id))


def utc_date(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(dt.timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def to_json(response: VacationResponse) -> dict:
    return {"id": SINGLETON, "isEnabled": response.is_enabled, "fromDate": utc_date(response.from_date),
            "toDate": utc_date(response.to_date), "subject": response.subject, "textBody": response.text_body,
            "htmlBody": response.html_body}


def _parse_date(prop: str, value) -> dt.datetime | None:
    if value is None:
        return None
    match = _UTC_DATE.match(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
        return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=dt.timezone.utc)
    except ValueError:
        raise InvalidProperties(f'"{prop}" must be null or a UTCDate such as "2026-07-01T00:00:00Z".',
                                properties=[prop]) from None


def _clean(prop: str, value):
    if prop == "isEnabled":
        if not isinstance(value, bool):
            raise InvalidProperties('"isEnabled" must be true or false.', properties=[prop])
        return value
    if prop in ("fromDate", "toDate"):
        return _parse_date(prop, value)
    limit = MAX_SUBJECT if prop == "subject" else MAX_BODY
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InvalidProperties(f'"{prop}" must be null or a string of at most {limit} characters.',
                                properties=[prop])
    return value


def update(account_id: int, object_id, patch: dict) -> VacationResponse:
    """Apply a patch to the singleton; raises a SetError. Journals the change."""
    if object_id != SINGLETON:
        raise NotFound(f'VacationResponse {object_id} not found: the only one is "singleton".')
    if not isinstance(patch, dict):
        raise InvalidProperties("A patch must be an object.")
    for prop, value in patch.items():
        if prop == "id" and value == SINGLETON:
            continue
        if prop not in FIELDS:
            reason = "is set by the server" if prop == "id" else "is not a VacationResponse property"
            raise InvalidProperties(f'"{prop}" {reason}.', properties=[prop])
    values = {FIELDS[prop]: _clean(prop, value) for prop, value in patch.items() if prop in FIELDS}
    response, _ = VacationResponse.objects.select_for_update().get_or_create(account_id=account_id)
    for name, value in values.items():
        setattr(response, name, value)
    response.save()
    journal.record(account_id, TYPE, updated=[SINGLETON])
    return response


# --- delivery's side ------------------------------------------------------------------------
def is_active(response: VacationResponse, now: dt.datetime | None = None) -> bool:
    """RFC 8621 §8: enabled, on or after fromDate, before toDate."""
    now = now or timezone.now()
    return (response.is_enabled and (response.from_date is None or response.from_date <= now)
            and (response.to_date is None or now < response.to_date))


def _quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 §2.4.2): backslash and double quote escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reply_entity(response: VacationResponse) -> str:
    """The reply's MIME entity (vacation :mime): text, HTML with its text alternative, or both."""
    text, html = response.text_body, response.html_body
    if text is None and html is not None:
        text = html_to_text(html)
    if text is None:
        text = DEFAULT_BODY
    part = EmailMessage(policy=SMTP)
    part.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if html is not None:
        part.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    del part["MIME-Version"]
    return part.as_string()


def vacation_script(account: Account | int, now: dt.datetime | None = None) -> str | None:
    """The Sieve script delivery runs for the account's vacation response, or None when the
    response is off or outside its dates. One `vacation :mime` action: the subject as set (or
    Sieve's default, "Auto: " and the original subject), the body from textBody and htmlBody.
    Sieve's own rules apply: whom never to answer, and once per sender per :days (7)."""
    response = VacationResponse.objects.filter(account_id=getattr(account, "pk", account)).first()
    if response is None or not is_active(response, now):
        return None
    args = ["vacation", ":mime"]
    if response.subject:
        # Header folding is the reply builder's: a line break in the subject would start a header.
        args += [":subject", _quote(re.sub(r"[\r\n]+", " ", response.subject))]
    args.append(_quote(reply_entity(response)))
    return 'require ["vacation"];\r\n' + " ".join(args) + ";\r\n"


def claim_reply(account_id: int, tracking_key: str, period_seconds: int, now: dt.datetime | None = None) -> bool:
    """Whether to send the vacation reply with this tracking key now, recording it when so.

    False when the account already answered this key within `period_seconds` (RFC 5230 §4.2).
    Two deliveries racing for one key cannot both win: the first inserts, the second finds the
    row and takes it only with a conditional update on its time."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            VacationReply.objects.create(account_id=account_id, tracking_key=tracking_key, sent_at=now)
        return True
    except IntegrityError:
        pass
    expired = now - dt.timedelta(seconds=period_seconds)
    return VacationReply.objects.filter(account_id=account_id, tracking_key=tracking_key,
                                        sent_at__lte=expired).update(sent_at=now) == 1


def prune_replies(older_than: dt.timedelta = dt.timedelta(days=60), now: dt.datetime | None = None) -> int:
    """Forget replies older than the longest period Sieve allows (60 days); returns how many."""
    now = now or timezone.now()
    deleted, _ = VacationReply.objects.filter(sent_at__lt=now - older_than).delete()
    return deleted
