"""Concurrent writers against a real server with several worker processes (issue 10, item 15).

Every test here fires its requests at once (a barrier releases the threads together), over
separate connections, at a gunicorn server with four workers: the parallelism is that of
processes, whatever the worker class. The database is whatever the run uses (SQLite by
default, PostgreSQL when DATABASE_URL is set), so the same assertions hold on both:

* every write succeeds or gets a documented SetError or method error, never a 5xx, never
  serverFail, never "database is locked";
* no update is lost: after N patches of different properties of one object, all N are there;
* an authorization code is exchanged once, whoever asks at the same time;
* `ifInState` admits exactly one of several writers that saw the same state.
"""
from __future__ import annotations

import concurrent.futures
import os
import secrets
import threading

import pytest
import requests

from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from oauth.tests.test_flows_live import create_client

from .live import live_server
from .test_jmap_live import STRONG, Jmap, Site, basic, bootstrap

WORKERS = 4


def _databases() -> list[str]:
    # Without DATABASE_URL the run is on SQLite: try both ways of naming the file, the default
    # one under var/ and a DATABASE_URL of the sqlite:// kind (which must be configured alike).
    return ["configured"] if os.environ.get("DATABASE_URL") else ["var", "sqlite-url"]


@pytest.fixture(scope="module", params=_databases())
def site(request, tmp_path_factory):
    extra = {}
    if request.param == "sqlite-url":
        extra["DATABASE_URL"] = f"sqlite:///{tmp_path_factory.mktemp('sqlite-url') / 'db.sqlite3'}"
    with live_server(workers=WORKERS, extra_env=extra) as server:
        creds = bootstrap(server)
        assert creds, "bootstrap printed no password"
        yield Site(server, *creds)
        log = (server.var_dir / "gunicorn.log").read_text()
        assert "Traceback" not in log and "database is locked" not in log, log[-4000:]


def all_at_once(fns: list) -> list:
    """Run each fn in its own thread, released together; return the results in order."""
    barrier = threading.Barrier(len(fns))

    def run(fn):
        barrier.wait()
        return fn()

    with concurrent.futures.ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(run, fns))


def jmap_call(site: Site, name: str, args: dict) -> tuple[int, list | str]:
    """One method call over a fresh connection; (status, methodResponses or the body)."""
    resp = requests.post(site.url + "/jmap/", json={"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
                                                    "methodCalls": [[name, args, "c"]]},
                         headers={"Authorization": basic(site.login, site.password)}, timeout=120)
    if resp.status_code != 200:
        return resp.status_code, resp.text
    return 200, resp.json()["methodResponses"]


def make_roles(admin: Jmap, n: int) -> list[str]:
    got = admin.ok("x:Role/set", {"create": {f"r{i}": {"description": f"conc {i} {secrets.token_hex(2)}"}
                                             for i in range(n)}})
    assert got["notCreated"] is None, got
    return [got["created"][f"r{i}"]["id"] for i in range(n)]


ROLE_SETS = ("defaultUserRoleIds", "defaultGroupRoleIds", "defaultTenantRoleIds", "defaultAdminRoleIds")
SCALARS = {"passwordMinLength": 9, "passwordMaxLength": 127, "passwordMinStrength": "two",
           "passwordDefaultExpiry": 86_400_000, "maxAppPasswords": 7, "maxApiKeys": 8}


def test_twenty_parallel_patches_of_one_singleton_all_survive(site):
    admin = site.admin
    roles = make_roles(admin, 20 - len(SCALARS))
    patches = [{name: value} for name, value in SCALARS.items()]
    patches += [{f"{ROLE_SETS[i % 4]}/{role}": True} for i, role in enumerate(roles)]
    assert len(patches) == 20

    results = all_at_once([
        (lambda patch=patch: jmap_call(site, "x:Authentication/set", {"update": {"singleton": patch}}))
        for patch in patches
    ])
    for patch, (status, body) in zip(patches, results):
        assert status == 200, (patch, status, body)
        [(name, got, _)] = body
        assert name == "x:Authentication/set", (patch, got)
        assert got["updated"] == {"singleton": None} and got["notUpdated"] is None, (patch, got)

    [stored] = admin.ok("x:Authentication/get", {"ids": ["singleton"]})["list"]
    lost = [p for p in patches if not all(
        (stored[path.split("/")[0]] or {}).get(path.split("/")[1]) is True if "/" in path else stored[path] == value
        for path, value in p.items())]
    assert not lost, f"{len(lost)} of 20 updates lost: {lost}"

    # Each update moved the state once: the change log has twenty entries for them.
    changes = admin.ok("x:Authentication/changes", {"sinceState": "0"})
    assert changes["updated"] == ["singleton"], changes


