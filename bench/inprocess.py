#!/usr/bin/env python3
"""The CPU cost of one JMAP request in process, independent of the machine's load.

    .venv/bin/python bench/inprocess.py [--requests 400] [--rounds 5] [--var DIR] [--calls]
                                        [--profile N] [--scenario echo|session|NAME ...] [--redis URL]

One process holds the whole server side as a gunicorn asgi worker runs it: the project's worker
protocol (network/worker.py, gunicorn's HTTP/1.1 parser and response writer under it), the ASGI
handler (stalwart_site/asgi.py), Django's middleware chain and the view, on a fresh SQLite
database migrated and bootstrapped under --var (kept between runs: a second run reuses it). A
client on the same event loop sends each request over a socket pair on one kept-alive connection
and reads the whole response, Basic authentication with the first administrator's password
(verified once, then the cached verdict, as bench/jmap.py's steady state).

It prints, per scenario, the process's CPU time per request (both threads: the event loop and
the worker's thread; best of --rounds rounds) and, with --calls, the Python and C function calls
per request counted in both threads (deterministic, so comparable between commits whatever the
load). --profile N prints the N most expensive functions of one round (cProfile, both threads).
The bare row is the same worker and client around an ASGI application that only answers "hello":
what the worker and the client cost by themselves.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import runpy
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "urn:ietf:params:jmap:core"
ECHO = {"using": [CORE], "methodCalls": [["Core/echo", {"hello": True, "n": [1, 2, 3]}, "c0"]]}


def singleton_get(name: str) -> dict:
    return {"using": [CORE, "urn:stalwart:jmap"], "methodCalls": [[f"x:{name}/get", {"ids": ["singleton"]}, "c0"]]}


def prepare(var: Path) -> tuple[str, str]:
    """Migrate and bootstrap the database under var once; the administrator's credentials."""
    creds = var / "credentials.json"
    if creds.exists():
        return tuple(json.loads(creds.read_text()))
    var.mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput", "-v0"], env=os.environ, cwd=ROOT, check=True)
    out = subprocess.run(manage + ["bootstrap"], env=os.environ, cwd=ROOT, check=True, capture_output=True,
                         text=True).stdout
    login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M).group(1)
    password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M).group(1)
    creds.write_text(json.dumps([login, password]))
    return login, password


class Worker:
    """What gunicorn's asgi protocol asks of its worker, with the project's limits."""

    def __init__(self, app, loop):
        from gunicorn import glogging
        from gunicorn.config import Config

        from network.worker import limits

        cfg = Config()
        for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items():
            if name in cfg.settings and not callable(value):
                cfg.set(name, value)
        cfg.set("accesslog", os.environ.get("ACCESS_LOG") or None)
        self.cfg, self.log, self.asgi, self.loop = cfg, glogging.Logger(cfg), app, loop
        self.nr_conns = self.nr = 0
        self.max_requests = sys.maxsize
        self.alive = True
        self.state = {}
        self.limits = limits()
        self.worker_connections = 1000


