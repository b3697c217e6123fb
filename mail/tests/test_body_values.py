"""Body values (RFC 8621 §4.1.4, §4.2 maxBodyValueBytes), the part algorithm and base subjects."""

import pytest

from mail import mime


def one_part(body: bytes, ctype=b"text/plain; charset=utf-8", cte=b"8bit"):
    raw = (b"From: a@example.com\r\nContent-Type: " + ctype + b"\r\nContent-Transfer-Encoding: "
           + cte + b"\r\n\r\n" + body)
    return raw, mime.parse(raw).bodyStructure


def test_truncation_on_a_character_boundary():
    raw, part = one_part("aé€😀".encode())  # 1 + 2 + 3 + 4 octets
    expect = {1: "a", 2: "a", 3: "aé", 4: "aé", 5: "aé", 6: "aé€", 9: "aé€", 10: "aé€😀"}
    for max_bytes, value in expect.items():
        got = mime.body_value(raw, part, max_bytes)
        assert got["value"] == value, max_bytes
        assert got["isTruncated"] is (max_bytes < 10)
        assert len(got["value"].encode()) <= max_bytes
    assert mime.body_value(raw, part, 0) == {"value": "aé€😀", "isEncodingProblem": False,
                                              "isTruncated": False}


def test_truncation_counts_utf8_octets_of_the_decoded_value_not_of_the_source():
    raw, part = one_part("ÀÀÀÀ".encode("latin-1"), b"text/plain; charset=iso-8859-1")
    got = mime.body_value(raw, part, 5)
    assert got == {"value": "ÀÀ", "isEncodingProblem": False, "isTruncated": True}


def test_invalid_utf8_is_an_encoding_problem_not_an_error():
    raw, part = one_part(b"ok \xff\xfe end")
    assert mime.body_value(raw, part) == {"value": "ok \ufffd\ufffd end", "isEncodingProblem": True,
                                          "isTruncated": False}


def test_unknown_transfer_encoding_is_an_encoding_problem():
    raw, part = one_part(b"text", cte=b"x-weird")
    assert mime.body_value(raw, part)["isEncodingProblem"] is True


def test_quoted_printable_and_base64():
    raw, part = one_part(b"caf=C3=A9 soft=\r\nbreak", cte=b"Quoted-Printable")
    assert mime.body_value(raw, part)["value"] == "café softbreak"
    raw, part = one_part(b"Y2Fmw6k=\r\n", cte=b"BASE64")
    assert mime.body_value(raw, part)["value"] == "café"
    assert part["size"] == 5


def build(tree, boundary_seq=iter(range(10**6))):
    """A raw MIME message from (type, children|body, extra headers)."""
    ctype, content, extra = tree
    if isinstance(content, list):
        b = f"b{next(boundary_seq)}"
        body = "".join(f"--{b}\r\n{build(c)}\r\n" for c in content) + f"--{b}--\r\n"
        return f"Content-Type: {ctype}; boundary={b}\r\n{extra}\r\n{body}"
    return f"Content-Type: {ctype}\r\n{extra}\r\n{content}"


@pytest.mark.parametrize("tree,text,html,att", [
    # In the shape of RFC 8621 §4.1.4's example: an alternative of two mixed parts, each with
    # an inline image (an attachment too, since one of the lists is null in that branch).
    (("multipart/mixed", [
        ("text/plain", "A", ""),
        ("multipart/alternative", [
            ("multipart/mixed", [("text/plain", "B", ""), ("image/jpeg", "C", "")], ""),
            ("multipart/mixed", [("text/html", "D", ""), ("image/jpeg", "E", "")], ""),
        ], ""),
        ("text/plain", "F", "Content-Disposition: inline\r\n"),
        ("image/png", "G", "Content-Disposition: attachment\r\n"),
    ], ""), ["1", "2", "3", "6"], ["1", "4", "5", "6"], ["3", "5", "7"]),
    # text/plain only in an alternative: the HTML list falls back to it.
    (("multipart/alternative", [("text/plain", "x", "")], ""), ["1"], ["1"], []),
    # related: only the first part is a body.
    (("multipart/related", [("text/html", "<p>", ""), ("text/plain", "y", "")], ""),
     ["1"], ["1"], ["2"]),
    # Named text part after the first in a mixed: an attachment.
    (("multipart/mixed", [("text/plain", "a", ""),
                          ("text/plain; name=x.txt", "b", "")], ""), ["1"], ["1"], ["2"]),
])
def test_text_html_attachments_algorithm(tree, text, html, att):
    m = mime.parse(build(tree).encode())
    assert (m.textBody, m.htmlBody, m.attachments) == (text, html, att)


@pytest.mark.parametrize("subject,base", [
    ("Re: hello", "hello"),
    ("RE: Re: re:hello", "hello"),
    ("Fwd: Fw: hello (fwd)", "hello"),
    ("Re[2]: hello", "hello"),  # subj-refwd allows a blob between "re" and ":"
    ("Re [2]: hello", "hello"),
    ("[list] Re: hello", "hello"),
    ("[list]", "[list]"),
    ("[Fwd: Re: hello]", "hello"),
    ("  hello \t world  ", "hello world"),
    ("", ""),
    (None, ""),
])
def test_base_subject(subject, base):
    assert mime.base_subject(subject) == base


def test_inline_images_around_an_alternative_are_body_parts():
    # The shape of mail-parser's issue 107 (an image before the alternative), written anew:
    # per RFC 8621 §4.1.4 inline images in a mixed go into both body lists, not attachments.
    tree = ("multipart/mixed", [
        ("image/png; name=a.png", "iVBORw0KGgo=", "Content-Disposition: inline; filename=a.png\r\n"),
        ("multipart/alternative", [("text/plain", "plain", ""), ("text/html", "<b>html</b>", "")], ""),
        ("image/png; name=b.png", "iVBORw0KGgo=", "Content-Disposition: inline; filename=b.png\r\n"),
    ], "")
    m = mime.parse(build(tree).encode())
    assert (m.textBody, m.htmlBody, m.attachments) == (["1", "2", "4"], ["1", "3", "4"], [])
    assert m.hasAttachment is False
    assert m.preview == "plain"  # the first text part, not the image


def test_base_subject_of_hostile_lengths():
    assert mime.base_subject("Re: " * 100_000 + "x") == "x"
    assert mime.base_subject("[a] " * 100_000 + "x") == "x"
    assert mime.base_subject("[a] " * 3) == "[a]"
    assert mime.base_subject("x" + " (fwd)" * 100_000) == "x"
    assert mime.base_subject("[fwd: " * 10 + "x" + "]" * 10) == "x"


def test_huge_bodies_are_bounded_in_the_search_text(monkeypatch):
    monkeypatch.setattr(mime, "MAX_HTML_TO_TEXT", 1000)
    monkeypatch.setattr(mime, "MAX_SEARCH_BODY", 5000)
    html = ("<p>" + "word " * 2000 + "</p>").encode()
    raw, part = one_part(html, b"text/html; charset=utf-8")
    m = mime.parse(raw)
    assert 0 < len(m.search["body"]) < 1000  # only the first 1000 characters were converted
    assert m.preview.startswith("word word")
    raw, part = one_part(b"x" * 20000)
    assert len(mime.parse(raw).search["body"]) == 5000
    # The body value itself is never cut but by maxBodyValueBytes.
    assert len(mime.body_value(raw, part)["value"]) == 20000
