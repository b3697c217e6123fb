"""CalDAV (RFC 4791, RFC 7809) under /dav/cal: the calendar store seen through the provider
interface of `dav.providers`.

The DAV layer resolves the URL and the caller and checks the permissions; this module turns
the store's calendars and objects into `Entry` values, its live properties into XML, its
refusals (`calendars.errors.CalendarError`) into `ProviderError` with the status RFC 4791
asks for, and answers the three CalDAV reports (calendar-query, calendar-multiget,
free-busy-query). Paths are below the account's home: "slug" and "slug/name".
"""
from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.http import HttpResponse
from lxml import etree

from calendars import ical, query
from calendars import services as store
from calendars.errors import CalendarError
from calendars.models import Calendar, CalendarObject

from . import files
from .providers import ITEM_FIELDS, Entry, ProviderError
from .xml import (CALDAV, Multistatus, XmlError, child, children, d, element, fromstring, response_text, sub,
                  text_element, tostring)

APPLE = "http://apple.com/ns/ical/"
C = "{%s}" % CALDAV
CALENDAR_TYPE = C + "calendar"
QUERY, MULTIGET, FREEBUSY = C + "calendar-query", C + "calendar-multiget", C + "free-busy-query"
CALENDAR_DATA = C + "calendar-data"
CONTENT_TYPE = "text/calendar; charset=utf-8"

# Calendar properties kept in the store's own fields (PROPPATCH, MKCALENDAR, extended MKCOL).
FIELDS = {
    d("displayname"): "display_name",
    C + "calendar-description": "description",
    f"{{{APPLE}}}calendar-color": "color",
    f"{{{APPLE}}}calendar-order": "sort_order",
    C + "calendar-timezone": "timezone",
    C + "calendar-timezone-id": "timezone_id",
    C + "supported-calendar-component-set": "components",
    C + "schedule-calendar-transp": "transparent",
}
# Live properties computed from the store or its limits: never stored as dead properties, which
# would shadow them.
PROTECTED = {C + name for name in ("supported-calendar-data", "max-resource-size", "min-date-time",
                                   "max-date-time", "max-instances", "max-attendees-per-instance",
                                   "calendar-data", "supported-collation-set", "calendar-home-set")}
# RFC 4791 §5.3.2 and §9: a refused precondition is 403, a UID clash 409 (the store names
# them with the reference's 412).
CONFLICT = {"no-uid-conflict"}


def _refusal(exc: CalendarError, owner=None) -> ProviderError:
    if exc.namespace is None:
        return ProviderError(exc.status, None, exc.description)
    condition = f"{{{exc.namespace_uri}}}{exc.condition}"
    status = exc.status
    if status == 412:
        status = 409 if exc.condition in CONFLICT else 403
    error = ProviderError(status, condition, exc.description)
    if exc.href and owner is not None:
        error.hrefs = [_home(owner) + _quote(exc.href)]
    return error


def _text(tag: str, text: str) -> str:
    return tostring(element(tag, text))


def _calendar_entry(cal: Calendar) -> Entry:
    dead = dict(cal.dead_properties or {})
    if cal.display_name:
        dead[d("displayname")] = _text(d("displayname"), cal.display_name)
    return Entry(cal.slug, True, etag=f'"{cal.ctag}"', resourcetype=(CALENDAR_TYPE,), dead_props=dead,
                 created_at=cal.created, modified_at=cal.modified, key=cal, acl=list(cal.acl or ()))


def _item_entry(cal: Calendar, path: str, etag: str, size: int, modified, created=None, obj=None,
                acl: list | None = None) -> Entry:
    # An object has no grants of its own: it carries its calendar's, which decide who reads it
    # (a listing passes one copy for all its members).
    return Entry(path, False, etag=f'"{etag}"', content_type=CONTENT_TYPE, size=size, created_at=created,
                 modified_at=modified, key=(cal, obj), acl=acl if acl is not None else list(cal.acl or ()))


def _object_entry(cal: Calendar, obj: CalendarObject) -> Entry:
    entry = _item_entry(cal, f"{cal.slug}/{obj.name}", obj.etag, obj.size, obj.modified, obj.created, obj)
    if obj.schedule_tag:
        entry.headers["Schedule-Tag"] = f'"{obj.schedule_tag}"'
    return entry


