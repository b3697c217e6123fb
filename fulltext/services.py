"""Full-text search: the one interface every store calls. No protocol here.

    index(account_id, kind, doc_id, fields)      # in the store's transaction; replaces
    add(account_id, kind, doc_id, prepare(fields))  # the same in two steps, the words split first
    delete(account_id, kind, doc_ids)
    purge(account_id)                             # an account's every document
    q(account_id, kind, query, field="pk") -> Q   # combine with the caller's own ORM filter
    search(account_id, kind, query) -> set[int]
    snippets(account_id, kind, doc_ids, query) -> {doc_id: {"subject", "preview"}}

`kind` names the caller's collection ("email"); `doc_id` is the caller's integer id. The query
is a tree of `text.Match(field, text)`, `text.And(...)`, `text.Or(...)`, `text.Not(...)`. See
docs/mail.md, "Full-text search".
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass

from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, Value
from django.db.models.expressions import RawSQL

from stalwart_site.inserts import Insert
from stalwart_site.sqlparams import in_slices

from . import text
from .models import Document
from .text import ANY, FIELDS, And, Match, Not, Or, TooComplex  # noqa: F401  (the interface)

PREVIEW_OCTETS = 255
# On SQLite, a condition with at least sqrt(SQLITE_DENSE × documents of the account) matches is
# tested per document in the caller's order rather than listed in full (see q()). Measured at
# 100,000 messages: listing costs about 6.5 µs per match (FTS5 rows, the join, the sort), a
# probe about 180 µs (FTS5 starts the expression again) and a first page needs 50 / density of
# them; the two meet near sqrt(1400 × N), where either costs about 75 ms at N = 100,000.
SQLITE_DENSE = 1400  # RFC 8621 §5: a preview is at most 255 octets
# PostgreSQL's crossing point (see _pg_q): SQLite's, not measured apart.
PG_DENSE = 1400
_FTS5_COLUMNS = ", ".join(column for _, column in FIELDS.values())
_FTS5_INSERT = f"INSERT OR REPLACE INTO fulltext_fts (rowid, {_FTS5_COLUMNS}) VALUES (%s{', %s' * len(FIELDS)})"


def _clean(fields: dict) -> dict:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown full-text fields: {sorted(unknown)}")
    return {name: _storable(value) for name, value in fields.items() if value}


def _storable(value: str) -> str:
    """A broken message's NUL or lone surrogate would be refused by PostgreSQL's jsonb (and is
    no word): a space and U+FFFD instead."""
    if not isinstance(value, str):
        raise TypeError("full-text fields are strings")
    if "\x00" in value:
        value = value.replace("\x00", " ")
    if not value.isascii():
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _kind(kind: str) -> str:
    if not isinstance(kind, str) or not 0 < len(kind) <= Document._meta.get_field("kind").max_length:
        raise ValueError(f"bad full-text kind {kind!r}")
    return kind


def index(account_id: int, kind: str, doc_id: int, fields: dict[str, str], *, new: bool = False) -> None:
    """Index (or re-index: the old words go) one document. Call it inside the transaction that
    stores the document, with the text the parser computed (`ParsedMessage.search`). `new`: the
    document was created in this transaction, so its row is inserted without looking for an
    old one first (should one exist after all, the unique constraint sends it the usual way)."""
    kind = _kind(kind)
    fields = _clean(fields)
    vector = None if connection.vendor == "sqlite" else text.pg_tsvector(fields)
    for attempt in range(2):
        try:
            with transaction.atomic():
                _index(account_id, kind, doc_id, fields, vector, new=new and not attempt)
            return
        except IntegrityError:
            # A concurrent first index of the same document won the unique constraint: this
            # one becomes the update (the savepoint keeps the caller's transaction usable).
            if attempt:
                raise


@dataclass(frozen=True)
class Prepared:
    """A document's fields checked and its words split (`prepare()`), ready for `add()`."""
    fields: dict
    vector: str | None
    fts5: list | None


def prepare(fields: dict[str, str]) -> Prepared:
    """The CPU work of indexing, which needs no database: a caller that holds a write
    transaction (delivery) does it before, so that the lock is held for the writes alone."""
    fields = _clean(fields)
    if connection.vendor == "sqlite":
        return Prepared(fields, None, text.fts5_row(fields))
    return Prepared(fields, text.pg_tsvector(fields), None)


