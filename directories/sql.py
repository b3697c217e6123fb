"""The SQL directory: accounts kept in a table of this server's own database, PostgreSQL,
MariaDB/MySQL or SQLite, read with the administrator's queries.

The queries name the login with the reference's positional `$1`. It is rewritten to the
driver's placeholder and always bound as a parameter: a login is never part of the SQL text,
so quotes or wildcards in it match nothing but themselves.

Connections are pooled per directory (at most `poolMaxConnections`, shared by the threads of a
worker). A connection that cannot be opened, or is lost, makes the directory unavailable
(`DirectoryUnavailable`); a query the database refuses, or an answer without the configured
columns, is a `DirectoryError`.
"""
from __future__ import annotations

import queue
import re
import sqlite3
import ssl
import threading
from urllib.parse import quote

from .base import DirectoryError, DirectoryUnavailable, ExternalPrincipal, SqlConfig

_PARAM = re.compile(r"\$1(?!\d)")


def rewrite(query: str, placeholder: str, escape_percent: bool) -> tuple[str, int]:
    """`query` with each `$1` replaced by `placeholder`, and how many parameters to bind.

    Drivers with the `%s` style read a literal `%` (a LIKE pattern) as a placeholder: it is
    doubled for them first.
    """
    if escape_percent:
        query = query.replace("%", "%%")
    count = len(_PARAM.findall(query))
    return _PARAM.sub(placeholder, query), count


class _Driver:
    """How to open, query and classify the errors of one kind of store."""

    placeholder = "%s"
    escape_percent = True

    def __init__(self, config: SqlConfig):
        self.store = config.store
        self.timeout = self.store.timeout.total_seconds() if self.store.timeout else None

    def connect(self):
        raise NotImplementedError

    def lost(self, exc: Exception) -> bool:
        """True when `exc` (raised by a query) means the connection is gone, not the query wrong."""
        return False

    def close(self, conn) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
            pass

    def query(self, conn, sql: str, params: list) -> tuple[list[str], list[tuple]]:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params)
            names = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()
        self.end(conn)
        return names, rows

    def end(self, conn) -> None:
        """Leave the connection outside any transaction, so that the next query sees new rows."""
        conn.rollback()


class _Postgres(_Driver):
    def connect(self):
        import psycopg  # only a directory on PostgreSQL needs it here

        s = self.store
        params = {"host": s.host or "localhost", "port": s.port or 5432, "dbname": s.database}
        if s.auth_username:
            params["user"] = s.auth_username
        secret = s.auth_secret.resolve()
        if secret:
            params["password"] = secret
        if self.timeout:
            params["connect_timeout"] = max(1, int(self.timeout))
        if s.use_tls:
            params["sslmode"] = "require" if s.allow_invalid_certs else "verify-full"
            if not s.allow_invalid_certs:
                # libpq's default trust is ~/.postgresql/root.crt, which a server seldom has.
                params["sslrootcert"] = "system"
        if s.options:
            params["options"] = s.options
        try:
            return psycopg.connect(**params)
        except psycopg.OperationalError as exc:
            raise DirectoryUnavailable(f"cannot connect to PostgreSQL: {_first_line(exc)}") from None

    def lost(self, exc):
        import psycopg  # only a directory on PostgreSQL needs it here

        return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.QueryCanceled)


class _MySql(_Driver):
    def connect(self):
        import pymysql  # only a directory on MySQL or MariaDB needs it

        s = self.store
        params = {"host": s.host or "localhost", "port": s.port or 3306, "database": s.database or None,
                  "user": s.auth_username or "", "password": s.auth_secret.resolve() or "", "charset": "utf8mb4"}
        if self.timeout:
            params.update(connect_timeout=self.timeout, read_timeout=self.timeout, write_timeout=self.timeout)
        if s.use_tls:
            # A context, not pymysql's ssl dict: given no CA file, the dict turns verification
            # off altogether, so useTls alone would accept any certificate.
            params["ssl"] = _tls_context(s.allow_invalid_certs)
        try:
            return pymysql.connect(**params)
        except pymysql.err.OperationalError as exc:
            raise DirectoryUnavailable(f"cannot connect to MySQL: {_first_line(exc)}") from None

    def lost(self, exc):
        import pymysql  # only a directory on MySQL or MariaDB needs it

        # Client-side error codes (2000 and up: gone away, lost connection) mean the link broke;
        # the server's own (below 2000: unknown column, syntax) mean the query is wrong.
        if isinstance(exc, (pymysql.err.InterfaceError,)):
            return True
        code = exc.args[0] if isinstance(exc, pymysql.err.OperationalError) and exc.args else None
        return isinstance(code, int) and code >= 2000


class _Sqlite(_Driver):
    placeholder = "?"
    escape_percent = False

    def connect(self):
        path = self.store.path
        if not path:
            raise DirectoryError("the SQLite directory has no path")
        try:
            # mode=ro: a missing file is an outage, not a new empty database; the directory is
            # only read. Shared by the worker's threads, one at a time (the pool).
            conn = sqlite3.connect(f"file:{_uri_path(path)}?mode=ro", uri=True, timeout=self.timeout or 5.0,
                                   check_same_thread=False)
            conn.execute("SELECT 1").fetchall()
            return conn
        except sqlite3.Error as exc:
            raise DirectoryUnavailable(f"cannot open the SQLite database: {exc}") from None

    def lost(self, exc):
        return isinstance(exc, sqlite3.OperationalError) and any(
            word in str(exc) for word in ("locked", "unable to open", "disk I/O"))


