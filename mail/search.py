"""The one seam between Email/query's text filters (RFC 8621 §4.4.1: text, from, to, cc, bcc,
subject, body) and the full-text index (`fulltext`).

`text_condition()` is a Q over the caller's rows: the index's subquery (or, on SQLite, a
correlated probe) joined on `field_ref`, so filter, sort and page stay one SQL statement.
The store feeds the index (`store.store_message`, `store.destroy_emails`; `apps` purges a
deleted account).
"""
from __future__ import annotations

from django.db.models import Q

from fulltext import services as ft

KIND = "email"
FIELDS = ("from", "to", "cc", "bcc", "subject", "body")
TooComplex = ft.TooComplex


def text_condition(account_id: int, field: str, value: str, field_ref: str = "pk") -> Q:
    """Emails of `account_id` whose `field` ("text" for any of FIELDS and attachment names)
    matches `value`. Raises TooComplex (the JMAP face answers unsupportedFilter)."""
    return ft.q(account_id, KIND, ft.Match(field, value), field=field_ref)


class Leaf(tuple):
    """The (field, value) text conditions of one FilterCondition (SearchSnippet/get)."""


def snippet_query(tree):
    """A validated filter (`jmap_common.walk_filter` over Leafs; None for no filter) as one
    full-text query tree: RFC 8621 §5 highlights what the filter's text conditions match."""
    if tree is None:
        return ft.And()
    if isinstance(tree, Leaf):
        return ft.And(*(ft.Match(field, value) for field, value in tree))
    op, children = tree
    items = [snippet_query(child) for child in children]
    if op == "AND":
        return ft.And(*items)
    if op == "OR":
        return ft.Or(*items)
    return ft.Not(ft.Or(*items))


def snippets(account_id: int, email_pks, query) -> dict[int, dict]:
    """{email pk: {"subject", "preview"}} for the account's indexed emails among `email_pks`."""
    return ft.snippets(account_id, KIND, email_pks, query)
