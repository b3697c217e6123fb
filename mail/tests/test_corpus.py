"""Every corpus message, parsed field by field (RFC 8621 §4.1, RFC 2045-2049, 2047, 2231)."""

import json
from pathlib import Path

import pytest

from mail import headers, mime

CORPUS = Path(__file__).parent / "corpus"


def load(name):
    raw = (CORPUS / name).read_bytes()
    return raw, mime.parse(raw)


def shape(part):
    """(type, partId) for a leaf, (type, [children]) for a multipart."""
    if part.get("subParts") is not None:
        return (part["type"], [shape(p) for p in part["subParts"]])
    return (part["type"], part["partId"])


def values(raw, msg, ids):
    parts = msg.parts()
    return [mime.body_value(raw, parts[i])["value"] for i in ids]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.name)
def test_every_message_parses_and_is_json(path):
    raw = path.read_bytes()
    msg = mime.parse(raw)
    stored = json.loads(json.dumps(msg.as_dict()))
    assert mime.ParsedMessage.from_dict(stored) == msg
    for part in msg.parts().values():
        assert 0 <= part["bodyStart"] <= part["bodyEnd"] <= len(raw)
        assert len(mime.decoded_content(raw, part)) == part["size"]
        mime.body_value(raw, part, 10)


def test_alternative():
    raw, m = load("01-alternative.eml")
    assert shape(m.bodyStructure) == ("multipart/alternative", [("text/plain", "1"), ("text/html", "2")])
    assert (m.textBody, m.htmlBody, m.attachments) == (["1"], ["2"], [])
    assert m.messageId == ["20240305102030.GA1234@example.org"]
    assert m.inReplyTo == ["parent@example.com"]
    assert m.references == ["root@example.com", "parent@example.com"]
    assert m.from_ == [{"name": "Alice Example", "email": "alice@example.org"}]
    assert m.to == [{"name": "Bob", "email": "bob@example.com"}, {"name": None, "email": "carol@example.com"}]
    assert m.cc == [{"name": "Dave, Jr.", "email": "dave@example.net"}]
    assert m.bcc is None and m.sender is None and m.replyTo is None
    assert m.subject == "Re: [team] Fwd: Quarterly  planning (fwd)"
    assert m.sentAt == "2024-03-05T10:20:30+01:00"
    assert m.sentAtUtc == "2024-03-05T09:20:30Z"
    assert m.size == len(raw)
    assert m.hasAttachment is False
    assert m.preview == "Hi Bob, The planning meeting moves to Thursday. Alice"
    # RFC 5256 §2.1: "Re:", "[team] Fwd:" and "(fwd)" go, blanks collapse.
    assert m.threadSubject == m.sortSubject == "quarterly planning"
    assert m.threadIds == ["20240305102030.GA1234@example.org", "parent@example.com", "root@example.com"]
    assert (m.sortFrom, m.sortTo) == ("alice example", "bob")
    # The delimiter's line break is not content (RFC 2046 §5.1.1); QP soft breaks join.
    assert values(raw, m, ["1", "2"]) == [
        "Hi Bob,\r\n\r\nThe planning meeting moves to Thursday.\r\n\r\nAlice",
        "<html><body><p>Hi Bob,</p><p>The planning meeting moves to <b>Thursday</b>.</p>"
        "<p>Alice</p></body></html>",
    ]
    assert [h["name"] for h in m.headers][:3] == ["Return-Path", "Received", "From"]
    assert m.headers[1]["value"] == (" from mx.example.org (mx.example.org [192.0.2.1])\r\n"
                                     "\tby mail.example.com with ESMTPS id 4F2A1; Tue, 5 Mar 2024 10:20:31 +0100")
    assert "Thursday" in m.search["body"] and m.search["cc"] == "Dave, Jr. <dave@example.net>"


