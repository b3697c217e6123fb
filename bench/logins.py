#!/usr/bin/env python3
"""Logins per second for each password hash algorithm, against gunicorn as production runs it.

    .venv/bin/python bench/logins.py [--duration 10] [--workers N] [--connections 4]

What it does, in one run and under the same gunicorn settings (gunicorn.conf.py, sync workers,
2 x cores + 1 of them unless --workers or WEB_CONCURRENCY says otherwise):

1. bare WSGI       bench/bare_wsgi.py (hello world): what gunicorn alone costs per request;
2. GET login page  GET /admin/login/ of the project (DEBUG off, fresh temporary database):
                   what Django and the project add;
3. login <alg>     for argon2id, bcrypt, scrypt and pbkdf2: the algorithm is configured in the
                   Authentication settings, an account whose password is hashed with it is
                   created, and the admin login form is POSTed with a valid CSRF cookie + token
                   pair obtained beforehand. Every response must be a 302 (successful login).

wrk (Debian's /usr/bin/wrk) drives each scenario for --duration seconds after a short warm-up,
with bench/request.lua, whose done() prints the figures this script parses. Responses other than
the expected status, and socket errors or timeouts, are reported in the "errors" column; a run
with errors says so and exits with status 1. Only 127.0.0.1 is ever contacted.

"server CPU/req" is the CPU time of the gunicorn processes per request served (read from /proc
around each run). Unlike req/s and latencies it hardly depends on other load on the machine;
cores / CPU per request estimates an idle machine's rate. A run that starts while the load
average exceeds half the cores says so.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from urllib.parse import urlencode

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FORM, Result, Run, measure, parse, parser  # noqa: E402

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
ALGORITHMS = ("argon2id", "bcrypt", "scrypt", "pbkdf2")
DOMAIN = "example.org"


def account_name(algorithm: str) -> str:
    return f"bench-{algorithm}"


# --- project set-up (through manage.py shell, against the server's own database) -------------
SETUP = """
from accounts import services
from accounts.models import Authentication, Domain
dom = Domain.objects.get_or_create(name={domain!r})[0]
auth = Authentication.load()
for alg in {algorithms!r}:
    # The configured algorithm hashes the new account's password.
    auth.password_hash_algorithm = alg
    auth.save()
    acc = services.create_account({{"name": "bench-" + alg, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                                  "bench", password={password!r})
    print("ACCOUNT", alg, acc.email_address)
"""

# Configures the algorithm to measure next and reports the algorithm of every bench account's
# stored hash: a login under another setting would have re-hashed it (and skewed the figures).
CONFIGURE = """
from accounts import hashing
from accounts.models import Authentication, Credential
auth = Authentication.load()
if {algorithm!r}:
    auth.password_hash_algorithm = {algorithm!r}
    auth.save()
print("SETTING", Authentication.load().password_hash_algorithm)
for c in Credential.objects.filter(kind=Credential.Kind.PASSWORD, account__name__startswith="bench-"):
    print("HASH", c.account.name, hashing.algorithm_of(c.secret_hash))
"""


def create_accounts(server) -> dict[str, str]:
    out = server.shell(SETUP.format(domain=DOMAIN, algorithms=ALGORITHMS, password=PASSWORD))
    logins = {}
    for line in out.splitlines():
        if line.startswith("ACCOUNT "):
            _, alg, address = line.split()
            logins[alg] = address
    missing = set(ALGORITHMS) - set(logins)
    if missing:
        raise RuntimeError(f"accounts not created for {sorted(missing)}:\n{out}")
    return logins


def configure(server, algorithm: str | None) -> list[str]:
    """Set the algorithm (None: leave it) and return the problems found with the stored hashes."""
    out = server.shell(CONFIGURE.format(algorithm=algorithm or ""))
    problems = []
    setting = re.search(r"^SETTING (\S+)", out, re.M)
    if algorithm and (not setting or setting.group(1) != algorithm):
        problems.append(f"the setting reads {setting.group(1) if setting else '?'}, not {algorithm}")
    hashes = dict(re.findall(r"^HASH (\S+) (\S+)", out, re.M))
    for alg in ALGORITHMS:
        got = hashes.get(account_name(alg))
        if got != alg:
            problems.append(f"{account_name(alg)}'s password hash is {got}, not {alg}")
    return problems


def csrf_pair(url: str) -> tuple[str, str]:
    """A CSRF cookie and a form token that matches it (Django accepts the pair again and again)."""
    resp = requests.get(url + "/admin/login/", timeout=10)
    resp.raise_for_status()
    cookie = resp.cookies.get("csrftoken")
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', resp.text)
    if not cookie or not m:
        raise RuntimeError("no CSRF cookie or token on /admin/login/")
    return cookie, m.group(1)


def check_login(url: str, cookie: str, body: str) -> None:
    """One login by hand before wrk, so that a set-up mistake fails with a clear message."""
    resp = requests.post(url + "/admin/login/", data=body, allow_redirects=False, timeout=30,
                         headers={"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"})
    if resp.status_code != 302 or "login" in resp.headers.get("Location", "login"):
        snippet = re.sub(r"\s+", " ", resp.text)[:300]
        raise RuntimeError(f"the test login answered {resp.status_code} {resp.headers.get('Location', '')}: {snippet}")


def main() -> int:
    p = parser(__doc__, connections=4)
    p.add_argument("--algorithms", default=",".join(ALGORITHMS),
                   help="comma-separated subset of " + ",".join(ALGORITHMS))
    args = parse(p)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if unknown := set(algorithms) - set(ALGORITHMS):
        p.error(f"unknown algorithms: {', '.join(sorted(unknown))}")

    run = Run(args)
    results: list[Result] = [run.bare()]
    problems: list[str] = []
    with run.project() as server:
        login_url = server.url + "/admin/login/"
        results.append(measure("GET /admin/login/", login_url, args))
        logins = create_accounts(server)
        cookie, token = csrf_pair(server.url)
        for alg in algorithms:
            problems += configure(server, alg)
            body = urlencode({"csrfmiddlewaretoken": token, "username": logins[alg], "password": PASSWORD})
            check_login(server.url, cookie, body)
            results.append(measure(f"login {alg}", login_url, args, method="POST", body=body, content_type=FORM,
                                   cookie=f"csrftoken={cookie}", expect=302))
        problems += configure(server, None)
    return run.report(results, problems=problems)


if __name__ == "__main__":
    sys.exit(main())
