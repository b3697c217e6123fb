"""Email/query's text filters over the full-text index and SearchSnippet/get (RFC 8621 §4.4.1,
§5), over HTTP with corpus messages: each field, the operators with other conditions, destroy,
account deletion, the attacker's tests and the query counts."""
from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from fulltext import services as ft
from fulltext.models import Document
from mail import store
from mail.models import Email
from registry import ids

from .conftest import CORPUS, message


def corpus(name: str) -> bytes:
    return next(CORPUS.glob(f"{name}-*.eml")).read_bytes()


@pytest.fixture
def mailbox(alice):
    """alice with corpus messages imported over JMAP: {corpus number: email id}."""
    got = {n: alice.import_(corpus(n))["id"] for n in ("01", "02", "03", "04", "06", "07", "08", "09")}
    got["bcc"] = alice.import_(message("Blind", body="Nothing to see", extra="Bcc: Hidden One <hidden@example.net>"),
                               mailbox="archive", keywords={"$seen": True})["id"]
    return got


def query(who, filt, **args):
    return set(who.ok("Email/query", {"filter": filt, **args})["ids"])


@pytest.mark.parametrize("filt, expected", [
    ({"from": "alice"}, {"01", "09"}),
    ({"from": "renee@example.fr"}, {"02"}),
    ({"from": "Jurgen"}, {"04"}),                # diacritics folded both ways
    ({"from": "田中"}, {"06"}),
    ({"to": "carol"}, {"01"}),
    ({"to": "elise"}, {"08"}),
    ({"cc": "dave"}, {"01"}),
    ({"cc": "alice"}, set()),
    ({"bcc": "hidden"}, {"bcc"}),
    ({"subject": "quarterly planning"}, {"01"}),
    ({"subject": "planning"}, {"01"}),
    ({"subject": "Thursday"}, set()),            # in the body only
    ({"subject": "отчёт"}, {"07"}),
    ({"subject": "会議"}, {"06"}),
    ({"body": "Thursday"}, {"01"}),
    ({"body": "Как дела"}, {"07"}),
    ({"body": "bonjour"}, {"02"}),
    ({"body": "planning meeting"}, {"01"}),
    ({"body": '"meeting planning"'}, set()),     # a phrase keeps its order
    ({"body": "plan*"}, {"01"}),
    ({"text": "resume"}, {"02"}),                # an attachment's name
    ({"text": "original"}, {"09"}),
    ({"text": "cafe"}, {"08"}),
    ({"text": "koln"}, {"03", "04"}),
    ({"text": "example"}, {"01", "02", "03", "04", "06", "07", "08", "09", "bcc"}),
    ({"text": "nowhere-to-be-found"}, set()),
])
def test_each_text_filter_finds_what_it_should(alice, mailbox, filt, expected):
    assert query(alice, filt) == {mailbox[n] for n in expected}


def test_operators_and_other_conditions(alice, mailbox):
    inbox = alice.mailboxes()["inbox"]
    m = mailbox
    assert query(alice, {"text": "example", "inMailbox": inbox}) == {m[n] for n in ("01", "02", "03", "04", "06",
                                                                                      "07", "08", "09")}
    assert query(alice, {"operator": "AND", "conditions": [{"from": "alice"}, {"body": "forwarding"}]}) == {m["09"]}
    assert query(alice, {"operator": "OR", "conditions": [{"subject": "grüße"}, {"bcc": "hidden"}]}) == {
        m["04"], m["bcc"]}
    assert query(alice, {"operator": "NOT", "conditions": [{"text": "example.com"}]}) == {m["04"], m["06"], m["07"]}
    assert query(alice, {"operator": "AND", "conditions": [
        {"text": "example"}, {"operator": "NOT", "conditions": [{"from": "alice"}, {"text": "koln"}]},
        {"hasKeyword": "$seen"}]}) == {m["bcc"]}
    # The mailbox fast path (one condition with inMailbox) and text conditions together.
    assert query(alice, {"inMailbox": inbox, "from": "alice", "body": "thursday"}) == {m["01"]}
    assert query(alice, {"inMailbox": alice.mailboxes()["archive"], "text": "hidden"}) == {m["bcc"]}
    got = alice.ok("Email/query", {"filter": {"text": "example"}, "sort": [{"property": "subject"}],
                                   "calculateTotal": True, "limit": 3})
    assert got["total"] == 9 and len(got["ids"]) == 3


def test_destroyed_email_no_longer_matches(alice, mailbox):
    gone = mailbox["01"]
    got = alice.ok("Email/set", {"destroy": [gone]})
    assert got["destroyed"] == [gone]
    assert query(alice, {"body": "thursday"}) == set()
    assert query(alice, {"from": "alice"}) == {mailbox["09"]}
    assert not Document.objects.filter(account_id=alice.pk, doc_id=ids.decode(gone)).exists()
    assert alice.ok("SearchSnippet/get", {"emailIds": [gone], "filter": {"body": "thursday"}})["notFound"] == [gone]


