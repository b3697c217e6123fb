"""/calendar/rsvp over HTTP: the invitation's links, a GET that changes nothing, the answer
recorded by a CSRF-checked POST through the calendar store, and a clear 4xx page for every
refusal (docs/calendar-invitations.md)."""
from __future__ import annotations

import base64
import datetime as dt
import email
import json
import logging
import re
from email import policy
import time
from urllib.parse import parse_qs, quote, urlsplit

import icalendar
import pytest
from django.core import signing

from calendars import itip, services
from calendars.models import CalendarObject, ScheduleMessage
from journal.models import Entry
from rsvp import tokens

from .conftest import CAROL, DAN, UID, invite, links_of

pytestmark = pytest.mark.django_db
PATH = "/calendar/rsvp"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["i"][0]


def partstats(alice) -> dict[str, str]:
    obj = CalendarObject.objects.get(account=alice, uid=UID)
    return itip.attendees(icalendar.Calendar.from_ical(obj.data), server_only=False)


def snapshot(alice):
    obj = CalendarObject.objects.get(account=alice, uid=UID)
    return (obj.data, obj.etag, obj.schedule_tag, Entry.objects.filter(account=alice).count(),
            ScheduleMessage.objects.filter(account=alice).count(), obj.calendar.member_change)


def answer(client, token: str, m: str, **extra):
    """Open the page as a browser would, then send its form (with the CSRF token it carries)."""
    page = client.get(PATH, {"i": token, "m": m}, **extra)
    assert page.status_code == 200, page.content
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post(PATH, {"csrfmiddlewaretoken": csrf, "i": token, "m": m}, **extra)


# --- the invitation ------------------------------------------------------------------------------
def test_invitation_mail_carries_three_links_sharing_one_token(invited, settings):
    _obj, mails = invited
    assert set(mails) == {CAROL, DAN}
    mail = mails[CAROL]
    types = [p.get_content_type() for p in mail.walk()]
    assert "text/plain" in types and "text/html" in types and "text/calendar" in types
    assert any(p.get_filename() == "invite.ics" for p in mail.walk())
    cal_part = next(p for p in mail.walk() if p.get_content_type() == "text/calendar")
    assert cal_part.get_param("method") == "REQUEST"
    links = links_of(mail)
    assert set(links) == {"ACCEPTED", "TENTATIVE", "DECLINED"}
    assert len({token_of(link) for link in links.values()}) == 1
    assert all(link.startswith(settings.PUBLIC_URL.rstrip("/") + PATH + "?i=") for link in links.values())
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_content()
    assert links["ACCEPTED"] in text and links["DECLINED"] in text
    # Each attendee has a token of its own.
    assert token_of(links_of(mails[DAN])["ACCEPTED"]) != token_of(links["ACCEPTED"])


def test_token_binds_account_id_uid_and_attendee_not_the_login(invited, alice):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    claims = tokens.check(token)
    assert claims == tokens.Claims(alice.pk, UID, CAROL)
    payload = signing.loads(token, salt=tokens.SALT)
    assert set(payload) == {"a", "u", "p"} and "alice" not in repr(payload)


def test_no_links_when_rsvp_is_disabled(jmap, alice, relay, django_capture_on_commit_callbacks):
    jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"httpRsvpEnable": False}}})
    with django_capture_on_commit_callbacks(execute=True):
        services.put_object(services.default_calendar(alice), "review.ics", invite())
    mail = relay.received[0].content.decode()
    assert "text/calendar" in mail and PATH not in mail and "text/html" not in mail


def test_custom_url_starts_the_links(jmap, alice, relay, django_capture_on_commit_callbacks):
    jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"httpRsvpUrl": "https://rsvp.example.org/answer/"}}})
    with django_capture_on_commit_callbacks(execute=True):
        services.put_object(services.default_calendar(alice), "review.ics", invite())
    mail = email.message_from_bytes(relay.received[0].content, policy=policy.default)
    assert all(link.startswith("https://rsvp.example.org/answer?i=") for link in links_of(mail).values())


def test_settings_object_defaults(jmap):
    [got] = jmap.ok("x:CalendarScheduling/get", {"ids": ["singleton"]})["list"]
    assert got["httpRsvpEnable"] is True and got["httpRsvpUrl"] in (None, "")
    assert got["httpRsvpLinkExpiry"] == 90 * 86400 * 1000