async def _hello(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


class Client:
    """One kept-alive connection to the worker protocol through a socket pair."""

    def __init__(self, loop, app):
        from network.worker import Protocol

        self.loop = loop
        server_sock, client_sock = socket.socketpair()
        self.worker = Worker(app, loop)
        loop.run_until_complete(loop.connect_accepted_socket(lambda: Protocol(self.worker), server_sock))
        self.reader, self.writer = loop.run_until_complete(asyncio.open_connection(sock=client_sock))

    async def _one(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
        body = await self.reader.readexactly(length)
        return int(head[9:12]), body

    async def _many(self, raw: bytes, n: int) -> tuple[int, bytes]:
        for _ in range(n):
            status, body = await self._one(raw)
            if status != 200:
                raise SystemExit(f"status {status}: {body[:300]!r}")
        return status, body

    def run(self, raw: bytes, n: int):
        return self.loop.run_until_complete(self._many(raw, n))


def request(method: str, path: str, authorization: str, body: dict | None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:8080", f"Authorization: {authorization}",
            "User-Agent: bench", "Accept: */*"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def in_worker_thread(fn, *args):
    """Run fn in asgiref's one thread, where the handler runs the chain and the view."""
    from asgiref.sync import SyncToAsync

    return SyncToAsync.single_thread_executor.submit(fn, *args).result()


class Counter:
    """Every Python and C function call, in both threads (the event loop's and the worker's)."""

    def __init__(self):
        self.calls = 0

    def hook(self, frame, event, arg):
        if event == "call" or event == "c_call":
            self.calls += 1

    def __enter__(self):
        in_worker_thread(sys.setprofile, self.hook)
        sys.setprofile(self.hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)
        in_worker_thread(sys.setprofile, None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--var", default=str(Path(tempfile.gettempdir()) / "stalwart-bench-inprocess"))
    p.add_argument("--calls", action="store_true", help="count the function calls per request too")
    p.add_argument("--profile", type=int, default=0, metavar="N")
    p.add_argument("--sort", default="tottime", help="the profile's order (tottime, cumulative, calls)")
    p.add_argument("--scenario", action="append", help="echo, session, or a singleton's name (Http, …)")
    p.add_argument("--redis", metavar="URL", default="",
                   help="REDIS_URL for the server side (the scale-out cache and limits; default: none)")
    args = p.parse_args()

    var = Path(args.var)
    os.environ.update({"STALWART_VAR_DIR": str(var), "DEBUG": "false", "REDIS_URL": args.redis, "HOST": "127.0.0.1",
                       "PORT": "8080", "PUBLIC_URL": "http://127.0.0.1:8080"})
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ.setdefault("ACCESS_LOG", "")  # as bench/jmap.py's servers (tests/live.py)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(var / "prometheus")
    (var / "prometheus").mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    login, password = prepare(var)
    authorization = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()

    from stalwart_site.asgi import application

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    names = args.scenario or ["echo", "session", "Authentication", "Http", "Metrics", "Security"]
    scenarios = [("bare (hello)", _hello, request("GET", "/", authorization, None))]
    for name in names:
        if name == "echo":
            scenarios.append(("Core/echo", application, request("POST", "/jmap/", authorization, ECHO)))
        elif name == "session":
            scenarios.append(("GET /jmap/session", application, request("GET", "/jmap/session", authorization, None)))
        else:
            scenarios.append((f"x:{name}/get", application,
                              request("POST", "/jmap/", authorization, singleton_get(name))))

    print(f"{'scenario':<24} {'CPU µs/request':>15} {'user':>8} {'system':>8} {'calls/request':>14}")
    for label, app, raw in scenarios:
        client = Client(loop, app)
        client.run(raw, 50)  # warm: the verdict, the memos, the series
        best = None
        for _ in range(args.rounds):
            t0 = os.times()
            client.run(raw, args.requests)
            t1 = os.times()
            cpu = ((t1.user - t0.user) / args.requests, (t1.system - t0.system) / args.requests)
            best = cpu if best is None or sum(cpu) < sum(best) else best
        calls = ""
        if args.calls:
            with Counter() as counter:
                client.run(raw, 100)
            calls = f"{counter.calls / 100:.1f}"
        print(f"{label:<24} {sum(best) * 1e6:>15.0f} {best[0] * 1e6:>8.0f} {best[1] * 1e6:>8.0f} {calls:>14}",
              flush=True)
        if args.profile:
            import cProfile
            import pstats

            import time

            # CPU time of the profiled thread: a wait for the other thread costs nothing.
            loop_prof, thread_prof = cProfile.Profile(time.thread_time), cProfile.Profile(time.thread_time)
            in_worker_thread(thread_prof.enable)
            loop_prof.enable()
            client.run(raw, 200)
            loop_prof.disable()
            in_worker_thread(thread_prof.disable)
            for name, prof in (("the event loop's thread", loop_prof), ("the worker's thread", thread_prof)):
                print(f"--- {name}")
                pstats.Stats(prof).sort_stats(args.sort).print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
