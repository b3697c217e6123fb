"""Real WebDAV clients against /dav on a live gunicorn: Debian's litmus (the compliance suite),
webdav4 (an fsspec/httpx client) and plain requests for what those do not send (a streamed
upload, a big tree, concurrent writers).

Every litmus test must pass: the test fails on any FAIL line, and prints litmus's warnings
(which do not fail it) so that they show in the run's output. `make test` installs litmus
(`make litmus`); without it that test is skipped with that instruction.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from lxml import etree

from tests.live import live_server
from tests.test_jmap_live import STRONG, Site, bootstrap


@pytest.fixture(scope="module")
def site():
    with live_server(workers=2) as server:
        creds = bootstrap(server)
        assert creds
        yield Site(server, *creds)
        log = (server.var_dir / "gunicorn.log").read_text()
        assert "Traceback" not in log, log[-4000:]


@pytest.mark.skipif(shutil.which("litmus") is None, reason="litmus is missing: make litmus (apt-get install litmus)")
def test_litmus_passes_every_test(site, tmp_path):
    _, login = site.create_user("litmus")
    url = f"{site.url}/dav/file/{login.replace('@', '%40')}/"
    # litmus writes its debug.log (every request and answer) into its working directory.
    run = subprocess.run(["litmus", url, login, STRONG], capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    out = run.stdout + run.stderr
    warnings = [line.strip() for line in out.splitlines() if "WARNING" in line]
    print("litmus warnings:\n  " + "\n  ".join(warnings or ["(none)"]))
    failed = [line.strip() for line in out.splitlines() if re.search(r"\bFAIL\b", line)]
    summaries = re.findall(r"summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed", out)
    assert summaries, out
    assert not failed and all(s[3] == "0" for s in summaries), out
    assert {s[0] for s in summaries} >= {"basic", "copymove", "props", "locks", "http"}, out


@pytest.fixture(scope="module")
def user(site):
    _, login = site.create_user("dav")
    return login, f"{site.url}/dav/file/{login.replace('@', '%40')}/"


def test_webdav4_client_round_trip(site, user):
    from webdav4.client import Client

    login, home = user
    client = Client(home, auth=(login, STRONG))
    client.mkdir("docs")
    client.upload_fileobj(__import__("io").BytesIO(b"hello webdav"), "docs/a.txt")
    assert client.exists("docs/a.txt") and client.isdir("docs")
    listing = client.ls("docs", detail=True)
    assert [(e["name"], e["content_length"]) for e in listing] == [("docs/a.txt", 12)]
    client.copy("docs/a.txt", "docs/b.txt")
    client.move("docs/b.txt", "c.txt")
    out = __import__("io").BytesIO()
    client.download_fileobj("c.txt", out)
    assert out.getvalue() == b"hello webdav"
    client.remove("docs")
    assert not client.exists("docs/a.txt")


def test_streamed_upload_and_ranged_download(site, user):
    login, home = user
    size = 3 * 1024 * 1024 + 7

    def body():
        for n in range(size // 65536 + 1):
            yield bytes([n % 251]) * min(65536, size - n * 65536)

    put = requests.put(home + "big.bin", data=body(), auth=(login, STRONG), timeout=120)
    assert put.status_code == 201, put.text
    got = requests.get(home + "big.bin", headers={"Range": "bytes=65530-65541"}, auth=(login, STRONG), timeout=60)
    assert got.status_code == 206
    assert got.content == bytes([0]) * 6 + bytes([1]) * 6


def test_depth_infinity_on_a_big_tree_is_refused_and_depth_one_is_capped(site, user):
    login, home = user
    auth = (login, STRONG)
    requests.request("MKCOL", home + "tree/", auth=auth, timeout=30)
    for n in range(30):
        requests.request("MKCOL", home + f"tree/d{n}/", auth=auth, timeout=30)
    deep = requests.request("PROPFIND", home, headers={"Depth": "infinity"}, auth=auth, timeout=30)
    assert deep.status_code == 403 and b"propfind-finite-depth" in deep.content
    shallow = requests.request("PROPFIND", home + "tree/", headers={"Depth": "1"}, auth=auth, timeout=30)
    assert shallow.status_code == 207
    assert len(etree.fromstring(shallow.content).findall("{DAV:}response")) == 31


def test_concurrent_writers_see_every_change_in_sync(site, user):
    login, home = user
    auth = (login, STRONG)
    requests.request("MKCOL", home + "race/", auth=auth, timeout=30)
    body = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    first = requests.request("REPORT", home + "race/", data=body.format(""), auth=auth, timeout=30)
    token = etree.fromstring(first.content).findtext("{DAV:}sync-token")

    def write(n):
        return requests.put(home + f"race/{n}.txt", data=str(n).encode(), auth=auth, timeout=60).status_code

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(write, range(12))) == {201}
    later = requests.request("REPORT", home + "race/", data=body.format(token), auth=auth, timeout=30)
    hrefs = {h.text for h in etree.fromstring(later.content).iter("{DAV:}href")}
    assert hrefs == {f"/dav/file/{login.replace('@', '%40')}/race/{n}.txt" for n in range(12)}
