"""The /dav tree: one view, dispatching by method, for principals, the file store, and the
homes of the calendar and contact stores (whose collections come from `dav.providers`).

Every request goes through the same steps, in this order: OPTIONS is answered without
authentication (the reference's DAV and Allow headers); an unknown method is 405; the caller
authenticates like a JMAP client (Basic, Bearer, app passwords, API keys; 401 with both
challenges); the URL is resolved (`dav.resources.locate`); the catalogue permission of the
operation is checked (`dav.access`); the XML body, if any, is read within DAV_MAX_XML_SIZE and
parsed safely (`dav.xml`); then the handler checks the caller's rights on the resource, the
`If` header and the locks, and calls the store. Errors are the RFC's status and, where one is
defined, the precondition element in a `DAV:error` body; never a 5xx for bad input.
"""
from __future__ import annotations

import re
from operator import itemgetter
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings
from django.db import OperationalError
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import http_date, parse_http_date_safe

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal
from network.endpoint import ANY, authenticate, endpoint
from stalwart_site import dbretry
from stalwart_site.http import BodyError, read_body

from . import access, files, locks
from . import providers as provider_registry
from . import resources as R
from .locks import IfHeaderError
from .models import FileNode
from .xml import (CALDAV, DAV, Multistatus, XmlError, child, children, d, element, fromstring, qname,
                  response_text, serialize, sub, text_element, tostring)
from .xml import parse as parse_xml

DAV_CLASSES = ("1, 2, 3, access-control, extended-mkcol, calendar-access, calendar-auto-schedule, "
               "calendar-no-timezone, addressbook")
ALLOW = ("OPTIONS, GET, HEAD, POST, PUT, DELETE, COPY, MOVE, MKCALENDAR, MKCOL, PROPFIND, PROPPATCH, LOCK, "
         "UNLOCK, REPORT, ACL")
METHODS = set(m.strip() for m in ALLOW.split(","))
XML_METHODS = {"PROPFIND", "PROPPATCH", "REPORT", "LOCK", "ACL", "MKCOL", "MKCALENDAR"}
CHUNK = 64 * 1024


class Refusal(Exception):
    """A response to send instead of going on."""

    def __init__(self, response: HttpResponse):
        self.response = response


def error(status: int, condition: str | None = None, hrefs=(), headers: dict | None = None) -> HttpResponse:
    """An empty answer, or an RFC 4918 §16 error body with the precondition element."""
    if condition is None:
        response = HttpResponse(status=status)
    else:
        root = element(d("error"))
        cond = sub(root, condition)
        for h in hrefs:
            sub(cond, d("href"), h)
        response = HttpResponse(serialize(root), status=status, content_type="application/xml; charset=utf-8")
        response["Cache-Control"] = "no-cache"
    for k, v in (headers or {}).items():
        response[k] = v
    return response


def refuse(status: int, condition: str | None = None, hrefs=()) -> Refusal:
    return Refusal(error(status, condition, hrefs))


def multistatus(root, status: int = 207, headers: dict | None = None) -> HttpResponse:
    body = root.tobytes() if isinstance(root, Multistatus) else serialize(root)
    response = HttpResponse(body, status=status, content_type="application/xml; charset=utf-8")
    for k, v in (headers or {}).items():
        response[k] = v
    return response


class Request:
    """One DAV request: the Django request, the caller, the resource, the XML body."""

    def __init__(self, request, caller: access.Caller, res: R.Resource, rest: str):
        self.request = request
        self.caller = caller
        self.res = res
        self.rest = rest
        self.ctx = R.Context(caller)
        self.xml = None
        self.body = b""

    def header(self, name: str) -> str | None:
        return self.request.META.get("HTTP_" + name.upper().replace("-", "_"))

    @property
    def prefer(self) -> set[str]:
        raw = self.header("Prefer") or ""
        return {p.strip().lower() for p in raw.split(",") if p.strip()}

    @property
    def minimal(self) -> bool:
        return "return=minimal" in self.prefer or (self.header("Brief") or "").lower() == "t"

    def depth(self, default: str) -> str:
        raw = (self.header("Depth") or default).strip().lower()
        if raw in ("infinite",):
            raw = "infinity"
        if raw not in ("0", "1", "infinity"):
            raise refuse(400)
        return raw


# --- the view ----------------------------------------------------------------------------------
@endpoint(ANY)
def dav(request, rest: str | None = None):
    rest = rest or ""
    method = request.method
    if method == "OPTIONS":
        response = HttpResponse(status=200)
        response["DAV"] = DAV_CLASSES
        response["Allow"] = ALLOW
        response["MS-Author-Via"] = "DAV"
        response["Content-Length"] = "0"
        return response
    if method not in METHODS:
        return error(405, headers={"Allow": ALLOW})
    principal, failure = authenticate(request)
    if failure is not None:
        return failure
    caller = access.Caller.of(principal)
    try:
        try:
            res = R.locate(rest, caller)
        except R.BadPath:
            return error(400)
        if res is None:
            return error(404)
        if (res.service == "file" and res.owner is not None and not res.member
                and res.owner.pk not in access.shared_with(caller)):
            # Another account's tree that shares nothing with the caller: nothing in it exists
            # for the caller, not even its 404s.
            return error(403, d("need-privileges"))
        q = Request(request, caller, res, rest)
        handler = HANDLERS.get(method)
        if handler is None or (method == "MKCALENDAR" and res.service != "cal"):
            return error(405, headers={"Allow": ALLOW})
        if method in XML_METHODS:
            _read_xml(q)
        return handler(q)
    except Refusal as refusal:
        return refusal.response
    except IfHeaderError:
        return error(400)
    except files.StoreError as exc:
        if isinstance(exc, files.QuotaExceeded):
            return error(507, d("quota-not-exceeded"))
        return error(exc.status)
    except provider_registry.ProviderError as exc:
        return error(exc.status, exc.condition, exc.hrefs)
    except OperationalError as exc:
        # PostgreSQL rolled the write back to break a deadlock with another request: nothing
        # was written, and the same request a moment later succeeds. Not run again here: a PUT's
        # body may have been streamed into the blob store already.
        if dbretry.transient(exc):
            return error(503, headers={"Retry-After": "1"})
        raise


def _read_xml(q: Request) -> None:
    try:
        q.body = read_body(q.request, settings.DAV_MAX_XML_SIZE, "XML body")
    except BodyError:
        raise refuse(413) from None
    if not q.body.strip():
        return
    try:
        q.xml = parse_xml(q.body)
    except XmlError:
        content_type = q.request.META.get("CONTENT_TYPE", "")
        raise refuse(400 if "xml" in content_type or not content_type else 415) from None


def _permit(q: Request, method: str, report: str | None = None) -> None:
    if not access.allowed(q.caller.principal, q.res.service, method, report):
        raise refuse(403, d("need-privileges"))


def _need(q: Request, right: str, res: R.Resource | None = None) -> None:
    res = res or q.res
    if not res.member and right not in res.rights:
        raise refuse(403, d("need-privileges"))


def _readable(q: Request, res: R.Resource) -> bool:
    if res.kind in ("root", "principals") or res.member:
        return True
    if res.kind == "principal":
        return any(res.owner.pk in access.shared_with(q.caller, s) for s in ("file", "cal", "card"))
    if res.kind == "home":
        return res.owner.pk in access.shared_with(q.caller, res.service)
    return access.READ in res.rights


# --- If header, conditional requests and locks --------------------------------------------------
def _path_of(url: str) -> str:
    try:
        return urlsplit(url.strip()).path
    except ValueError:
        return ""


