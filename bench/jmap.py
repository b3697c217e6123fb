#!/usr/bin/env python3
"""JMAP requests per second with Basic authentication, against gunicorn as production runs it,
side by side with Cyrus IMAP's JMAP in the same run.

    .venv/bin/python bench/jmap.py [--duration 5] [--rounds 3] [--workers N] [--connections 16] [--no-cyrus]

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
with bench/request.lua, in --rounds rounds: Cyrus and the project are both up for the whole run,
and each round measures every scenario once, Cyrus right before our Core/echo, so that a change
in the machine's other work moves both sides of a ratio. The ratios are the medians of the
rounds' own ratios, each row of the table the round with the median rate. Only 127.0.0.1 is ever contacted. The script ends with the two targets
of issue 11: Core/echo at least twice Cyrus's Core/echo, and every singleton /get at least
0.85 x Core/echo.
"""
from __future__ import annotations

import json
import random
import sys
from contextlib import ExitStack
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


def median_result(runs: list) -> object:
    """The round whose rate is the median (its latencies and CPU come with it)."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> int:
    p = parser(__doc__, connections=16)
    p.set_defaults(duration=5)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of every scenario, interleaved; the ratios are the medians of each round's (default 3)")
    p.add_argument("--no-cyrus", action="store_true", help="leave Cyrus out (the ratio to it is then not checked)")
    p.add_argument("--peer-ratio", type=float, default=2.0, help="Core/echo to Cyrus's Core/echo to reach (default 2)")
    p.add_argument("--get-ratio", type=float, default=0.85, help="each singleton /get to Core/echo to reach (default 0.85)")
    args = parse(p)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not args.no_cyrus and cyrus.missing():
        p.error(f"{cyrus.missing()}; or --no-cyrus")

    run = Run(args)
    bare = run.bare()
    # Both servers stay up for the whole run and each round measures every scenario once, Cyrus
    # right before our Core/echo: a change in what else the machine does moves a round's pair
    # together, and shows as spread between rounds rather than as a ratio.
    rounds: dict[str, list] = {}
    with ExitStack() as stack:
        cyrus_url = None
        if not args.no_cyrus:
            cyrus_url = stack.enter_context(cyrus.cyrus_server(args.connections, free_port))
            cyrus_auth = basic(cyrus.USER, cyrus.PASSWORD)
            check("POST", cyrus_url, cyrus_auth, ECHO, "Core/echo")
        server = stack.enter_context(run.project())
        authorization = basic(*bootstrap(server))
        api, session = server.url + "/jmap/", server.url + "/jmap/session"
        check("POST", api, authorization, ECHO, "Core/echo")
        check("GET", session, authorization, None, None)
        for name in SINGLETONS:
            check("POST", api, authorization, singleton_get(name), f"x:{name}/get")
        scenarios = []
        if cyrus_url:
            scenarios.append(("Cyrus 3.6 Core/echo (Basic)", cyrus_url, {"method": "POST", "body": json.dumps(ECHO),
                                                                          "authorization": cyrus_auth}))
        scenarios.append(("Core/echo (Basic)", api, {"method": "POST", "body": json.dumps(ECHO),
                                                     "authorization": authorization}))
        scenarios.append(("GET /jmap/session (Basic)", session, {"authorization": authorization}))
        scenarios += [(f"x:{name}/get (Basic)", api, {"method": "POST", "body": json.dumps(singleton_get(name)),
                                                       "authorization": authorization}) for name in SINGLETONS]
        fixed, singles = scenarios[:-len(SINGLETONS)], scenarios[-len(SINGLETONS):]
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}", file=sys.stderr, flush=True)
            # The singletons in another order each round (the same orders every run), so that
            # no one of them always follows the same neighbour or sits at the same time.
            order = singles[:]
            random.Random(number).shuffle(order)
            for label, url, kw in fixed + order:
                rounds.setdefault(label, []).append(measure(label, url, args, **kw))
    results = [bare] + [median_result(runs) for runs in rounds.values()]
    status = run.report(results, bare)
    if args.rounds > 1:
        print(f"each row: the round with the median rate of {args.rounds}; the ratios below are the medians "
              "of the rounds' own ratios")
    echo_runs = rounds["Core/echo (Basic)"]
    met = True
    if cyrus_url:
        peer_runs = rounds["Cyrus 3.6 Core/echo (Basic)"]
        ratios = [e.rate / c.rate if c.rate else 0.0 for e, c in zip(echo_runs, peer_runs)]
        ratio = median(ratios)
        met &= ratio >= args.peer_ratio
        print(f"Core/echo: {median([r.rate for r in echo_runs]):.0f} req/s = {ratio:.2f} x Cyrus's "
              f"{median([r.rate for r in peer_runs]):.0f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"target {args.peer_ratio:.2f} x): {'met' if ratio >= args.peer_ratio else 'NOT met'}")
        print(f"Core/echo: {median([r.rate for r in echo_runs]) / bare.rate:.2f} x the bare server; Cyrus: "
              f"{median([r.rate for r in peer_runs]) / bare.rate:.2f} x")
    for name in SINGLETONS:
        label = f"x:{name}/get (Basic)"
        shares = [g.rate / e.rate if e.rate else 0.0 for g, e in zip(rounds[label], echo_runs)]
        share = median(shares)
        met &= share >= args.get_ratio
        print(f"{label}: {share:.2f} x Core/echo (rounds: {', '.join(f'{x:.2f}' for x in shares)}; "
              f"target {args.get_ratio:.2f} x): {'met' if share >= args.get_ratio else 'NOT met'}")
    print("targets: " + ("all met" if met else "NOT all met"))
    return status


if __name__ == "__main__":
    sys.exit(main())
