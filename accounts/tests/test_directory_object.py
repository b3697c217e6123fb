"""x:Directory, the reference's multi-variant object (Ldap | Sql | Oidc), on its JMAP face.

`get` shows the common properties and the object's own variant's, `set` refuses another
variant's with the property named, create needs `@type`, and a patch that changes `@type`
replaces the object with create semantics (jmap.md §8.5). Every bad value the issue lists is
refused at set time with its property named; secrets read "****" and sit encrypted in their
columns.
"""
from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Authentication, Directory, Tenant
from registry import ids
from registry import services as registry
from tests.clients import Jmap

LDAP = {"@type": "Ldap", "description": "People", "url": "ldaps://ldap.example.org", "baseDn": "dc=example,dc=org",
        "bindDn": "cn=admin,dc=example,dc=org", "bindSecret": {"@type": "Value", "secret": "bind-S3cret"}}
SQL = {"@type": "Sql", "description": "Accounts table",
       "store": {"@type": "PostgreSql", "host": "db.example.org", "database": "mail", "authUsername": "mail",
                 "authSecret": {"@type": "Value", "secret": "db-S3cret"}}}
OIDC = {"@type": "Oidc", "description": "Company SSO", "issuerUrl": "https://sso.example.org/realms/staff",
        "usernameDomain": "example.org", "claimGroups": "groups"}


def create(jmap, body):
    got = jmap.ok("x:Directory/set", {"create": {"n": body}})
    return (got.get("created") or {}).get("n"), (got.get("notCreated") or {}).get("n")


def made(jmap, body) -> str:
    created, error = create(jmap, body)
    assert error is None, error
    return created["id"]


def get(jmap, oid, **args):
    return jmap.ok("x:Directory/get", {"ids": [oid], **args})["list"][0]


def update(jmap, oid, patch):
    got = jmap.ok("x:Directory/set", {"update": {oid: patch}})
    return (got.get("notUpdated") or {}).get(oid)