def _fields(props: dict, creating: bool) -> tuple[dict, dict]:
    """(store fields, dead properties) of {Clark name: XML text} as PROPPATCH / MKCOL send them."""
    out, dead = {}, {}
    for tag, text in props.items():
        if tag in PROTECTED:
            raise ProviderError(403, d("cannot-modify-protected-property"))
        if tag == d("resourcetype"):
            types = {c.tag for c in children(fromstring(text))}
            if CALENDAR_TYPE not in types or not types <= {d("collection"), CALENDAR_TYPE}:
                raise ProviderError(403, d("valid-resourcetype"))
            continue
        name = FIELDS.get(tag)
        if name is None:
            dead[tag] = text
            continue
        el = fromstring(text)
        value = (el.text or "").strip()
        if name == "components":
            out[name] = [c.get("name", "") for c in children(el, C + "comp")]
        elif name == "sort_order":
            try:
                out[name] = int(value) if value else None
            except ValueError:
                raise ProviderError(400) from None
        elif name == "transparent":
            out[name] = child(el, C + "transparent") is not None
        else:
            out[name] = el.text or ""
    return out, dead


class CalendarProvider:
    service = "cal"

    # --- the tree --------------------------------------------------------------------------------
    def collections(self, owner, create: bool = True) -> list[Entry]:
        return [_calendar_entry(c) for c in store.calendars(owner, create=create)]

    def _calendar(self, owner, slug: str, create: bool = True) -> Calendar | None:
        try:
            cal = store.get_calendar(owner, slug, create=create)
        except CalendarError:
            return None
        cal.account = owner  # the store's own account lookups (scheduling) reuse the row at hand
        return cal

    def resolve(self, owner, path: str, create: bool = True) -> Entry | None:
        slug, _, name = path.partition("/")
        if "/" in name:
            return None
        cal = self._calendar(owner, slug, create)
        if cal is None:
            return None
        if not name:
            return _calendar_entry(cal)
        obj = CalendarObject.objects.filter(calendar=cal, name=name).defer("data").first()
        return _object_entry(cal, obj) if obj is not None else None

    def lookup(self, owner, path: str, create: bool = True) -> tuple[Entry | None, Entry | None]:
        """(the object at "<calendar>/<name>", or None; its calendar's entry, or None), from one
        read of the calendar."""
        slug, _, name = path.partition("/")
        cal = self._calendar(owner, slug, create)
        if cal is None:
            return None, None
        obj = CalendarObject.objects.filter(calendar=cal, name=name).defer("data").first()
        return (_object_entry(cal, obj) if obj is not None else None), _calendar_entry(cal)

    def children(self, owner, entry: Entry) -> list[Entry]:
        if not entry.collection:
            return []
        cal = entry.key
        acl = list(cal.acl or ())
        prefix = f"{cal.slug}/"
        return [Entry(prefix + name, False, etag=etag, content_type=CONTENT_TYPE, size=size, created_at=created,
                      modified_at=modified, key=(cal, None), acl=acl)
                for name, etag, size, modified, created in store.object_rows(cal, ITEM_FIELDS)]

    # An object has no dead property, no resourcetype of its own and its calendar's grants:
    # a listing writes its members from these rows (dav.views).
    item_content_type = CONTENT_TYPE

    def item_rows(self, owner, entry: Entry, fields, limit: int | None = None, ids=None) -> list[tuple]:
        if not entry.collection:
            return []
        return store.object_rows(entry.key, fields, limit, pks=None if ids is None else _pks(ids))

    def get(self, owner, entry: Entry) -> tuple[bytes, str]:
        cal, _ = entry.key
        try:
            obj = store.get_object(cal, entry.path.partition("/")[2])
        except CalendarError as exc:
            raise _refusal(exc) from None
        return obj.data.encode(), CONTENT_TYPE

    # --- writes ----------------------------------------------------------------------------------
    def put(self, owner, path, body, content_type, if_match, if_none_match, if_schedule_tag_match=None,
            collection: Entry | None = None):
        slug, _, name = path.partition("/")
        if not name or "/" in name:
            raise ProviderError(409)
        cal = collection.key if collection is not None and collection.path == slug else self._calendar(owner, slug)
        if cal is None:
            raise ProviderError(409)
        media = (content_type or "").split(";")[0].strip().lower()
        if media and media not in ("text/calendar", "application/octet-stream"):
            raise ProviderError(403, C + "supported-calendar-data")
        try:
            result = store.put_object(cal, name, body, if_match=if_match, if_none_match=if_none_match,
                                      if_schedule_tag_match=if_schedule_tag_match)
        except CalendarError as exc:
            raise _refusal(exc, owner) from None
        entry = _object_entry(cal, result.object)
        if result.transformed:
            # The stored object is not the one sent (the server wrote SCHEDULE-STATUS): no ETag in
            # the answer (RFC 4791 §5.3.4, RFC 6638 §3.2.9), so that the client fetches it again.
            entry.etag = ""
        return entry, result.created

    def delete(self, owner, entry: Entry, if_match) -> None:
        try:
            if entry.collection:
                store.delete_calendar(entry.key)
            else:
                store.delete_object(entry.key[0], entry.path.partition("/")[2], if_match=if_match)
        except CalendarError as exc:
            raise _refusal(exc) from None

    def copy_move(self, owner, entry: Entry, dest_path: str, overwrite: bool, copy: bool) -> bool:
        """COPY/MOVE of an object into a calendar of the same owner; True when it was created."""
        slug, _, name = dest_path.partition("/")
        target = self._calendar(owner, slug, create=False)
        if target is None or not name or "/" in name:
            raise ProviderError(409)
        try:
            return store.move_object(entry.key[0], entry.path.partition("/")[2], target, name,
                                     overwrite=overwrite, copy=copy).created
        except CalendarError as exc:
            raise _refusal(exc, owner) from None

    def mkcol(self, owner, name: str, props: dict) -> Entry:
        fields, dead = _fields(props, True)
        if dead:
            fields["dead_properties"] = dead
        try:
            cal = store.create_calendar(owner, name, **fields)
        except CalendarError as exc:
            raise _refusal(exc) from None
        return _calendar_entry(cal)

    def set_properties(self, owner, entry: Entry, set_: dict, remove: list[str]) -> None:
        if not entry.collection:
            raise ProviderError(403, d("cannot-modify-protected-property"))
        cal = entry.key
        fields, dead = _fields(set_, False)
        kept = dict(cal.dead_properties or {})
        kept.update(dead)
        if any(tag in PROTECTED for tag in remove):
            raise ProviderError(403, d("cannot-modify-protected-property"))
        for tag in remove:
            kept.pop(tag, None)
            if tag in FIELDS and FIELDS[tag] != "components":
                fields[FIELDS[tag]] = None if FIELDS[tag] == "sort_order" else (
                    False if FIELDS[tag] == "transparent" else "")
        size = sum(len(k) + len(v) for k, v in kept.items())
        if size > settings.DAV_DEAD_PROPERTY_MAX_SIZE:
            raise ProviderError(507)
        fields["dead_properties"] = kept
        try:
            store.update_calendar(cal, **fields)
        except CalendarError as exc:
            raise _refusal(exc) from None

    # --- properties ------------------------------------------------------------------------------
    def properties(self, owner, entry: Entry, tags: list[str]) -> dict:
        out = {}
        if entry.collection:
            cal = entry.key
            lim = store.limits()
            for tag in tags:
                out[tag] = self._calendar_property(cal, lim, tag)
        else:
            obj = entry.key[1] if isinstance(entry.key, tuple) else None
            for tag in tags:
                out[tag] = None
                if tag == C + "schedule-tag" and obj is not None and obj.schedule_tag:
                    out[tag] = element(tag, f'"{obj.schedule_tag}"')
        return out

    def _calendar_property(self, cal: Calendar, lim, tag: str):
        el = element(tag)
        if tag == C + "calendar-description":
            el.text = cal.description
        elif tag == C + "supported-calendar-component-set":
            for name in cal.component_set:
                sub(el, C + "comp").set("name", name)
        elif tag == C + "supported-calendar-data":
            data = sub(el, C + "calendar-data")
            data.set("content-type", "text/calendar")
            data.set("version", "2.0")
        elif tag == C + "max-resource-size":
            el.text = str(lim.max_size)
        elif tag == C + "min-date-time":
            el.text = lim.min_date_time.strftime("%Y%m%dT%H%M%SZ")
        elif tag == C + "max-date-time":
            el.text = lim.max_date_time.strftime("%Y%m%dT%H%M%SZ")
        elif tag == C + "max-instances":
            el.text = str(lim.max_instances)
        elif tag == C + "max-attendees-per-instance":
            el.text = str(lim.max_attendees)
        elif tag == f"{{{APPLE}}}calendar-color":
            if not cal.color:
                return None
            el.text = cal.color
        elif tag == f"{{{APPLE}}}calendar-order":
            if cal.sort_order is None:
                return None
            el.text = str(cal.sort_order)
        elif tag == C + "calendar-timezone":
            if not cal.timezone:
                return None
            el.text = cal.timezone
        elif tag == C + "calendar-timezone-id":
            if not cal.timezone_id:
                return None
            el.text = cal.timezone_id
        elif tag == C + "schedule-calendar-transp":
            sub(el, C + ("transparent" if cal.transparent else "opaque"))
        else:
            return None
        return el

    # --- reports ---------------------------------------------------------------------------------
    def reports(self, entry: Entry) -> list[str]:
        return [QUERY, MULTIGET, FREEBUSY] if entry.collection else [MULTIGET]

    def report(self, owner, entry: Entry, root, caller):
        cal = entry.key if entry.collection else entry.key[0]
        try:
            if root.tag == FREEBUSY:
                return self._free_busy(owner, cal, root, caller)
            if root.tag == QUERY:
                return self._query(owner, cal, root)
            if root.tag == MULTIGET:
                return self._multiget(owner, cal, root)
        except CalendarError as exc:
            raise _refusal(exc) from None
        except (XmlError, etree.XMLSyntaxError, ValueError):
            raise ProviderError(400) from None
        raise ProviderError(403, d("supported-report"))

    def _wanted(self, root) -> tuple[list[str], object]:
        """(property tags, the calendar-data request element or None) of a report's D:prop."""
        prop = child(root, d("prop"))
        if prop is None:
            if child(root, d("allprop")) is not None or child(root, d("propname")) is not None:
                return [d("getetag"), CALENDAR_DATA], None
            return [d("getetag")], None
        tags = [c.tag for c in children(prop)]
        return tags, child(prop, CALENDAR_DATA)

    def _response(self, owner, obj: CalendarObject, tags: list[str], spec, tz, timezones: bool):
        """The object's response: as text (xml.Multistatus) when every value is text, as an
        element otherwise."""
        found, missing = [], []
        for tag in tags:
            if tag == d("getetag"):
                text = text_element(tag, obj.quoted_etag)
            elif tag == CALENDAR_DATA:
                text = text_element(tag, query.render(obj, spec, tz=tz, timezones=timezones))
            elif tag == d("getcontenttype"):
                text = text_element(tag, CONTENT_TYPE)
            elif tag == d("getcontentlength"):
                text = text_element(tag, str(obj.size))
            else:
                missing.append(tag)
                continue
            if text is None:
                break
            found.append(text)
        else:
            answer = response_text(_href(owner, obj), found, missing)
            if answer is not None:
                return answer
        return self._response_element(owner, obj, tags, spec, tz, timezones)

    def _response_element(self, owner, obj: CalendarObject, tags: list[str], spec, tz, timezones: bool):
        resp = element(d("response"))
        sub(resp, d("href"), _href(owner, obj))
        found, missing = [], []
        for tag in tags:
            el = element(tag)
            if tag == d("getetag"):
                el.text = obj.quoted_etag
            elif tag == CALENDAR_DATA:
                el.text = query.render(obj, spec, tz=tz, timezones=timezones)
            elif tag == d("getcontenttype"):
                el.text = CONTENT_TYPE
            elif tag == d("getcontentlength"):
                el.text = str(obj.size)
            else:
                missing.append(tag)
                continue
            found.append(el)
        _propstats(resp, found, missing)
        return resp

    def _query(self, owner, cal: Calendar, root):
        tags, data_el = self._wanted(root)
        spec = query.parse_data_spec(data_el)
        filter_el = child(root, C + "filter")
        if filter_el is None:
            raise CalendarError("valid-filter", "A calendar-query has a filter.", status=403)
        tz_el, tzid_el = child(root, C + "timezone"), child(root, C + "timezone-id")
        tz = query.query_zone(cal, timezone_text=tz_el.text if tz_el is not None else None,
                              timezone_id=(tzid_el.text or "").strip() if tzid_el is not None else None)
        objects = query.calendar_query(cal, filter_el, tz=tz, with_data=CALENDAR_DATA in tags)
        limit = settings.DAV_MAX_RESULTS
        out = Multistatus()
        if CALENDAR_DATA in tags:
            _load(objects)
        for obj in objects[:limit]:
            out.append(self._response(owner, obj, tags, spec, tz, True))
        if len(objects) > limit:
            resp = element(d("response"))
            sub(resp, d("href"), _home(owner) + _quote(cal.slug) + "/")
            sub(resp, d("status"), "HTTP/1.1 507 Insufficient Storage")
            sub(sub(resp, d("error")), d("number-of-matches-within-limits"))
            out.append(resp)
        return out

    def _multiget(self, owner, cal: Calendar, root):
        tags, data_el = self._wanted(root)
        spec = query.parse_data_spec(data_el)
        hrefs = [(h.text or "").strip() for h in children(root, d("href"))]
        if len(hrefs) > settings.DAV_MAX_RESULTS:
            raise ProviderError(403, d("number-of-matches-within-limits"))
        prefix = unquote(_home(owner)) + cal.slug + "/"
        names = {}
        for raw in hrefs:
            try:
                path = unquote(urlsplit(raw).path)
            except ValueError:
                path = ""
            names[raw] = path[len(prefix):] if path.startswith(prefix) and "/" not in path[len(prefix):] else None
        found = store.get_objects(cal, [n for n in names.values() if n], with_data=CALENDAR_DATA in tags)
        tz = query.query_zone(cal)
        out = Multistatus()
        for raw, name in names.items():
            obj = found.get(name) if name else None
            if obj is None:
                resp = element(d("response"))
                sub(resp, d("href"), raw)
                sub(resp, d("status"), "HTTP/1.1 404 Not Found")
                out.append(resp)
                continue
            out.append(self._response(owner, obj, tags, spec, tz, True))
        return out

    def _free_busy(self, owner, cal: Calendar, root, caller):
        tr_el = child(root, C + "time-range")
        if tr_el is None:
            raise CalendarError("valid-filter", "free-busy-query has a time-range.", status=403)
        window = query.parse_time_range(tr_el)
        if window.start is None or window.end is None or window.start == ical.MIN or window.end == ical.MAX:
            raise ProviderError(400)
        text = query.free_busy([cal], window.start, window.end, tz=query.query_zone(cal))
        return HttpResponse(text.encode(), content_type=CONTENT_TYPE)

    # --- sharing ---------------------------------------------------------------------------------
    def set_acl(self, owner, entry: Entry, acl: list) -> None:
        if not entry.collection:
            raise ProviderError(403, d("not-supported-privilege"))
        store.set_acl(entry.key, acl)

    def shared_owners(self, account_ids) -> set[int]:
        return store.shared_owners(account_ids)

    # --- sync ------------------------------------------------------------------------------------
    def journal_type(self, owner) -> str:
        return store.EVENT

    def collection_journal_type(self, owner) -> str:
        return store.CALENDAR

    def collections_by_ids(self, owner, ids: list[str]) -> list[Entry]:
        pks = [int(i) for i in ids if str(i).isdigit() and len(str(i)) < 19]
        return [_calendar_entry(c) for c in Calendar.objects.filter(account=owner, pk__in=pks)]

    def by_ids(self, owner, ids: list[str]) -> list[Entry]:
        objs = (CalendarObject.objects.filter(account=owner, pk__in=_pks(ids)).defer("data").select_related("calendar")
                .order_by("calendar__slug", "name"))
        return [_object_entry(o.calendar, o) for o in objs]