def test_nested_related_with_inline_image_and_rfc2231_attachment():
    raw, m = load("02-nested-related.eml")
    assert shape(m.bodyStructure) == ("multipart/mixed", [
        ("multipart/related", [
            ("multipart/alternative", [("text/plain", "1"), ("text/html", "2")]),
            ("image/png", "3"),
        ]),
        ("application/pdf", "4"),
    ])
    assert (m.textBody, m.htmlBody, m.attachments) == (["1"], ["2"], ["3", "4"])
    parts = m.parts()
    img, pdf = parts["3"], parts["4"]
    assert (img["cid"], img["disposition"], img["name"], img["charset"]) == \
        ("logo@example.fr", "inline", None, None)
    assert mime.decoded_content(raw, img).startswith(b"\x89PNG\r\n\x1a\n") and img["size"] == 72
    assert (pdf["name"], pdf["disposition"], pdf["language"]) == \
        ("résumé €.pdf", "attachment", ["fr", "en"])
    assert mime.decoded_content(raw, pdf).startswith(b"%PDF-1.4\n") and pdf["size"] == 216
    assert m.from_ == [{"name": "Renée Dupré", "email": "renee@example.fr"}]
    assert m.preview == "Bonjour à tous, voici la photo."
    assert m.sentAt == "2024-03-06T08:00:00-05:00"
    assert m.hasAttachment is True  # the PDF; the inline image alone would not count
    assert m.search["attachmentNames"] == "résumé €.pdf"
    # The multipart's own size is that of its raw body.
    assert m.bodyStructure["partId"] is None and m.bodyStructure["size"] > 0


def test_rfc2231_continuations_and_encoded_word_name():
    raw, m = load("03-rfc2231-continuations.eml")
    parts = m.parts()
    assert shape(m.bodyStructure) == ("multipart/mixed", [
        ("text/plain", "1"), ("application/octet-stream", "2"), ("text/plain", "3")])
    assert parts["1"]["charset"] == "us-ascii"  # RFC 8621: the implicit charset of text/*
    assert parts["2"]["charset"] is None
    assert parts["2"]["name"] == "Grüße aus Köln.txt"  # RFC 2231 §3-4, iso-8859-1, mixed *0* / *1
    assert mime.decoded_content(raw, parts["2"]) == b"Hallo"
    assert parts["3"]["name"] == "отчёт.txt"  # an RFC 2047 word inside a quoted name
    assert (m.textBody, m.htmlBody, m.attachments) == (["1"], ["1"], ["2", "3"])
    assert m.messageId is None and m.threadIds == []
    assert m.sentAt == "2024-03-07T12:00:00Z"


def test_iso_8859_1_quoted_printable():
    raw, m = load("04-latin1.eml")
    assert m.subject == "Grüße"
    assert m.from_ == [{"name": "Jürgen Müller", "email": "juergen@example.de"}]
    assert m.bodyStructure["charset"] == "iso-8859-1"
    assert mime.body_value(raw, m.bodyStructure) == {
        "value": "Grüße aus Köln, ça va? Ünïcödé.\r\n", "isEncodingProblem": False, "isTruncated": False}
    assert m.sentAt == "2024-03-08T09:15:00+01:00"  # the "(CET)" comment is ignored
    assert m.sortSubject == "grüsse"  # case-folded


def test_windows_1252_8bit():
    raw, m = load("05-windows1252.eml")
    assert mime.body_value(raw, m.bodyStructure)["value"] == "“Smart quotes” cost 5 € – really…\r\n"
    assert m.preview == "“Smart quotes” cost 5 € – really…"
    assert m.sentAtUtc == "2024-03-10T07:59:59Z"


def test_iso_2022_jp():
    raw, m = load("06-iso2022jp.eml")
    assert m.subject == "会議の件"
    assert m.from_ == [{"name": "田中", "email": "tanaka@example.jp"}]
    assert mime.body_value(raw, m.bodyStructure)["value"] == "明日の会議は十時からです。\r\nよろしくお願いします。\r\n"


