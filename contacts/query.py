"""addressbook-query (RFC 6352 §8.6, §10.5) on the index of searchable properties.

The DAV layer hands over the parsed XML (lxml elements); nothing here parses a vCard:

    flt = parse_filter(report.find("{urn:ietf:params:xml:ns:carddav}filter"))
    limit = parse_limit(report.find("{urn:ietf:params:xml:ns:carddav}limit"))
    got = query(book, flt, limit=limit)       # got.cards, got.truncated (507 for the request URI)
    data = parse_address_data(prop_element)   # version and property selection of address-data

A query is one SQL pre-selection (cards that may match: a superset, from the (book, name)
index and LIKE on the stored values) and an exact evaluation of the filter over the index rows
of those cards, in batches, stopping once the limit is passed.

Semantics, where RFC 6352 leaves room (those of SabreDAV, which most clients were tested on):
a text-match of a prop-filter matches when any instance of the property matches it (with
negate-condition: when any instance does not); a prop-filter with tests never matches a card
without the property; a param-filter reads the parameter on any instance; an empty filter
matches every card. A list property (CATEGORIES, NICKNAME) is matched item by item; a
structured one (N, ADR, ORG) as its components joined by ";".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from operator import and_, or_

from django.conf import settings
from django.db.models import Q

from . import vcard
from .models import Card, CardProperty

CARDDAV = "urn:ietf:params:xml:ns:carddav"
COLLATIONS = ("i;unicode-casemap", "i;ascii-casemap", "i;octet")
MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")
MAX_PROP_FILTERS = 50
MAX_TESTS = 20  # text-matches plus param-filters in one prop-filter
MAX_TEXT = 1000
BATCH = 500


class QueryError(Exception):
    """A refused query: `condition` is the CardDAV precondition element (supported-filter,
    supported-collation, supported-address-data-conversion), or None for a plain 400."""

    def __init__(self, condition: str | None, message: str):
        super().__init__(message)
        self.condition, self.message = condition, message


@dataclass
class TextMatch:
    text: str
    collation: str = "i;unicode-casemap"
    match_type: str = "contains"
    negate: bool = False

    def __post_init__(self):
        self.needle = normalise(self.collation, self.text)

    def test(self, value: str, folded: str | None = None) -> bool:
        if self.collation == "i;unicode-casemap" and folded is not None:
            candidate = folded
        else:
            candidate = normalise(self.collation, value)
        if self.match_type == "equals":
            hit = candidate == self.needle
        elif self.match_type == "starts-with":
            hit = candidate.startswith(self.needle)
        elif self.match_type == "ends-with":
            hit = candidate.endswith(self.needle)
        else:
            hit = self.needle in candidate
        return hit != self.negate


@dataclass
class ParamFilter:
    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass
class PropFilter:
    name: str
    group: str | None = None
    test: str = "anyof"
    is_not_defined: bool = False
    text_matches: list[TextMatch] = field(default_factory=list)
    param_filters: list[ParamFilter] = field(default_factory=list)


@dataclass
class Filter:
    test: str = "anyof"
    props: list[PropFilter] = field(default_factory=list)


@dataclass
class AddressData:
    """What an address-data element asks for: a version (None: as stored) and properties
    (None: all), as contacts.services.card_text takes them."""

    version: str | None = None
    props: list[tuple[str, bool]] | None = None


@dataclass
class QueryResult:
    cards: list[Card]
    truncated: bool = False


def normalise(collation: str, text: str) -> str:
    if collation == "i;unicode-casemap":
        return vcard.fold(text)
    if collation == "i;ascii-casemap":
        return vcard.ascii_fold(text)
    return text


# --- parsing the XML -----------------------------------------------------------------------
def _cr(local: str) -> str:
    return f"{{{CARDDAV}}}{local}"


def _children(element):
    """Element children; comments and processing instructions skipped, and elements of other
    namespaces too (RFC 4918 §17: unknown elements are ignored)."""
    for child in element:
        if isinstance(child.tag, str) and child.tag.startswith(f"{{{CARDDAV}}}"):
            yield child


def _test_attr(element) -> str:
    test = element.get("test", "anyof")
    if test not in ("anyof", "allof"):
        raise QueryError("supported-filter", f"test is anyof or allof, not {test[:20]!r}.")
    return test


def parse_filter(element) -> Filter:
    """A CR:filter element as a Filter; QueryError for what is refused."""
    if element is None:
        raise QueryError(None, "An addressbook-query has a filter.")
    if element.tag != _cr("filter"):
        raise QueryError(None, "That is not a CardDAV filter element.")
    out = Filter(test=_test_attr(element))
    for child in _children(element):
        if child.tag != _cr("prop-filter"):
            raise QueryError("supported-filter", f"A filter holds prop-filters, not {child.tag[:80]}.")
        out.props.append(_prop_filter(child))
        if len(out.props) > MAX_PROP_FILTERS:
            raise QueryError("supported-filter", f"A filter holds at most {MAX_PROP_FILTERS} prop-filters.")
    return out


def _name(element) -> str:
    name = element.get("name")
    if not name or len(name) > vcard.MAX_NAME * 2 + 1 or "\0" in name:
        raise QueryError("supported-filter", "A prop-filter or param-filter has a name.")
    return name.upper()


def _prop_filter(element) -> PropFilter:
    name = _name(element)
    group = None
    if "." in name:
        group, name = name.split(".", 1)
    out = PropFilter(name=name, group=group, test=_test_attr(element))
    for child in _children(element):
        local = child.tag.split("}", 1)[1]
        if local == "is-not-defined":
            out.is_not_defined = True
        elif local == "text-match":
            out.text_matches.append(_text_match(child))
        elif local == "param-filter":
            out.param_filters.append(_param_filter(child))
        else:
            raise QueryError("supported-filter", f"A prop-filter does not hold {local[:40]}.")
    if out.is_not_defined and (out.text_matches or out.param_filters):
        raise QueryError("supported-filter", "is-not-defined stands alone in its prop-filter.")
    if len(out.text_matches) + len(out.param_filters) > MAX_TESTS:
        raise QueryError("supported-filter", f"A prop-filter holds at most {MAX_TESTS} tests.")
    return out


def _param_filter(element) -> ParamFilter:
    out = ParamFilter(name=_name(element))
    for child in _children(element):
        local = child.tag.split("}", 1)[1]
        if local == "is-not-defined" and out.text_match is None:
            out.is_not_defined = True
        elif local == "text-match" and out.text_match is None and not out.is_not_defined:
            out.text_match = _text_match(child)
        else:
            raise QueryError("supported-filter", "A param-filter holds one is-not-defined or one text-match.")
    return out


def _text_match(element) -> TextMatch:
    collation = element.get("collation", "i;unicode-casemap")
    if collation not in COLLATIONS:
        raise QueryError("supported-collation", f"The collation {collation[:40]!r} is not supported.")
    match_type = element.get("match-type", "contains")
    if match_type not in MATCH_TYPES:
        raise QueryError("supported-filter", f"The match-type {match_type[:20]!r} is not supported.")
    negate = element.get("negate-condition", "no")
    if negate not in ("yes", "no"):
        raise QueryError("supported-filter", "negate-condition is yes or no.")
    text = element.text or ""
    if len(text) > MAX_TEXT or "\0" in text:
        raise QueryError("supported-filter", f"A text-match holds at most {MAX_TEXT} characters.")
    return TextMatch(text=text, collation=collation, match_type=match_type, negate=negate == "yes")


def parse_limit(element) -> int | None:
    """CR:limit/CR:nresults as a positive integer (None without a limit element)."""
    if element is None:
        return None
    nresults = element.find(_cr("nresults"))
    text = (nresults.text or "").strip() if nresults is not None else ""
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise QueryError(None, "nresults is a positive integer.")
    return int(text)


def parse_address_data(element) -> AddressData:
    """A CR:address-data element of a request (RFC 6352 §10.4)."""
    if element is None:
        return AddressData()
    content_type = element.get("content-type", "text/vcard")
    version = element.get("version")
    if content_type.strip().lower() != "text/vcard" or (version is not None and version not in vcard.VERSIONS):
        raise QueryError("supported-address-data-conversion",
                         "Address data is served as text/vcard, version 3.0 or 4.0.")
    out = AddressData(version=version)
    for child in _children(element):
        local = child.tag.split("}", 1)[1]
        if local == "allprop":
            out.props = None
            return out
        if local == "prop":
            name = child.get("name")
            if not name or len(name) > vcard.MAX_NAME:
                raise QueryError(None, "A prop of address-data has a name.")
            novalue = child.get("novalue", "no")
            if novalue not in ("yes", "no"):
                raise QueryError(None, "novalue is yes or no.")
            out.props = (out.props or []) + [(name.upper(), novalue == "yes")]
    return out


# --- evaluation ----------------------------------------------------------------------------
Row = tuple  # (name, group, value, folded, params)


def matches(flt: Filter, rows: list[Row]) -> bool:
    """Whether a card with these index rows matches the filter."""
    if not flt.props:
        return True
    results = (_prop_matches(pf, rows) for pf in flt.props)
    return any(results) if flt.test == "anyof" else all(results)


def _prop_matches(pf: PropFilter, rows: list[Row]) -> bool:
    props = [row for row in rows if row[0] == pf.name and (pf.group is None or row[1] == pf.group)]
    if pf.is_not_defined:
        return not props
    if not pf.text_matches and not pf.param_filters:
        return bool(props)
    if not props:
        return False
    results = [any(tm.test(row[2], row[3]) for row in props) for tm in pf.text_matches]
    results += [_param_matches(pfl, props) for pfl in pf.param_filters]
    return any(results) if pf.test == "anyof" else all(results)


def _param_matches(pf: ParamFilter, props: list[Row]) -> bool:
    values = [value for row in props for value in row[4].get(pf.name, ())]
    defined = any(pf.name in row[4] for row in props)
    if pf.is_not_defined:
        return not defined
    if pf.text_match is None:
        return defined
    return any(pf.text_match.test(value) for value in values)


def _rows_q(book, pf: PropFilter, extra: Q | None = None) -> Q:
    rows = CardProperty.objects.filter(book=book, name=pf.name)
    if pf.group is not None:
        rows = rows.filter(group=pf.group)
    if extra is not None:
        rows = rows.filter(extra)
    return Q(pk__in=rows.values("card_id"))


def _text_q(tm: TextMatch) -> Q | None:
    """Rows a text-match may hold for; None where SQL cannot narrow it (negated, ASCII case map)."""
    if tm.negate or tm.collation == "i;ascii-casemap":
        return None
    column = "folded" if tm.collation == "i;unicode-casemap" else "value"
    lookup = {"equals": "", "contains": "__contains", "starts-with": "__startswith", "ends-with": "__endswith"}
    return Q(**{f"{column}{lookup[tm.match_type]}": tm.needle})


def _preselect_prop(book, pf: PropFilter) -> Q | None:
    """Cards the prop-filter may match (a superset); None: any card may."""
    if pf.is_not_defined:
        return None
    texts = [_text_q(tm) for tm in pf.text_matches]
    if pf.test == "allof":
        narrowed = [_rows_q(book, pf, q) for q in texts if q is not None]
        return reduce(and_, narrowed) if narrowed else _rows_q(book, pf)
    if texts and not pf.param_filters and all(q is not None for q in texts):
        return _rows_q(book, pf, reduce(or_, texts))
    return _rows_q(book, pf)


def _preselect(book, flt: Filter) -> Q | None:
    parts = [_preselect_prop(book, pf) for pf in flt.props]
    if flt.test == "anyof":
        return None if not parts or any(p is None for p in parts) else reduce(or_, parts)
    kept = [p for p in parts if p is not None]
    return reduce(and_, kept) if kept else None


def query(book, flt: Filter, *, limit: int | None = None, with_data: bool = False) -> QueryResult:
    """The cards of `book` that match, by name; at most min(limit, CONTACTS_MAX_RESULTS), with
    `truncated` when more match. Without `with_data` the cards' text is not loaded."""
    cap = settings.CONTACTS_MAX_RESULTS if limit is None else min(limit, settings.CONTACTS_MAX_RESULTS)
    cards = Card.objects.filter(book=book)
    narrowed = _preselect(book, flt)
    if narrowed is not None:
        cards = cards.filter(narrowed)
    if not flt.props:
        matched = list(cards.order_by("name").values_list("pk", flat=True)[:cap + 1])
    else:
        candidates = list(cards.order_by("name").values_list("pk", flat=True))
        # Only the rows of the properties the filter names are read: a card's others (its
        # photo's row, its notes) cannot change the answer.
        names = sorted({pf.name for pf in flt.props})
        matched = []
        for start in range(0, len(candidates), BATCH):
            batch = candidates[start:start + BATCH]
            rows: dict[int, list[Row]] = {pk: [] for pk in batch}
            for card_id, *row in (CardProperty.objects.filter(card_id__in=batch, name__in=names)
                                  .values_list("card_id", "name", "group", "value", "folded", "params")):
                rows[card_id].append(tuple(row))
            matched.extend(pk for pk in batch if matches(flt, rows[pk]))
            if len(matched) > cap:
                break
    truncated = len(matched) > cap
    matched = matched[:cap]
    if not matched:
        return QueryResult([], truncated)
    found = Card.objects.filter(pk__in=matched).order_by("name")
    if not with_data:
        found = found.defer("data")
    return QueryResult(list(found), truncated)
