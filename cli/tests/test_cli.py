"""The stalwart-cli verbs as manage.py commands (docs/cli.md; the reference's stalwart-cli).

Local mode runs through call_command against the test database; remote mode runs the commands
as subprocesses against a real gunicorn server, with a different local database, and must print
exactly what the local mode prints against the server's database.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.live import ROOT, live_server


@pytest.fixture(autouse=True)
def _local_mode(monkeypatch):
    for name in ("STALWART_URL", "STALWART_USER", "STALWART_PASSWORD", "STALWART_TOKEN", "STALWART_DEBUG",
                 "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


def run(*args, stdin: str | None = None):
    """(exit status, stdout, stderr) of a command run in-process."""
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin_stream": io.StringIO(stdin)} if stdin is not None else {}
    try:
        call_command(*args, stdout=out, stderr=err, **extra)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def ok(*args, **kw) -> str:
    code, out, err = run(*args, **kw)
    assert code == 0, err
    return out


def fails(*args, **kw) -> str:
    code, out, err = run(*args, **kw)
    assert code == 1, (out, err)
    return err


AUTHENTICATION_VIEW = """\
Directory
  Directory: <none>

Default roles
  Default user roles:   user (id: b)
  Default group roles:  group (id: c)
  Default tenant roles: user (id: b), tenant-admin (id: d)
  Default admin roles:  user (id: b), admin (id: e)

Password policy
  Password hash algorithm: Argon2id
  Password min length:     8
  Password max length:     128
  Password min strength:   Safely unguessable: moderate protection from offline slow-hash scenario. (guesses < 10^10)
  Password default expiry: <none>

Credentials
  Maximum app passwords: 5
  Maximum API keys:      5
