"""Accounts from the command line (issue 11 §7): `--field` takes JSON-pointer paths like JMAP
patches, `describe account` lists the credential and alias lists, `get account` shows quotas as
quotas. Local mode in-process; remote mode against a live server, with the same output."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from cli.tests.test_cli import _local_mode, fails, ok, remote, remote_run, run  # noqa: F401 - fixtures by name
from tests.clients import STRONG_PASSWORD
from tests.live import ROOT

NEW_PASSWORD = "Cobalt-Harbour-Violin-58"


def can_log_in(address: str, password: str) -> bool:
    from accounts import login

    try:
        login.authenticate(address, password, "192.0.2.10")
    except login.AuthError:
        return False
    return True


@pytest.fixture
def did(domain) -> str:
    """The JMAP id of the test domain, example.org."""
    from registry import ids

    return ids.encode(domain.pk)


def created_id(out: str) -> str:
    return re.match(r"Created Account (\w+)\n", out).group(1)


# --- create --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_create_account_with_credentials_and_aliases_as_paths(did):
    out = ok("create", "account", "--field", "name=carol", "--field", f"domainId={did}",
             "--field", "credentials/0/@type=Password", "--field", f"credentials/0/secret={STRONG_PASSWORD}",
             "--field", "aliases/0/name=info", "--field", f"aliases/0/domainId={did}",
             "--field", "aliases/0/description=007")
    aid = created_id(out)
    doc = json.loads(ok("get", "account", aid, "--json"))
    # a value that is not JSON ("007") stays the text it is
    assert doc["aliases"] == {"0": {"name": "info", "domainId": did, "enabled": True, "description": "007"}}
    assert doc["credentials"]["0"]["@type"] == "Password" and doc["credentials"]["0"]["secret"] == "****"
    assert can_log_in("carol@example.org", STRONG_PASSWORD)
    assert can_log_in("info@example.org", STRONG_PASSWORD)


@pytest.mark.django_db
def test_create_account_with_whole_lists_as_json_values(did):
    out = ok("create", "account", "--field", "name=dave", "--field", f"domainId={did}",
             "--field", "credentials=" + json.dumps({"0": {"@type": "Password", "secret": STRONG_PASSWORD}}),
             "--field", 'aliases={"0":{"name":"sales","domainId":"%s","enabled":false}}' % did,
             "--field", 'quotas={"maxAppPasswords":2}')
    aid = created_id(out)
    doc = json.loads(ok("get", "account", aid, "--json"))
    assert doc["aliases"]["0"]["enabled"] is False and doc["quotas"] == {"maxAppPasswords": 2}
    assert can_log_in("dave@example.org", STRONG_PASSWORD)
    assert not can_log_in("sales@example.org", STRONG_PASSWORD)  # a disabled alias does not log in


@pytest.mark.django_db
def test_create_path_errors(did):
    assert fails("create", "account", "--field", "nope/0/name=x") == "error: unknown field: nope\n"
    assert fails("create", "account", "--field", "name=x", "--field", "name/0=y") == \
        "error: --field `name/0` conflicts with the value given for `name`\n"
    assert fails("create", "account", "--field", "aliases/0/name=a", "--field", "ALIASES/0/name=b") == \
        "error: duplicate --field key `aliases/0/name`\n"
    assert fails("create", "account", "--field", "aliases/0={").startswith(
        "error: invalid JSON in --field value for `aliases/0`")
    # the server's refusal of a second password, as a SetError block
    err = fails("create", "account", "--field", "name=erin", "--field", f"domainId={did}",
                "--field", "credentials/1/@type=Password", "--field", f"credentials/1/secret={STRONG_PASSWORD}")
    assert err.startswith("error: invalidProperties\n  Only one password credential is allowed.\n")


# --- update --------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_update_password_and_aliases_by_pointer(make_account, did):
    bob = make_account("bob")
    bid = json.loads(ok("query", "account", "--where", "name=bob", "--json"))
    assert ok("update", "account", bid, "--field", f"credentials/0/secret={NEW_PASSWORD}") == f"Updated Account {bid}\n"
    assert can_log_in("bob@example.org", NEW_PASSWORD) and not can_log_in("bob@example.org", STRONG_PASSWORD)
    # the first segment is a field name, case-insensitive; values parse as JSON where they can
    ok("update", "account", bid, "--field", 'Aliases/0={"name":"robert","domainId":"%s"}' % did)
    ok("update", "account", bid, "--field", "aliases/0/enabled=false", "--field", 'aliases/1={"name":"bobby","domainId":"%s"}' % did)
    doc = json.loads(ok("get", "account", bid, "--fields", "aliases", "--json"))
    assert [(a["name"], a["enabled"]) for a in doc["aliases"].values()] == [("robert", False), ("bobby", True)]
    ok("update", "account", bid, "--field", "aliases/0=null")
    assert list(bob.aliases.values_list("name", flat=True)) == ["bobby"]
    # the server's own checks answer, as for any patch
    err = fails("update", "account", bid, "--field", "credentials/0/secret=short")
    assert err.startswith("error: invalidProperties\n") and err.endswith("error: update failed\n")
    assert fails("update", "account", bid, "--field", "credentialz/0/secret=x") == "error: unknown field: credentialz\n"


@pytest.mark.django_db
def test_pointer_escapes_follow_rfc_6901():
    # `~1` is a slash inside a segment (a network), `~0` a tilde
    ok("update", "systemsettings", "--field", "proxyTrustedNetworks/10.0.0.0~18=true")
    doc = json.loads(ok("get", "systemsettings", "--fields", "proxyTrustedNetworks", "--json"))
    assert doc["proxyTrustedNetworks"] == {"10.0.0.0/8": True}
    ok("update", "systemsettings", "--field", "proxyTrustedNetworks/10.0.0.0~18=null")
    assert json.loads(ok("get", "systemsettings", "--fields", "proxyTrustedNetworks", "--json")) == \
        {"id": "singleton", "proxyTrustedNetworks": {}}
    # the first segment is unescaped before it is looked up among the fields
    assert fails("update", "authentication", "--field", "passwordMinLength~0/x=1") == \
        "error: unknown field: passwordMinLength~\n"
    assert fails("update", "authentication", "--field", "password~1MinLength=1") == \
        "error: unknown field: password/MinLength\n"


# --- describe and get ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_describe_account_lists_credentials_aliases_and_quota_keys():
    text = ok("describe", "account")
    assert re.search(r"^    credentials +list<Credential>  mutable$", text, re.M)
    assert re.search(r"^    aliases +list<EmailAlias>  mutable$", text, re.M)
    assert re.search(r"^    quotas +map<enum \(see StorageQuota\), number<unsignedInteger>>  mutable$", text, re.M)
    credential = ok("describe", "credential")
    assert credential.startswith("Credential\n\n  Variants:\n    Password: Password\n")
    assert re.search(r"^        secret +string<secret>  mutable$", credential, re.M)
    assert "    ApiKey: API key\n" in credential
    alias = ok("describe", "emailalias")
    assert re.search(r"^    domainId +id<Domain>  mutable$", alias, re.M)
    assert ok("describe", "storagequota") == (
        "StorageQuota  (enum)\n\n  Variants:\n    maxAppPasswords  Maximum app passwords\n"
        "    maxApiKeys       Maximum API keys\n    maxDiskQuota     Disk quota\n")


@pytest.mark.django_db
def test_get_account_labels_quotas_aliases_and_credentials(make_account, did):
    make_account("bob")
    bid = json.loads(ok("query", "account", "--where", "name=bob", "--json"))
    ok("update", "account", bid, "--field", 'quotas={"maxAppPasswords":3,"maxApiKeys":1}',
       "--field", 'aliases/0={"name":"robert","domainId":"%s"}' % did)
    text = ok("get", "account", bid)
    assert "\nQuotas\n  Quotas: Maximum app passwords → 3, Maximum API keys → 1\n" in text
    assert "Credential limits" not in text
    # The content of the row, not its padding: after other tests on PostgreSQL the Domain column
    # came out one character wider than its widest cell (left for the CLI renderer's owners).
    assert re.search(r"\nAliases\n  Aliases:\n    #  Name +Domain +Enabled +Description\n"
                     rf"    0  robert +example\.org \(id: {re.escape(did)}\) +Yes +<none>\n", text), text
    assert re.search(r"\nCredentials\n  Credentials:\n    0:\n      Type: Password\n(.*\n)*? +Secret: +\*\*\*\*\*\n",
                     text)
    assert STRONG_PASSWORD not in text


# --- remote mode -----------------------------------------------------------------------------------
def _session_status(server, address: str, password: str) -> int:
    return requests.get(server.url + "/jmap/session", auth=(address, password), timeout=30).status_code


def test_remote_accounts_by_pointer_paths(remote):
    got = remote_run(remote, "create", "account", "--field", "name=rita", "--field", "domainId=b",
                     "--field", "credentials/0/@type=Password", "--field", f"credentials/0/secret={STRONG_PASSWORD}",
                     "--field", "aliases/0/name=r", "--field", "aliases/0/domainId=b")
    assert got.returncode == 0, got.stderr
    aid = created_id(got.stdout)
    assert _session_status(remote, "r@example.org", STRONG_PASSWORD) == 200

    got = remote_run(remote, "update", "account", aid, "--field", f"credentials/0/secret={NEW_PASSWORD}",
                     "--field", 'quotas/maxApiKeys=2')
    assert (got.returncode, got.stdout) == (0, f"Updated Account {aid}\n"), got.stderr
    assert _session_status(remote, "rita@example.org", NEW_PASSWORD) == 200
    assert _session_status(remote, "rita@example.org", STRONG_PASSWORD) == 401

    # the same bytes as the local mode on the server's own database
    for args in (("get", "account", aid), ("describe", "account"), ("describe", "credential"),
                 ("get", "account", aid, "--json")):
        got = remote_run(remote, *args)
        local = remote.manage(*args, check=False)
        assert (got.returncode, got.stdout, got.stderr) == (local.returncode, local.stdout, local.stderr)
    text = remote_run(remote, "get", "account", aid).stdout
    assert "\nQuotas\n  Quotas: Maximum API keys → 2\n" in text and "    0  r     example.org (id: b)" in text

    got = remote_run(remote, "update", "account", aid, "--field", "credentials/0/secret=short")
    local = remote.manage("update", "account", aid, "--field", "credentials/0/secret=short", check=False)
    assert (got.returncode, got.stderr) == (local.returncode, local.stderr) == (1, local.stderr)


@pytest.mark.django_db
def test_snapshot_of_accounts_keeps_aliases_and_leaves_credentials_out(make_account, did, tmp_path):
    make_account("bob")
    bid = json.loads(ok("query", "account", "--where", "name=bob", "--json"))
    ok("update", "account", bid, "--field", 'aliases/0={"name":"robert","domainId":"%s"}' % did)
    plan = ok("snapshot", "account", "domain", "--allow-unresolved", "tenant,role", "--quiet")
    accounts = [json.loads(line) for line in plan.splitlines() if json.loads(line)["object"] == "Account"][0]
    body = accounts["value"][f"account-{bid}"]
    assert body["aliases"] == {"0": {"name": "robert", "domainId": f"#domain-{did}", "enabled": True,
                                     "description": None}}
    assert "credentials" not in body
    # applied to the server it came from, it converges without a failure, and bob keeps his password
    path = tmp_path / "plan.ndjson"
    path.write_text(plan)
    code, _, err = run("apply", "--file", str(path))
    assert code == 0 and err.endswith("(0 failed)\n"), err
    assert can_log_in("robert@example.org", STRONG_PASSWORD)


# --- issue 10, items 1 and 2: the service layer's rules hold for remote mode too ------------------
TAKEOVER_PASSWORD = "Violet-Harbour-Kettle-4821"


def _jmap(server, user: str, password: str, name: str, args: dict) -> dict:
    got = requests.post(server.url + "/jmap", auth=(user, password), timeout=60, json={
        "using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"], "methodCalls": [[name, args, "c"]]})
    assert got.status_code == 200, got.text
    return got.json()["methodResponses"][0][1]


def _as(server, user: str, password: str, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args, "--url", server.url + "/", "--user", user,
         "--password", password], env=server.client_env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_remote_mode_cannot_take_over_an_administrator_nor_cross_tenants(remote):
    admin = (remote, remote.login, remote.password)
    admin_id = _jmap(*admin, "x:Account/query", {"filter": {"name": remote.login.split("@")[0]}})["ids"][0]
    role = _jmap(*admin, "x:Role/set", {"create": {"r": {"description": "Helpdesk (remote)", "enabledPermissions": {
        p: True for p in ("authenticate", "sysAccountGet", "sysAccountQuery", "sysAccountUpdate")}}}})
    rid = role["created"]["r"]["id"]
    tenants = _jmap(*admin, "x:Tenant/set", {"create": {"t1": {"name": "rt1"}, "t2": {"name": "rt2"}}})["created"]
    t1, t2 = tenants["t1"]["id"], tenants["t2"]["id"]
    domains = _jmap(*admin, "x:Domain/set", {"create": {"d1": {"name": "rone.test", "memberTenantId": t1},
                                                       "d2": {"name": "rtwo.test", "memberTenantId": t2}}})["created"]
    password = {"0": {"@type": "Password", "secret": STRONG_PASSWORD}}
    made = _jmap(*admin, "x:Account/set", {"create": {
        "hd": {"name": "rhelp", "domainId": "b", "credentials": password,
               "roles": {"@type": "Custom", "roleIds": {rid: True}}},
        "boss": {"name": "rboss", "domainId": domains["d1"]["id"], "memberTenantId": t1, "credentials": password,
                 "roles": {"@type": "Admin"}},
        "zed": {"name": "rzed", "domainId": domains["d2"]["id"], "memberTenantId": t2, "credentials": password,
                "roles": {"@type": "User"}}}})
    assert not made.get("notCreated"), made
    zed = made["created"]["zed"]["id"]

    # Item 1: the limited administrator cannot reset the system administrator's password.
    got = _as(remote, "rhelp@example.org", STRONG_PASSWORD, "update", "account", admin_id,
              "--field", f"credentials/0/secret={TAKEOVER_PASSWORD}")
    assert got.returncode != 0 and "forbidden" in got.stderr.lower() + got.stdout.lower(), (got.stdout, got.stderr)
    assert _session_status(remote, remote.login, TAKEOVER_PASSWORD) == 401
    assert _session_status(remote, remote.login, remote.password) == 200

    # Item 2: the tenant administrator lists only its tenant, and another tenant's account is
    # not found (never forbidden), whether read or reset.
    boss = (remote, "rboss@rone.test", STRONG_PASSWORD)
    listed = _as(*boss, "query", "account", "--json")
    assert listed.returncode == 0, listed.stderr
    assert zed not in listed.stdout and admin_id not in json.loads(listed.stdout)
    assert made["created"]["boss"]["id"] in json.loads(listed.stdout)
    got = _as(*boss, "update", "account", zed, "--field", f"credentials/0/secret={TAKEOVER_PASSWORD}")
    assert got.returncode != 0 and "notfound" in (got.stderr + got.stdout).lower().replace(" ", ""), got.stderr
    assert _session_status(remote, "rzed@rtwo.test", TAKEOVER_PASSWORD) == 401
    got = _as(*boss, "get", "account", zed)
    assert got.returncode != 0, got.stdout
