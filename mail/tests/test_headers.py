"""The header forms of RFC 8621 §4.1.2 on stored raw headers, and which are allowed where."""

import pytest

from mail import headers
from mail.headers import HeaderFormError, header, parse_property


def hs(*pairs):
    return [{"name": n, "value": v} for n, v in pairs]


@pytest.mark.parametrize("name,form", [
    ("From", "Text"), ("Subject", "Addresses"), ("Subject", "Date"), ("Date", "Text"),
    ("Message-ID", "Addresses"), ("To", "MessageIds"), ("References", "URLs"),
    ("List-Unsubscribe", "Text"), ("List-Id", "Addresses"), ("Received", "Text"),
    ("Return-Path", "Addresses"), ("resent-date", "Text"), ("X-Anything", "Nope"),
])
def test_forbidden_forms_are_invalid_arguments(name, form):
    with pytest.raises(HeaderFormError):
        header(hs((name, " x")), name, form)


@pytest.mark.parametrize("name,form", [
    ("From", "Addresses"), ("from", "GroupedAddresses"), ("Subject", "Text"),
    ("Comments", "Text"), ("Keywords", "Text"), ("List-Id", "Text"), ("Date", "Date"),
    ("Resent-Date", "Date"), ("Message-ID", "MessageIds"), ("References", "MessageIds"),
    ("List-Post", "URLs"), ("Received", "Raw"), ("X-Custom", "Text"), ("X-Custom", "Date"),
    ("X-Custom", "Addresses"), ("X-Custom", "URLs"), ("X-Custom", "MessageIds"),
])
def test_allowed_forms(name, form):
    header(hs((name, " <a@b.c>")), name, form)


def test_parse_property():
    assert parse_property("header:From:asAddresses") == ("From", "Addresses", False)
    assert parse_property("header:X-Foo:all") == ("X-Foo", "Raw", True)
    assert parse_property("header:List-Id:asText:all") == ("List-Id", "Text", True)
    for bad in ("header:", "header:From:asText", "header:X:asFoo", "header:X:all:asText",
                "header:X:asText:all:x", "header:Bad Name:asText", "headers:X", "header:X:Text"):
        with pytest.raises(HeaderFormError):
            parse_property(bad)


def test_last_instance_and_all():
    stored = hs(("X-A", " one"), ("x-a", " two"))
    assert header(stored, "X-A") == " two"
    assert header(stored, "X-A", "Text", all=True) == ["one", "two"]
    assert header(stored, "X-Missing") is None
    assert header(stored, "X-Missing", "Addresses", all=True) == []


def test_text_unfolds_and_decodes_rfc2047():
    assert headers.as_text(" =?utf-8?q?a?=\r\n =?utf-8?q?b?= c =?utf-8?b?w6k=?=") == "ab c é"
    # Only blanks between two encoded words go; other text between them stays.
    assert headers.as_text(" =?utf-8?q?a?= - =?utf-8?q?b?=") == "a - b"
    assert headers.as_text(" =?ISO-8859-15?Q?=A4uro?=") == "€uro"
    assert headers.as_text(" =?utf-8*en?Q?lang?=") == "lang"  # RFC 2231 §5 language suffix
    assert headers.as_text(" =?x-nothing?Q?caf=C3=A9?=") == "café"  # unknown: read as UTF-8
    assert headers.as_text(" =?utf-8?Q?caf=E9?=") == "caf\ufffd"  # invalid UTF-8: U+FFFD


def test_addresses():
    v = ' "Last, First" <first@example.com>, =?utf-8?q?J=C3=BCrg?= <j@example.de>, plain@example.org'
    assert headers.as_addresses(v) == [
        {"name": "Last, First", "email": "first@example.com"},
        {"name": "Jürg", "email": "j@example.de"},
        {"name": None, "email": "plain@example.org"},
    ]
    assert headers.as_addresses(" ") == []
    # Best effort on garbage: never an exception.
    for junk in (" <<>>", ' "unterminated <a@b', " @@@,,,;;;:", " a@b (comment", " \x00\xff"):
        assert isinstance(headers.as_addresses(junk), list)
        assert isinstance(headers.as_grouped_addresses(junk), list)


def test_message_ids_dates_urls():
    assert headers.as_message_ids(" <a@b> <c@d>\r\n <e@f>") == ["a@b", "c@d", "e@f"]
    assert headers.as_message_ids(" garbage") is None
    assert headers.as_date(" Tue, 5 Mar 2024 10:20:30 +0530") == "2024-03-05T10:20:30+05:30"
    assert headers.as_date(" 5 Mar 2024 10:20 -0330") == "2024-03-05T10:20:00-03:30"
    assert headers.as_date(" yesterday") is None
    assert headers.as_date(" Tue, 99 Foo 2024 99:99:99 +0000") is None
    assert headers.as_urls(" <https://a.example/x>, <mailto:b@example.com> (comment)") == [
        "https://a.example/x", "mailto:b@example.com"]
    assert headers.as_urls(" NO") is None


def test_charset_lookup():
    assert headers.lookup_charset("ISO-8859-1") == "cp1252"
    assert headers.decode_bytes(b"\x93caf\xe9\x94", "iso-8859-1") == ("“café”", False)
    assert headers.lookup_charset('"utf-8"') == "utf-8"
    assert headers.lookup_charset("ks_c_5601-1987") == "cp949"
    assert headers.lookup_charset("x-unknown") is None
    assert headers.decode_bytes(b"caf\xe9", "x-unknown") == ("caf\ufffd", True)
    assert headers.decode_bytes(b"+AGEAYgBj-", "utf-7") == ("abc", False)
    assert headers.decode_bytes(b"\x1b$B\xff\xff", "iso-2022-jp")[1] is True


def test_long_lists_are_cut_only_between_addresses():
    # Quoted commas, commas in comments and in angle brackets, and groups across the cut points.
    items = []
    for i in range(100):
        if i % 10 == 0:
            items.append(f'Team {i}: "A, {i}" <a{i}@x.org>, b{i}@x.org (c, d);')
        else:
            items.append(f'"Last, {i}" <u{i}@x.org> (x, y)')
    groups = headers.as_grouped_addresses(" " + ", ".join(items))
    flat = [a for g in groups for a in g["addresses"]]
    assert len(flat) == 110
    assert [g["name"] for g in groups if g["name"]] == [f"Team {i}" for i in range(0, 100, 10)]
    assert flat[0] == {"name": "A, 0", "email": "a0@x.org"}
    assert flat[2] == {"name": "Last, 1", "email": "u1@x.org"}
    assert flat[-1] == {"name": "Last, 99", "email": "u99@x.org"}
    # A comma-free run too long to be a real list still parses (the looser parser).
    assert headers.as_addresses(" " + "x" * 20000 + "@example.com") == [
        {"name": None, "email": "x" * 20000 + "@example.com"}]


def test_adjacent_groups_and_a_group_between_addresses():
    # Shapes Stalwart's mail-parser keeps as regression cases (its issue 98), written anew here.
    assert headers.as_grouped_addresses(" first: a@x.org; second: b@y.org;") == [
        {"name": "first", "addresses": [{"name": None, "email": "a@x.org"}]},
        {"name": "second", "addresses": [{"name": None, "email": "b@y.org"}]},
    ]
    assert headers.as_grouped_addresses(" p@x.org, g: q@x.org;, r@x.org") == [
        {"name": None, "addresses": [{"name": None, "email": "p@x.org"}]},
        {"name": "g", "addresses": [{"name": None, "email": "q@x.org"}]},
        {"name": None, "addresses": [{"name": None, "email": "r@x.org"}]},
    ]
