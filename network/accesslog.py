"""gunicorn's access log without the secrets that travel in URLs.

The calendar invitations' answer links carry their token in the query string
(`/calendar/rsvp?i=<token>&m=…`, the reference's link shape), and the access log writes the
request line and the Referer. Every atom that would carry the token gets `i=[redacted]` instead;
the rest of the line is gunicorn's as configured.
"""
from __future__ import annotations

import re

from gunicorn import glogging

# `i=` in the query of an RSVP link, wherever it sits in a logged value (request line, Referer).
_IN_URL = re.compile(r"(/calendar/rsvp\?(?:[^\s\"#]*?&)?i=)[^&\s\"#]*")
# The query string alone (the `q` atom), when the path is the RSVP page.
_IN_QUERY = re.compile(r"(^|&)(i=)[^&]*")
REDACTED = "[redacted]"


def redact_url(value: str) -> str:
    return _IN_URL.sub(r"\1" + REDACTED, value)


class RedactingLogger(glogging.Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str) and "/calendar/rsvp" in value:
                atoms[key] = redact_url(value)
        if str(environ.get("PATH_INFO", "")).startswith("/calendar/rsvp"):
            for key in ("q", "{query_string}e"):
                if isinstance(atoms.get(key), str):
                    atoms[key] = _IN_QUERY.sub(r"\1\2" + REDACTED, atoms[key])
        return atoms
