"""What the bench scripts share: gunicorn started as production does, wrk driven through
bench/request.lua, the figures, the table and the report.

Each script (logins.py, jmap.py, oauth.py) only says which requests it measures.
"""
from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "request.lua"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.live import free_port, live_server  # noqa: E402  (needs ROOT on sys.path)
from tests.live import stop_process as stop  # noqa: E402
from tests.live import wait_until  # noqa: E402

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


# --- servers --------------------------------------------------------------------------------
@contextmanager
def bare_server(workers: int, model: str | None = None):
    """bench/bare_wsgi.py (sync model) or bench/bare_asgi.py (asgi model) under gunicorn -c
    gunicorn.conf.py, as tests/live.py starts the project; the model is SERVER_MODEL's unless given."""
    model = model or server_model()
    with tempfile.TemporaryDirectory(prefix="stalwart-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
               "ACCESS_LOG": "", "SERVER_MODEL": model}
        log_path = Path(tmp) / "gunicorn.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--pythonpath", str(BENCH),
                 "bare_asgi" if model == "asgi" else "bare_wsgi"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until_up(url + "/", proc, log_path)
                yield url
            finally:
                stop(proc)


def server_model() -> str:
    """The serving model the project runs (gunicorn.conf.py): SERVER_MODEL, asgi by default."""
    return (os.environ.get("SERVER_MODEL", "").strip().lower() or "asgi")