def test_koi8_r_base64():
    raw, m = load("07-koi8r.eml")
    assert m.subject == "Отчёт за март"
    assert mime.body_value(raw, m.bodyStructure) == {
        "value": "Привет, мир! Как дела?\n", "isEncodingProblem": False, "isTruncated": False}


def test_encoded_words_groups_and_list_headers():
    raw, m = load("08-encoded-words.eml")
    # Adjacent words (B then Q, across a fold, then a different charset) join without the
    # blanks between them (RFC 2047 §6.2); an unknown charset still yields its octets.
    assert m.subject == "This is a long subject with ✓ café and plain words x"
    assert m.from_ == [{"name": "Zoë", "email": "zoe@example.com"}]
    assert m.to == [{"name": "Élise", "email": "elise@example.com"},
                    {"name": None, "email": "bob@example.com"},
                    {"name": None, "email": "outside@example.com"}]
    top = m.headers
    assert headers.header(top, "To", "GroupedAddresses") == [
        {"name": "Friends", "addresses": [{"name": "Élise", "email": "elise@example.com"},
                                          {"name": None, "email": "bob@example.com"}]},
        {"name": None, "addresses": [{"name": None, "email": "outside@example.com"}]},
    ]
    assert m.replyTo == []
    assert headers.header(top, "Reply-To", "GroupedAddresses") == [
        {"name": "undisclosed-recipients", "addresses": []}]
    assert m.sentAt == "2024-03-13T01:02:03Z"  # "-0000": UTC
    assert m.messageId == ["no-brackets@example.com"]
    assert headers.header(top, "List-Unsubscribe", "URLs") == [
        "mailto:leave@example.com?subject=unsubscribe", "https://example.com/unsub?id=42"]
    assert headers.header(top, "List-Id", "Text") == "Friends list <friends.example.com>"
    assert headers.header(top, "Keywords", "Text") == "a, b"
    # A malformed B word stays as it was written.
    assert headers.header(top, "Comments", "Text") == "brokenword =?utf-8?B?!!notbase64?="


def test_message_rfc822_attachment_is_a_leaf_that_parses_on_its_own():
    raw, m = load("09-rfc822-attachment.eml")
    assert shape(m.bodyStructure) == ("multipart/mixed", [("text/plain", "1"), ("message/rfc822", "2")])
    assert (m.textBody, m.attachments, m.hasAttachment) == (["1"], ["2"], True)
    att = m.parts()["2"]
    assert att["name"] == "original.eml"
    inner = mime.parse(mime.decoded_content(raw, att))  # what Email/parse of its blob does
    assert inner.subject == "The original"
    assert inner.messageId == ["orig@example.org"]
    assert inner.preview == "Original body."


def test_missing_closing_boundary_keeps_the_last_part():
    raw, m = load("10-broken-boundary.eml")
    assert shape(m.bodyStructure) == ("multipart/mixed", [("text/plain", "1"), ("text/plain", "2")])
    assert values(raw, m, ["1", "2"]) == ["First part.", "Second part, truncated in transit\r\n"]
    # A named text part after the first is an attachment (RFC 8621 §4.1.4).
    assert (m.textBody, m.attachments) == (["1"], ["2"])


def test_bad_base64_unknown_charset_unknown_encoding():
    raw, m = load("11-bad-encodings.eml")
    parts = m.parts()
    assert mime.body_value(raw, parts["1"]) == {
        "value": "Hello world", "isEncodingProblem": True, "isTruncated": False}
    assert mime.body_value(raw, parts["2"]) == {
        "value": "Unknown charset text.", "isEncodingProblem": True, "isTruncated": False}
    assert parts["3"]["encoding"] == "x-uuencode"
    assert mime.decoded_content(raw, parts["3"]) == b"begin 644 x"
    assert m.sentAt is None  # "not a date at all"
    assert headers.header(m.headers, "Date", "Date") is None


