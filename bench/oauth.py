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

import base64
import hashlib
import json
import secrets
import sys
from pathlib import Path
from urllib.parse import urlencode

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FORM, Run, basic, bootstrap, check, measure, parse, parser  # noqa: E402
from jmap import ECHO  # noqa: E402

REDIRECT = "http://127.0.0.1/callback"


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
    args = parse(parser(__doc__, connections=8))
    run = Run(args)
    bare = run.bare()
    results = [bare]
    with run.project() as server:
        login, password = bootstrap(server)
        basic_auth = basic(login, password)
        client_id, token = access_token(server.url, login, password)
        bearer = f"Bearer {token}"
        api, discovery = server.url + "/jmap/", server.url + "/.well-known/openid-configuration"
        introspect = server.url + "/auth/introspect"
        echo, form = json.dumps(ECHO), urlencode({"token": token})
        check("POST", api, basic_auth, ECHO, "Core/echo")
        check("POST", api, bearer, ECHO, "Core/echo")
        check_introspection(introspect, basic_auth, form, login)
        doc = requests.get(discovery, timeout=30)
        if doc.status_code != 200 or "registration_endpoint" not in doc.json():
            raise RuntimeError(f"GET /.well-known/openid-configuration answered {doc.status_code}")
        print(f"  client {client_id}, access token {token[:12]}…", file=sys.stderr, flush=True)
        results.append(measure("OIDC discovery (anonymous)", discovery, args))
        results.append(measure("Core/echo (Basic)", api, args, method="POST", body=echo, authorization=basic_auth))
        results.append(measure("Core/echo (Bearer)", api, args, method="POST", body=echo, authorization=bearer))
        results.append(measure("introspect (Basic)", introspect, args, method="POST", body=form,
                               authorization=basic_auth, content_type=FORM))
    return run.report(results, bare)


if __name__ == "__main__":
    sys.exit(main())
