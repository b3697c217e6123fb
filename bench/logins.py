#!/usr/bin/env python3
"""Logins per second for each password hash algorithm, against gunicorn as production runs it.

    .venv/bin/python bench/logins.py [--duration 10] [--workers N] [--connections 4]

What it does, in one run and under the same gunicorn settings (gunicorn.conf.py, sync workers,
2 x cores + 1 of them unless --workers or WEB_CONCURRENCY says otherwise):

1. bare WSGI       bench/bare_wsgi.py (hello world): what gunicorn alone costs per request;
2. GET login page  GET /admin/login/ of the project (DEBUG off, fresh temporary database):
                   what Django and the project add;
3. login <alg>     for argon2id, bcrypt, scrypt and pbkdf2: the algorithm is configured in the
                   Authentication settings, an account whose password is hashed with it is
                   created, and the admin login form is POSTed with a valid CSRF cookie + token
                   pair obtained beforehand. Every response must be a 302 (successful login).

wrk (Debian's /usr/bin/wrk) drives each scenario for --duration seconds after a short warm-up,
with bench/request.lua, whose done() prints the figures this script parses. Responses other than
the expected status, and socket errors or timeouts, are reported in the "errors" column; a run
with errors says so and exits with status 1. Only 127.0.0.1 is ever contacted.

"server CPU/req" is the CPU time of the gunicorn processes per request served (read from /proc
around each run). Unlike req/s and latencies it hardly depends on other load on the machine;
cores / CPU per request estimates an idle machine's rate. A run that starts while the load
average exceeds half the cores says so.
"""
from __future__ import annotations

import argparse
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
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "request.lua"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.live import free_port, live_server  # noqa: E402  (needs ROOT on sys.path)

PASSWORD = "Tr0ubador-Quartz-Lantern-91"
ALGORITHMS = ("argon2id", "bcrypt", "scrypt", "pbkdf2")
DOMAIN = "example.org"


def account_name(algorithm: str) -> str:
    return f"bench-{algorithm}"


# --- servers --------------------------------------------------------------------------------
@contextmanager
def bare_server(workers: int):
    """bench/bare_wsgi.py under gunicorn -c gunicorn.conf.py, as tests/live.py starts the project."""
    with tempfile.TemporaryDirectory(prefix="stalwart-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
               "ACCESS_LOG": ""}
        log_path = Path(tmp) / "gunicorn.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--pythonpath", str(BENCH), "bare_wsgi"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until_up(url + "/", proc, log_path)
                yield url
            finally:
                stop(proc)


def wait_until_up(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still starting
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()) from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- project set-up (through manage.py shell, against the server's own database) -------------
SETUP = """
from accounts import services
from accounts.models import Authentication, Domain
dom = Domain.objects.get_or_create(name={domain!r})[0]
auth = Authentication.load()
for alg in {algorithms!r}:
    # The configured algorithm hashes the new account's password.
    auth.password_hash_algorithm = alg
    auth.save()
    acc = services.create_account({{"name": "bench-" + alg, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                                  "bench", password={password!r})
    print("ACCOUNT", alg, acc.email_address)
"""

# Configures the algorithm to measure next and reports the algorithm of every bench account's
# stored hash: a login under another setting would have re-hashed it (and skewed the figures).
CONFIGURE = """
from accounts import hashing
from accounts.models import Authentication, Credential
auth = Authentication.load()
if {algorithm!r}:
    auth.password_hash_algorithm = {algorithm!r}
    auth.save()
print("SETTING", Authentication.load().password_hash_algorithm)
for c in Credential.objects.filter(kind=Credential.Kind.PASSWORD, account__name__startswith="bench-"):
    print("HASH", c.account.name, hashing.algorithm_of(c.secret_hash))
"""


def create_accounts(server) -> dict[str, str]:
    out = server.shell(SETUP.format(domain=DOMAIN, algorithms=ALGORITHMS, password=PASSWORD))
    logins = {}
    for line in out.splitlines():
        if line.startswith("ACCOUNT "):
            _, alg, address = line.split()
            logins[alg] = address
    missing = set(ALGORITHMS) - set(logins)
    if missing:
        raise RuntimeError(f"accounts not created for {sorted(missing)}:\n{out}")
    return logins


def configure(server, algorithm: str | None) -> list[str]:
    """Set the algorithm (None: leave it) and return the problems found with the stored hashes."""
    out = server.shell(CONFIGURE.format(algorithm=algorithm or ""))
    problems = []
    setting = re.search(r"^SETTING (\S+)", out, re.M)
    if algorithm and (not setting or setting.group(1) != algorithm):
        problems.append(f"the setting reads {setting.group(1) if setting else '?'}, not {algorithm}")
    hashes = dict(re.findall(r"^HASH (\S+) (\S+)", out, re.M))
    for alg in ALGORITHMS:
        got = hashes.get(account_name(alg))
        if got != alg:
            problems.append(f"{account_name(alg)}'s password hash is {got}, not {alg}")
    return problems


def csrf_pair(url: str) -> tuple[str, str]:
    """A CSRF cookie and a form token that matches it (Django accepts the pair again and again)."""
    resp = requests.get(url + "/admin/login/", timeout=10)
    resp.raise_for_status()
    cookie = resp.cookies.get("csrftoken")
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', resp.text)
    if not cookie or not m:
        raise RuntimeError("no CSRF cookie or token on /admin/login/")
    return cookie, m.group(1)


def check_login(url: str, cookie: str, body: str) -> None:
    """One login by hand before wrk, so that a set-up mistake fails with a clear message."""
    resp = requests.post(url + "/admin/login/", data=body, allow_redirects=False, timeout=30,
                         headers={"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"})
    if resp.status_code != 302 or "login" in resp.headers.get("Location", "login"):
        snippet = re.sub(r"\s+", " ", resp.text)[:300]
        raise RuntimeError(f"the test login answered {resp.status_code} {resp.headers.get('Location', '')}: {snippet}")


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
            content_type="application/x-www-form-urlencoded", expect=200, duration: int | None = None) -> Result:
    """Drive one scenario with wrk and bench/request.lua (shared with bench/jmap.py)."""
    duration = args.duration if duration is None else duration
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body, "BENCH_COOKIE": cookie,
           "BENCH_AUTH": authorization, "BENCH_CONTENT_TYPE": content_type, "BENCH_EXPECT": str(expect)}
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


