"""Email/get, changes, query, queryChanges, set, copy, import, parse and Thread/get, changes
(RFC 8621 §3, §4). Answers come from the metadata parsed at import; only body values read the
raw message (a slice of its blob)."""
from __future__ import annotations

import datetime
import email.errors
import email.policy
import email.utils
import re
from email.headerregistry import Address
from email.message import EmailMessage

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils.dateparse import parse_datetime

from blobs import services as blobs
from jmapapi.blob_methods import DERIVED_BLOBS
from jmapapi.engine import Context, MethodError, invalid_arguments, method
from jmapapi.journal_methods import changes_method, query_changes_method
from journal import services as journal
from registry import ids

from . import headers as h
from . import jmap_common as c
from . import mime, search, store
from .models import Email, Keyword, Membership

ADDRESS_PROPS = ("sender", "from", "to", "cc", "bcc", "replyTo")
META_PROPS = ("messageId", "inReplyTo", "references", *ADDRESS_PROPS, "subject", "sentAt", "hasAttachment",
              "preview", "headers")
BODY_PROPS = ("bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments")
PROPERTIES = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", *META_PROPS, *BODY_PROPS)
DEFAULT_PROPERTIES = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
                      "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
                      "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments")
PARSE_DEFAULT = ("messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
                 "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments")
MAX_HEADER_FILTER = 1000
# Each text condition is a subquery (and, on SQLite, a count of its matches): a filter is
# bounded as the full-text query tree is (fulltext.text.MAX_QUERY_NODES).
MAX_TEXT_CONDITIONS = 256


def _is_header_prop(prop: str) -> bool:
    if not prop.startswith("header:"):
        return False
    try:
        h.parse_property(prop)
    except h.HeaderFormError as exc:
        raise invalid_arguments(str(exc)) from None
    return True


def utc(dt: datetime.datetime) -> str:
    return dt.astimezone(datetime.timezone.utc).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


# --- Email/get --------------------------------------------------------------------------------
class _BodyOptions:
    def __init__(self, args: dict):
        self.text = c.boolean(args, "fetchTextBodyValues")
        self.html = c.boolean(args, "fetchHTMLBodyValues")
        self.all = c.boolean(args, "fetchAllBodyValues")
        self.max_bytes = c.unsigned(args, "maxBodyValueBytes", 0)
        value = args.get("bodyProperties")
        if value is None:
            self.properties = mime.DEFAULT_BODY_PROPERTIES
        else:
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise invalid_arguments('"bodyProperties" must be an array of property names.')
            for p in value:
                if p not in (*mime.PART_PROPERTIES, "blobId") and not _is_header_prop(p):
                    raise invalid_arguments(f"Unknown body property {p[:100]}.")
            self.properties = tuple(value)

    def wants_values(self) -> bool:
        return self.text or self.html or self.all


def render(meta: dict, props, opts: _BodyOptions, *, email_id: str | None, raw_of=None) -> dict:
    """The parsed properties of a message (stored or just parsed) as Email/get shows them."""
    out = {}
    # A summary (Email.summary) has no body structure; it is asked for list properties only.
    parts = mime.parts_by_id(meta["bodyStructure"]) if "bodyStructure" in meta else {}

    def blob_id(part):
        return store.part_blob_id(ids.decode(email_id), part["partId"]) if email_id else None

    for p in props:
        if p in ("messageId", "inReplyTo", "references", "sender", "to", "cc", "bcc", "replyTo", "subject",
                 "sentAt", "hasAttachment", "preview", "headers", "from"):
            out[p] = meta[p]
        elif p == "bodyStructure":
            out[p] = mime.public_part(meta["bodyStructure"], (*opts.properties, "subParts"), blob_id)
        elif p in ("textBody", "htmlBody", "attachments"):
            out[p] = [mime.public_part(parts[pid], opts.properties, blob_id) for pid in meta[p] if pid in parts]
        elif p == "bodyValues":
            wanted = []
            if opts.text or opts.all:
                wanted += meta["textBody"]
            if opts.html or opts.all:
                wanted += meta["htmlBody"]
            if opts.all:
                wanted += [pid for pid, part in parts.items() if part["type"].startswith("text/")]
            wanted = [pid for pid in dict.fromkeys(wanted) if pid in parts and parts[pid]["type"].startswith("text/")]
            if wanted:
                raw = raw_of()
                out[p] = {pid: mime.body_value(raw, parts[pid], opts.max_bytes) for pid in wanted}
            else:
                out[p] = {}
        elif p.startswith("header:"):
            name, form, all_ = h.parse_property(p)
            out[p] = h.header(meta["headers"], name, form, all_)
    return out