def _locate_href(q: Request, path: str) -> R.Resource | None:
    path = unquote(path)
    if not path.startswith("/dav/"):
        return None
    try:
        return R.locate(path[len("/dav/"):], q.caller)
    except R.BadPath:
        return None


def _submitted(q: Request) -> set[str]:
    """The lock tokens the If header submits (a malformed header is 400)."""
    return locks.submitted_tokens(locks.parse_if(q.header("If")))


def _if_holds(q: Request) -> None:
    """412 when the If header has lists and none of them holds (RFC 4918 §10.4), checked before
    the locks. When it fails on a locked resource and names a state token that is not the
    lock's (a stale or mangled lock token), the answer is 423 with the lock, as litmus and
    clients expect: the client believes it holds a lock it does not."""
    lists = locks.parse_if(q.header("If"))
    if not lists:
        return
    for lst in lists:
        res = q.res if lst.resource is None else _locate_href(q, lst.resource)
        if res is not None and all(_condition(q, res, c) for c in lst.conditions):
            return
    tokens = locks.submitted_tokens(lists)
    res = q.res
    if res.owner is not None and any(not t.startswith("DAV:") for t in tokens):
        for held in q.ctx.locks_covering(res):
            if held.token not in tokens:
                raise refuse(423, d("lock-token-submitted"), [R._lock_root_href(res, held.path)])
    raise refuse(412)


def _evaluate_if(q: Request) -> set[str]:
    _if_holds(q)
    return _submitted(q)


def _condition(q: Request, res: R.Resource, c: locks.Condition) -> bool:
    if c.token is not None:
        if c.token.startswith(locks.SYNC_PREFIX):
            ok = res.owner is not None and res.exists and c.token == R.sync_token(q.ctx.sync_state(res))
        else:
            ok = res.owner is not None and any(
                lock.token == c.token for lock in locks.covering(res.service, res.owner.pk, res.path))
    else:
        ok = res.etag is not None and c.etag == res.etag
    return ok != c.negated