_DOCUMENT_ROW = Insert(Document, ["account_id", "kind", "doc_id", "fields", "vector"],
                       conflict=["account_id", "kind", "doc_id"], update=["fields", "vector"], returning=["id"])


def add(account_id: int, kind: str, doc_id: int, prepared: Prepared) -> None:
    """Index one document (replacing an older version, if any) in the caller's transaction,
    without a savepoint: an INSERT … ON CONFLICT DO UPDATE (a concurrent first index of the
    same document waits for the other and then replaces it), and on SQLite its FTS5 row. Two
    statements on SQLite, one on PostgreSQL."""
    ((row,),) = _DOCUMENT_ROW.run([(account_id, _kind(kind), doc_id, prepared.fields, prepared.vector)])
    if prepared.fts5 is not None:
        with connection.cursor() as cursor:
            cursor.execute(_FTS5_INSERT, [row, *prepared.fts5])


def _index(account_id, kind, doc_id, fields, vector, new=False):
    found = Document.objects.filter(account_id=account_id, kind=kind, doc_id=doc_id)
    row = None if new else found.values_list("id", flat=True).first()
    if row is None:
        row = Document.objects.create(account_id=account_id, kind=kind, doc_id=doc_id,
                                      fields=fields, vector=vector).id
    else:
        Document.objects.filter(id=row).update(fields=fields, vector=vector)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            # FTS5 takes OR REPLACE on the rowid: the old words go in the same statement.
            cursor.execute(_FTS5_INSERT, [row, *text.fts5_row(fields)])


def index_many(account_id: int, kind: str, docs: list[tuple[int, dict]]) -> None:
    """Index many new documents at once (imports, rebuilds): ids that are indexed already are
    re-indexed one by one."""
    kind = _kind(kind)
    # One document given twice: the last one counts, as with index() called in turn.
    docs = list({doc_id: _clean(fields) for doc_id, fields in docs}.items())
    sqlite = connection.vendor == "sqlite"
    with transaction.atomic():
        known = set(Document.objects.filter(account_id=account_id, kind=kind,
                                            doc_id__in=[d for d, _ in docs]).values_list("doc_id", flat=True))
        fresh = [(d, f) for d, f in docs if d not in known]
        rows = Document.objects.bulk_create([
            Document(account_id=account_id, kind=kind, doc_id=d, fields=f,
                     vector=None if sqlite else text.pg_tsvector(f)) for d, f in fresh])
        if sqlite and rows:
            if rows[0].id is None:  # bulk_create sets ids on SQLite ≥ 3.35 (RETURNING)
                ids = dict(Document.objects.filter(account_id=account_id, kind=kind, doc_id__in=[d for d, _ in fresh])
                           .values_list("doc_id", "id"))
            else:
                ids = {r.doc_id: r.id for r in rows}
            with connection.cursor() as cursor:
                cursor.executemany(_FTS5_INSERT, [[ids[d], *text.fts5_row(f)] for d, f in fresh])
        for d, f in docs:
            if d in known:
                index(account_id, kind, d, f)


def _drop(documents) -> None:
    """Delete a queryset of Documents and, on SQLite, their FTS5 rows (one statement each)."""
    if connection.vendor == "sqlite":
        sql, params = documents.values("id").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM fulltext_fts WHERE rowid IN ({sql})", params)
    documents.delete()


def delete(account_id: int, kind: str, doc_ids) -> None:
    """Forget documents (ids of other accounts or never indexed are ignored)."""
    doc_ids = list(doc_ids)
    with transaction.atomic():
        for some in in_slices(doc_ids):
            _drop(Document.objects.filter(account_id=account_id, kind=kind, doc_id__in=some))


def purge(account_id: int) -> None:
    """Forget every document of an account (the account is being deleted)."""
    with transaction.atomic():
        _drop(Document.objects.filter(account_id=account_id))


class _Fts5Probe(Func):
    """`EXISTS` of one document's row among an FTS5 expression's matches: FTS5 seeks the rowid
    in its doclists, so the cost is per document tested, not per document matching."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra):
        rowid, rowid_params = compiler.compile(self.source_expressions[0])
        match, match_params = compiler.compile(self.source_expressions[1])
        return (f"EXISTS (SELECT 1 FROM fulltext_fts WHERE fulltext_fts MATCH {match} "
                f"AND fulltext_fts.rowid = {rowid})", [*match_params, *rowid_params])


def _dense(expression: str, threshold: int) -> bool:
    """Whether at least `threshold` documents match (counting stops there). FTS5 counts its
    own rows fast (about 1 ms for 12,000); joining each to its account would cost 20 times
    more, so the estimate is over the whole index, like the threshold's size."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM fulltext_fts WHERE fulltext_fts MATCH %s LIMIT %s)",
                       [expression, threshold])
        return cursor.fetchone()[0] >= threshold


