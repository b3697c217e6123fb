"""The access log never shows an RSVP link's token (network/accesslog.py), whichever atom the
configured format uses; other URLs are logged as they are."""
from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from gunicorn.config import Config

from network.accesslog import RedactingLogger

TOKEN = "eyJhIjoxLCJ1IjoieCIsInAiOiJjQGV4YW1wbGUubmV0In0:1xaW:AbCdEf"


def atoms(path: str, query: str, referer: str = "-") -> dict:
    logger = RedactingLogger(Config())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{path}?{query}" if query else path, "PATH_INFO": path,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.5",
               "HTTP_REFERER": referer}
    resp = SimpleNamespace(status="200 OK", headers=[], sent=10)
    return logger.atoms(resp, [("Referer", referer)], environ, dt.timedelta(seconds=0))


def test_token_is_redacted_in_every_atom():
    got = atoms("/calendar/rsvp", f"i={TOKEN}&m=ACCEPTED",
                referer=f"https://mail.example.org/calendar/rsvp?m=DECLINED&i={TOKEN}")
    assert got["r"] == "GET /calendar/rsvp?i=[redacted]&m=ACCEPTED HTTP/1.1"
    assert got["q"] == "i=[redacted]&m=ACCEPTED"
    assert got["f"] == "https://mail.example.org/calendar/rsvp?m=DECLINED&i=[redacted]"
    assert not [k for k, v in got.items() if isinstance(v, str) and TOKEN in v]


def test_other_urls_are_logged_as_they_are():
    got = atoms("/jmap/download/a/b/c", "i=kept&accept=x")
    assert got["r"] == "GET /jmap/download/a/b/c?i=kept&accept=x HTTP/1.1" and got["q"] == "i=kept&accept=x"
