#!/usr/bin/env python3
"""Core/echo with Basic authentication through an LDAP directory, beside the internal directory,
in one run, against gunicorn as production runs it.

    .venv/bin/python bench/directory.py [--duration 10] [--workers N] [--connections 16]

Scenarios, in one run under the same gunicorn settings (see bench/jmap.py for the model):

1. bare server                   gunicorn's own cost per request (hello world);
2. Core/echo, internal           an internal user of the same domain and the same default roles
                                 as the LDAP user (so that both pay the per-account request
                                 limit, which the administrator is exempt from), whose argon2id
                                 password is checked once and then served from the verdict cache;
3. Core/echo, LDAP (bind mode)   a user of a real OpenLDAP server (Debian's slapd, tests/slapd.py,
                                 on a loopback port, with its test data: a few dozen entries),
                                 made the active directory through x:Directory/set and
                                 x:Authentication/set; later requests must be served from the same
                                 verdict cache, so the target is LDAP within 10 % of internal.

2 and 3 alternate over --rounds rounds (internal first in odd rounds, LDAP first in even ones),
the directory switched on and off between them: the machine's load drifts during a run, and a
ratio taken within a round, median over the rounds, is what drift disturbs least.

Before each timed run, every gunicorn worker is warmed alike in both scenarios: bursts of
concurrent requests, each on a new connection so that they spread over the workers, at least
WARM_BURSTS of them, and for LDAP until a whole burst costs slapd no bind. Each worker's first
LDAP login binds, and the first login after a switch mirrors the account: without this, that
landed inside the measured seconds. After warming, the LDAP scenario's binds are counted (its
monitor backend): with the verdict cache working, none.
Only 127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import concurrent.futures
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from harness import Run, basic, bootstrap, check, measure, parse, parser  # noqa: E402

from tests import slapd as ldap_server  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}
LDAP_USER = "alice@example.org"
INTERNAL_USER, INTERNAL_PASSWORD = "carol", "Bench-Internal-Quartz-77"


def jmap(url: str, authorization: str, calls: list) -> list:
    import requests

    resp = requests.post(url, json={"using": [CORE, "urn:stalwart:jmap"], "methodCalls": calls},
                         headers={"Authorization": authorization}, timeout=30)
    resp.raise_for_status()
    return resp.json()["methodResponses"]


def make_internal_user(api: str, bearer: str) -> None:
    """carol@example.org, an internal user with the default roles (example.org is the LDAP
    test data's domain: made here when the server does not serve it yet)."""
    found = jmap(api, bearer, [["x:Domain/query", {"filter": {"name": "example.org"}}, "q"]])[0][1]
    if found.get("ids"):
        domain = found["ids"][0]
    else:
        made = jmap(api, bearer, [["x:Domain/set", {"create": {"d": {"name": "example.org"}}}, "d"]])[0][1]
        domain = (made.get("created") or {}).get("d", {}).get("id")
        if not domain:
            raise RuntimeError(f"could not create example.org: {made}")
    made = jmap(api, bearer, [["x:Account/set", {"create": {"u": {
        "@type": "User", "name": INTERNAL_USER, "domainId": domain,
        "credentials": {"0": {"@type": "Password", "secret": INTERNAL_PASSWORD}}}}}, "u"]])[0][1]
    if not (made.get("created") or {}).get("u"):
        raise RuntimeError(f"could not create the internal user: {made}")


WARM_BURSTS = 3
WARM_BURSTS_MAX = 30


def burst(url: str, authorization: str, size: int) -> None:
    """`size` Core/echo requests at once, each on its own connection."""
    import requests

    def one(_):
        resp = requests.post(url, json=ECHO, headers={"Authorization": authorization, "Connection": "close"},
                             timeout=30)
        resp.raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(size) as pool:
        list(pool.map(one, range(size)))


def warm(url: str, authorization: str, workers: int, binds=None) -> int:
    """Warm every worker (see the module's text); the bursts it took. `binds`: slapd's bind
    counter, for LDAP, whose warming lasts until a burst costs none."""
    size = max(8, workers * 4)
    for bursts in range(1, WARM_BURSTS_MAX + 1):
        before = binds() if binds else 0
        burst(url, authorization, size)
        # binds() itself costs one bind (the rootdn's) per call.
        quiet = binds is None or binds() - before - 1 <= 0
        if bursts >= WARM_BURSTS and quiet:
            return bursts
    raise RuntimeError(f"the workers were still binding to LDAP after {WARM_BURSTS_MAX} bursts of {size}")


def use_directory(api: str, bearer: str, directory_id: str | None) -> None:
    answer = jmap(api, bearer, [["x:Authentication/set", {"update": {"singleton": {"directoryId": directory_id}}},
                                 "a"]])
    if "updated" not in answer[0][1]:
        raise RuntimeError(f"could not set directoryId to {directory_id}: {answer}")


def main() -> int:
    p = parser(__doc__, connections=16)
    p.add_argument("--ratio", type=float, default=0.90, help="LDAP Core/echo to internal Core/echo to reach")
    p.add_argument("--rounds", type=int, default=3, help="internal/LDAP rounds (default 3); the median ratio counts")
    args = parse(p)
    if not ldap_server.available():
        p.error("slapd is not installed: make slapd")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    run = Run(args)
    bare = run.bare()
    results = [bare]
    problems = []
    ratios: list[float] = []
    binds_measured = requests_measured = 0
    server_ldap = ldap_server.Slapd().start()
    try:
        with run.project() as server:
            admin = basic(*bootstrap(server))
            api = server.url + "/jmap/"
            # An API key keeps the administrator's way in once logins go to the directory.
            answer = jmap(api, admin, [["x:ApiKey/set", {"create": {"k": {"description": "bench"}}}, "k"]])
            created = answer[0][1].get("created", {}).get("k", {})
            key = created.get("secret") or created.get("apiKey")
            if not key:
                raise RuntimeError(f"could not create an API key: {answer}")
            bearer = f"Bearer {key}"
            carol = basic(f"{INTERNAL_USER}@example.org", INTERNAL_PASSWORD)
            user = basic(LDAP_USER, ldap_server.ALICE_PASSWORD)
            make_internal_user(api, bearer)
            answer = jmap(api, bearer, server_ldap.jmap_method_calls())
            directory_id = (answer[0][1].get("created") or {}).get("ldap", {}).get("id")
            if not directory_id or "updated" not in answer[1][1]:
                raise RuntimeError(f"could not make the LDAP directory active: {answer}")
            check("POST", api, user, ECHO, "Core/echo")

            def internal_run(n):
                use_directory(api, bearer, None)
                check("POST", api, carol, ECHO, "Core/echo")
                warm(api, carol, args.workers)
                return measure(f"Core/echo, internal (Basic) #{n}", api, args, width=40, method="POST",
                               body=json.dumps(ECHO), authorization=carol)

            def ldap_run(n):
                nonlocal binds_measured, requests_measured
                use_directory(api, bearer, directory_id)
                check("POST", api, user, ECHO, "Core/echo")
                warm(api, user, args.workers, server_ldap.binds)
                before = server_ldap.binds()
                result = measure(f"Core/echo, LDAP bind mode (Basic) #{n}", api, args, width=40, method="POST",
                                 body=json.dumps(ECHO), authorization=user)
                binds_measured += server_ldap.binds() - before - 1
                requests_measured += result.requests
                return result

            for n in range(1, args.rounds + 1):
                order = (internal_run, ldap_run) if n % 2 else (ldap_run, internal_run)
                first, second = (run_(n) for run_ in order)
                internal, ldap = (first, second) if n % 2 else (second, first)
                results += [first, second]
                ratios.append(ldap.rate / internal.rate if internal.rate else 0.0)
    finally:
        server_ldap.close()
    status = run.report(results, bare, problems)
    ratio = statistics.median(ratios)
    print(f"LDAP binds during the timed LDAP runs (after warming): {binds_measured} for {requests_measured} requests")
    print(f"Core/echo through LDAP / internal, per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {ratio:.2f} (target {args.ratio:.2f}): {'met' if ratio >= args.ratio else 'NOT met'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
