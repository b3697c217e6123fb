#!/usr/bin/env python3
"""Client discovery and health endpoints per second, against gunicorn as production runs it.

    .venv/bin/python bench/discovery.py [--duration 10] [--workers N] [--connections 8]

One run, same gunicorn settings as `make run` (gunicorn.conf.py, sync workers):

1. bare WSGI             bench/bare_wsgi.py (hello world): what gunicorn alone costs;
2. /healthz/live         GET: the process answers (no database, no cache);
3. autoconfig            GET /mail/config-v1.1.xml?emailaddress=jane@example.org: the
                         Thunderbird document, built from the system settings;
4. autodiscover          POST /autodiscover/autodiscover.xml with an Outlook request: parsed
                         with defusedxml, answered with the Outlook document;
5. /healthz/ready        GET: one query to the database and one round trip to the cache.

The project runs on a fresh SQLite database without REDIS_URL (tests/live.py). Every response
must have the expected status (200); anything else is counted. wrk (Debian's /usr/bin/wrk)
drives each scenario with bench/request.lua. Only 127.0.0.1 is contacted.
"""
from __future__ import annotations

import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Run, measure, parse, parser  # noqa: E402

OUTLOOK = ('<?xml version="1.0" encoding="utf-8"?>'
           '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
           '<Request><EMailAddress>jane@example.org</EMailAddress>'
           '<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'
           '</AcceptableResponseSchema></Request></Autodiscover>')


def main() -> int:
    args = parse(parser(__doc__, connections=8))
    run = Run(args)
    bare = run.bare()
    results = [bare]
    with run.project() as server:
        autoconfig = server.url + "/mail/config-v1.1.xml?emailaddress=jane@example.org"
        autodiscover = server.url + "/autodiscover/autodiscover.xml"
        for method, url, body in (("GET", server.url + "/healthz/live", None), ("GET", autoconfig, None),
                                  ("POST", autodiscover, OUTLOOK), ("GET", server.url + "/healthz/ready", None)):
            got = requests.request(method, url, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
            if got.status_code != 200:
                raise RuntimeError(f"{method} {url} answered {got.status_code}: {got.text[:200]}")
        results.append(measure("GET /healthz/live", server.url + "/healthz/live", args))
        results.append(measure("GET autoconfig (config-v1.1.xml)", autoconfig, args, width=34))
        results.append(measure("POST autodiscover.xml (Outlook)", autodiscover, args, width=34, method="POST",
                               body=OUTLOOK, content_type="text/xml"))
        results.append(measure("GET /healthz/ready", server.url + "/healthz/ready", args))
    return run.report(results, bare)


if __name__ == "__main__":
    sys.exit(main())