@method("Email/get", c.MAIL, account_optional=False, transactional=False)
def email_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailGet")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "ids", ctx.limits.get_max_results)
    props = c.properties(args, PROPERTIES, DEFAULT_PROPERTIES, extra=_is_header_prop)
    opts = _BodyOptions(args)
    state = journal.state(pk, store.EMAIL)
    rows = Email.objects.filter(account_id=pk)
    if wanted is None:
        # RFC 8620 §5.1: ids null is "all", bounded by maxObjectsInGet.
        rows = rows.order_by("-received_at", "-id")[:ctx.limits.get_max_results]
        asked = None
    else:
        asked = c.decode_ids(ctx, wanted)
        rows = rows.filter(pk__in=[v for v in asked.values() if v is not None])
    needs_meta = any(p in META_PROPS or p in BODY_PROPS or p.startswith("header:") for p in props)
    # A listing asks only for list properties: they come from the small `summary` document and
    # the whole `meta` is neither fetched nor decoded.
    listing = needs_meta and all(p in store.LIST_PROPS for p in props if p in META_PROPS or p in BODY_PROPS
                                 or p.startswith("header:"))
    if listing:
        rows = rows.defer("meta", "search")
    elif not needs_meta:
        rows = rows.defer("meta", "search", "summary")
    else:
        rows = rows.defer("search", "summary")
    rows = list(rows)
    boxes: dict[int, dict] = {}
    if "mailboxIds" in props and rows:
        for epk, mpk in Membership.objects.filter(email_id__in=[e.pk for e in rows]).values_list("email_id",
                                                                                                  "mailbox_id"):
            boxes.setdefault(epk, {})[ids.encode(mpk)] = True
    views = {}
    if "bodyValues" in props and opts.wants_values() and rows:
        views = blobs.resolve(pk, [e.blob_id for e in rows])
    by_pk = {e.pk: e for e in rows}
    order = [e.pk for e in rows] if asked is None else [v for v in asked.values()]
    listed, not_found = [], []
    for i, epk in enumerate(order):
        e = by_pk.get(epk)
        if e is None:
            not_found.append(list(asked)[i])
            continue
        eid = ids.encode(e.pk)
        out = {}
        for p in props:
            if p == "id":
                out[p] = eid
            elif p == "blobId":
                out[p] = e.blob_id
            elif p == "threadId":
                out[p] = ids.encode(e.thread_id)
            elif p == "mailboxIds":
                out[p] = boxes.get(e.pk, {})
            elif p == "keywords":
                out[p] = e.keywords
            elif p == "size":
                out[p] = e.size
            elif p == "receivedAt":
                out[p] = utc(e.received_at)
        if needs_meta:
            # A row without a summary (written before it existed and not migrated) reads meta.
            source = (e.summary or e.meta) if listing else e.meta
            out.update(render(source, [p for p in props if p not in out], opts, email_id=eid,
                              raw_of=lambda e=e: store.raw_message(e, views.get(e.blob_id))))
        listed.append({p: out[p] for p in props if p in out})
    return {"accountId": ids.encode(pk), "state": state, "list": listed, "notFound": not_found}


c.guarded(changes_method("Email/changes", store.EMAIL, c.MAIL), "jmapEmailChanges")
c.guarded(changes_method("Thread/changes", store.THREAD, c.MAIL), "jmapThreadChanges")


# --- Thread/get -------------------------------------------------------------------------------
@method("Thread/get", c.MAIL, account_optional=False, transactional=False)
def thread_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapThreadGet")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "ids", ctx.limits.get_max_results, required=True)
    c.properties(args, ("id", "emailIds"), ("id", "emailIds"))
    asked = c.decode_ids(ctx, wanted)
    emails: dict[int, list[str]] = {}
    rows = (Email.objects.filter(account_id=pk, thread_id__in=[v for v in asked.values() if v is not None])
            .order_by("thread_id", "received_at", "id").values_list("thread_id", "id"))
    for tpk, epk in rows:
        emails.setdefault(tpk, []).append(ids.encode(epk))
    listed, not_found = [], []
    for value, tpk in asked.items():
        if tpk in emails:
            listed.append({"id": value, "emailIds": emails[tpk]})
        else:
            not_found.append(value)
    return {"accountId": ids.encode(pk), "state": journal.state(pk, store.THREAD), "list": listed,
            "notFound": not_found}


# --- Email/query --------------------------------------------------------------------------------
FILTERS = {"inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize", "allInThreadHaveKeyword",
           "someInThreadHaveKeyword", "noneInThreadHaveKeyword", "hasKeyword", "notKeyword", "hasAttachment",
           "text", "from", "to", "cc", "bcc", "subject", "body", "header"}


def _date(value, name):
    dt = parse_datetime(value) if isinstance(value, str) else None
    if dt is None or dt.tzinfo is None:
        raise MethodError("unsupportedFilter", f"{name} must be a UTCDate.")
    return dt


def _keyword(value, name):
    if not store.valid_keyword(value):
        raise MethodError("unsupportedFilter", f"{name} must be a keyword.")
    return value.lower()


def _mailbox_pk(value, ctx, name):
    if not isinstance(value, str):
        raise MethodError("unsupportedFilter", f"{name} must be a mailbox id.")
    return ids.decode(ctx.resolve_creation_id(value) or "") or -1


