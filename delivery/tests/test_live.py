"""Mail in, end to end: `manage.py lmtp` started as a process and spoken to by a real LMTP
client (smtplib.LMTP), `manage.py deliver` fed on standard input, a gunicorn server answering
JMAP over HTTP on the same database, and an aiosmtpd sink as the relay for vacation replies."""
from __future__ import annotations

import json
import smtplib
import socket
import subprocess
import sys

import pytest
import requests

from submission.tests.sinks import sink
from tests.live import ROOT, free_port, live_server, stop_process, wait_until

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
CORE, MAIL, SIEVE = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:sieve"
VACATION = "urn:ietf:params:jmap:vacationresponse"
LMTP_MAX = 100_000


def raw(subject="Hello", sender="carol@example.net", to="alice@example.org", body="Hi there", extra="") -> bytes:
    return (f"From: Carol <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n").encode()


class Site:
    def __init__(self, server, pks):
        self.server, self.pks = server, pks

    def jmap(self, name, calls, using=(CORE, MAIL)):
        resp = requests.post(self.server.url + "/jmap/", auth=(f"{name}@example.org", PASSWORD), timeout=30,
                             json={"using": list(using), "methodCalls": calls})
        assert resp.status_code == 200, resp.text
        return resp.json()["methodResponses"]

    def account_id(self, name):
        session = requests.get(self.server.url + "/jmap/session", auth=(f"{name}@example.org", PASSWORD), timeout=30)
        return session.json()["primaryAccounts"][MAIL]

    def subjects(self, name, mailbox_filter=None):
        account = self.account_id(name)
        query = {"accountId": account, "sort": [{"property": "receivedAt"}]}
        if mailbox_filter:
            query["filter"] = mailbox_filter
        got = self.jmap(name, [["Email/query", query, "q"],
                               ["Email/get", {"accountId": account, "properties": ["subject"],
                                              "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]])
        return [e["subject"] for e in got[1][1]["list"]]

    def deliver(self, *args, data: bytes, env=None):
        return subprocess.run([sys.executable, str(ROOT / "manage.py"), "deliver", *args], input=data,
                              capture_output=True, env={**self.server.env, **(env or {})}, cwd=ROOT, timeout=300)


SETUP = """
from accounts import services
from accounts.models import Account, Domain, SystemSettings
from django.db import connection
from delivery.tests.conftest import failure_sql
dom, _ = Domain.objects.get_or_create(name="example.org")
system = SystemSettings.load(); system.default_domain = dom; system.save()
result = {}
for name in ("alice", "bob", "full", "broken"):
    result[name] = services.create_account({"name": name, "domain": dom.pk, "roles_mode": "user", "kind": "user"},
                                           "test", password=%r).pk
Account.objects.filter(pk=result["full"]).update(max_disk_quota=10)
with connection.cursor() as cursor:
    for statement in failure_sql(result["broken"]):
        cursor.execute(statement)
""" % PASSWORD


@pytest.fixture(scope="module")
def relay():
    with sink() as (handler, port):
        yield handler, port


@pytest.fixture(scope="module")
def site(relay):
    with live_server(workers=1) as server:
        pks = server.shell_json(SETUP)
        server.manage("create", "mtaroute", "--json", json.dumps(
            {"name": "relay", "address": "127.0.0.1", "port": relay[1], "startTls": "disable"}))
        yield Site(server, pks)


@pytest.fixture(scope="module")
def lmtp_port(site):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "lmtp", "--port", str(port)], cwd=ROOT,
                            env={**site.server.env, "LMTP_MAX_MESSAGE_SIZE": str(LMTP_MAX)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close(), proc,
                   lambda: proc.stdout.read().decode(), errors=(OSError,), timeout=120)
        yield port
    finally:
        stop_process(proc)


def test_lmtp_answers_each_recipient_after_data(site, lmtp_port):
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        code, _ = client.ehlo("mta.example.net")  # smtplib.LMTP sends LHLO
        assert code == 250
        assert client.mail("carol@example.net")[0] == 250
        assert client.rcpt("alice@example.org")[0] == 250
        assert client.rcpt("nobody@example.org")[0] == 550  # refused at once: the others go on
        assert client.rcpt("full@example.org")[0] == 250
        assert client.rcpt("broken@example.org")[0] == 250
        first = client.data(raw(subject="Per recipient"))
        second, third = client.getreply(), client.getreply()
        assert first == (250, b"2.0.0 Delivered")
        assert second == (452, b"4.2.2 Mailbox over quota.")
        assert third == (451, b"4.3.0 Transient server failure.")
        # The session goes on after the per-recipient replies.
        assert client.noop()[0] == 250
    assert site.subjects("alice") == ["Per recipient"]
    assert site.subjects("full") == [] and site.subjects("broken") == []


def test_lmtp_refuses_oversize_and_stores_malformed(site, lmtp_port):
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        client.ehlo()
        client.mail("carol@example.net")
        client.rcpt("bob@example.org")
        code, _ = client.data(raw(subject="Huge", body=("x" * 70 + "\r\n") * (LMTP_MAX // 70)))
        assert code == 552
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        client.ehlo()
        client.sendmail("", ["bob@example.org"], b"Subject: =?utf-8?q?broken\r\nContent-Type: multipart/mixed; "
                                                 b"boundary=x\r\n\r\n--x\r\nno end")
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        client.ehlo()
        client.sendmail("carol@example.net", ["bob@example.org"], raw(subject="Long line", body="w" * 5000))
    assert "Huge" not in site.subjects("bob") and "Long line" in site.subjects("bob")
    assert len(site.subjects("bob")) == 2


def test_a_script_set_over_jmap_files_lmtp_mail(site, lmtp_port):
    account = site.account_id("bob")
    upload = requests.post(f"{site.server.url}/jmap/upload/{account}/", auth=("bob@example.org", PASSWORD),
                           data=b'require ["fileinto"];\r\nif header :contains "subject" "[proj]" '
                                b'{ fileinto "Projects"; }\r\n',
                           headers={"Content-Type": "application/sieve"}, timeout=30)
    assert upload.status_code == 201, upload.text
    got = site.jmap("bob", [
        ["Mailbox/set", {"accountId": account, "create": {"p": {"name": "Projects"}}}, "m"],
        ["SieveScript/set", {"accountId": account, "create": {"s": {"name": "rules", "blobId": upload.json()["blobId"]}},
                             "onSuccessActivateScript": "#s"}, "s"]], using=(CORE, MAIL, SIEVE))
    projects = got[0][1]["created"]["p"]["id"]
    assert got[1][1]["created"]["s"]["isActive"] is True, got
    with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
        client.ehlo()
        client.sendmail("carol@example.net", ["bob@example.org"], raw(subject="[proj] status", to="bob@example.org"))
    assert site.subjects("bob", {"inMailbox": projects}) == ["[proj] status"]


def test_the_vacation_response_reaches_the_relay(site, lmtp_port, relay):
    handler, _ = relay
    account = site.account_id("alice")
    got = site.jmap("alice", [["VacationResponse/set", {"accountId": account, "update": {"singleton": {
        "isEnabled": True, "subject": "Out of office", "textBody": "Back soon."}}}, "v"]], using=(CORE, VACATION))
    assert got[0][1]["updated"] == {"singleton": None}, got
    before = len(handler.received)
    for _ in range(2):
        with smtplib.LMTP("127.0.0.1", lmtp_port) as client:
            client.ehlo()
            client.sendmail("dave@example.net", ["alice@example.org"], raw(subject="Question", sender="dave@example.net"))
    replies = handler.received[before:]
    assert len(replies) == 1 and replies[0].rcpt_tos == ["dave@example.net"] and replies[0].mail_from == "<>"
    assert b"Subject: Out of office" in replies[0].content
    site.jmap("alice", [["VacationResponse/set", {"accountId": account, "update": {"singleton": {
        "isEnabled": False}}}, "v"]], using=(CORE, VACATION))


def test_deliver_reads_stdin_and_exits_as_an_lda(site):
    done = site.deliver("-f", "carol@example.net", "--", "alice@example.org", data=raw(subject="Via deliver"))
    assert done.returncode == 0, done.stderr
    assert "Via deliver" in site.subjects("alice")
    assert site.deliver("-f", "carol@example.net", "nobody@example.org", data=raw()).returncode == 67
    full = site.deliver("-f", "", "full@example.org", data=raw(body="y" * 100))
    assert full.returncode == 75 and b"452 4.2.2 Mailbox over quota." in full.stderr
    assert site.deliver("broken@example.org", data=raw()).returncode == 75
    assert site.deliver("alice@example.org", data=raw(body="z" * 3000), env={"LMTP_MAX_MESSAGE_SIZE": "2000"}
                        ).returncode == 65
    assert site.deliver(data=raw()).returncode == 64  # no recipient: a usage error
    assert site.subjects("full") == [] and site.subjects("broken") == []


def test_deliver_with_a_rejecting_script(site):
    account = site.account_id("bob")
    upload = requests.post(f"{site.server.url}/jmap/upload/{account}/", auth=("bob@example.org", PASSWORD),
                           data=b'require ["reject"];\r\nif header :contains "subject" "offer" { reject "No offers"; }',
                           headers={"Content-Type": "application/sieve"}, timeout=30)
    got = site.jmap("bob", [["SieveScript/set", {"accountId": account, "create": {"s": {
        "name": "no-offers", "blobId": upload.json()["blobId"]}}, "onSuccessActivateScript": "#s"}, "s"]],
        using=(CORE, SIEVE))
    assert got[0][1]["notCreated"] is None, got
    done = site.deliver("-f", "spam@example.net", "bob@example.org", data=raw(subject="Great offer"))
    assert done.returncode == 77 and b"550 5.7.1 No offers" in done.stderr
    assert "Great offer" not in site.subjects("bob")