def _index_size() -> int:
    """The FTS5 table's highest rowid: about the number of documents, read from the end of
    its b-tree (a count(*) of an account's documents costs 14 ms at 100,000)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(rowid) FROM fulltext_fts")
        return cursor.fetchone()[0] or 0


def _condition(node, dense=None) -> Q:
    """The tree as a filter on Document. On SQLite, `dense` (leaf -> bool) turns the leaves
    that match many documents into per-document probes instead of lists of every match."""
    if isinstance(node, And):
        out = Q()
        for item in node.items:
            out &= _condition(item, dense)
        return out
    if isinstance(node, Or):
        if not node.items:
            return Q(pk__in=[])
        out = _condition(node.items[0], dense)
        for item in node.items[1:]:
            out |= _condition(item, dense)
        return out
    if isinstance(node, Not):
        return ~_condition(node.item, dense)
    if connection.vendor == "sqlite":
        expression = text.fts5_match(node)
        if expression is None:
            return Q(pk__in=[])
        if dense and dense.get(node):
            return Q(_Fts5Probe(F("id"), Value(expression)))
        return Q(pk__in=RawSQL("SELECT rowid FROM fulltext_fts WHERE fulltext_fts MATCH %s", [expression]))
    expression = text.pg_tsquery(node)
    if expression is None:
        return Q(pk__in=[])
    return Q(vector__tsmatch=expression)


def matching(account_id: int, kind: str, query):
    """The ids of the account's documents that match, as a query not yet run (a subquery)."""
    text.check(query)
    return (Document.objects.filter(account_id=account_id, kind=kind)
            .filter(_condition(query)).values("doc_id"))


def _estimate(node, dense: dict) -> bool:
    """Whether the tree matches many documents (by its leaves' probes)."""
    if isinstance(node, And):
        return all(_estimate(item, dense) for item in node.items)
    if isinstance(node, Or):
        return any(_estimate(item, dense) for item in node.items)
    if isinstance(node, Not):
        return not _estimate(node.item, dense)
    return dense.get(node, False)


def q(account_id: int, kind: str, query, field: str = "pk") -> Q:
    """A filter for the caller's own model: `Email.objects.filter(account=…).filter(q(…))
    .order_by("-received_at")[:50]` filters, sorts and pages in one SQL query.

    On SQLite, which keeps no statistics on FTS5 matches, each condition's matches are counted
    up to a threshold that grows with the index (see SQLITE_DENSE): a query that matches many
    documents becomes a correlated EXISTS, so that the caller's sorted index drives and the
    first page stops early; one that matches few stays a list of its matches. PostgreSQL's
    planner decides that alone from its statistics.

    Raises TooComplex (answer `unsupportedFilter`) before any SQL is run."""
    text.check(query)
    if connection.vendor != "sqlite":
        return _pg_q(account_id, kind, query, field)
    documents = Document.objects.filter(account_id=account_id, kind=kind)
    threshold = int(math.sqrt(SQLITE_DENSE * _index_size()))
    dense, stack = {}, [query]
    while stack:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack.extend(node.items)
        elif isinstance(node, Not):
            stack.append(node.item)
        elif node not in dense:
            expression = text.fts5_match(node)
            dense[node] = expression is not None and _dense(expression, threshold)
    condition = _condition(query, dense)
    if _estimate(query, dense):
        return Q(Exists(documents.filter(doc_id=OuterRef(field)).filter(condition)))
    return Q(**{f"{field}__in": documents.filter(condition).values("doc_id")})


def _pg_q(account_id: int, kind: str, query, field: str) -> Q:
    """PostgreSQL: the planner's own estimate of the matches decides the form, as SQLite's
    count does. With fewer than sqrt(PG_DENSE × documents), the matches are listed from the GIN
    index behind an `OFFSET 0` fence, so that the planner cannot turn the list into a test of
    each of the caller's rows in date order (each test reads that row's vector; the planner's
    model does not see the cost): the cost is bounded by the matches, wherever they fall in
    the mailbox. With more, the plain subquery lets it walk the caller's sorted index and test
    rows until the page is full, the fast plan for a frequent word. Figures in
    docs/performance.md, "Mail at 100,000 messages"."""
    documents = matching(account_id, kind, query)
    try:
        sql, params = documents.query.sql_with_params()
    except EmptyResultSet:  # a tree that can match nothing ("!!", an empty OR)
        return Q(**{f"{field}__in": []})
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        estimate = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]["Plan Rows"]
    if estimate < math.sqrt(PG_DENSE * max(_pg_documents(), 1)):
        return Q(**{f"{field}__in": RawSQL(f"{sql} OFFSET 0", params)})
    return Q(**{f"{field}__in": documents})


