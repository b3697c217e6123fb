"""`manage.py lmtp --workers N`: the parent binds, N forked workers accept on the same socket,
each filing its own messages; a worker that dies is replaced, and SIGTERM ends them all."""
from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, free_port, live_server, stop_process, wait_until

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
CORE, MAIL = "urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"
SETUP = """
from accounts import services
from accounts.models import Domain
dom, _ = Domain.objects.get_or_create(name="example.org")
result = services.create_account({"name": "dora", "domain": dom.pk, "roles_mode": "user", "kind": "user"},
                                 "test", password=%r).pk
""" % PASSWORD


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def subjects(server) -> list[str]:
    auth = ("dora@example.org", PASSWORD)
    session = requests.get(server.url + "/jmap/session", auth=auth, timeout=30).json()
    account = session["primaryAccounts"][MAIL]
    resp = requests.post(server.url + "/jmap/", auth=auth, timeout=30, json={"using": [CORE, MAIL], "methodCalls": [
        ["Email/query", {"accountId": account}, "q"],
        ["Email/get", {"accountId": account, "properties": ["subject"],
                       "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "g"]]})
    return sorted(e["subject"] for e in resp.json()["methodResponses"][1][1]["list"])


def send(port: int, subjects_: list[str]) -> None:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("mta.example.net")
        for subject in subjects_:
            message = f"From: x@example.net\r\nTo: dora@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n"
            assert client.sendmail("x@example.net", ["dora@example.org"], message.encode()) == {}


@pytest.fixture(scope="module")
def server():
    with live_server(workers=1) as server:
        server.shell_json(SETUP)
        yield server


def start(server, *extra) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "lmtp", "--port", str(port), *extra],
                            cwd=ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close(), proc,
               lambda: proc.stdout.read().decode(), errors=(OSError,), timeout=120)
    return proc, port


def test_workers_share_the_socket_are_replaced_and_stop_together(server):
    proc, port = start(server, "--workers", "2")
    try:
        assert re.search(rb"LMTP listening on 127\.0\.0\.1:\d+ \(2 workers\)", proc.stdout.readline())
        wait_until(lambda: len(children(proc.pid)) == 2 or None, proc, lambda: "two workers", timeout=30)
        first = children(proc.pid)

        # Four sessions at once, spread over the workers by the kernel: every message is filed once.
        batches = [[f"batch {b} message {i}" for i in range(5)] for b in range(4)]
        with ThreadPoolExecutor(4) as pool:
            for future in [pool.submit(send, port, batch) for batch in batches]:
                future.result()
        assert subjects(server) == sorted(s for batch in batches for s in batch)

        # A worker killed outright is replaced; the listener goes on taking mail.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: (len(children(proc.pid)) == 2 and victim not in children(proc.pid)) or None, proc,
                   lambda: "a replacement worker", timeout=30)
        send(port, ["after the replacement"])
        assert "after the replacement" in subjects(server)

        workers = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers), "a worker outlived the listener"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        stop_process(proc)


def serving_pid(client: smtplib.LMTP, workers: set[int]) -> int | None:
    """The worker whose descriptor table holds the server side of `client`'s connection."""
    mine, theirs = client.sock.getsockname()[1], client.sock.getpeername()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), fields[3]
        if local == theirs and remote == mine and state == "01":  # the server's end, established
            inode = fields[9]
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def test_sessions_spread_over_the_workers(server):
    """An idle worker takes the next connection even though a busy one's event loop could
    accept it too: each session held open, and the next goes to the worker with fewer."""
    proc, port = start(server, "--workers", "2")
    try:
        wait_until(lambda: len(children(proc.pid)) == 2 or None, proc, lambda: "two workers", timeout=30)
        workers = children(proc.pid)
        clients = []
        try:
            for _ in range(8):
                client = smtplib.LMTP("127.0.0.1", port)
                client.ehlo("mta.example.net")
                clients.append(client)
            owners = [serving_pid(c, workers) for c in clients]
            assert None not in owners
            assert sorted(owners.count(pid) for pid in workers) == [4, 4], owners
        finally:
            for client in clients:
                client.quit()
    finally:
        stop_process(proc)


def test_one_worker_runs_in_the_listener_itself(server):
    proc, port = start(server, "--workers", "1")
    try:
        assert b"(1 worker)" in proc.stdout.readline()
        assert children(proc.pid) == set()
        send(port, ["single process"])
        assert "single process" in subjects(server)
    finally:
        stop_process(proc)


@pytest.mark.parametrize("count", ["0", "65", "-1"])
def test_a_worker_count_out_of_range_is_refused(server, count):
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "lmtp", "--port", str(free_port()),
                             "--workers", count], cwd=ROOT, env=server.env, capture_output=True, timeout=120)
    assert result.returncode != 0
    assert b"--workers must be between 1 and 64" in result.stderr
