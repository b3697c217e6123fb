"""A real server for end-to-end tests: gunicorn as production runs it, on its own database.

On SQLite the database is a file in a temporary directory; with DATABASE_URL set, a database of
its own is created on the same PostgreSQL server and dropped afterwards. The server process and
the test process share no memory, so the tests see exactly what a client would.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlsplit

import requests

_MARK = "@@JSON@@"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, url: str, env: dict, var_dir: Path):
        self.url = url
        self.env = env
        self.var_dir = var_dir

    def manage(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run manage.py against the server's database."""
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args], env=self.env, cwd=ROOT, capture_output=True,
            text=True, check=check, input=input, timeout=300,
        )

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code).stdout

    def shell_json(self, code: str):
        """Run `code` against the server's database; it must assign `result` (JSON-serialisable)."""
        out = self.shell(code + f"\nimport json as _j\nprint({_MARK!r} + _j.dumps(result))\n")
        lines = [line for line in out.splitlines() if line.startswith(_MARK)]
        assert len(lines) == 1, out
        return json.loads(lines[0][len(_MARK):])


@contextmanager
def _database(env: dict):
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield env
        return
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    name = f"stalwart_live_{secrets.token_hex(4)}"
    admin_dsn = dict(host=cfg["HOST"] or None, port=cfg["PORT"] or None, user=cfg["USER"] or None,
                     password=cfg["PASSWORD"] or None, dbname="postgres", autocommit=True)
    with psycopg.connect(**{k: v for k, v in admin_dsn.items() if v is not None or k == "autocommit"}) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = url.rsplit("/", 1)[0]
    try:
        yield {**env, "DATABASE_URL": f"{base}/{name}"}
    finally:
        with psycopg.connect(**{k: v for k, v in admin_dsn.items() if v is not None or k == "autocommit"}) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the migrated schema, built once per test process ---------------------------------------
# Each live server used to run `migrate` itself (tens of seconds on a loaded machine, for the
# same schema every time). The first server of a process migrates a template instead; every
# server then starts from a copy of it: the SQLite file copied, or on PostgreSQL a
# `CREATE DATABASE ... TEMPLATE`. The one row the migrations write from the environment, the
# default listener's address (network 0002: HOST and PORT), is rewritten for each server.
TEMPLATE_PORT = "1"
_templates: dict[str, str | Path] = {}


def _pg_admin(url: str):
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    dsn = dict(host=cfg["HOST"] or None, port=cfg["PORT"] or None, user=cfg["USER"] or None,
               password=cfg["PASSWORD"] or None, dbname="postgres")
    return psycopg.connect(**{k: v for k, v in dsn.items() if v is not None}, autocommit=True)


