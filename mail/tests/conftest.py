"""Fixtures of the mail store's HTTP tests: an account speaking JMAP Mail, uploads, imports."""
from __future__ import annotations

import pathlib

import pytest

from registry import ids
from tests.clients import Jmap as JmapClient
from tests.clients import basic

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]
CORPUS = pathlib.Path(__file__).parent / "corpus"


class Who:
    """One account's JMAP client: call/ok/error with its accountId filled in."""

    def __init__(self, client, name, account):
        self.jmap = JmapClient(client, basic(f"{name}@example.org"))
        self.account_id = ids.encode(account.pk)
        self.pk = account.pk

    def call(self, name, args, using=USING):
        return self.jmap.call(name, {"accountId": self.account_id, **args}, using=using)

    def ok(self, name, args, using=USING):
        got = self.call(name, args, using)
        assert got[0] == name, got
        return got[1]

    def error(self, name, args, using=USING):
        got = self.call(name, args, using)
        assert got[0] == "error", got
        return got[1]

    def request(self, calls, using=USING):
        resp = self.jmap.post({"using": using, "methodCalls": calls})
        assert resp.status_code == 200, resp.content
        return resp.json()["methodResponses"]

    def upload(self, data: bytes) -> str:
        resp = self.jmap.client.generic("POST", f"/jmap/upload/{self.account_id}/", data,
                                        content_type="message/rfc822", HTTP_AUTHORIZATION=self.jmap.auth)
        assert resp.status_code == 201, resp.content
        return resp.json()["blobId"]

    def mailboxes(self) -> dict[str, str]:
        got = self.ok("Mailbox/get", {"ids": None, "properties": ["role", "name"]})
        return {m["role"] or m["name"]: m["id"] for m in got["list"]}

    def import_(self, raw: bytes, mailbox="inbox", keywords=None, received_at=None) -> dict:
        blob_id = self.upload(raw)
        args = {"blobId": blob_id, "mailboxIds": {self.mailboxes()[mailbox]: True}}
        if keywords is not None:
            args["keywords"] = keywords
        if received_at is not None:
            args["receivedAt"] = received_at
        got = self.ok("Email/import", {"emails": {"k": args}})
        assert got["notCreated"] is None, got
        return got["created"]["k"]


@pytest.fixture
def alice(client, make_account):
    return Who(client, "alice", make_account("alice"))


@pytest.fixture
def mallory(client, make_account):
    return Who(client, "mallory", make_account("mallory"))


def message(subject="Hello", body="Hi there", message_id=None, in_reply_to=None, sender="bob@example.com", name="Bob",
            to="alice@example.org", date="Mon, 07 Dec 2026 10:00:00 +0000", extra="") -> bytes:
    lines = [f"From: {name} <{sender}>", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if in_reply_to:
        lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()
