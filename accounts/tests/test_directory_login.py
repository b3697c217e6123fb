"""Logging in through an external directory (issue 12; spec auth §7.2, §7.3, §11), over HTTP.

The directory is a real SQL directory: a SQLite file with the reference's example schema
(tests/sqldirs.py). Nothing of the project is mocked: the requests go through the edge, the
verdict cache, the login pipeline and the SQL backend.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import credentials, external
from accounts.models import Account, Alias, Authentication, Credential, Domain, Role, Tenant
from registry import services as registry
from security.models import BlockedIp
from tests import sqldirs
from tests.clients import Jmap, basic

pytestmark = pytest.mark.django_db
ALICE = "alice@example.org"
CORE = ["urn:ietf:params:jmap:core"]


@pytest.fixture
def store(tmp_path):
    with sqldirs.sqlite_store(tmp_path, "argon2id") as made:
        yield made


def use_directory(directory):
    return registry.update(Authentication._declaration, 1, {"directory": directory and directory.pk}, "test")


@pytest.fixture
def directory(domain, store):
    row = sqldirs.directory_row(store)
    use_directory(row)
    return row


def echo(client, auth, ip="198.51.100.20"):
    return client.post("/jmap/", json.dumps({"using": CORE, "methodCalls": [["Core/echo", {"x": 1}, "c"]]}),
                       content_type="application/json", HTTP_AUTHORIZATION=auth, REMOTE_ADDR=ip)


def backend(directory):
    return external.backend_for(directory)


def edit_directory(directory, **fields):
    """An administrator's edit of the directory: its row and its state, in one transaction (the
    registry face of Directory does the same through registry.update)."""
    from django.db import transaction

    with transaction.atomic():
        type(directory).objects.filter(pk=directory.pk).update(**fields)
        registry.bump_state("Directory")
    directory.refresh_from_db()


def take_down(directory, tmp_path):
    """The directory's database becomes unreachable (its file is not where the directory says)."""
    edit_directory(directory, sql_path=str(tmp_path / "gone" / "missing.sqlite3"))


def bring_back(directory, store):
    edit_directory(directory, sql_path=store["path"])


# --- the login order -------------------------------------------------------------------------
def test_a_directory_login_mirrors_the_account(client, directory, make_account, domain):
    tenant = Tenant.objects.create(name="acme")
    Domain.objects.filter(pk=domain.pk).update(tenant=tenant)
    make_account("taken")  # an address the directory lists as alice's alias, owned here by another
    role = Role.objects.create(description="Directory users",
                               enabled_permissions=["authenticate", "sysAccountPasswordGet"])
    registry.update(Authentication._declaration, 1, {"default_user_roles": [role.pk]}, "test")
    resp = echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD))
    assert resp.status_code == 200, resp.content
    alice = Account.objects.get(email_address=ALICE)
    assert alice.directory_id == directory.pk
    assert alice.kind == "user" and alice.description == "Alice Directory"
    assert alice.roles_mode == Account.RolesMode.USER  # the default user roles, resolved at login
    assert alice.tenant_id == tenant.pk
    # Aliases: only addresses of served domains, and not one another account holds.
    assert sorted(str(a) for a in alice.aliases.all()) == ["alice.d@example.org"]
    assert not Alias.objects.filter(name="taken").exists()
    groups = {g.email_address: g for g in alice.member_groups.all()}
    assert set(groups) == {"staff@example.org", "sales@example.org"}
    assert all(g.kind == "group" and g.directory_id == directory.pk for g in groups.values())
    # The password credential holds the directory's hash.
    cred = alice.credentials.get(kind=Credential.Kind.PASSWORD)
    assert cred.secret_hash == backend(directory).lookup(ALICE).secret_hash
    # Its roles are Authentication's defaultUserRoleIds, resolved at login.
    session = client.get("/api/account", HTTP_AUTHORIZATION=basic(ALICE, sqldirs.ALICE_PASSWORD))
    assert session.status_code == 200
    assert sorted(session.json()["permissions"]) == ["authenticate", "sysAccountPasswordGet"]


