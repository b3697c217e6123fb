"""/metrics/prometheus against gunicorn with three sync workers, as production runs it.

The counters must be whole-server totals: each worker counts into its own file under
PROMETHEUS_MULTIPROC_DIR (set by gunicorn.conf.py) and a scrape adds them up, whichever worker
answers it. The workload is pinned onto different workers on purpose (stalled connections keep
the others busy), the per-worker files are read to prove that several workers counted, and the
scraped totals must equal the exact number of calls made. The scraped text also passes
`promtool check metrics` without a single lint warning.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.live import live_server, stalled_connection

WORKERS = 3
USING = ["urn:ietf:params:jmap:core", "urn:stalwart:jmap"]
SCRAPER = ("prom", "live-scrape-secret")


def basic(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture(scope="module")
def site():
    with live_server(workers=WORKERS) as server:
        out = server.manage("bootstrap").stdout
        login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M).group(1)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M).group(1)
        server.admin_auth = basic(login, password)
        yield server


def jmap(site, calls, auth=None):
    body = {"using": USING, "methodCalls": [[name, args, f"c{i}"] for i, (name, args) in enumerate(calls)]}
    return requests.post(site.url + "/jmap/", data=json.dumps(body), timeout=30,
                         headers={"Authorization": auth or site.admin_auth, "Content-Type": "application/json"})


def scrape(site, auth=basic(*SCRAPER)) -> requests.Response:
    return requests.get(site.url + "/metrics/prometheus", headers={"Authorization": auth} if auth else {}, timeout=30)


def value(text, name, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def per_worker(site, name, **labels) -> dict[int, float]:
    """The value of a counter in each worker's file (counter_<pid>.db)."""
    folder = site.var_dir / "prometheus"
    out = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for s in metric.samples:
                if s.name == name and s.labels == labels:
                    out[pid] = out.get(pid, 0) + s.value
    return out


def workload(site, echo_batches: int, failed_logins: int):
    """`echo_batches` requests of 2 Core/echo calls each, and failed logins, spread over workers."""
    for _ in range(echo_batches):
        resp = jmap(site, [("Core/echo", {"n": 1}), ("Core/echo", {"n": 2})])
        assert resp.status_code == 200, resp.text
    for _ in range(failed_logins):
        assert jmap(site, [("Core/echo", {})], auth=basic("admin", "not-the-password")).status_code == 401


def test_whole_server_totals_across_workers(site):
    got = site.manage("update", "metrics", "--field", "prometheus=" + json.dumps({
        "@type": "Enabled", "authUsername": SCRAPER[0], "authSecret": {"@type": "Value", "secret": SCRAPER[1]}}))
    assert got.returncode == 0, got.stderr
    assert scrape(site, auth=None).status_code == 401
    assert scrape(site, auth=basic(SCRAPER[0], "wrong")).status_code == 401
    first = scrape(site)
    assert first.status_code == 200 and first.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    before = first.text

    # Worker A is held; B and C serve the first batch. Then B and C are held, and A serves the
    # second: at least two different workers count.
    with stalled_connection(site.url) as a:
        workload(site, echo_batches=4, failed_logins=2)
        with stalled_connection(site.url), stalled_connection(site.url):
            a.close()
            time.sleep(0.3)
            workload(site, echo_batches=3, failed_logins=1)
    # Route counting: a few more, on whichever worker.
    for _ in range(5):
        assert requests.get(site.url + "/jmap/session", timeout=30).status_code in (200, 401)

    after = scrape(site).text
    echo = {"method": "Core/echo", "result": "ok"}
    assert value(after, "stalwart_jmap_method_calls_total", **echo) \
        - value(before, "stalwart_jmap_method_calls_total", **echo) == 2 * (4 + 3)
    assert value(after, "stalwart_logins_total", result="failure") \
        - value(before, "stalwart_logins_total", result="failure") == 3
    route = {"endpoint": "/jmap/", "status": "200"}
    assert value(after, "stalwart_http_requests_total", **route) \
        - value(before, "stalwart_http_requests_total", **route) == 7
    assert value(after, "stalwart_http_requests_total", endpoint="/jmap/", status="401") \
        - value(before, "stalwart_http_requests_total", endpoint="/jmap/", status="401") == 3
    session = sum(value(after, "stalwart_http_requests_total", endpoint="/jmap/session", status=s)
                  for s in ("200", "401"))
    assert session == 5
    # The scrapes that were refused, by route and status.
    assert value(after, "stalwart_http_requests_total", endpoint="/metrics/prometheus", status="401") == 2

    workers = {pid: n for pid, n in per_worker(site, "stalwart_jmap_method_calls_total", **echo).items() if n}
    assert len(workers) >= 2, workers
    assert sum(workers.values()) == value(after, "stalwart_jmap_method_calls_total", **echo)

    # A worker that exits (recycled, crashed) keeps its counts in the total.
    victim = max(workers, key=workers.get)
    total = value(after, "stalwart_jmap_method_calls_total", **echo)
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{victim}") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # gunicorn replaces it
    later = scrape(site).text
    assert value(later, "stalwart_jmap_method_calls_total", **echo) == total


def test_promtool_finds_nothing_to_lint(site):
    assert site.manage("update", "metrics", "--field", 'prometheus={"@type":"Enabled"}').returncode == 0
    for _ in range(3):
        jmap(site, [("Core/echo", {}), ("x:Nothing/get", {})])
        requests.get(site.url + "/static/missing.css", timeout=30)
        requests.get(site.url + "/admin/login/", timeout=30)
    text = scrape(site, auth=None).text
    assert "stalwart_http_requests_total" in text and "django_http_requests_latency_seconds_by_view_method" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: make promtool (apt-get install prometheus)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", proc.stdout + proc.stderr