class _Query:
    """Filter and sort of one Email/query over Email rows, or over a mailbox's Membership rows
    (the index-ordered fast path) when the filter is one condition naming inMailbox."""

    def __init__(self, ctx: Context, args: dict, *, snippets: bool = False):
        # snippets: validate the filter as Email/query does, but keep its text conditions as a
        # full-text query tree (`self.text_tree`) instead of building the SQL.
        self.snippets = snippets
        self.ctx, self.account = ctx, c.account(ctx, args)
        filt = args.get("filter")
        self.base_mailbox = None
        if isinstance(filt, dict) and "operator" not in filt and "inMailbox" in filt:
            self.base_mailbox = _mailbox_pk(filt["inMailbox"], ctx, "inMailbox")
        self.p = "email__" if self.base_mailbox is not None else ""
        self.eid = "email_id" if self.base_mailbox is not None else "id"
        self.texts = 0
        tree = c.walk_filter(filt, self._leaf) if filt is not None else None
        if snippets:
            self.text_tree = search.snippet_query(tree)
            self.q = Q()
        else:
            self.q = self._tree(tree) if tree is not None else Q()
        self.comparators = c.sort_list(args, c.SORT_OPTIONS) or [{"property": "receivedAt", "isAscending": False}]
        self.collapse = c.boolean(args, "collapseThreads")

    def _tree(self, node) -> Q:
        if isinstance(node, Q):
            return node
        op, children = node
        qs = [self._tree(n) for n in children]
        out = Q()
        if op == "AND":
            for q in qs:
                out &= q
        elif op == "OR":
            out = Q(pk__in=[])
            for q in qs:
                out |= q
        else:
            for q in qs:
                out &= ~q
        return out

    def _thread_has(self, keyword):
        return Exists(Keyword.objects.filter(email__thread_id=OuterRef(self.p + "thread_id"), keyword=keyword))

    def _leaf(self, cond: dict) -> Q:
        unknown = set(cond) - FILTERS
        if unknown:
            raise MethodError("unsupportedFilter", f"Unknown filter {sorted(unknown)[0][:64]}.")
        p, eid, q = self.p, self.eid, Q()
        texts = []
        for name, value in cond.items():
            if name == "inMailbox":
                mpk = _mailbox_pk(value, self.ctx, name)
                if mpk == self.base_mailbox and cond is not None and self.p:
                    q &= Q(mailbox_id=mpk)
                else:
                    q &= Q(Exists(Membership.objects.filter(mailbox_id=mpk, email_id=OuterRef(eid))))
            elif name == "inMailboxOtherThan":
                if not isinstance(value, list) or len(value) > 1000:
                    raise MethodError("unsupportedFilter", "inMailboxOtherThan must be an array of mailbox ids.")
                others = [_mailbox_pk(v, self.ctx, name) for v in value]
                q &= Q(Exists(Membership.objects.filter(email_id=OuterRef(eid)).exclude(mailbox_id__in=others)))
            elif name == "before":
                q &= Q(**{("received_at" if p else "received_at") + "__lt": _date(value, name)})
            elif name == "after":
                q &= Q(received_at__gte=_date(value, name))
            elif name in ("minSize", "maxSize"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise MethodError("unsupportedFilter", f"{name} must be an unsigned integer.")
                q &= Q(**{p + ("size__gte" if name == "minSize" else "size__lt"): value})
            elif name == "hasKeyword":
                q &= Q(Exists(Keyword.objects.filter(email_id=OuterRef(eid), keyword=_keyword(value, name))))
            elif name == "notKeyword":
                q &= ~Q(Exists(Keyword.objects.filter(email_id=OuterRef(eid), keyword=_keyword(value, name))))
            elif name == "someInThreadHaveKeyword":
                q &= Q(self._thread_has(_keyword(value, name)))
            elif name == "noneInThreadHaveKeyword":
                q &= ~Q(self._thread_has(_keyword(value, name)))
            elif name == "allInThreadHaveKeyword":
                kw = _keyword(value, name)
                missing = Email.objects.filter(thread_id=OuterRef(p + "thread_id")).filter(
                    ~Exists(Keyword.objects.filter(email_id=OuterRef("pk"), keyword=kw)))
                q &= ~Q(Exists(missing))
            elif name == "hasAttachment":
                if not isinstance(value, bool):
                    raise MethodError("unsupportedFilter", "hasAttachment must be a boolean.")
                q &= Q(**{p + "has_attachment": value})
            elif name in ("text", *search.FIELDS):
                if not isinstance(value, str) or len(value) > MAX_HEADER_FILTER:
                    raise MethodError("unsupportedFilter", f"{name} must be a string.")
                self.texts += 1
                if self.texts > MAX_TEXT_CONDITIONS:
                    raise MethodError("unsupportedFilter", "Too many text conditions in one filter.")
                if self.snippets:
                    texts.append((name, value))
                    continue
                try:
                    q &= search.text_condition(self.account, name, value, eid)
                except search.TooComplex as exc:
                    raise MethodError("unsupportedFilter", f"{name}: {exc}.") from None
            elif name == "header":
                q &= self._header(value)
        return search.Leaf(texts) if self.snippets else q

    def _header(self, value) -> Q:
        if (not isinstance(value, list) or not 1 <= len(value) <= 2 or not all(isinstance(v, str) for v in value)
                or not value[0] or any(len(v) > MAX_HEADER_FILTER for v in value)
                or any(ch in value[0] for ch in ":\r\n")):
            raise MethodError("unsupportedFilter", "header must be [name] or [name, value].")
        # Each stored line is "\n<name>: <unfolded value>": the name whole, the value a substring.
        pattern = "\n" + re.escape(value[0].lower()) + ":"
        if len(value) == 2:
            pattern += "[^\n]*" + re.escape(value[1])
        return Q(**{self.p + "search__headers__iregex": pattern})

    def _ordering(self):
        annotations, order = {}, []
        p = self.p
        fields = {"receivedAt": "received_at" if not p else "received_at", "size": p + "size",
                  "from": p + "sort_from", "to": p + "sort_to", "subject": p + "sort_subject",
                  "sentAt": p + "sent_at"}
        for i, comp in enumerate(self.comparators):
            prop = comp["property"]
            if prop in fields:
                name = fields[prop]
            else:
                kw = _keyword(comp.get("keyword"), "keyword")
                name = f"_k{i}"
                if prop == "hasKeyword":
                    annotations[name] = Exists(Keyword.objects.filter(email_id=OuterRef(self.eid), keyword=kw))
                elif prop == "someInThreadHaveKeyword":
                    annotations[name] = self._thread_has(kw)
                else:
                    annotations[name] = ~Exists(Email.objects.filter(thread_id=OuterRef(p + "thread_id")).filter(
                        ~Exists(Keyword.objects.filter(email_id=OuterRef("pk"), keyword=kw))))
            order.append(name if comp.get("isAscending", True) else "-" + name)
        last_desc = order[0].startswith("-")
        order.append(("-" if last_desc else "") + self.eid)
        return annotations, order

    def rows(self):
        """(email pk, thread pk) in order."""
        if self.base_mailbox is not None:
            qs = Membership.objects.filter(mailbox_id=self.base_mailbox, email__account_id=self.account)
        else:
            qs = Email.objects.filter(account_id=self.account)
        annotations, order = self._ordering()
        if annotations:
            qs = qs.annotate(**annotations)
        return qs.filter(self.q).order_by(*order).values_list(self.eid, self.p + "thread_id")


def query_ids(ctx: Context, args: dict) -> list[str]:
    query = _Query(ctx, args)
    seen, out = set(), []
    for epk, tpk in query.rows().iterator(chunk_size=2000):
        if query.collapse:
            if tpk in seen:
                continue
            seen.add(tpk)
        out.append(ids.encode(epk))
    return out


@method("Email/query", c.MAIL, account_optional=False, transactional=False)
def email_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailQuery")
    query = _Query(ctx, args)
    pk = query.account
    position = c.unsigned(args, "position", 0, signed=True)
    anchor = args.get("anchor")
    limit_arg = c.unsigned(args, "limit", None)
    cap = ctx.limits.query_max_results
    limit = cap if limit_arg is None else min(limit_arg, cap)
    total_wanted = c.boolean(args, "calculateTotal")
    state = journal.state(pk, store.EMAIL)
    out = {"accountId": ids.encode(pk), "queryState": state, "canCalculateChanges": True}
    if anchor is None and position >= 0 and not query.collapse:
        rows = query.rows()
        page = [ids.encode(epk) for epk, _ in rows[position:position + limit]]
        out.update(position=position, ids=page)
        if total_wanted:
            total = rows.count()
            out["total"] = total
            out["position"] = min(position, total)
    elif anchor is None and position >= 0 and not total_wanted:
        # collapseThreads: walk in order, keep each thread's first email, stop once the page is full.
        # Slices with LIMIT, not a cursor: PostgreSQL plans a server-side cursor for its first
        # tenth only (cursor_tuple_fraction) and chose to join and sort the whole mailbox (316 ms
        # at 100,000 messages); a LIMIT keeps the index walk that stops after the slice.
        seen, found = set(), []
        rows, start, step = query.rows(), 0, max((position + limit) * 4, 200)
        while len(found) < position + limit:
            chunk = list(rows[start:start + step])
            for epk, tpk in chunk:
                if tpk in seen:
                    continue
                seen.add(tpk)
                found.append(ids.encode(epk))
                if len(found) >= position + limit:
                    break
            if len(chunk) < step:
                break
            start, step = start + step, step * 2
        out.update(position=min(position, len(found)), ids=found[position:position + limit])
    else:
        page, start, _, total = c.window(args, ctx, query_ids(ctx, args))
        out.update(position=start, ids=page)
        if total_wanted:
            out["total"] = total
    if limit_arg is not None and limit_arg > limit:
        out["limit"] = limit
    return out


c.guarded(query_changes_method("Email/queryChanges", store.EMAIL, c.MAIL, results=query_ids),
          "jmapEmailQueryChanges")


# --- SearchSnippet/get ------------------------------------------------------------------------
# The reference's default `snippetMaxResults` (spec jmap.md §6): more emailIds is requestTooLarge.
SNIPPET_MAX_RESULTS = 100


@method("SearchSnippet/get", c.MAIL, account_optional=False, transactional=False)
def search_snippet_get(ctx: Context, args: dict) -> dict:
    """RFC 8621 §5.1: for each asked email of the account, its subject and a preview with the
    filter's text matches in <mark> (HTML-escaped; null where nothing matched)."""
    ctx.require("jmapSearchSnippetGet")
    query = _Query(ctx, args, snippets=True)
    pk = query.account
    wanted = c.id_list(args, "emailIds", SNIPPET_MAX_RESULTS, required=True)
    asked = c.decode_ids(ctx, wanted)
    known = set(Email.objects.filter(account_id=pk, pk__in=[v for v in asked.values() if v is not None])
                .values_list("pk", flat=True))
    try:
        found = search.snippets(pk, sorted(known), query.text_tree) if known else {}
    except search.TooComplex as exc:
        raise MethodError("unsupportedFilter", f"{exc}.") from None
    listed, not_found = [], []
    for asked_id, epk in asked.items():
        if epk not in known:
            not_found.append(asked_id)
            continue
        snippet = found.get(epk) or {}
        listed.append({"emailId": ids.encode(epk), "subject": snippet.get("subject"),
                       "preview": snippet.get("preview")})
    return {"accountId": ids.encode(pk), "list": listed, "notFound": not_found or None}


# --- Email/set ----------------------------------------------------------------------------------
def _refuse(type: str, description: str, *properties) -> store.StoreError:
    return store.StoreError(type, description, [p[:100] for p in properties] or None)


def _mailbox_map(ctx: Context, value, prop="mailboxIds") -> list[int]:
    if not isinstance(value, dict) or not all(v is True for v in value.values()):
        raise _refuse("invalidProperties", "mailboxIds must map mailbox ids to true.", prop)
    out = []
    for key in value:
        mpk = ids.decode(ctx.resolve_creation_id(key) or "")
        if mpk is None:
            raise _refuse("invalidProperties", "A mailbox of mailboxIds does not exist.", prop)
        out.append(mpk)
    return out


def _keywords(value, prop="keywords") -> dict:
    try:
        return store.normalise_keywords(value)
    except ValueError as exc:
        raise _refuse("invalidProperties", f"Invalid keywords: {exc}.", prop) from None


def _received_at(value):
    if value is None:
        return None
    dt = parse_datetime(value) if isinstance(value, str) else None
    if dt is None or dt.tzinfo is None:
        raise _refuse("invalidProperties", "receivedAt must be a UTCDate.", "receivedAt")
    return dt


def _unpointer(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _patch(ctx: Context, email: Email, values: dict) -> tuple[dict | None, list[int] | None]:
    """An Email/set update (RFC 8621 §4.6): keywords and mailboxIds, whole or by path."""
    if not isinstance(values, dict):
        raise _refuse("invalidPatch", "An update must be a PatchObject.")
    keywords, mailbox_pks = None, None
    kw_patch, mb_patch = {}, {}
    for key, value in values.items():
        head, _, rest = key.partition("/")
        if head == "keywords" and not rest:
            keywords = _keywords(value)
        elif head == "mailboxIds" and not rest:
            mailbox_pks = _mailbox_map(ctx, value)
        elif head in ("keywords", "mailboxIds") and rest and "/" not in rest:
            if value is not True and value is not None:
                raise _refuse("invalidPatch", f"{key[:100]} must be true or null.", key)
            if head == "keywords":
                kw = _unpointer(rest)
                if not store.valid_keyword(kw):
                    raise _refuse("invalidPatch", "Invalid keyword in the patch path.", key)
                kw_patch[kw.lower()] = value
            else:
                mpk = ids.decode(ctx.resolve_creation_id(_unpointer(rest)) or "")
                if mpk is None:
                    raise _refuse("invalidProperties", "A mailbox of mailboxIds does not exist.", key)
                mb_patch[mpk] = value
        elif "/" in key:
            raise _refuse("invalidPatch", f"The path {key[:100]} cannot be patched.", key)
        elif key in PROPERTIES or key.startswith("header:"):
            raise _refuse("invalidProperties", f"{key[:100]} cannot be changed.", key)
        else:
            raise _refuse("invalidProperties", f"Unknown property {key[:100]}.", key)
    if (keywords is not None and kw_patch) or (mailbox_pks is not None and mb_patch):
        raise _refuse("invalidPatch", "A property and a path into it cannot be patched together.")
    if kw_patch:
        keywords = dict(email.keywords)
        for kw, value in kw_patch.items():
            if value:
                keywords[kw] = True
            else:
                keywords.pop(kw, None)
    if mb_patch:
        current = set(Membership.objects.filter(email=email).values_list("mailbox_id", flat=True))
        for mpk, value in mb_patch.items():
            current.add(mpk) if value else current.discard(mpk)
        mailbox_pks = list(current)
    return keywords, mailbox_pks


CREATE_PROPS = {"mailboxIds", "keywords", "receivedAt", "messageId", "inReplyTo", "references", "sender", "from",
                "to", "cc", "bcc", "replyTo", "subject", "sentAt", "textBody", "htmlBody", "attachments",
                "bodyValues"}


def _addresses(value, prop):
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1000:
        raise _refuse("invalidProperties", f"{prop} must be a list of EmailAddress.", prop)
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("email"), str) or \
                not isinstance(item.get("name") or "", str):
            raise _refuse("invalidProperties", f"{prop} must be a list of EmailAddress.", prop)
        local, at, domain = item["email"].rpartition("@")
        try:
            out.append(Address(display_name=item.get("name") or "", username=local, domain=domain) if at
                       else Address(display_name=item.get("name") or "", addr_spec=item["email"]))
        except (ValueError, IndexError, TypeError) as exc:
            raise _refuse("invalidProperties", f"{prop}: {exc}", prop) from None
    return out


def _no_breaks(value, prop) -> str:
    if not isinstance(value, str) or "\r" in value or "\n" in value or len(value) > 10_000:
        raise _refuse("invalidProperties", f"{prop} must be a single-line string.", prop)
    return value


def _ids_header(value, prop) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and re.fullmatch(r"[\x21-\x3b\x3d\x3f-\x7e]+", v)
                                              for v in value) or len(value) > 1000:
        raise _refuse("invalidProperties", f"{prop} must be a list of message ids.", prop)
    return " ".join(f"<{v}>" for v in value)


