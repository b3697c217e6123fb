"""What each test process needs of its own, set in the environment before Django reads its settings.

pytest.ini loads this module with `-p`, so it is imported before pytest-django sets Django up (a
conftest.py would come too late). `make test TEST_WORKERS=2` runs the suite on two pytest-xdist workers: two
processes, each with its own test database (pytest-django suffixes its name with the worker's
id), and, from here:

- its own var directory, `<var>/test-gw0`, … (trace files, certificates, the secret key);
- its own Redis database, REDIS_URL's number plus the worker's index: every test empties its
  cache with FLUSHDB (conftest.py), which must not reach the other worker's counters;
- its own cache key prefix: the push and trace channels derive from it (settings.PUSH_CHANNEL),
  and Redis channels are shared by all the databases of a server;
- LIVE_REDIS_URL, the Redis the live tests that need one whatever the run use (cross-worker
  limits on SQLite too; tests/test_jmap_live.py): database 14 by default, plus the index.

Outside xdist (`pytest` without -n, or the controller of a parallel run) the index is 0 and only
the defaults are set. Every gunicorn the tests start runs without its control socket: its fixed
path (~/.gunicorn/gunicorn.ctl) would be shared by all the servers running at once.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIVE_REDIS_DEFAULT = "redis://127.0.0.1:6379/14"


def worker_index() -> int:
    """0 for gw0 (or no worker), 1 for gw1, …"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def shifted_redis(url: str, by: int) -> str:
    """`url` with its database number (0 when it names none) raised by `by`."""
    m = re.match(r"^(rediss?://[^/?#]*)(?:/(\d*))?(.*)$", url)
    if not m:
        raise ValueError(f"not a redis:// URL: {url!r}")
    head, db, rest = m.groups()
    return f"{head}/{int(db or 0) + by}{rest}"


def _set_up() -> None:
    gunicorn_args = os.environ.get("GUNICORN_CMD_ARGS", "")
    if "--no-control-socket" not in gunicorn_args:
        os.environ["GUNICORN_CMD_ARGS"] = f"{gunicorn_args} --no-control-socket".strip()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    index = worker_index()
    os.environ["LIVE_REDIS_URL"] = shifted_redis(os.environ.get("LIVE_REDIS_URL") or LIVE_REDIS_DEFAULT, index)
    if not worker:
        return
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = shifted_redis(os.environ["REDIS_URL"], index)
    os.environ["CACHE_KEY_PREFIX"] = f"{os.environ.get('CACHE_KEY_PREFIX') or 'stalwart'}-{worker}"
    var = Path(os.environ.get("STALWART_VAR_DIR") or ROOT / "var") / f"test-{worker}"
    os.environ["STALWART_VAR_DIR"] = str(var)


_set_up()
