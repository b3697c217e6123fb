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
                                 x:Authentication/set; the first request binds and mirrors the
                                 account, the later ones must be served from the same verdict
                                 cache, so the target is LDAP within 10 % of internal;
4. Core/echo, internal again     the directory switched off again (directoryId null): the
                                 machine's load drifts during a run, so LDAP is compared with the
                                 mean of the two internal runs around it.

The script also counts the binds slapd completed during the LDAP scenario (its monitor backend):
with the verdict cache working, that is about two per gunicorn worker (the bind DN's and the
user's), not one per request.
Only 127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import json
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


def main() -> int:
    p = parser(__doc__, connections=16)
    p.add_argument("--ratio", type=float, default=0.90, help="LDAP Core/echo to internal Core/echo to reach")
    args = parse(p)
    if not ldap_server.available():
        p.error("slapd is not installed: make slapd")

    run = Run(args)
    bare = run.bare()
    results = [bare]
    problems = []
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
            make_internal_user(api, bearer)
            check("POST", api, carol, ECHO, "Core/echo")
            internal = measure("Core/echo, internal (Basic)", api, args, method="POST", body=json.dumps(ECHO),
                               authorization=carol)
            results.append(internal)

            answer = jmap(api, bearer, server_ldap.jmap_method_calls())
            if "created" not in answer[0][1] or "updated" not in answer[1][1]:
                raise RuntimeError(f"could not make the LDAP directory active: {answer}")
            user = basic(LDAP_USER, ldap_server.ALICE_PASSWORD)
            check("POST", api, user, ECHO, "Core/echo")
            binds_before = server_ldap.binds()
            ldap = measure("Core/echo, LDAP bind mode (Basic)", api, args, method="POST", body=json.dumps(ECHO),
                           authorization=user)
            results.append(ldap)
            # binds() itself costs one bind (the rootdn's) per call.
            binds = server_ldap.binds() - binds_before - 1
            answer = jmap(api, bearer, [["x:Authentication/set",
                                         {"update": {"singleton": {"directoryId": None}}}, "a"]])
            if "updated" not in answer[0][1]:
                raise RuntimeError(f"could not switch the directory off: {answer}")
            check("POST", api, carol, ECHO, "Core/echo")
            again = measure("Core/echo, internal again (Basic)", api, args, method="POST", body=json.dumps(ECHO),
                            authorization=carol)
            results.append(again)
    finally:
        server_ldap.close()
    status = run.report(results, bare, problems)
    internal_rate = (internal.rate + again.rate) / 2
    ratio = ldap.rate / internal_rate if internal_rate else 0.0
    print(f"LDAP binds during the LDAP scenario: {binds} for {ldap.requests} requests")
    print(f"Core/echo through LDAP: {ldap.rate:.0f} req/s = {ratio:.2f} x internal's {internal_rate:.0f} "
          f"(mean of {internal.rate:.0f} before and {again.rate:.0f} after) "
          f"(target {args.ratio:.2f} x): {'met' if ratio >= args.ratio else 'NOT met'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