"""


# --- get / update (the seed examples) ----------------------------------------------------------
@pytest.mark.django_db
def test_get_authentication_renders_the_form_sections():
    assert ok("get", "authentication") == AUTHENTICATION_VIEW
    # names are case-insensitive, with an optional x: prefix; the singleton id may be given
    assert ok("get", "X:AUTHENTICATION", "singleton") == AUTHENTICATION_VIEW


@pytest.mark.django_db
def test_get_json_is_one_compact_line_of_the_jmap_object():
    out = ok("get", "authentication", "--json")
    assert out.count("\n") == 1 and ": " not in out
    doc = json.loads(out)
    assert doc["id"] == "singleton" and doc["passwordMinLength"] == 8
    assert doc["defaultUserRoleIds"] == {"b": True}
    assert ok("get", "authentication", "--fields", "PASSWORDMINLENGTH", "--json") == \
        '{"id":"singleton","passwordMinLength":8}\n'


@pytest.mark.django_db
def test_update_authentication_field_parses_by_schema_type_and_audits():
    from accounts.models import Authentication
    from registry.models import AuditEvent

    assert ok("update", "authentication", "--field", "passwordMinLength=12") == "Updated Authentication singleton\n"
    assert Authentication.load().password_min_length == 12
    event = AuditEvent.objects.filter(field="passwordMinLength").latest("id")
    assert event.actor.startswith("manage.py (") and (event.old_value, event.new_value) == (8, 12)

    # durations are milliseconds, null clears a nullable field, booleans/JSON by type
    ok("update", "authentication", "--field", "passwordDefaultExpiry=7776000000", "--field", "maxApiKeys=null",
       "--field", 'defaultGroupRoleIds={"b":true}')
    view = ok("get", "authentication")
    assert "  Password default expiry: 90 d\n" in view
    assert "  Maximum API keys:      <none>\n" in view
    assert "  Default group roles:  user (id: b)\n" in view
    ok("update", "authentication", "--json", '{"passwordDefaultExpiry": 104400000, "passwordMinLength": 10}')
    view = ok("get", "authentication")
    assert "  Password default expiry: 1 d 5 h\n" in view and "  Password min length:     10\n" in view
    # a JSON-pointer path into a set
    ok("update", "authentication", "--field", "defaultGroupRoleIds/c=true")
    assert json.loads(ok("get", "authentication", "--json"))["defaultGroupRoleIds"] == {"b": True, "c": True}


@pytest.mark.django_db
def test_update_errors():
    assert fails("update", "authentication", "--field", "nope=1") == "error: unknown field: nope\n"
    assert fails("update", "authentication", "--field", "passwordMinLength=abc") == \
        "error: invalid value for `passwordMinLength`: expected integer, got `abc`\n"
    assert fails("update", "authentication", "--field", "defaultUserRoleIds=b").startswith(
        "error: invalid value for `defaultUserRoleIds`: the field requires a JSON object/array value")
    assert fails("update", "authentication") == "error: no input provided; use --field, --json, --file, or --stdin\n"
    assert fails("update", "authentication", "--field", "a=1", "--json", "{}") == \
        "error: input sources are mutually exclusive: pick one of --field, --json, --file, --stdin\n"
    assert fails("update", "authentication", "--json", "[1]") == "error: input must be a JSON object\n"
    assert fails("update", "authentication", "--json", "{}") == "error: no fields to update\n"
    assert fails("update", "authentication", "other", "--field", "passwordMinLength=9") == \
        "error: singleton id must be 'singleton'\n"
    # the server's validation error, rendered as a SetError block
    assert fails("update", "authentication", "--field", "passwordMinLength=1000") == (
        "error: validationFailed\n"
        "  Ensure this value is less than or equal to 100.\n"
        "  Validation errors:\n"
        "    passwordMinLength: must be at most 100\n"
        "error: update failed\n")


@pytest.mark.django_db
def test_unknown_and_misused_names():
    assert fails("get", "nope") == "error: unknown object: nope\n"
    assert fails("get", "role") == "error: Role requires an id\n"
    assert fails("get", "role", "zz") == "error: Role zz not found\n"
    assert fails("get", "role/admin", "b") == "error: the Object/Variant syntax is only valid for `create`\n"
    assert fails("create", "role/admin", "--field", "name=x") == \
        "error: Role is not multi-variant; do not use the `/Variant` syntax\n"
    assert fails("get", "roles").startswith("error: `Roles` is an embedded property of Account or Tenant")
    assert fails("get", "authentication", "--fields", "bogus") == "error: unknown field: bogus\n"


# --- describe -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_describe():
    listing = ok("describe")
    assert re.search(r"^Authentication +Configures authentication settings.* \[singleton\]$", listing, re.M)
    assert re.search(r"^Role +A named set of permissions", listing, re.M)
    role = ok("describe", "x:role")
    assert role.startswith("Role\n  A named set of permissions that accounts, groups and tenants take.\n\nFields:\n")
    assert re.search(r"^    roleIds +set<id<Role>>  mutable\n        Roles whose permissions this role inherits\.$",
                     role, re.M)
    assert re.search(r"^    memberTenantId +id<Tenant>\?  mutable$", role, re.M)
    auth = ok("describe", "authentication")
    assert auth.startswith("Authentication [singleton]\n")
    assert re.search(r"^    passwordDefaultExpiry +number<duration>\?  mutable$", auth, re.M)
    enum = ok("describe", "passwordstrength")
    assert enum.startswith("PasswordStrength  (enum)\n\n  Variants:\n    zero   Too guessable")
    assert fails("describe", "nothing") == "error: unknown object: nothing\n"


# --- query, create, delete ----------------------------------------------------------------------
@pytest.mark.django_db
def test_create_query_and_delete_a_role():
    out = ok("create", "role", "--field", "name=ops", "--field", "description=Operators",
             "--field", 'roleIds={"b":true}', "--field", 'enabledPermissions={"sysDomainGet":true}')
    role_id = re.fullmatch(r"Created Role (\w+)\n", out).group(1)
    doc = json.loads(ok("get", "role", role_id, "--json"))
    assert doc == {"id": role_id, "name": "ops", "description": "Operators", "memberTenantId": None,
                   "roleIds": {"b": True}, "enabledPermissions": {"sysDomainGet": True}, "disabledPermissions": {}}
    ok("create", "role", "--json", '{"name": "audit", "description": "Auditors"}')

    table = ok("query", "role", "--where", "name=ops")
    assert table == ("Id  Name  Description  Tenant  Parents\n"
                     f"{role_id.ljust(2)}  ops   Operators    <none>  user (id: b)\n")
    assert ok("query", "role", "--where", "NAME=ops", "--json") == f'"{role_id}"\n'
    records = ok("query", "role", "--where", "text=audit", "--fields", "name,description", "--json")
    assert [json.loads(line) for line in records.splitlines()] == [
        {"id": json.loads(records.splitlines()[0])["id"], "name": "audit", "description": "Auditors"}]
    everything = ok("query", "role", "--json").split()
    assert len(everything) == 6 and f'"{role_id}"' in everything
    assert fails("query", "role", "--where", "name>a") == \
        "error: operator `>` is only allowed on number or datetime fields\n"
    assert fails("query", "role", "--where", "=a").startswith("error: invalid --where `=a`")
    assert fails("query", "authentication") == "error: Authentication is a singleton and does not support query\n"

    assert fails("create", "role", "--field", "name=x") == (
        "error: validationFailed\n  This field cannot be blank.\n  Validation errors:\n"
        "    description: required\nerror: create failed\n")

    code, out, err = run("delete", "role", "--ids", f"{role_id},zz")
    assert code == 1 and err == "error: one or more deletions failed\n"
    assert out == (f"{role_id} deleted\nzz failed: error: notFound\n    Role zz not found.\n1 deleted, 1 failed\n")
    code, out, err = run("delete", "role", "--stdin", stdin='["b"]')
    assert code == 1 and out.startswith("b failed: error: objectIsLinked\n")
    assert "    Linked by:   Authentication#" in out
    assert fails("delete", "authentication", "--ids", "a") == \
        "error: Authentication is a singleton and cannot be deleted\n"
    assert fails("delete", "role") == "error: either --ids or --stdin is required\n"


# --- apply ----------------------------------------------------------------------------------------
PLAN = """\
{"@type":"create","object":"role","value":{"#ops":{"name":"ops","description":"Operators"},\
"dev":{"name":"dev","description":"Developers","roleIds":{"#ops":true}}}}