def _etags(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [t.strip() for t in raw.split(",") if t.strip()]


def _match(tags: list[str], etag: str | None, weak: bool = False) -> bool:
    if etag is None:
        return False
    if "*" in tags:
        return True
    strip = (lambda t: t[2:] if t.startswith("W/") else t) if weak else (lambda t: t)
    return strip(etag) in [strip(t) for t in tags]


def _http_preconditions(q: Request, res: R.Resource, *, reading: bool = False) -> HttpResponse | None:
    if_match = _etags(q.header("If-Match"))
    if if_match is not None and not _match(if_match, res.etag if res.exists else None):
        return error(412)
    if_none = _etags(q.header("If-None-Match"))
    if if_none is not None and res.exists and _match(if_none, res.etag, weak=reading):
        return error(304 if reading else 412, headers={"ETag": res.etag} if reading and res.etag else None)
    if reading and if_none is None and res.node is not None:
        since = parse_http_date_safe(q.header("If-Modified-Since") or "")
        if since is not None and int(res.node.modified_at.timestamp()) <= since:
            return error(304, headers={"ETag": res.etag})
    return None


def _check_locks(q: Request, res: R.Resource, tokens: set[str], *, descendants: bool = False,
                 parent: bool = False) -> None:
    if res.owner is None:
        return
    locked = locks.check_write(res.service, res.owner.pk, res.path, q.caller.account_id, tokens,
                               descendants=descendants, parent=parent)
    if locked is not None:
        raise refuse(423, d("lock-token-submitted"), [R._lock_root_href(res, locked.path)])


# --- PROPFIND ---------------------------------------------------------------------------------
def _propfind_request(root) -> tuple[str, list[str]]:
    """("allprop" | "propname" | "prop", tags) of a propfind body."""
    if root is None:
        return "allprop", []
    if root.tag != d("propfind"):
        raise refuse(400)
    if child(root, d("propname")) is not None:
        return "propname", []
    if child(root, d("allprop")) is not None:
        include = child(root, d("include"))
        return "allprop", [c.tag for c in children(include)] if include is not None else []
    prop = child(root, d("prop"))
    if prop is None:
        raise refuse(400)
    return "prop", [c.tag for c in children(prop)]


def _response(q: Request, res: R.Resource, mode: str, tags: list[str], *, minimal: bool = False):
    resp = element(d("response"))
    sub(resp, d("href"), res.href)
    found, missing = [], []
    if mode == "propname":
        for tag in [*R.names(res), *R.dead_props(res)]:
            found.append(element(tag))
    elif mode == "allprop":
        for tag in [*R.ALLPROP, *tags]:
            el = R.value(res, tag, q.ctx)
            if el is not None:
                found.append(el)
            elif tag in tags:
                missing.append(tag)
        seen = {el.tag for el in found}
        for tag, text in R.dead_props(res).items():
            if tag not in seen:
                found.append(fromstring(text))
    else:
        for tag in tags:
            el = R.value(res, tag, q.ctx)
            (found if el is not None else missing).append(el if el is not None else tag)
    if found or minimal or not missing:
        ps = sub(resp, d("propstat"))
        prop = sub(ps, d("prop"))
        for el in found:
            prop.append(el)
        sub(ps, d("status"), "HTTP/1.1 200 OK")
    if missing and not minimal:
        ps = sub(resp, d("propstat"))
        prop = sub(ps, d("prop"))
        for tag in missing:
            sub(prop, tag)
        sub(ps, d("status"), "HTTP/1.1 404 Not Found")
    return resp


_RESOURCETYPE, _DISPLAYNAME = d("resourcetype"), d("displayname")


def _response_text(res: R.Resource, tags: list[str], minimal: bool) -> str | None:
    """`_response(…, "prop", tags)` of a file or a store's item, written as text; None when
    it is not that simple (dead properties, a property with structure or of another
    namespace): the caller then builds the element."""
    if res.kind not in ("item", "file") or R.dead_props(res) or (res.entry is not None and res.entry.resourcetype):
        return None
    found, missing = [], []
    for tag in tags:
        if tag in R.TEXT_PROPS:
            value = R.text_value(res, tag)
            if value is None:
                missing.append(tag)
                continue
            text = text_element(tag, value)
            if text is None:
                return None
            found.append(text)
        elif tag == _RESOURCETYPE:
            found.append("<D:resourcetype/>")  # neither is a collection
        elif tag == _DISPLAYNAME:
            missing.append(tag)  # only as a dead property, and there are none
        else:
            return None
    return response_text(res.href, found, missing, minimal)


# The properties a listing writes from a provider's rows (`item_rows`), by the field each reads.
_ROW_FIELD = {d("getetag"): "etag", d("getcontentlength"): "size", d("getlastmodified"): "modified",
              d("creationdate"): "created"}
_ROW_TEXT = {"etag": str, "size": str, "modified": R.http_date, "created": R.creation_date}
_GETCONTENTTYPE = d("getcontenttype")


def _plain(text: str) -> bool:
    """Whether `text` goes into XML as it is (no character to escape, none XML refuses)."""
    return text.isascii() and text.isprintable() and "&" not in text and "<" not in text and ">" not in text


class _RowWriter:
    """The responses of a provider's items to a "prop" request, written from its rows
    (`item_rows`): what `_response_text` writes for each item's Entry and Resource, without
    them, reading only the columns the properties need. `fields` is None when the request is
    not for plain text properties alone (the general path answers)."""

    def __init__(self, res: R.Resource, tags: list[str], minimal: bool):
        self.fields = None
        prov = provider_registry.provider(res.service)
        if res.kind != "collection" or res.entry is None or not hasattr(prov, "item_rows"):
            return
        fields, plan, found, missing = [], [], [], []
        for tag in tags:
            field = _ROW_FIELD.get(tag)
            if field is not None:
                if field not in fields:
                    fields.append(field)
                plan.append((tag, 1 + fields.index(field), _ROW_TEXT[field]))
                name = qname(tag)
                found.append(f"<{name}>{{}}</{name}>")
                continue
            if tag == _GETCONTENTTYPE and prov.item_content_type:
                text = text_element(tag, prov.item_content_type)
            elif tag == _RESOURCETYPE:
                text = "<D:resourcetype/>"  # an item is not a collection
            elif tag in (_DISPLAYNAME, _GETCONTENTTYPE):
                text = None  # only as a dead property, and items have none
            else:
                return
            if text is None:
                missing.append(tag)
            else:
                found.append(text.replace("{", "{{").replace("}", "}}"))
            plan.append((tag, None, text))
        template = response_text("{}", found, missing, minimal)
        if template is None:
            return
        self.prov, self.res, self.minimal, self.plan, self.template = prov, res, minimal, plan, template
        self.getters = [(index, fmt) for _, index, fmt in plan if index is not None]
        self.fields = fields

    def rows(self, limit: int | None = None, ids: list[str] | None = None) -> list[tuple]:
        if ids is not None:
            return self.prov.item_rows(self.res.owner, self.res.entry, self.fields, limit, ids=ids)
        return self.prov.item_rows(self.res.owner, self.res.entry, self.fields, limit)

    def texts(self, rows) -> list[str] | None:
        """One response per row; None when one cannot be written as text."""
        if not rows:
            return []
        columns = list(zip(*rows))
        names = columns[0]
        base = self.res.href
        # Checked over whole columns at once (in C): most listings need no quoting, no escaping
        # and have every value, and then each row is one format of the template.
        hrefs = ([base + name for name in names] if files.plain_path("".join(names))
                 else [base + files.quote_path(name) for name in names])
        values = [hrefs]
        plain = "&" not in "".join(hrefs)
        for index, fmt in self.getters:
            column = columns[index]
            if not plain or None in column or "" in column:
                plain = False
                break
            column = column if fmt is str and isinstance(column[0], str) else [fmt(v) for v in column]
            plain = _plain("".join(column))
            values.append(column)
        if plain:
            return [self.template.format(*row) for row in zip(*values)]
        out = []
        for href_, row in zip(hrefs, rows):
            text = self._text(href_, row)
            if text is None:
                return None
            out.append(text)
        return out

    def _text(self, href_: str, row: tuple) -> str | None:
        """A row with a missing value or one to escape, property by property."""
        found, missing = [], []
        for tag, index, fmt in self.plan:
            if index is None:
                text = fmt
            else:
                value = row[index]
                text = text_element(tag, fmt(value)) if value is not None and value != "" else None
                if text is None and value is not None and value != "":
                    return None  # a value XML cannot carry: the element writer decides
            if text is None:
                missing.append(tag)
            else:
                found.append(text)
        return response_text(href_, found, missing, self.minimal)


def _status_response(href_: str, status: str, condition: str | None = None):
    resp = element(d("response"))
    sub(resp, d("href"), href_)
    sub(resp, d("status"), status)
    if condition is not None:
        sub(sub(resp, d("error")), condition)
    return resp


def _members(q: Request, res: R.Resource, depth: str, limit: int) -> list[R.Resource]:
    """The resources below `res` to `depth` ("1" or "infinity") the caller may read."""
    caller = q.caller
    if depth == "0":
        return []
    if res.kind in ("root", "principals"):
        own = caller.principal.account if not caller.principal.recovery else None
        ids = list(caller.groups)
        if res.service in ("file", "cal", "card"):
            ids += access.shared_with(caller, res.service)
        owners = ([own] if own is not None else []) + list(
            Account.objects.filter(pk__in=set(ids) - {caller.account_id}).select_related("domain")
            .order_by("email_address")[:limit])
        kind = "principal" if res.kind == "principals" else "home"
        return [R.Resource(res.service, kind, o, member=caller.is_member(o.pk),
                           rights=frozenset(access.ALL_RIGHTS) if caller.is_member(o.pk) else frozenset({access.READ}))
                for o in owners]
    if res.service == "file" and res.kind in ("home", "folder"):
        nodes = files.listing(res.owner.pk, res.path, 1 if depth == "1" else None, limit)
        out, by_path = [], {res.path: res}
        for node in nodes:
            parent = by_path.get(node.path.rpartition("/")[0])
            if parent is None:
                continue  # below a folder the caller may not read
            child_res = R.child_resource(parent, node, caller)
            by_path[node.path] = child_res
            if child_res.member or access.READ in child_res.rights:
                out.append(child_res)
            elif node.is_collection:
                by_path.pop(node.path)
        return out
    prov = provider_registry.provider(res.service)
    if prov is None:
        return []
    if res.kind == "home":
        entries = prov.collections(res.owner, create=res.member)
        out = []
        for entry in entries[:limit]:
            r = R.Resource(res.service, "collection", res.owner, entry.path, entry=entry, member=res.member,
                           rights=access.rights(caller, res.owner.pk, [entry.acl]), acl_chain=[entry.acl])
            if r.member or access.READ in r.rights:
                out.append(r)
                if depth == "infinity":
                    out += [R.Resource(res.service, "item", res.owner, e.path, entry=e, member=r.member,
                                       rights=r.rights, acl_chain=r.acl_chain) for e in prov.children(res.owner, entry)]
        return out[:limit]
    if res.kind == "collection":
        return [R.Resource(res.service, "item", res.owner, e.path, entry=e, member=res.member, rights=res.rights,
                           acl_chain=res.acl_chain) for e in prov.children(res.owner, res.entry)[:limit]]
    return []


def _truncated(res: R.Resource):
    resp = _status_response(res.href, "HTTP/1.1 507 Insufficient Storage", d("number-of-matches-within-limits"))
    sub(resp, d("responsedescription"), "The result was truncated: ask for less (a smaller Depth, a narrower scope).")
    return resp


def _listing(res: R.Resource, depth: str, mode: str, tags: list[str], minimal: bool, limit: int):
    """(responses, truncated) of the items of a store's collection, written from its rows; None
    when the general path answers (another kind of resource or request)."""
    if depth == "0" or mode != "prop":
        return None
    writer = _RowWriter(res, tags, minimal)
    if writer.fields is None:
        return None
    rows = writer.rows(limit + 1)
    texts = writer.texts(rows[:limit])
    return (texts, len(rows) > limit) if texts is not None else None


def propfind(q: Request):
    _permit(q, "PROPFIND")
    res = q.res
    if not res.exists:
        return error(404)
    depth = q.depth("1")
    if depth == "infinity":
        if res.kind == "principals":
            depth = "1"
        elif res.kind != "collection":
            return error(403, d("propfind-finite-depth"))
    if not _readable(q, res):
        if res.kind == "principal":
            root = element(d("multistatus"))
            root.append(_status_response(res.href, "HTTP/1.1 403 Forbidden"))
            return multistatus(root)
        return error(403, d("need-privileges"))
    mode, tags = _propfind_request(q.xml)
    limit = R.max_results()
    root = Multistatus()
    minimal = q.minimal
    if "depth-noroot" not in q.prefer or depth == "0":
        root.append(_response(q, res, mode, tags, minimal=minimal))
    listed = _listing(res, depth, mode, tags, minimal, limit)
    if listed is not None:
        texts, more = listed
        root.parts += texts
    else:
        members = _members(q, res, depth, limit + 1)
        for member in members[:limit]:
            text = _response_text(member, tags, minimal) if mode == "prop" else None
            root.append(text if text is not None else _response(q, member, mode, tags, minimal=minimal))
        more = len(members) > limit
    if more:
        root.append(_truncated(res))
    headers = {"Preference-Applied": "return=minimal"} if minimal else None
    return multistatus(root, headers=headers)


# --- PROPPATCH --------------------------------------------------------------------------------
WRITABLE_LIVE = {d("displayname"), d("getcontenttype"), d("creationdate"), d("getcontentlanguage")}


def _dead_size(props: dict) -> int:
    return sum(len(k) + len(v) for k, v in props.items())


def _apply_props(res: R.Resource, operations) -> tuple[dict, dict, str | None]:
    """Apply PROPPATCH-style operations [(set|remove, element)] to a copy of the dead
    properties: (new props, {tag: (status, condition)} for refused ones, new content type)."""
    props = dict(R.dead_props(res))
    failed: dict[str, tuple[str, str | None]] = {}
    content_type = None
    for op, el in operations:
        tag = el.tag
        if tag in R.PROTECTED:
            failed[tag] = ("HTTP/1.1 403 Forbidden", d("cannot-modify-protected-property"))
            continue
        if op == "remove":
            props.pop(tag, None)
            continue
        if tag == d("getcontenttype"):
            text = (el.text or "").strip()
            if res.kind != "file" or len(text) > 255 or "\n" in text:
                failed[tag] = ("HTTP/1.1 409 Conflict", None)
            else:
                content_type = text
            continue
        if tag == d("resourcetype"):
            failed[tag] = ("HTTP/1.1 403 Forbidden", d("valid-resourcetype"))
            continue
        if tag in WRITABLE_LIVE and len(tostring(el).encode()) > settings.DAV_LIVE_PROPERTY_MAX_SIZE + len(tag) + 64:
            failed[tag] = ("HTTP/1.1 507 Insufficient Storage", None)
            continue
        props[tag] = tostring(el)
    if _dead_size(props) > settings.DAV_DEAD_PROPERTY_MAX_SIZE:
        for op, el in operations:
            if op == "set" and el.tag not in failed:
                failed[el.tag] = ("HTTP/1.1 507 Insufficient Storage", None)
    return props, failed, content_type


def _operations(root, outer: str):
    if root is None or root.tag != outer:
        raise refuse(400)
    ops = []
    for action in children(root):
        if action.tag not in (d("set"), d("remove")):
            continue
        op = "set" if action.tag == d("set") else "remove"
        prop = child(action, d("prop"))
        if prop is None:
            raise refuse(400)
        for el in children(prop):
            ops.append((op, el))
    return ops


def _propstat_report(res: R.Resource, ops, failed: dict, ok_status: str = "HTTP/1.1 200 OK"):
    resp = element(d("response"))
    sub(resp, d("href"), res.href)
    groups: dict[tuple, list[str]] = {}
    for _, el in ops:
        key = failed.get(el.tag) or ((("HTTP/1.1 424 Failed Dependency", None)) if failed else (ok_status, None))
        groups.setdefault(key, [])
        if el.tag not in groups[key]:
            groups[key].append(el.tag)
    for (status, condition), tags in groups.items():
        ps = sub(resp, d("propstat"))
        prop = sub(ps, d("prop"))
        for tag in tags:
            sub(prop, tag)
        sub(ps, d("status"), status)
        if condition is not None:
            sub(sub(ps, d("error")), condition)
    return resp


def proppatch(q: Request):
    _permit(q, "PROPPATCH")
    res = q.res
    if not res.exists:
        return error(404)
    if res.kind in ("root", "principals", "principal"):
        return error(405, headers={"Allow": ALLOW})
    if res.kind == "home":
        return error(403, d("cannot-modify-protected-property"))
    if not _readable(q, res):
        return error(403, d("need-privileges"))
    _need(q, access.MODIFY)
    ops = _operations(q.xml, d("propertyupdate"))
    tokens = _submitted(q)
    _if_holds(q)
    _check_locks(q, res, tokens)
    props, failed, content_type = _apply_props(res, ops)
    if not failed:
        if res.node is not None:
            files.save_props(res.owner, res.node, props, content_type)
        else:
            prov = provider_registry.provider(res.service)
            set_ = {el.tag: tostring(el) for op, el in ops if op == "set"}
            remove = [el.tag for op, el in ops if op == "remove"]
            prov.set_properties(res.owner, res.entry, set_, remove)
        if q.minimal:
            return error(204, headers={"ETag": res.etag} if res.etag else None)
    root = element(d("multistatus"))
    root.append(_propstat_report(res, ops, failed))
    return multistatus(root)


# --- MKCOL --------------------------------------------------------------------------------------
def mkcol(q: Request):
    _permit(q, q.request.method)
    res = q.res
    if res.exists:
        return error(405, headers={"Allow": ALLOW})
    ops = []
    if q.body.strip():
        if q.xml is None:
            return error(415)
        # MKCALENDAR's body is a C:mkcalendar (RFC 4791 §5.3.1) with the same set/prop shape.
        outer = f"{{{CALDAV}}}mkcalendar" if q.request.method == "MKCALENDAR" else d("mkcol")
        if q.xml.tag != outer:
            return error(415)
        ops = _operations(q.xml, outer)
    if res.service != "file":
        prov = provider_registry.provider(res.service)
        if prov is None or "/" in res.path:
            return error(403 if prov is not None else 405)
        if not res.member:
            return error(403, d("need-privileges"))
        entry = prov.mkcol(res.owner, res.path, {el.tag: tostring(el) for _, el in ops})
        return error(201, headers={"ETag": entry.etag} if entry.etag else None)
    _need(q, access.ADD_ITEMS)
    tokens = _submitted(q)
    _if_holds(q)
    _check_locks(q, res, tokens, parent=True)
    failed = {}
    resourcetype = next((el for _, el in ops if el.tag == d("resourcetype")), None)
    if resourcetype is not None and [c.tag for c in children(resourcetype)] != [d("collection")]:
        failed[d("resourcetype")] = ("HTTP/1.1 403 Forbidden", d("valid-resourcetype"))
    rest = [(op, el) for op, el in ops if el.tag != d("resourcetype")]
    props, more_failed, _ = _apply_props(res, rest)
    failed.update(more_failed)
    if failed:
        root = element(d("mkcol-response"))
        for child_el in _propstat_report(res, ops, failed).findall(d("propstat")):
            root.append(child_el)
        return multistatus(root, status=403)
    files.mkcol(res.owner, res.path, props)
    if ops and not q.minimal:
        root = element(d("mkcol-response"))
        for child_el in _propstat_report(res, ops, {}).findall(d("propstat")):
            root.append(child_el)
        return multistatus(root, status=201)
    return error(201)


# --- GET / HEAD -------------------------------------------------------------------------------
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def _range(q: Request, size: int, etag: str | None, modified) -> tuple[int, int] | None | str:
    """(start, end) of a single satisfiable byte range; None for the whole; "416" when not."""
    raw = q.header("Range")
    if not raw:
        return None
    if_range = q.header("If-Range")
    if if_range:
        if if_range.startswith('"') or if_range.startswith("W/"):
            if if_range != etag:
                return None
        else:
            since = parse_http_date_safe(if_range)
            if since is None or int(modified.timestamp()) > since:
                return None
    m = _RANGE.match(raw.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # several ranges or garbage: the whole content (RFC 9110 §14.2 allows it)
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1, size) if m.group(2) else size
        if m.group(2) and int(m.group(2)) < start:
            return None
    else:
        suffix = int(m.group(2))
        if suffix == 0:
            return "416"
        start, end = max(0, size - suffix), size
    if start >= size:
        return "416"
    return start, end


def get(q: Request):
    _permit(q, "GET")
    res = q.res
    if not res.exists:
        return error(404)
    if not _readable(q, res):
        return error(403, d("need-privileges"))
    if res.collection:
        return error(405, headers={"Allow": ALLOW})
    refused = _http_preconditions(q, res, reading=True)
    if refused is not None:
        return refused
    head = q.request.method == "HEAD"
    if res.kind == "item":
        prov = provider_registry.provider(res.service)
        if hasattr(prov, "negotiate"):
            # A store with several representations (vCard 3.0 / 4.0) picks one by Accept.
            body, content_type = prov.negotiate(res.owner, res.entry, q.header("Accept"))
        else:
            body, content_type = prov.get(res.owner, res.entry)
        response = HttpResponse(b"" if head else body, content_type=content_type)
        response["Content-Length"] = str(len(body))
        response["ETag"] = res.etag or ""
        for name, value in res.entry.headers.items():
            response[name] = value
        return response
    node = res.node
    found = blobs.resolve(res.owner.pk, [node.blob_id]).get(node.blob_id) if node.blob_id else None
    size = found.blob.size if found is not None else 0
    span = _range(q, size, node.etag, node.modified_at)
    if span == "416":
        return error(416, headers={"Content-Range": f"bytes */{size}"})
    start, end = span if span else (0, size)
    status = 206 if span else 200
    if head or found is None or start == end:
        response = HttpResponse(b"", status=status)
    else:
        response = StreamingHttpResponse(blobs.chunks(found.blob, start, end), status=status)
    response["Content-Type"] = node.content_type or "application/octet-stream"
    response["Content-Length"] = str(end - start)
    if span:
        response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response["ETag"] = node.etag
    response["Last-Modified"] = http_date(node.modified_at.timestamp())
    response["Accept-Ranges"] = "bytes"
    return response


# --- PUT --------------------------------------------------------------------------------------
def _body_chunks(request):
    while True:
        chunk = request.read(CHUNK)
        if not chunk:
            return
        yield chunk


def put(q: Request):
    _permit(q, q.request.method)
    res = q.res
    if res.collection:
        return error(405, headers={"Allow": ALLOW})
    if res.kind == "unmapped" and "/" not in res.path and res.service != "file":
        return error(405, headers={"Allow": ALLOW})
    _need(q, access.MODIFY_ITEMS if res.exists else access.ADD_ITEMS)
    tokens = _submitted(q)
    _if_holds(q)
    _check_locks(q, res, tokens, parent=not res.exists)
    if (q.header("Overwrite") or "T").strip().upper() == "F" and res.exists:
        return error(412)
    content_type = q.request.META.get("CONTENT_TYPE", "")
    if res.service != "file":
        prov = provider_registry.provider(res.service)
        try:
            body = read_body(q.request, settings.DAV_MAX_FILE_SIZE)
        except BodyError:
            return error(413)
        # RFC 6638 §8.3: only CalDAV knows If-Schedule-Tag-Match.
        extra = {"if_schedule_tag_match": q.header("If-Schedule-Tag-Match")} \
            if res.service == "cal" and q.header("If-Schedule-Tag-Match") is not None else {}
        if res.parent_entry is not None and hasattr(prov, "lookup"):
            extra["collection"] = res.parent_entry
        entry, created = prov.put(res.owner, res.path, body, content_type, _etags(q.header("If-Match")),
                                  _etags(q.header("If-None-Match")), **extra)
        headers = {"ETag": entry.etag} if entry.etag else {}
        headers.update(entry.headers)
        return error(201 if created else 204, headers=headers or None)
    declared = q.request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > settings.DAV_MAX_FILE_SIZE:
        return error(413)
    if_match, if_none = _etags(q.header("If-Match")), _etags(q.header("If-None-Match"))

    def precondition(node):
        etag = node.etag if node is not None else None
        if if_match is not None and not _match(if_match, etag):
            raise refuse(412)
        if if_none is not None and node is not None and _match(if_none, etag):
            raise refuse(412)

    node, created = files.put(res.owner, res.path, _body_chunks(q.request), content_type, precondition=precondition)
    return error(201 if created else 204, headers={"ETag": node.etag})


# --- DELETE -----------------------------------------------------------------------------------
def delete(q: Request):
    _permit(q, "DELETE")
    res = q.res
    if not res.exists:
        return error(404)
    if res.kind in ("root", "principals", "principal", "home"):
        return error(403)
    _need(q, access.DELETE)
    refused = _http_preconditions(q, res)
    if refused is not None:
        return refused
    tokens = _submitted(q)
    _if_holds(q)
    _check_locks(q, res, tokens, descendants=True)
    if res.node is not None:
        files.delete(res.owner, res.node)
        locks.drop_tree(res.service, res.owner.pk, res.path)
    else:
        provider_registry.provider(res.service).delete(res.owner, res.entry, _etags(q.header("If-Match")))
    return error(204)


# --- COPY / MOVE ------------------------------------------------------------------------------
def _destination(q: Request) -> R.Resource:
    raw = q.header("Destination")
    if not raw:
        raise refuse(400)
    try:
        parts = urlsplit(raw.strip())
    except ValueError:
        raise refuse(400) from None
    if parts.netloc and parts.netloc.lower() != q.request.get_host().lower():
        raise refuse(502)
    path = unquote(parts.path)
    if not path.startswith("/dav/"):
        raise refuse(502)
    try:
        dest = R.locate(path[len("/dav/"):], q.caller)
    except R.BadPath:
        raise refuse(400) from None
    if dest is None:
        raise refuse(409)
    if dest.service != q.res.service:
        raise refuse(502)
    if dest.owner is None or dest.owner.pk != q.res.owner.pk:
        raise refuse(403)
    return dest


def copy_move(q: Request):
    method = q.request.method
    _permit(q, method)
    res = q.res
    if not res.exists:
        return error(404)
    if res.kind == "item":
        return _copy_move_item(q, method)
    if res.kind not in ("folder", "file"):
        return error(403 if res.kind in ("home", "root", "principal", "principals") else 501)
    dest = _destination(q)
    # 403 (RFC 4918 §9.8.5, §9.9.4) for a destination in the same tree that cannot take it: the
    # home itself, the resource itself, its own subtree, an ancestor.
    if not dest.path or dest.path == res.path:
        return error(403)
    if res.collection and dest.path.startswith(f"{res.path}/"):
        return error(403)
    if res.path.startswith(f"{dest.path}/"):
        return error(403)
    depth = q.depth("infinity")
    if method == "MOVE" and res.collection and depth != "infinity":
        return error(400)
    if method == "COPY" and depth == "1":
        return error(400)
    if not _readable(q, res):
        return error(403, d("need-privileges"))
    if method == "MOVE":
        _need(q, access.DELETE)
    _need(q, access.ADD_ITEMS, dest)
    tokens = _submitted(q)
    _if_holds(q)
    if method == "MOVE":
        _check_locks(q, res, tokens, descendants=True)
    _check_locks(q, dest, tokens, descendants=dest.exists, parent=True)
    overwrite = (q.header("Overwrite") or "T").strip().upper()
    if overwrite not in ("T", "F"):
        return error(400)
    if dest.exists and overwrite == "F":
        return error(412)
    replace = dest.node if dest.exists else None
    if method == "COPY":
        files.copy(res.owner, res.node, dest.path, infinite=depth == "infinity", replace=replace)
    else:
        files.move(res.owner, res.node, dest.path, replace=replace)
        locks.move_tree(res.service, res.owner.pk, res.path, dest.path)
    return error(204 if replace is not None else 201)


def _copy_move_item(q: Request, method: str):
    """COPY/MOVE of an event or a card into a collection of the same owner (the store keeps
    one UID per collection: a clash is the store's no-uid-conflict)."""
    res = q.res
    prov = provider_registry.provider(res.service)
    if prov is None or not hasattr(prov, "copy_move"):
        return error(501)
    dest = _destination(q)
    if dest.kind not in ("item", "unmapped") or dest.path.count("/") != 1:
        return error(409 if dest.kind == "unmapped" else 403)
    if dest.path == res.path:
        return error(403)
    if not _readable(q, res):
        return error(403, d("need-privileges"))
    if method == "MOVE":
        _need(q, access.REMOVE_ITEMS)
    _need(q, access.ADD_ITEMS, dest)
    if dest.exists:
        _need(q, access.MODIFY_ITEMS, dest)
    tokens = _submitted(q)
    _if_holds(q)
    if method == "MOVE":
        _check_locks(q, res, tokens)
    _check_locks(q, dest, tokens, parent=True)
    overwrite = (q.header("Overwrite") or "T").strip().upper()
    if overwrite not in ("T", "F"):
        return error(400)
    if dest.exists and overwrite == "F":
        return error(412)
    created = prov.copy_move(res.owner, res.entry, dest.path, overwrite == "T", method == "COPY")
    return error(201 if created else 204)


# --- LOCK / UNLOCK ----------------------------------------------------------------------------
def _lock_body(lock, res: R.Resource, status: int, token_header: bool) -> HttpResponse:
    root = element(d("prop"))
    disc = sub(root, d("lockdiscovery"))
    disc.append(R.active_lock(lock, res))
    headers = {"Lock-Token": f"<{lock.token}>"} if token_header else None
    return multistatus(root, status=status, headers=headers)


def lock(q: Request):
    _permit(q, "LOCK")
    res = q.res
    if res.kind in ("root", "principals", "principal") or res.owner is None:
        return error(405, headers={"Allow": ALLOW})
    if not res.member:
        return error(403, d("need-privileges"))
    timeout = locks.timeout_of(q.header("Timeout"))
    if q.xml is None:
        # A refresh: the token comes in the If header, and must be a lock on this resource.
        tokens = _evaluate_if(q) if q.header("If") else set()
        if not tokens:
            return error(400)
        for held in locks.covering(res.service, res.owner.pk, res.path):
            if held.token in tokens and held.holder_id == q.caller.account_id:
                return _lock_body(locks.refresh(held, timeout), res, 200, False)
        return error(412, d("lock-token-matches-request-uri"))
    info = q.xml
    if info.tag != d("lockinfo"):
        return error(400)
    scope_el, type_el = child(info, d("lockscope")), child(info, d("locktype"))
    if scope_el is None or type_el is None or child(type_el, d("write")) is None:
        return error(400)
    exclusive = child(scope_el, d("exclusive")) is not None
    if not exclusive and child(scope_el, d("shared")) is None:
        return error(400)
    owner_el = child(info, d("owner"))
    owner_xml = tostring(owner_el) if owner_el is not None else ""
    if len(owner_xml.encode()) > max(settings.DAV_DEAD_PROPERTY_MAX_SIZE, 512):
        return error(413)
    depth = q.depth("infinity")
    if depth == "1":
        return error(400)
    tokens = _evaluate_if(q)
    if res.kind == "unmapped":
        if res.service != "file":
            return error(409)
        _check_locks(q, res, tokens, parent=True)
    try:
        held = locks.create(res.service, res.owner.pk, res.path, infinite=depth == "infinity" and res.collection,
                            exclusive=exclusive,
                            owner_xml=owner_xml, holder_id=q.caller.account_id, timeout=timeout)
    except locks.LockConflict as conflict:
        return error(423, d("no-conflicting-lock"), [R._lock_root_href(res, conflict.lock.path)])
    except locks.TooManyLocks:
        return error(429)
    status = 200
    if res.kind == "unmapped":
        try:
            files.lock_null(res.owner, res.path)
        except files.StoreError:
            held.delete()
            raise
        status = 201
    return _lock_body(held, res, status, True)


def unlock(q: Request):
    _permit(q, "UNLOCK")
    res = q.res
    if not res.exists or res.owner is None:
        return error(404)
    raw = (q.header("Lock-Token") or "").strip()
    if not raw:
        return error(400)
    token = raw[1:-1] if raw.startswith("<") and raw.endswith(">") else raw
    for held in locks.covering(res.service, res.owner.pk, res.path):
        if held.token == token:
            if held.holder_id != q.caller.account_id:
                return error(403, d("need-privileges"))
            held.delete()
            return error(204)
    return error(409, d("lock-token-matches-request-uri"))


# --- ACL --------------------------------------------------------------------------------------
def acl(q: Request):
    _permit(q, "ACL")
    res = q.res
    if not res.exists:
        return error(404)
    if res.kind not in ("folder", "file", "collection"):
        return error(403 if res.kind == "item" else 405)
    _need(q, access.SHARE)
    if q.xml is None or q.xml.tag != d("acl"):
        return error(400)
    grants: dict[int, set[str]] = {}
    for ace in children(q.xml, d("ace")):
        if child(ace, d("invert")) is not None:
            return error(403, d("no-invert"))
        if child(ace, d("deny")) is not None:
            return error(403, d("grant-only"))
        principal = child(ace, d("principal"))
        target = child(principal, d("href")) if principal is not None else None
        if target is None or not (target.text or "").strip():
            return error(403, d("allowed-principal"))
        who = _locate_href(q, _path_of(target.text))
        if who is None or who.owner is None:
            return error(403, d("allowed-principal"))
        grant = child(ace, d("grant"))
        if grant is None:
            return error(400)
        rights: set[str] = set()
        for priv in children(grant, d("privilege")):
            for p in children(priv):
                ns, _, name = p.tag[1:].partition("}")
                if ns == DAV and name == "all":
                    return error(403, d("no-abstract"))
                if ns != DAV or name not in access.PRIVILEGES:
                    return error(403, d("not-supported-privilege"))
                rights.update(access.PRIVILEGES[name])
        if who.owner.pk == res.owner.pk:
            continue  # the owner's own rights are not granted, they are its own
        grants.setdefault(who.owner.pk, set()).update(rights)
    entries = [{"principal": pk, "rights": sorted(r)} for pk, r in sorted(grants.items()) if r]
    if res.node is not None:
        files.set_acl(res.owner, res.node, entries)
    else:
        prov = provider_registry.provider(res.service)
        if prov is None or not hasattr(prov, "set_acl"):
            return error(403, d("not-supported-privilege"))
        prov.set_acl(res.owner, res.entry, entries)
    return error(200)


# --- REPORT -----------------------------------------------------------------------------------
def report(q: Request):
    if q.xml is None:
        return error(400 if "xml" in q.request.META.get("CONTENT_TYPE", "") else 415)
    name = q.xml.tag
    local = name.partition("}")[2]
    _permit(q, "REPORT", local)
    res = q.res
    if not res.exists:
        return error(404)
    if not _readable(q, res):
        return error(403, d("need-privileges"))
    if name == d("sync-collection"):
        return sync_collection(q)
    if name == d("expand-property"):
        return expand_property(q)
    if name == d("principal-search-property-set"):
        return principal_search_property_set(q)
    if name == d("principal-property-search"):
        return principal_property_search(q)
    if res.entry is not None:
        prov = provider_registry.provider(res.service)
        if prov is not None and name in prov.reports(res.entry):
            answer = prov.report(res.owner, res.entry, q.xml, q.caller)
            # free-busy-query answers text/calendar, not a multistatus (RFC 4791 §7.10).
            return answer if isinstance(answer, HttpResponse) else multistatus(answer)
    return error(403, d("supported-report"))


def _parse_sync_token(text: str) -> tuple[int, str | None, int | None] | None:
    """(state, cursor of an initial listing, as sent, collection state) or None for an initial
    sync; a Refusal (403 valid-sync-token) for a token this server cannot have given out. A
    token of a provider's home carries a second state, its collections' ("<items>-<colls>"), so
    that created and removed collections are reported too."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.startswith(locks.SYNC_PREFIX) or len(text) > 2200:
        raise refuse(403, d("valid-sync-token"))
    head, _, cursor = text[len(locks.SYNC_PREFIX):].partition(":")
    head, dash, colls = head.partition("-")
    try:
        if not head or len(head) > 15 or len(colls) > 15 or (dash and not colls):
            raise ValueError
        state = int(head, 16)
        if cursor:
            int(cursor, 16)
        return state, cursor or None, int(colls, 16) if colls else None
    except ValueError:
        raise refuse(403, d("valid-sync-token")) from None


def _in_scope(target_href: str, href_: str, infinite: bool) -> bool:
    if not href_.startswith(target_href) or href_ == target_href:
        return False
    rel = href_[len(target_href):].rstrip("/")
    return infinite or "/" not in rel


def sync_collection(q: Request):
    res = q.res
    prov = provider_registry.provider(res.service) if res.service != "file" else None
    if res.service == "file" and res.kind not in ("home", "folder"):
        return error(403, d("supported-report"))
    if res.service != "file" and (prov is None or res.kind not in ("home", "collection")
                                  or not hasattr(prov, "by_ids")):
        return error(403, d("supported-report"))
    root_el = q.xml
    token = _parse_sync_token((child(root_el, d("sync-token")).text if child(root_el, d("sync-token")) is not None
                               else ""))
    level_el = child(root_el, d("sync-level"))
    level = (level_el.text or "").strip() if level_el is not None else "1"
    if level not in ("1", "infinite"):
        return error(400)
    infinite = level == "infinite"
    prop = child(root_el, d("prop"))
    tags = [c.tag for c in children(prop)] if prop is not None else [d("getetag")]
    limit = R.max_results()
    limit_el = child(root_el, d("limit"))
    if limit_el is not None:
        n = child(limit_el, d("nresults"))
        try:
            limit = max(1, min(limit, int((n.text or "").strip()))) if n is not None else limit
        except ValueError:
            return error(400)
    owner = res.owner
    if prov is not None:
        return _provider_sync(q, prov, token, infinite, tags, limit)
    out = element(d("multistatus"))
    if token is None or token[1] is not None:
        # The initial listing, in pages ordered by node id; the state is the one taken before
        # the first page, so a change made while the client pages is seen by its next sync.
        state = int(files.state(owner.pk)) if token is None else token[0]
        if token is not None and state > int(files.state(owner.pk)):
            return error(403, d("valid-sync-token"))
        try:
            cursor = int(token[1], 16) if token is not None and len(token[1]) <= 15 else 0
        except ValueError:
            cursor = 0
        if token is not None and len(token[1]) > 15:
            return error(403, d("valid-sync-token"))
        qs = FileNode.objects.filter(account_id=owner.pk, pk__gt=cursor).order_by("pk")
        if res.path:
            qs = qs.filter(path__startswith=f"{res.path}/")
        if not infinite:
            qs = qs.filter(parent__path=res.path) if res.path else qs.filter(parent__isnull=True)
        nodes = list(qs[:limit + 1])
        more = len(nodes) > limit
        nodes = nodes[:limit]
        for node in nodes:
            r = _sync_resource(q, res, node)
            if r is not None:
                out.append(_response(q, r, "prop", tags))
        if more:
            out.append(_truncated(res))
            sub(out, d("sync-token"), f"{locks.SYNC_PREFIX}{state:x}:{nodes[-1].pk:x}")
        else:
            sub(out, d("sync-token"), f"{locks.SYNC_PREFIX}{state:x}")
        return multistatus(out)
    try:
        found = journal.changes(owner.pk, files.TYPE, str(token[0]), limit)
    except journal.CannotCalculateChanges:
        return error(403, d("valid-sync-token"))
    ids = [int(i) for i in [*found.created, *found.updated] if i.isdigit()]
    nodes = sorted(FileNode.objects.filter(account_id=owner.pk, pk__in=ids), key=lambda n: n.path)
    live_hrefs = set()
    target = res.href
    for node in nodes:
        r = _sync_resource(q, res, node)
        if r is None or not _in_scope(target, r.href, infinite):
            continue
        live_hrefs.add(r.href)
        out.append(_response(q, r, "prop", tags))
    for object_id in found.destroyed:
        gone = found.hrefs.get(object_id)
        if gone and gone not in live_hrefs and _in_scope(target, gone, infinite):
            out.append(_status_response(gone, "HTTP/1.1 404 Not Found"))
    if found.has_more_changes:
        out.append(_truncated(res))
    sub(out, d("sync-token"), f"{locks.SYNC_PREFIX}{int(found.new_state):x}")
    return multistatus(out)


def _provider_sync(q: Request, prov, token, infinite: bool, tags: list[str], limit: int):
    """sync-collection over a provider's tree: the same tokens, paging and refusals as the file
    store, from the provider's journal type. The initial listing pages in path order; its
    cursor is the last path listed (hex of its UTF-8)."""
    res, owner = q.res, q.res.owner
    jtype = prov.journal_type(owner)
    # At the home, the collections' own journal too (created and removed calendars or books).
    ctype = prov.collection_journal_type(owner) if (
        res.kind == "home" and hasattr(prov, "collection_journal_type")) else None
    out = Multistatus()

    def token_text(state: int, cstate: int | None, cursor: str = "") -> str:
        text = f"{locks.SYNC_PREFIX}{state:x}" + (f"-{cstate:x}" if cstate is not None else "")
        return text + (f":{cursor}" if cursor else "")

    def entry_resource(entry):
        return R.Resource(res.service, "collection" if entry.collection else "item", owner, entry.path, entry=entry,
                          member=res.member, rights=access.rights(q.caller, owner.pk, [entry.acl]),
                          acl_chain=[entry.acl])

    if token is None or token[1] is not None:
        current = int(journal.state(owner.pk, jtype))
        state = current if token is None else token[0]
        if state > current:
            return error(403, d("valid-sync-token"))
        cstate = None
        if ctype is not None:
            ccurrent = int(journal.state(owner.pk, ctype))
            cstate = ccurrent if token is None or token[2] is None else token[2]
            if cstate > ccurrent:
                return error(403, d("valid-sync-token"))
        try:
            after = bytes.fromhex(token[1]).decode("utf-8", "replace") if token is not None else ""
        except ValueError:
            return error(403, d("valid-sync-token"))
        writer = _RowWriter(res, tags, False)
        if writer.fields is not None:
            # A collection's items, written from its rows: they all have its grants. In code
            # point order, as the cursor compares (a database's collation may differ).
            prefix = res.entry.path + "/"
            rows = sorted(writer.rows(), key=itemgetter(0))
            if after:
                rows = [row for row in rows if prefix + row[0] > after]
            page = rows[:limit]
            texts = writer.texts(page) if res.member or access.READ in res.rights else []
            if texts is not None:
                out.parts += texts
                last = prefix + page[-1][0] if page else ""
                return _sync_page(out, res, len(rows) > limit, token_text(state, cstate),
                                  token_text(state, cstate, last.encode().hex()))
        if res.kind == "home":
            entries = list(prov.collections(owner, create=res.member))
            if infinite:
                entries += [item for coll in list(entries) for item in prov.children(owner, coll)]
        else:
            entries = list(prov.children(owner, res.entry))
        entries = sorted((e for e in entries if e.path > after), key=lambda e: e.path)
        page, more = entries[:limit], len(entries) > limit
        for entry in page:
            r = entry_resource(entry)
            if r.member or access.READ in r.rights:
                out.append(_member_response(q, r, tags))
        return _sync_page(out, res, more, token_text(state, cstate),
                          token_text(state, cstate, page[-1].path.encode().hex()) if more else "")
    try:
        found = journal.changes(owner.pk, jtype, str(token[0]), limit)
    except journal.CannotCalculateChanges:
        return error(403, d("valid-sync-token"))
    cfound = None
    if ctype is not None:
        if token[2] is None:
            # A home token given out before collections were tracked: list them all again.
            return error(403, d("valid-sync-token"))
        try:
            cfound = journal.changes(owner.pk, ctype, str(token[2]), limit)
        except journal.CannotCalculateChanges:
            return error(403, d("valid-sync-token"))
    live = set()
    writer = _RowWriter(res, tags, False)
    texts = None
    if writer.fields is not None:
        # A collection's changed items, written from their rows as the initial listing is.
        rows = writer.rows(ids=[*found.created, *found.updated])
        texts = writer.texts(rows) if res.member or access.READ in res.rights else []
        if texts:
            out.parts += texts
            live = {res.href + files.quote_path(row[0]) for row in rows}
    if texts is None:
        entries = prov.by_ids(owner, [*found.created, *found.updated])
        if cfound is not None:
            entries = prov.collections_by_ids(owner, [*cfound.created, *cfound.updated]) + entries
        for entry in entries:
            r = entry_resource(entry)
            if (r.member or access.READ in r.rights) and _in_scope(res.href, r.href, infinite):
                live.add(r.href)
                out.append(_member_response(q, r, tags))
    home = R.Resource(res.service, "home", owner).href
    gones = [found.hrefs.get(object_id) for object_id in found.destroyed]
    if cfound is not None:
        gones = [cfound.hrefs.get(object_id) for object_id in cfound.destroyed] + gones
    for gone in gones:
        if gone and not gone.startswith("/"):
            # A store may journal hrefs relative to the home (the contact store does).
            gone = home + quote(gone, safe="/-._~!$&'()*+,;=:@")
        if gone and gone not in live and _in_scope(res.href, gone, infinite):
            out.append(_status_response(gone, "HTTP/1.1 404 Not Found"))
    if found.has_more_changes or (cfound is not None and cfound.has_more_changes):
        out.append(_truncated(res))
    out.append(text_element(d("sync-token"), token_text(int(found.new_state), int(cfound.new_state) if cfound else None)))
    return multistatus(out)


def _member_response(q: Request, r: R.Resource, tags: list[str]):
    text = _response_text(r, tags, False)
    return text if text is not None else _response(q, r, "prop", tags)


def _sync_page(out: Multistatus, res: R.Resource, more: bool, token: str, next_token: str) -> HttpResponse:
    """The end of a page of an initial sync: truncated with the next page's token, or done."""
    if more:
        out.append(_truncated(res))
    out.append(text_element(d("sync-token"), next_token if more else token))
    return multistatus(out)


def _sync_resource(q: Request, target: R.Resource, node) -> R.Resource | None:
    """The node as a resource with the caller's rights, or None when the caller may not read it."""
    chain = files.ancestors(node.account_id, node.path) if not target.member else []
    acl_chain = [a.acl for a in chain] + [node.acl]
    rights = access.rights(q.caller, node.account_id, acl_chain)
    r = R.Resource("file", "folder" if node.is_collection else "file", target.owner, node.path, node=node,
                   member=target.member, rights=rights, acl_chain=acl_chain)
    return r if r.member or access.READ in rights else None


MAX_EXPAND_DEPTH = 3


def _expand(q: Request, res: R.Resource, spec, depth: int):
    """One response for `res` with the properties of `spec` (DAV:property elements), the hrefs
    of those with nested DAV:property replaced by responses for the resources they name."""
    resp = element(d("response"))
    sub(resp, d("href"), res.href)
    found, missing = [], []
    for p in children(spec, d("property")):
        tag = "{%s}%s" % (p.get("namespace", DAV), p.get("name", "")) if p.get("namespace", DAV) else p.get("name", "")
        el = R.value(res, tag, q.ctx) if _readable(q, res) else None
        if el is None:
            missing.append(tag)
            continue
        nested = children(p, d("property"))
        if nested and depth < MAX_EXPAND_DEPTH:
            for h in list(el.iter(d("href"))):
                target = _locate_href(q, _path_of(h.text or ""))
                if target is None or not target.exists:
                    continue
                parent = h.getparent()
                parent.replace(h, _expand(q, target, p, depth + 1))
        found.append(el)
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
    return resp


def expand_property(q: Request):
    out = element(d("multistatus"))
    out.append(_expand(q, q.res, q.xml, 0))
    return multistatus(out)


SEARCHABLE = [d("displayname"), f"{{{CALDAV}}}calendar-user-address-set"]


def principal_search_property_set(q: Request):
    if q.res.kind not in ("principals", "principal"):
        return error(403, d("supported-report"))
    root = element(d("principal-search-property-set"))
    for tag, text in zip(SEARCHABLE, ("Display name", "Calendar user address")):
        sp = sub(root, d("principal-search-property"))
        sub(sub(sp, d("prop")), tag)
        sub(sp, d("description"), text).set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return multistatus(root, status=200)


def principal_property_search(q: Request):
    if q.res.kind not in ("principals", "principal"):
        return error(403, d("supported-report"))
    tests = []
    for ps in children(q.xml, d("property-search")):
        prop, match = child(ps, d("prop")), child(ps, d("match"))
        if prop is None or match is None:
            return error(400)
        text = (match.text or "").strip().lower()
        if len(text) > 255:
            return error(400)
        tests.append(([c.tag for c in children(prop)], text))
    any_of = q.xml.get("test") == "anyof"
    prop = child(q.xml, d("prop"))
    tags = [c.tag for c in children(prop)] if prop is not None else [d("displayname")]
    visible = {q.caller.account_id, *q.caller.groups,
               *(pk for s in ("file", "cal", "card") for pk in access.shared_with(q.caller, s))}
    out = element(d("multistatus"))
    for account in Account.objects.filter(pk__in=visible).select_related("domain").order_by("email_address"):
        def hit(props, text):
            values = []
            if d("displayname") in props:
                values.append((account.description or account.name).lower())
            if f"{{{CALDAV}}}calendar-user-address-set" in props:
                values.append(f"mailto:{account.email_address}")
            return any(text in v for v in values)

        results = [hit(p, t) for p, t in tests]
        if tests and not (any(results) if any_of else all(results)):
            continue
        r = R.Resource("pal", "principal", account, member=q.caller.is_member(account.pk))
        out.append(_response(q, r, "prop", tags))
    return multistatus(out)


HANDLERS = {
    "PROPFIND": propfind, "PROPPATCH": proppatch, "MKCOL": mkcol, "MKCALENDAR": mkcol, "GET": get, "HEAD": get,
    "PUT": put, "POST": put, "PATCH": put, "DELETE": delete, "COPY": copy_move, "MOVE": copy_move, "LOCK": lock,
    "UNLOCK": unlock, "ACL": acl, "REPORT": report,
}

