"""The full-text interface, run as it is on SQLite (FTS5) and, with DATABASE_URL, PostgreSQL:
the same tests prove the same semantics on both."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fulltext import services as ft
from fulltext.services import And, Match, Not, Or
from mail.mime import parse

pytestmark = pytest.mark.django_db

A, B = 101, 202

DOCS = {
    1: {"subject": "Quarterly report for the board", "from": "Alice Martin <alice@example.org>",
        "to": "bob@example.net", "body": "Please find the numbers attached. Revenue grew nicely.",
        "attachmentNames": "report-q3.pdf"},
    2: {"subject": "Lunch on Friday?", "from": "Bob <bob@example.net>", "to": "alice@example.org",
        "cc": "carol@example.com", "body": "Shall we meet at the café near the station?"},
    3: {"subject": "Crème brûlée recipe", "from": "chef@cuisine.fr", "to": "alice@example.org",
        "bcc": "dave@example.org", "body": "Sugar, cream and eggs. Torch the top until golden."},
    4: {"subject": "会议通知", "from": "wang@example.cn", "to": "alice@example.org",
        "body": "明天下午三点在东京开会，请准时参加。"},
}


@pytest.fixture
def docs():
    for doc_id, fields in DOCS.items():
        ft.index(A, "email", doc_id, fields)


def found(query, account=A):
    return ft.search(account, "email", query)


@pytest.mark.parametrize("field,text,expected", [
    ("subject", "report", {1}),
    ("subject", "station", set()),          # in the body, not the subject
    ("from", "alice", {1}),
    ("from", "alice@example.org", {1}),    # an address is a phrase of its parts
    ("to", "alice", {2, 3, 4}),
    ("cc", "carol", {2}),
    ("bcc", "dave", {3}),
    ("body", "revenue", {1}),
    ("body", "report", set()),
    ("attachmentNames", "pdf", {1}),
    ("attachmentNames", "report q3", {1}),
    ("text", "report", {1}),               # subject and attachment name
    ("text", "carol", {2}),
    ("text", "example.org", {1, 2, 3, 4}),
])
def test_each_field(docs, field, text, expected):
    assert found(Match(field, text)) == expected


def test_words_are_all_required_and_case_does_not_matter(docs):
    assert found(Match("text", "LUNCH friday")) == {2}
    assert found(Match("text", "lunch revenue")) == set()


def test_phrases_keep_order_and_adjacency(docs):
    assert found(Match("body", '"find the numbers"')) == {1}
    assert found(Match("body", '"numbers the find"')) == set()
    assert found(Match("body", '"find numbers"')) == set()
    # An unpaired quote opens a phrase to the end of the text.
    assert found(Match("body", 'please "find the')) == {1}


def test_prefix(docs):
    assert found(Match("text", "quart*")) == {1}
    assert found(Match("subject", "rep*")) == {1}
    assert found(Match("text", "quart")) == set()  # whole words otherwise
    # A one-letter prefix is the word itself (not a scan of the index).
    assert found(Match("text", "q*")) == set()
    assert found(Match("text", "q3*")) == {1}


def test_and_or_not(docs):
    assert found(Or(Match("from", "alice"), Match("from", "bob"))) == {1, 2}
    assert found(And(Match("to", "alice"), Match("body", "station"))) == {2}
    assert found(And(Match("to", "alice"), Not(Match("body", "station")))) == {3, 4}
    assert found(Not(Match("text", "alice"))) == set()
    assert found(Not(Or(Match("subject", "lunch"), Match("subject", "report")))) == {3, 4}
    assert found(Or()) == set()
    assert found(And()) == {1, 2, 3, 4}


def test_diacritics_both_ways(docs):
    assert found(Match("subject", "creme brulee")) == {3}
    assert found(Match("subject", "CRÈME")) == {3}
    assert found(Match("body", "cafe")) == {2}
    assert found(Match("body", "café")) == {2}
    assert found(Match("body", "CAFÉ")) == {2}


def test_cjk_substrings(docs):
    # Chinese has no spaces: a query word is the phrase of its characters.
    assert found(Match("subject", "会议")) == {4}
    assert found(Match("subject", "通知")) == {4}
    assert found(Match("body", "东京")) == {4}
    assert found(Match("body", "京东")) == set()  # the characters, not in that order
    assert found(Match("text", "会通")) == set()


def test_japanese_and_korean():
    ft.index(A, "email", 9, {"subject": "東京タワーの見学", "body": "한국어 검색 테스트입니다"})
    assert found(Match("subject", "タワー")) == {9}
    assert found(Match("subject", "見学")) == {9}
    assert found(Match("body", "검색")) == {9}
    assert found(Match("body", "테스트")) == {9}


HOSTILE = ['"', '""', '"""', '*', '**', 'a*b*', '"*"', 'NEAR(', 'NEAR(a b, 2)', 'subject:report',
           '{subject} : x', ':', '&|!()', "'", "''", "\\", "a & b", "!report", "report | lunch",
           "(", ")", "^report", "-report", "report:*", "<->", "<2>", "'s:report'", "\x00",
           "AND", "OR NOT", "report AND", "NOT report", "+", "a:b:c", "x" * 5000,
           "report" + "\u0301" * 200, "\ufffd\ud7ff", "\ud800report", "🙂🙂🙂"]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("field", ["text", "subject", "from", "body"])