def _pks(ids) -> list[int]:
    """The object keys of the journal's ids (the object's primary key, in decimal)."""
    return [int(i) for i in ids if str(i).isdigit()]


def _quote(path: str) -> str:
    return quote(path, safe="/-._~!$&'()*+,;=:@")


def _home(owner) -> str:
    return f"/dav/cal/{files.segment(owner.email_address)}/"


def _href(owner, obj: CalendarObject) -> str:
    return _home(owner) + _quote(f"{obj.calendar.slug}/{obj.name}")


def _load(objects: list[CalendarObject]) -> None:
    """Read the iCalendar of objects the query left without it, in one query."""
    missing = [o.pk for o in objects if "data" in o.get_deferred_fields()]
    if missing:
        data = dict(CalendarObject.objects.filter(pk__in=missing).values_list("pk", "data"))
        for o in objects:
            if o.pk in data:
                o.data = data[o.pk]


def _propstats(resp, found, missing) -> None:
    if found or not missing:
        ps = sub(resp, d("propstat"))
        prop = sub(ps, d("prop"))
        for el in found:
            prop.append(el)
        sub(ps, d("status"), "HTTP/1.1 200 OK")
    if missing:
        ps = sub(resp, d("propstat"))
        prop = sub(ps, d("prop"))
        for tag in missing:
            sub(prop, tag)
        sub(ps, d("status"), "HTTP/1.1 404 Not Found")


__all__ = ["CalendarProvider"]
