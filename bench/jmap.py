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

import argparse
import base64
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "request.lua"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from logins import Result, bare_server, ms  # noqa: E402
from logins import measure as logins_measure  # noqa: E402
from logins import parse as logins_parse  # noqa: E402
from logins import parser as logins_parser  # noqa: E402  (bench/logins.py: the same gunicorn set-up)
from tests.live import live_server  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}
AUTH_GET = {"using": [CORE, "urn:stalwart:jmap"],
            "methodCalls": [["x:Authentication/get", {"ids": ["singleton"]}, "c0"]]}


def bootstrap(server) -> tuple[str, str]:
    out = server.manage("bootstrap").stdout
    login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M)
    password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M)
    if not (login and password):
        raise RuntimeError(f"bootstrap printed no credentials:\n{out}")
    return login.group(1), password.group(1)


def check(method: str, url: str, authorization: str, body: dict | None, expect_name: str | None) -> None:
    """One request by hand before wrk, so that a set-up mistake fails with a clear message."""
    headers = {"Authorization": authorization}
    if body is not None:
        headers["Content-Type"] = "application/json"
    resp = requests.request(method, url, headers=headers, data=json.dumps(body) if body is not None else None,
                            timeout=30)
    if resp.status_code != 200:
        raise RuntimeError(f"{method} {url} answered {resp.status_code}: {resp.text[:300]}")
    if expect_name is not None:
        name = resp.json()["methodResponses"][0][0]
        if name != expect_name:
            raise RuntimeError(f"{method} {url} answered {name} instead of {expect_name}: {resp.text[:300]}")


def measure(scenario: str, url: str, args, **kw) -> Result:
    return logins_measure(scenario, url, args, width=32, content_type="application/json", **kw)


def table(results: list[Result], baseline: Result) -> str:
    rows = [("scenario", "req/s", "vs bare", "p50", "p90", "p99", "non-2xx*", "socket errors")]
    for r in results:
        ratio = f"{r.rate / baseline.rate * 100:.0f} %" if baseline.rate else "-"
        rows.append((r.scenario, f"{r.rate:.1f}", ratio, ms(r.p50_us), ms(r.p90_us), ms(r.p99_us),
                     str(r.unexpected), str(sum(r.socket_errors.values()))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def main() -> int:
    cores = multiprocessing.cpu_count()
    p = logins_parser(__doc__, connections=8)
    p.add_argument("--target", type=float, default=1500, help="Core/echo req/s to reach (default 1500)")
    p.add_argument("--target-ratio", type=float, default=0.5, help="Core/echo share of bare WSGI to reach (default 0.5)")
    args = logins_parse(p)

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    print(f"{cores} cores, {args.workers} gunicorn sync workers, wrk {min(args.threads, args.connections)} threads / "
          f"{args.connections} connections, {args.duration} s per scenario", file=sys.stderr, flush=True)

    with bare_server(args.workers) as url:
        bare = measure("bare WSGI (hello)", url + "/", args)

    results = [bare]
    # A fresh SQLite database and no REDIS_URL, whatever this shell exports: each worker caches
    # in its own memory, as `make run` does.
    os.environ.pop("DATABASE_URL", None)
    with live_server(workers=args.workers, extra_env={"REDIS_URL": ""}) as server:
        login, password = bootstrap(server)
        authorization = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
        api = server.url + "/jmap/"
        echo, auth_get = json.dumps(ECHO), json.dumps(AUTH_GET)
        check("POST", api, authorization, ECHO, "Core/echo")
        check("GET", server.url + "/jmap/session", authorization, None, None)
        check("POST", api, authorization, AUTH_GET, "x:Authentication/get")
        floor = requests.get(server.url + "/.well-known/jmap", allow_redirects=False, timeout=30)
        if floor.status_code != 307:
            raise RuntimeError(f"GET /.well-known/jmap answered {floor.status_code}")
        results.append(measure("Django floor: /.well-known/jmap", server.url + "/.well-known/jmap", args,
                               expect=307))
        results.append(measure("Core/echo (Basic)", api, args, method="POST", body=echo, authorization=authorization))
        results.append(measure("GET /jmap/session (Basic)", server.url + "/jmap/session", args,
                               authorization=authorization))
        results.append(measure("x:Authentication/get (Basic)", api, args, method="POST", body=auth_get,
                               authorization=authorization))
        log = (server.var_dir / "gunicorn.log").read_text(errors="replace")

    print()
    print(table(results, bare))
    print("* responses with another status than expected: 307 for the floor, 200 for the others")
    print(f"\n{args.workers} sync workers, {args.connections} connections, {args.duration} s each, "
          f"{cores} cores; load average {load_before:.2f} before the run; total {time.monotonic() - started:.0f} s")
    if load_before > cores / 2:
        print(f"WARNING: the machine was busy before the run (load average {load_before:.2f} on {cores} cores); "
              "the figures understate what an idle machine does.")
    echo_result = next(r for r in results if r.scenario.startswith("Core/echo"))
    ratio = echo_result.rate / bare.rate if bare.rate else 0.0
    met = echo_result.rate >= args.target and ratio >= args.target_ratio
    print(f"Core/echo: {echo_result.rate:.0f} req/s, {ratio * 100:.0f} % of bare WSGI "
          f"(target {args.target:.0f} req/s and {args.target_ratio * 100:.0f} %): {'met' if met else 'NOT met'}")
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"ERRORS in {r.scenario}: {r.error_detail()}")
    if failed:
        tail = "\n".join(log.splitlines()[-30:])
        print(f"\nThe run had errors; these figures are not valid. Last lines of gunicorn's log:\n{tail}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
