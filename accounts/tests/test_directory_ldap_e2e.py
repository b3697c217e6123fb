"""Logging in through an LDAP directory, end to end (issue 12; spec auth §7.2, §7.3, §11).

The directory is a real OpenLDAP server (tests/slapd.py), created with `x:Directory/set` and made
the active one with `x:Authentication/set`, as an administrator would over JMAP; every login then
goes through HTTP: the edge, the verdict cache, the login pipeline, ldap3 and slapd. Once the
directory is active the internal administrator's Basic password no longer logs in, so each test
keeps an API key made beforehand for its own JMAP calls.
"""
from __future__ import annotations

import io
import json
import logging

import ldap3
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account, Authentication, Credential
from accounts.tests.test_directory_login import echo, oauth_token
from registry import ids
from registry import services as registry
from security.models import BlockedIp
from tests import slapd as server
from tests.clients import Jmap, basic
from tests.slapd import slapd  # noqa: F401 - the module's slapd fixture

pytestmark = pytest.mark.django_db
ALICE = "alice@example.org"
ALICE_DN = f"uid=alice,ou=people,{server.BASE_DN}"


@pytest.fixture
def activate(jmap, slapd):  # noqa: F811
    """activate(**directory properties) -> (Jmap as the administrator's API key, directory id)."""

    def make(**overrides):
        key = jmap.ok("x:ApiKey/set", {"create": {"k": {"description": "admin's way in"}}})["created"]["k"]["secret"]
        admin = Jmap(jmap.client, f"Bearer {key}")
        resp = admin.post({"using": ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"],
                           "methodCalls": slapd.jmap_method_calls(**overrides)})
        assert resp.status_code == 200, resp.content
        created, updated = (r[1] for r in resp.json()["methodResponses"])
        assert "ldap" in created.get("created", {}), created
        assert "singleton" in updated.get("updated", {}), updated
        return admin, created["created"]["ldap"]["id"]

    return make


@pytest.fixture
def ldap_on(activate):
    return activate()


# --- a. login and mirroring ------------------------------------------------------------------
def test_a_basic_login_mirrors_the_ldap_account(client, ldap_on, slapd):  # noqa: F811
    admin, directory_id = ldap_on
    resp = echo(client, basic(ALICE, server.ALICE_PASSWORD))
    assert resp.status_code == 200, resp.content
    alice = Account.objects.get(email_address=ALICE)
    assert alice.directory_id == ids.decode(directory_id)
    assert alice.kind == "user" and alice.description == "Alice Liddell"
    assert sorted(str(a) for a in alice.aliases.all()) == ["a.liddell@example.org", "wonder@example.org"]
    groups = {g.email_address: g for g in alice.member_groups.all()}
    assert set(groups) == {"sales@example.org", "staff@example.org"}
    assert all(g.kind == "group" for g in groups.values())
    # The internal administrator's password is not a way in any more; its API key is.
    assert echo(client, basic("admin@example.org")).status_code == 401
    assert echo(client, admin.auth).status_code == 200


@pytest.mark.parametrize("login", ["*", "*)(uid=*", "alice*", "nobody@example.org"])
def test_filter_metacharacters_and_unknown_logins_are_refused(client, ldap_on, login):
    assert echo(client, basic(login, server.ALICE_PASSWORD)).status_code == 401
    assert not Account.objects.filter(kind="user", directory__isnull=False).exists()


def test_wrong_passwords_count_toward_a_ban(client, ldap_on):
    from security.models import Security

    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 5}, "test")
    statuses = [echo(client, basic(ALICE, f"wrong-{i}"), ip="198.51.100.90").status_code for i in range(10)]
    assert statuses[0] == 401 and 429 in statuses
    assert BlockedIp.objects.filter(address="198.51.100.90").exists()


# --- b. outage -------------------------------------------------------------------------------
REDIRECT = "http://127.0.0.1:9999/cb"


def test_a_stopped_slapd_is_a_503_logged_once_never_a_ban(client, ldap_on, slapd, settings, caplog):  # noqa: F811
    from security.models import Security

    from accounts.tests.test_directory_login import CHALLENGE

    settings.STALWART_RECOVERY_ADMIN = "recovery:Recovery-Secret-123"
    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 5}, "test")
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 200
    app = Jmap(client, basic(ALICE, server.ALICE_PASSWORD)).ok(
        "x:AppPassword/set", {"create": {"k": {"description": "phone", "permissions": {"@type": "Inherit"}}}})
    app_password = app["created"]["k"]["secret"]
    caplog.set_level(logging.INFO)
    slapd.stop()
    try:
        for i in range(12):
            resp = echo(client, basic(ALICE, f"{server.ALICE_PASSWORD}-{i}"), ip="198.51.100.91")
            assert resp.status_code == 503, resp.content
            assert resp["Content-Type"] == "application/problem+json" and resp["Retry-After"]
        assert not BlockedIp.objects.exists()
        token = client.post("/api/auth", json.dumps({
            "type": "authCode", "accountName": ALICE, "accountSecret": server.ALICE_PASSWORD, "clientId": "app",
            "redirectUri": REDIRECT, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}),
            content_type="application/json")
        assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
        assert token["Retry-After"]
        warnings = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
        assert server.READER_PASSWORD not in caplog.text and server.ALICE_PASSWORD not in caplog.text
        # The ways in that do not need the directory still work.
        assert echo(client, basic("recovery", "Recovery-Secret-123"), ip="198.51.100.92").status_code == 200
        assert echo(client, basic(ALICE, app_password), ip="198.51.100.93").status_code == 200
    finally:
        slapd.start()
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD), ip="198.51.100.94").status_code == 200
    infos = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.INFO]
    assert len(infos) == 1 and "available again" in infos[0].getMessage()


