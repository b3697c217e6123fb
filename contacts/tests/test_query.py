"""addressbook-query filters on the index, checked against a naive evaluation that reads each
vCard's text directly (no index, no SQL), with query counts, limits, the refusals of RFC 6352
§8.6 and the attacker's view."""
from __future__ import annotations

import random
import re
import unicodedata

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from lxml import etree

from contacts import query, services

from .conftest import STORABLE, card_bytes, simple_card

pytestmark = pytest.mark.django_db
CR = "urn:ietf:params:xml:ns:carddav"


# --- the naive evaluation ------------------------------------------------------------------

def _naive_lines(text: str):
    text = re.sub(r"\r?\n[ \t]", "", text)
    for raw in text.splitlines():
        if not raw or raw.upper().startswith(("BEGIN:", "END:", "VERSION:")):
            continue
        quoted, cut = False, len(raw)
        for i, ch in enumerate(raw):
            if ch == '"':
                quoted = not quoted
            elif ch == ":" and not quoted:
                cut = i
                break
        head, value = raw[:cut], raw[cut + 1:]
        parts = head.split(";")
        group, _, name = parts[0].rpartition(".")
        params = {}
        for part in parts[1:]:
            key, eq, values = part.partition("=")
            if eq:
                params.setdefault(key.upper(), []).extend(v.strip('"') for v in values.split(","))
            else:
                params.setdefault("TYPE", []).append(key)
        yield name.upper(), group.upper(), value, params


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _naive_values(name: str, value: str, params: dict) -> list[str]:
    if name in ("PHOTO", "LOGO", "SOUND", "KEY") or value.startswith("data:") or "b" in [
            e.lower() for e in params.get("ENCODING", [])]:
        return [""]
    if name in ("CATEGORIES", "NICKNAME"):
        return [_unescape(v) for v in re.split(r"(?<!\\),", value)]
    return [_unescape(value)]


def _collate(collation: str, text: str) -> str:
    if collation == "i;octet":
        return text
    if collation == "i;ascii-casemap":
        return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())


def _text_ok(tm, value: str) -> bool:
    collation = tm.get("collation", "i;unicode-casemap")
    needle, hay = _collate(collation, tm.text or ""), _collate(collation, value)
    kind = tm.get("match-type", "contains")
    hit = {"equals": hay == needle, "contains": needle in hay, "starts-with": hay.startswith(needle),
           "ends-with": hay.endswith(needle)}[kind]
    return hit != (tm.get("negate-condition") == "yes")


def _naive_prop(pf, lines) -> bool:
    group, _, name = pf.get("name").upper().rpartition(".")
    props = [(v, p) for n, g, v, p in lines if n == name and (not group or g == group)]
    kids = [c for c in pf if isinstance(c.tag, str)]
    if any(c.tag == f"{{{CR}}}is-not-defined" for c in kids):
        return not props
    if not kids:
        return bool(props)
    if not props:
        return False
    results = []
    for child in kids:
        if child.tag == f"{{{CR}}}text-match":
            results.append(any(_text_ok(child, text) for value, params in props
                               for text in _naive_values(name, value, params)))
        elif child.tag == f"{{{CR}}}param-filter":
            pname = child.get("name").upper()
            values = [v for _, params in props for v in params.get(pname, [])]
            inner = [c for c in child if isinstance(c.tag, str)]
            if inner and inner[0].tag == f"{{{CR}}}is-not-defined":
                results.append(not any(pname in params for _, params in props))
            elif inner:
                results.append(any(_text_ok(inner[0], v) for v in values))
            else:
                results.append(any(pname in params for _, params in props))
    return any(results) if pf.get("test", "anyof") == "anyof" else all(results)


def naive(flt, texts: dict[str, str]) -> list[str]:
    out = []
    for name, text in sorted(texts.items()):
        lines = list(_naive_lines(text))
        pfs = [c for c in flt if isinstance(c.tag, str) and c.tag == f"{{{CR}}}prop-filter"]
        results = [_naive_prop(pf, lines) for pf in pfs]
        if not pfs or (any(results) if flt.get("test", "anyof") == "anyof" else all(results)):
            out.append(name)
    return out


# --- the data ------------------------------------------------------------------------------

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Émile", "Fatima", "Günther", "Hana", "Ивана", "Jörg", "Kai", "Lúcia"]
LAST = ["Straße", "STRASSE", "Smith", "smith", "O'Brien", "García", "Nguyễn", "Müller", "Mueller", "Li", "50%_off"]
TAGS = ["Work", "work", "Friends", "VIP", "Family", "Golf"]