def _migrated_template(env: dict) -> str | Path:
    """The migrated template of this process: a SQLite file, or a PostgreSQL database's name."""
    url = os.environ.get("DATABASE_URL") or ""
    if url in _templates:
        return _templates[url]
    template_env = {**env, "PORT": TEMPLATE_PORT, "HOST": "127.0.0.1", "CACHE_KEY_PREFIX": f"tmpl{secrets.token_hex(3)}"}
    if url:
        name = f"stalwart_tmpl_{secrets.token_hex(4)}"
        with _pg_admin(url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop(name=name):
            with _pg_admin(url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        atexit.register(drop)
        template_env["DATABASE_URL"] = f"{url.rsplit('/', 1)[0]}/{name}"
        template: str | Path = name
    else:
        var = Path(tempfile.mkdtemp(prefix="stalwart-template-"))
        atexit.register(shutil.rmtree, var, True)
        template_env["STALWART_VAR_DIR"] = str(var)
        template = var / "stalwart.sqlite3"
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], env=template_env,
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    _templates[url] = template
    return template


def _listener_bind(env: dict) -> str:
    host, port = env.get("HOST", "127.0.0.1").strip("[]"), env.get("PORT", "8080")
    return json.dumps([f"[{host}]:{port}" if ":" in host else f"{host}:{port}"])


def _from_template(env: dict) -> None:
    """The server's database (SQLite under its var directory, or the empty PostgreSQL database
    _database() made) as a copy of the migrated template."""
    template = _migrated_template(env)
    bind = _listener_bind(env)
    if isinstance(template, Path):
        import sqlite3

        target = Path(env["STALWART_VAR_DIR"]) / "stalwart.sqlite3"
        # The backup API, not a file copy: the template may still hold part of its data in its WAL.
        with sqlite3.connect(template) as src, sqlite3.connect(target) as dst:
            src.backup(dst)
            dst.execute("UPDATE network_networklistener SET bind = ? WHERE name = 'http'", (bind,))
        return
    name = env["DATABASE_URL"].rsplit("/", 1)[1]
    with _pg_admin(env["DATABASE_URL"]) as conn:
        conn.execute(f'DROP DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE network_networklistener SET bind = %s::jsonb WHERE name = 'http'", (bind,))


def wait_until(probe, proc: subprocess.Popen, failure, errors=(requests.ConnectionError, requests.Timeout),
               timeout: float = 30):
    """probe()'s result once it stops raising `errors` (a server not listening yet: a loaded
    machine starts slowly); RuntimeError(failure()) when `proc` exits first or after `timeout`.
    The one wait of the live tests and the benchmarks (bench/harness.py, bench/cyrus.py)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except errors:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(failure()) from None
            time.sleep(0.2)


_collected: Path | None = None


def collected_static(env: dict) -> Path:
    """The static files, collected once per process and served by every live server (a symlink
    in its var directory): one collectstatic cost each server several seconds of its start."""
    global _collected
    if _collected is None or not _collected.is_dir():
        shared = Path(tempfile.mkdtemp(prefix="stalwart-static-"))
        atexit.register(shutil.rmtree, shared, True)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v0"],
                       env={**env, "STALWART_VAR_DIR": str(shared)}, cwd=ROOT, check=True, capture_output=True,
                       timeout=300)
        _collected = shared / "static"
    return _collected


@contextmanager
def live_server(workers: int = 2, extra_env: dict | None = None, migrate: bool = True, prepare=None,
                command: list[str] | None = None, ready_url: str | None = None):
    """extra_env may name its own DATABASE_URL (then used as it is, and migrated here); else the
    database starts as a copy of the process's migrated template. migrate=False serves a
    database that is not (or cannot be) migrated, e.g. an unreachable one. prepare(server) runs
    after the migrations, before the server starts; command replaces the gunicorn command line
    (e.g. manage.py serve), and ready_url is then the URL that answers once it is up."""
    with tempfile.TemporaryDirectory(prefix="stalwart-live-") as tmp:
        port = free_port()
        env = {
            **os.environ, "STALWART_VAR_DIR": tmp, "DEBUG": "false", "PORT": str(port), "HOST": "127.0.0.1",
            "PUBLIC_URL": f"http://127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers), "ACCESS_LOG": "",
            "CACHE_KEY_PREFIX": f"live{secrets.token_hex(3)}", **(extra_env or {}),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        own_database = "DATABASE_URL" in (extra_env or {})
        with (nullcontext(env) if own_database else _database(env)) as env:
            server = LiveServer(f"http://127.0.0.1:{port}", env, Path(tmp))
            if migrate and own_database:
                server.manage("migrate", "--noinput", "-v0")
            elif migrate:
                _from_template(env)
            (Path(tmp) / "static").symlink_to(collected_static(env))
            if prepare is not None:
                prepare(server)
            log = open(Path(tmp) / "gunicorn.log", "w")
            argv = command or [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")]
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: requests.get(ready_url or server.url + "/admin/login/", timeout=2, verify=False),
                           proc, lambda: (Path(tmp) / "gunicorn.log").read_text())
                yield server
            finally:
                stop_process(proc)
                log.close()


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL after ten seconds."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- holding a worker, whatever the serving model -------------------------------------------
class HeldWorker:
    """The worker that accepted a stalled connection, held until close()."""

    def __init__(self, sock: socket.socket, pid: int | None):
        self.sock, self.pid = sock, pid

    def close(self) -> None:
        self.sock.close()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.pid = None

    def __getattr__(self, name):
        return getattr(self.sock, name)


def connection_owner(server_port: int, client_port: int, wait: float = 5) -> int | None:
    """The pid of the server process holding the accepted end of our connection (found through
    /proc: the socket's inode, then the process with that inode open); None while none has
    accepted it."""
    deadline = time.monotonic() + wait
    while True:
        inode = None
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
                if local == server_port and remote == client_port and fields[9] != "0":
                    inode = fields[9]
        if inode is not None:
            target = f"socket:[{inode}]"
            for fd_dir in Path("/proc").glob("[0-9]*/fd"):
                try:
                    if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                        return int(fd_dir.parent.name)
                except OSError:  # gone, or not ours to read
                    continue
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] in "Tt"


@contextmanager
def paused(pid: int):
    """The process stopped (SIGSTOP) until the block ends (SIGCONT). It is seen stopped before
    the block starts: a worker that cannot accept, so that the connections opened meanwhile go to
    the other workers, whichever the kernel would have picked."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while not _stopped(pid):
            assert time.monotonic() < deadline, f"process {pid} never stopped"
            time.sleep(0.005)
        yield
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def on_two_workers(server_url: str, open_one, port_of_one) -> list:
    """Two connections held by two different worker processes of the server at `server_url`:
    open_one() opens one, port_of_one(it) is its local port. The first goes wherever the kernel
    puts it; its worker is then paused while the second opens, so the second cannot be on it."""
    server_port = host_port(server_url)[1]
    first = open_one()
    owner = connection_owner(server_port, port_of_one(first))
    assert owner is not None, "the first connection's worker was not found"
    with paused(owner):
        second = open_one()
        other = connection_owner(server_port, port_of_one(second))
    assert other is not None and other != owner, (owner, other)
    return [first, second]


@contextmanager
def stalled_connection(url: str):
    """A connection whose request headers never end, and the worker that accepted it held until
    the block ends (or the yielded object is closed): the next requests go to the other workers.

    A sync worker is held by the connection itself; an event-loop worker is not, so the
    worker that accepted it is stopped (SIGSTOP) and continued (SIGCONT) afterwards."""
    sock = socket.create_connection(host_port(url), timeout=10)
    sock.sendall(b"GET /jmap/session HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    held = HeldWorker(sock, None)
    try:
        pid = connection_owner(host_port(url)[1], sock.getsockname()[1])
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
            held.pid = pid
        else:
            time.sleep(0.4)  # a server we cannot see into: let a worker accept it
        yield held
    finally:
        held.close()


# --- speaking HTTP byte by byte, for what clients would never send --------------------------
def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def raw_http(url: str, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Send bytes as they are; return the status and the body of the response."""
    with socket.create_connection(host_port(url), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert m, data[:200]
    return int(m.group(1)), data.split(b"\r\n\r\n", 1)[-1]
