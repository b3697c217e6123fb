#!/usr/bin/env python3
"""OAuth requests per second: introspection and Bearer access tokens, against gunicorn as
production runs it.

    .venv/bin/python bench/oauth.py [--duration 10] [--workers N] [--connections 8]

What it does, in one run and under the same gunicorn settings as bench/jmap.py and
bench/logins.py (gunicorn.conf.py, sync workers, 2 x cores + 1 of them unless --workers or
WEB_CONCURRENCY says otherwise):

1. bare WSGI               bench/bare_wsgi.py (hello world): what gunicorn alone costs per request;
2. OIDC discovery          GET /.well-known/openid-configuration: anonymous, no authentication;
3. Core/echo (Basic)       POST /jmap/ with one Core/echo call, the administrator's password
                           (the figure of bench/jmap.py, for comparison);
4. Core/echo (Bearer)      the same call with an OAuth access token;
5. introspect (Basic)      POST /auth/introspect as the administrator (Basic), introspecting the
                           live access token of scenario 4.

Scenarios 2-5 run against the project on a fresh temporary SQLite database (tests/live.py), with
the first administrator that `manage.py bootstrap` creates. Before wrk starts, the script gets
its access token over HTTP as a client would: it registers a public client (POST
/auth/register), runs the authorization-code flow with PKCE (POST /api/auth with the
administrator's credentials, then POST /auth/token) and checks every scenario once by hand.
Verified credentials (password or token) are cached per worker, so the figures show the steady
state of a client that re-sends them. Every response must be a 200; anything else is counted
in the non-2xx column and fails the run. Only 127.0.0.1 is ever contacted. "server CPU/req" is
the gunicorn processes' CPU time per request served (bench/logins.py), which other load on the
machine hardly changes.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from jmap import ECHO, bootstrap, check  # noqa: E402  (bench/jmap.py)
from logins import Result, bare_server, ms  # noqa: E402
from logins import measure as logins_measure  # noqa: E402
from logins import parse as logins_parse  # noqa: E402
from logins import parser as logins_parser  # noqa: E402  (bench/logins.py: the same gunicorn set-up)
from tests.live import live_server  # noqa: E402

REDIRECT = "http://127.0.0.1/callback"
FORM = "application/x-www-form-urlencoded"


def measure(scenario: str, url: str, args, content_type: str = "application/json", **kw) -> Result:
    return logins_measure(scenario, url, args, width=32, content_type=content_type, **kw)


def table(results: list[Result], baseline: Result) -> str:
    rows = [("scenario", "req/s", "vs bare", "p50", "p90", "p99", "non-2xx*", "socket errors", "server CPU/req")]
    for r in results:
        ratio = f"{r.rate / baseline.rate * 100:.0f} %" if baseline.rate else "-"
        rows.append((r.scenario, f"{r.rate:.1f}", ratio, ms(r.p50_us), ms(r.p90_us), ms(r.p99_us),
                     str(r.unexpected), str(sum(r.socket_errors.values())), ms(r.cpu_ms_per_request * 1000)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def access_token(base: str, login: str, password: str) -> tuple[str, str]:
    """Register a public client and run the authorization-code flow (PKCE S256) over HTTP.
    Returns (client_id, access_token)."""
    reg = requests.post(base + "/auth/register", timeout=30, json={
        "redirect_uris": [REDIRECT], "client_name": "bench/oauth.py", "token_endpoint_auth_method": "none",
        "scope": "openid offline_access urn:ietf:params:oauth:scope:mail"})
    if reg.status_code != 201:
        raise RuntimeError(f"POST /auth/register answered {reg.status_code}: {reg.text[:300]}")
    client_id = reg.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    auth = requests.post(base + "/api/auth", timeout=30, json={
        "type": "authCode", "accountName": login, "accountSecret": password, "clientId": client_id,
        "redirectUri": REDIRECT, "scope": "openid urn:ietf:params:oauth:scope:mail", "nonce": "bench",
        "codeChallenge": challenge, "codeChallengeMethod": "S256", "state": "bench"})
    if auth.status_code != 200 or auth.json().get("type") != "authenticated":
        raise RuntimeError(f"POST /api/auth answered {auth.status_code}: {auth.text[:300]}")
    token = requests.post(base + "/auth/token", timeout=30, data={
        "grant_type": "authorization_code", "code": auth.json()["client_code"], "redirect_uri": REDIRECT,
        "client_id": client_id, "code_verifier": verifier})
    if token.status_code != 200 or not token.json().get("access_token"):
        raise RuntimeError(f"POST /auth/token answered {token.status_code}: {token.text[:300]}")
    return client_id, token.json()["access_token"]


def check_introspection(url: str, authorization: str, body: str, login: str) -> None:
    resp = requests.post(url, data=body, timeout=30,
                         headers={"Authorization": authorization, "Content-Type": FORM})
    if resp.status_code != 200 or resp.json().get("active") is not True:
        raise RuntimeError(f"POST /auth/introspect answered {resp.status_code}: {resp.text[:300]}")
    if resp.json().get("username") != login:
        raise RuntimeError(f"introspection names {resp.json().get('username')!r}, not {login!r}")


def main() -> int:
    cores = multiprocessing.cpu_count()
    p = logins_parser(__doc__, connections=8)
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
        basic = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
        client_id, token = access_token(server.url, login, password)
        bearer = f"Bearer {token}"
        api, discovery = server.url + "/jmap/", server.url + "/.well-known/openid-configuration"
        introspect = server.url + "/auth/introspect"
        echo, form = json.dumps(ECHO), urlencode({"token": token})
        check("POST", api, basic, ECHO, "Core/echo")
        check("POST", api, bearer, ECHO, "Core/echo")
        check_introspection(introspect, basic, form, login)
        doc = requests.get(discovery, timeout=30)
        if doc.status_code != 200 or "registration_endpoint" not in doc.json():
            raise RuntimeError(f"GET /.well-known/openid-configuration answered {doc.status_code}")
        print(f"  client {client_id}, access token {token[:12]}…", file=sys.stderr, flush=True)
        results.append(measure("OIDC discovery (anonymous)", discovery, args))
        results.append(measure("Core/echo (Basic)", api, args, method="POST", body=echo, authorization=basic))
        results.append(measure("Core/echo (Bearer)", api, args, method="POST", body=echo, authorization=bearer))
        results.append(measure("introspect (Basic)", introspect, args, method="POST", body=form,
                               authorization=basic, content_type=FORM))
        log = (server.var_dir / "gunicorn.log").read_text(errors="replace")

    print()
    print(table(results, bare))
    print("* responses with another status than 200")
    print(f"\n{args.workers} sync workers, {args.connections} connections, {args.duration} s each, "
          f"{cores} cores; load average {load_before:.2f} before the run; total {time.monotonic() - started:.0f} s")
    if load_before > cores / 2:
        print(f"WARNING: the machine was busy before the run (load average {load_before:.2f} on {cores} cores); "
              "the figures understate what an idle machine does.")
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