def _generated(rng: random.Random, i: int) -> bytes:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    extra = f"N:{last};{first};;;\r\n"
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["work", "home", "WORK", "INTERNET"])
        extra += f"EMAIL;TYPE={kind}:{first.lower()}.{i}@{rng.choice(['example.org', 'Example.COM', 'corp.example'])}\r\n"
    if rng.random() < 0.7:
        extra += f"TEL;TYPE={rng.choice(['cell', 'work,voice', 'home'])}:+1 555 {rng.randint(1000, 9999)}\r\n"
    if rng.random() < 0.5:
        extra += "CATEGORIES:" + ",".join(rng.sample(TAGS, rng.randint(1, 3))) + "\r\n"
    if rng.random() < 0.3:
        extra += f"ORG:{rng.choice(['Acme', 'ACME Corp', 'Initech', 'Umbrella'])};Sales\r\n"
    if rng.random() < 0.2:
        extra += f"item1.EMAIL:{first.lower()}@grouped.example\r\nitem1.X-ABLabel:Other\r\n"
    version = rng.choice(["3.0", "4.0"])
    return simple_card(f"gen-{i}", f"{first} {last}", extra, version)


@pytest.fixture
def book_and_texts(alice):
    book = services.default_book(alice.pk)
    texts = {}
    for name in STORABLE:
        services.put_card(book, name, card_bytes(name))
        texts[name] = card_bytes(name).decode()
    rng = random.Random(1234)
    for i in range(60):
        data = _generated(rng, i)
        services.put_card(book, f"gen-{i:02}.vcf", data)
        texts[f"gen-{i:02}.vcf"] = data.decode()
    return book, texts


def _filter(body: str, test: str = "anyof"):
    return etree.fromstring(f'<C:filter xmlns:C="{CR}" xmlns:D="DAV:" test="{test}">{body}</C:filter>')


FILTERS = [
    ("", "anyof"),
    ('<C:prop-filter name="EMAIL"/>', "anyof"),
    ('<C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match>smith</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match collation="i;octet">smith</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match collation="i;ascii-casemap">SMITH</C:text-match></C:prop-filter>',
     "anyof"),
    ('<C:prop-filter name="N"><C:text-match match-type="starts-with">straße</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="N"><C:text-match match-type="starts-with" collation="i;octet">Straße</C:text-match>'
     '</C:prop-filter>', "anyof"),
    ('<C:prop-filter name="EMAIL"><C:text-match match-type="ends-with">@example.com</C:text-match></C:prop-filter>',
     "anyof"),
    ('<C:prop-filter name="CATEGORIES"><C:text-match match-type="equals">work</C:text-match></C:prop-filter>',
     "anyof"),
    ('<C:prop-filter name="CATEGORIES"><C:text-match match-type="equals" collation="i;octet">Work</C:text-match>'
     '</C:prop-filter>', "anyof"),
    ('<C:prop-filter name="EMAIL"><C:text-match negate-condition="yes">example.org</C:text-match></C:prop-filter>',
     "anyof"),
    ('<C:prop-filter name="EMAIL"><C:param-filter name="TYPE"><C:text-match match-type="equals">work'
     '</C:text-match></C:param-filter></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="EMAIL"><C:param-filter name="TYPE"><C:is-not-defined/></C:param-filter></C:prop-filter>',
     "anyof"),
    ('<C:prop-filter name="TEL"><C:param-filter name="TYPE"/></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match>an</C:text-match></C:prop-filter>'
     '<C:prop-filter name="EMAIL"><C:text-match>corp</C:text-match></C:prop-filter>', "allof"),
    ('<C:prop-filter name="FN"><C:text-match>an</C:text-match></C:prop-filter>'
     '<C:prop-filter name="EMAIL"><C:text-match>corp</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN" test="allof"><C:text-match>a</C:text-match><C:text-match>e</C:text-match>'
     '</C:prop-filter>', "anyof"),
    ('<C:prop-filter name="EMAIL" test="allof"><C:text-match>example</C:text-match>'
     '<C:param-filter name="TYPE"><C:text-match>home</C:text-match></C:param-filter></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="ORG"><C:is-not-defined/></C:prop-filter>'
     '<C:prop-filter name="TEL"><C:text-match>555 1</C:text-match></C:prop-filter>', "allof"),
    ('<C:prop-filter name="item1.EMAIL"/>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match>%</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="N"><C:text-match>50%_</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match>_</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="NOTE"><C:text-match>STRASSE</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match>山田</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="ORG"><C:text-match>acme;sales</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="NICKNAME"><C:text-match match-type="equals">zozo</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="PHOTO"/>', "anyof"),
    ('<C:prop-filter name="X-ADDRESSBOOKSERVER-KIND"><C:text-match match-type="equals">group</C:text-match>'
     '</C:prop-filter><C:prop-filter name="KIND"/>', "anyof"),
    ('<C:prop-filter name="UID"><C:text-match match-type="equals">gen-7</C:text-match></C:prop-filter>', "anyof"),
    ('<C:prop-filter name="FN"><C:text-match negate-condition="yes" match-type="starts-with">a</C:text-match>'
     '</C:prop-filter><C:prop-filter name="CATEGORIES"><C:text-match negate-condition="yes">golf</C:text-match>'
     '</C:prop-filter>', "allof"),
    ('<C:prop-filter name="EMAIL"><C:text-match>example</C:text-match><D:unknown/></C:prop-filter>', "anyof"),
]


