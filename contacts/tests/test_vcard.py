"""vCard parsing, the searchable values, conversion between 3.0 and 4.0 and partial data, on
vCards as Apple Contacts, Google, Outlook and Thunderbird write them (no database)."""
from __future__ import annotations

import pytest
import vobject

from contacts import vcard
from contacts.vcard import Invalid

from .conftest import STORABLE, card_bytes


def _values(card, name):
    return [value for n, _, value, _ in vcard.index_rows(card) if n == name]


@pytest.mark.parametrize("name", STORABLE)
def test_real_world_cards_parse_and_vobject_agrees_on_their_structure(name):
    data = card_bytes(name)
    card = vcard.parse(data)
    assert card.version in vcard.VERSIONS and card.uid
    theirs = vobject.readOne(data.decode())
    # Every property vobject sees, we see (same count per name).
    for key, lines in theirs.contents.items():
        if key in ("version",):
            continue
        assert len([line for line in card.lines if line.name.lower() == key]) == len(lines), key


def test_apple_card_values_kinds_groups_and_photo():
    card = vcard.parse(card_bytes("apple-person.vcf"))
    assert card.kind == "individual" and card.fn == "Johnny Appleseed"
    assert _values(card, "CATEGORIES") == ["Work", "VIP"]
    assert _values(card, "NOTE") == ["Call after 5pm, not before.\nSecond line."]
    assert _values(card, "N") == ["Appleseed;Johnny;;;"]
    assert _values(card, "PHOTO") == [""]  # binary data is not kept twice
    email = next(line for line in card.lines if line.name == "EMAIL" and line.group == "item1")
    assert email.types() == {"internet", "pref"}
    assert vcard.parse(card_bytes("apple-group.vcf")).kind == "group"
    assert vcard.parse(card_bytes("v4-group.vcf")).kind == "group"


def test_lists_escapes_and_folded_lines():
    card = vcard.parse(card_bytes("google.vcf"))
    assert _values(card, "NICKNAME") == ["Zo", "Zozo"]
    assert _values(card, "NOTE") == ["Met at the conference, 2024.\nLikes tea; not coffee."]
    tb = vcard.parse(card_bytes("thunderbird.vcf"))
    assert _values(tb, "NOTE")[0].startswith("A long note that Thunderbird folds across lines because the RFC says a line")
    assert vcard.split(r"a\,b,c\\,d", ",") == [r"a\,b", "c\\\\", "d"]
    assert vcard.unescape(r"x\\y\nz\;") == "x\\y\nz;"


def test_unicode_casemap_folding():
    assert vcard.fold("STRASSE") == vcard.fold("straße")
    assert vcard.fold("École") == vcard.fold("ÉCOLE")
    assert vcard.fold("ﬁn") == "fin"
    assert vcard.ascii_fold("ÉCOLE") == "École"


