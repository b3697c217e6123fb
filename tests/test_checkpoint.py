"""SQLite's WAL checkpoint off the request path (stalwart_site/checkpoint.py): the request
connections checkpoint only past SQLITE_WAL_AUTOCHECKPOINT pages, a serving process's thread
copies the WAL back meanwhile (so the log is reused, not grown), and gunicorn's workers start it."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from stalwart_site import checkpoint
from tests.live import ROOT


def _filled(path, rows: int) -> None:
    """`rows` commits of about a page each, from a connection that never checkpoints by itself."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(rows):
        db.execute("INSERT INTO t (v) VALUES (randomblob(3000))")
    db.close()


def _log_size(path) -> int:
    return os.path.getsize(f"{path}-wal")


def test_the_thread_copies_the_log_back_so_that_it_is_reused(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    # Kept open to the end, as a server's connections are: the last one to close removes the log.
    _filled(path, 100)
    grown = _log_size(path)
    _filled(path, 100)  # nothing copies the log back: it grows on
    assert _log_size(path) > 1.8 * grown
    stop = threading.Event()
    thread = threading.Thread(target=checkpoint._run, args=(path, 0.05, stop), daemon=True)
    thread.start()
    try:
        size = _log_size(path)

        # Once all is copied back, new commits write the log from its start: it stops growing.
        for _ in range(200):
            _filled(path, 10)
            if _log_size(path) == size:
                break
            size = _log_size(path)
            time.sleep(0.05)
        else:
            pytest.fail("the log kept growing: nothing copied it back")
    finally:
        stop.set()
        thread.join(5)
        db.close()
    assert not thread.is_alive()


@pytest.mark.django_db
def test_request_connections_checkpoint_only_past_the_backstop():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's setting")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == settings.SQLITE_WAL_AUTOCHECKPOINT == 10000


PROBE = """
import os, sys, threading, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
import importlib.util
spec = importlib.util.spec_from_file_location("gconf", "gunicorn.conf.py")
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)
conf.post_worker_init(None)
conf.post_worker_init(None)  # a second call starts no second thread
names = [t.name for t in threading.enumerate()]
print(names.count("sqlite-checkpoint"))
"""


def test_a_gunicorn_worker_starts_one_checkpoint_thread(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={**env, "STALWART_VAR_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1"]


def test_nothing_to_do_without_a_database_file(settings):
    # The test database of a run is in memory on SQLite, a server on PostgreSQL: no thread.
    assert checkpoint.database_file() is None
    assert checkpoint.start(interval=1) is None


def test_a_database_file_that_went_away_is_not_made_again(tmp_path):
    path = tmp_path / "gone.sqlite3"
    stop = threading.Event()
    thread = threading.Thread(target=checkpoint._run, args=(str(path), 0.02, stop), daemon=True)
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join(5)
    assert not path.exists()