{"@type":"update","object":"Role","id":"#dev","value":{"description":"Developers (all)"}}
{"@type":"update","object":"x:Authentication","value":{"defaultGroupRoleIds":{"#ops":true}}}
{"@type":"destroy","object":"Role","value":{"name":"temp"}}
"""


@pytest.mark.django_db
def test_apply_plan_create_update_destroy():
    from accounts.models import Authentication, Role

    ok("create", "role", "--field", "name=temp", "--field", "description=Temporary")
    code, out, err = run("apply", "--stdin", "--dry-run", stdin=PLAN)
    assert (code, out) == (0, "")
    assert err == ("Plan: 1 destroy, 2 update, 1 create, 0 upsert, 0 reconcile (2 objects)\n"
                   "(dry run: no changes will be made)\n")
    assert Role.objects.filter(name="temp").exists() and not Role.objects.filter(name="ops").exists()

    code, out, err = run("apply", "--stdin", stdin=PLAN)
    assert (code, out) == (0, "")
    assert err == ("Plan: 1 destroy, 2 update, 1 create, 0 upsert, 0 reconcile (2 objects)\n"
                   "✓ destroyed Role (1)\n✓ created Role (2)\n✓ updated Role (1)\n✓ updated Authentication (1)\n"
                   "Done: 1 destroyed, 2 updated, 2 created (0 failed)\n")
    ops, dev = Role.objects.get(name="ops"), Role.objects.get(name="dev")
    assert dev.description == "Developers (all)" and list(dev.parents.all()) == [ops]
    assert list(Authentication.load().default_group_roles.all()) == [ops]
    assert not Role.objects.filter(name="temp").exists()


@pytest.mark.django_db
def test_apply_upsert_is_idempotent_and_json_records():
    from accounts.models import Role

    plan = ('{"@type":"upsert","object":"Role","matchOn":["name"],"value":{"a":{"name":"ops","description":"One"},'
            '"b":{"name":"dev","description":"Two","roleIds":{"#a":true}}}}\n')
    code, out, _ = run("apply", "--stdin", "--json", stdin=plan)
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"op": "upsert", "object": "Role", "index": 0, "count": 2, "status": "ok"},
        {"op": "summary", "plan": {"destroys": 0, "updates": 0, "creates": 0, "create_objects": 0, "upserts": 1,
                                   "upsert_objects": 2, "reconciles": 0, "reconcile_objects": 0},
         "done": {"destroyed": 0, "updated": 0, "created": 2, "failed": 0}}]
    before = set(Role.objects.values_list("pk", flat=True))
    code, _, err = run("apply", "--stdin", stdin=plan.replace('"One"', '"One, again"'))
    assert code == 0 and err.endswith("Done: 0 destroyed, 2 updated, 0 created (0 failed)\n")
    assert set(Role.objects.values_list("pk", flat=True)) == before
    assert Role.objects.get(name="ops").description == "One, again"


@pytest.mark.django_db
def test_apply_reconcile_removes_what_the_plan_does_not_name():
    from accounts.models import Role

    for name in ("x1", "x2", "x3"):
        ok("create", "role", "--field", f"name={name}", "--field", "description=scratch")
    plan = ('{"@type":"reconcile","object":"Role","scope":{"description":"scratch"},'
            '"value":{"k":{"name":"x2"},"n":{"name":"x4"}}}\n')
    code, _, err = run("apply", "--stdin", stdin=plan)
    assert code == 0, err
    assert err.splitlines()[-2:] == ["✓ reconcile removed Role (2)",
                                     "Done: 2 destroyed, 1 updated, 1 created (0 failed)"]
    assert sorted(Role.objects.filter(description="scratch").values_list("name", flat=True)) == ["x2", "x4"]


@pytest.mark.django_db
def test_apply_errors():
    assert fails("apply") == "error: no plan provided; pass --file <path> or --stdin\n"
    assert fails("apply", "--stdin", stdin='{"@type":"create","object":"Role"}\nnot json\n').startswith(
        "error: invalid plan NDJSON on line 2: ")
    assert fails("apply", "--stdin", stdin='{"@type":"create","object":"Role","value":{"a":{}},"x":1}') == \
        "error: invalid plan NDJSON on line 1: unknown field `x`\n"
    assert fails("apply", "--stdin", stdin='{"@type":"destroy","object":"Jmap"}') == \
        "error: cannot destroy singleton `Jmap` (operation #1)\n"
    assert fails("apply", "--stdin", stdin='{"@type":"update","object":"Role","id":"#nope","value":{}}') == \
        "error: Role: update references unknown created id `#nope` (no matching create operation in this plan)\n"
    assert fails("apply", "--stdin", stdin='{"@type":"create","object":"Nope","value":{"a":{}}}') == \
        "error: unknown object: Nope\n"
    bad = ('{"@type":"create","object":"Role","value":{"x":{"name":"x"}}}\n'
           '{"@type":"create","object":"Role","value":{"y":{"name":"y","description":"fine"}}}\n')
    code, _, err = run("apply", "--stdin", stdin=bad)
    assert code == 1
    assert err.splitlines() == [
        "Plan: 0 destroy, 0 update, 2 create, 0 upsert, 0 reconcile (2 objects)",
        "✗ create Role: Role: create failed for `x` (operation #1): error: validationFailed |   This field cannot "
        "be blank. |   Validation errors: |     description: required",
        "Done: 0 destroyed, 0 updated, 0 created (1 failed)",
        "error: Role: create failed for `x` (operation #1): error: validationFailed |   This field cannot be "
        "blank. |   Validation errors: |     description: required"]
    code, _, err = run("apply", "--stdin", "--continue-on-error", stdin=bad)
    assert code == 1 and "✓ created Role (1)" in err
    assert err.endswith("Done: 0 destroyed, 0 updated, 1 created (1 failed)\n"
                        "error: apply completed with 1 failed operation(s)\n")


# --- snapshot -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_snapshot_round_trip(tmp_path):
    from accounts.models import Authentication, Role

    role_id = ok("create", "role", "--field", "name=ops", "--field", "description=Operators",
                 "--field", 'roleIds={"b":true}').split()[-1]
    ok("update", "authentication", "--field", f"defaultGroupRoleIds={{\"{role_id}\":true}}")
    assert fails("snapshot", "role") == ("error: Role references Tenant but Tenant is not in the snapshot "
                                         "selection; add it or use --allow-unresolved Tenant\n")
    assert fails("snapshot", "role/x").startswith("error: snapshot cannot select variants individually")

    code, first, err = run("snapshot", "role", "authentication", "--allow-unresolved", "tenant,directory")
    assert code == 0
    assert err == ("snapshot: 1 upserts, 1 singletons\n  fetching Role...\n    5 fetched\n    Role: 5\n"
                   "  fetching singleton Authentication...\nsnapshot complete\n")
    lines = [json.loads(line) for line in first.splitlines()]
    assert [(x["@type"], x["object"]) for x in lines] == [("upsert", "Role"), ("update", "Authentication")]
    assert lines[0]["matchOn"] == ["name"]
    assert lines[0]["value"][f"role-{role_id}"] == {"description": "Operators", "disabledPermissions": {},
                                                    "enabledPermissions": {}, "memberTenantId": None,
                                                    "name": "ops", "roleIds": {"#role-b": True}}
    assert lines[1]["value"]["defaultGroupRoleIds"] == {f"#role-{role_id}": True}
    assert "directoryId" in lines[1]["value"] and "id" not in lines[1]["value"]

    # re-applying to the same server converges: everything matches, nothing is created
    path = tmp_path / "snapshot.ndjson"
    path.write_text(first)
    code, _, err = run("apply", "--file", str(path))
    assert code == 0 and err.endswith("Done: 0 destroyed, 6 updated, 0 created (0 failed)\n"), err
    assert ok("snapshot", "role", "authentication", "--allow-unresolved", "tenant,directory", "--quiet") == first

    # after the role is gone, applying the snapshot restores it and the reference to it
    ok("update", "authentication", "--field", 'defaultGroupRoleIds={"c":true}')
    ok("delete", "role", "--ids", role_id)
    code, _, err = run("apply", "--file", str(path))
    assert code == 0 and err.endswith("Done: 0 destroyed, 5 updated, 1 created (0 failed)\n"), err
    ops = Role.objects.get(name="ops")
    assert [r.name for r in ops.parents.all()] == ["user"]
    assert list(Authentication.load().default_group_roles.all()) == [ops]
    # to a file, too
    ok("snapshot", "role", "--allow-unresolved", "tenant", "--output", str(tmp_path / "out.ndjson"), "--quiet")
    assert json.loads((tmp_path / "out.ndjson").read_text().splitlines()[0])["object"] == "Role"


# --- remote mode against a live server ----------------------------------------------------------
@pytest.fixture(scope="module")
def remote():
    """A live server with a bootstrapped admin, and an environment whose local database is another one."""
    with live_server(workers=2) as server, tempfile.TemporaryDirectory(prefix="cli-local-") as local:
        out = server.manage("bootstrap").stdout
        login = re.search(r"login:\s+(\S+)", out).group(1)
        password = re.search(r"password:\s+(\S+)", out).group(1)
        env = {**os.environ, "STALWART_VAR_DIR": local, "XDG_CACHE_HOME": str(Path(local) / "cache")}
        for name in ("DATABASE_URL", "STALWART_URL", "STALWART_USER", "STALWART_PASSWORD", "STALWART_TOKEN",
                     "DJANGO_SETTINGS_MODULE", "NO_COLOR"):
            env.pop(name, None)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env=env, cwd=ROOT,
                       check=True, timeout=300)
        server.client_env, server.login, server.password, server.local_dir = env, login, password, Path(local)
        yield server


def remote_run(server, *args, password=None, input=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args, "--url", server.url + "/", "--user", server.login,
         "--password", password or server.password], env=server.client_env, cwd=ROOT, capture_output=True,
        text=True, timeout=120, input=input)


@pytest.mark.parametrize("args", [
    ("get", "authentication"),
    ("get", "authentication", "--json"),
    ("query", "role"),
    ("describe", "role"),
    ("snapshot", "role", "authentication", "--allow-unresolved", "Tenant,Directory"),
])
def test_remote_output_equals_local_output(remote, args):
    got = remote_run(remote, *args)
    expected = remote.manage(*args, check=False)
    assert (got.returncode, got.stdout, got.stderr) == (expected.returncode, expected.stdout, expected.stderr)
    assert got.returncode == 0 and got.stdout


def test_remote_seed_examples_and_errors(remote):
    got = remote_run(remote, "get", "authentication")
    assert got.stdout == remote.manage("get", "authentication").stdout
    assert "  Password min length:     8\n" in got.stdout
    # the schema was cached under the server's hash, keyed by the schema's own hash
    cached = list((remote.local_dir / "cache" / "stalwart-cli").glob("*/*.json"))
    assert len(cached) == 1 and len(cached[0].stem) == 64

    got = remote_run(remote, "update", "authentication", "--field", "passwordMinLength=12")
    assert (got.returncode, got.stdout) == (0, "Updated Authentication singleton\n")
    assert remote.manage("get", "authentication", "--fields", "passwordMinLength", "--json").stdout == \
        '{"id":"singleton","passwordMinLength":12}\n'
    events = remote.shell("from registry.models import AuditEvent\n"
                          "print(AuditEvent.objects.filter(field='passwordMinLength').latest('id').actor)")
    assert events.strip().splitlines()[-1] == remote.login

    # the same SetError block and exit status as the local mode
    got = remote_run(remote, "update", "authentication", "--field", "passwordMinLength=1000")
    local = remote.manage("update", "authentication", "--field", "passwordMinLength=1000", check=False)
    assert (got.returncode, got.stderr) == (local.returncode, local.stderr) == (1, local.stderr)
    assert got.stderr.endswith("    passwordMinLength: must be at most 100\nerror: update failed\n")

    got = remote_run(remote, "get", "authentication", password="wrong-password")
    assert (got.returncode, got.stdout, got.stderr) == (1, "", "error: authentication failed (HTTP 401)\n")

    got = remote.manage("get", "nope", check=False)
    assert (got.returncode, got.stdout, got.stderr) == (1, "", "error: unknown object: nope\n")


def test_remote_apply_and_delete(remote):
    plan = ('{"@type":"create","object":"Role","value":{"r":{"name":"remote","description":"Remote role"}}}\n'
            '{"@type":"update","object":"Role","id":"#r","value":{"description":"Remote role (2)"}}\n')
    got = remote_run(remote, "apply", "--stdin", input=plan)
    assert got.returncode == 0, got.stderr
    assert got.stderr.endswith("Done: 0 destroyed, 1 updated, 1 created (0 failed)\n")
    found = remote_run(remote, "query", "role", "--where", "name=remote", "--fields", "description", "--json")
    record = json.loads(found.stdout)
    assert record["description"] == "Remote role (2)"
    got = remote_run(remote, "delete", "role", "--ids", record["id"])
    assert (got.returncode, got.stdout) == (0, f"{record['id']} deleted\n1 deleted, 0 failed\n")


def test_remote_api_key(remote):
    """create shows a generated secret once, in clear; it then works as --api-key."""
    got = remote_run(remote, "create", "apikey", "--field", "description=cli test",
                     "--field", 'permissions={"@type":"Inherit"}')
    assert got.returncode == 0, got.stderr
    assert re.match(r"Created ApiKey \w+\n\n", got.stdout)
    secret = re.search(r"^  Secret[^:]*: +(API_\S+)$", got.stdout, re.M).group(1)
    token = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "get", "authentication", "--json", "--url", remote.url,
         "--api-key", secret], env=remote.client_env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert token.returncode == 0, token.stderr
    assert token.stdout == remote.manage("get", "authentication", "--json").stdout


def test_configuration_errors(remote):
    env = remote.client_env
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run_env(*args, **extra):
        return subprocess.run([*manage, *args], env={**env, **extra}, cwd=ROOT, capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)

    assert run_env("get", "authentication", "--url", "example.org", "--user", "a", "--password", "b").stderr == \
        "error: URL 'example.org' is missing a scheme; prefix it with https:// or http://\n"
    assert run_env("get", "authentication", STALWART_URL=remote.url).stderr == \
        "error: no credentials provided (use --user / --password or --api-key)\n"
    assert run_env("get", "authentication", "--url", remote.url, "--user", "a").stderr == \
        "error: no password provided and stdin is not a tty\n"
    assert run_env("get", "authentication", "--url", remote.url, "--user", "a", "--api-key", "b").stderr == \
        "error: --user and --api-key are mutually exclusive\n"
    assert run_env("get", "authentication", "--user", "a", "--password", "b").stderr == \
        "error: no URL provided (use --url or STALWART_URL)\n"
    got = run_env("get", "authentication", STALWART_URL=remote.url, STALWART_USER=remote.login,
                  STALWART_PASSWORD=remote.password)
    assert got.returncode == 0 and got.stdout.startswith("Directory\n")


# --- final pass (issue 10): arguments that gave tracebacks -------------------------------------
DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.django_db
@pytest.mark.parametrize("args, stdin, expected", [
    (("create", "role", "--json", DEEP), None, "error: invalid JSON: the JSON is nested too deeply\n"),
    (("update", "account", "b", "--field", f"permissions={DEEP}"), None,
     "error: invalid JSON in --field value for `permissions`: the JSON is nested too deeply\n"),
    (("apply", "--stdin"), '{"@type":"create","object":"Role","value":' + DEEP + "}\n",
     "error: invalid plan NDJSON on line 1: the JSON is nested too deeply\n"),
])
def test_json_nested_too_deeply_is_an_error_line(args, stdin, expected):
    assert fails(*args, stdin=stdin) == expected


@pytest.mark.django_db
def test_snapshot_output_that_cannot_be_written_is_an_error_line(tmp_path):
    err = fails("snapshot", "role", "--allow-unresolved", "Tenant", "--output", str(tmp_path), "--quiet")
    assert err == f"error: cannot write {tmp_path}: Is a directory\n"
    if Path("/dev/full").exists():
        err = fails("snapshot", "role", "--allow-unresolved", "Tenant", "--output", "/dev/full", "--quiet")
        assert err == "error: cannot write /dev/full: No space left on device\n"