def test_parallel_patches_of_one_set_property_all_survive(site):
    """Twelve writers each add a different permission to one role's enabledPermissions."""
    admin = site.admin
    [role] = make_roles(admin, 1)
    perms = ["sysAccountGet", "sysAccountQuery", "sysRoleGet", "sysRoleQuery", "sysTenantGet", "sysTenantQuery",
             "sysDomainGet", "sysDomainQuery", "sysAuthenticationGet", "sysJmapGet", "sysHttpGet", "sysSecurityGet"]
    results = all_at_once([
        (lambda perm=perm: jmap_call(site, "x:Role/set",
                                     {"update": {role: {f"enabledPermissions/{perm}": True}}}))
        for perm in perms
    ])
    for perm, (status, body) in zip(perms, results):
        assert status == 200, (perm, status, body)
        [(_, got, _)] = body
        assert got.get("updated") == {role: None}, (perm, got)
    [stored] = admin.ok("x:Role/get", {"ids": [role]})["list"]
    assert sorted(k for k, v in stored["enabledPermissions"].items() if v) == sorted(perms), stored


def test_parallel_creates_of_one_unique_name_give_one_object_and_set_errors(site):
    admin = site.admin
    name = f"conc-tenant-{secrets.token_hex(3)}"
    results = all_at_once([
        (lambda: jmap_call(site, "x:Tenant/set", {"create": {"t": {"name": name}}})) for _ in range(10)
    ])
    created = 0
    for status, body in results:
        assert status == 200, (status, body)
        [(name_, got, _)] = body
        assert name_ == "x:Tenant/set", got
        if got["created"]:
            created += 1
        else:
            assert got["notCreated"]["t"]["type"] in ("alreadyExists", "primaryKeyViolation"), got
    assert created == 1, results
    assert admin.ok("x:Tenant/query", {"filter": {"name": name}, "calculateTotal": True})["total"] == 1


def test_if_in_state_admits_exactly_one_of_the_writers_that_saw_it(site):
    admin = site.admin
    state = admin.ok("x:Authentication/get", {"ids": ["singleton"]})["state"]
    values = list(range(10, 20))
    results = all_at_once([
        (lambda v=v: jmap_call(site, "x:Authentication/set",
                               {"ifInState": state, "update": {"singleton": {"passwordMinLength": v}}}))
        for v in values
    ])
    won = []
    for v, (status, body) in zip(values, results):
        assert status == 200, (status, body)
        [(name, got, _)] = body
        if name == "x:Authentication/set":
            assert got["updated"] == {"singleton": None} and got["oldState"] == state, got
            won.append((v, got))
        else:
            assert (name, got["type"]) == ("error", "stateMismatch"), got
    assert len(won) == 1, won
    [(value, got)] = won
    [stored] = admin.ok("x:Authentication/get", {"ids": ["singleton"]})["list"]
    assert stored["passwordMinLength"] == value
    assert int(got["newState"]) == int(state) + 1, got


def test_seven_parallel_exchanges_of_one_code_give_exactly_one_token(site):
    _, login = site.create_user("conc")
    redirect_uri = "http://127.0.0.1:9/cb"
    client_id = create_client(site.server, "conc", redirect_uri)
    for _ in range(3):  # a few rounds: a race that is lost only sometimes is still a race
        verifier = generate_token(64)
        resp = requests.post(site.url + "/api/auth", json={
            "type": "authCode", "accountName": login, "accountSecret": STRONG, "clientId": client_id,
            "redirectUri": redirect_uri, "scope": "openid offline_access",
            "codeChallenge": create_s256_code_challenge(verifier), "codeChallengeMethod": "S256"}, timeout=60)
        assert resp.status_code == 200 and resp.json()["type"] == "authenticated", resp.text
        code = resp.json()["client_code"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": client_id, "code_verifier": verifier}
        results = all_at_once([
            (lambda: requests.post(site.url + "/auth/token", data=form, timeout=120)) for _ in range(7)
        ])
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200] + [400] * 6, [(r.status_code, r.text[:200]) for r in results]
        for r in results:
            if r.status_code == 400:
                assert r.json()["error"] == "invalid_grant", r.text
            else:
                assert r.json()["access_token"], r.text