def test_account_deletion_purges_its_index(alice, mailbox, mallory):
    mallory.import_(corpus("01"))
    Account.objects.get(pk=alice.pk).delete()
    assert not Document.objects.filter(account_id=alice.pk).exists()
    assert Document.objects.filter(account_id=mallory.pk).count() == 1


def test_another_accounts_messages_never_match_attacker(alice, mailbox, mallory):
    mine = mallory.import_(message("Quarterly planning secret", body="Thursday planning meeting", sender="alice@example.org"))
    for filt in ({"subject": "secret"}, {"text": "secret"}, {"body": "thursday"}, {"from": "alice"}):
        assert mine["id"] not in query(alice, filt)
        assert mailbox["01"] not in query(mallory, filt)
    # Alice's ids answer notFound to mallory, and no snippet of them leaks.
    got = mallory.ok("SearchSnippet/get", {"emailIds": [mailbox["01"], mine["id"]], "filter": {"text": "planning"}})
    assert got["notFound"] == [mailbox["01"]]
    assert [s["emailId"] for s in got["list"]] == [mine["id"]]
    assert "secret" in got["list"][0]["subject"]
    got = alice.ok("SearchSnippet/get", {"emailIds": [mine["id"]], "filter": {"text": "secret"}})
    assert got["list"] == [] and got["notFound"] == [mine["id"]]
    assert alice.error("SearchSnippet/get", {"accountId": mallory.account_id, "emailIds": [mine["id"]],
                                             "filter": {"text": "secret"}})["type"] in ("accountNotFound", "forbidden")


@pytest.mark.parametrize("text", [
    '"', '""', '"unclosed phrase', "*", "a*", "**", "NEAR(a b)", "a OR b", "AND", "NOT", "col:x", "{subject}: x",
    "^start", "x\x00y", "'; DROP TABLE mail_email; --", "\\", "%_%", "(", ")", "-x", "+x", "a & b | !c",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ﷺ", "x" * 65, "é" * 999,
])
def test_hostile_query_text_never_fails_the_server(alice, mailbox, text):
    # The engine refuses a NUL in any argument (invalidArguments; a lone surrogate is a request
    # error, notJSON, before any method); anything else is a query like any other.
    refused = "\x00" in text
    for name in ("text", "from", "subject", "body", "bcc"):
        for method, args in (("Email/query", {}), ("SearchSnippet/get", {"emailIds": [mailbox["01"]]})):
            got = alice.call(method, {**args, "filter": {name: text}})
            if refused:
                assert got[0] == "error" and got[1]["type"] == "invalidArguments", got
            else:
                assert got[0] == method, got


def test_too_complex_filters_are_unsupported(alice, mailbox):
    many_words = " ".join(f"w{i}" for i in range(ft.text.MAX_QUERY_WORDS + 1))
    for name in ("Email/query", "SearchSnippet/get"):
        args = {"emailIds": [mailbox["01"]]} if name == "SearchSnippet/get" else {}
        assert alice.error(name, {**args, "filter": {"text": many_words}})["type"] == "unsupportedFilter"
        wide = {"operator": "OR", "conditions": [{"text": f"w{i}"} for i in range(300)]}
        assert alice.error(name, {**args, "filter": wide})["type"] == "unsupportedFilter"
        assert alice.error(name, {**args, "filter": {"text": 5}})["type"] == "unsupportedFilter"
        assert alice.error(name, {**args, "filter": {"nope": "x"}})["type"] == "unsupportedFilter"
        assert alice.error(name, {**args, "filter": {"operator": "XOR", "conditions": []}})["type"] == \
            "unsupportedFilter"