@pytest.mark.parametrize(("body", "test"), FILTERS)
def test_query_agrees_with_the_naive_evaluation(book_and_texts, body, test):
    book, texts = book_and_texts
    flt = _filter(body, test)
    expected = naive(flt, texts)
    parsed = query.parse_filter(flt)
    with CaptureQueriesContext(connection) as queries:
        got = query.query(book, parsed)
    assert [card.name for card in got.cards] == expected
    assert not got.truncated
    # One pre-selection, one batch of index rows (under 500 candidates), the matching cards.
    assert len(queries) <= 3


def test_the_filters_are_not_trivial(book_and_texts):
    book, texts = book_and_texts
    sizes = {len(naive(_filter(body, test), texts)) for body, test in FILTERS}
    assert len(sizes) > 10 and len(texts) in sizes and min(sizes) <= 1


def test_limit_truncates_in_name_order(book_and_texts):
    book, texts = book_and_texts
    flt = _filter('<C:prop-filter name="FN"/>')
    expected = naive(flt, texts)
    got = query.query(book, query.parse_filter(flt), limit=5)
    assert [c.name for c in got.cards] == expected[:5] and got.truncated
    got = query.query(book, query.parse_filter(flt), limit=len(expected))
    assert len(got.cards) == len(expected) and not got.truncated


def test_server_cap_applies_whatever_the_client_asks(book_and_texts, settings):
    settings.CONTACTS_MAX_RESULTS = 4
    book, _ = book_and_texts
    got = query.query(book, query.parse_filter(_filter("")), limit=1000)
    assert len(got.cards) == 4 and got.truncated


def test_with_data_loads_the_text_only_when_asked(book_and_texts):
    book, _ = book_and_texts
    flt = query.parse_filter(_filter('<C:prop-filter name="FN"><C:text-match>Johnny</C:text-match></C:prop-filter>'))
    with CaptureQueriesContext(connection) as queries:
        got = query.query(book, flt, with_data=True)
        assert got.cards[0].data.startswith("BEGIN:VCARD")
    assert len(queries) <= 3


def test_a_large_book_is_read_in_batches(alice):
    book = services.default_book(alice.pk)
    for i in range(query.BATCH + 20):
        services.put_card(book, f"{i:04}.vcf", simple_card(f"u{i}", f"Person {i}"))
    flt = query.parse_filter(_filter('<C:prop-filter name="FN"><C:text-match>person</C:text-match></C:prop-filter>'))
    with CaptureQueriesContext(connection) as queries:
        got = query.query(book, flt)
    assert len(got.cards) == query.BATCH + 20 and len(queries) == 4


@pytest.mark.parametrize(("body", "condition"), [
    ('<C:prop-filter name="FN"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>',
     "supported-collation"),
    ('<C:prop-filter name="FN"><C:text-match match-type="regex">x</C:text-match></C:prop-filter>',
     "supported-filter"),
    ('<C:prop-filter name="FN"><C:text-match negate-condition="maybe">x</C:text-match></C:prop-filter>',
     "supported-filter"),
    ('<C:prop-filter name="FN"><C:is-not-defined/><C:text-match>x</C:text-match></C:prop-filter>',
     "supported-filter"),
    ('<C:prop-filter name="FN" test="oneof"/>', "supported-filter"),
    ('<C:prop-filter/>', "supported-filter"),
    ('<C:comp-filter name="VCARD"/>', "supported-filter"),
    ('<C:prop-filter name="FN"><C:text-match>' + "x" * 1001 + "</C:text-match></C:prop-filter>",
     "supported-filter"),
    ('<C:prop-filter name="FN"/>' * 51, "supported-filter"),
    ('<C:prop-filter name="FN">' + "<C:text-match>x</C:text-match>" * 21 + "</C:prop-filter>", "supported-filter"),
    ('<C:prop-filter name="EMAIL"><C:param-filter name="TYPE"><C:is-not-defined/><C:text-match>x</C:text-match>'
     '</C:param-filter></C:prop-filter>', "supported-filter"),
])
def test_refused_filters_name_their_precondition(body, condition):
    with pytest.raises(query.QueryError) as caught:
        query.parse_filter(_filter(body))
    assert caught.value.condition == condition


