#!/usr/bin/env python3
"""/dav/cal as a calendar grows, beside Radicale 3.9 on the same events (issue 14's speed list).

    .venv/bin/python bench/dav.py [--sizes 1000 10000] [--repeat 30] [--duration 5]
    DATABASE_URL=postgres://…/any .venv/bin/python bench/dav.py     # our side on PostgreSQL

For each size N (1,000 and 10,000 by default), one calendar gets N events from bench/calgen.py
(one an hour from 1 January 2026, 10 % weekly for a year):

* ours: the project under gunicorn as production runs it (tests/live.py: a throw-away SQLite
  file, or a throw-away database on the PostgreSQL server DATABASE_URL names); bench/calgen.py
  fills the calendar in-process through the store before the server starts;
* Radicale 3.9.0 from PyPI, in a virtual environment of its own under var/ (created on first
  use; none of its dependencies enters ours), with its own server, htpasswd (plain) login and
  filesystem storage written directly with the same files; its first listing builds its item
  cache and is timed apart.

Then, one request at a time over a kept-alive connection, p50/p99 of --repeat requests (30; on
Radicale --radicale-repeat, 10, as its take seconds at 10,000) and the
server's CPU time per request (its processes' utime + stime from /proc):

    PUT of one new event                                 target ≤ 30 ms (any N)
    PROPFIND Depth 1 getetag of the calendar             ≤ 150 ms
    REPORT sync-collection after 100 changes (PUTs)      ≤ 50 ms
    REPORT calendar-query, VEVENT time-range of a week   ≤ 50 ms
    REPORT calendar-multiget of 100 hrefs with data      ≤ 60 ms

The targets are for N = 10,000; Radicale's figures from issue 14 are 925, 438, 690 and 326 ms
for the first four at 4,500 events. A throughput line with wrk (calendar-query of a week, a few
connections) for both servers beside the bare server (bench/bare_asgi.py) closes the run.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calgen import BASE, ics, name  # noqa: E402
from harness import ROOT, Run, basic, measure, parse, parser, server_cpu_seconds  # noqa: E402

from tests.live import free_port, live_server, stop_process, wait_until  # noqa: E402

RADICALE = "3.9.0"
XML = "application/xml; charset=utf-8"
TARGETS = {"PUT one new event": 30, "PROPFIND Depth 1 getetag": 150, "sync-collection after 100 changes": 50,
           "calendar-query one week": 50, "calendar-multiget 100 with data": 60}
ISSUE_RADICALE_4500 = {"PUT one new event": 925, "PROPFIND Depth 1 getetag": 438,
                       "sync-collection after 100 changes": 690, "calendar-query one week": 326}

PROPFIND_ETAGS = (b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                  b'</D:prop></D:propfind>')
QUERY_WEEK = (b'<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" '
              b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>'
              b'<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
              b'<C:time-range start="20260601T000000Z" end="20260608T000000Z"/></C:comp-filter></C:comp-filter>'
              b'</C:filter></C:calendar-query>')


def sync_body(token: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}'
            f'</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>'
            ).encode()


def multiget_body(hrefs: list[str]) -> bytes:
    refs = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (f'<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{refs}'
            f'</C:calendar-multiget>').encode()


@dataclass
class Figure:
    server: str
    size: int
    scenario: str
    samples: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / len(self.samples)


class Client:
    """One kept-alive connection to one server's calendar; every answer's status is checked."""

    def __init__(self, label: str, calendar_url: str, auth: str):
        self.label, self.url = label, calendar_url
        self.path = "/" + calendar_url.split("/", 3)[3]
        self.session = requests.Session()
        self.session.headers["Authorization"] = auth

    def send(self, method: str, url: str, body: bytes = b"", expect: int = 207, **headers) -> requests.Response:
        if body:
            headers.setdefault("Content-Type", XML)
        resp = self.session.request(method, url, data=body or None, headers=headers, timeout=300)
        if resp.status_code != expect:
            raise RuntimeError(f"{self.label}: {method} {url} answered {resp.status_code}, not {expect}: "
                               f"{resp.text[:500]}")
        return resp

    def put(self, n: int, summary: str = "Event", start=None, new: bool = True) -> requests.Response:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        if new:
            headers["If-None-Match"] = "*"
        return self.send("PUT", self.url + name(n), ics(n, start, summary), expect=201 if new else 204, **headers)

    def token(self) -> str:
        resp = self.send("REPORT", self.url, sync_body(""), Depth="1")
        found = etree.fromstring(resp.content).findtext("{DAV:}sync-token")
        if not found:
            raise RuntimeError(f"{self.label}: no sync-token in {resp.text[-500:]}")
        return found.strip()


SHOW_SAMPLES = False


def hrefs_in(resp: requests.Response) -> int:
    return len(etree.fromstring(resp.content).findall("{DAV:}response/{DAV:}href"))


def run_server(client: Client, size: int, repeat: int, notes: list[str]) -> list[Figure]:
    """The five scenarios against one server whose calendar holds events 0 … size-1."""
    rng = random.Random(14)
    since = client.token()
    for n in range(100):  # 100 changes for the sync-collection
        client.put(n, "Changed", new=False)

    def timed(scenario: str, request, check=None) -> Figure:
        figure = Figure(client.label, size, scenario)
        for _ in range(2):  # unreported: first requests of each kind in the process
            resp = request()
            if check:
                check(resp)
        cpu = server_cpu_seconds()
        for _ in range(repeat):
            began = time.perf_counter()
            request()
            figure.samples.append(time.perf_counter() - began)
        figure.cpu_seconds = server_cpu_seconds() - cpu
        if SHOW_SAMPLES:
            print("   samples (ms):", " ".join(f"{v * 1000:.1f}" for v in figure.samples), file=sys.stderr)
        print(f"  {client.label:9} {size:>6,}  {scenario:36} p50 {figure.p50:8.1f} ms  p99 {figure.p99:8.1f} ms  "
              f"CPU {figure.cpu_ms:7.1f} ms", file=sys.stderr, flush=True)
        return figure

    def expect_hrefs(low, high=None):
        def check(resp):
            found = hrefs_in(resp)
            if found < low or (high is not None and found > high):
                raise RuntimeError(f"{client.label}: {found} hrefs in {resp.text[:300]}…, not {low}…{high}")
        return check

    counted = {}

    def count_query(resp):
        counted["week"] = hrefs_in(resp)

    figures = [
        timed("PROPFIND Depth 1 getetag", lambda: client.send("PROPFIND", client.url, PROPFIND_ETAGS, Depth="1"),
              expect_hrefs(size + 1, size + 1)),
        timed("sync-collection after 100 changes", lambda: client.send("REPORT", client.url, sync_body(since),
                                                                         Depth="1"), expect_hrefs(100, 100)),
        timed("calendar-query one week", lambda: client.send("REPORT", client.url, QUERY_WEEK, Depth="1"),
              count_query),
        timed("calendar-multiget 100 with data", lambda: client.send(
            "REPORT", client.url, multiget_body([client.path + name(n) for n in rng.sample(range(size), 100)]),
            Depth="1"), expect_hrefs(100, 100)),
    ]
    counter = iter(range(10**6, 10**9))
    figures.insert(0, timed("PUT one new event", lambda: client.put(next(counter), start=BASE)))
    notes.append(f"{client.label} at {size:,}: {counted['week']} events in the week's calendar-query")
    return figures


# --- Radicale -----------------------------------------------------------------------------------
def radicale_python() -> Path:
    """Radicale's own virtual environment under var/ (its packages never enter ours)."""
    venv = ROOT / "var" / f"radicale-{RADICALE}"
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import radicale; print(radicale.VERSION)"], capture_output=True,
                           text=True) if python.exists() else None
    if probe is None or probe.returncode or probe.stdout.strip() != RADICALE:
        shutil.rmtree(venv, ignore_errors=True)
        print(f"creating {venv.relative_to(ROOT)} with radicale=={RADICALE}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"radicale=={RADICALE}"], check=True)
    return python


@contextmanager
def radicale_server(python: Path, size: int, user: str, password: str, notes: list[str]):
    with tempfile.TemporaryDirectory(prefix="stalwart-bench-radicale-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        calendar = tmp / "storage" / "collection-root" / user / "bench"
        calendar.mkdir(parents=True)
        (calendar / ".Radicale.props").write_text('{"C:supported-calendar-component-set": "VEVENT", '
                                                  '"tag": "VCALENDAR"}')
        for n in range(size):
            (calendar / name(n)).write_bytes(ics(n))
        written = time.perf_counter() - began
        (tmp / "users").write_text(f"{user}:{password}\n")
        port = free_port()
        (tmp / "config").write_text(f"""[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {tmp / 'users'}
htpasswd_encryption = plain
[rights]
type = owner_only
[storage]
filesystem_folder = {tmp / 'storage'}
[logging]
level = warning
""")
        log_path = tmp / "radicale.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen([str(python), "-m", "radicale", "--config", str(tmp / "config")],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until(lambda: requests.get(url + "/.web/", timeout=2), proc, log_path.read_text)
                client = Client("Radicale", f"{url}/{user}/bench/", basic(user, password))
                began = time.perf_counter()
                client.send("PROPFIND", client.url, PROPFIND_ETAGS, Depth="1")
                notes.append(f"Radicale at {size:,}: files written in {written:.1f} s; its first listing "
                              f"(item cache built) {time.perf_counter() - began:.1f} s")
                yield client
            finally:
                stop_process(proc)


# --- the run ------------------------------------------------------------------------------------
def ours(run: Run, args, size: int, notes: list[str], throughput: list) -> list[Figure]:
    generated = {}

    def fill(server):
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "calgen.py"), "--count", str(size)],
                             env=server.env, cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
        if out.returncode:
            raise RuntimeError(f"calgen failed:\n{out.stderr[-3000:]}")
        generated.update(json.loads(out.stdout.strip().splitlines()[-1]))

    # DAV_MAX_RESULTS above N: the whole calendar in one listing, as Radicale answers (the default
    # 2,000 would cut the Depth 1 PROPFIND at 10,000 events short with a 507 entry).
    env = {"REDIS_URL": "", "DAV_MAX_RESULTS": str(max(2000, 2 * size))}
    with live_server(workers=args.workers, extra_env=env, prepare=fill) as server:
        g = generated
        notes.append(f"ours at {size:,}: filled in-process in {g['seconds']} s "
                     f"({g['seconds'] / size * 1000:.1f} ms per event)")
        auth = basic(g["login"], g["password"])
        client = Client("ours", f"{server.url}/dav/cal/{quote(g['login'])}/{g['calendar']}/", auth)
        figures = run_server(client, size, args.repeat, notes)
        if args.duration:
            throughput.append(measure(f"ours {size:,}: calendar-query one week", client.url, args, width=44,
                                      method="REPORT", body=QUERY_WEEK.decode(), content_type=XML, expect=207,
                                      depth="1", authorization=auth))
        run.log = (server.var_dir / "gunicorn.log").read_text(errors="replace")
        if "Traceback" in run.log:
            raise RuntimeError("our server logged a traceback:\n" + run.log[-3000:])
        return figures


