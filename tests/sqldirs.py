"""Real SQL directories for the tests: the reference's example schema, filled with a few
entries, in a SQLite file, a PostgreSQL database or a MariaDB database made for the test run and
dropped after it.

PostgreSQL and MariaDB run on loopback (.ci/run starts them when they are down); each store is
reached as its administrator (postgres, root) without a password, as on the CI machines.
"""
from __future__ import annotations

import contextlib
import secrets
import sqlite3

from accounts import hashing

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

SCHEMA = [
    "CREATE TABLE accounts (name VARCHAR(320) PRIMARY KEY, secret VARCHAR(512), description VARCHAR(255), "
    "type VARCHAR(32), active BOOLEAN DEFAULT TRUE)",
    "CREATE TABLE group_members (name VARCHAR(320), member_of VARCHAR(320))",
    "CREATE TABLE emails (name VARCHAR(320), address VARCHAR(320))",
]

ALICE_PASSWORD = "alice directory pass phrase"
CAROL_PASSWORD = "carol directory pass phrase"


# ALICE_PASSWORD in the crypt(3) formats, made by other implementations than the one verifying them
# (`openssl passwd -6/-5/-1 -salt saltsalt`, glibc/libxcrypt crypt() for the rest).
CRYPT_VECTORS = {
    "sha512crypt": "$6$saltsalt$/mCeu8bXDr8RDeD9RN6.fI7uoTj7AS74YAXOzYltpN5OUzSd7puy6wkzt/Ls0bQiIahb4ln9yUIBGJQET0T/z1",
    "sha256crypt": "$5$saltsalt$dj0vd0GTPjPvEJYjShYZD/o5y85sJ67hN3rCgf7LDc5",
    "sha256crypt-rounds": "$5$rounds=10000$saltsalt$zjPTqA31SV6pPSC4qBbVkojAWnFE12lKgNLNKGN8rnC",
    "md5crypt": "$1$saltsalt$jFwTnnLosj7hBxyzn.oi8.",
    "sha1crypt": "$sha1$40000$saltsalt$GEaIAwekjNeIon4tyIKllVVnGVdS",
    "bsdicrypt": "_J9..saltapLIxJsQdPc",
    "crypt-sha512": "{CRYPT}$6$saltsalt$/mCeu8bXDr8RDeD9RN6.fI7uoTj7AS74YAXOzYltpN5OUzSd7puy6wkzt/Ls0bQiIahb4ln9yUIBGJQET0T/z1",
    "crypt-des": "{CRYPT}abIzKsA61A0xU",
}

FORMATS = ("argon2id", "bcrypt", "scrypt", "pbkdf2", "sha", "ssha", "ssha512", "plain", *CRYPT_VECTORS)


def hash_as(password: str, fmt: str) -> str:
    """`password` stored in one of the reference's formats a directory may hold."""
    import base64
    import hashlib

    salt = b"saltsalt"
    if fmt in ("argon2id", "bcrypt", "scrypt", "pbkdf2"):
        return hashing.hash_secret(password, fmt)
    if fmt == "sha":
        return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    if fmt == "ssha":
        return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()
    if fmt == "ssha512":
        return "{SSHA512}" + base64.b64encode(hashlib.sha512(password.encode() + salt).digest() + salt).decode()
    if fmt == "plain":
        return password
    if fmt in CRYPT_VECTORS:
        if password != ALICE_PASSWORD:
            raise ValueError("the crypt vectors are of ALICE_PASSWORD")
        return CRYPT_VECTORS[fmt]
    raise ValueError(fmt)