def test_filter_level_test_and_missing_filter():
    with pytest.raises(query.QueryError) as caught:
        query.parse_filter(_filter("", test="sometimes"))
    assert caught.value.condition == "supported-filter"
    with pytest.raises(query.QueryError) as caught:
        query.parse_filter(None)
    assert caught.value.condition is None


@pytest.mark.parametrize(("xml", "expected"), [
    (None, None),
    (f'<C:limit xmlns:C="{CR}"><C:nresults>10</C:nresults></C:limit>', 10),
    (f'<C:limit xmlns:C="{CR}"><C:nresults>0</C:nresults></C:limit>', "error"),
    (f'<C:limit xmlns:C="{CR}"><C:nresults>-3</C:nresults></C:limit>', "error"),
    (f'<C:limit xmlns:C="{CR}"><C:nresults>99999999999999</C:nresults></C:limit>', "error"),
    (f'<C:limit xmlns:C="{CR}"/>', "error"),
])
def test_parse_limit(xml, expected):
    element = etree.fromstring(xml) if xml else None
    if expected == "error":
        with pytest.raises(query.QueryError):
            query.parse_limit(element)
    else:
        assert query.parse_limit(element) == expected


def test_parse_address_data():
    def parse(xml):
        return query.parse_address_data(etree.fromstring(f'<C:address-data xmlns:C="{CR}" {xml}'))

    assert parse("/>") == query.AddressData()
    assert parse('version="3.0"/>').version == "3.0"
    got = parse('content-type="text/vcard" version="4.0"><C:prop name="fn"/><C:prop name="EMAIL" novalue="yes"/>'
                "</C:address-data>")
    assert (got.version, got.props) == ("4.0", [("FN", False), ("EMAIL", True)])
    assert parse("><C:allprop/></C:address-data>").props is None
    for bad in ('version="2.1"/>', 'content-type="application/vcard+json"/>'):
        with pytest.raises(query.QueryError) as caught:
            parse(bad)
        assert caught.value.condition == "supported-address-data-conversion"


def test_partial_and_converted_data_of_query_results(book_and_texts):
    book, _ = book_and_texts
    flt = query.parse_filter(_filter('<C:prop-filter name="UID"><C:text-match match-type="equals">'
                                     "8D1F2B7A-3C4E-4B5A-9E6F-0A1B2C3D4E5F</C:text-match></C:prop-filter>"))
    card = query.query(book, flt, with_data=True).cards[0]
    data = query.parse_address_data(etree.fromstring(
        f'<C:address-data xmlns:C="{CR}" version="4.0"><C:prop name="FN"/><C:prop name="BDAY"/></C:address-data>'))
    text = services.card_text(card, version=data.version, props=data.props)
    assert text == "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Johnny Appleseed\r\nBDAY:--0315\r\nEND:VCARD\r\n"


# --- the attacker's view -------------------------------------------------------------------

def test_a_query_never_reaches_another_accounts_cards(alice, bob):
    secret = services.create_book(alice.pk, "private")
    services.put_card(secret, "s.vcf", simple_card("s", "Secret Person", "EMAIL:secret@example.org\r\n"))
    mine = services.default_book(bob.pk)
    services.put_card(mine, "m.vcf", simple_card("m", "Bob's friend"))
    for body in ("", '<C:prop-filter name="FN"><C:text-match>Secret</C:text-match></C:prop-filter>',
                 '<C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>',
                 '<C:prop-filter name="FN"><C:text-match negate-condition="yes">nobody</C:text-match></C:prop-filter>'):
        got = query.query(mine, query.parse_filter(_filter(body)))
        assert all(card.book_id == mine.pk for card in got.cards)
        assert "s.vcf" not in [card.name for card in got.cards]