# --- c. hash mode ------------------------------------------------------------------------------
def test_hash_mode_checks_ssha_and_plain_passwords_here(client, activate, slapd):  # noqa: F811
    activate(bindAuthentication=False)
    binds = slapd.binds()
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 200
    assert echo(client, basic("bob@example.org", server.BOB_PASSWORD)).status_code == 200
    assert echo(client, basic(ALICE, "not-" + server.ALICE_PASSWORD), ip="198.51.100.95").status_code == 401
    assert echo(client, basic("bob@example.org", "wrong"), ip="198.51.100.95").status_code == 401
    # Only the reader bound (once per pooled connection), never alice or bob; binds() adds one.
    assert slapd.binds() - binds - 1 <= 2
    alice = Account.objects.get(email_address=ALICE)
    assert alice.credentials.get(kind=Credential.Kind.PASSWORD).secret_hash == server.ALICE_HASH


# --- d. a password changed in the directory ----------------------------------------------------
def test_a_password_changed_in_slapd_ends_the_oauth_tokens(client, ldap_on, slapd):  # noqa: F811
    token = oauth_token(client, server.ALICE_PASSWORD)
    assert echo(client, f"Bearer {token}").status_code == 200
    new = "Alice-Through-The-Looking-Glass-8"
    with slapd.admin() as conn:
        assert conn.modify(ALICE_DN, {"userPassword": [(ldap3.MODIFY_REPLACE, [server.ssha(new, b"n3w")])]})
    try:
        assert echo(client, basic(ALICE, server.ALICE_PASSWORD), ip="198.51.100.96").status_code == 401
        assert echo(client, basic(ALICE, new), ip="198.51.100.96").status_code == 200
        assert echo(client, f"Bearer {token}", ip="198.51.100.97").status_code == 401
    finally:
        with slapd.admin() as conn:
            conn.modify(ALICE_DN, {"userPassword": [(ldap3.MODIFY_REPLACE, [server.ALICE_HASH])]})


# --- e. the verdict cache ----------------------------------------------------------------------
def test_repeated_basic_requests_add_no_binds(client, ldap_on, slapd):  # noqa: F811
    auth = basic(ALICE, server.ALICE_PASSWORD)
    assert echo(client, auth).status_code == 200
    before = slapd.binds()
    for _ in range(5):
        assert echo(client, auth).status_code == 200
    assert slapd.binds() - before == 1  # binds() itself
    # Nor any query beyond the object states every request reads (at most once per request): a
    # cached directory login costs what a cached internal one does.
    with CaptureQueriesContext(connection) as queries:
        assert echo(client, auth).status_code == 200
    sql = [q["sql"] for q in queries]
    assert len(sql) <= 1 and all("registry_objectstate" in q for q in sql), sql


# --- f. Active Directory schema ----------------------------------------------------------------
AD_FILTER = "(&(objectClass=user)(sAMAccountName={local})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"


def test_active_directory_schema(client, activate, slapd):  # noqa: F811
    from accounts.models import Domain

    Domain.objects.create(name="corp.example.org")  # mirrored accounts need a served domain
    activate(baseDn=f"ou=corp,{server.BASE_DN}", filterLogin=AD_FILTER,
             filterMailbox="(&(|(objectClass=user)(objectClass=group))(mail=?))", filterMemberOf=None,
             attrEmail=["mail"], attrEmailAlias=[], attrDescription=["displayName", "description"],
             attrMemberOf=["memberOf"], attrSecretChanged=[], groupClass="group")
    assert echo(client, basic("dave@corp.example.org", server.DAVE_PASSWORD)).status_code == 200
    dave = Account.objects.get(email_address="dave@corp.example.org")
    assert dave.description == "Dave Jones"
    assert echo(client, basic("frank@corp.example.org", server.FRANK_PASSWORD)).status_code == 401
    assert not Account.objects.filter(email_address="frank@corp.example.org").exists()


# --- g. TLS ----------------------------------------------------------------------------------
def test_tls_with_an_untrusted_certificate(client, activate, slapd):  # noqa: F811
    admin, directory_id = activate(url=slapd.ldaps_url, useTls=True)
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 503
    got = admin.ok("x:Directory/set", {"update": {directory_id: {"allowInvalidCerts": True}}})
    assert directory_id in got["updated"], got
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD), ip="198.51.100.98").status_code == 200


