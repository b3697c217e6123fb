#!/usr/bin/env python3
"""JMAP requests per second with Basic authentication, against gunicorn as production runs it.

    .venv/bin/python bench/jmap.py [--duration 10] [--workers N] [--connections 8]

What it does, in one run and under the same gunicorn settings (gunicorn.conf.py, sync workers,
2 x cores + 1 of them unless --workers or WEB_CONCURRENCY says otherwise):

1. bare WSGI             bench/bare_wsgi.py (hello world): what gunicorn alone costs per request;
2. Django floor          GET /.well-known/jmap of the project: a 307 redirect, no authentication,
                         no database; what Django and the project's middleware cost at the least;
3. Core/echo             POST /jmap/ with one Core/echo call;
4. GET /jmap/session     the session document;
5. x:Authentication/get  POST /jmap/ reading the Authentication singleton from the database.

Scenarios 2-5 run against the project on a fresh temporary SQLite database (tests/live.py),
as the first administrator that `manage.py bootstrap` creates, with Basic authentication
(the administrator's password, hashed with the default argon2id: once verified, the verdict is
cached, so the figures show the steady state of a client that re-sends its credentials). Every
response must have the expected status (307 for the floor, 200 otherwise); anything else is
counted in the non-2xx column.

wrk (Debian's /usr/bin/wrk) drives each scenario for --duration seconds after a short warm-up,
with bench/request.lua, whose done() prints the figures this script parses. Only 127.0.0.1 is ever
contacted. The ratio column compares each scenario's rate with the bare WSGI application's.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Run, basic, bootstrap, check, measure, parse, parser  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}
AUTH_GET = {"using": [CORE, "urn:stalwart:jmap"],
            "methodCalls": [["x:Authentication/get", {"ids": ["singleton"]}, "c0"]]}


def main() -> int:
    p = parser(__doc__, connections=8)
    p.add_argument("--target", type=float, default=1500, help="Core/echo req/s to reach (default 1500)")
    p.add_argument("--target-ratio", type=float, default=0.5, help="Core/echo share of bare WSGI to reach (default 0.5)")
    args = parse(p)

    run = Run(args)
    bare = run.bare()
    results = [bare]
    with run.project() as server:
        authorization = basic(*bootstrap(server))
        api, session = server.url + "/jmap/", server.url + "/jmap/session"
        echo, auth_get = json.dumps(ECHO), json.dumps(AUTH_GET)
        check("POST", api, authorization, ECHO, "Core/echo")
        check("GET", session, authorization, None, None)
        check("POST", api, authorization, AUTH_GET, "x:Authentication/get")
        floor = requests.get(server.url + "/.well-known/jmap", allow_redirects=False, timeout=30)
        if floor.status_code != 307:
            raise RuntimeError(f"GET /.well-known/jmap answered {floor.status_code}")
        results.append(measure("Django floor: /.well-known/jmap", server.url + "/.well-known/jmap", args,
                               expect=307))
        echo_result = measure("Core/echo (Basic)", api, args, method="POST", body=echo, authorization=authorization)
        results.append(echo_result)
        results.append(measure("GET /jmap/session (Basic)", session, args, authorization=authorization))
        results.append(measure("x:Authentication/get (Basic)", api, args, method="POST", body=auth_get,
                               authorization=authorization))
    status = run.report(results, bare)
    ratio = echo_result.rate / bare.rate if bare.rate else 0.0
    met = echo_result.rate >= args.target and ratio >= args.target_ratio
    print(f"Core/echo: {echo_result.rate:.0f} req/s, {ratio * 100:.0f} % of bare WSGI "
          f"(target {args.target:.0f} req/s and {args.target_ratio * 100:.0f} %): {'met' if met else 'NOT met'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