def measure(scenario: str, url: str, args, width: int = 22, **kw) -> Result:
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


def table(results: list[Result]) -> str:
    rows = [("scenario", "req/s", "p50", "p90", "p99", "errors", "server CPU/req")]
    for r in results:
        rows.append((r.scenario, f"{r.rate:.1f}", ms(r.p50_us), ms(r.p90_us), ms(r.p99_us), str(r.errors),
                     ms(r.cpu_ms_per_request * 1000)))
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
                   help=f"gunicorn sync workers (default: WEB_CONCURRENCY or 2 x cores + 1 = {default_workers})")
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


def main() -> int:
    cores = multiprocessing.cpu_count()
    p = parser(__doc__, connections=4)
    p.add_argument("--algorithms", default=",".join(ALGORITHMS),
                   help="comma-separated subset of " + ",".join(ALGORITHMS))
    args = parse(p)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    if unknown := set(algorithms) - set(ALGORITHMS):
        p.error(f"unknown algorithms: {', '.join(sorted(unknown))}")

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    print(f"{cores} cores, {args.workers} gunicorn sync workers, wrk {min(args.threads, args.connections)} threads / "
          f"{args.connections} connections, {args.duration} s per scenario", file=sys.stderr, flush=True)
    results: list[Result] = []
    problems: list[str] = []

    with bare_server(args.workers) as url:
        results.append(measure("bare WSGI (hello)", url + "/", args))

    with live_server(workers=args.workers) as server:
        login_url = server.url + "/admin/login/"
        results.append(measure("GET /admin/login/", login_url, args))
        logins = create_accounts(server)
        cookie, token = csrf_pair(server.url)
        for alg in algorithms:
            problems += configure(server, alg)
            body = urlencode({"csrfmiddlewaretoken": token, "username": logins[alg], "password": PASSWORD})
            check_login(server.url, cookie, body)
            results.append(measure(f"login {alg}", login_url, args, method="POST", body=body,
                                   cookie=f"csrftoken={cookie}", expect=302))
        problems += configure(server, None)
        log = (server.var_dir / "gunicorn.log").read_text(errors="replace")

    print()
    print(table(results))
    print(f"\n{args.workers} sync workers, {args.connections} connections, {args.duration} s each, "
          f"{cores} cores; load average {load_before:.2f} before the run; total {time.monotonic() - started:.0f} s")
    if load_before > cores / 2:
        # Every scenario is CPU-bound: other work on the machine lowers all the figures.
        print(f"WARNING: the machine was busy before the run (load average {load_before:.2f} on {cores} cores); "
              "the figures understate what an idle machine does.")
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"ERRORS in {r.scenario}: {r.error_detail()}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if failed or problems:
        tail = "\n".join(log.splitlines()[-30:])
        print(f"\nThe run had errors; these figures are not valid. Last lines of gunicorn's log:\n{tail}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
