#!/usr/bin/env python3
"""The mail store's hot paths as the account grows (issue 13's speed list), over HTTP.

    .venv/bin/python bench/mail.py [--sizes 1000 100000] [--duration 5] [--connections 2]
    DATABASE_URL=postgres://…/any .venv/bin/python bench/mail.py     # on PostgreSQL

For each size N, the project runs under gunicorn as production runs it (tests/live.py: a
throw-away SQLite file, or a throw-away database on the PostgreSQL server DATABASE_URL names),
and bench/mailgen.py fills one account with N messages before it starts. Then, with 100 changes
made over JMAP (a page flagged and unflagged), wrk (bench/request.lua) drives each request for
--duration seconds after a one-second warm-up, all with Basic authentication:

    Core/echo                                       the baseline of the same path
    Email/query inMailbox, receivedAt desc, 50      target p99 ≤ 50 ms at 100,000
      … with collapseThreads                        ≤ 80 ms
    Email/query text (rare, middle, frequent word)  ≤ 100 ms, newest first, 50, whole account
      … the middle word in the inbox
    Email/get of 50 with preview and list props     ≤ 30 ms
    Email/changes after 100 changes                 ≤ 20 ms
    Mailbox/get with the counts

beside the bare server (bench/bare_asgi.py or bare_wsgi.py) in the same run. It prints wrk's
p50/p99 and the server's CPU time per request (steadier than wall time on a shared machine).
Few connections (2 by default) and workers: latency, not throughput, is measured.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, Run, basic, measure, parse, parser  # noqa: E402

from tests.live import live_server  # noqa: E402

MAIL = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
TARGETS = {"Email/query inMailbox, receivedAt, 50": 50, "  with collapseThreads": 80,
           "Email/query text, rare word": 100, "Email/query text, middle word": 100,
           "Email/query text, frequent word": 100, "Email/query inMailbox + text, middle word": 100,
           "Email/get 50, preview and list properties": 30, "Email/changes after 100 changes": 20}
LIST_PROPERTIES = ["threadId", "mailboxIds", "keywords", "from", "to", "subject", "receivedAt", "size", "preview",
                   "hasAttachment"]


def call(session, url: str, auth: str, account: str, name: str, args: dict) -> dict:
    body = {"using": MAIL, "methodCalls": [[name, {"accountId": account, **args}, "c"]]}
    resp = session.post(url, json=body, headers={"Authorization": auth}, timeout=60)
    resp.raise_for_status()
    answer = resp.json()["methodResponses"][0]
    if answer[0] != name:
        raise RuntimeError(f"{name} answered {answer}")
    return answer[1]


def request_body(name: str, account: str, args: dict) -> str:
    return json.dumps({"using": MAIL, "methodCalls": [[name, {"accountId": account, **args}, "c"]]})


def run_size(run: Run, args, size: int) -> list:
    import requests

    generated = {}

    def fill(server):
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "mailgen.py"), "--count", str(size)],
                             env=server.env, cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
        if out.returncode:
            raise RuntimeError(f"mailgen failed:\n{out.stderr[-3000:]}")
        generated.update(json.loads(out.stdout.strip().splitlines()[-1]))

    env = {"REDIS_URL": ""}
    with live_server(workers=args.workers, extra_env=env, prepare=fill) as server:
        g = generated
        print(f"\nN = {size:,}: generated in {g['seconds']} s; probe words in {g['planted']} messages",
              file=sys.stderr, flush=True)
        api, auth, account = server.url + "/jmap/", basic(g["login"], g["password"]), g["accountId"]
        inbox = g["mailboxes"]["inbox"]
        session = requests.Session()
        newest = [{"property": "receivedAt", "isAscending": False}]
        query = {"filter": {"inMailbox": inbox}, "sort": newest, "limit": 50}
        page = call(session, api, auth, account, "Email/query", query)["ids"]
        since = call(session, api, auth, account, "Email/get", {"ids": []})["state"]
        for flag in (True, None):  # 100 changes: 50 flagged, then unflagged again
            for email_id in page:
                call(session, api, auth, account, "Email/set", {"update": {email_id: {"keywords/$flagged": flag}}})
        changes = call(session, api, auth, account, "Email/changes", {"sinceState": since})
        assert len(changes["updated"]) == len(page), changes

        def text(word, mailbox=None):
            cond = {"text": word} if mailbox is None else {"inMailbox": mailbox, "text": word}
            return {"filter": cond, "sort": newest, "limit": 50}

        words = g["words"]
        scenarios = [
            ("Core/echo", "Core/echo", {}),
            ("Email/query inMailbox, receivedAt, 50", "Email/query", query),
            ("  with collapseThreads", "Email/query", {**query, "collapseThreads": True}),
            ("Email/query text, rare word", "Email/query", text(words["rare"])),
            ("Email/query text, middle word", "Email/query", text(words["middle"])),
            ("Email/query text, frequent word", "Email/query", text(words["frequent"])),
            ("Email/query inMailbox + text, middle word", "Email/query", text(words["middle"], inbox)),
            ("Email/get 50, preview and list properties", "Email/get", {"ids": page, "properties": LIST_PROPERTIES}),
            ("Email/changes after 100 changes", "Email/changes", {"sinceState": since}),
            ("Mailbox/get, all, with counts", "Mailbox/get", {"ids": None}),
        ]
        results = []
        for label, name, method_args in scenarios:
            if name == "Core/echo":
                body = json.dumps({"using": MAIL, "methodCalls": [["Core/echo", {"x": 1}, "c"]]})
            else:
                found = call(session, api, auth, account, name, method_args)
                if name == "Email/query" and "text" in json.dumps(method_args) and not found["ids"]:
                    raise RuntimeError(f"{label}: no match")
                body = request_body(name, account, method_args)
            results.append(measure(f"{size:,}: {label}", api, args, width=52, method="POST", body=body,
                                   authorization=auth))
        return results


def main() -> int:
    p = parser(__doc__, connections=2)
    p.set_defaults(duration=5, workers=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    args = parse(p)
    run = Run(args)
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    bare = run.bare()
    results = [bare]
    for size in args.sizes:
        results += run_size(run, args, size)
    status = run.report(results, bare)
    print(f"database: {database}")
    for r in results:
        label = r.scenario.split(": ", 1)[-1]
        if label in TARGETS and r.scenario.startswith(f"{max(args.sizes):,}:"):
            target = TARGETS[label]
            print(f"{r.scenario}: p99 {r.p99_us / 1000:.1f} ms (target {target} ms): "
                  f"{'met' if r.p99_us / 1000 <= target else 'NOT met'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
