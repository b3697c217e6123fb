"""The RSVP links of iMIP invitations: what a token binds, how it is signed and checked.

A token is `django.core.signing` over {organizer account id, event UID, attendee address} with
its own salt (so no other signed value of the project can pass for it) and a timestamp; the
answer (`m=`) is not signed, so the three links of one invitation share one token. Its age is
checked against the current `httpRsvpLinkExpiry` at use. Revocation is checked at use too: the
organizer's copy must still exist and still list the attendee.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.core import signing

from calendars import itip
from calendars.models import CalendarScheduling
from network.endpoint import public_base
from registry import services as registry


SALT = "stalwart.calendars.rsvp"
PATH = "/calendar/rsvp"
ANSWERS = tuple(p for p, _ in itip.RSVP_ANSWERS)


@dataclass(frozen=True)
class Claims:
    account_id: int
    uid: str
    attendee: str


class Expired(Exception):
    pass


class Invalid(Exception):
    pass


def settings_now() -> CalendarScheduling:
    return registry.current(CalendarScheduling)


def base_url(config: CalendarScheduling | None = None) -> str:
    config = config or settings_now()
    custom = (config.http_rsvp_url or "").strip().rstrip("/")
    return custom or public_base() + PATH


def mint(account_id: int, uid: str, attendee: str) -> str:
    return signing.dumps({"a": account_id, "u": uid, "p": itip.address(attendee)}, salt=SALT, compress=True)


def check(token: str, config: CalendarScheduling | None = None) -> Claims:
    """The claims of a valid token; Expired or Invalid (tampered, malformed, another salt)."""
    config = config or settings_now()
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise Invalid
    try:
        data = signing.loads(token, salt=SALT, max_age=config.http_rsvp_link_expiry)
    except signing.SignatureExpired:
        raise Expired from None
    except (signing.BadSignature, ValueError):
        raise Invalid from None
    if not (isinstance(data, dict) and isinstance(data.get("a"), int) and isinstance(data.get("u"), str)
            and isinstance(data.get("p"), str) and data["u"] and data["p"]):
        raise Invalid
    return Claims(data["a"], data["u"], data["p"])


def links(message: itip.Message, recipient: str) -> dict[str, str] | None:
    """The answer links of one invitation to one recipient (itip's seam), or None when RSVP (or
    scheduling as a whole) is off or the organizer is not an account of this server."""
    config = settings_now()
    if not (config.enable and config.http_rsvp_enable):
        return None
    uid = itip.uid(message.calendar)
    organizer = get_user_model().objects.filter(email_address=message.sender).only("pk").first()
    if organizer is None or not uid:
        return None
    token = quote(mint(organizer.pk, uid, recipient), safe="")
    base = base_url(config)
    return {answer: f"{base}?i={token}&m={answer}" for answer in ANSWERS}