def test_hostile_queries_never_fail(docs, hostile, field):
    """FTS5's MATCH syntax and tsquery's: a user's characters never reach either."""
    query = Match(field, hostile)
    result = found(query)
    assert result <= {1, 2, 3, 4}
    ft.snippets(A, "email", [1, 2, 3, 4], query)
    assert found(Not(query)) == {1, 2, 3, 4} - result


def test_hostile_syntax_is_literal_words(docs):
    # "NEAR(" is the word near; "subject:report" is the phrase subject report, which no
    # document has in a row, and the operators are not operators.
    assert found(Match("text", "NEAR(")) == {2}
    assert found(Match("text", "report | lunch")) == set()
    assert found(Match("text", "!report")) == {1}
    assert found(Match("text", "subject:report")) == set()
    assert found(Match("text", '*')) == set()


def test_account_isolation_attacker(docs):
    """Account B indexed a word only it has; A's search and snippets never see B's document,
    even under the same document id."""
    ft.index(B, "email", 1, {"subject": "secret merger", "body": "confidential merger plans"})
    ft.index(B, "email", 77, {"subject": "secret merger", "body": "confidential merger plans"})
    assert found(Match("text", "merger")) == set()
    assert found(Not(Match("text", "merger"))) == {1, 2, 3, 4}
    assert found(Match("text", "merger"), account=B) == {1, 77}
    assert ft.snippets(A, "email", [77], Match("text", "merger")) == {}
    assert ft.snippet(A, "email", 1, Match("text", "merger")) == {"subject": None, "preview": None}
    # Another kind of the same account is apart too.
    assert ft.search(A, "contact", Match("text", "report")) == set()
    ft.delete(A, "email", [77])
    assert found(Match("text", "merger"), account=B) == {1, 77}


def test_delete_and_reindex(docs):
    ft.delete(A, "email", [1, 999])
    assert found(Match("text", "report")) == set()
    assert found(Match("text", "lunch")) == {2}
    ft.index(A, "email", 2, {"subject": "Dinner instead", "body": "Changed plans"})
    assert found(Match("text", "lunch")) == set()
    assert found(Match("subject", "dinner")) == {2}
    assert ft.snippet(A, "email", 2, Match("text", "plans"))["preview"] == "Changed <mark>plans</mark>"
    ft.purge(A)
    assert found(And()) == set()


def test_add_prepared_in_one_or_two_statements_replaces_an_older_version(docs):
    prepared = ft.prepare({"subject": "Fresh arrivals", "body": "nul\x00here"})  # no database
    with CaptureQueriesContext(connection) as ctx:
        ft.add(A, "email", 50, prepared)
    assert len(ctx.captured_queries) == (2 if connection.vendor == "sqlite" else 1)  # no savepoint
    assert found(Match("subject", "arrivals")) == {50} and found(Match("body", "here")) == {50}
    ft.add(A, "email", 2, ft.prepare({"subject": "Dinner instead"}))  # indexed before: replaced
    assert found(Match("text", "lunch")) == set()
    assert found(Match("subject", "dinner")) == {2}
    assert ft.snippet(A, "email", 2, Match("subject", "dinner"))["subject"] == "<mark>Dinner</mark> instead"