def _pg_documents() -> int:
    """The planner's count of indexed documents (pg_class.reltuples: no scan)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'fulltext_document'::regclass")
        row = cursor.fetchone()
    return max(row[0], 0) if row else 0


def search(account_id: int, kind: str, query) -> set[int]:
    return set(matching(account_id, kind, query).values_list("doc_id", flat=True))


# --- Snippets ---------------------------------------------------------------------------------

class _Marker:
    """Which words to highlight: those of the query's positive conditions on a field."""

    def __init__(self, found: list):
        self.words = {w for g in found for w in (g.words[:-1] if g.prefix else g.words)}
        self.prefixes = tuple(g.words[-1] for g in found if g.prefix)

    def __bool__(self):
        return bool(self.words or self.prefixes)

    def hits(self, value: str):
        """(start, end) of each word to highlight, merged where they touch or only spaces part them."""
        out = []
        for start, end, w in text.spans(value):
            if w in self.words or (self.prefixes and w.startswith(self.prefixes)):
                if out and out[-1][1] >= start:
                    out[-1] = (out[-1][0], max(end, out[-1][1]))
                else:
                    out.append((start, end))
        return out


def _marked(value: str, hits, budget: int | None = None) -> str:
    """`value` HTML-escaped with <mark> around each hit; within `budget` octets if given."""
    out, size, pos = [], 0, 0
    pieces = []
    for start, end in hits:
        pieces.append((value[pos:start], False))
        pieces.append((value[start:end], True))
        pos = end
    pieces.append((value[pos:], False))
    for piece, mark in pieces:
        if not piece:
            continue
        escaped = html.escape(piece, quote=False)
        cost = len(escaped.encode()) + (13 if mark else 0)
        if budget is not None and size + cost > budget:
            if mark:
                break
            # The plain text is cut where it still fits, never inside a character or an entity.
            for ch in piece:
                e = html.escape(ch, quote=False)
                if size + len(e.encode()) > budget:
                    break
                out.append(e)
                size += len(e.encode())
            break
        out.append(f"<mark>{escaped}</mark>" if mark else escaped)
        size += cost
    return "".join(out)


def _preview(body: str, marker: _Marker) -> str | None:
    """The part of the body around its first match, whitespace collapsed."""
    first = marker.hits(body[:text.MAX_SEARCH_SCAN]) if body else []
    if not first:
        return None
    start = first[0][0]
    # A few words of context before the match, cut at a word boundary.
    lead = body.rfind(" ", 0, max(0, start - 40)) + 1 if start > 60 else 0
    window = " ".join(body[lead:start + 800].split())
    hits = marker.hits(window)
    if not hits:
        return None
    return _marked(window, hits, PREVIEW_OCTETS)


def snippets(account_id: int, kind: str, doc_ids, query) -> dict[int, dict]:
    """RFC 8621 §5 for each indexed document of the account among `doc_ids` (one SQL query):
    `subject` is the whole subject with its matches in <mark>, `preview` at most 255 octets of
    the body around the first match; each is HTML-escaped, and None where nothing matched.
    Ids that are not the account's are absent from the answer (the caller says notFound)."""
    text.check(query)
    subject_marker = _Marker(text.positive(query, "subject"))
    body_marker = _Marker(text.positive(query, "body"))
    out = {}
    rows = Document.objects.filter(account_id=account_id, kind=kind, doc_id__in=list(doc_ids))
    for doc_id, fields in rows.values_list("doc_id", "fields"):
        subject, body = fields.get("subject") or "", fields.get("body") or ""
        hits = subject_marker.hits(subject) if subject_marker and subject else []
        out[doc_id] = {
            "subject": _marked(subject, hits) if hits else None,
            "preview": _preview(body, body_marker) if body_marker else None,
        }
    return out


def snippet(account_id: int, kind: str, doc_id: int, query) -> dict | None:
    return snippets(account_id, kind, [doc_id], query).get(doc_id)