class _Default(_Driver):
    """This server's own database, through Django's connection of the calling thread."""

    def connect(self):
        return None

    def query(self, conn, sql, params):
        from django.db import DatabaseError, connection, transaction  # the Default store only

        try:
            # A savepoint: a wrong query must not abort the caller's transaction (PostgreSQL).
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                names = [d[0] for d in cursor.description or ()]
                return names, cursor.fetchall() if cursor.description else []
        except DatabaseError as exc:
            raise DirectoryError(f"the query failed: {_first_line(exc)}") from None


_DRIVERS = {"postgresql": _Postgres, "mysql": _MySql, "sqlite": _Sqlite, "default": _Default}


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _tls_context(allow_invalid_certs: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if allow_invalid_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _uri_path(path: str) -> str:
    return quote(path, safe="/")


class _Pool:
    """At most `size` connections, idle ones reused; a caller waits `timeout` for a free one."""

    def __init__(self, driver: _Driver, size: int, timeout: float | None):
        self.driver = driver
        self.slots = threading.BoundedSemaphore(max(1, size))
        self.idle: queue.LifoQueue = queue.LifoQueue()
        self.timeout = timeout
        self.closed = False

    def acquire(self):
        if not self.slots.acquire(timeout=self.timeout if self.timeout else None):
            raise DirectoryUnavailable("no free connection to the directory's database (pool exhausted)")
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return self.driver.connect()
        except BaseException:
            self.slots.release()
            raise

    def release(self, conn, broken: bool = False) -> None:
        if broken or self.closed:
            if conn is not None:
                self.driver.close(conn)
        else:
            self.idle.put(conn)
        self.slots.release()

    def close(self) -> None:
        self.closed = True
        while True:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                return
            if conn is not None:
                self.driver.close(conn)


class SqlDirectory:
    """A `directories.base.Backend` over SQL queries."""

    def __init__(self, config: SqlConfig):
        self.config = config
        kind = config.store.kind
        if kind not in _DRIVERS:
            raise DirectoryError(f"unknown SQL store {kind!r}")
        self.driver = _DRIVERS[kind](config)
        self.pool = _Pool(self.driver, config.store.pool_max_connections, self.driver.timeout)
        # How many queries this directory ran: the tests prove with it that a cached verdict
        # does not reach the directory.
        self.queries = 0
        self._lock = threading.Lock()

    # --- the Backend protocol ---------------------------------------------------------------
    def authenticate(self, login: str, secret: str) -> ExternalPrincipal | None:
        # The caller verifies the returned hash with the server's verifiers (accounts.hashing).
        return self.lookup(login)

    def lookup(self, login: str) -> ExternalPrincipal | None:
        c = self.config
        names, rows = self._run(c.query_login, login)
        if not rows:
            return None
        row = dict(zip((n.lower() for n in names), rows[0]))
        email = self._column(row, c.column_email, "columnEmail")
        secret = self._column(row, c.column_secret, "columnSecret")
        kind = "user"
        if c.column_class:
            value = self._column(row, c.column_class, "columnClass")
            if isinstance(value, str) and value.strip().lower() == "group":
                kind = "group"
        description = ""
        if c.column_description:
            value = self._column(row, c.column_description, "columnDescription")
            description = "" if value is None else str(value)
        emails = [_text(email).lower()] if email else [login]
        if c.query_email_aliases:
            emails += [_text(r[0]).lower() for r in self._run(c.query_email_aliases, login)[1] if r and r[0]]
        groups = []
        if c.query_member_of:
            groups = [_text(r[0]).lower() for r in self._run(c.query_member_of, login)[1] if r and r[0]]
        return ExternalPrincipal(
            name=login, kind=kind, description=description, emails=tuple(dict.fromkeys(emails)),
            groups=tuple(dict.fromkeys(groups)), secret_hash=_text(secret) if secret is not None else None,
            verified=False)

    def authenticate_bearer(self, token: str) -> ExternalPrincipal | None:
        return None

    def close(self) -> None:
        self.pool.close()

    # --- queries ----------------------------------------------------------------------------
    @staticmethod
    def _column(row: dict, name: str, prop: str):
        key = name.lower()
        if key not in row:
            raise DirectoryError(f"the login query returns no column {name!r} ({prop})")
        return row[key]

    def _run(self, query: str, login: str) -> tuple[list[str], list[tuple]]:
        sql, count = rewrite(query, self.driver.placeholder, self.driver.escape_percent)
        if count == 0:
            raise DirectoryError("the query has no $1 parameter")
        with self._lock:
            self.queries += 1
        conn = self.pool.acquire()
        broken = False
        try:
            return self.driver.query(conn, sql, [login] * count)
        except (DirectoryError, DirectoryUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - each driver's own error classes, sorted below
            if self.driver.lost(exc):
                broken = True
                raise DirectoryUnavailable(f"the directory's database went away: {_first_line(exc)}") from None
            # The query is wrong: the connection may be in a failed transaction; start afresh.
            broken = True
            raise DirectoryError(f"the query failed: {_first_line(exc)}") from None
        finally:
            self.pool.release(conn, broken)


def _text(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
