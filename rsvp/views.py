"""`/calendar/rsvp`: the page an invitation's Accept / Maybe / Decline link opens.

GET (and HEAD) only shows the invitation with the chosen answer preselected: mail scanners that
fetch every link change nothing. The answer is recorded by the form's POST, under Django's CSRF
check, as the REPLY the attendee would have mailed (calendars.scheduling.deliver). Every refusal
is a page of its own with a 4xx status. See docs/calendar-invitations.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import icalendar
from django.contrib.auth import get_user_model
from django.db import transaction
from django.shortcuts import render
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation.trans_real import parse_accept_lang_header
from django.views.decorators.http import require_http_methods

from calendars import itip, scheduling
from calendars.models import CalendarObject
from stalwart_site.csp import strict_csp

from . import tokens

# The languages the page is translated into (rsvp/locale); the first is the fallback.
LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl")
LABELS = {"ACCEPTED": gettext_lazy("Accept"), "TENTATIVE": gettext_lazy("Maybe"),
          "DECLINED": gettext_lazy("Decline")}
DONE = {"ACCEPTED": gettext_lazy("You accepted this invitation."),
        "TENTATIVE": gettext_lazy("You answered maybe to this invitation."),
        "DECLINED": gettext_lazy("You declined this invitation.")}


def language(request) -> str:
    """The first supported language of Accept-Language, by its primary tag (de-DE is German)."""
    for tag, _q in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")[:512]):
        base = tag.split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return LANGUAGES[0]


@dataclass
class Refusal(Exception):
    status: int
    title: str
    message: str


@require_http_methods(["GET", "HEAD", "POST"])
@strict_csp
def rsvp(request):
    lang = language(request)
    with translation.override(lang):
        try:
            response = _answer(request)
        except Refusal as refusal:
            response = render(request, "rsvp/refused.html",
                              {"title": refusal.title, "message": refusal.message, "lang": lang},
                              status=refusal.status)
    # The token is in the URL: never cached, never sent on in a Referer beyond the origin (a
    # full no-referrer would make the browser send `Origin: null` with the form, which the
    # CSRF check rightly refuses), never indexed.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "strict-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Content-Language"] = lang
    response["Vary"] = "Accept-Language, Cookie"
    return response


def _answer(request):
    config = tokens.settings_now()
    if not (config.enable and config.http_rsvp_enable):
        raise Refusal(404, _("Answers are not taken here"),
                      _("This server does not take answers to invitations on the web. Reply from your calendar "
                        "application instead."))
    data = request.POST if request.method == "POST" else request.GET
    answer = str(data.get("m", "")).upper()
    try:
        claims = tokens.check(data.get("i", ""), config)
    except tokens.Expired:
        raise Refusal(410, _("This link has expired"),
                      _("The link is too old to answer with. Reply from your calendar application, or ask the "
                        "organizer to send the invitation again.")) from None
    except tokens.Invalid:
        raise Refusal(400, _("This link is not valid"),
                      _("The link is incomplete or was changed. Open it again from the invitation, copying the "
                        "whole address.")) from None
    if request.method == "POST" and answer not in tokens.ANSWERS:
        raise Refusal(400, _("Choose an answer"), _("Choose Accept, Maybe or Decline and send the form again."))
    organizer, stored = _event(claims)
    if claims.attendee not in itip.attendees(stored, server_only=False):
        raise Refusal(403, _("You are no longer invited"),
                      _("The organizer has removed you from this event, so your answer is not needed."))
    if request.method == "POST":
        with transaction.atomic():
            message = itip.attendee_answer(stored, claims.attendee, answer)
            status = scheduling.deliver(organizer, message) if message is not None else "5.3"
        if status != itip.DELIVERED:
            raise Refusal(409, _("Your answer was not recorded"),
                          _("The event changed while you answered. Open the link again and send your answer once "
                            "more."))
        organizer, stored = _event(claims)
    current = itip.attendees(stored, server_only=False).get(claims.attendee, "NEEDS-ACTION")
    chosen = answer if request.method == "GET" and answer in tokens.ANSWERS else current
    context = _describe(stored, claims, organizer)
    context.update({
        "token": data.get("i", ""), "lang": translation.get_language(),
        "choices": [(p, LABELS[p], p == chosen) for p in tokens.ANSWERS],
        "recorded": DONE.get(current) if request.method == "POST" else None,
        "current": DONE.get(current) if request.method != "POST" else None,
    })
    return render(request, "rsvp/page.html", context)


def _event(claims: tokens.Claims):
    """The organizer's account and its copy of the event, still organized by it."""
    organizer = get_user_model().objects.filter(pk=claims.account_id).first()
    obj = (CalendarObject.objects.filter(account_id=claims.account_id, uid=claims.uid).order_by("pk").first()
           if organizer is not None else None)
    stored = None
    if obj is not None:
        try:
            stored = icalendar.Calendar.from_ical(obj.data)
        except ValueError:
            stored = None
    if stored is None or itip.organizer(stored) != itip.address(organizer.email_address):
        raise Refusal(404, _("This event no longer exists"),
                      _("The organizer has cancelled or deleted this event."))
    return organizer, stored


