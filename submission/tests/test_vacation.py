"""VacationResponse/get|set (RFC 8621 §8) over HTTP, and what delivery gets from it: the Sieve
script of an enabled response within its dates (run here through `sieve` to the Vacation
action it plans), and the store of replies already sent (RFC 5230 §4.2)."""
from __future__ import annotations

import datetime as dt
import email
from email.policy import default as default_policy

import pytest

from registry import ids
from sieve import Envelope, Message, Vacation, evaluate, parse
from submission import vacation
from submission.models import VacationReply
from tests.clients import Jmap, basic

pytestmark = pytest.mark.django_db

VACATION = "urn:ietf:params:jmap:vacationresponse"
USING = ["urn:ietf:params:jmap:core", VACATION]
UTC = dt.timezone.utc
INCOMING = (b"From: Carol <carol@example.net>\r\nTo: bob@example.org\r\nSubject: Lunch?\r\n"
            b"Message-ID: <m1@example.net>\r\n\r\nAre you free?\r\n")


@pytest.fixture
def bob(make_account):
    return make_account("bob")


@pytest.fixture
def bob_jmap(client, bob):
    return Jmap(client, basic("bob@example.org"))


def call(jmap, name, args, account):
    return jmap.ok(name, {"accountId": ids.encode(account.pk), **args}, using=USING)


def run(script: str):
    return evaluate(parse(script), Message.from_bytes(INCOMING),
                    Envelope(mail_from="carol@example.net", rcpt_to="bob@example.org"))


def test_the_session_advertises_vacationresponse(bob_jmap, client, bob):
    session = client.get("/jmap/session", HTTP_AUTHORIZATION=bob_jmap.auth).json()
    assert session["capabilities"][VACATION] == {}
    assert session["accounts"][ids.encode(bob.pk)]["accountCapabilities"][VACATION] == {}


def test_get_before_any_set_answers_the_defaults(bob_jmap, bob):
    got = call(bob_jmap, "VacationResponse/get", {"ids": None}, bob)
    assert got["list"] == [{"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                            "subject": None, "textBody": None, "htmlBody": None}]
    assert got["state"] == "0" and got["notFound"] == []
    got = call(bob_jmap, "VacationResponse/get", {"ids": ["singleton", "other"], "properties": ["isEnabled"]}, bob)
    assert got["list"] == [{"id": "singleton", "isEnabled": False}] and got["notFound"] == ["other"]


def test_set_then_get(bob_jmap, bob):
    got = call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "fromDate": "2026-07-01T00:00:00Z", "toDate": "2026-07-15T12:30:00.5Z",
        "subject": "Away", "textBody": "Back on the 15th."}}}, bob)
    assert got["updated"] == {"singleton": None} and got["oldState"] == "0" and got["newState"] == "1", got
    [doc] = call(bob_jmap, "VacationResponse/get", {}, bob)["list"]
    assert doc == {"id": "singleton", "isEnabled": True, "fromDate": "2026-07-01T00:00:00Z",
                   "toDate": "2026-07-15T12:30:00.5Z", "subject": "Away", "textBody": "Back on the 15th.",
                   "htmlBody": None}
    call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {"toDate": None, "subject": None}}}, bob)
    [doc] = call(bob_jmap, "VacationResponse/get", {}, bob)["list"]
    assert doc["toDate"] is None and doc["subject"] is None and doc["isEnabled"] is True


def test_create_and_destroy_are_singleton_errors(bob_jmap, bob):
    got = call(bob_jmap, "VacationResponse/set", {"create": {"x": {"isEnabled": True}}, "destroy": ["singleton"],
                                                  "update": {"other": {"isEnabled": True}}}, bob)
    assert got["notCreated"]["x"]["type"] == "singleton"
    assert got["notDestroyed"]["singleton"]["type"] == "singleton"
    assert got["notUpdated"]["other"]["type"] == "notFound"
    assert got["newState"] == got["oldState"] == "0"