@pytest.mark.parametrize("login,secret", [
    (ALICE, "wrong password"),
    ("nobody@example.org", sqldirs.ALICE_PASSWORD),
    ("staff@example.org", ""),  # a group entry cannot log in
    ("x' OR '1'='1", "anything"),
    ("*", "anything"),
])
def test_wrong_or_unknown_logins_are_refused(client, directory, login, secret):
    assert echo(client, basic(login, secret)).status_code == 401
    assert not Account.objects.filter(kind="user").exists()


@pytest.mark.parametrize("fmt", list(sqldirs.CRYPT_VECTORS))
def test_a_directory_holding_crypt_hashes_logs_people_in(client, domain, tmp_path, fmt):
    with sqldirs.sqlite_store(tmp_path, fmt) as made:
        use_directory(sqldirs.directory_row(made))
        assert echo(client, basic(ALICE, "wrong " + sqldirs.ALICE_PASSWORD)).status_code == 401
        assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    cred = Account.objects.get(email_address=ALICE).credentials.get(kind=Credential.Kind.PASSWORD)
    assert cred.secret_hash == sqldirs.CRYPT_VECTORS[fmt]


def test_internal_passwords_stop_working_while_a_directory_is_active(client, directory, make_account):
    make_account("bob")
    assert echo(client, basic("bob@example.org")).status_code == 401
    use_directory(None)
    assert echo(client, basic("bob@example.org")).status_code == 200


def test_the_recovery_administrator_works_while_the_directory_is_down(client, directory, settings, tmp_path):
    settings.STALWART_RECOVERY_ADMIN = "recovery:Recovery-Secret-123"
    take_down(directory, tmp_path)
    assert echo(client, basic("recovery", "Recovery-Secret-123")).status_code == 200
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 503


def test_app_passwords_of_a_mirrored_account_work_while_the_directory_is_down(client, directory, tmp_path):
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    alice = Account.objects.get(email_address=ALICE)
    # The account's owner creates the app password over JMAP: allowed for a mirrored account.
    made = Jmap(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).ok(
        "x:AppPassword/set", {"create": {"k": {"description": "phone", "permissions": {"@type": "Inherit"}}}})
    token = made["created"]["k"]["secret"]
    take_down(directory, tmp_path)
    assert echo(client, basic(ALICE, token)).status_code == 200
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.21").status_code == 503
    assert alice.credentials.filter(kind=Credential.Kind.APP_PASSWORD).count() == 1


# --- re-synchronisation ------------------------------------------------------------------------
def test_each_login_brings_the_mirror_in_line(client, directory, store):
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    sqldirs.execute(store, "UPDATE accounts SET description = %s WHERE name = %s", ("Alice Renamed", ALICE))
    sqldirs.execute(store, "DELETE FROM emails WHERE address = %s", ("alice.d@example.org",))
    sqldirs.execute(store, "DELETE FROM group_members WHERE member_of = %s", ("sales",))
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.30").status_code == 200
    alice = Account.objects.get(email_address=ALICE)
    assert alice.description == "Alice Renamed"
    assert [str(a) for a in alice.aliases.all()] == ["taken@example.org"]
    assert [g.email_address for g in alice.member_groups.all()] == ["staff@example.org"]


def _login_queries(client, ip):
    with CaptureQueriesContext(connection) as queries:
        assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip=ip).status_code == 200
    return len(queries)