def test_broken_text_is_stored():
    """A broken message's NUL and lone surrogates (which PostgreSQL's jsonb refuses)."""
    ft.index(A, "email", 11, {"subject": "nul\x00here", "body": "half \ud800 pair\udfff ok"})
    assert found(Match("subject", "here")) == {11}
    assert found(Match("body", '"half pair ok"')) == {11}
    assert ft.snippet(A, "email", 11, Match("body", "pair"))["preview"] == "half \ufffd <mark>pair</mark>\ufffd ok"


def test_many_at_once():
    ft.index(A, "email", 1, {"subject": "old words"})
    ft.index_many(A, "email", [(i, {"subject": f"bulk item{i}"}) for i in range(1, 40_001)]
                  + [(3, {"subject": "given twice"})])
    assert found(Match("subject", "old")) == set()
    assert found(Match("subject", "item1")) == {1}
    assert found(Match("subject", "twice")) == {3}
    assert len(found(Match("subject", "bulk"))) == 39_999
    ft.delete(A, "email", range(1, 35_001))  # more ids than SQLite's parameters
    assert len(found(Match("subject", "bulk"))) == 5_000
    ft.index(B, "email", 1, {"subject": "bulk"})
    ft.purge(A)
    assert found(Match("subject", "bulk")) == set()
    assert found(Match("subject", "bulk"), account=B) == {1}


def test_unknown_fields_and_too_complex():
    with pytest.raises(ValueError):
        Match("header", "x")
    with pytest.raises(ValueError):
        ft.index(A, "email", 1, {"headers": "x"})
    with pytest.raises(ValueError):
        ft.index(A, "e" * 33, 1, {"subject": "x"})
    with pytest.raises(ft.TooComplex):
        ft.search(A, "email", Match("text", " ".join(["w"] * 65)))
    with pytest.raises(ft.TooComplex):
        ft.search(A, "email", Or(*[Match("text", "w")] * 300))


def test_query_counts(docs, django_assert_max_num_queries):
    # SAVEPOINT, the row's id, its INSERT or UPDATE, the FTS5 row (SQLite), RELEASE.
    with django_assert_max_num_queries(5):
        ft.index(A, "email", 5, {"subject": "new", "body": "text"})
    with django_assert_max_num_queries(5):
        ft.index(A, "email", 5, {"subject": "again", "body": "text"})
    with django_assert_max_num_queries(1):
        ft.search(A, "email", And(Match("text", "alice"), Not(Match("subject", "lunch")), Or(
            Match("body", "eggs"), Match("attachmentNames", "pdf"))))
    with django_assert_max_num_queries(1):
        ft.snippets(A, "email", [1, 2, 3, 4], Match("text", "alice"))


@pytest.mark.parametrize("dense", [0, 10**12], ids=["probe-per-row", "list-of-matches"])
def test_one_query_with_the_callers_filter_sort_and_page(make_account, monkeypatch, dense):
    """Email/query's shape: the caller's model, its own filter, sort and page, and the text
    condition as a subquery: one SQL statement (on SQLite, after one count per condition,
    which picks the statement's form; on PostgreSQL after its planner's estimate: both forms are
    run here)."""
    from accounts.models import Account

    monkeypatch.setattr(ft, "SQLITE_DENSE", dense)
    monkeypatch.setattr(ft, "PG_DENSE", dense)
    people = [make_account(name) for name in ("anna", "bert", "cleo", "dora")]
    for acc in people:
        ft.index(A, "account", acc.pk, {"body": f"profile of {acc.name} with notes"})
    ft.index(B, "account", people[0].pk, {"body": "profile"})
    query = And(Match("body", "profile notes"), Not(Match("body", "bert")))
    with CaptureQueriesContext(connection) as ctx:
        names = list(Account.objects.filter(kind="user").filter(ft.q(A, "account", query))
                     .order_by("-name").values_list("name", flat=True)[:2])
    assert names == ["dora", "cleo"]
    # SQLite: the index's size, each condition's matches, then the statement. PostgreSQL: the
    # planner's estimate of the matches, the index's size, then the statement.
    assert len(ctx.captured_queries) == (4 if connection.vendor == "sqlite" else 3)
    # Every shape of tree gives the same answer as search(), in either form.
    ids = {acc.pk: acc.name for acc in people}
    for tree in (Match("text", "profile"), Not(Match("text", "anna")), Or(Match("body", "anna"), Match("body", "cleo")),
                 And(Match("body", "notes"), Or(Not(Match("body", "dora")), Match("body", "zzz"))), Match("text", "!!"),
                 Not(Match("text", "!!")), Or(), And()):
        got = set(Account.objects.filter(ft.q(A, "account", tree)).values_list("name", flat=True))
        assert got == {ids[i] for i in ft.search(A, "account", tree)}, tree
    # The other account's document under anna's id is never seen.
    assert not Account.objects.filter(ft.q(B, "account", Match("text", "notes"))).exists()


