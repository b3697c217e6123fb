"""SQLite's WAL checkpoint off the request path.

In WAL mode every commit appends the pages it changed to the -wal file, and the checkpoint
copies them back into the database file and syncs it. By default the connection whose commit
takes the WAL past `wal_autocheckpoint` pages (1,000) runs the checkpoint itself: a PUT of a
calendar event writes about 18 pages, so one request in about 55 paid for the copy and the
sync of the others (the tail of `bench/dav.py`'s PUT).

A serving process (a gunicorn worker, an LMTP worker) starts `start()` once: a daemon thread
with its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` every
`SQLITE_CHECKPOINT_INTERVAL` seconds. PASSIVE neither waits for nor blocks readers and
writers; the sqlite3 module lets go of the interpreter lock while SQLite copies and syncs, so
the requests of the process go on. The request connections keep a `wal_autocheckpoint` of
`SQLITE_WAL_AUTOCHECKPOINT` pages (settings.py) as the backstop, high enough that with the
thread running they never reach it, and bounding the WAL where no thread runs (manage.py
commands, the tests). PostgreSQL needs none of this: `start()` does nothing there.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)

THREAD_NAME = "sqlite-checkpoint"


def database_file() -> str | None:
    """The path of the default database when it is an SQLite file, else None."""
    db = connections["default"]
    if db.vendor != "sqlite":
        return None
    name = str(db.settings_dict["NAME"])
    if db.is_in_memory_db() or not name:
        return None
    return name


def start(interval: float | None = None) -> threading.Thread | None:
    """Start the checkpoint thread of this process (once); None where there is nothing to do."""
    interval = settings.SQLITE_CHECKPOINT_INTERVAL if interval is None else interval
    path = database_file()
    if path is None or interval <= 0:
        return None
    for thread in threading.enumerate():
        if thread.name == THREAD_NAME and thread.is_alive():
            return thread
    thread = threading.Thread(target=_run, args=(path, interval), name=THREAD_NAME, daemon=True)
    thread.start()
    return thread


def _run(path: str, interval: float, stop: threading.Event | None = None) -> None:
    """Checkpoint `path` every `interval` seconds, until `stop` is set (never, in a server)."""
    failing = False
    db = None
    stop = stop or threading.Event()
    while not stop.wait(interval):
        try:
            if db is None:
                # mode=rw: a database file that went away is not made again, empty.
                db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True, isolation_level=None,
                                     check_same_thread=False)
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            failing = False
        except sqlite3.Error as exc:
            if not failing:  # once per failing spell, not every interval
                log.warning("SQLite checkpoint of %s failed (%s); the commits checkpoint meanwhile", path, exc)
            failing = True
            if db is not None:
                db.close()
                db = None
    if db is not None:
        db.close()