def test_group_sync_costs_the_same_whatever_the_number_of_groups(client, directory, store):
    """Mirroring the entry's groups is a constant number of queries: 2 groups or 43 already
    there, 1 group or 40 to create."""
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    steady_few = _login_queries(client, "198.51.100.40")
    sqldirs.execute(store, "INSERT INTO group_members VALUES (%s, %s)", (ALICE, "solo"))
    creating_one = _login_queries(client, "198.51.100.41")
    for i in range(40):
        sqldirs.execute(store, "INSERT INTO group_members VALUES (%s, %s)", (ALICE, f"team{i}"))
    creating_many = _login_queries(client, "198.51.100.42")
    steady_many = _login_queries(client, "198.51.100.43")
    alice = Account.objects.get(email_address=ALICE)
    assert alice.member_groups.count() == 43
    assert steady_many == steady_few
    assert creating_many == creating_one
    created = list(Account.objects.filter(name__startswith="team").values_list("directory_id", "kind", "email_address"))
    assert len(created) == 40 and all(d == directory.pk and k == "group" and e.endswith("@example.org")
                                      for d, k, e in created)


def test_a_directory_cannot_put_its_people_in_internal_or_foreign_groups(client, directory, store, make_account,
                                                                      domain):
    """The attacker controls the directory entry's group list (memberOf, a groups claim): naming
    an administrator's internal group, another account's address or alias, or a group in
    another tenant's domain gains nothing; an internal group an administrator put the account in
    stays."""
    admins = make_account("admins", kind="group", roles_mode=Account.RolesMode.DEFAULT)
    helpdesk = make_account("helpdesk", kind="group", roles_mode=Account.RolesMode.DEFAULT)
    make_account("boss")
    Alias.objects.create(account=Account.objects.get(name="boss"), name="ceo", domain=domain)
    other = Domain.objects.create(name="other.test", tenant=Tenant.objects.create(name="other"))
    for name in ("admins", "boss@example.org", "ceo", "finance@other.test"):
        sqldirs.execute(store, "INSERT INTO group_members VALUES (%s, %s)", (ALICE, name))
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    alice = Account.objects.get(email_address=ALICE)
    alice.member_groups.add(helpdesk)  # an administrator's doing
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.43").status_code == 200
    assert {g.email_address for g in alice.member_groups.all()} == {
        "staff@example.org", "sales@example.org", "helpdesk@example.org"}
    assert not admins.members.exists()
    assert Account.objects.get(pk=admins.pk).directory_id is None
    assert not Account.objects.filter(name__in=["ceo", "finance"]).exists()
    assert not Account.objects.filter(domain=other).exists()


def test_an_unchanged_login_writes_nothing(client, directory):
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    states = registry.states("Account", "Credential")
    # Another address: the verdict cache is keyed by it, so the directory is asked again.
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.31").status_code == 200
    assert registry.states("Account", "Credential") == states


def test_an_admin_given_role_survives_the_next_login(client, directory):
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    alice = Account.objects.get(email_address=ALICE)
    registry.update(Account._declaration, alice.pk, {"roles_mode": Account.RolesMode.ADMIN}, "test")
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.32").status_code == 200
    assert Account.objects.get(pk=alice.pk).roles_mode == Account.RolesMode.ADMIN


VERIFIER = "v" * 50
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
REDIRECT = "http://127.0.0.1:9999/cb"


def oauth_token(client, secret):
    resp = client.post("/api/auth", json.dumps({
        "type": "authCode", "accountName": ALICE, "accountSecret": secret, "clientId": "app",
        "redirectUri": REDIRECT, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}),
        content_type="application/json")
    assert resp.json()["type"] == "authenticated", resp.content
    got = client.post("/auth/token", {"grant_type": "authorization_code", "code": resp.json()["client_code"],
                                      "client_id": "app", "redirect_uri": REDIRECT, "code_verifier": VERIFIER})
    assert got.status_code == 200, got.content
    return got.json()["access_token"]


def test_a_directory_password_change_ends_the_oauth_tokens(client, directory, store):
    token = oauth_token(client, sqldirs.ALICE_PASSWORD)
    assert echo(client, f"Bearer {token}").status_code == 200
    new_hash = sqldirs.hash_as("alice new pass phrase", "bcrypt")
    sqldirs.execute(store, "UPDATE accounts SET secret = %s WHERE name = %s", (new_hash, ALICE))
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.40").status_code == 401
    assert echo(client, basic(ALICE, "alice new pass phrase"), ip="198.51.100.40").status_code == 200
    assert echo(client, f"Bearer {token}", ip="198.51.100.41").status_code == 401