def test_snippets_highlight_and_escape(alice, mailbox):
    hostile = alice.import_(message("<script>alert(1)</script> invoice & co",
                                    body="Pay the <b>invoice</b> now & <img src=x onerror=alert(1)>"))["id"]
    got = alice.ok("SearchSnippet/get", {"emailIds": [hostile, mailbox["01"]], "filter": {"text": "invoice"}})
    assert got["accountId"] == alice.account_id and got["notFound"] is None
    by_id = {s["emailId"]: s for s in got["list"]}
    assert [s["emailId"] for s in got["list"]] == [hostile, mailbox["01"]]
    snippet = by_id[hostile]
    assert snippet["subject"] == "&lt;script&gt;alert(1)&lt;/script&gt; <mark>invoice</mark> &amp; co"
    assert "<mark>invoice</mark>" in snippet["preview"]
    assert "<b>" not in snippet["preview"] and "<img" not in snippet["preview"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in snippet["preview"]
    assert by_id[mailbox["01"]] == {"emailId": mailbox["01"], "subject": None, "preview": None}
    # Subject and body conditions highlight their own field; a NOT highlights nothing.
    got = alice.ok("SearchSnippet/get", {"emailIds": [mailbox["01"]], "filter": {"operator": "AND", "conditions": [
        {"subject": "planning"}, {"body": "thursday"}, {"operator": "NOT", "conditions": [{"body": "bob"}]}]}})
    snippet = got["list"][0]
    assert "<mark>planning</mark>" in snippet["subject"] and "thursday" not in snippet["subject"].lower()
    assert "<mark>Thursday</mark>" in snippet["preview"] and "<mark>Bob" not in snippet["preview"]
    assert len(snippet["preview"].encode()) <= 255
    # No filter (or no text condition): the emails are there, nothing is highlighted.
    for filt in (None, {"hasKeyword": "$seen"}):
        got = alice.ok("SearchSnippet/get", {"emailIds": [mailbox["04"]], "filter": filt})
        assert got["list"] == [{"emailId": mailbox["04"], "subject": None, "preview": None}]


def test_snippet_arguments(alice, mailbox):
    assert alice.error("SearchSnippet/get", {"filter": {"text": "x"}})["type"] == "invalidArguments"
    assert alice.error("SearchSnippet/get", {"emailIds": "x"})["type"] == "invalidArguments"
    too_many = [f"M{i}" for i in range(101)]
    assert alice.error("SearchSnippet/get", {"emailIds": too_many})["type"] == "requestTooLarge"
    got = alice.ok("SearchSnippet/get", {"emailIds": ["nonsense", "Mzz", mailbox["02"]], "filter": {"body": "photo"}})
    assert got["notFound"] == ["nonsense", "Mzz"]
    assert got["list"][0]["preview"] == "Bonjour à tous, voici la <mark>photo</mark>. Bonjour à tous, voici la " \
                                        "<mark>photo</mark>."
    # The capability is required, as for every mail method.
    got = alice.call("SearchSnippet/get", {"emailIds": []}, using=["urn:ietf:params:jmap:core"])
    assert got[0] == "error" and got[1]["type"] == "unknownMethod"
    # Result references: snippets of a query's ids, in one request.
    responses = alice.request([
        ["Email/query", {"accountId": alice.account_id, "filter": {"text": "koln"}, "sort": [
            {"property": "subject", "isAscending": True}]}, "q"],
        ["SearchSnippet/get", {"accountId": alice.account_id, "filter": {"text": "koln"},
                               "#emailIds": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "s"]])
    listed = responses[1][1]["list"]
    assert [s["emailId"] for s in listed] == [mailbox["03"], mailbox["04"]]
    assert "<mark>Köln</mark>" in listed[1]["preview"]


def _fill(account_pk, mailbox_pk, n, start):
    for i in range(start, start + n):
        store.import_raw(account_pk, message(f"Report {i} zebra" if i % 2 else f"Note {i}",
                                             body=f"Body {i} about zebras and lions"), [mailbox_pk])


def test_text_query_and_snippets_query_counts_do_not_grow(alice):
    inbox = ids.decode(alice.mailboxes()["inbox"])
    cases = [
        ("Email/query", {"filter": {"text": "zebra"}, "limit": 20}),
        ("Email/query", {"filter": {"inMailbox": ids.encode(inbox), "body": "lions"}, "limit": 20,
                         "calculateTotal": True}),
        ("Email/query", {"filter": {"operator": "OR", "conditions": [{"subject": "report"}, {"from": "bob"}]},
                         "collapseThreads": True, "limit": 20}),
    ]
    counts, sizes = [], []
    for start, n in ((0, 6), (6, 40)):
        _fill(alice.pk, inbox, n, start)
        row = []
        for name, args in cases:
            with CaptureQueriesContext(connection) as ctx:
                got = alice.ok(name, args)
            sizes.append(len(got["ids"]))
            row.append(len(ctx))
        page = alice.ok("Email/query", {"filter": {"text": "zebra"}, "limit": 20})["ids"]
        with CaptureQueriesContext(connection) as ctx:
            got = alice.ok("SearchSnippet/get", {"emailIds": page, "filter": {"text": "zebra"}})
        assert all("<mark>zebra</mark>" in s["subject"] for s in got["list"])
        row.append(len(ctx))
        counts.append(row)
    assert counts[0] == counts[1], counts
    assert sizes[:3] == [3, 6, 6] and sizes[3:] == [20, 20, 20], sizes


@pytest.mark.django_db(transaction=True)
def test_the_migration_indexes_emails_stored_before_it(make_account):
    account = make_account("olduser")
    executor = MigrationExecutor(connection)
    target = [("mail", "0001_mailstore_initial")]
    executor.migrate(target)
    try:
        old = executor.loader.project_state(target).apps
        thread = old.get_model("mail", "Thread").objects.create(account_id=account.pk)
        email = old.get_model("mail", "Email").objects.create(
            account_id=account.pk, blob_id="x", thread=thread, meta={}, received_at="2026-12-01T00:00:00Z", size=1,
            search={"subject": "Legacy zeppelin", "from": "old@example.org", "body": "stored before the index",
                    "attachmentNames": "", "headers": "\nsubject: Legacy zeppelin"})
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert ft.search(account.pk, "email", ft.Match("subject", "zeppelin")) == {email.pk}
    assert ft.search(account.pk, "email", ft.Match("body", "before index")) == {email.pk}
    assert Email.objects.get(pk=email.pk).search == {"headers": "\nsubject: Legacy zeppelin"}