def raw(field, pk):
    table = connection.ops.quote_name(Directory._meta.db_table)
    column = connection.ops.quote_name(Directory._meta.get_field(field).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


# --- each variant: create, get, update ----------------------------------------------------------
def test_ldap_round_trip(jmap):
    oid = made(jmap, LDAP)
    obj = get(jmap, oid)
    assert obj["@type"] == "Ldap" and obj["url"] == "ldaps://ldap.example.org"
    assert obj["bindSecret"] == {"@type": "Value", "secret": "****"}
    assert obj["filterLogin"] == "(&(objectClass=inetOrgPerson)(mail=?))" and obj["poolTimeoutWait"] == 30000
    # Only the common properties and the Ldap ones.
    assert "store" not in obj and "issuerUrl" not in obj and "queryLogin" not in obj
    assert update(jmap, oid, {"filterLogin": "(&(objectClass=person)(|(mail=?)(mailAlias=?)))",
                              "attrEmail": ["mail", "email"], "poolMaxConnections": 20}) is None
    obj = get(jmap, oid)
    assert obj["attrEmail"] == ["mail", "email"] and obj["poolMaxConnections"] == 20
    row = Directory.objects.get(pk=ids.decode(oid))
    assert row.bind_secret == "bind-S3cret" and row.kind == "ldap"


def test_sql_round_trip(jmap):
    oid = made(jmap, SQL)
    obj = get(jmap, oid)
    assert obj["store"] == {"@type": "PostgreSql", "host": "db.example.org", "port": 5432, "database": "mail",
                            "authUsername": "mail", "authSecret": {"@type": "Value", "secret": "****"},
                            "timeout": 15000, "useTls": False, "allowInvalidCerts": False,
                            "poolMaxConnections": 10, "options": None}
    assert "url" not in obj and "issuerUrl" not in obj
    # A path into the store, with the secret left as read: the stored one stays.
    assert update(jmap, oid, {"store/port": 6432, "queryMemberOf": None}) is None
    row = Directory.objects.get(pk=ids.decode(oid))
    assert row.sql_port == 6432 and row.sql_auth_secret == "db-S3cret" and row.query_member_of is None
    # The whole store replaced: a SQLite file, and no secret left behind.
    assert update(jmap, oid, {"store": {"@type": "Sqlite", "path": "var/accounts.sqlite3"}}) is None
    assert get(jmap, oid)["store"] == {"@type": "Sqlite", "path": "var/accounts.sqlite3", "poolMaxConnections": 10}
    row.refresh_from_db()
    assert row.sql_auth_secret == "" and row.sql_auth_secret_kind == "none" and row.sql_host == ""


def test_oidc_round_trip(jmap):
    oid = made(jmap, OIDC)
    obj = get(jmap, oid)
    assert obj["issuerUrl"] == "https://sso.example.org/realms/staff" and obj["requireScopes"] == ["openid", "email"]
    assert obj["claimUsername"] == "preferred_username" and obj["requireAudience"] == "stalwart"
    assert set(obj) == {"id", "@type", "description", "memberTenantId", "issuerUrl", "requireAudience",
                        "requireScopes", "claimUsername", "usernameDomain", "claimName", "claimGroups"}
    assert update(jmap, oid, {"requireAudience": None, "claimName": "display_name"}) is None
    assert get(jmap, oid)["requireAudience"] is None


def test_loopback_issuer_may_use_http(jmap):
    assert create(jmap, {**OIDC, "issuerUrl": "http://127.0.0.1:8081"})[1] is None
    assert create(jmap, {**OIDC, "issuerUrl": "http://localhost:8081/"})[1] is None


# --- variants -----------------------------------------------------------------------------------
def test_create_needs_type(jmap):
    _, error = create(jmap, {k: v for k, v in OIDC.items() if k != "@type"})
    assert error["type"] == "invalidProperties" and error["properties"] == ["@type"]
    _, error = create(jmap, {**OIDC, "@type": "Kerberos"})
    assert error["type"] == "invalidPatch" and error["properties"] == ["@type"]


@pytest.mark.parametrize("body,prop", [
    ({**LDAP, "issuerUrl": "https://sso.example.org"}, "issuerUrl"),
    ({**LDAP, "store": {"@type": "Default"}}, "store"),
    ({**OIDC, "bindSecret": {"@type": "None"}}, "bindSecret"),
    ({**SQL, "filterLogin": "(mail=?)"}, "filterLogin"),
])
def test_create_refuses_another_variants_property(jmap, body, prop):
    _, error = create(jmap, body)
    assert error["type"] == "invalidProperties" and error["properties"] == [prop], error
    assert not Directory.objects.exists()


def test_update_refuses_another_variants_property(jmap):
    oid = made(jmap, LDAP)
    error = update(jmap, oid, {"queryLogin": "SELECT name FROM accounts WHERE name = $1"})
    assert error["type"] == "invalidProperties" and error["properties"] == ["queryLogin"]
    error = update(jmap, oid, {"store/host": "db"})
    assert error is not None and error["type"] in ("invalidPatch", "invalidProperties")


def test_switching_type_replaces_the_object(jmap):
    """jmap.md §8.5: a patch with another @type has create semantics: the new variant's
    properties start from their defaults, and nothing of the old one (its secret) is kept."""
    oid = made(jmap, LDAP)
    assert update(jmap, oid, {"@type": "Oidc", "issuerUrl": "https://sso.example.org"}) is None
    obj = get(jmap, oid)
    assert obj["@type"] == "Oidc" and obj["description"] == "People" and obj["claimUsername"] == "preferred_username"
    row = Directory.objects.get(pk=ids.decode(oid))
    assert row.bind_secret == "" and row.bind_secret_kind == "none" and row.base_dn == "" and row.bind_dn is None
    # Required properties of the new variant must come with the switch.
    error = update(jmap, oid, {"@type": "Ldap"})
    assert error["type"] == "validationFailed" and {e["property"] for e in error["validationErrors"]} == {"baseDn"}
    # Paths cannot be mixed into a switch.
    error = update(jmap, oid, {"@type": "Sql", "store/host": "db.example.org"})
    assert error["type"] == "invalidPatch" and error["properties"] == ["store/host"]
    assert get(jmap, oid)["@type"] == "Oidc"


def test_query_filters_on_type(jmap):
    a, b = made(jmap, LDAP), made(jmap, OIDC)
    assert jmap.ok("x:Directory/query", {"filter": {"@type": "Oidc"}})["ids"] == [b]
    assert jmap.ok("x:Directory/query", {})["ids"] == [a, b]


# --- bad input, named -------------------------------------------------------------------------
def _refused(jmap, body):
    _, error = create(jmap, body)
    assert error is not None, body
    named = set(error.get("properties") or []) | {e["property"] for e in error.get("validationErrors") or []}
    return error["type"], named


@pytest.mark.parametrize("patch,prop", [
    ({"url": "http://ldap.example.org"}, "url"),
    ({"url": "ldap://"}, "url"),
    ({"url": "ldap.example.org:389"}, "url"),
    ({"url": "ldap://ldap.example.org:99999"}, "url"),
    ({"baseDn": ""}, "baseDn"),
    ({"filterLogin": "(&(mail=?)"}, "filterLogin"),
    ({"filterLogin": "(objectClass=person)"}, "filterLogin"),
    ({"filterMailbox": "(mail=?)(uid=?)"}, "filterMailbox"),
    ({"filterMemberOf": "member=?"}, "filterMemberOf"),
    ({"attrEmail": []}, "attrEmail"),
    ({"attrEmail": ["mail address"]}, "attrEmail"),
    ({"groupClass": ""}, "groupClass"),
    ({"timeout": 0}, "timeout"),
    ({"poolTimeoutWait": 7200000}, "poolTimeoutWait"),
    ({"poolMaxConnections": 0}, "poolMaxConnections"),
    ({"poolMaxConnections": 9000}, "poolMaxConnections"),
    ({"bindSecret": {"@type": "Value", "secret": ""}}, "bindSecret/secret"),
    ({"bindSecret": {"@type": "EnvironmentVariable", "variableName": "NOT A NAME"}}, "bindSecret/variableName"),
    ({"bindSecret": {"@type": "File"}}, "bindSecret/filePath"),
    ({"bindSecret": {"@type": "Text", "secret": "x"}}, "bindSecret/@type"),
])
def test_ldap_bad_input(jmap, patch, prop):
    kind, named = _refused(jmap, {**LDAP, **patch})
    assert prop in named, (kind, named)


def test_filters_parse_strictly(jmap):
    assert create(jmap, {**LDAP, "filterLogin": "(|(mail=?)(mailAlias=?))"})[1] is None
    assert _refused(jmap, {**LDAP, "filterLogin": "(&(mail=?)"})[1] == {"filterLogin"}


@pytest.mark.parametrize("patch,prop", [
    ({"queryLogin": "SELECT name, secret FROM accounts WHERE name = ?"}, "queryLogin"),
    ({"queryLogin": "SELECT name, secret FROM accounts WHERE name = $1 OR name = $2"}, "queryLogin"),
    ({"queryRecipient": "SELECT name FROM accounts WHERE name = $1; DROP TABLE accounts"}, "queryRecipient"),
    ({"queryMemberOf": "DELETE FROM group_members WHERE name = $1"}, "queryMemberOf"),
    ({"queryEmailAliases": "  "}, "queryEmailAliases"),
    ({"columnEmail": ""}, "columnEmail"),
    ({"columnSecret": "secret; --"}, "columnSecret"),
    ({"store": {"@type": "PostgreSql", "database": "mail"}}, "store/host"),
    ({"store": {"@type": "MySql", "host": "bad host!"}}, "store/host"),
    ({"store": {"@type": "MySql", "host": "db", "port": 0}}, "store/port"),
    ({"store": {"@type": "PostgreSql", "host": "db", "poolMaxConnections": 0}}, "store/poolMaxConnections"),
    ({"store": {"@type": "PostgreSql", "host": "db", "timeout": 0}}, "store/timeout"),
    ({"store": {"@type": "PostgreSql", "host": "db", "port": "5432"}}, "store/port"),
    ({"store": {"@type": "MySql", "host": "db", "options": "sslmode=disable"}}, "store/options"),
    ({"store": {"@type": "Sqlite"}}, "store/path"),
    ({"store": {"@type": "Oracle"}}, "store/@type"),
])
def test_sql_bad_input(jmap, patch, prop):
    kind, named = _refused(jmap, {**SQL, **patch})
    assert prop in named, (kind, named)


def test_sql_accepts_one_trailing_semicolon_and_the_default_store(jmap):
    body = {"@type": "Sql", "description": "here", "store": {"@type": "Default"},
            "queryLogin": "SELECT name, secret, description, type FROM accounts WHERE name = $1;"}
    assert create(jmap, body)[1] is None


@pytest.mark.parametrize("patch,prop", [
    ({"issuerUrl": ""}, "issuerUrl"),
    ({"issuerUrl": "http://sso.example.org"}, "issuerUrl"),
    ({"issuerUrl": "ftp://sso.example.org"}, "issuerUrl"),
    ({"issuerUrl": "https://"}, "issuerUrl"),
    ({"issuerUrl": "https://user:pw@sso.example.org"}, "issuerUrl"),
    ({"usernameDomain": "not a domain"}, "usernameDomain"),
    ({"claimUsername": ""}, "claimUsername"),
    ({"claimGroups": ""}, "claimGroups"),
    ({"claimName": "display name"}, "claimName"),
    ({"requireScopes": ["openid", ""]}, "requireScopes"),
    ({"requireAudience": " "}, "requireAudience"),
])
def test_oidc_bad_input(jmap, patch, prop):
    kind, named = _refused(jmap, {**OIDC, **patch})
    assert prop in named, (kind, named)


# --- secrets ------------------------------------------------------------------------------------
def test_secrets_are_masked_kept_and_encrypted(jmap):
    oid = made(jmap, LDAP)
    pk = ids.decode(oid)
    assert "bind-S3cret" not in str(raw("bind_secret", pk))
    assert Directory.objects.get(pk=pk).bind_secret == "bind-S3cret"
    # Writing the mask back keeps the stored secret; a new value replaces it.
    assert update(jmap, oid, {"bindSecret": {"@type": "Value", "secret": "****"}}) is None
    assert Directory.objects.get(pk=pk).bind_secret == "bind-S3cret"
    assert update(jmap, oid, {"bindSecret/secret": "n3w-Secret"}) is None
    assert Directory.objects.get(pk=pk).bind_secret == "n3w-Secret"
    # An environment variable or a file replaces the value, which is not kept.
    assert update(jmap, oid, {"bindSecret": {"@type": "EnvironmentVariable", "variableName": "LDAP_BIND"}}) is None
    row = Directory.objects.get(pk=pk)
    assert (row.bind_secret_kind, row.bind_secret, row.bind_secret_variable) == ("env", "", "LDAP_BIND")
    assert get(jmap, oid)["bindSecret"] == {"@type": "EnvironmentVariable", "variableName": "LDAP_BIND"}
    # The mask alone, with nothing stored, is refused.
    error = update(jmap, oid, {"bindSecret": {"@type": "Value", "secret": "****"}})
    assert error is not None and "bindSecret/secret" in str(error)


def test_secrets_never_in_the_audit_log(jmap):
    from registry.models import AuditEvent

    oid = made(jmap, SQL)
    update(jmap, oid, {"store/authSecret/secret": "an0ther-Secret"})
    dump = str(list(AuditEvent.objects.filter(object_type="Directory").values()))
    assert "db-S3cret" not in dump and "an0ther-Secret" not in dump


# --- tenants ------------------------------------------------------------------------------------
@pytest.fixture
def tenants(db, jmap, make_account, domain):
    from accounts.models import Account, Domain
    from accounts import services

    # The built-in Tenant Administrator role has no sysDirectory* (as the reference's): this
    # tenant and its administrator are granted them on top of their roles.
    grant = {"permissions_mode": "merge",
             "enabled_permissions": [f"sysDirectory{op}" for op in ("Get", "Create", "Update", "Destroy", "Query")]}
    t1 = registry.create(Tenant._declaration, {"name": "t1", **grant}, "test")
    d1 = registry.create(Domain._declaration, {"name": "one.test", "tenant": t1.pk}, "test")
    services.create_account({"name": "boss", "domain": d1.pk, "tenant": t1.pk, "roles_mode": "admin",
                             "kind": "user", **grant}, "test", password="Tr0ubador-Quartz-Lantern-91")
    return t1


def test_a_tenant_admin_sees_only_its_directories(client, jmap, tenants):
    from tests.clients import Jmap, Jmap, basic

    system = made(jmap, LDAP)
    t1 = Jmap(client, basic("boss@one.test"))
    own, error = create(t1, OIDC)
    assert error is None
    assert Directory.objects.get(pk=ids.decode(own["id"])).tenant_id == tenants.pk
    assert t1.ok("x:Directory/get", {"ids": None})["list"][0]["id"] == own["id"]
    assert len(t1.ok("x:Directory/get", {"ids": None})["list"]) == 1
    assert t1.ok("x:Directory/get", {"ids": [system]})["notFound"] == [system]
    assert t1.ok("x:Directory/query", {})["ids"] == [own["id"]]
    assert (t1.ok("x:Directory/set", {"update": {system: {"description": "mine"}}})["notUpdated"][system]["type"]
            == "notFound")
    # The system administrator sees both.
    assert set(jmap.ok("x:Directory/query", {})["ids"]) == {system, own["id"]}


def test_login_directory_belongs_to_no_tenant(jmap, tenants):
    tenant_id = ids.encode(tenants.pk)
    key = jmap.ok("x:ApiKey/set", {"create": {"k": {"description": "admin's way in"}}})["created"]["k"]["secret"]
    owned = made(jmap, {**LDAP, "memberTenantId": tenant_id})
    got = jmap.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": owned}}})
    assert got["notUpdated"]["singleton"]["properties"] == ["directoryId"]
    assert Authentication.load().directory_id is None
    free = made(jmap, LDAP)
    assert jmap.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": free}}}).get("updated")
    # From now on Basic logins go to that (unreachable) directory: the administrator goes on with
    # its API key, which stays local.
    jmap = Jmap(jmap.client, f"Bearer {key}")
    # ... and the directory in use cannot then be given to a tenant.
    assert update(jmap, free, {"memberTenantId": tenant_id})["properties"] == ["memberTenantId"]


# --- schema ------------------------------------------------------------------------------------
def test_schema_lists_the_variants(jmap):
    schema = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth, follow=True).json()
    entry = schema["schemas"]["x:Directory"]
    assert entry["type"] == "multiple"
    assert [(v["name"], v["schemaName"]) for v in entry["variants"]] == [
        ("Ldap", "x:LdapDirectory"), ("Sql", "x:SqlDirectory"), ("Oidc", "x:OidcDirectory")]
    ldap = schema["fields"]["x:LdapDirectory"]["properties"]
    assert {"url", "baseDn", "bindSecret", "description", "memberTenantId"} <= set(ldap)
    assert "store" not in ldap and "@type" not in ldap
    assert schema["fields"]["x:SqlDirectory"]["properties"]["store"]["type"] == {
        "type": "object", "objectName": "SqlAuthStore"}
    assert [v["name"] for v in schema["schemas"]["SqlAuthStore"]["variants"]] == [
        "Default", "PostgreSql", "MySql", "Sqlite"]
    assert schema["fields"]["SecretKeyValue"]["properties"]["secret"]["type"]["format"] == "secret"
    assert schema["fields"]["x:OidcDirectory"]["defaults"]["claimUsername"] == "preferred_username"