def test_oauth_sign_in_through_a_dead_directory_is_temporarily_unavailable(client, directory, tmp_path):
    take_down(directory, tmp_path)
    resp = client.post("/api/auth", json.dumps({
        "type": "authCode", "accountName": ALICE, "accountSecret": sqldirs.ALICE_PASSWORD, "clientId": "app",
        "redirectUri": REDIRECT, "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"}),
        content_type="application/json")
    assert resp.status_code == 503
    assert resp.json()["error"] == "temporarily_unavailable"
    assert resp["Retry-After"]


def test_the_admin_login_page_says_the_directory_is_down(client, directory, tmp_path):
    take_down(directory, tmp_path)
    resp = client.post("/admin/login/", {"username": ALICE, "password": sqldirs.ALICE_PASSWORD})
    assert resp.status_code == 200
    assert "temporarily unavailable" in resp.content.decode()


# --- the directory owns the password -----------------------------------------------------------
@pytest.fixture
def mirrored(client, directory):
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).status_code == 200
    return Account.objects.get(email_address=ALICE)


def test_an_administrator_cannot_set_a_mirrored_password(client, mirrored, admin_account):
    use_directory(None)  # the administrator is internal
    from registry import ids

    jmap = Jmap(client, basic("admin@example.org"))
    got = jmap.ok("x:Account/get", {"ids": [ids.encode(mirrored.pk)], "properties": ["credentials"]})
    creds = got["list"][0]["credentials"]
    key = next(k for k, c in creds.items() if c["@type"] == "Password")
    res = jmap.ok("x:Account/set", {"update": {ids.encode(mirrored.pk): {
        f"credentials/{key}/secret": "A-new-Strong-passphrase-42"}}})
    err = res["notUpdated"][ids.encode(mirrored.pk)]
    assert err["type"] == "forbidden" and err["description"] == "Operation not allowed."
    with pytest.raises(Exception, match="Operation not allowed"):
        credentials.set_password(mirrored, "A-new-Strong-passphrase-42", "test")


def test_the_owner_cannot_change_a_mirrored_password_on_the_account_page(client, mirrored):
    assert client.login(username=ALICE, password=sqldirs.ALICE_PASSWORD)
    resp = client.post("/account/password/", {"current_password": sqldirs.ALICE_PASSWORD,
                                              "new_password": "A-new-Strong-passphrase-42",
                                              "new_password_confirm": "A-new-Strong-passphrase-42"})
    assert "Operation not allowed." in resp.content.decode()
    cred = mirrored.credentials.get(kind=Credential.Kind.PASSWORD)
    assert cred.secret_hash == Credential.objects.get(pk=cred.pk).secret_hash
    # Still the directory's password that works.
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.50").status_code == 200


def test_two_factor_login_cannot_be_enrolled_on_a_mirrored_account(client, mirrored):
    import pyotp

    from accounts import totp
    from registry.errors import Forbidden

    url = totp.new_totp_url(mirrored)
    with pytest.raises(Forbidden, match="Operation not allowed"):
        totp.enable_totp(mirrored, url, pyotp.parse_uri(url).now(), mirrored)
    assert not mirrored.credentials.exclude(otp_url="").exists()


def test_api_keys_still_work_for_a_mirrored_account(client, mirrored):
    made = Jmap(client, basic(ALICE, sqldirs.ALICE_PASSWORD)).ok(
        "x:ApiKey/set", {"create": {"k": {"description": "script", "permissions": {"@type": "Inherit"}}}})
    key = made["created"]["k"]["secret"]
    assert echo(client, f"Bearer {key}").status_code == 200