@pytest.mark.parametrize(("data", "condition"), [
    (b"", vcard.VALID),
    (b"hello", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:x\r\n", vcard.VALID),  # never closed
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\nEND:VCARD\r\n", vcard.VALID),  # no UID
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:\r\nFN:x\r\nEND:VCARD\r\n", vcard.VALID),  # empty UID
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nUID:b\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nUID:a\r\nEND:VCARD\r\n", vcard.VALID),  # no VERSION
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nVERSION:3.0\r\nUID:a\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nUID:b\r\nEND:VCARD\r\n",
     vcard.VALID),  # two vCards
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nBEGIN:VCARD\r\nEND:VCARD\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nUID:a\r\nEND:VCALENDAR\r\n", vcard.SUPPORTED),  # not a vCard at all
    (b"BEGIN:VCALENDAR\r\nUID:a\r\nEND:VCALENDAR\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nno colon here\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:\xff\xfe\r\nEND:VCARD\r\n", vcard.VALID),  # not UTF-8
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\x00b\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\n" + b"X" * 300 + b":v\r\nEND:VCARD\r\n", vcard.VALID),
    (b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nEND:VCARD\r\n", vcard.SUPPORTED),
    (b"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nNOTE;ENCODING=QUOTED-PRINTABLE:a=\r\nb\r\nEND:VCARD\r\n", vcard.SUPPORTED),
    (b"BEGIN:VCARD\r\nVERSION:5.0\r\nUID:a\r\nEND:VCARD\r\n", vcard.SUPPORTED),
])
def test_invalid_data_names_its_precondition(data, condition):
    with pytest.raises(Invalid) as caught:
        vcard.parse(data)
    assert caught.value.condition == condition


def test_outlook_21_is_refused_as_unsupported():
    with pytest.raises(Invalid) as caught:
        vcard.parse(card_bytes("outlook-2.1.vcf"))
    assert caught.value.condition == vcard.SUPPORTED


def test_a_line_that_would_make_vobject_backtrack_never_reaches_its_regular_expression(monkeypatch):
    # "X;A=b=b=b…" without a colon: vobject's pattern tries every way to split the "=" parts
    # (2^n). RE2 refuses it first; vobject's line parser sees only the lines before it.
    seen = []
    real = vcard.parseLine
    monkeypatch.setattr(vcard, "parseLine", lambda line, n=None: seen.append(line) or real(line, n))
    hostile = "X;A" + "=b" * 60
    data = f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\n{hostile}\r\nEND:VCARD\r\n"
    with pytest.raises(Invalid):
        vcard.parse(data)
    assert hostile not in seen and len(seen) == 3


def test_ten_thousand_properties_parse_and_index():
    lines = "".join(f"EMAIL:user{i}@example.org\r\n" for i in range(10_000))
    card = vcard.parse(f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:many\r\n{lines}END:VCARD\r\n")
    assert len(_values(card, "EMAIL")) == 10_000


# --- conversion ----------------------------------------------------------------------------

def _reparse(text: str) -> vcard.VCard:
    card = vcard.parse(text)
    vobject.readOne(text)  # vobject reads what we write
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n")), "lines are folded at 75 octets"
    assert text.endswith("\r\n")
    return card


def _line(card, name):
    return next(line for line in card.lines if line.name == name)


def test_apple_3_to_4():
    text = vcard.render(card_bytes("apple-person.vcf").decode(), version="4.0")
    card = _reparse(text)
    assert card.version == "4.0" and card.uid == "8D1F2B7A-3C4E-4B5A-9E6F-0A1B2C3D4E5F"
    assert text.startswith("BEGIN:VCARD\r\nVERSION:4.0\r\n")
    photo = _line(card, "PHOTO")
    assert photo.value.startswith("data:image/jpeg;base64,/9j/4AAQ") and "ENCODING" not in photo.params
    assert _line(card, "BDAY").value == "--0315" and "X-APPLE-OMIT-YEAR" not in _line(card, "BDAY").params
    email = next(line for line in card.lines if line.name == "EMAIL" and line.group == "item1")
    assert email.params == {"PREF": ["1"]}
    assert next(line for line in card.lines if line.name == "X-ABLABEL").group == "item1"
    assert _line(card, "REV").value == "20240501T102030Z"
    assert vcard.parse(text).fn == "Johnny Appleseed"
    group = _reparse(vcard.render(card_bytes("apple-group.vcf").decode(), version="4.0"))
    assert _line(group, "KIND").value == "group" and len([ln for ln in group.lines if ln.name == "MEMBER"]) == 2


def test_thunderbird_4_to_3():
    text = vcard.render(card_bytes("thunderbird.vcf").decode(), version="3.0")
    card = _reparse(text)
    assert card.version == "3.0"
    photo = _line(card, "PHOTO")
    assert photo.params == {"ENCODING": ["b"], "TYPE": ["PNG"]} and photo.value.startswith("iVBORw0KGgo")
    tel = [line for line in card.lines if line.name == "TEL"]
    assert [t.value for t in tel] == ["+44 7700 900123", "+44-20-7946-0958"]
    assert _line(card, "BDAY").value == "1985-04-12"
    anniversary = _line(card, "X-ANNIVERSARY")
    assert anniversary.value == "1604-06-15" and anniversary.params["X-APPLE-OMIT-YEAR"] == ["1604"]
    assert "pref" in _line(card, "EMAIL").types()
    label = _line(card, "LABEL")
    assert vcard.unescape(label.value) == "1 Main St\nLondon N1 9GU" and label.types() == {"work"}
    # The folded note survives the trip: unfolded, converted, folded again.
    assert vcard.text_values(_line(card, "NOTE"))[0].endswith("and this one is longer than that.")


def test_group_4_to_3_and_back():
    text = vcard.render(card_bytes("v4-group.vcf").decode(), version="3.0")
    card = _reparse(text)
    assert _line(card, "X-ADDRESSBOOKSERVER-KIND").value == "group"
    assert card.kind == "group"
    back = _reparse(vcard.render(text, version="4.0"))
    assert _line(back, "KIND").value == "group" and len([ln for ln in back.lines if ln.name == "MEMBER"]) == 2


def test_nonascii_round_trip_keeps_text():
    original = vcard.parse(card_bytes("nonascii.vcf"))
    there = _reparse(vcard.render(card_bytes("nonascii.vcf").decode(), version="3.0"))
    back = _reparse(vcard.render(vcard.serialize(there), version="4.0"))
    for name in ("FN", "N", "ORG", "ADR", "NOTE", "EMAIL", "TITLE"):
        assert vcard.text_values(_line(back, name)) == vcard.text_values(_line(original, name)), name
    assert _line(there, "X-GENDER").value == "Male"


def test_partial_data_and_same_version_is_the_stored_text():
    stored = card_bytes("google.vcf").decode()
    assert vcard.render(stored) == stored and vcard.render(stored, version="3.0") == stored
    text = vcard.render(stored, props=[("FN", False), ("EMAIL", True)])
    assert text == "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Müller\r\nEMAIL;TYPE=INTERNET,HOME:\r\nEMAIL;TYPE=INTERNET:\r\nEND:VCARD\r\n"
    assert vobject.readOne(text).fn.value == "Zoë Müller"


@pytest.mark.parametrize(("accept", "expected"), [
    (None, None),
    ("", None),
    ("*/*", None),
    ("text/vcard", None),
    ("text/vcard; version=3.0", "3.0"),
    ("text/vcard;q=0.9;version=3.0", "3.0"),
    ("text/vcard; charset=utf-8; version=4.0", "4.0"),
    ("text/vcard; version=4.0; q=0.5, text/vcard; version=3.0", "3.0"),
    ("text/vcard; version=3.0; q=0, text/vcard; version=4.0; q=0.1", "4.0"),
    ("text/vcard; version=2.1", None),
    ("text/vcard; version=3.0; q=bogus", None),
    ("application/vcard+json, text/vcard; version=\"4.0\"", "4.0"),
])
def test_accept_header_negotiation(accept, expected):
    assert vcard.accepted_version(accept) == expected