def test_no_content_type_bare_lf():
    raw, m = load("12-no-content-type.eml")
    assert shape(m.bodyStructure) == ("text/plain", "1")
    assert m.bodyStructure["charset"] == "us-ascii"
    assert mime.body_value(raw, m.bodyStructure)["value"] == "Just text,\nwith bare LF line endings.\n"
    assert m.from_ == [{"name": "Plain User", "email": "plain@example.com"}]


def test_8bit_headers_duplicates_and_nul():
    raw, m = load("13-8bit-headers.eml")
    assert m.subject == "Grüße, raw UTF-8"  # the last of two Subject fields
    assert headers.header(m.headers, "Subject", "Text", all=True) == ["first subject", "Grüße, raw UTF-8"]
    assert m.from_ == [{"name": "Jörg Ütf", "email": "joerg@example.de"}]
    # RFC 8621 §4.1.2.1: invalid UTF-8 becomes U+FFFD, NUL is dropped.
    assert headers.header(m.headers, "X-Latin1") == " caf\ufffd"
    assert headers.header(m.headers, "X-Nul") == " ab"


def test_mixed_line_endings():
    raw, m = load("14-mixed-line-endings.eml")
    assert shape(m.bodyStructure) == ("multipart/alternative", [("text/plain", "1"), ("text/html", "2")])
    assert m.subject == "Mixed\tendings"  # unfolding removes the line break only
    assert values(raw, m, ["1", "2"]) == ["line one\rstill one\r\nline two", "<p>html</p>"]


def test_huge_header():
    raw, m = load("15-huge-header.eml")
    assert len(m.references) == 3000
    assert m.references[0] == "ref00000." + "a" * 20 + "@example.com"
    assert m.threadIds[0] == "big@example.com" and len(m.threadIds) == 3001
    assert m.preview == "Small body."


def test_multipart_without_boundary_is_read_as_text():
    raw, m = load("16-multipart-no-boundary.eml")
    assert shape(m.bodyStructure) == ("text/plain", "1")
    assert m.preview == "Text that was meant to be parts."


def test_digest_parts_default_to_message_rfc822():
    raw, m = load("17-digest.eml")
    assert shape(m.bodyStructure) == ("multipart/digest", [("message/rfc822", "1"), ("message/rfc822", "2")])
    assert (m.textBody, m.htmlBody, m.attachments) == ([], [], ["1", "2"])
    assert mime.parse(mime.decoded_content(raw, m.parts()["2"])).subject == "Two"
    assert m.preview == ""


def test_html_only_preview_is_converted_text():
    raw, m = load("18-html-only.eml")
    assert (m.textBody, m.htmlBody) == (["1"], ["1"])
    assert m.preview == "Weekly * First item * Second item A B"  # no <style>, no <title>
    assert m.sortSubject == "weekly"  # a leading [blob] goes when something remains
    assert headers.header(m.headers, "List-Help", "URLs") == ["mailto:help@example.com"]
    assert headers.header(m.headers, "List-Post", "URLs") is None  # "NO" has no URL
    assert m.sentAt == "2024-03-18T06:00:00Z"


def test_public_part_answers_only_the_asked_properties():
    raw, m = load("02-nested-related.eml")
    props = ("partId", "blobId", "type", "name", "subParts", "header:Content-ID:asText")
    out = mime.public_part(m.bodyStructure, props, blob_id=lambda p: "B" + p["partId"])
    assert out["partId"] is None and out["blobId"] is None and out["type"] == "multipart/mixed"
    related, pdf = out["subParts"]
    assert related["subParts"][1] == {"partId": "3", "blobId": "B3", "type": "image/png", "name": None,
                                      "header:Content-ID:asText": "<logo@example.fr>"}
    assert "subParts" not in pdf and pdf["name"] == "résumé €.pdf"
    # The stored offsets and encoding never leak into an answer.
    default = mime.public_part(m.parts()["4"])
    assert set(default) == set(mime.DEFAULT_BODY_PROPERTIES)
    with pytest.raises(headers.HeaderFormError):
        mime.public_part(m.bodyStructure, ("header:From:asText",))