# --- config_of: the row as its backend's configuration ------------------------------------------
def test_config_of_each_variant(jmap, monkeypatch, tmp_path):
    from datetime import timedelta

    from accounts.directory_config import config_of
    from directories.base import LdapConfig, OidcConfig, SqlConfig

    ldap = Directory.objects.get(pk=ids.decode(made(jmap, {**LDAP, "attrEmail": ["mail", "email"],
                                                            "poolTimeoutWait": 1500, "filterMemberOf": None})))
    config = config_of(ldap)
    assert isinstance(config, LdapConfig)
    assert config.url == "ldaps://ldap.example.org" and config.base_dn == "dc=example,dc=org"
    assert config.attr_email == ("mail", "email") and config.pool_timeout_wait == timedelta(milliseconds=1500)
    assert config.filter_member_of is None and config.bind_secret.resolve() == "bind-S3cret"

    secret_file = tmp_path / "db-password"
    secret_file.write_text("from-a-file\n")
    sql = Directory.objects.get(pk=ids.decode(made(jmap, {**SQL, "store": {
        "@type": "MySql", "host": "db.example.org", "authSecret": {"@type": "File", "filePath": str(secret_file)}}})))
    config = config_of(sql)
    assert isinstance(config, SqlConfig)
    assert (config.store.kind, config.store.host, config.store.port) == ("mysql", "db.example.org", 3306)
    assert config.store.timeout == timedelta(seconds=15) and config.store.auth_secret.resolve() == "from-a-file"
    assert config.query_login.endswith("$1")

    monkeypatch.setenv("DIRECTORY_TEST_SECRET", "from-the-environment")
    update(jmap, ids.encode(sql.pk), {"store/authSecret": {"@type": "EnvironmentVariable",
                                                           "variableName": "DIRECTORY_TEST_SECRET"}})
    sql.refresh_from_db()
    assert config_of(sql).store.auth_secret.resolve() == "from-the-environment"

    oidc = Directory.objects.get(pk=ids.decode(made(jmap, OIDC)))
    config = config_of(oidc)
    assert isinstance(config, OidcConfig)
    assert config.require_scopes == ("openid", "email") and config.username_domain == "example.org"
    assert config.claim_groups == "groups"


