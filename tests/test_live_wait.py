"""tests.live.wait_until, the one server wait of the live tests and the benchmarks."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live import wait_until


def test_it_returns_the_probes_answer_once_it_stops_failing():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    tries = []

    def probe():
        tries.append(1)
        if len(tries) < 3:
            raise OSError("not listening yet")
        return "connected"

    try:
        assert wait_until(probe, proc, lambda: "never", errors=OSError) == "connected"
        assert len(tries) == 3
    finally:
        proc.stdin.close()
        proc.wait()


def test_a_process_that_exits_ends_the_wait_with_its_log():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()

    def probe():
        raise ConnectionRefusedError

    with pytest.raises(RuntimeError, match="the server's log"):
        wait_until(probe, proc, lambda: "the server's log", errors=OSError)


def test_an_error_it_was_not_told_to_wait_out_is_raised():
    with pytest.raises(ValueError):
        wait_until(lambda: int("x"), None, lambda: "", errors=OSError)