def _body_text(values: dict, body_values, prop) -> tuple[str, str] | None:
    parts = values.get(prop)
    if parts is None:
        return None
    if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict):
        raise _refuse("invalidProperties", f"{prop} must hold exactly one part.", prop)
    part = parts[0]
    wanted = "text/plain" if prop == "textBody" else "text/html"
    if part.get("type", wanted) != wanted:
        raise _refuse("invalidProperties", f"The {prop} part must be {wanted}.", prop)
    if "blobId" in part or "charset" in part and part["charset"] is not None and part["charset"] != "utf-8":
        raise _refuse("invalidProperties", f"The {prop} part takes its value from bodyValues.", prop)
    value = body_values.get(part.get("partId")) if isinstance(part.get("partId"), str) else None
    if not isinstance(value, dict) or not isinstance(value.get("value"), str) or \
            value.get("isTruncated") or value.get("isEncodingProblem"):
        raise _refuse("invalidProperties", f"The {prop} part needs its value in bodyValues.", prop)
    return wanted, value["value"]


def build_message(ctx: Context, account_pk: int, values: dict, domain: str) -> bytes:
    """An RFC 5322 message from Email/set's structured properties (RFC 8621 §4.6)."""
    unknown = [k for k in values if k not in CREATE_PROPS]
    if unknown:
        prop = unknown[0]
        why = "is set by the server" if prop in PROPERTIES else "is not supported on create" \
            if prop.startswith("header:") or prop in ("headers", "bodyStructure") else "is unknown"
        raise _refuse("invalidProperties", f"{prop[:100]} {why}.", prop)
    msg = EmailMessage(policy=email.policy.SMTP)
    for prop, header in (("from", "From"), ("sender", "Sender"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"),
                         ("replyTo", "Reply-To")):
        addresses = _addresses(values.get(prop), prop)
        if addresses:
            try:
                msg[header] = addresses if header != "Sender" else addresses[0]
            except (ValueError, TypeError) as exc:
                raise _refuse("invalidProperties", f"{prop}: {exc}", prop) from None
    if values.get("subject") is not None:
        msg["Subject"] = _no_breaks(values["subject"], "subject")
    sent = values.get("sentAt")
    if sent is not None:
        dt = parse_datetime(sent) if isinstance(sent, str) else None
        if dt is None or dt.tzinfo is None:
            raise _refuse("invalidProperties", "sentAt must be a Date.", "sentAt")
    else:
        dt = datetime.datetime.now(datetime.timezone.utc)
    msg["Date"] = email.utils.format_datetime(dt)
    message_id = _ids_header(values.get("messageId"), "messageId") or f"<{store.new_message_id(domain)}>"
    msg["Message-ID"] = message_id
    for prop, header in (("inReplyTo", "In-Reply-To"), ("references", "References")):
        value = _ids_header(values.get(prop), prop)
        if value:
            msg[header] = value
    body_values = values.get("bodyValues") or {}
    if not isinstance(body_values, dict):
        raise _refuse("invalidProperties", "bodyValues must be an object.", "bodyValues")
    text = _body_text(values, body_values, "textBody")
    html = _body_text(values, body_values, "htmlBody")
    if text and html:
        msg.set_content(text[1])
        msg.add_alternative(html[1], subtype="html")
    elif html:
        msg.set_content(html[1], subtype="html")
    else:
        msg.set_content(text[1] if text else "")
    attachments = values.get("attachments") or []
    if not isinstance(attachments, list) or len(attachments) > 1000:
        raise _refuse("invalidProperties", "attachments must be a list of parts.", "attachments")
    wanted = [a.get("blobId") for a in attachments if isinstance(a, dict)]
    found = blobs.resolve(account_pk, [ctx.resolve_creation_id(b) or "" for b in wanted if isinstance(b, str)])
    total = 0
    for i, part in enumerate(attachments):
        blob_ref = part.get("blobId") if isinstance(part, dict) else None
        view = found.get(ctx.resolve_creation_id(blob_ref) or "") if isinstance(blob_ref, str) else None
        # A part of another email (a forwarded attachment) by its derived blobId.
        data = (store.part_content(account_pk, ctx.resolve_creation_id(blob_ref) or "")
                if view is None and isinstance(blob_ref, str) else None)
        if view is None and data is None:
            raise _refuse("blobNotFound" if isinstance(blob_ref, str) else "invalidProperties",
                          f"attachments/{i}: no such blob.", f"attachments/{i}")
        total += view.blob.size if view is not None else len(data)
        if total > c.MAX_ATTACHMENTS_SIZE:
            raise _refuse("tooLarge", "The attachments exceed maxSizeAttachmentsPerEmail.", "attachments")
        ctype = part.get("type") or "application/octet-stream"
        if not isinstance(ctype, str) or not re.fullmatch(r"[\w.+-]+/[\w.+-]+", ctype):
            raise _refuse("invalidProperties", f"attachments/{i}/type is not a media type.", f"attachments/{i}")
        maintype, subtype = ctype.lower().split("/")
        name = part.get("name")
        if name is not None:
            name = _no_breaks(name, f"attachments/{i}/name")
        disposition = part.get("disposition") or "attachment"
        if disposition not in ("attachment", "inline"):
            raise _refuse("invalidProperties", f"attachments/{i}/disposition is not valid.", f"attachments/{i}")
        cid = part.get("cid")
        if view is not None:
            data = blobs.read(view.blob)
        if maintype == "text":
            text_value, _ = h.decode_bytes(data, part.get("charset") or "utf-8")
            msg.add_attachment(text_value, subtype=subtype, filename=name, disposition=disposition,
                               cid=f"<{_no_breaks(cid, 'cid')}>" if cid else None)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name, disposition=disposition,
                               cid=f"<{_no_breaks(cid, 'cid')}>" if cid else None)
    return msg.as_bytes(policy=email.policy.SMTP)