# --- manage.py (stalwart-cli's verbs) -------------------------------------------------------------
def _cli(*args):
    import io

    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def local_cli(monkeypatch, db):
    for name in ("STALWART_URL", "STALWART_USER", "STALWART_PASSWORD", "STALWART_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_cli_create_get_describe(local_cli):
    import json

    code, out, err = _cli("create", "directory/ldap", "--field", "description=People",
                          "--field", "baseDn=dc=example,dc=org", "--field", "filterLogin=(|(mail=?)(uid=?))",
                          "--field", 'bindSecret={"@type":"Value","secret":"cli-S3cret"}')
    assert code == 0, err
    made = Directory.objects.get()
    assert made.kind == "ldap" and made.bind_secret == "cli-S3cret" and made.filter_login == "(|(mail=?)(uid=?))"
    oid = ids.encode(made.pk)
    code, out, err = _cli("get", "directory", oid, "--json")
    shown = json.loads(out)
    assert shown["@type"] == "Ldap" and shown["bindSecret"] == {"@type": "Value", "secret": "****"}
    code, out, err = _cli("get", "directory", oid)
    assert "LDAP Directory" in out and "cli-S3cret" not in out
    # Another variant's field is refused by the CLI, a bad value by the server, with its name.
    code, out, err = _cli("create", "directory/oidc", "--field", "description=SSO", "--field", "filterLogin=(mail=?)")
    assert code != 0 and "filterLogin" in err
    code, out, err = _cli("create", "directory/sql", "--field", "description=T",
                          "--field", 'store={"@type":"PostgreSql","host":"db.example.org"}',
                          "--field", "queryLogin=SELECT name FROM accounts WHERE name = $1 OR alias = $2")
    assert code == 1 and "queryLogin" in err and "$2" in err
    code, out, err = _cli("update", "directory", oid, "--field", "filterLogin=(&(mail=?)")
    assert code == 1 and "filterLogin" in err
    code, out, err = _cli("describe", "directory")
    assert "Variants:" in out and "Ldap: LDAP Directory" in out and "Sql: SQL Database" in out
    assert "Oidc: OpenID Connect" in out and "issuerUrl" in out and "store" in out