def test_parsed_message_is_indexed_as_is():
    raw = (b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.org>\r\nTo: bob@example.net\r\n"
           b"Subject: Invoice\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p>Your <b>balance</b> is due &amp; payable</p>\r\n"
           b"--b\r\nContent-Type: application/pdf\r\n"
           b'Content-Disposition: attachment; filename="statement-2026.pdf"\r\n\r\nJVBER\r\n--b--\r\n')
    ft.index(A, "email", 8, parse(raw).search)
    assert found(Match("from", "renee")) == {8}
    assert found(Match("body", '"balance is due"')) == {8}
    assert found(Match("body", "p")) == set()  # the HTML was converted, tags are not words
    assert found(Match("attachmentNames", "statement")) == {8}


@pytest.mark.parametrize("word", ["w{}x", "{:060d}", "same"])
def test_large_document_is_indexed(word):
    """Far more words than PostgreSQL's tsvector holds (1 MB of lexemes, 256 positions per
    lexeme, positions up to 16383): indexed (the first words on PostgreSQL), never an error."""
    body = " ".join(word.format(i) for i in range(250_000))
    ft.index(A, "email", 6, {"subject": "huge", "body": body + " last"})
    assert found(Match("body", word.format(5))) == {6}
    assert found(Match("subject", "huge")) == {6}
    assert found(Match("body", f'"{word.format(1)} {word.format(2)}"')) == {6}


# --- Snippets (RFC 8621 §5) --------------------------------------------------------------------

def test_snippet_marks_subject_and_preview(docs):
    got = ft.snippet(A, "email", 2, Match("text", "café station"))
    assert got == {"subject": None,
                   "preview": "Shall we meet at the <mark>café</mark> near the <mark>station</mark>?"}
    got = ft.snippet(A, "email", 3, Match("subject", "creme"))
    assert got == {"subject": "<mark>Crème</mark> brûlée recipe", "preview": None}
    got = ft.snippet(A, "email", 1, Match("text", "repor*"))
    assert got["subject"] == "Quarterly <mark>report</mark> for the board"
    got = ft.snippet(A, "email", 4, Match("body", "东京"))
    assert got["preview"] == "明天下午三点在<mark>东京</mark>开会，请准时参加。"


def test_snippet_leaves_out_negated_words(docs):
    got = ft.snippet(A, "email", 1, And(Match("body", "revenue"), Not(Match("body", "numbers"))))
    assert got["preview"] == "Please find the numbers attached. <mark>Revenue</mark> grew nicely."


def test_snippet_escapes_markup_attacker():
    """A subject or body that is markup comes back escaped; only our <mark> is markup."""
    ft.index(A, "email", 7, {
        "subject": '<script>alert("x")</script> <mark>fake</mark> & hello',
        "body": "<img src=x onerror=alert(1)> hello </mark><b>bold</b>",
    })
    got = ft.snippet(A, "email", 7, Match("text", "hello"))
    assert got["subject"] == ('&lt;script&gt;alert("x")&lt;/script&gt; &lt;mark&gt;fake&lt;/mark&gt; '
                              '&amp; <mark>hello</mark>')
    assert got["preview"] == "&lt;img src=x onerror=alert(1)&gt; <mark>hello</mark> &lt;/mark&gt;&lt;b&gt;bold&lt;/b&gt;"
    got = ft.snippet(A, "email", 7, Match("text", "<mark>"))
    assert "<mark>mark</mark>" in got["subject"] and "<mark><" not in got["subject"]


def test_preview_is_a_window_of_at_most_255_octets():
    body = ("Lorem ipsum dolor sit amet " * 40) + "the needle <&> is here " + ("é" * 300)
    ft.index(A, "email", 10, {"body": body})
    preview = ft.snippet(A, "email", 10, Match("body", "needle"))["preview"]
    assert "<mark>needle</mark> &lt;&amp;&gt; is here" in preview
    assert len(preview.encode()) <= 255
    assert not preview.startswith("Lorem ipsum dolor sit amet Lorem")  # around the match
    assert preview.endswith("é")  # cut at a character, not inside one
