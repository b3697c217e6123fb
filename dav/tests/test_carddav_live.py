"""CardDAV with a real client: vdirsyncer (PyPI) against a live gunicorn, discovering the
address book from /.well-known/carddav and syncing a local directory of vCards both ways."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.live import live_server
from tests.test_jmap_live import STRONG, Site, bootstrap

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
NS = {"D": "DAV:"}


@pytest.fixture(scope="module")
def site():
    with live_server(workers=2) as server:
        creds = bootstrap(server)
        assert creds
        yield Site(server, *creds)
        log = (server.var_dir / "gunicorn.log").read_text()
        assert "Traceback" not in log, log[-4000:]


def card(uid: str, fn: str) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{fn}\r\nN:{fn};;;;\r\nEND:VCARD\r\n"


class Vdirsyncer:
    def __init__(self, tmp: Path, url: str, login: str):
        self.tmp = tmp
        self.local = tmp / "contacts"
        self.config = tmp / "config"
        self.config.write_text(f"""
[general]
status_path = "{tmp / 'status'}/"

[pair contacts]
a = "contacts_local"
b = "contacts_remote"
collections = ["from b"]
conflict_resolution = "b wins"

[storage contacts_local]
type = "filesystem"
path = "{self.local}/"
fileext = ".vcf"

[storage contacts_remote]
type = "carddav"
url = "{url}/"
username = "{login}"
password = "{STRONG}"
""")

    def run(self, *args: str) -> str:
        done = subprocess.run([str(VDIRSYNCER), "-c", str(self.config), *args], capture_output=True, text=True,
                              input="y\n" * 5, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(self.tmp)})
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        return out


@pytest.mark.skipif(not VDIRSYNCER.exists(), reason="vdirsyncer is missing: pip install -r requirements-dev.txt")
def test_vdirsyncer_discovers_and_syncs_both_ways(site, tmp_path):
    _, login = site.create_user("cards")
    auth = (login, STRONG)
    book = f"{site.url}/dav/card/{login.replace('@', '%40')}/default/"
    assert requests.put(book + "remote.vcf", card("remote-1", "Remote Person"), auth=auth,
                        headers={"Content-Type": "text/vcard"}).status_code == 201
    sync = Vdirsyncer(tmp_path, site.url, login)
    sync.run("discover", "contacts")
    sync.run("sync")
    local_book = sync.local / "default"
    files = {p.read_text(): p for p in local_book.glob("*.vcf")}
    assert len(files) == 1 and "FN:Remote Person" in next(iter(files))
    remote_local = next(iter(files.values()))

    # A card made locally reaches the server; a card changed on each side travels the other way.
    (local_book / "local-1.vcf").write_text(card("local-1", "Local Person"))
    sync.run("sync")
    listing = requests.request("PROPFIND", book, auth=auth, headers={"Depth": "1"})
    names = sorted(h.text.rsplit("/", 1)[-1] for h in etree.fromstring(listing.content).findall(".//D:href", NS))
    assert len(names) == 3 and "remote.vcf" in names  # the book, the remote card, the local one
    local_href = next(book + n for n in names if n and n != "remote.vcf")
    assert "FN:Local Person" in requests.get(local_href, auth=auth).text

    remote_tag = requests.head(book + "remote.vcf", auth=auth).headers["ETag"]
    assert requests.put(book + "remote.vcf", card("remote-1", "Remote Renamed"), auth=auth,
                        headers={"Content-Type": "text/vcard", "If-Match": remote_tag}).status_code == 204
    local_file = next(p for p in local_book.glob("*.vcf") if "local-1" in p.read_text())
    local_file.write_text(card("local-1", "Local Renamed"))
    sync.run("sync")
    assert "FN:Remote Renamed" in remote_local.read_text()
    assert "FN:Local Renamed" in requests.get(local_href, auth=auth).text

    # The same card changed on both sides: the server's version wins (the pair's policy) and
    # reaches the local file; nothing is duplicated.
    remote_tag = requests.head(book + "remote.vcf", auth=auth).headers["ETag"]
    assert requests.put(book + "remote.vcf", card("remote-1", "Server Side"), auth=auth,
                        headers={"Content-Type": "text/vcard", "If-Match": remote_tag}).status_code == 204
    remote_local.write_text(card("remote-1", "Client Side"))
    sync.run("sync")
    assert "FN:Server Side" in remote_local.read_text()
    assert "FN:Server Side" in requests.get(book + "remote.vcf", auth=auth).text
    assert len(list(local_book.glob("*.vcf"))) == 2

    # A deletion on the server removes the local file; the next sync has nothing to do.
    assert requests.delete(local_href, auth=auth).status_code == 204
    sync.run("sync")
    assert not local_file.exists()
    quiet = sync.run("sync")
    assert "Copying" not in quiet and "Deleting" not in quiet and "conflict" not in quiet.lower(), quiet
