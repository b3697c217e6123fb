"""EmailSubmission (RFC 8621 §7) over HTTP, with a real SMTP sink (aiosmtpd) as the relay: a
draft sent and filed by the implicit Email/set, delayed sends and their cancelation, the relay
down and the retry, every SetError of §7.5, and the attacker's ids of another account."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from blobs import services as blobs
from blobs.models import Hold
from mail.tests.conftest import CORE, MAIL, Who
from submission import submissions
from submission.models import EmailSubmission, MtaRoute
from tests.live import free_port

from .sinks import sink

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = [CORE, MAIL, SUBMISSION]


class Sender(Who):
    def call(self, name, args, using=USING):
        return super().call(name, args, using)

    def ok(self, name, args, using=USING):
        return super().ok(name, args, using)

    def request(self, calls, using=USING):
        return super().request(calls, using)

    def identity(self) -> str:
        return self.ok("Identity/get", {"ids": None})["list"][0]["id"]

    def draft(self, *, sender=None, to=("bob@example.net",), cc=(), bcc=(), subject="Hello", frm=None) -> str:
        values = {"mailboxIds": {self.mailboxes()["drafts"]: True}, "keywords": {"$draft": True, "$seen": True},
                  "from": [{"name": "Me", "email": frm or self.address}], "subject": subject,
                  "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "Hi there"}}}
        for prop, listed in (("to", to), ("cc", cc), ("bcc", bcc)):
            if listed:
                values[prop] = [{"email": a} for a in listed]
        if sender:
            values["sender"] = [{"email": sender}]
        got = self.ok("Email/set", {"create": {"d": values}})
        assert got["notCreated"] is None, got
        return got["created"]["d"]["id"]

    def submit(self, values: dict, **args) -> dict:
        return self.ok("EmailSubmission/set", {"create": {"s": values}, **args})

    def submission(self, sid: str) -> dict:
        got = self.ok("EmailSubmission/get", {"ids": [sid]})
        assert got["notFound"] == [], got
        return got["list"][0]


def sender(client, make_account, name) -> Sender:
    who = Sender(client, name, make_account(name))
    who.address = f"{name}@example.org"
    return who


@pytest.fixture
def alice(client, make_account):
    return sender(client, make_account, "alice")


@pytest.fixture
def mallory(client, make_account):
    return sender(client, make_account, "mallory")


@pytest.fixture
def relay(db):
    with sink() as (handler, port):
        MtaRoute.objects.create(name="relay", address="127.0.0.1", port=port, start_tls="disable")
        yield handler


def test_a_draft_is_sent_and_filed_in_sent(alice, relay, django_capture_on_commit_callbacks):
    boxes = alice.mailboxes()
    identity = alice.identity()
    with django_capture_on_commit_callbacks(execute=True):
        responses = alice.request([
            ["Email/set", {"accountId": alice.account_id, "create": {"d": {
                "mailboxIds": {boxes["drafts"]: True}, "keywords": {"$draft": True},
                "from": [{"email": "alice@example.org"}], "to": [{"email": "bob@example.net"}],
                "bcc": [{"email": "carol@example.net"}], "subject": "Lunch?",
                "textBody": [{"partId": "t", "type": "text/plain"}], "bodyValues": {"t": {"value": "At noon"}}}}},
             "e"],
            ["EmailSubmission/set", {"accountId": alice.account_id,
                                     "create": {"s": {"identityId": identity, "emailId": "#d"}},
                                     "onSuccessUpdateEmail": {"#s": {
                                         f"mailboxIds/{boxes['drafts']}": None, f"mailboxIds/{boxes['sent']}": True,
                                         "keywords/$draft": None}}}, "s"],
        ])
    assert [(name, call_id) for name, _, call_id in responses] == [
        ("Email/set", "e"), ("EmailSubmission/set", "s"), ("Email/set", "s")], responses
    created = responses[1][1]["created"]["s"]
    eid = responses[0][1]["created"]["d"]["id"]
    assert set(created) >= {"id", "threadId", "sendAt", "undoStatus"}
    assert responses[2][1]["updated"] == {eid: None}, responses[2]

    [got] = relay.received
    assert got.mail_from == "alice@example.org" and sorted(got.rcpt_tos) == ["bob@example.net", "carol@example.net"]
    assert b"Subject: Lunch?" in got.content and b"carol@example.net" not in got.content  # Bcc removed
    email = alice.ok("Email/get", {"ids": [eid], "properties": ["mailboxIds", "keywords"]})["list"][0]
    assert email["mailboxIds"] == {boxes["sent"]: True} and "$draft" not in email["keywords"]

    sub = alice.submission(created["id"])
    assert sub["undoStatus"] == "final" and sub["emailId"] == eid and sub["identityId"] == identity
    assert sub["envelope"] == {"mailFrom": {"email": "alice@example.org", "parameters": None},
                               "rcptTo": [{"email": "bob@example.net", "parameters": None},
                                          {"email": "carol@example.net", "parameters": None}]}
    assert {a: s["delivered"] for a, s in sub["deliveryStatus"].items()} == {
        "bob@example.net": "unknown", "carol@example.net": "unknown"}
    assert sub["deliveryStatus"]["bob@example.net"]["smtpReply"].startswith("250")
    assert sub["dsnBlobIds"] == [] and sub["mdnBlobIds"] == []


def test_get_query_changes_and_query_changes(alice, relay, django_capture_on_commit_callbacks):
    identity = alice.identity()
    first, second = alice.draft(subject="one"), alice.draft(subject="two")
    state = alice.ok("EmailSubmission/get", {"ids": []})["state"]
    query_state = alice.ok("EmailSubmission/query", {})["queryState"]
    with django_capture_on_commit_callbacks(execute=True):
        now_sent = alice.submit({"identityId": identity, "emailId": first})["created"]["s"]["id"]
    later = alice.submit({"identityId": identity, "emailId": second, "envelope": {
        "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "3600"}},
        "rcptTo": [{"email": "dave@example.net"}]}})["created"]["s"]
    assert later["undoStatus"] == "pending"
    send_at = dt.datetime.fromisoformat(later["sendAt"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=59) < send_at - timezone.now() <= dt.timedelta(hours=1)

    def query(**args):
        return alice.ok("EmailSubmission/query", args)["ids"]

    assert query() == [now_sent, later["id"]]
    assert query(sort=[{"property": "sentAt", "isAscending": False}]) == [later["id"], now_sent]
    assert query(sort=[{"property": "emailId", "isAscending": False}]) == [later["id"], now_sent]
    assert query(filter={"undoStatus": "pending"}) == [later["id"]]
    assert query(filter={"emailIds": [first]}) == [now_sent]
    assert query(filter={"identityIds": [identity]}) == [now_sent, later["id"]]
    assert query(filter={"after": (timezone.now() + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}) == [
        later["id"]]
    assert query(filter={"operator": "NOT", "conditions": [{"undoStatus": "pending"}]}) == [now_sent]
    thread = alice.submission(now_sent)["threadId"]
    assert query(filter={"threadIds": [thread]}) == [now_sent]
    assert alice.call("EmailSubmission/query", {"filter": {"undoStatus": "sent"}})[1]["type"] == "unsupportedFilter"
    assert alice.call("EmailSubmission/query", {"sort": [{"property": "size"}]})[1]["type"] == "unsupportedSort"

    changes = alice.ok("EmailSubmission/changes", {"sinceState": state})
    assert sorted(changes["created"]) == sorted([now_sent, later["id"]])
    moved = alice.ok("EmailSubmission/queryChanges", {"sinceQueryState": query_state})
    assert {a["id"] for a in moved["added"]} == {now_sent, later["id"]}
    got = alice.ok("EmailSubmission/get", {"ids": None, "properties": ["undoStatus"]})
    assert {s["id"]: s["undoStatus"] for s in got["list"]} == {now_sent: "final", later["id"]: "pending"}
    assert set(got["list"][0]) == {"id", "undoStatus"}


def test_a_delayed_send_canceled_never_reaches_the_relay(alice, relay, django_capture_on_commit_callbacks):
    identity, eid = alice.identity(), alice.draft()
    until = (timezone.now() + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with django_capture_on_commit_callbacks(execute=True):
        made = alice.submit({"identityId": identity, "emailId": eid, "envelope": {
            "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDUNTIL": until}},
            "rcptTo": [{"email": "bob@example.net"}]}})
    sid = made["created"]["s"]["id"]
    assert made["created"]["s"]["sendAt"] == until
    assert submissions.run_due() == [] and relay.received == []  # not due yet
    got = alice.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert got["updated"] == {sid: None}, got
    assert alice.submission(sid)["undoStatus"] == "canceled"
    assert submissions.run_due(timezone.now() + dt.timedelta(days=1)) == []
    assert relay.received == []
    # Canceled is final: it cannot go back to pending.
    again = alice.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "pending"}}})
    assert again["notUpdated"][sid]["type"] == "invalidProperties"


def test_a_sent_message_cannot_be_unsent_and_only_undo_status_changes(alice, relay,
                                                                      django_capture_on_commit_callbacks):
    identity, eid = alice.identity(), alice.draft()
    with django_capture_on_commit_callbacks(execute=True):
        sid = alice.submit({"identityId": identity, "emailId": eid})["created"]["s"]["id"]
    assert len(relay.received) == 1
    got = alice.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert got["notUpdated"][sid]["type"] == "cannotUnsend"
    got = alice.ok("EmailSubmission/set", {"update": {sid: {"emailId": eid}}})
    assert got["notUpdated"][sid] == {"type": "invalidProperties", "description": '"emailId" cannot be changed.',
                                      "properties": ["emailId"]}


def test_relay_down_leaves_it_pending_and_a_retry_sends_it(alice, django_capture_on_commit_callbacks):
    dead = free_port()
    route = MtaRoute.objects.create(name="relay", address="127.0.0.1", port=dead, start_tls="disable")
    identity, eid = alice.identity(), alice.draft()
    with django_capture_on_commit_callbacks(execute=True):
        sid = alice.submit({"identityId": identity, "emailId": eid})["created"]["s"]["id"]
    sub = alice.submission(sid)
    assert sub["undoStatus"] == "pending"
    status = sub["deliveryStatus"]["bob@example.net"]
    assert status["delivered"] == "queued" and status["smtpReply"].startswith("421 4.4.0"), status
    row = EmailSubmission.objects.get()
    assert row.attempts == 1 and "connect" in row.last_error and row.next_attempt_at > timezone.now()

    assert submissions.run_due() == []  # the back-off is not over
    with sink() as (handler, port):
        MtaRoute.objects.filter(pk=route.pk).update(port=port)
        [outcome] = submissions.run_due(row.next_attempt_at + dt.timedelta(seconds=1))
    assert (outcome.sent, outcome.temporary) == (1, 0)
    assert [r.rcpt_tos for r in handler.received] == [["bob@example.net"]]
    sub = alice.submission(sid)
    assert sub["undoStatus"] == "final" and sub["deliveryStatus"]["bob@example.net"]["delivered"] == "unknown"
    assert EmailSubmission.objects.get().next_attempt_at is None


def test_per_recipient_outcomes_and_giving_up(alice, relay, django_capture_on_commit_callbacks, settings):
    identity, eid = alice.identity(), alice.draft(to=("bob@example.net", "permfail@example.net",
                                                       "tempfail@example.net"))
    with django_capture_on_commit_callbacks(execute=True):
        sid = alice.submit({"identityId": identity, "emailId": eid})["created"]["s"]["id"]
    sub = alice.submission(sid)
    delivered = {a: s["delivered"] for a, s in sub["deliveryStatus"].items()}
    assert delivered == {"bob@example.net": "unknown", "permfail@example.net": "no", "tempfail@example.net": "queued"}
    # Relayed to one recipient: it can no longer be canceled, but the queued one is retried.
    assert sub["undoStatus"] == "final"
    row = EmailSubmission.objects.get()
    settings.SUBMISSION_GIVE_UP_AFTER = 60
    [outcome] = submissions.run_due(row.next_attempt_at + dt.timedelta(seconds=61))
    assert outcome.temporary == 1
    assert [r.rcpt_tos for r in relay.received] == [["bob@example.net"]]  # only the accepted one, once
    sub = alice.submission(sid)
    assert sub["deliveryStatus"]["tempfail@example.net"]["delivered"] == "no"
    assert EmailSubmission.objects.get().next_attempt_at is None


def test_the_sender_is_checked(alice, mallory, relay):
    identity = alice.identity()
    # From of another user: forbiddenFrom.
    theirs = alice.draft(frm="mallory@example.org")
    got = alice.submit({"identityId": identity, "emailId": theirs})
    assert got["notCreated"]["s"]["type"] == "forbiddenFrom", got
    # The envelope's sender of another user: forbiddenMailFrom.
    mine = alice.draft()
    got = alice.submit({"identityId": identity, "emailId": mine, "envelope": {
        "mailFrom": {"email": "mallory@example.org"}, "rcptTo": [{"email": "bob@example.net"}]}})
    assert got["notCreated"]["s"]["type"] == "forbiddenMailFrom", got
    assert EmailSubmission.objects.count() == 0 and relay.received == []


def test_ids_of_another_account(alice, mallory, relay, django_capture_on_commit_callbacks):
    their_identity, their_email = mallory.identity(), mallory.draft()
    with django_capture_on_commit_callbacks(execute=True):
        theirs = mallory.submit({"identityId": their_identity, "emailId": their_email,
                                 "envelope": {"mailFrom": {"email": "mallory@example.org",
                                                           "parameters": {"HOLDFOR": "600"}},
                                              "rcptTo": [{"email": "x@example.net"}]}})["created"]["s"]["id"]
    mine_identity, mine_email = alice.identity(), alice.draft()
    got = alice.submit({"identityId": mine_identity, "emailId": their_email})
    assert got["notCreated"]["s"]["type"] == "invalidProperties"
    assert got["notCreated"]["s"]["properties"] == ["emailId"]
    got = alice.submit({"identityId": their_identity, "emailId": mine_email})
    assert got["notCreated"]["s"]["properties"] == ["identityId"]
    assert alice.ok("EmailSubmission/get", {"ids": [theirs]})["notFound"] == [theirs]
    assert alice.ok("EmailSubmission/query", {"filter": {"emailIds": [their_email]}})["ids"] == []
    got = alice.ok("EmailSubmission/set", {"update": {theirs: {"undoStatus": "canceled"}}, "destroy": [theirs]})
    assert got["notUpdated"][theirs]["type"] == "notFound" and got["notDestroyed"][theirs]["type"] == "notFound"
    # Their submission is untouched, and alice's account id is not hers to use.
    assert mallory.submission(theirs)["undoStatus"] == "pending"
    got = mallory.call("EmailSubmission/get", {"accountId": alice.account_id, "ids": None})
    assert got[1]["type"] == "accountNotFound"


@pytest.mark.parametrize("case", ["no_recipients", "too_many", "invalid_recipient", "too_large", "no_from",
                                  "two_from_no_sender", "unknown_property", "server_set", "hold_too_long",
                                  "both_holds", "unknown_parameter", "bad_envelope", "missing_email"])
def test_set_errors(alice, relay, settings, case):
    identity = alice.identity()
    envelope = None
    expected = "invalidProperties"
    values_extra = {}
    if case == "no_recipients":
        eid, expected = alice.draft(to=()), "noRecipients"
    elif case == "too_many":
        settings.SUBMISSION_MAX_RECIPIENTS = 2
        eid, expected = alice.draft(to=("a@example.net", "b@example.net", "c@example.net")), "tooManyRecipients"
    elif case == "invalid_recipient":
        eid, expected = alice.draft(), "invalidRecipients"
        envelope = {"mailFrom": {"email": "alice@example.org"},
                    "rcptTo": [{"email": "bob@example.net"}, {"email": "no address"}]}
    elif case == "too_large":
        settings.SUBMISSION_MAX_SIZE = 100
        eid, expected = alice.draft(), "tooLarge"
    elif case == "no_from":
        got = alice.ok("Email/set", {"create": {"d": {
            "mailboxIds": {alice.mailboxes()["drafts"]: True}, "to": [{"email": "bob@example.net"}],
            "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}}}})
        eid, expected = got["created"]["d"]["id"], "invalidEmail"
    elif case == "two_from_no_sender":
        got = alice.ok("Email/set", {"create": {"d": {
            "mailboxIds": {alice.mailboxes()["drafts"]: True}, "to": [{"email": "bob@example.net"}],
            "from": [{"email": "alice@example.org"}, {"email": "bob@example.net"}],
            "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}}}})
        eid, expected = got["created"]["d"]["id"], "invalidEmail"
    elif case == "unknown_property":
        eid, values_extra = alice.draft(), {"priority": 1}
    elif case == "server_set":
        eid, values_extra = alice.draft(), {"sendAt": "2030-01-01T00:00:00Z"}
    elif case == "hold_too_long":
        eid = alice.draft()
        envelope = {"mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": str(31 * 86400)}},
                    "rcptTo": [{"email": "bob@example.net"}]}
    elif case == "both_holds":
        eid = alice.draft()
        envelope = {"mailFrom": {"email": "alice@example.org",
                                 "parameters": {"HOLDFOR": "60", "HOLDUNTIL": "2030-01-01T00:00:00Z"}},
                    "rcptTo": [{"email": "bob@example.net"}]}
    elif case == "unknown_parameter":
        eid = alice.draft()
        envelope = {"mailFrom": {"email": "alice@example.org", "parameters": {"XFORWARD": "1"}},
                    "rcptTo": [{"email": "bob@example.net"}]}
    elif case == "bad_envelope":
        eid = alice.draft()
        envelope = {"mailFrom": "alice@example.org", "rcptTo": "bob@example.net"}
    else:
        eid = "Znotanid"
    values = {"identityId": identity, "emailId": eid, **values_extra}
    if envelope is not None:
        values["envelope"] = envelope
    got = alice.submit(values)
    error = got["notCreated"]["s"]
    assert error["type"] == expected, got
    if case == "too_many":
        assert error["maxRecipients"] == 2
    if case == "invalid_recipient":
        assert error["invalidRecipients"] == ["no address"]
    if case == "too_large":
        assert error["maxSize"] == 100
    assert EmailSubmission.objects.count() == 0 and relay.received == []


def test_forbidden_to_send(client, make_account, relay):
    who = Sender(client, "quiet", make_account("quiet", permissions_mode="merge", disabled_permissions=["emailSend"]))
    who.address = "quiet@example.org"
    identity, eid = who.identity(), who.draft()
    got = who.submit({"identityId": identity, "emailId": eid})
    assert got["notCreated"]["s"]["type"] == "forbiddenToSend", got


def test_the_message_is_held_while_the_submission_exists(alice, relay, django_capture_on_commit_callbacks):
    identity, eid = alice.identity(), alice.draft()
    made = alice.submit({"identityId": identity, "emailId": eid, "envelope": {
        "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "60"}},
        "rcptTo": [{"email": "bob@example.net"}]}})
    sid = made["created"]["s"]["id"]
    row = EmailSubmission.objects.get()
    # The email goes; the blob stays for the submission, and is still sent when due.
    assert alice.ok("Email/set", {"destroy": [eid]})["destroyed"] == [eid]
    blobs.collect(timezone.now() + dt.timedelta(days=30))
    assert Hold.objects.filter(owner_kind=submissions.OWNER, owner_id=str(row.pk)).exists()
    # Destroying the submission does not cancel it (as in the reference): it goes out when due, and
    # then the row and its hold go too.
    got = alice.ok("EmailSubmission/set", {"destroy": [sid]})
    assert got["destroyed"] == [sid]
    assert alice.ok("EmailSubmission/get", {"ids": [sid]})["notFound"] == [sid]
    [outcome] = submissions.run_due(row.send_at + dt.timedelta(seconds=1))
    assert outcome.sent == 1 and len(relay.received) == 1
    assert not EmailSubmission.objects.exists()
    assert not Hold.objects.filter(owner_kind=submissions.OWNER).exists()


def test_on_success_destroy_email(alice, relay, django_capture_on_commit_callbacks):
    identity, eid = alice.identity(), alice.draft()
    with django_capture_on_commit_callbacks(execute=True):
        responses = alice.request([["EmailSubmission/set", {
            "accountId": alice.account_id, "create": {"s": {"identityId": identity, "emailId": eid}},
            "onSuccessDestroyEmail": ["#s", "#nosuch"]}, "0"]])
    assert [r[0] for r in responses] == ["EmailSubmission/set", "Email/set"]
    assert responses[1][1]["destroyed"] == [eid]
    assert len(relay.received) == 1
    # A failed create asks for no implicit call.
    responses = alice.request([["EmailSubmission/set", {
        "accountId": alice.account_id, "create": {"s": {"identityId": identity, "emailId": eid}},
        "onSuccessDestroyEmail": ["#s"]}, "0"]])
    assert [r[0] for r in responses] == ["EmailSubmission/set"]


def test_strip_bcc_keeps_everything_else():
    raw = (b"From: a@example.org\r\nBcc: secret@example.net,\r\n  other@example.net\r\nTo: b@example.net\r\n"
           b"Subject: x\r\n\r\nBcc: this line is body\r\n")
    assert submissions.strip_bcc(raw) == (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n\r\n"
                                          b"Bcc: this line is body\r\n")


def test_a_submission_being_sent_cannot_be_canceled(alice, relay):
    identity, eid = alice.identity(), alice.draft()
    sid = alice.submit({"identityId": identity, "emailId": eid, "envelope": {
        "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "60"}},
        "rcptTo": [{"email": "bob@example.net"}]}})["created"]["s"]["id"]
    row = EmailSubmission.objects.get()
    later = row.send_at + dt.timedelta(seconds=1)
    # A sender holds it (what `deliver` does before talking to the relay): cancel loses the race.
    token = submissions.claim(row.pk, later, dt.timedelta(minutes=15))
    assert token
    got = alice.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert got["notUpdated"][sid]["type"] == "cannotUnsend"
    # And the other way round: a canceled submission is never claimed.
    EmailSubmission.objects.filter(pk=row.pk).update(claim_token="", claimed_until=None)
    assert alice.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})["updated"] == {sid: None}
    assert submissions.claim(row.pk, later, dt.timedelta(minutes=15)) is None
    assert submissions.run_due(later) == [] and relay.received == []


@pytest.mark.parametrize("args", [
    {"onSuccessUpdateEmail": ["#s"]}, {"onSuccessUpdateEmail": {"#s": True}},
    {"onSuccessDestroyEmail": {"#s": True}}, {"onSuccessDestroyEmail": [1]},
    {"create": {"s": "not an object"}}, {"ifInState": "999"},
])
def test_hostile_set_arguments(alice, relay, args):
    identity, eid = alice.identity(), alice.draft()
    create = {"create": {"s": {"identityId": identity, "emailId": eid}}}
    got = alice.call("EmailSubmission/set", {**create, **args})
    if "create" in args:
        assert got[1]["notCreated"]["s"]["type"] == "invalidProperties", got
    else:
        assert got[0] == "error" and got[1]["type"] in ("invalidArguments", "stateMismatch"), got
    assert EmailSubmission.objects.count() == 0 and relay.received == []


def test_hostile_envelopes(alice, relay):
    identity, eid = alice.identity(), alice.draft()
    for envelope in (
        {"mailFrom": {"email": "alice@example.org"}, "rcptTo": [{"email": "b@example.net"}] * 5000},
        {"mailFrom": {"email": "alice@example.org\r\nRCPT TO:<x@example.net>"}, "rcptTo": [{"email": "b@example.net"}]},
        {"mailFrom": {"email": "alice@example.org"}, "rcptTo": [{"email": "b@example.net\r\nDATA"}]},
        {"mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "1\r\nRSET"}},
         "rcptTo": [{"email": "b@example.net"}]},
        {"mailFrom": {"email": "alice@example.org", "parameters": {"HOLDUNTIL": "yesterday"}},
         "rcptTo": [{"email": "b@example.net"}]},
        {"mailFrom": {"email": "a" * 5000 + "@example.org"}, "rcptTo": [{"email": "b@example.net"}]},
        {"mailFrom": {"email": "alice@example.org"}, "rcptTo": [{"email": "b@example.net", "parameters": {
            "NOTIFY": "NEVER", "ENVID": "x"}}]},
    ):
        got = alice.submit({"identityId": identity, "emailId": eid, "envelope": envelope})
        assert got["notCreated"]["s"]["type"] in ("invalidProperties", "invalidRecipients", "forbiddenMailFrom"), got
    assert EmailSubmission.objects.count() == 0 and relay.received == []


def test_the_periodic_command(alice, relay, django_capture_on_commit_callbacks):
    from io import StringIO

    from django.core.management import call_command

    identity, eid = alice.identity(), alice.draft()
    alice.submit({"identityId": identity, "emailId": eid, "envelope": {
        "mailFrom": {"email": "alice@example.org", "parameters": {"HOLDFOR": "0"}},
        "rcptTo": [{"email": "bob@example.net"}]}})
    out = StringIO()
    call_command("submissions", "status", stdout=out)
    assert "1 recipient(s) queued" in out.getvalue() and "next due" in out.getvalue()
    out = StringIO()
    # (--loop closes the database connections between rounds, which the test's transaction cannot
    # survive; a round is the same code.)
    call_command("submissions", "run", stdout=out)
    assert ": 1 sent, 0 to retry, 0 refused" in out.getvalue()
    assert len(relay.received) == 1
    out = StringIO()
    call_command("submissions", "status", stdout=out)
    assert out.getvalue().strip() == "Nothing to send."
