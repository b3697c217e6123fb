#!/usr/bin/env python3
"""Import through LMTP: messages per second into one account, and the memory of the
`manage.py lmtp` process before and after (issue 13: >= 100 messages/s, memory flat).

    .venv/bin/python bench/lmtp.py [--messages 1000] [--connections 2] [--workers 2]
    DATABASE_URL=postgres://… .venv/bin/python bench/lmtp.py
    .venv/bin/python bench/lmtp.py --cost [--messages 500] [--profile]   # queries and CPU per message

A throw-away database (a live server's, tests/live.py: SQLite file, or its own PostgreSQL
database), one account, `manage.py lmtp --workers W` on a free loopback port, and C sessions of
smtplib.LMTP at once (an MTA opens several: Postfix's default concurrency per destination is
20) sending N distinct messages of about 2 KB between them (one in three a reply, so threading
works), each on its own MAIL/RCPT/DATA. Memory is the resident set (VmRSS) of the listener's
processes, parent and workers together, after a warm-up of 50 messages and after the run.
"""
from __future__ import annotations

import argparse
import inspect
import smtplib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live import free_port, live_server, stop_process, wait_until  # noqa: E402

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
SETUP = """
from accounts import services
from accounts.models import Domain
dom, _ = Domain.objects.get_or_create(name="example.org")
result = services.create_account({"name": "bench", "domain": dom.pk, "roles_mode": "user", "kind": "user"},
                                 "bench", password=%r).pk
""" % PASSWORD
FILLER = "\r\n".join(["The quarterly report is attached below; please review the figures before the meeting."] * 20)


def message(i: int) -> bytes:
    refs = f"In-Reply-To: <m{i - 1}@bench.example>\r\n" if i % 3 == 1 else ""
    return (f"From: Sender {i % 17} <s{i % 17}@example.net>\r\nTo: bench@example.org\r\n"
            f"Subject: Message {i // 3}\r\nMessage-ID: <m{i}@bench.example>\r\n{refs}"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n{FILLER}\r\n{i}\r\n").encode()


def rss_kib(pid: int) -> int:
    """The resident set of `pid` and its children (the listener's workers)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total += int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_kib(int(child))
    return total


def send(port: int, start: int, count: int) -> None:
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo("bench")
        for i in range(start, start + count):
            refused = client.sendmail(f"s{i % 17}@example.net", ["bench@example.org"], message(i))
            assert not refused, refused


def send_all(port: int, start: int, count: int, connections: int) -> None:
    share = -(-count // connections)
    with ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(send, port, first, min(share, start + count - first))
                       for first in range(start, start + count, share)]:
            future.result()


# The figures that do not depend on the machine's load: deliver() called in one process (no
# LMTP), the statements of each delivery counted, then the process's CPU time per delivery
# without the query log (which costs CPU of its own), optionally with a profile of that pass.
COST = """
import cProfile, io, pstats, time
from django.db import connection
from django.test.utils import CaptureQueriesContext
from delivery import services
%s
FILLER = %r
def deliver(i):
    assert services.deliver(message(i), "s@example.net", ["bench@example.org"])[0].status == "delivered"
for i in range(20):
    deliver(i)
with CaptureQueriesContext(connection) as ctx:
    for i in range(20, 20 + %d):
        deliver(i)
queries = len(ctx.captured_queries) / %d
first = 20 + %d
profile = cProfile.Profile() if %r else None
started = time.process_time()
if profile: profile.enable()
for i in range(first, first + %d):
    deliver(i)
if profile: profile.disable()
cpu = (time.process_time() - started) / %d
out = io.StringIO()
if profile: pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
result = {"queries": queries, "cpu_ms": cpu * 1000, "profile": out.getvalue()}
"""


def cost(counted: int, timed: int, profile: bool) -> None:
    source = inspect.getsource(message)
    with live_server(workers=1) as server:
        server.shell_json(SETUP)
        got = server.shell_json(COST % (source, FILLER, counted, counted, counted, profile, timed, timed))
    if profile:
        print(got["profile"])
    print(f"deliver() in process: {got['queries']:.1f} queries per message ({counted} counted), "
          f"{got['cpu_ms']:.2f} ms CPU per message ({timed} timed, query log off)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=2, help="LMTP sessions at once (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="listener processes (default 2, one per core here)")
    parser.add_argument("--cost", action="store_true",
                        help="instead: queries and CPU time per deliver() in one process (200 counted, --messages timed)")
    parser.add_argument("--profile", action="store_true", help="with --cost: a profile of the timed deliveries")
    args = parser.parse_args()
    if args.cost:
        cost(200, args.messages, args.profile)
        return
    with live_server(workers=1) as server:
        server.shell_json(SETUP)
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "lmtp", "--port", str(port),
                                 "--workers", str(args.workers)], cwd=ROOT,
                                env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close(), proc,
                       lambda: "the LMTP listener did not start", errors=(OSError,), timeout=120)
            send_all(port, 0, 50, args.connections)  # every worker warmed up
            before = rss_kib(proc.pid)
            started = time.perf_counter()
            send_all(port, 50, args.messages, args.connections)
            elapsed = time.perf_counter() - started
            after = rss_kib(proc.pid)
        finally:
            stop_process(proc)
    print(f"LMTP import, {args.connections} sessions, {args.workers} workers: {args.messages} messages in {elapsed:.1f} s = {args.messages / elapsed:.0f} messages/s; "
          f"listener RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