def wait_until_up(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    wait_until(lambda: requests.get(url, timeout=2), proc, log_path.read_text)


# --- wrk -------------------------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    requests: int
    seconds: float
    p50_us: int
    p90_us: int
    p99_us: int
    unexpected: int
    bad_status: int
    socket_errors: dict
    cpu_seconds: float  # used by the server's processes for the run, in-flight requests included
    in_flight: int  # requests still open when wrk stopped (one per connection), served all the same

    @property
    def cpu_ms_per_request(self) -> float:
        served = self.requests + self.in_flight
        return self.cpu_seconds * 1000 / served if self.requests else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.unexpected + sum(self.socket_errors.values())

    def error_detail(self) -> str:
        parts = []
        if self.unexpected:
            parts.append(f"{self.unexpected} responses with an unexpected status (first: {self.bad_status})")
        parts += [f"{n} {kind} errors" for kind, n in self.socket_errors.items() if n]
        return ", ".join(parts)


def server_cpu_seconds() -> float:
    """CPU time (user + system) used so far by the processes this script started and that still run.

    Outside a wrk run those are the gunicorn master and its workers only (the manage.py calls
    and wrk have ended), so the difference around a run is the server's CPU time for it, a
    figure that other load on the machine hardly changes, unlike req/s and latencies.
    """
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = int(fields[11]) + int(fields[12])  # utime, stime
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def settled_cpu_seconds(limit: float) -> float:
    """server_cpu_seconds() once the workers have finished the requests wrk left in flight."""
    deadline = time.monotonic() + limit
    last = server_cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = server_cpu_seconds()
        if now - last < 0.02:
            return now
        last = now
    return last


def run_wrk(scenario: str, url: str, args, *, method="GET", body="", cookie="", authorization="",
            content_type=JSON, expect=200, duration: int | None = None, depth: str = "") -> Result:
    """Drive one scenario with wrk and bench/request.lua."""
    duration = args.duration if duration is None else duration
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body, "BENCH_COOKIE": cookie,
           "BENCH_AUTH": authorization, "BENCH_CONTENT_TYPE": content_type, "BENCH_EXPECT": str(expect),
           "BENCH_DEPTH": depth}
    cmd = [args.wrk, "-t", str(min(args.threads, args.connections)), "-c", str(args.connections),
           "-d", f"{duration}s", "--timeout", f"{args.timeout}s", "-s", str(LUA), url]
    cpu_before = server_cpu_seconds()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + args.timeout + 60)
    cpu = settled_cpu_seconds(args.timeout) - cpu_before
    if args.verbose:
        print(proc.stdout, proc.stderr, sep="", file=sys.stderr)
    m = re.search(r"^BENCH (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    v = {k: int(n) for k, n in re.findall(r"(\w+)=(-?\d+)", m.group(1))}
    return Result(
        scenario=scenario, requests=v["requests"], seconds=v["duration_us"] / 1e6,
        p50_us=v["p50_us"], p90_us=v["p90_us"], p99_us=v["p99_us"],
        unexpected=v["unexpected"], bad_status=v["bad_status"],
        socket_errors={k: v[k] for k in ("connect", "read", "write", "timeout")}, cpu_seconds=cpu,
        in_flight=args.connections,
    )


def measure(scenario: str, url: str, args, width: int = 32, **kw) -> Result:
    if args.warmup:
        run_wrk(scenario, url, args, duration=args.warmup, **kw)  # first requests per worker, not reported
    result = run_wrk(scenario, url, args, **kw)
    print(f"  {scenario:<{width}} {result.rate:9.1f} req/s  p50 {ms(result.p50_us)}"
          + (f"  ERRORS: {result.error_detail()}" if result.errors else ""), file=sys.stderr, flush=True)
    return result


# --- output ----------------------------------------------------------------------------------
def ms(us: int) -> str:
    value = us / 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def table(results: list[Result], baseline: Result | None = None) -> str:
    """A Markdown table of the results; with a baseline, each rate also as a share of it."""
    head = ["scenario", "req/s"] + (["vs bare"] if baseline else []) + [
        "p50", "p90", "p99", "non-expected*", "socket errors", "server CPU/req"]
    rows = [tuple(head)]
    for r in results:
        share = ([f"{r.rate / baseline.rate * 100:.0f} %" if baseline.rate else "-"] if baseline else [])
        rows.append((r.scenario, f"{r.rate:.1f}", *share, ms(r.p50_us), ms(r.p90_us), ms(r.p99_us),
                     str(r.unexpected), str(sum(r.socket_errors.values())), ms(r.cpu_ms_per_request * 1000)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "| " + " | ".join(cells) + " |"

    sep = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def parser(doc: str, connections: int) -> argparse.ArgumentParser:
    """The options every bench script takes (bench/jmap.py and bench/oauth.py add their own)."""
    cores = multiprocessing.cpu_count()
    default_workers = int(os.environ.get("WEB_CONCURRENCY", cores * 2 + 1))
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds measured per scenario (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="unreported seconds before each scenario (default 1, 0: none)")
    p.add_argument("--workers", type=int, default=default_workers,
                   help=f"gunicorn workers (default: WEB_CONCURRENCY or 2 x cores + 1 = {default_workers})")
    p.add_argument("--connections", type=int, default=connections,
                   help=f"concurrent wrk connections (default {connections})")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2, at most --connections)")
    p.add_argument("--timeout", type=int, default=10, help="wrk's per-request timeout in seconds (default 10)")
    p.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk", help="the wrk binary")
    p.add_argument("-v", "--verbose", action="store_true", help="show wrk's own output")
    return p


def parse(p: argparse.ArgumentParser):
    args = p.parse_args()
    if not Path(args.wrk).exists():
        p.error(f"wrk not found at {args.wrk} (apt-get install wrk)")
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.workers < 1:
        p.error("--duration, --connections, --threads and --workers must be at least 1")
    return args


class Run:
    """One benchmark run: prints what it measures, starts the servers, reports the figures."""

    def __init__(self, args):
        self.args = args
        self.cores = multiprocessing.cpu_count()
        self.started = time.monotonic()
        self.load_before = os.getloadavg()[0]
        print(f"{self.cores} cores, {args.workers} gunicorn {server_model()} workers, wrk {min(args.threads, args.connections)} "
              f"threads / {args.connections} connections, {args.duration} s per scenario", file=sys.stderr, flush=True)

    def bare(self) -> Result:
        with bare_server(self.args.workers) as url:
            return measure(f"bare {'ASGI' if server_model() == 'asgi' else 'WSGI'} (hello)", url + "/", self.args)

    @contextmanager
    def project(self):
        """The project on a fresh SQLite database and no REDIS_URL, whatever this shell exports:
        each worker caches in its own memory, as `make run` does."""
        os.environ.pop("DATABASE_URL", None)
        with live_server(workers=self.args.workers, extra_env={"REDIS_URL": ""}) as server:
            yield server
            self.log = (server.var_dir / "gunicorn.log").read_text(errors="replace")

    def report(self, results: list[Result], baseline: Result | None = None, problems=()) -> int:
        """Print the table and the conditions; 1 when anything went wrong (the figures are void)."""
        args = self.args
        print()
        print(table(results, baseline))
        print("* responses with another status than the scenario expects")
        print(f"\n{args.workers} {server_model()} workers, {args.connections} connections, {args.duration} s each, "
              f"{self.cores} cores; load average {self.load_before:.2f} before the run; "
              f"total {time.monotonic() - self.started:.0f} s")
        if self.load_before > self.cores / 2:
            # Every scenario is CPU-bound: other work on the machine lowers all the figures.
            print(f"WARNING: the machine was busy before the run (load average {self.load_before:.2f} on "
                  f"{self.cores} cores); the figures understate what an idle machine does.")
        failed = [r for r in results if r.errors]
        for r in failed:
            print(f"ERRORS in {r.scenario}: {r.error_detail()}")
        for problem in problems:
            print(f"PROBLEM: {problem}")
        if failed or problems:
            tail = "\n".join(getattr(self, "log", "").splitlines()[-30:])
            print(f"\nThe run had errors; these figures are not valid. Last lines of gunicorn's log:\n{tail}")
            return 1
        return 0


# --- the project's first administrator and checked requests ------------------------------------
def bootstrap(server) -> tuple[str, str]:
    out = server.manage("bootstrap").stdout
    login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M)
    password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M)
    if not (login and password):
        raise RuntimeError(f"bootstrap printed no credentials:\n{out}")
    return login.group(1), password.group(1)


def check(method: str, url: str, authorization: str, body: dict | None, expect_name: str | None) -> None:
    """One request by hand before wrk, so that a set-up mistake fails with a clear message."""
    headers = {"Authorization": authorization}
    if body is not None:
        headers["Content-Type"] = "application/json"
    resp = requests.request(method, url, headers=headers, data=json.dumps(body) if body is not None else None,
                            timeout=30)
    if resp.status_code != 200:
        raise RuntimeError(f"{method} {url} answered {resp.status_code}: {resp.text[:300]}")
    if expect_name is not None:
        name = resp.json()["methodResponses"][0][0]
        if name != expect_name:
            raise RuntimeError(f"{method} {url} answered {name} instead of {expect_name}: {resp.text[:300]}")


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
