"""The SQL directory against real databases: SQLite, PostgreSQL and MariaDB, each holding the
reference's example schema in a database made for this module and dropped after it, plus this
server's own database (the Default store).
"""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from accounts import hashing
from directories.base import DirectoryError, DirectoryUnavailable, SqlStore, build
from directories.sql import SqlDirectory, rewrite
from tests import sqldirs

STORES = ("sqlite", "postgresql", "mysql")


@pytest.fixture(scope="module", params=STORES)
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        ctx = sqldirs.sqlite_store(tmp_path_factory.mktemp("sqldir"))
    elif request.param == "postgresql":
        ctx = sqldirs.postgres_store()
    else:
        ctx = sqldirs.mysql_store()
    with ctx as made:
        yield made


@pytest.fixture
def directory(store):
    backend = build(sqldirs.sql_config(store))
    assert isinstance(backend, SqlDirectory)
    yield backend
    backend.close()


def test_an_entry_with_its_aliases_groups_and_hash(directory):
    alice = directory.authenticate("alice@example.org", sqldirs.ALICE_PASSWORD)
    assert alice.name == "alice@example.org"
    assert alice.kind == "user" and alice.description == "Alice Directory"
    assert alice.emails == ("alice@example.org", "alice.d@example.org", "alice@elsewhere.test", "taken@example.org")
    assert set(alice.groups) == {"staff@example.org", "sales"}
    # The backend hands the hash back; the accounts layer verifies it.
    assert alice.verified is False
    assert hashing.verify_secret(sqldirs.ALICE_PASSWORD, alice.secret_hash)
    assert not hashing.verify_secret("wrong", alice.secret_hash)


def test_a_group_entry_and_an_unknown_login(directory):
    assert directory.lookup("staff@example.org").kind == "group"
    assert directory.lookup("nobody@example.org") is None


@pytest.mark.parametrize("login", ["x' OR '1'='1", "' OR 1=1 --", "*", "%", "alice@example.org' --",
                                   "x'; DROP TABLE accounts; --"])
def test_a_login_is_bound_never_interpolated(directory, login):
    assert directory.lookup(login) is None
    # The table is still there and the real entries still match.
    assert directory.lookup("alice@example.org") is not None


def test_like_patterns_in_a_query_stay_literal(store):
    # A `%` in the administrator's query is not a placeholder for the %s-style drivers.
    config = sqldirs.sql_config(store, query_login="SELECT name, secret, description, type FROM accounts "
                                                   "WHERE name = $1 AND name LIKE '%@example.org'")
    backend = build(config)
    try:
        assert backend.lookup("alice@example.org").name == "alice@example.org"
        assert backend.lookup("%") is None
    finally:
        backend.close()


def test_a_query_missing_a_configured_column_is_a_directory_error(store):
    backend = build(sqldirs.sql_config(store, column_secret="password"))
    try:
        with pytest.raises(DirectoryError, match="password"):
            backend.lookup("alice@example.org")
    finally:
        backend.close()


def test_a_query_the_database_refuses_is_a_directory_error(store):
    backend = build(sqldirs.sql_config(store, query_login="SELECT nope FROM accounts WHERE name = $1"))
    try:
        with pytest.raises(DirectoryError):
            backend.lookup("alice@example.org")
        # The connection given back after the error still works for a correct query.
        backend.config = sqldirs.sql_config(store)
        assert backend.lookup("alice@example.org") is not None
    finally:
        backend.close()


def test_a_query_without_its_parameter_is_refused(store):
    backend = build(sqldirs.sql_config(store, query_login="SELECT name, secret, description, type FROM accounts"))
    try:
        with pytest.raises(DirectoryError, match=r"\$1"):
            backend.lookup("alice@example.org")
    finally:
        backend.close()


def test_an_unreachable_database_is_unavailable(store, tmp_path):
    if store["kind"] == "sqlite":
        config = sqldirs.sql_config(store, store={"path": str(tmp_path / "missing.sqlite3")})
    else:
        # A loopback port nothing listens on: the connection is refused at once.
        config = sqldirs.sql_config(store, store={"port": 9})
    backend = build(config)
    try:
        with pytest.raises(DirectoryUnavailable):
            backend.authenticate("alice@example.org", "x")
    finally:
        backend.close()
    assert not (tmp_path / "missing.sqlite3").exists()  # never created by the attempt


def test_the_pool_holds_at_most_its_connections(store):
    config = sqldirs.sql_config(store)
    config = replace(config, store=replace(config.store, pool_max_connections=1, timeout=timedelta(seconds=0.3)))
    backend = build(config)
    try:
        held = backend.pool.acquire()
        with pytest.raises(DirectoryUnavailable, match="pool"):
            backend.lookup("alice@example.org")
        backend.pool.release(held)
        assert backend.lookup("alice@example.org") is not None
        # The one connection is reused, not reopened.
        assert backend.pool.idle.qsize() == 1
    finally:
        backend.close()


def test_threads_share_the_pool(store):
    config = sqldirs.sql_config(store)
    config = replace(config, store=replace(config.store, pool_max_connections=2))
    backend = build(config)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(backend.lookup("carol@example.org").name)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        backend.close()
    assert errors == [] and results == ["carol@example.org"] * 30
    assert backend.pool.idle.qsize() <= 2


