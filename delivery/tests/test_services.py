"""deliver(): recipients resolved, Sieve actions carried out, the vacation response sent, quota
and failures answered per recipient, and what is filed readable through JMAP Email/get."""
from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest

from accounts.models import Alias
from blobs import services as blobs
from blobs.models import Blob, Hold
from delivery import services
from journal.models import Entry
from mail import store
from mail.models import Email, Mailbox, Thread

from .conftest import MAIL, break_store_of, message

pytestmark = pytest.mark.django_db


def replies(outcomes):
    return [o.reply() for o in outcomes]


def test_plain_delivery_lands_in_the_inbox_and_reads_back_over_jmap(alice):
    raw = message(subject="Lunch?", body="Are you free on Friday?")
    got = services.deliver(raw, "carol@example.net", ["alice@example.org"])
    assert replies(got) == ["250 2.0.0 Delivered"]
    (row,) = alice.emails("inbox")
    listed = alice.ok("Email/get", {"ids": None, "properties": ["subject", "from", "mailboxIds", "keywords", "size",
                                                                "bodyValues", "textBody"],
                                    "fetchTextBodyValues": True}, using=["urn:ietf:params:jmap:core", MAIL])
    (mail,) = listed["list"]
    assert mail["subject"] == "Lunch?" and mail["from"] == [{"name": "Carol", "email": "carol@example.net"}]
    assert mail["keywords"] == {} and mail["size"] == len(raw)
    assert mail["bodyValues"][mail["textBody"][0]["partId"]]["value"].strip() == "Are you free on Friday?"
    # The write was journaled: a syncing client sees the new email.
    assert Entry.objects.filter(account_id=alice.pk, type="Email").count() == 1


def test_unknown_recipients_fail_alone_and_aliases_reach_their_account(alice, bob, domain):
    Alias.objects.create(account=bob.account, name="sales", domain=domain)
    got = services.deliver(message(), "carol@example.net",
                           ["nobody@example.org", "alice@example.org", "<Sales@Example.org>", "bob+lists@example.org",
                            "alice@elsewhere.test"])
    assert replies(got) == ["550 5.1.1 Mailbox not found.", "250 2.0.0 Delivered", "250 2.0.0 Delivered",
                            "250 2.0.0 Delivered", "550 5.1.1 Mailbox not found."]
    assert len(alice.emails()) == 1
    # Two addresses of Bob's: one copy (the reference files a message once per account).
    assert len(bob.emails()) == 1


def test_a_catch_all_alias_takes_any_address_of_its_domain(bob, domain):
    Alias.objects.create(account=bob.account, name="*", domain=domain)
    assert replies(services.deliver(message(), "", ["whoever@example.org"])) == ["250 2.0.0 Delivered"]
    assert len(bob.emails()) == 1


def test_fileinto_with_flags_discard_and_a_missing_mailbox(alice):
    Mailbox.objects.create(account_id=alice.pk, name="Invoices")
    alice.install('require ["fileinto", "imap4flags"];\r\n'
                  'if header :contains "subject" "invoice" { fileinto :flags ["\\\\Seen", "$Paid"] "Invoices"; stop; }\r\n'
                  'if header :contains "subject" "spam" { discard; stop; }\r\n'
                  'if header :contains "subject" "nowhere" { fileinto "No/Such/Box"; stop; }\r\n'
                  'if header :contains "subject" "junk" { fileinto "junk"; }\r\n')
    assert replies(services.deliver(message(subject="Invoice 42"), "c@example.net", ["alice@example.org"])) == [
        "250 2.0.0 Delivered"]
    (invoice,) = alice.emails("Invoices")
    assert invoice.keywords == {"$seen": True, "$paid": True}
    assert replies(services.deliver(message(subject="spam spam"), "c@example.net", ["alice@example.org"])) == [
        "250 2.0.0 Discarded"]
    services.deliver(message(subject="nowhere"), "c@example.net", ["alice@example.org"])
    services.deliver(message(subject="junk offer"), "c@example.net", ["alice@example.org"])
    assert [e.meta["subject"] for e in alice.emails("inbox")] == ["nowhere"]
    assert [e.meta["subject"] for e in alice.emails("junk")] == ["junk offer"]
    assert len(alice.emails()) == 3


def test_two_copies_of_one_message_share_its_blob(alice):
    """A script that files a read copy and keeps another: two emails in one transaction, one
    blob (one file, written before the transaction), the counters those of a recount."""
    invoices = Mailbox.objects.create(account_id=alice.pk, name="Invoices")
    alice.install('require ["fileinto", "imap4flags"];\r\nfileinto :flags ["\\\\Seen"] "Invoices";\r\nkeep;\r\n')
    assert replies(services.deliver(message(subject="Invoice 43"), "c@example.net", ["alice@example.org"])) == [
        "250 2.0.0 Delivered"]
    (read,), (kept,) = alice.emails("Invoices"), alice.emails("inbox")
    assert (read.keywords, kept.keywords) == ({"$seen": True}, {})
    assert read.blob_id == kept.blob_id and read.thread_id == kept.thread_id
    held = Hold.objects.filter(owner_kind=store.OWNER).values_list("account_blob__blob_id", "owner_id")
    assert sorted(held) == sorted((blob, str(pk)) for blob in {b for b, _ in held} for pk in (read.pk, kept.pk))
    assert files_without_rows() == []
    counts = store.mailbox_counts(alice.pk, [invoices.pk, kept.memberships.get().mailbox_id])
    assert {pk: {n: getattr(box, c) for n, c in store.COUNTS} for pk, box in
            Mailbox.objects.in_bulk(list(counts)).items()} == counts
    assert counts[invoices.pk] == {"totalEmails": 1, "unreadEmails": 0, "totalThreads": 1, "unreadThreads": 0}