def _when(value) -> dict | None:
    """DTSTART/DTEND for the page: in UTC (the one zone the server knows is unambiguous) and in
    the event's own zone; rsvp.js adds the visitor's zone where script runs."""
    if value is None:
        return None
    moment = value.dt
    if isinstance(moment, datetime):
        if moment.tzinfo is None:  # floating: the same wall time everywhere
            return {"local": date_format(moment, "D j M Y, H:i"), "utc": None, "iso": None, "zone": None}
        utc = moment.astimezone(timezone.utc)
        zone = str(value.params.get("TZID") or moment.tzinfo)
        return {"local": date_format(moment, "D j M Y, H:i"), "zone": zone if zone != "UTC" else None,
                "utc": date_format(utc, "D j M Y, H:i"), "iso": utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if isinstance(moment, date):
        return {"local": date_format(moment, "D j M Y"), "utc": None, "iso": None, "zone": None, "all_day": True}
    return None


def _describe(stored: icalendar.Calendar, claims: tokens.Claims, organizer) -> dict:
    comps = itip.components(stored)
    master = next((c for c in comps if "RECURRENCE-ID" not in c), comps[0])
    org_prop = master.get("ORGANIZER")
    org_name = str(org_prop.params.get("CN", "")) if org_prop is not None else ""
    everyone = itip.attendees(stored, server_only=False)
    # Counts only: the other attendees' names and addresses are not the visitor's to see.
    keys = {"ACCEPTED": "accepted", "TENTATIVE": "tentative", "DECLINED": "declined"}
    counts = {"accepted": 0, "tentative": 0, "declined": 0, "pending": 0}
    for who, partstat in everyone.items():
        if who != itip.address(organizer.email_address):
            counts[keys.get(partstat, "pending")] += 1
    start, end = _when(master.get("DTSTART")), _when(master.get("DTEND") or master.get("DUE"))
    if start and end and not start.get("all_day"):
        # An end on the start's day shows its time alone.
        for key in ("utc", "local"):
            if end.get(key) and start.get(key) and end[key][:-len(", 00:00")] == start[key][:-len(", 00:00")]:
                end[key] = end[key][-len("00:00"):]
    return {
        "summary": str(master.get("SUMMARY", "")) or _("(no title)"),
        "location": str(master.get("LOCATION", "")),
        "description": str(master.get("DESCRIPTION", ""))[:4000],
        "start": start,
        "end": end,
        "recurring": "RRULE" in master or "RDATE" in master,
        "organizer_name": org_name,
        "organizer_address": itip.organizer(stored),
        "attendee": claims.attendee,
        "counts": counts,
    }
