#!/usr/bin/env python3
"""JMAP push over EventSource: N streams held open, what they cost, and how fast a change reaches them.

    .venv/bin/python bench/eventsource.py [--streams 1000] [--duration 10] [--workers N] [--rounds 2] [--changes 5]

What it does, in one run, against the project under gunicorn as production runs it
(gunicorn.conf.py, the asgi serving model, --workers workers, a fresh SQLite database; with
REDIS_URL exported, changes travel through Redis, otherwise each worker polls the journal):

1. Core/echo with Basic authentication, measured with wrk;
2. --streams EventSource connections opened (`types=*`, no ping) on one account, held by an
   asyncio client in this process; the workers' memory (PSS, /proc/<pid>/smaps_rollup) before
   and after the first opening gives the memory per connection;
3. Core/echo again with the streams held; steps 1-3 are repeated --rounds times (the streams
   closed before each step 1), and the best of each is kept: with the streams, Core/echo must
   stay within 15 % of step 1 (exit status 1 otherwise);
4. --changes changes (Mailbox/set through JMAP), each awaited on every stream: the fan-out
   latency, from sending the change's request to each stream's state event, p50/p99/max.

The figures go in docs/performance.md (#push-over-eventsource).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import basic, bootstrap, check, live_server, measure, parse, parser, table  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
MAIL = [CORE, "urn:ietf:params:jmap:mail"]
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}


class Streams:
    """n EventSource connections held by one asyncio loop in a thread of their own; each state
    event's arrival time is recorded by the Mailbox state it carries."""

    def __init__(self, url: str, authorization: str, n: int):
        host, port = url.rsplit("//", 1)[1].split(":")
        self.host, self.port, self.n = host, int(port), n
        self.request = (f"GET /jmap/eventsource/?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        f"Authorization: {authorization}\r\nAccept: text/event-stream\r\n\r\n").encode()
        self.arrivals: dict[str, list[float]] = {}
        self.opened = 0
        self.refused: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.writers = []

    def open(self, batch: int = 50) -> None:
        asyncio.run_coroutine_threadsafe(self._open_all(batch), self.loop).result(timeout=600)

    async def _open_all(self, batch: int) -> None:
        for start in range(0, self.n, batch):
            await asyncio.gather(*(self._open_one() for _ in range(start, min(start + batch, self.n))))

    async def _open_one(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(self.request)
        status = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        if b" 200 " not in status:
            self.refused.append(status.decode(errors="replace").strip())
            writer.close()
            return
        self.opened += 1
        self.writers.append(writer)
        asyncio.get_running_loop().create_task(self._listen(reader))

    async def _listen(self, reader) -> None:
        state_next = False
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"event: state"):
                state_next = True
            elif state_next and line.startswith(b"data:"):
                state_next = False
                changed = json.loads(line[5:])["changed"]
                for types in changed.values():
                    if "Mailbox" in types:
                        self.arrivals.setdefault(types["Mailbox"], []).append(time.monotonic())

    def close(self) -> None:
        def shut():
            for writer in self.writers:
                writer.close()
        self.loop.call_soon_threadsafe(shut)
        time.sleep(0.5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def worker_pids() -> list[int]:
    """The gunicorn workers among this process's descendants (the master is the one whose
    children they are)."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                names[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        mine |= frontier
    masters = {pid for pid in mine if "gunicorn" in names.get(pid, "")}
    return sorted(pid for pid in masters if parents.get(pid) in masters)


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


def change(url: str, authorization: str, account: str, n: int) -> tuple[str, float]:
    sent = time.monotonic()
    resp = requests.post(url + "/jmap/", headers={"Authorization": authorization}, timeout=30, json={
        "using": MAIL, "methodCalls": [["Mailbox/set", {"accountId": account,
                                                         "create": {"m": {"name": f"bench-{n}-{sent}"}}}, "0"]]})
    resp.raise_for_status()
    return resp.json()["methodResponses"][0][1]["newState"], sent


def main() -> int:
    p = parser(__doc__, connections=8)
    p.add_argument("--streams", type=int, default=1000, help="EventSource connections held (default 1000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of each throughput scenario (default 2)")
    p.add_argument("--changes", type=int, default=5, help="changes whose fan-out is timed (default 5)")
    args = parse(p)
    os.environ.pop("DATABASE_URL", None)
    redis = os.environ.get("REDIS_URL", "")
    mode = "Redis channel" if redis else "journal polling"
    print(f"{os.cpu_count()} cores, {args.workers} workers, {args.streams} streams, changes by {mode}, "
          f"wrk {min(args.threads, args.connections)} threads / {args.connections} connections, "
          f"{args.duration} s per scenario", file=sys.stderr, flush=True)
    # No per-account limit for the run, and room on each worker for its share of the streams
    # however unevenly the kernel spreads them, plus wrk's connections.
    env = {"REDIS_URL": redis, "EVENTSOURCE_MAX_PER_ACCOUNT": "0",
           "WORKER_CONNECTIONS": str(args.streams + args.connections + 100)}
    problems = []
    with live_server(workers=args.workers, extra_env=env) as server:
        login, password = bootstrap(server)
        auth = basic(login, password)
        check("POST", server.url + "/jmap/", auth, ECHO, "Core/echo")
        account = requests.get(server.url + "/jmap/session", headers={"Authorization": auth},
                               timeout=30).json()["primaryAccounts"][CORE]
        echo = dict(method="POST", body=json.dumps(ECHO), authorization=auth)

        # The two scenarios alternate, round by round (the streams closed for the first, opened
        # anew for the second), so that other load on the machine falls on both alike.
        workers = worker_pids()
        without = held = streams = None
        before = after = 0
        opening = 0.0
        for _ in range(args.rounds):
            result = measure("Core/echo (Basic), no stream", server.url + "/jmap/", args, width=40, **echo)
            without = result if without is None or result.rate > without.rate else without
            time.sleep(1)
            if streams is None:
                before = pss_kib(workers)
            else:
                streams.close()
            streams = Streams(server.url, auth, args.streams)
            started = time.monotonic()
            streams.open()
            opening = time.monotonic() - started
            time.sleep(2)
            after = pss_kib(workers) if not after else after
            if streams.refused:
                problems.append(f"{len(streams.refused)} streams refused (first: {streams.refused[0]})")
            print(f"  {streams.opened} streams open in {opening:.1f} s; worker PSS {before / 1024:.1f} -> "
                  f"{after / 1024:.1f} MiB at the first opening", file=sys.stderr, flush=True)
            result = measure(f"Core/echo (Basic), {streams.opened} streams held", server.url + "/jmap/", args,
                             width=40, **echo)
            held = result if held is None or result.rate > held.rate else held

        latencies, missed = [], 0
        for n in range(args.changes):
            time.sleep(1.2)  # past the streams' throttle, so that each change is sent at once
            state, sent = change(server.url, auth, account, n)
            deadline = time.monotonic() + 10
            while len(streams.arrivals.get(state, ())) < streams.opened and time.monotonic() < deadline:
                time.sleep(0.01)
            got = streams.arrivals.get(state, [])
            missed += streams.opened - len(got)
            latencies += [t - sent for t in got]
        streams.close()

    print()
    print(table([without, held]))
    ratio = held.rate / without.rate if without.rate else 0.0
    per_connection = (after - before) * 1024 / streams.opened if streams.opened else 0
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    print(f"\n{args.workers} workers, {args.streams} streams ({mode}), {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.2f} after the run")
    print(f"Core/echo with {streams.opened} streams held: {held.rate:.0f} req/s vs {without.rate:.0f} without: "
          f"{(ratio - 1) * 100:+.1f} % (limit -15 %): {'met' if ratio >= 0.85 else 'NOT met'}")
    print(f"Memory: workers' PSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB with the streams: "
          f"{per_connection / 1024:.1f} KiB per connection; opened in {opening:.1f} s")
    if latencies:
        print(f"Fan-out of one change to every stream ({args.changes} changes, {len(latencies)} deliveries): "
              f"p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.0f} ms")
    if missed:
        problems.append(f"{missed} deliveries missing after 10 s")
    if ratio < 0.85:
        problems.append("Core/echo fell by more than 15 % with the streams held")
    for r in (without, held):
        if r.errors:
            problems.append(f"errors in {r.scenario}: {r.error_detail()}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