# --- GET changes nothing -------------------------------------------------------------------------
def test_link_scanner_opening_every_link_changes_nothing(invited, alice, client, django_assert_max_num_queries):
    before = snapshot(alice)
    client.get(PATH)  # the worker's first request reads the settings singletons once
    for link in links_of(invited[1][CAROL]).values():
        path = urlsplit(link)
        # The request's states, the organizer, its copy of the event: reads only.
        with django_assert_max_num_queries(3):
            resp = client.get(path.path + "?" + path.query)
        assert resp.status_code == 200
        assert client.head(path.path + "?" + path.query).status_code == 200
    assert snapshot(alice) == before
    assert partstats(alice)[CAROL] == "NEEDS-ACTION"


def test_page_shows_the_event_with_the_choice_preselected(invited, client):
    link = links_of(invited[1][CAROL])["TENTATIVE"]
    resp = client.get(PATH + "?" + urlsplit(link).query)
    body = resp.content.decode()
    assert "Quarterly review" in body and "Room 4" in body and "Bring the figures." in body
    assert "Alice Organizer" in body and "alice@example.org" in body
    # 10:00 in Berlin in January is 09:00 UTC; both are shown without script.
    assert "09:00" in body and "UTC" in body and "10:00" in body and "Europe/Berlin" in body
    assert re.search(r'value="TENTATIVE" checked', body)
    assert not re.search(r'value="ACCEPTED" checked', body)
    # Counts of the others' answers, never their names or addresses.
    assert "1 accepted, 0 maybe, 0 declined, 1 not answered" in body
    assert DAN not in body and "Dan" not in body


def test_page_headers(invited, client):
    resp = client.get(PATH, {"i": token_of(links_of(invited[1][CAROL])["ACCEPTED"]), "m": "ACCEPTED"})
    assert resp["Cache-Control"] == "no-store"
    assert resp["Referrer-Policy"] == "strict-origin"
    csp = resp["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert not re.search(rb"<script(?![^>]*\bsrc=)", resp.content), "inline script"
    assert b'name="viewport"' in resp.content
    assert resp["X-Frame-Options"] == "DENY"


def test_german_by_accept_language(invited, client):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    resp = client.get(PATH, {"i": token, "m": "ACCEPTED"}, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5")
    assert resp["Content-Language"] == "de" and b'lang="de"' in resp.content
    assert "Zusagen" in resp.content.decode() and "Antwort senden" in resp.content.decode()
    refused = client.get(PATH, {"i": token + "x", "m": "ACCEPTED"}, HTTP_ACCEPT_LANGUAGE="de")
    assert refused.status_code == 400 and "Link ist ungültig" in refused.content.decode()
    english = client.get(PATH, {"i": token, "m": "ACCEPTED"}, HTTP_ACCEPT_LANGUAGE="ja, en-GB;q=0.5")
    assert english["Content-Language"] == "en" and "Accept" in english.content.decode()


# (Accept-Language, the answer button, the submit button, the refusal of a broken link)
TRANSLATED = {
    "fr": ("fr-FR,fr;q=0.9", "Accepter", "Envoyer ma réponse", "Ce lien n’est pas valide"),
    "es": ("es-ES", "Aceptar", "Enviar mi respuesta", "Este enlace no es válido"),
    "it": ("it-IT,it;q=0.8,en;q=0.5", "Accetta", "Invia la mia risposta", "Questo link non è valido"),
    "pt": ("pt-BR", "Aceitar", "Enviar a minha resposta", "Este link não é válido"),
    "nl": ("nl-BE,nl;q=0.9", "Accepteren", "Mijn antwoord versturen", "Deze link is niet geldig"),
}


@pytest.mark.parametrize("lang", sorted(TRANSLATED))
def test_page_in_each_language(invited, client, lang):
    header, accept, send, invalid = TRANSLATED[lang]
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    resp = client.get(PATH, {"i": token, "m": "ACCEPTED"}, HTTP_ACCEPT_LANGUAGE=header)
    page = resp.content.decode()
    assert resp.status_code == 200 and resp["Content-Language"] == lang and f'lang="{lang}"' in page
    assert accept in page and send in page
    assert "Send my answer" not in page and "Answers so far" not in page
    refused = client.get(PATH, {"i": token + "x", "m": "ACCEPTED"}, HTTP_ACCEPT_LANGUAGE=header)
    assert refused.status_code == 400 and refused["Content-Language"] == lang and invalid in refused.content.decode()


def test_scheduling_off_closes_the_page(invited, client, jmap):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"enable": False}}})
    assert client.get(PATH, {"i": token, "m": "ACCEPTED"}).status_code == 404


