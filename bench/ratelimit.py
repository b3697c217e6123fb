#!/usr/bin/env python3
"""The anonymous rate limit under load, against gunicorn as production runs it.

    .venv/bin/python bench/ratelimit.py [--duration 10] [--workers N] [--limit 100]

One run, same gunicorn settings as `make run` (gunicorn.conf.py, sync workers):

1. bare WSGI (wrk)        bench/bare_wsgi.py: what gunicorn alone does, the baseline;
2. open (wrk)             GET /.well-known/jmap with no limit in force: the project's floor;
3. under the limit (hey)  a steady rate of 80 % of the limit (--limit requests per second from
                          one client address): every answer must be 307, none 429, none 5xx;
4. over the limit (hey)   a steady rate of 3 x the limit: every answer must be 307 or 429,
                          none 5xx, and the 307s must stay within the limit per second.

The client address is set with X-Forwarded-For (the Http settings trust it for this run, and
127.0.0.1 is listed as a trusted proxy):
requests from 127.0.0.1 itself are never limited, as in the reference. The limit is a fixed
window of one second (rateLimitAnonymous {"count": limit, "period": 1000}), counted in the
SQLite counter file that all workers share (no REDIS_URL). hey (Debian's /usr/bin/hey) holds
the rates: -c clients, each at -q requests per second. Only 127.0.0.1 is contacted.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Run, measure, parse, parser  # noqa: E402

CLIENT = "203.0.113.10"


@dataclass
class HeyResult:
    scenario: str
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    errors: int


def run_hey(hey: str, scenario: str, url: str, seconds: int, clients: int, per_client: float) -> HeyResult:
    cmd = [hey, "-z", f"{seconds}s", "-c", str(clients), "-q", f"{per_client:g}", "-disable-redirects",
           "-H", f"X-Forwarded-For: {CLIENT}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"(\d+)% in ([\d.]+) secs", out))
    statuses = {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errors = sum(int(n) for n in re.findall(r"\[\d+\]\s+.*?(\d+)\s*$", out.split("Error distribution:")[1], re.M)) \
        if "Error distribution:" in out else 0
    result = HeyResult(scenario, rate, float(lat.get("50", 0)) * 1000, float(lat.get("99", 0)) * 1000, statuses,
                       errors)
    print(f"  {scenario:<32} {rate:9.1f} req/s  statuses {statuses}  errors {errors}", file=sys.stderr, flush=True)
    return result


def main() -> int:
    p = parser(__doc__, connections=8)
    p.add_argument("--limit", type=int, default=100, help="requests per second allowed from the client (default 100)")
    p.add_argument("--hey", default=shutil.which("hey") or "/usr/bin/hey", help="the hey binary")
    args = parse(p)
    if not Path(args.hey).exists():
        p.error(f"hey not found at {args.hey} (apt-get install hey)")

    run = Run(args)
    bare = run.bare()
    problems = []
    with run.project() as server:
        url = server.url + "/.well-known/jmap"
        floor = measure("open: /.well-known/jmap (wrk)", url, args, expect=307)

        def http(**props):
            server.manage("update", "http", *[a for k, v in props.items() for a in ("--field", f"{k}={json.dumps(v)}")])

        http(rateLimitAnonymous={"count": args.limit, "period": 1000}, useXForwarded=True)
        server.manage("update", "systemsettings", "--field", 'proxyTrustedNetworks={"127.0.0.1": true}')
        clients = 4
        under = run_hey(args.hey, "under the limit (80 %)", url, args.duration, clients, args.limit * 0.8 / clients)
        over = run_hey(args.hey, "over the limit (300 %)", url, args.duration, clients * 2,
                       args.limit * 3 / (clients * 2))

    if set(under.statuses) != {307} or under.errors:
        problems.append(f"under the limit, answers other than 307: {under.statuses}, {under.errors} errors")
    if not set(over.statuses) <= {307, 429} or over.errors or 429 not in over.statuses:
        problems.append(f"over the limit, answers other than 307 and 429: {over.statuses}, {over.errors} errors")
    passed_per_s = over.statuses.get(307, 0) / args.duration
    # Fixed windows: at most `limit` per whole second, plus one partial window at each end.
    if passed_per_s > args.limit * (1 + 2 / args.duration):
        problems.append(f"over the limit, {passed_per_s:.0f} requests/s passed (limit {args.limit})")

    status = run.report([bare, floor], bare, problems)
    print()
    print("| phase (hey, one client address) | offered req/s | answered req/s | p50 | p99 | 307 | 429 | 5xx/errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r, offered in ((under, args.limit * 0.8), (over, args.limit * 3)):
        bad = sum(n for code, n in r.statuses.items() if code >= 500) + r.errors
        print(f"| {r.scenario} | {offered:.0f} | {r.rate:.1f} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms | "
              f"{r.statuses.get(307, 0)} | {r.statuses.get(429, 0)} | {bad} |")
    print(f"\nOver the limit, {passed_per_s:.1f} requests/s passed for a limit of {args.limit}/s.")
    return status


if __name__ == "__main__":
    sys.exit(main())
