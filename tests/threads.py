"""Running a target in several threads at once, for the concurrency tests of the stores."""
from __future__ import annotations

import threading

import pytest
from django.db import connection


def skip_on_memory_sqlite() -> None:
    """Threads cannot share SQLite's in-memory test database: such a test runs on a file or a server."""
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith("file:memorydb"):
        pytest.skip("the in-memory test database cannot be shared by threads")


def run_together(target, count: int) -> list:
    """target(n) for n in range(count), each in a thread of its own, all released at once by a
    barrier; the results in order, an exception in place of a result that raised."""
    start = threading.Barrier(count)
    results: list = [None] * count

    def run(n: int):
        try:
            start.wait()
            results[n] = target(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            results[n] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results
