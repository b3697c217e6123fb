"""The scheduling inbox and outbox (RFC 6638 §2.1, §2.2) under /dav/itip/{account}/: the inbox
lists the iTIP messages the calendar store delivered to the account (`ScheduleMessage`); their
effect on its calendars is already applied, so a client may read and delete them, never write.
The outbox holds nothing: implicit scheduling sends from the calendar PUT and DELETE themselves,
and a POST of free-busy to the outbox is not served."""
from __future__ import annotations

from calendars.models import ScheduleMessage

from .providers import Entry, ProviderError
from .xml import CALDAV, d, element

C = "{%s}" % CALDAV
INBOX, OUTBOX = "inbox", "outbox"
TYPES = {INBOX: C + "schedule-inbox", OUTBOX: C + "schedule-outbox"}
CONTENT_TYPE = "text/calendar; charset=utf-8"


def _collection(name: str) -> Entry:
    return Entry(name, True, etag='""', resourcetype=(TYPES[name],), key=name)


def _item(msg: ScheduleMessage) -> Entry:
    return Entry(f"{INBOX}/{msg.name}", False, etag=f'"{msg.pk}"', content_type=CONTENT_TYPE,
                 size=len(msg.data.encode()), created_at=msg.created, modified_at=msg.created, key=msg)


class ScheduleProvider:
    service = "itip"

    # `create` is the provider interface's (whether a lookup may make a default collection): the
    # inbox and outbox are not stored, so there is nothing to create.
    def collections(self, owner, create: bool = True) -> list[Entry]:
        return [_collection(INBOX), _collection(OUTBOX)]

    def resolve(self, owner, path: str, create: bool = True) -> Entry | None:
        box, _, name = path.partition("/")
        if box not in TYPES or "/" in name:
            return None
        if not name:
            return _collection(box)
        stem, _, ext = name.partition(".")
        if box != INBOX or ext != "ics" or not stem.isdigit() or len(stem) > 18:
            return None
        msg = ScheduleMessage.objects.filter(account=owner, pk=int(stem)).first()
        return _item(msg) if msg is not None else None

    def children(self, owner, entry: Entry) -> list[Entry]:
        if not entry.collection or entry.key != INBOX:
            return []
        return [_item(m) for m in ScheduleMessage.objects.filter(account=owner).order_by("pk")]

    def get(self, owner, entry: Entry) -> tuple[bytes, str]:
        return entry.key.data.encode(), CONTENT_TYPE

    def put(self, owner, path, body, content_type, if_match, if_none_match):
        # Nobody files a message into an inbox by hand, not even its owner (RFC 6638 §2.2:
        # only the server delivers there).
        raise ProviderError(403, d("need-privileges"))

    def delete(self, owner, entry: Entry, if_match) -> None:
        if entry.collection:
            raise ProviderError(403)
        if if_match and "*" not in if_match and entry.etag.strip('"') not in [m.strip('"') for m in if_match]:
            raise ProviderError(412)
        ScheduleMessage.objects.filter(account=owner, pk=entry.key.pk).delete()

    def mkcol(self, owner, name: str, props: dict) -> Entry:
        raise ProviderError(403)

    def properties(self, owner, entry: Entry, tags: list[str]) -> dict:
        out = {}
        for tag in tags:
            if entry.collection and tag == C + "supported-calendar-component-set":
                el = element(tag)
                for comp in ("VEVENT", "VTODO"):
                    sub_el = element(C + "comp")
                    sub_el.set("name", comp)
                    el.append(sub_el)
                out[tag] = el
            else:
                out[tag] = None
        return out

    def set_properties(self, owner, entry: Entry, set_: dict, remove: list[str]) -> None:
        raise ProviderError(403, d("cannot-modify-protected-property"))

    def reports(self, entry: Entry) -> list[str]:
        return []

    def report(self, owner, entry: Entry, root, caller):
        raise ProviderError(403, d("supported-report"))

    def journal_type(self, owner) -> str:
        return "CalendarScheduleInbox"

    def by_ids(self, owner, ids: list[str]) -> list[Entry]:
        return []