def _domain(ctx: Context) -> str:
    name = getattr(ctx.principal, "name", "") or ""
    return name.rpartition("@")[2] or "localhost"


def _email_rows(pk: int, ctx: Context, values) -> dict[str, Email | None]:
    asked = c.decode_ids(ctx, values)
    rows = {e.pk: e for e in Email.objects.filter(account_id=pk, pk__in=[v for v in asked.values() if v is not None])
            .defer("meta", "search")}
    return {value: rows.get(epk) for value, epk in asked.items()}


def _merge(into: store.Touched, local: store.Touched) -> None:
    for name in ("emails", "threads", "mailboxes"):
        for kind, listed in getattr(local, name).items():
            getattr(into, name)[kind].extend(listed)


@method("Email/set", c.MAIL, account_optional=False)
def email_set(ctx: Context, args: dict) -> dict:
    pk, create, update, destroy, out = c.begin_set(ctx, args, store.EMAIL)
    old_state = out["oldState"]
    touched = store.Touched()
    for cid, values in create.items():
        local = store.Touched()
        try:
            if not isinstance(values, dict):
                raise _refuse("invalidProperties", "An email must be an object.")
            if "mailboxIds" not in values:
                raise _refuse("invalidProperties", "mailboxIds is required.", "mailboxIds")
            mailbox_pks = _mailbox_map(ctx, values["mailboxIds"])
            keywords = _keywords(values.get("keywords") or {})
            received_at = _received_at(values.get("receivedAt"))
            try:
                raw = build_message(ctx, pk, values, _domain(ctx))
            except (ValueError, TypeError, UnicodeError, email.errors.MessageError) as exc:
                # Python's email package refuses what it cannot write (an address it cannot
                # quote, a header it cannot fold): the client's values, not our failure.
                raise _refuse("invalidProperties", f"The message cannot be built: {str(exc)[:200]}") from None
            with transaction.atomic():
                e = store.store_message(pk, raw, mailbox_pks=mailbox_pks, keywords=keywords,
                                        received_at=received_at, touched=local)
        except store.StoreError as exc:
            out["notCreated"][cid] = exc.to_json()
            continue
        _merge(touched, local)
        eid = ids.encode(e.pk)
        ctx.created_ids[cid] = eid
        out["created"][cid] = {"id": eid, "blobId": e.blob_id, "threadId": ids.encode(e.thread_id), "size": e.size}
    rows = _email_rows(pk, ctx, list(update))
    for value, values in update.items():
        e = rows.get(value)
        if e is None:
            out["notUpdated"][value] = {"type": "notFound", "description": "No such email."}
            continue
        local = store.Touched()
        try:
            with transaction.atomic():
                keywords, mailbox_pks = _patch(ctx, e, values)
                store.update_email(pk, e, keywords=keywords, mailbox_pks=mailbox_pks, touched=local)
        except store.StoreError as exc:
            out["notUpdated"][value] = exc.to_json()
            continue
        _merge(touched, local)
        out["updated"][value] = None
    rows = _email_rows(pk, ctx, destroy)
    gone = []
    for value in destroy:
        e = rows.get(value)
        if e is None or e in gone:
            out["notDestroyed"][value] = {"type": "notFound", "description": "No such email."}
            continue
        gone.append(e)
        out["destroyed"].append(value)
    store.destroy_emails(pk, gone, touched)
    states = touched.record(pk)
    out["newState"] = states.get(store.EMAIL, old_state)
    for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        if not out[key]:
            out[key] = None
    if not out["destroyed"]:
        out["destroyed"] = None
    return out


