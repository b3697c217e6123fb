#!/usr/bin/env python3
"""Import through LMTP: messages per second into one account, and the memory of the
`manage.py lmtp` process before and after (issue 13: >= 100 messages/s, memory flat).

    .venv/bin/python bench/lmtp.py [--messages 1000] [--connections 2] [--workers 2]
    DATABASE_URL=postgres://… .venv/bin/python bench/lmtp.py

A throw-away database (a live server's, tests/live.py: SQLite file, or its own PostgreSQL
database), one account, `manage.py lmtp --workers W` on a free loopback port, and C sessions of
smtplib.LMTP at once (an MTA opens several: Postfix's default concurrency per destination is
20) sending N distinct messages of about 2 KB between them (one in three a reply, so threading
works), each on its own MAIL/RCPT/DATA. Memory is the resident set (VmRSS) of the listener's
processes, parent and workers together, after a warm-up of 50 messages and after the run.
"""
from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=2, help="LMTP sessions at once (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="listener processes (default 2, one per core here)")
    args = parser.parse_args()
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