@pytest.mark.parametrize("patch, prop", [
    ({"isEnabled": "yes"}, "isEnabled"),
    ({"fromDate": "2026-07-01"}, "fromDate"),
    ({"fromDate": "2026-07-01T00:00:00+02:00"}, "fromDate"),
    ({"toDate": "2026-02-30T00:00:00Z"}, "toDate"),
    ({"toDate": 1}, "toDate"),
    ({"subject": ["a"]}, "subject"),
    ({"textBody": "x" * 70_000}, "textBody"),
    ({"id": "other"}, "id"),
    ({"replyTo": "x"}, "replyTo"),
])
def test_bad_values_are_invalid_properties_and_write_nothing(bob_jmap, bob, patch, prop):
    got = call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {"isEnabled": True, **patch}}}, bob)
    assert got["notUpdated"]["singleton"]["type"] == "invalidProperties", got
    assert got["notUpdated"]["singleton"]["properties"] == [prop]
    assert call(bob_jmap, "VacationResponse/get", {}, bob)["list"][0]["isEnabled"] is False


def test_another_account_is_out_of_reach(bob_jmap, bob, make_account, client):
    mallory = make_account("mallory")
    attacker = Jmap(client, basic("mallory@example.org"))
    for name, args in (("VacationResponse/get", {}),
                       ("VacationResponse/set", {"update": {"singleton": {"isEnabled": True}}})):
        got = attacker.call(name, {"accountId": ids.encode(bob.pk), **args}, using=USING)
        assert got[0] == "error" and got[1]["type"] == "accountNotFound"
    call(attacker, "VacationResponse/set", {"update": {"singleton": {"isEnabled": True}}}, mallory)
    assert vacation.vacation_script(bob) is None


def test_the_script_follows_enabled_and_the_dates(bob_jmap, bob):
    assert vacation.vacation_script(bob) is None
    call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "fromDate": "2026-07-01T00:00:00Z", "toDate": "2026-07-15T00:00:00Z",
        "subject": 'Away "until" the\r\n15th', "textBody": "Back soon.", "htmlBody": "<p>Back <b>soon</b>.</p>"}}}, bob)
    assert vacation.vacation_script(bob, dt.datetime(2026, 6, 30, 23, 59, tzinfo=UTC)) is None
    assert vacation.vacation_script(bob, dt.datetime(2026, 7, 15, 0, 0, tzinfo=UTC)) is None
    script = vacation.vacation_script(bob, dt.datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
    assert script is not None
    [action] = [a for a in run(script).actions if isinstance(a, Vacation)]
    assert action.recipient == "carol@example.net"
    assert action.subject == 'Away "until" the 15th'
    assert action.mime is True
    entity = email.message_from_string(action.body, policy=default_policy)
    assert entity.get_content_type() == "multipart/alternative"
    assert entity.get_body(("plain",)).get_content().strip() == "Back soon."
    assert entity.get_body(("html",)).get_content().strip() == "<p>Back <b>soon</b>.</p>"
    call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {"isEnabled": False}}}, bob)
    assert vacation.vacation_script(bob, dt.datetime(2026, 7, 2, tzinfo=UTC)) is None


def test_html_only_gets_its_text_and_no_subject_takes_sieves_default(bob_jmap, bob):
    call(bob_jmap, "VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "htmlBody": "<p>Gone <i>fishing</i></p>"}}}, bob)
    [action] = [a for a in run(vacation.vacation_script(bob)).actions if isinstance(a, Vacation)]
    entity = email.message_from_string(action.body, policy=default_policy)
    assert "Gone fishing" in entity.get_body(("plain",)).get_content()
    assert action.subject == "Auto: Lunch?"


def test_claim_reply_once_per_period(bob):
    now = dt.datetime(2026, 7, 2, 12, 0, tzinfo=UTC)
    assert vacation.claim_reply(bob.pk, "k1", 7 * 86400, now) is True
    assert vacation.claim_reply(bob.pk, "k1", 7 * 86400, now + dt.timedelta(days=6)) is False
    assert vacation.claim_reply(bob.pk, "k2", 7 * 86400, now) is True
    assert vacation.claim_reply(bob.pk, "k1", 7 * 86400, now + dt.timedelta(days=7)) is True
    assert vacation.claim_reply(bob.pk, "k1", 7 * 86400, now + dt.timedelta(days=8)) is False
    assert VacationReply.objects.filter(account=bob).count() == 2
    assert vacation.prune_replies(now=now + dt.timedelta(days=65)) == 1  # k2, last sent on day 0


def test_replies_are_per_account(bob, make_account):
    carol = make_account("carol")
    assert vacation.claim_reply(bob.pk, "same", 3600) is True
    assert vacation.claim_reply(carol.pk, "same", 3600) is True
    assert vacation.claim_reply(bob.pk, "same", 3600) is False