def test_reject_and_ereject_refuse_with_the_reason_and_store_nothing(alice, bob):
    alice.install('require ["reject"];\r\nreject "I do not want\r\nthis.";\r\n')
    bob.install('require ["ereject"];\r\nereject "Go away";\r\n')
    got = services.deliver(message(), "c@example.net", ["alice@example.org", "bob@example.org"])
    assert replies(got) == ["550 5.7.1 I do not want this.", "550 5.7.1 Go away"]
    assert not Email.objects.exists()


def test_over_quota_is_a_temporary_failure_and_nothing_is_kept(alice, bob):
    bob.account.max_disk_quota = 10
    bob.account.save()
    # Setting the limit journals the account's Quota object: only what delivery writes counts.
    before = set(Entry.objects.filter(account_id=bob.pk).values_list("pk", flat=True))
    got = services.deliver(message(body="x" * 200), "c@example.net", ["bob@example.org", "alice@example.org"])
    assert replies(got) == ["452 4.2.2 Mailbox over quota.", "250 2.0.0 Delivered"]
    assert not bob.emails() and not Thread.objects.filter(account_id=bob.pk).exists()
    assert set(Entry.objects.filter(account_id=bob.pk).values_list("pk", flat=True)) == before
    assert len(alice.emails()) == 1
    assert files_without_rows() == []


def test_a_database_failure_answers_451_and_leaves_nothing(alice, bob):
    break_store_of(bob.pk)
    got = services.deliver(message(), "c@example.net", ["bob@example.org", "alice@example.org"])
    assert replies(got) == ["451 4.3.0 Transient server failure.", "250 2.0.0 Delivered"]
    assert not Email.objects.filter(account_id=bob.pk).exists()
    assert not Thread.objects.filter(account_id=bob.pk).exists()
    assert not Entry.objects.filter(account_id=bob.pk).exists()
    assert len(alice.emails()) == 1
    # Bob's copy of the file, written before his transaction, went with it; Alice's stays.
    assert files_without_rows() == [] and Blob.objects.count() == 1


def files_without_rows() -> list[str]:
    """The blob files no Blob row names: delivery writes the file before its transaction and
    must remove it when that fails (or when the content was stored already)."""
    named = set(Blob.objects.values_list("name", flat=True))
    return [name for name in blobs._walk(blobs.storage()) if name not in named]


def test_malformed_messages_are_stored(alice):
    for raw in (b"no headers at all, just text", b"Subject: =?utf-8?B?broken\r\nContent-Type: multipart/mixed\r\n\r\n--",
                b"\x00\xff\xfe garbage\r\n\r\n\xff", b"From: <>\r\nContent-Type: text/plain; charset=nope\r\n\r\n\xe9t\xe9"):
        assert replies(services.deliver(raw, "", ["alice@example.org"])) == ["250 2.0.0 Delivered"]
    assert len(alice.emails("inbox")) == 4
    got = alice.ok("Email/get", {"ids": None, "properties": ["subject", "preview", "size"]},
                   using=["urn:ietf:params:jmap:core", MAIL])
    assert len(got["list"]) == 4


def test_redirect_goes_through_the_relay_with_the_original_sender(alice, relay):
    alice.install('redirect "alice@elsewhere.test";\r\n')
    raw = message(subject="Forward me")
    assert replies(services.deliver(raw, "carol@example.net", ["alice@example.org"])) == ["250 2.0.0 Delivered"]
    (sent,) = relay.received
    assert sent.mail_from == "carol@example.net" and sent.rcpt_tos == ["alice@elsewhere.test"]
    assert b"Subject: Forward me" in sent.content
    assert not alice.emails()


def test_a_redirect_the_relay_refuses_leaves_a_copy(alice, relay):
    alice.install('redirect "permfail@elsewhere.test";\r\n')
    assert replies(services.deliver(message(), "carol@example.net", ["alice@example.org"])) == ["250 2.0.0 Delivered"]
    assert not relay.received and len(alice.emails("inbox")) == 1


def test_vacation_response_answers_once_per_sender(alice, relay):
    alice.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, "subject": "Away",
                                                                "textBody": "Back on Monday."}}},
             using=["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:vacationresponse"])
    for _ in range(2):
        got = services.deliver(message(subject="Lunch?"), "carol@example.net", ["alice@example.org"])
        assert replies(got) == ["250 2.0.0 Delivered"]
    assert len(alice.emails("inbox")) == 2
    (reply,) = relay.received
    assert reply.mail_from == "<>" and reply.rcpt_tos == ["carol@example.net"]
    parsed = email.message_from_bytes(reply.content, policy=default_policy)
    assert parsed["Subject"] == "Away" and parsed["To"] == "carol@example.net"
    assert parsed["From"] == "alice@example.org" and parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"].startswith("<")
    assert parsed.get_body(("plain",)).get_content().strip() == "Back on Monday."
    # A list message and a bounce are never answered.
    services.deliver(message(extra="List-Id: <l.example.net>\r\n"), "dave@example.net", ["alice@example.org"])
    services.deliver(message(), "", ["alice@example.org"])
    assert len(relay.received) == 1


def test_a_sieve_vacation_and_reject_of_the_users_script(alice, relay):
    alice.install('require ["vacation"];\r\nvacation :days 1 :subject "Gone" "Gone fishing.";\r\n')
    services.deliver(message(), "carol@example.net", ["alice@example.org"])
    (reply,) = relay.received
    assert b"Subject: Gone" in reply.content and len(alice.emails("inbox")) == 1
