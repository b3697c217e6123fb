#!/usr/bin/env python3
"""EventSource under churn for minutes: memory stays flat, and no connection is left behind.

    .venv/bin/python bench/eventsource_soak.py [--duration 600] [--streams 200] [--workers N]
    REDIS_URL=redis://… .venv/bin/python bench/eventsource_soak.py

Against the project under gunicorn as production runs it (tests/live.py: the asgi serving model,
a fresh SQLite database, --workers workers; with REDIS_URL exported, changes travel through
Redis, otherwise each worker polls the journal), for --duration seconds:

- --streams clients, each opening an EventSource stream (`types=*`, `ping=30`), holding it for
  a random 1 to 20 s while reading its events, closing it (one in four abruptly, without reading
  on, one in four before the response has arrived) and opening the next at once;
- one change a second (Mailbox/set over JMAP), so that every stream has events to carry;
- every 30 s: the workers' memory (PSS), the established connections on the server's port as
  the kernel counts them (/proc/net/tcp), the streams opened and refused so far.

At the end every client stops and, after a few seconds, the server must hold no established
connection on its port (nothing left behind), no stream may have been refused, every worker
must still be the one that started (none was restarted), and the workers' memory in the last
third of the run must be within --growth (default 10 %) of its level after the first third
(flat). Exit status 1 when any of these fails. The figures go in docs/performance.md.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eventsource import change, pss_kib, worker_pids  # noqa: E402
from harness import basic, bootstrap, live_server  # noqa: E402

CORE = "urn:ietf:params:jmap:core"


def established(port: int) -> int:
    """Connections in state ESTABLISHED whose local port is the server's."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


class Churn:
    """--streams clients on one asyncio loop in a thread of their own."""

    def __init__(self, host: str, port: int, authorization: str, clients: int, seed: int = 7):
        self.host, self.port, self.clients = host, port, clients
        self.request = (f"GET /jmap/eventsource/?types=*&closeafter=no&ping=30 HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        f"Authorization: {authorization}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.rng = random.Random(seed)
        self.opened = self.events = self.errors = 0
        self.refused: list[str] = []
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks = []

    def start(self) -> None:
        self.thread.start()

        def launch():
            self.tasks = [self.loop.create_task(self._client()) for _ in range(self.clients)]
        self.loop.call_soon_threadsafe(launch)

    def stop(self) -> None:
        self.stopping = True

        def cancel():
            for task in self.tasks:
                task.cancel()
        self.loop.call_soon_threadsafe(cancel)
        time.sleep(1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _client(self) -> None:
        while not self.stopping:
            try:
                await self._one()
            except asyncio.CancelledError:
                raise
            except OSError:
                self.errors += 1
                await asyncio.sleep(0.5)

    async def _one(self) -> None:
        hold = self.rng.uniform(1, 20)
        how = self.rng.random()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self.request)
            if how < 0.25:
                return  # gone before the answer: the server must notice and let go
            status = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if b" 200 " not in status:
                self.refused.append(status.decode(errors="replace").strip())
                return
            self.opened += 1
            if how < 0.5:
                await asyncio.sleep(hold)  # held without reading: the server's buffers fill
                return
            deadline = time.monotonic() + hold
            while (left := deadline - time.monotonic()) > 0:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=left)
                except asyncio.TimeoutError:
                    break
                if not line:
                    break
                if line.startswith(b"event: state"):
                    self.events += 1
        finally:
            writer.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=600, help="seconds of churn (default 600)")
    p.add_argument("--streams", type=int, default=200, help="clients, each with one stream at a time (default 200)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2 + 1)))
    p.add_argument("--growth", type=float, default=10.0, help="allowed memory growth in %% (default 10)")
    args = p.parse_args()
    os.environ.pop("DATABASE_URL", None)
    redis = os.environ.get("REDIS_URL", "")
    print(f"{os.cpu_count()} cores, {args.workers} workers, {args.streams} churning clients, "
          f"{args.duration} s, changes by {'Redis' if redis else 'journal polling'}", file=sys.stderr, flush=True)
    env = {"REDIS_URL": redis, "EVENTSOURCE_MAX_PER_ACCOUNT": "0",
           "WORKER_CONNECTIONS": str(args.streams * 2 + 100)}
    problems: list[str] = []
    samples: list[tuple[float, int, int, int]] = []
    with live_server(workers=args.workers, extra_env=env) as server:
        auth = basic(*bootstrap(server))
        account = requests.get(server.url + "/jmap/session", headers={"Authorization": auth},
                               timeout=30).json()["primaryAccounts"][CORE]
        host, port = server.url.rsplit("//", 1)[1].split(":")
        port = int(port)
        workers = worker_pids()
        churn = Churn(host, port, auth, args.streams)
        started = time.monotonic()
        churn.start()
        next_sample, n = started, 0
        print(f"{'seconds':>8} {'worker PSS MiB':>15} {'established':>12} {'opened':>8} {'events':>8} "
              f"{'refused':>8}", flush=True)
        while (now := time.monotonic()) - started < args.duration:
            if now >= next_sample:
                pss = pss_kib(workers)
                samples.append((now - started, pss, established(port), churn.opened))
                print(f"{now - started:8.0f} {pss / 1024:15.1f} {samples[-1][2]:12d} {churn.opened:8d} "
                      f"{churn.events:8d} {len(churn.refused):8d}", flush=True)
                next_sample += 30
            try:
                change(server.url, auth, account, n)
            except requests.RequestException as exc:
                problems.append(f"a change failed: {exc}")
            n += 1
            time.sleep(max(0.0, 1 - (time.monotonic() - now)))
        churn.stop()
        time.sleep(5)
        left = established(port)
        final = pss_kib(workers)
        still = worker_pids()
    print(f"\nafter the run: {left} established connections on the server's port; worker PSS "
          f"{final / 1024:.1f} MiB; {churn.opened} streams opened, {churn.events} state events read, "
          f"{len(churn.refused)} refused, {churn.errors} connection errors, {n} changes")
    if left:
        problems.append(f"{left} connections left established after every client stopped")
    if churn.refused:
        problems.append(f"{len(churn.refused)} streams refused (first: {churn.refused[0]})")
    if sorted(still) != sorted(workers):
        problems.append(f"workers changed during the run: {workers} -> {still}")
    third = len(samples) // 3
    if third:
        early = sum(s[1] for s in samples[third - 1:2 * third - 1]) / max(1, len(samples[third - 1:2 * third - 1]))
        late = sum(s[1] for s in samples[2 * third:]) / max(1, len(samples[2 * third:]))
        growth = (late - early) / early * 100
        print(f"worker memory: {early / 1024:.1f} MiB in the middle third, {late / 1024:.1f} MiB in the last "
              f"({growth:+.1f} %, allowed {args.growth:.0f} %)")
        if growth > args.growth:
            problems.append(f"memory grew {growth:.1f} %")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("soak: " + ("passed" if not problems else "FAILED"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
