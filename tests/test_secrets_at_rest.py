"""Secrets at rest (issue 10, item 17).

The secrets the server must read back are encrypted in their columns under the operator's key,
which `manage.py rotate_encryption_key` rotates; once-shown secrets do not sit in clear in the
session table; every file under var/ is the owner's alone. Run on PostgreSQL too (DATABASE_URL):
the raw columns are read with SQL, as a dump would show them.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Credential, Directory
from certificates.models import AcmeProvider, Certificate
from conftest import STRONG_PASSWORD
from oauth.models import OidcProvider
from submission.models import MtaRoute
from registry import crypto, ids

ROOT = Path(__file__).resolve().parent.parent
EAB_KEY = "c2VjcmV0LWVhYi1obWFjLWtleS12YWx1ZS0xMjM0NTY3ODkw"
ACCOUNT_KEY = "-----BEGIN PRIVATE KEY-----\naccount-key-material\n-----END PRIVATE KEY-----\n"
CERT_KEY = "-----BEGIN PRIVATE KEY-----\ncertificate-key-material\n-----END PRIVATE KEY-----\n"
LDAP_BIND_SECRET = "ldap-bind-Secret-4471"
SQL_AUTH_SECRET = "sql-auth-Secret-9013"
RELAY_SECRET = "relay-auth-Secret-5521"


def raw(model, field, pk):
    """The column as the database holds it (what a dump or a copy of the file shows)."""
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def stored(jmap, make_account, client):
    """Every kind of stored secret, written through the face that writes it."""
    pem = _pem()
    got = jmap.ok("x:OidcProvider/set", {"update": {ids.SINGLETON: {"signatureAlgorithm": "es256",
                                                                    "signatureKey": pem}}})
    assert ids.SINGLETON in got["updated"], got
    created = jmap.ok("x:AcmeProvider/set", {"create": {"p": {
        "contact": {"a@example.org": True}, "domains": {"mail.example.org": True},
        "eabKeyId": "kid-1", "eabHmacKey": EAB_KEY}}})["created"]["p"]
    provider = AcmeProvider.objects.get(pk=ids.decode(created["id"]))
    # Written by the ACME client (certificates.services) with the model, as here.
    provider.account_key = ACCOUNT_KEY
    provider.save()
    now = timezone.now()
    cert = Certificate.objects.create(provider=provider, names=["mail.example.org"], not_before=now,
                                      not_after=now + dt.timedelta(days=90), chain="-----BEGIN CERTIFICATE-----",
                                      private_key=CERT_KEY)
    # Two-factor login, enrolled through the account pages.
    carol = make_account("carol")
    client.logout()
    assert client.login(username="carol@example.org", password=STRONG_PASSWORD)
    assert client.post("/account/two-factor/").status_code == 302
    page = client.get("/account/").content.decode()
    seed = re.search(r'<code id="totp-secret"[^>]*>([A-Z2-7]+)</code>', page).group(1)
    # Pending, the seed is in the session table only encrypted.
    for session in Session.objects.all():
        assert seed not in session.session_data and seed not in repr(session.get_decoded())
    resp = client.post("/account/two-factor/confirm/", {"current_password": STRONG_PASSWORD,
                                                        "code": pyotp.TOTP(seed).now()})
    assert resp.status_code == 302
    cred = carol.credentials.get(kind=Credential.Kind.PASSWORD)
    assert seed in cred.otp_url
    # The directories' bind and database passwords, set over JMAP as an administrator would.
    made = jmap.ok("x:Directory/set", {"create": {
        "l": {"@type": "Ldap", "description": "People", "baseDn": "dc=example,dc=org",
              "bindSecret": {"@type": "Value", "secret": LDAP_BIND_SECRET}},
        "s": {"@type": "Sql", "description": "Accounts", "store": {
            "@type": "PostgreSql", "host": "db.example.org",
            "authSecret": {"@type": "Value", "secret": SQL_AUTH_SECRET}}}}})["created"]
    ldap_pk, sql_pk = ids.decode(made["l"]["id"]), ids.decode(made["s"]["id"])
    # The SMTP relay's password, likewise.
    route = jmap.ok("x:MtaRoute/set", {"create": {"r": {
        "name": "relay", "address": "smtp.example.net", "port": 587, "authUsername": "bob",
        "authSecret": {"@type": "Value", "secret": RELAY_SECRET}}}})["created"]["r"]
    route_pk = ids.decode(route["id"])
    return {
        (Directory, "bind_secret", ldap_pk): LDAP_BIND_SECRET,
        (Directory, "sql_auth_secret", sql_pk): SQL_AUTH_SECRET,
        (MtaRoute, "auth_secret", route_pk): RELAY_SECRET,
        (OidcProvider, "signature_key", 1): pem,
        (AcmeProvider, "eab_hmac_key", provider.pk): EAB_KEY,
        (AcmeProvider, "account_key", provider.pk): ACCOUNT_KEY,
        (Certificate, "private_key", cert.pk): CERT_KEY,
        (Credential, "otp_url", cred.pk): cred.otp_url,
        "seed": seed,
    }


def _columns(stored):
    return {k: v for k, v in stored.items() if isinstance(k, tuple)}


def test_every_encrypted_column_is_covered():
    declared = {(m, f.name) for m, f in crypto.encrypted_fields() if not m._meta.proxy}
    assert declared == {(OidcProvider, "signature_key"), (AcmeProvider, "eab_hmac_key"),
                        (AcmeProvider, "account_key"), (Certificate, "private_key"), (Credential, "otp_url"),
                        (Directory, "bind_secret"), (Directory, "sql_auth_secret"), (MtaRoute, "auth_secret")}


def test_raw_columns_hold_no_clear_secret(stored):
    for (model, field, pk), clear in _columns(stored).items():
        value = raw(model, field, pk)
        assert value.startswith("fernet:"), (model, field)
        for piece in (clear, *[line for line in clear.splitlines() if len(line) > 12], stored["seed"]):
            assert piece not in value, (model, field)
        # ... and the model reads the clear value back.
        assert getattr(model.objects.get(pk=pk), field) == clear
    # The signing key still signs: the JWKS is served from it.
    assert OidcProvider.load().signature_key.startswith("-----BEGIN PRIVATE KEY-----")


def test_a_generated_signing_key_is_stored_encrypted(client, db):
    assert client.get("/auth/jwks.json").status_code == 200
    value = raw(OidcProvider, "signature_key", 1)
    assert value.startswith("fernet:") and "PRIVATE KEY" not in value
    assert "PRIVATE KEY" in OidcProvider.load().signature_key


def test_the_key_derives_from_the_encryption_key_then_the_secret_key(settings, db):
    settings.ENCRYPTION_KEY = ""
    by_secret = crypto.encrypt("hello")
    settings.ENCRYPTION_KEY = "operator-key-1"
    by_operator = crypto.encrypt("hello")
    assert crypto.decrypt(by_operator) == "hello"
    # SECRET_KEY stays a previous key, until the rotation re-encrypts under the operator's.
    assert crypto.decrypt(by_secret) == "hello" and crypto.needs_rotation(by_secret)
    assert not crypto.needs_rotation(by_operator)
    settings.ENCRYPTION_KEY = ""
    assert crypto.decrypt(by_secret) == "hello"
    with pytest.raises(Exception, match="cannot be decrypted"):
        crypto.decrypt(by_operator)  # the operator's key is not derived from SECRET_KEY


def test_rotation(settings, stored, capsys):
    columns = _columns(stored)
    # Under a first operator key.
    settings.ENCRYPTION_KEY = "first-operator-key"
    call_command("rotate_encryption_key")
    before = {k: raw(*k) for k in columns}
    # A new key, the old one kept for reading: everything still reads; --check sees stale rows.
    settings.ENCRYPTION_KEY = "second-operator-key"
    settings.ENCRYPTION_KEYS_OLD = ["first-operator-key"]
    for (model, field, pk), clear in columns.items():
        assert getattr(model.objects.get(pk=pk), field) == clear
    with pytest.raises(CommandError):
        call_command("rotate_encryption_key", "--check")
    call_command("rotate_encryption_key")
    assert f"{len(columns)} value(s) re-encrypted" in capsys.readouterr().out
    call_command("rotate_encryption_key", "--check")
    # Without the old key, every row still reads: all were re-encrypted under the new one.
    settings.ENCRYPTION_KEYS_OLD = []
    for (model, field, pk), clear in columns.items():
        value = raw(model, field, pk)
        assert value != before[(model, field, pk)] and value.startswith("fernet:")
        assert getattr(model.objects.get(pk=pk), field) == clear
    # The TOTP login works with the rotated seed.
    totp = pyotp.TOTP(stored["seed"]).now()
    from accounts import login
    assert login.authenticate("carol@example.org", STRONG_PASSWORD, "203.0.113.9", otp=totp).account


def test_rotation_without_the_old_key_changes_nothing(settings, stored):
    settings.ENCRYPTION_KEY = "first-operator-key"
    call_command("rotate_encryption_key")
    columns = _columns(stored)
    before = {k: raw(*k) for k in columns}
    settings.ENCRYPTION_KEY = "unrelated-key"
    with pytest.raises(CommandError, match="STALWART_ENCRYPTION_KEYS_OLD"):
        call_command("rotate_encryption_key")
    assert {k: raw(*k) for k in columns} == before


def test_rows_left_in_clear_are_encrypted_by_the_rotation(db):
    provider = AcmeProvider.objects.create(contact=["a@example.org"], domains=["mail.example.org"])
    from django.db.models import TextField, Value
    AcmeProvider.objects.filter(pk=provider.pk).update(account_key=Value(ACCOUNT_KEY, output_field=TextField()))
    assert raw(AcmeProvider, "account_key", provider.pk) == ACCOUNT_KEY  # as an earlier version wrote it
    assert AcmeProvider.objects.get(pk=provider.pk).account_key == ACCOUNT_KEY  # still readable
    call_command("rotate_encryption_key")
    assert raw(AcmeProvider, "account_key", provider.pk).startswith("fernet:")
    assert AcmeProvider.objects.get(pk=provider.pk).account_key == ACCOUNT_KEY


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_existing_rows():
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    target = [("certificates", "0001_initial")]
    executor.migrate(target)
    try:
        old = executor.loader.project_state(target).apps.get_model("certificates", "AcmeProvider")
        row = old.objects.create(contact=["a@example.org"], domains=["mail.example.org"], account_key=ACCOUNT_KEY,
                                 eab_key_id="kid", eab_hmac_key=EAB_KEY)
        assert raw(AcmeProvider, "account_key", row.pk) == ACCOUNT_KEY
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert raw(AcmeProvider, "account_key", row.pk).startswith("fernet:")
    assert raw(AcmeProvider, "eab_hmac_key", row.pk).startswith("fernet:")
    fresh = AcmeProvider.objects.get(pk=row.pk)
    assert (fresh.account_key, fresh.eab_hmac_key) == (ACCOUNT_KEY, EAB_KEY)


def test_a_new_api_key_is_not_in_clear_in_the_session_table(client, make_account):
    make_account("bob")
    assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
    client.post("/account/credentials/", {"kind": "api_key", "description": "Backup script"})
    # Between the creation and the page that shows it, the session table holds it encrypted.
    data = " ".join(s.session_data + repr(s.get_decoded()) for s in Session.objects.all())
    shown = client.get("/account/").content.decode()
    token = re.search(r'<code id="new-secret">([^<]+)</code>', shown).group(1)
    assert token.startswith("API_") and token not in data


# --- files under var/ -------------------------------------------------------------------------
def _modes(folder: Path) -> dict[str, int]:
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                out[str(path.relative_to(folder))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def test_manage_py_makes_var_owner_only(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    legacy = var / "left-by-an-old-version.sqlite3"
    legacy.write_text("x")
    legacy.chmod(0o644)
    (var / "sub").mkdir(mode=0o755)
    env = {**os.environ, "STALWART_VAR_DIR": str(var)}
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # A permissive umask in the parent: the server must not depend on it.
    old = os.umask(0o022)
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=300)
        # The database open in WAL mode, as a worker holds it: its -wal and -shm exist.
        code = ("import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'stalwart_site.settings'); "
                "import django; django.setup(); from django.db import connection; c = connection.cursor(); "
                "c.execute('CREATE TABLE IF NOT EXISTS t (x)'); c.execute('INSERT INTO t VALUES (1)'); "
                "import pathlib, sys; sys.stdout.write(' '.join(sorted(p.name for p in pathlib.Path(os.environ["
                "'STALWART_VAR_DIR']).iterdir())))")
        listing = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True,
                                 text=True, timeout=120).stdout
    finally:
        os.umask(old)
    assert "stalwart.sqlite3-wal" in listing and "stalwart.sqlite3-shm" in listing, listing
    modes = _modes(var)
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert {"stalwart.sqlite3", "secret_key", "left-by-an-old-version.sqlite3", "sub"} <= set(modes)
    for name, mode in modes.items():
        expected = 0o700 if (var / name).is_dir() else 0o600
        assert mode & 0o077 == 0, (name, oct(mode))
        assert mode == expected or (var / name).is_dir(), (name, oct(mode))


def test_live_server_files_are_owner_only():
    from tests.live import live_server

    def loosen(server):
        stray = server.var_dir / "copied-in.pem"
        stray.write_text("x")
        stray.chmod(0o644)

    old = os.umask(0o022)
    try:
        with live_server(workers=1, prepare=loosen) as server:
            assert requests.get(server.url + "/healthz/ready", timeout=10).status_code == 200
            modes = _modes(server.var_dir)
    finally:
        os.umask(old)
    assert "copied-in.pem" in modes and "prometheus" in modes
    loose = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert not loose