def rows(fmt: str = "bcrypt") -> dict[str, list[tuple]]:
    alice = hash_as(ALICE_PASSWORD, fmt)
    return {
        "accounts": [
            ("alice@example.org", alice, "Alice Directory", "individual", True),
            ("carol@example.org", hashing.hash_secret(CAROL_PASSWORD, "bcrypt"), "Carol Directory", "individual", True),
            ("staff@example.org", "", "Staff group", "group", True),
            # The injection targets: a login quoting its way into the WHERE clause must not match.
            ("x", hashing.hash_secret("anything", "bcrypt"), "x", "individual", True),
        ],
        "group_members": [("alice@example.org", "staff@example.org"), ("alice@example.org", "sales"),
                          ("carol@example.org", "staff@example.org")],
        "emails": [("alice@example.org", "alice.d@example.org"), ("alice@example.org", "alice@elsewhere.test"),
                   ("alice@example.org", "taken@example.org")],
    }


def fill(conn, placeholder: str, fmt: str = "bcrypt") -> None:
    cur = conn.cursor()
    for statement in SCHEMA:
        cur.execute(statement)
    for table, values in rows(fmt).items():
        for row in values:
            marks = ", ".join([placeholder] * len(row))
            cur.execute(f"INSERT INTO {table} VALUES ({marks})", row)
    conn.commit()


def execute(store: dict, sql: str, params=()) -> None:
    """Run one statement in the store (the tests change a directory's rows with it)."""
    kind = store["kind"]
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(store["path"])) as conn:
            conn.execute(sql.replace("%s", "?"), params)
            conn.commit()
    elif kind == "postgresql":
        import psycopg

        with psycopg.connect(**PG, dbname=store["database"]) as conn:
            conn.execute(sql, params)
    else:
        import pymysql

        conn = pymysql.connect(**MYSQL, database=store["database"])
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
            conn.commit()
        finally:
            conn.close()


@contextlib.contextmanager
def sqlite_store(directory, fmt: str = "bcrypt"):
    path = str(directory / f"dir-{secrets.token_hex(4)}.sqlite3")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        fill(conn, "?", fmt)
    yield {"kind": "sqlite", "path": path}


@contextlib.contextmanager
def postgres_store(fmt: str = "bcrypt"):
    import psycopg

    name = f"stalwart_dirtest_{secrets.token_hex(4)}"
    with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(**PG, dbname=name) as conn:
            fill(conn, "%s", fmt)
        yield {"kind": "postgresql", "host": PG["host"], "port": PG["port"], "database": name,
               "username": PG["user"]}
    finally:
        with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def mysql_store(fmt: str = "bcrypt"):
    import pymysql

    name = f"stalwart_dirtest_{secrets.token_hex(4)}"
    admin = pymysql.connect(**MYSQL, autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        conn = pymysql.connect(**MYSQL, database=name)
        try:
            fill(conn, "%s", fmt)
        finally:
            conn.close()
        yield {"kind": "mysql", "host": MYSQL["host"], "port": MYSQL["port"], "database": name,
               "username": MYSQL["user"]}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def sql_config(made: dict, **overrides):
    """The directories.base config of a store made above."""
    from datetime import timedelta

    from directories.base import SqlConfig, SqlStore

    store_fields = {"kind": made["kind"], "timeout": timedelta(seconds=5)}
    if made["kind"] == "sqlite":
        store_fields["path"] = made["path"]
    else:
        store_fields.update(host=made["host"], port=made["port"], database=made["database"],
                            auth_username=made["username"])
    store_fields.update(overrides.pop("store", {}))
    return SqlConfig(store=SqlStore(**store_fields), **overrides)


def directory_row(store: dict, description: str = "SQL directory", **fields):
    """A Directory row (kind Sql) over a store made above, saved."""
    from datetime import timedelta

    from accounts.models import Directory

    values = {"description": description, "kind": Directory.Kind.SQL, "sql_store": store["kind"],
              "sql_timeout": timedelta(seconds=5)}
    if store["kind"] == "sqlite":
        values["sql_path"] = store["path"]
    else:
        values.update(sql_host=store["host"], sql_port=store["port"], sql_database=store["database"],
                      sql_auth_username=store["username"])
    values.update(fields)
    return Directory.objects.create(**values)