# --- h. switching --------------------------------------------------------------------------------
def test_switching_the_directory_takes_effect_on_the_next_login(client, ldap_on, make_account):
    admin, directory_id = ldap_on
    make_account("bob")  # an internal bob, with the internal password
    internal = basic("bob@example.org")
    assert echo(client, internal).status_code == 401
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 200
    admin.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": None}}})
    assert Authentication.load().directory_id is None
    assert echo(client, internal).status_code == 200
    admin.ok("x:Authentication/set", {"update": {"singleton": {"directoryId": directory_id}}})
    assert echo(client, internal, ip="198.51.100.99").status_code == 401
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD), ip="198.51.100.99").status_code == 200


# --- i. the test command and the Test form -------------------------------------------------------
def test_the_directory_test_command_and_form(client, ldap_on, settings):
    admin, directory_id = ldap_on
    out = io.StringIO()
    call_command("directory", "test", directory_id, ALICE, "--json", stdout=out)
    mapped = json.loads(out.getvalue())
    assert mapped["name"] == ALICE and mapped["description"] == "Alice Liddell"
    # Groups as the directory names them (mail when the entry has one, else its cn).
    assert set(mapped["groups"]) == {"sales@example.org", "staff"}
    assert mapped["accountExists"] is False
    assert not Account.objects.filter(email_address=ALICE).exists()
    # The form, as the recovery administrator (the internal password no longer logs in).
    settings.STALWART_RECOVERY_ADMIN = "recovery:Recovery-Secret-123"
    assert client.login(username="recovery", password="Recovery-Secret-123")
    pk = ids.decode(directory_id)
    resp = client.post(f"/admin/accounts/directory/{pk}/test/",
                       {"login": ALICE, "password": server.ALICE_PASSWORD}, follow=True)
    text = resp.content.decode()
    assert "Test passed." in text and "Alice Liddell" in text and server.ALICE_PASSWORD not in text
    resp = client.post(f"/admin/accounts/directory/{pk}/test/", {"login": ALICE, "password": "nope"}, follow=True)
    assert "Test failed" in resp.content.decode()


# --- j. the bind secret from the environment or a file ------------------------------------------
def test_the_bind_secret_from_an_environment_variable(client, activate, monkeypatch, caplog):
    monkeypatch.setenv("STALWART_TEST_LDAP_BIND", server.READER_PASSWORD)
    activate(bindSecret={"@type": "EnvironmentVariable", "variableName": "STALWART_TEST_LDAP_BIND"})
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 200
    monkeypatch.setenv("STALWART_TEST_LDAP_BIND", "not the reader's password")
    from accounts import external

    external.forget_backends()
    # The variable is read when a connection binds: the refused bind DN is the configuration's
    # fault, logged as such, and no login.
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD), ip="198.51.100.100").status_code == 401
    assert "refused the bind DN" in caplog.text and "not the reader's password" not in caplog.text


def test_the_bind_secret_from_a_file(client, activate, tmp_path):
    secret = tmp_path / "bind-secret"
    secret.write_text(server.READER_PASSWORD + "\n")
    activate(bindSecret={"@type": "File", "filePath": str(secret)})
    assert echo(client, basic(ALICE, server.ALICE_PASSWORD)).status_code == 200


# --- h, on a real server: every worker sees the switch -----------------------------------------
def _statuses(url: str, auth: str, count: int = 12) -> set[int]:
    import requests

    body = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]})
    # A new connection per request, so that the requests spread over the workers.
    return {requests.post(url, data=body, headers={"Authorization": auth, "Content-Type": "application/json",
                                                   "Connection": "close"}, timeout=30).status_code
            for _ in range(count)}


@pytest.mark.django_db(databases=[])
def test_every_worker_of_a_live_server_sees_the_switch(live, slapd):  # noqa: F811
    import re

    password = "Carol-Internal-Passphrase-5"
    live.shell_json(
        "from accounts.models import Account, Domain\nfrom accounts import credentials\n"
        "d, _ = Domain.objects.get_or_create(name='example.org')\n"
        "a, _ = Account.objects.get_or_create(name='carol', domain=d, defaults={'kind': 'user'})\n"
        f"credentials.set_password(a, {password!r}, 'test')\nresult = a.pk")
    created = live.manage("create", "directory", "--json", json.dumps(slapd.directory_create()), "--no-color").stdout
    directory_id = re.search(r"Created .* (\S+)\s*$", created.strip()).group(1)
    url, carol = live.url + "/jmap/", basic("carol@example.org", password)
    alice = basic(ALICE, server.ALICE_PASSWORD)
    assert _statuses(url, carol) == {200}
    try:
        done = live.manage("update", "authentication", "--field", f"directoryId={directory_id}", check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _statuses(url, carol) == {401}
        assert _statuses(url, alice) == {200}
    finally:
        live.manage("update", "authentication", "--field", "directoryId=null")
    assert _statuses(url, carol) == {200}
    assert _statuses(url, alice) == {401}
