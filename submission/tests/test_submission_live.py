"""EmailSubmission end to end: gunicorn on its own database (tests/live.py), a real SMTP sink
(aiosmtpd) as the relay route, jmapc sending a draft, and two `manage.py submissions run`
processes racing over the same due submissions (each message must leave exactly once). The
server's database is SQLite, or PostgreSQL when DATABASE_URL is set."""
from __future__ import annotations

import asyncio
import email
import email.policy
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import jmapc
import pytest
from jmapc import Address, Email, EmailAddress, EmailBodyPart, EmailBodyValue, EmailSubmission, Envelope
from jmapc.methods import (EmailGet, EmailGetResponse, EmailSet, EmailSetResponse, EmailSubmissionGet,
                           EmailSubmissionSet, EmailSubmissionSetResponse, IdentityGet, MailboxGet)

from tests.test_jmap_live import STRONG, Jmap, PlainHttpAdapter, basic, first_run_site

from .sinks import Received, Sink, sink

ROOT = Path(__file__).resolve().parents[2]
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]


@pytest.fixture(scope="module")
def site(live):
    with first_run_site(live, workers=2) as s:
        yield s


class RacingSink(Sink):
    """Holds every DATA until two SMTP sessions have begun a transaction, so that two senders
    are certainly at work at the same time."""

    def __init__(self):
        super().__init__()
        self.peers: set = set()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd's name
        self.peers.add(session.peer)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        for _ in range(200):
            if len(self.peers) >= 2:
                break
            await asyncio.sleep(0.1)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 Queued"


def ok(jmap: Jmap, name: str, args: dict) -> dict:
    [(got_name, got, _)] = jmap.request([[name, args, "c0"]], using=USING)
    assert got_name == name, got
    return got


def route_to(site, port: int) -> None:
    """Point the route EmailSubmission uses ("relay") at `port`."""
    admin = site.admin
    found = admin.ok("x:MtaRoute/query", {"filter": {"name": "relay"}})["ids"]
    values = {"address": "127.0.0.1", "port": port, "startTls": "disable", "implicitTls": False,
              "authUsername": ""}
    if found:
        got = admin.ok("x:MtaRoute/set", {"update": {found[0]: values}})
        assert got["notUpdated"] is None, got
    else:
        got = admin.ok("x:MtaRoute/set", {"create": {"r": {"name": "relay", **values}}})
        assert got["notCreated"] is None, got


