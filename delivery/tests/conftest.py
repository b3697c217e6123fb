"""Fixtures of delivery's tests: accounts speaking JMAP (scripts uploaded as blobs), the mail
they received, a relay sink for redirects and vacation replies, and a real database failure."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from mail.models import Email, Mailbox
from registry import ids
from submission.models import MtaRoute
from submission.tests.sinks import sink
from tests.clients import Jmap, basic

CORE = "urn:ietf:params:jmap:core"
SIEVE = "urn:ietf:params:jmap:sieve"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, SIEVE, MAIL, "urn:ietf:params:jmap:blob"]


class Who:
    def __init__(self, client, account):
        self.account = account
        self.pk = account.pk
        self.account_id = ids.encode(account.pk)
        self.jmap = Jmap(client, basic(account.email_address))

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

    def upload(self, data: bytes | str) -> str:
        data = data.encode() if isinstance(data, str) else data
        resp = self.jmap.client.generic("POST", f"/jmap/upload/{self.account_id}/", data,
                                        content_type="application/sieve", HTTP_AUTHORIZATION=self.jmap.auth)
        assert resp.status_code == 201, resp.content
        return resp.json()["blobId"]

    def install(self, text: str, name: str = "rules") -> str:
        """Upload `text`, store it as a script and make it the active one; returns its id."""
        got = self.ok("SieveScript/set", {"create": {"s": {"name": name, "blobId": self.upload(text)}},
                                          "onSuccessActivateScript": "#s"})
        assert got["notCreated"] is None, got
        return got["created"]["s"]["id"]

    def emails(self, mailbox_role_or_name: str | None = None) -> list[Email]:
        rows = Email.objects.filter(account_id=self.pk).order_by("pk")
        if mailbox_role_or_name is not None:
            box = (Mailbox.objects.filter(account_id=self.pk, role=mailbox_role_or_name).first()
                   or Mailbox.objects.get(account_id=self.pk, name=mailbox_role_or_name))
            rows = rows.filter(memberships__mailbox=box)
        return list(rows)


@pytest.fixture
def alice(client, make_account):
    return Who(client, make_account("alice"))


@pytest.fixture
def bob(client, make_account):
    return Who(client, make_account("bob"))


@pytest.fixture
def mallory(client, make_account):
    return Who(client, make_account("mallory"))


@pytest.fixture
def relay(db):
    """An aiosmtpd sink as the relay route: what delivery sends (redirects, vacation replies)."""
    with sink() as (handler, port):
        MtaRoute.objects.create(name="relay", address="127.0.0.1", port=port, start_tls="disable",
                                timeout=dt.timedelta(seconds=5))
        yield handler


def failure_sql(account_pk: int) -> list[str]:
    """SQL that makes the database refuse any new email of one account: a real failure in the
    middle of that recipient's write, with nothing of ours replaced."""
    if connection.vendor == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION delivery_test_refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'injected failure'; END; $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER delivery_test_refuse BEFORE INSERT ON mail_email FOR EACH ROW "
            f"WHEN (NEW.account_id = {int(account_pk)}) EXECUTE FUNCTION delivery_test_refuse()",
        ]
    return [f"CREATE TRIGGER delivery_test_refuse BEFORE INSERT ON mail_email WHEN NEW.account_id = "
            f"{int(account_pk)} BEGIN SELECT RAISE(ABORT, 'injected failure'); END"]


def break_store_of(account_pk: int) -> None:
    with connection.cursor() as cursor:
        for statement in failure_sql(account_pk):
            cursor.execute(statement)


def message(subject="Hello", body="Hi there", sender="carol@example.net", to="alice@example.org", extra="") -> bytes:
    head = f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{abs(hash((subject, body)))}@x>\r\n"
    return (head + extra + "\r\n" + body + "\r\n").encode()