# --- Email/import -----------------------------------------------------------------------------
@method("Email/import", c.MAIL, account_optional=False)
def email_import(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailImport")
    pk = c.account(ctx, args)
    emails = args.get("emails")
    if not isinstance(emails, dict):
        raise invalid_arguments('"emails" must be an object.')
    if len(emails) > ctx.limits.set_max_objects:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.set_max_objects} emails may be imported at once.")
    old_state = journal.state(pk, store.EMAIL)
    c.check_if_in_state(args, old_state)
    created, not_created = {}, {}
    touched = store.Touched()
    for cid, values in emails.items():
        local = store.Touched()
        try:
            if not isinstance(values, dict):
                raise _refuse("invalidProperties", "An EmailImport must be an object.")
            unknown = set(values) - {"blobId", "mailboxIds", "keywords", "receivedAt"}
            if unknown:
                raise _refuse("invalidProperties", f"Unknown property {sorted(unknown)[0][:100]}.",
                              sorted(unknown)[0])
            blob_id = ctx.resolve_creation_id(values.get("blobId")) if isinstance(values.get("blobId"), str) else None
            if not blob_id:
                raise _refuse("invalidProperties", "blobId is required.", "blobId")
            mailbox_pks = _mailbox_map(ctx, values.get("mailboxIds"))
            keywords = _keywords(values.get("keywords") or {})
            received_at = _received_at(values.get("receivedAt"))
            with transaction.atomic():
                e = store.import_blob(pk, blob_id, mailbox_pks, keywords, received_at, touched=local)
        except store.StoreError as exc:
            not_created[cid] = exc.to_json()
            continue
        _merge(touched, local)
        eid = ids.encode(e.pk)
        ctx.created_ids[cid] = eid
        created[cid] = {"id": eid, "blobId": e.blob_id, "threadId": ids.encode(e.thread_id), "size": e.size}
    states = touched.record(pk)
    return {"accountId": ids.encode(pk), "oldState": old_state, "newState": states.get(store.EMAIL, old_state),
            "created": created or None, "notCreated": not_created or None}