def radicale(python: Path, args, size: int, notes: list[str], throughput: list) -> list[Figure]:
    with radicale_server(python, size, "davbench", "bench-password", notes) as client:
        figures = run_server(client, size, args.radicale_repeat, notes)
        if args.duration:
            throughput.append(measure(f"Radicale {size:,}: calendar-query one week", client.url, args, width=44,
                                      method="REPORT", body=QUERY_WEEK.decode(), content_type=XML, expect=207,
                                      depth="1", authorization=client.session.headers["Authorization"]))
        return figures


def ratio(theirs: float, ours_: float) -> str:
    if not ours_:
        return "-"
    value = theirs / ours_
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def latency_table(figures: list[Figure]) -> str:
    by = {(f.server, f.size, f.scenario): f for f in figures}
    rows = [("N", "request", "ours p50", "ours p99", "ours CPU", "Radicale p50", "Radicale p99", "Radicale CPU",
             "p50 ×", "CPU ×", "target")]
    for f in figures:
        if f.server != "ours":
            continue
        r = by.get(("Radicale", f.size, f.scenario))
        target = TARGETS[f.scenario]
        rows.append((f"{f.size:,}", f.scenario, f"{f.p50:.1f}", f"{f.p99:.1f}", f"{f.cpu_ms:.1f}",
                     *((f"{r.p50:.1f}", f"{r.p99:.1f}", f"{r.cpu_ms:.1f}", ratio(r.p50, f.p50), ratio(r.cpu_ms, f.cpu_ms))
                       if r else ("-",) * 5),
                     f"≤ {target} ({'met' if f.p99 <= target else 'NOT met'})"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for i, row in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) if j < 2 else c.rjust(w)
                                     for j, (c, w) in enumerate(zip(row, widths))) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def main() -> int:
    p = parser(__doc__, connections=2)
    p.set_defaults(duration=5, workers=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    p.add_argument("--repeat", type=int, default=30, help="timed requests per scenario (default 30)")
    p.add_argument("--radicale-repeat", type=int, default=10,
                   help="timed requests per scenario on Radicale, whose take up to seconds (default 10)")
    p.add_argument("--no-radicale", action="store_true", help="our server only")
    p.add_argument("--samples", action="store_true",
                   help="print every timed request's latency, in order (where a tail comes from)")
    args = parse(p)
    global SHOW_SAMPLES
    SHOW_SAMPLES = args.samples
    if args.repeat < 2 or args.radicale_repeat < 2:
        p.error("--repeat and --radicale-repeat must be at least 2")
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    run = Run(args)
    python = None if args.no_radicale else radicale_python()
    notes: list[str] = []
    figures: list[Figure] = []
    throughput = [run.bare()] if args.duration else []
    loads = []
    for size in args.sizes:
        loads.append(f"{os.getloadavg()[0]:.2f}")
        figures += ours(run, args, size, notes, throughput)
        if python:
            loads.append(f"{os.getloadavg()[0]:.2f}")
            figures += radicale(python, args, size, notes, throughput)
    print(f"\n/dav/cal, one calendar of N events (10 % weekly recurring), our side on {database}; "
          f"{args.repeat} timed requests per row on ours, {args.radicale_repeat} on Radicale, one at a time; milliseconds; CPU = the server's CPU time "
          f"per request; p50 × and CPU × = Radicale's over ours; the targets are on ours' p99\n")
    print(latency_table(figures))
    print("\nIssue 14's Radicale at 4,500 events: "
          + ", ".join(f"{k} {v} ms" for k, v in ISSUE_RADICALE_4500.items()))
    for note in notes:
        print(note)
    print(f"load average (1 min) at the start of each server's run: {', '.join(loads)}")
    if throughput:
        return run.report(throughput, throughput[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
