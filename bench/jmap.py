#!/usr/bin/env python3
"""JMAP requests per second with Basic authentication, against gunicorn as production runs it,
side by side with Cyrus IMAP's JMAP in the same run.

    .venv/bin/python bench/jmap.py [--duration 10] [--workers N] [--connections 16] [--no-cyrus]

What it does, in one run and under the same gunicorn settings (gunicorn.conf.py, the serving
model of SERVER_MODEL, asgi by default; 2 x cores + 1 workers unless --workers or
WEB_CONCURRENCY says otherwise):

1. bare server           bench/bare_asgi.py or bench/bare_wsgi.py (hello world): what gunicorn
                         alone costs per request, Python's ceiling here;
2. Cyrus Core/echo       the peer: Debian's Cyrus IMAP 3.6 httpd answering POST /jmap/ with one
                         Core/echo call, Basic authentication (bench/cyrus.py; `make cyrus`);
3. Core/echo             POST /jmap/ with one Core/echo call;
4. GET /jmap/session     the session document;
5. x:T/get               POST /jmap/ reading each settings singleton (x:Authentication, x:Http, …).

Scenarios 3-5 run against the project on a fresh temporary SQLite database (tests/live.py),
as the first administrator that `manage.py bootstrap` creates, with Basic authentication
(the administrator's password, hashed with the default argon2id: once verified, the verdict is
cached, so the figures show the steady state of a client that re-sends its credentials). Every
response must have the expected status (200); anything else is counted and voids the run.

wrk (Debian's /usr/bin/wrk) drives each scenario for --duration seconds after a short warm-up,
with bench/request.lua. Only 127.0.0.1 is ever contacted. The script ends with the two targets
of issue 11: Core/echo at least twice Cyrus's Core/echo, and every singleton /get at least
0.85 x Core/echo.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cyrus  # noqa: E402
from harness import Run, basic, bootstrap, check, free_port, measure, parse, parser  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}
# The settings singletons the server declares (registry declarations with singleton=True).
SINGLETONS = ("Authentication", "Http", "Jmap", "Metrics", "MtaSts", "HttpForm", "OidcProvider", "Security",
              "SystemSettings")


def singleton_get(name: str) -> dict:
    return {"using": [CORE, "urn:stalwart:jmap"], "methodCalls": [[f"x:{name}/get", {"ids": ["singleton"]}, "c0"]]}


def main() -> int:
    p = parser(__doc__, connections=16)
    p.add_argument("--no-cyrus", action="store_true", help="leave Cyrus out (the ratio to it is then not checked)")
    p.add_argument("--peer-ratio", type=float, default=2.0, help="Core/echo to Cyrus's Core/echo to reach (default 2)")
    p.add_argument("--get-ratio", type=float, default=0.85, help="each singleton /get to Core/echo to reach (default 0.85)")
    args = parse(p)
    if not args.no_cyrus and cyrus.missing():
        p.error(f"{cyrus.missing()}; or --no-cyrus")

    run = Run(args)
    bare = run.bare()
    results = [bare]
    peer = None
    if not args.no_cyrus:
        with cyrus.cyrus_server(args.connections, free_port) as cyrus_url:
            authorization = basic(cyrus.USER, cyrus.PASSWORD)
            check("POST", cyrus_url, authorization, ECHO, "Core/echo")
            peer = measure("Cyrus 3.6 Core/echo (Basic)", cyrus_url, args, method="POST", body=json.dumps(ECHO),
                           authorization=authorization)
            results.append(peer)
    gets = []
    with run.project() as server:
        authorization = basic(*bootstrap(server))
        api, session = server.url + "/jmap/", server.url + "/jmap/session"
        check("POST", api, authorization, ECHO, "Core/echo")
        check("GET", session, authorization, None, None)
        for name in SINGLETONS:
            check("POST", api, authorization, singleton_get(name), f"x:{name}/get")
        echo = measure("Core/echo (Basic)", api, args, method="POST", body=json.dumps(ECHO),
                       authorization=authorization)
        results.append(echo)
        results.append(measure("GET /jmap/session (Basic)", session, args, authorization=authorization))
        for name in SINGLETONS:
            gets.append(measure(f"x:{name}/get (Basic)", api, args, method="POST",
                                body=json.dumps(singleton_get(name)), authorization=authorization))
        results += gets
    status = run.report(results, bare)
    met = True
    if peer is not None:
        ratio = echo.rate / peer.rate if peer.rate else 0.0
        met &= ratio >= args.peer_ratio
        print(f"Core/echo: {echo.rate:.0f} req/s = {ratio:.2f} x Cyrus's {peer.rate:.0f} "
              f"(target {args.peer_ratio:.2f} x): {'met' if ratio >= args.peer_ratio else 'NOT met'}")
    print(f"Core/echo: {echo.rate / bare.rate:.2f} x the bare server; Cyrus: "
          + (f"{peer.rate / bare.rate:.2f} x" if peer is not None else "not run"))
    for got in gets:
        share = got.rate / echo.rate if echo.rate else 0.0
        met &= share >= args.get_ratio
        print(f"{got.scenario}: {share:.2f} x Core/echo (target {args.get_ratio:.2f} x): "
              f"{'met' if share >= args.get_ratio else 'NOT met'}")
    print("targets: " + ("all met" if met else "NOT all met"))
    return status


if __name__ == "__main__":
    sys.exit(main())