# --- POST records the answer ---------------------------------------------------------------------
def test_accept_records_partstat_through_the_store(invited, alice, browser):
    obj, mails = invited
    token = token_of(links_of(mails[CAROL])["ACCEPTED"])
    entries = Entry.objects.filter(account=alice).count()
    resp = answer(browser, token, "ACCEPTED")
    assert resp.status_code == 200 and "Your answer has been recorded." in resp.content.decode()
    after = CalendarObject.objects.get(pk=obj.pk)
    cal = icalendar.Calendar.from_ical(after.data)
    assert itip.attendees(cal, server_only=False) == {CAROL: "ACCEPTED", DAN: "ACCEPTED"}
    assert itip.sequence(cal) == 2, "a reply does not move SEQUENCE"
    # The organizer's copy was revised by the store: its DTSTAMP says when (RFC 5545 §3.8.7.2).
    assert itip.components(cal)[0]["DTSTAMP"].dt > dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert after.etag != obj.etag and after.schedule_tag == obj.schedule_tag
    assert Entry.objects.filter(account=alice).count() > entries, "journaled, so clients sync it"
    [reply] = ScheduleMessage.objects.filter(account=alice)
    assert reply.method == "REPLY" and reply.sender == CAROL and "PARTSTAT=ACCEPTED" in reply.data
    assert "DTSTAMP:20260101T000000Z" not in reply.data, "the REPLY carries a fresh DTSTAMP"


def test_answering_again_changes_the_answer_and_repeating_is_no_error(invited, alice, browser):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    assert answer(browser, token, "ACCEPTED").status_code == 200
    assert partstats(alice)[CAROL] == "ACCEPTED"
    declined = answer(browser, token, "DECLINED")
    assert declined.status_code == 200 and "You declined this invitation." in declined.content.decode()
    assert partstats(alice)[CAROL] == "DECLINED"
    again = answer(browser, token, "DECLINED")
    assert again.status_code == 200 and partstats(alice)[CAROL] == "DECLINED"


def test_post_without_csrf_token_is_refused(invited, alice, browser):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    before = snapshot(alice)
    resp = browser.post(PATH, {"i": token, "m": "ACCEPTED"})
    assert resp.status_code == 403
    # A forged cross-site form: the victim's CSRF cookie, no matching field, a foreign Origin.
    browser.get(PATH, {"i": token, "m": "ACCEPTED"})
    resp = browser.post(PATH, {"i": token, "m": "ACCEPTED", "csrfmiddlewaretoken": "x" * 64},
                        HTTP_ORIGIN="https://evil.example")
    assert resp.status_code == 403
    assert snapshot(alice) == before


def test_post_with_a_bad_answer_is_refused(invited, alice, browser):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    before = snapshot(alice)
    for m in ("", "NEEDS-ACTION", "DELEGATED", "accepted; drop"):
        resp = answer(browser, token, m)
        assert resp.status_code == 400, (m, resp.status_code)
    assert snapshot(alice) == before


def test_other_methods_are_refused(invited, client):
    assert client.put(PATH).status_code == 405
    assert client.delete(PATH).status_code == 405


# --- refusals --------------------------------------------------------------------------------------
def test_tampered_token(invited, alice, client, browser):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    before = snapshot(alice)
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), token + "x", "", "a" * 5000,
                "sw1.abc.YWxpY2U", signing.dumps({"a": alice.pk, "u": UID, "p": CAROL})):  # no salt
        resp = client.get(PATH, {"i": bad, "m": "ACCEPTED"})
        assert resp.status_code == 400 and "This link is not valid" in resp.content.decode(), bad
    page = browser.get(PATH, {"i": token, "m": "ACCEPTED"})
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert browser.post(PATH, {"csrfmiddlewaretoken": csrf, "i": token + "x", "m": "ACCEPTED"}).status_code == 400
    assert snapshot(alice) == before


def test_expired_token(invited, alice, client, jmap, monkeypatch):
    real = time.time
    monkeypatch.setattr(signing.time, "time", lambda: real() - 3 * 3600)
    old = quote(tokens.mint(alice.pk, UID, CAROL))
    monkeypatch.setattr(signing.time, "time", real)
    assert client.get(PATH + f"?i={old}&m=ACCEPTED").status_code == 200  # 90 days by default
    jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"httpRsvpLinkExpiry": 3600 * 1000}}})
    resp = client.get(PATH + f"?i={old}&m=ACCEPTED")
    assert resp.status_code == 410 and "This link has expired" in resp.content.decode()


def test_deleted_event(invited, alice, client):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    services.delete_object(services.default_calendar(alice), "review.ics")
    resp = client.get(PATH, {"i": token, "m": "ACCEPTED"})
    assert resp.status_code == 404 and "This event no longer exists" in resp.content.decode()


