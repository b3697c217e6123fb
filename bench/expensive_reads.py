#!/usr/bin/env python3
"""The largest requests a plain user may send, timed beside Core/echo (issue 10, item 21).

    .venv/bin/python bench/expensive_reads.py [--repeat 5] [--workers 2]

Against gunicorn on a fresh SQLite database (tests/live.py), as a plain user created by the
administrator that `manage.py bootstrap` makes. Each request carries the session's advertised
maximum of 16 method calls; each call carries the advertised maximum of 500 ids or objects:

1. Core/echo              16 echo calls (the baseline: parsing, authentication, dispatch);
2. ApiKey/get unknown     16 x:ApiKey/get of 500 ids that do not exist;
3. ApiKey/set over quota  16 x:ApiKey/set of 500 creates, all past the quota of 5;
4. ApiKey/set unknown     16 x:ApiKey/set of 250 updates and 250 destroys of unknown ids;
5. ApiKey/changes         16 x:ApiKey/changes since state 0.

It prints the median and worst wall time of --repeat requests per scenario. Only 127.0.0.1 is
contacted. Before the change, scenario 2 took 12-13 s and scenario 3 30 s.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import basic, bootstrap  # noqa: E402

from tests.live import live_server  # noqa: E402

USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]
ALPHABET = "abcdefghijklmnopqrstuvwxyz792013"


def encode(n: int) -> str:
    out = ""
    while True:
        n, d = divmod(n, 32)
        out = ALPHABET[d] + out
        if not n:
            return out


def calls(name: str, args_of) -> dict:
    return {"using": USING, "methodCalls": [[name, args_of(i), f"c{i}"] for i in range(16)]}


def post(url: str, auth: str, body: dict) -> dict:
    resp = requests.post(url, data=json.dumps(body), headers={"Authorization": auth,
                                                                "Content-Type": "application/json"}, timeout=300)
    if resp.status_code != 200:
        raise RuntimeError(f"{resp.status_code}: {resp.text[:300]}")
    return resp.json()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    unknown = [encode(100_000 + i) for i in range(500)]
    scenarios = {
        "Core/echo": calls("Core/echo", lambda i: {"n": i}),
        "ApiKey/get unknown": calls("x:ApiKey/get", lambda i: {"ids": unknown}),
        "ApiKey/set over quota": calls("x:ApiKey/set", lambda i: {
            "create": {f"k{i}_{j}": {"description": "bench"} for j in range(500)}}),
        "ApiKey/set unknown": calls("x:ApiKey/set", lambda i: {
            "update": {u: {"description": "x"} for u in unknown[:250]}, "destroy": unknown[250:]}),
        "ApiKey/changes": calls("x:ApiKey/changes", lambda i: {"sinceState": "0"}),
    }
    with live_server(workers=args.workers, extra_env={"REDIS_URL": ""}) as server:
        admin = basic(*bootstrap(server))
        api = server.url + "/jmap/"
        password = "Tr0ubador-Quartz-Lantern-91"
        domain = post(api, admin, {"using": USING, "methodCalls": [["x:Domain/query", {}, "d"]]})
        domain_id = domain["methodResponses"][0][1]["ids"][0]
        made = post(api, admin, {"using": USING, "methodCalls": [["x:Account/set", {"create": {"u": {
            "@type": "User", "name": "benchuser", "domainId": domain_id,
            "credentials": {"0": {"@type": "Password", "secret": password}}}}}, "a"]]})
        created = made["methodResponses"][0][1]
        if not created.get("created"):
            raise RuntimeError(f"could not create the plain user: {created}")
        email = post(api, admin, {"using": USING, "methodCalls": [["x:Account/get", {
            "ids": [created["created"]["u"]["id"]], "properties": ["emailAddress"]}, "g"]]})
        user = basic(email["methodResponses"][0][1]["list"][0]["emailAddress"], password)
        # Fill the quota first, so that every create of scenario 3 is past it.
        post(api, user, {"using": USING, "methodCalls": [["x:ApiKey/set", {
            "create": {f"q{j}": {"description": "quota"} for j in range(5)}}, "q"]]})
        print(f"{'scenario':<24} {'median':>9} {'worst':>9}")
        for name, body in scenarios.items():
            post(api, user, body)  # warm-up: the verdict cache, the worker's imports
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                post(api, user, body)
                times.append(time.perf_counter() - t)
            print(f"{name:<24} {statistics.median(times) * 1000:>7.0f}ms {max(times) * 1000:>7.0f}ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