def test_jmapc_sends_a_draft(site):
    with sink() as (handler, port):
        route_to(site, port)
        _, login = site.create_user("sam")
        host = urlsplit(site.url).netloc
        client = jmapc.Client.create_with_password(host, login, STRONG)
        client.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
        boxes = {m.role: m.id for m in client.request(MailboxGet(ids=None)).data}
        [identity] = client.request(IdentityGet(ids=None)).data

        results = client.request([
            EmailSet(create={"draft": Email(
                mail_from=[EmailAddress(name="Sam", email=login)], to=[EmailAddress(email="rcpt@example.net")],
                subject="Sent with jmapc", keywords={"$draft": True}, mailbox_ids={boxes["drafts"]: True},
                body_values={"body": EmailBodyValue(value="Hello from jmapc")},
                text_body=[EmailBodyPart(part_id="body", type="text/plain")])}),
            EmailSubmissionSet(
                on_success_update_email={"#sendIt": {f"mailboxIds/{boxes['drafts']}": None,
                                                     f"mailboxIds/{boxes['sent']}": True, "keywords/$draft": None}},
                create={"sendIt": EmailSubmission(email_id="#draft", identity_id=identity.id, envelope=Envelope(
                    mail_from=Address(email=login), rcpt_to=[Address(email="rcpt@example.net")]))}),
        ])
        assert [type(r.response) for r in results] == [EmailSetResponse, EmailSubmissionSetResponse,
                                                       EmailSetResponse], results
        assert results[1].id == results[2].id  # the implicit Email/set answers under the same call id
        email_id = results[0].response.created["draft"].id
        submission = results[1].response.created["sendIt"]
        assert results[2].response.updated == {email_id: None}

        [got] = handler.received
        message = email.message_from_bytes(got.content, policy=email.policy.default)
        assert (got.mail_from, got.rcpt_tos) == (login, ["rcpt@example.net"])
        assert message["Subject"] == "Sent with jmapc" and "Hello from jmapc" in message.get_content()

        filed = client.request(EmailGet(ids=[email_id], properties=["mailboxIds", "keywords"]))
        assert isinstance(filed, EmailGetResponse)
        assert filed.data[0].mailbox_ids == {boxes["sent"]: True} and "$draft" not in (filed.data[0].keywords or {})
        [sent] = client.request(EmailSubmissionGet(ids=[submission.id])).data
        assert sent.undo_status.value == "final" and sent.email_id == email_id
        assert sent.delivery_status["rcpt@example.net"].delivered.value == "unknown"
        assert sent.delivery_status["rcpt@example.net"].smtp_reply.startswith("250")

        # From of another user: the server refuses it (forbiddenFrom), nothing is relayed.
        other = client.request(EmailSet(create={"x": Email(
            mail_from=[EmailAddress(email="ceo@example.org")], to=[EmailAddress(email="rcpt@example.net")],
            subject="Not me", mailbox_ids={boxes["drafts"]: True},
            body_values={"b": EmailBodyValue(value="x")}, text_body=[EmailBodyPart(part_id="b", type="text/plain")])}))
        refused = client.request(EmailSubmissionSet(create={"y": EmailSubmission(
            email_id=other.created["x"].id, identity_id=identity.id)}))
        assert refused.not_created["y"].type == "forbiddenFrom"
        assert len(handler.received) == 1


def _runner(site) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "submissions", "run", "--batch", "3"],
                            env=site.server.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runners_send_each_message_exactly_once(site):
    handler = RacingSink()
    with sink(handler=handler) as (_, port):
        route_to(site, port)
        user_id, login = site.create_user("race")
        jmap = Jmap(site.url, basic(login, STRONG))
        boxes = {m["role"]: m["id"] for m in ok(jmap, "Mailbox/get", {"accountId": user_id, "ids": None})["list"]}
        identity = ok(jmap, "Identity/get", {"accountId": user_id, "ids": None})["list"][0]["id"]
        count = 12
        creates = {f"d{i}": {"mailboxIds": {boxes["drafts"]: True}, "from": [{"email": login}],
                             "to": [{"email": "race@example.net"}], "subject": f"race {i}",
                             "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": f"message {i}"}}}
                   for i in range(count)}
        drafts = ok(jmap, "Email/set", {"accountId": user_id, "create": creates})["created"]
        # Held for a second, so that nothing is sent by the request itself: the runners send them.
        subs = ok(jmap, "EmailSubmission/set", {"accountId": user_id, "create": {
            f"s{i}": {"identityId": identity, "emailId": drafts[f"d{i}"]["id"], "envelope": {
                "mailFrom": {"email": login, "parameters": {"HOLDFOR": "1"}},
                "rcptTo": [{"email": "race@example.net"}]}} for i in range(count)}})
        assert subs["notCreated"] is None, subs
        time.sleep(1.5)
        runners = [_runner(site), _runner(site)]
        outputs = [r.communicate(timeout=240) for r in runners]
        assert all(r.returncode == 0 for r in runners), outputs

    subjects = sorted(email.message_from_bytes(r.content)["Subject"] for r in handler.received)
    assert subjects == sorted(f"race {i}" for i in range(count)), subjects
    # Both runners sent some: they really ran side by side.
    assert all(" 1 sent" in out for out, _ in outputs), outputs
    final = ok(jmap, "EmailSubmission/query", {"accountId": user_id, "filter": {"undoStatus": "final"}})["ids"]
    assert len(final) == count