def test_removed_attendee(invited, alice, client, browser):
    token = token_of(links_of(invited[1][DAN])["DECLINED"])
    services.put_object(services.default_calendar(alice), "review.ics", invite(dan=False))
    resp = client.get(PATH, {"i": token, "m": "DECLINED"})
    assert resp.status_code == 403 and "You are no longer invited" in resp.content.decode()
    assert DAN not in partstats(alice)


def test_disabled(invited, client, jmap):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": {"httpRsvpEnable": False}}})
    resp = client.get(PATH, {"i": token, "m": "ACCEPTED"})
    assert resp.status_code == 404 and "Answers are not taken here" in resp.content.decode()


def test_anonymous_rate_limit(invited, client, jmap):
    jmap.ok("x:Http/set", {"update": {"singleton": {"rateLimitAnonymous": {"count": 2, "period": 60000}}}})
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    for _ in range(2):
        assert client.get(PATH, {"i": token, "m": "ACCEPTED"}, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert client.get(PATH, {"i": token, "m": "ACCEPTED"}, REMOTE_ADDR="203.0.113.7").status_code == 429


# --- the attacker ---------------------------------------------------------------------------------
def test_a_token_for_one_attendee_cannot_answer_for_another(invited, alice, browser):
    token = token_of(links_of(invited[1][CAROL])["DECLINED"])
    page = browser.get(PATH, {"i": token, "m": "DECLINED"})
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    resp = browser.post(PATH, {"csrfmiddlewaretoken": csrf, "i": token, "m": "DECLINED", "p": DAN,
                               "attendee": DAN})
    assert resp.status_code == 200
    assert partstats(alice) == {CAROL: "DECLINED", DAN: "ACCEPTED"}


def test_a_token_cannot_touch_another_event_or_organizer(invited, alice, make_account, client, browser,
                                                         django_capture_on_commit_callbacks):
    bob = make_account("bob")
    other = invite("bobs-event@example.org").replace(b"alice@example.org", b"bob@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        services.put_object(services.default_calendar(bob), "bob.ics", other)
        services.put_object(services.default_calendar(alice), "second.ics", invite("second@example.org"))
    carol_token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    # The signed value names alice's account and this UID: rewriting either breaks the signature.
    payload, stamp, mac = carol_token.rsplit(":", 2)
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    same = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    assert same == payload, "the forgeries below differ from the real token only by the change"
    for change in ({"u": "second@example.org"}, {"a": bob.pk, "u": "bobs-event@example.org"}, {"p": DAN}):
        forged = base64.urlsafe_b64encode(json.dumps({**claims, **change}, separators=(",", ":")).encode())
        forged = forged.decode().rstrip("=") + f":{stamp}:{mac}"
        assert client.get(PATH, {"i": forged, "m": "ACCEPTED"}).status_code == 400, change
    # The same claims signed under another salt (another signed value of the project) are refused.
    other_salt = signing.dumps({**claims, "u": "second@example.org"}, salt="another-salt")
    assert client.get(PATH, {"i": other_salt, "m": "ACCEPTED"}).status_code == 400
    # A token for bob's event minted under alice's account finds nothing of bob's.
    cross = tokens.mint(alice.pk, "bobs-event@example.org", CAROL)
    assert client.get(PATH, {"i": cross, "m": "ACCEPTED"}).status_code == 404
    answer(browser, carol_token, "ACCEPTED")
    bobs = CalendarObject.objects.get(account=bob, uid="bobs-event@example.org")
    second = CalendarObject.objects.get(account=alice, uid="second@example.org")
    for obj in (bobs, second):
        assert itip.attendees(icalendar.Calendar.from_ical(obj.data), server_only=False)[CAROL] == "NEEDS-ACTION"


def test_the_token_is_never_logged(invited, alice, browser, caplog):
    token = token_of(links_of(invited[1][CAROL])["ACCEPTED"])
    with caplog.at_level(logging.DEBUG):
        answer(browser, token, "ACCEPTED")
        browser.get(PATH, {"i": token + "x", "m": "ACCEPTED"})
        browser.post(PATH, {"i": token, "m": "ACCEPTED"})  # the CSRF refusal is logged
    assert caplog.records
    assert not [r for r in caplog.records if token[:40] in r.getMessage()]


@pytest.mark.parametrize("bad", [{"httpRsvpLinkExpiry": 1000}, {"httpRsvpLinkExpiry": 3651 * 86400 * 1000},
                                 {"httpRsvpUrl": "javascript:alert(1)"}, {"httpRsvpUrl": "not a url"}])
def test_settings_refuse_bad_values(jmap, bad):
    got = jmap.ok("x:CalendarScheduling/set", {"update": {"singleton": bad}})
    assert "singleton" in got["notUpdated"], got
