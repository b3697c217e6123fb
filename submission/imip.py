"""iMIP out (RFC 6047): the calendar store's scheduling sends its invitations, replies and
cancellations to attendees elsewhere through the outbound relay. `calendars` sits below this app
and cannot import it, so this app registers the sending function with `calendars.itip` when it
starts (see docs/calendars.md, "Scheduling")."""
from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from calendars import itip

from . import outbound

log = logging.getLogger(__name__)


def send_imip(mail: EmailMessage, sender: str, recipient: str) -> None:
    if "Date" not in mail:
        mail["Date"] = formatdate(localtime=False)
    if "Message-ID" not in mail:
        mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    result = outbound.send(mail.as_bytes(), sender, [recipient])
    for r in result.recipients:
        if r.status != outbound.SENT:
            log.warning("imip: %s to %s not sent (%s): %s", mail.get("Subject", ""), r.address, r.status, r.message)


def register() -> None:
    itip.register_sender(send_imip)