# --- Email/parse ------------------------------------------------------------------------------
@method("Email/parse", c.MAIL, account_optional=False, transactional=False)
def email_parse(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailParse")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "blobIds", 10, required=True)
    props = c.properties(args, PROPERTIES, PARSE_DEFAULT, extra=_is_header_prop)
    if args.get("properties") is not None and "id" not in args["properties"]:
        props = [p for p in props if p != "id"]
    opts = _BodyOptions(args)
    found = blobs.resolve(pk, [ctx.resolve_creation_id(b) or "" for b in wanted])
    parsed, not_parsable, not_found = {}, [], []
    for asked in wanted:
        blob_id = ctx.resolve_creation_id(asked) or ""
        view = found.get(blob_id)
        # An attached message (message/rfc822 part) parses from its derived blob.
        raw = blobs.read(view.blob) if view is not None else store.part_content(pk, blob_id)
        if raw is None:
            not_found.append(asked)
            continue
        meta = mime.parse(raw).as_dict()
        out = {p: None for p in props if p in ("id", "threadId", "mailboxIds", "keywords", "receivedAt")}
        if "blobId" in props:
            out["blobId"] = blob_id
        if "size" in props:
            out["size"] = meta["size"]
        out.update(render(meta, [p for p in props if p not in out], opts, email_id=None, raw_of=lambda raw=raw: raw))
        parsed[asked] = {p: out[p] for p in props if p in out}
    return {"accountId": ids.encode(pk), "parsed": parsed or None, "notParsable": not_parsable or None,
            "notFound": not_found or None}


# --- Email/copy (RFC 8621 §4.7) -------------------------------------------------------------------
@method("Email/copy", c.MAIL, account_optional=False)
def email_copy(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailCopy")
    pk = c.account(ctx, args)
    from_value = args.get("fromAccountId")
    from_pk = ids.decode(from_value) if isinstance(from_value, str) else None
    # Which accounts the caller may read: its own, or any with `impersonate` (as the engine's rule).
    if from_pk is None or (from_value != ctx.account_id and not ctx.principal.has("impersonate")):
        raise MethodError("fromAccountNotFound", "The account to copy from does not exist or is not yours.")
    if from_pk == pk:
        raise invalid_arguments("fromAccountId must differ from accountId.")
    create = args.get("create")
    if not isinstance(create, dict):
        raise invalid_arguments('"create" must be an object.')
    if len(create) > ctx.limits.set_max_objects:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.set_max_objects} emails may be copied at once.")
    destroy_original = c.boolean(args, "onSuccessDestroyOriginal")
    old_state = journal.state(pk, store.EMAIL)
    c.check_if_in_state(args, old_state)
    created, not_created, copied = {}, {}, []
    touched = store.Touched()
    sources = _email_rows(from_pk, ctx, [v.get("id") for v in create.values()
                                         if isinstance(v, dict) and isinstance(v.get("id"), str)])
    for cid, values in create.items():
        local = store.Touched()
        try:
            if not isinstance(values, dict) or not isinstance(values.get("id"), str):
                raise _refuse("invalidProperties", "An EmailCopy needs the id of the email.", "id")
            source = sources.get(values["id"])
            if source is None:
                raise _refuse("notFound", "No such email in the account copied from.")
            mailbox_pks = _mailbox_map(ctx, values.get("mailboxIds"))
            keywords = _keywords(values.get("keywords", source.keywords) or {})
            received_at = _received_at(values.get("receivedAt")) or source.received_at
            with transaction.atomic():
                try:
                    view = blobs.copy(from_pk, pk, source.blob_id, store.OWNER, f"copy:{cid}")
                except blobs.OverQuota as exc:
                    raise _refuse("overQuota", str(exc)) from None
                e = store.import_blob(pk, view.jmap_id, mailbox_pks, keywords, received_at, touched=local)
                blobs.release(pk, view.jmap_id, store.OWNER, f"copy:{cid}")
        except (store.StoreError, blobs.NotFound) as exc:
            not_created[cid] = exc.to_json() if isinstance(exc, store.StoreError) else {"type": "notFound"}
            continue
        _merge(touched, local)
        eid = ids.encode(e.pk)
        ctx.created_ids[cid] = eid
        created[cid] = {"id": eid, "blobId": e.blob_id, "threadId": ids.encode(e.thread_id), "size": e.size}
        copied.append(source)
    states = touched.record(pk)
    out = {"fromAccountId": from_value, "accountId": ids.encode(pk), "oldState": old_state,
           "newState": states.get(store.EMAIL, old_state), "created": created or None,
           "notCreated": not_created or None}
    if destroy_original and copied:
        gone = store.Touched()
        store.destroy_emails(from_pk, copied, gone)
        gone.record(from_pk)
    return out


DERIVED_BLOBS.append(store.part_content)
# Blob/lookup (RFC 9404 §4.3): which emails and threads hold a blob.
def _owner_pks(owners: list[str]) -> list[int]:
    return [int(o) for o in owners if o.isdigit()]


def _threads_of(owners: list[str]) -> list[str]:
    pks = _owner_pks(owners)
    found = dict(Email.objects.filter(pk__in=pks).values_list("pk", "thread_id"))
    return list(dict.fromkeys(ids.encode(found[pk]) for pk in pks if pk in found))


def _mailboxes_of(owners: list[str]) -> list[str]:
    rows = (Membership.objects.filter(email_id__in=_owner_pks(owners)).order_by("mailbox_id")
            .values_list("mailbox_id", flat=True).distinct())
    return [ids.encode(pk) for pk in rows]


blobs.register_data_type("Email", store.OWNER,
                         to_jmap_ids=lambda owners: list(dict.fromkeys(ids.encode(pk) for pk in _owner_pks(owners))))
blobs.register_data_type("Thread", store.OWNER, to_jmap_ids=_threads_of)
blobs.register_data_type("Mailbox", store.OWNER, to_jmap_ids=_mailboxes_of)