def test_a_changed_row_is_seen_by_a_pooled_connection(store):
    backend = build(sqldirs.sql_config(store))
    try:
        assert backend.lookup("carol@example.org").description == "Carol Directory"
        sqldirs.execute(store, "UPDATE accounts SET description = %s WHERE name = %s",
                        ("Carol Renamed", "carol@example.org"))
        assert backend.lookup("carol@example.org").description == "Carol Renamed"
    finally:
        sqldirs.execute(store, "UPDATE accounts SET description = %s WHERE name = %s",
                        ("Carol Directory", "carol@example.org"))
        backend.close()


@pytest.mark.parametrize("fmt", sqldirs.FORMATS)
def test_every_hash_format_of_the_reference_verifies(tmp_path, fmt):
    with sqldirs.sqlite_store(tmp_path, fmt) as made:
        backend = build(sqldirs.sql_config(made))
        try:
            alice = backend.authenticate("alice@example.org", sqldirs.ALICE_PASSWORD)
        finally:
            backend.close()
    assert hashing.verify_secret(sqldirs.ALICE_PASSWORD, alice.secret_hash)
    assert not hashing.verify_secret("!" + sqldirs.ALICE_PASSWORD, alice.secret_hash)
    if fmt != "crypt-des":  # traditional DES crypt reads the first 8 characters only
        assert not hashing.verify_secret(sqldirs.ALICE_PASSWORD + "!", alice.secret_hash)


def test_the_rewrite_binds_every_occurrence():
    assert rewrite("SELECT a FROM t WHERE x = $1 OR y = $1", "?", False) == (
        "SELECT a FROM t WHERE x = ? OR y = ?", 2)
    assert rewrite("SELECT '5%' FROM t WHERE x = $1", "%s", True) == ("SELECT '5%%' FROM t WHERE x = %s", 1)
    # $10 is not $1.
    assert rewrite("SELECT $10 FROM t", "?", False) == ("SELECT $10 FROM t", 0)


@pytest.mark.django_db
def test_the_default_store_is_this_servers_database():
    from django.db import connection

    with connection.cursor() as cur:
        for statement in sqldirs.SCHEMA:
            cur.execute(statement)
        cur.execute("INSERT INTO accounts VALUES (%s, %s, %s, %s, %s)",
                    ("dora@example.org", hashing.hash_secret("dora pass", "bcrypt"), "Dora", "individual", True))
    from directories.base import SqlConfig

    backend = build(SqlConfig(store=SqlStore(kind="default")))
    try:
        dora = backend.authenticate("dora@example.org", "dora pass")
        assert dora.description == "Dora" and hashing.verify_secret("dora pass", dora.secret_hash)
        assert backend.lookup("x' OR '1'='1") is None
        # A wrong query is a DirectoryError, and leaves the caller's transaction usable.
        backend.config = replace(backend.config, query_login="SELECT nope FROM accounts WHERE name = $1")
        with pytest.raises(DirectoryError):
            backend.lookup("dora@example.org")
        with connection.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM accounts")
            assert cur.fetchone()[0] == 1
    finally:
        backend.close()


class _TlsGreeter:
    """A stand-in MySQL server that only greets, offers TLS with a self-signed certificate and
    records whether the client completed the TLS handshake (the shared MariaDB has no TLS)."""

    # CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION; upper half: CLIENT_PLUGIN_AUTH
    GREETING = (b"\x0a" + b"5.7.0-greeter\x00" + b"\x01\x00\x00\x00" + b"abcdefgh\x00"
                + (0x8A00).to_bytes(2, "little") + b"\x21" + b"\x02\x00" + (0x0008).to_bytes(2, "little")
                + bytes([21]) + bytes(10) + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")

    def __init__(self, folder):
        import socket
        import ssl

        from tests.slapd import _self_signed

        cert, key = _self_signed(folder)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes: list[bool] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import ssl

        sock, _ = self.listener.accept()
        with sock:
            sock.settimeout(5)
            sock.sendall(len(self.GREETING).to_bytes(3, "little") + b"\x00" + self.GREETING)
            header = sock.recv(4)  # the client's SSLRequest
            sock.recv(int.from_bytes(header[:3], "little"))
            try:
                with self.context.wrap_socket(sock, server_side=True):
                    self.handshakes.append(True)
            except (ssl.SSLError, OSError):
                self.handshakes.append(False)


@pytest.mark.parametrize("allow_invalid", [False, True])
def test_mysql_over_tls_checks_the_certificate_unless_told_not_to(tmp_path, allow_invalid):
    server = _TlsGreeter(tmp_path)
    config = sqldirs.sql_config({"kind": "mysql", "host": "127.0.0.1", "port": server.port,
                                 "database": "stalwart", "username": "stalwart"},
                                store={"use_tls": True, "allow_invalid_certs": allow_invalid})
    backend = build(config)
    try:
        # Either way this server never logs anyone in: the login is unavailable.
        with pytest.raises(DirectoryUnavailable):
            backend.lookup("alice@example.org")
    finally:
        backend.close()
    server.thread.join(5)
    server.listener.close()
    # A self-signed certificate must stop the client before it sends anything more.
    assert server.handshakes == [allow_invalid]