# --- outages ---------------------------------------------------------------------------------
def test_a_dead_directory_is_a_503_logged_once_and_never_a_ban(client, directory, store, caplog, tmp_path):
    from security.models import Security

    registry.update(Security._declaration, 1, {"auth_ban_rate_count": 10}, "test")
    take_down(directory, tmp_path)
    caplog.set_level(logging.INFO)
    for i in range(20):
        resp = echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD + str(i)), ip="198.51.100.60")
        assert resp.status_code == 503
        assert resp["Content-Type"] == "application/problem+json" and resp["Retry-After"]
    assert not BlockedIp.objects.exists()
    warnings = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    # Not once per request either: Django's own log of a 5xx stays quiet for this one.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r not in warnings], caplog.text
    bring_back(directory, store)
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.60").status_code == 200
    assert echo(client, basic(ALICE, sqldirs.ALICE_PASSWORD), ip="198.51.100.61").status_code == 200
    infos = [r for r in caplog.records if r.name == "accounts.external" and r.levelno == logging.INFO]
    assert len(infos) == 1 and "available again" in infos[0].getMessage()
    # Wrong passwords against a live directory still count toward a ban as ever.
    statuses = {echo(client, basic(ALICE, "wrong"), ip="198.51.100.62").status_code for _ in range(20)}
    assert 429 in statuses and BlockedIp.objects.filter(address="198.51.100.62").exists()


# --- the verdict cache -----------------------------------------------------------------------
def test_a_repeated_basic_login_does_not_ask_the_directory(client, directory):
    auth = basic(ALICE, sqldirs.ALICE_PASSWORD)
    assert echo(client, auth).status_code == 200
    asked = backend(directory).queries
    assert asked > 0
    for _ in range(3):
        assert echo(client, auth).status_code == 200
    assert backend(directory).queries == asked
    # A change of the directory drops the verdicts it gave: the next request asks again.
    edit_directory(directory, description="Renamed")
    assert echo(client, auth).status_code == 200
    assert backend(directory).queries > 0
    # And so does a change of the account.
    fresh = backend(directory)
    before = fresh.queries
    alice = Account.objects.get(email_address=ALICE)
    registry.update(Account._declaration, alice.pk, {"locale": "fr_FR"}, "test")
    assert echo(client, auth).status_code == 200
    assert fresh.queries > before


# --- switching -------------------------------------------------------------------------------
def test_switching_directories_takes_effect_on_the_next_login(client, directory, tmp_path):
    auth = basic(ALICE, sqldirs.ALICE_PASSWORD)
    assert echo(client, auth).status_code == 200
    old = backend(directory)
    other_path = tmp_path / "other"
    other_path.mkdir()
    with sqldirs.sqlite_store(other_path) as other_store:
        sqldirs.execute(other_store, "UPDATE accounts SET secret = %s WHERE name = %s",
                        (sqldirs.hash_as("the other directory's password", "bcrypt"), ALICE))
        other = sqldirs.directory_row(other_store, "Other")
        use_directory(other)
        assert echo(client, auth).status_code == 401
        assert echo(client, basic(ALICE, "the other directory's password")).status_code == 200
        assert Account.objects.get(email_address=ALICE).directory_id == other.pk
    # An edit of the directory rebuilds its backend and closes the old one's connections.
    sqldirs.execute({"kind": "sqlite", "path": directory.sql_path}, "SELECT 1")
    use_directory(directory)
    assert echo(client, auth).status_code == 200
    edit_directory(directory, sql_pool_max_connections=3)
    assert echo(client, auth, ip="198.51.100.70").status_code == 200
    assert backend(directory) is not old and old.pool.closed


# --- concurrency -----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need a server database")
def test_simultaneous_first_logins_create_one_account(domain, store):
    from accounts import login

    row = sqldirs.directory_row(store)
    use_directory(row)
    from django.db import connections

    results, errors = [], []
    barrier = threading.Barrier(6)

    def work():
        try:
            barrier.wait()
            results.append(login.authenticate(ALICE, sqldirs.ALICE_PASSWORD, "198.51.100.80").account.pk)
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 6
    assert Account.objects.filter(email_address=ALICE).count() == 1
    assert Account.objects.filter(email_address="staff@example.org").count() == 1
    assert Credential.objects.filter(account__email_address=ALICE, kind="password").count() == 1

