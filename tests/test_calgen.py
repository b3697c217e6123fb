"""bench/calgen.py's events are what issue 14's bench asks for and what a client could PUT: the
store takes each of them, one in ten recurs weekly for a year, and the week that bench/dav.py
queries finds the events the generator put there (the same count it prints for both servers)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from lxml import etree

from calendars import query, services

# A script of bench/, not a package; bench/ is not put on sys.path (its dav.py would shadow the app).
_spec = importlib.util.spec_from_file_location("calgen", Path(__file__).resolve().parent.parent / "bench" / "calgen.py")
calgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calgen)

WEEK = etree.fromstring(
    b'<C:filter xmlns:C="urn:ietf:params:xml:ns:caldav"><C:comp-filter name="VCALENDAR">'
    b'<C:comp-filter name="VEVENT"><C:time-range start="20260601T000000Z" end="20260608T000000Z"/>'
    b'</C:comp-filter></C:comp-filter></C:filter>')


@pytest.mark.django_db
def test_the_store_takes_every_event_and_a_tenth_recur(make_account):
    account = make_account("gen")
    calendar = services.create_calendar(account, "bench")
    for n in range(200):  # 200 hours from 1 January: none falls in June by itself
        services.put_object(calendar, calgen.name(n), calgen.ics(n))
    texts = [calgen.ics(n).decode() for n in range(200)]
    assert sum("RRULE:FREQ=WEEKLY;COUNT=52" in t for t in texts) == 20
    assert len({t.split("UID:")[1].split("\r\n")[0] for t in texts}) == 200
    # Only the 20 weekly ones reach the first week of June, each once.
    assert len(query.calendar_query(calendar, WEEK)) == 20
    assert len(services.list_etags(calendar)) == 200
