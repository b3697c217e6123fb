"""Blobs end to end against gunicorn: jmapc's upload and download helpers, the limits across
workers, garbage collection racing new references (separate processes, on the run's database),
and the S3 backend against moto_server.

The database is read and changed through `manage.py shell` in other processes, never through
this process's ORM; the PostgreSQL run (DATABASE_URL) and the SQLite run take the same path.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from .live import BIN, ROOT, free_port, host_port, live_server, stop_process, wait_until
from .test_jmap_live import STRONG, Jmap, PlainHttpAdapter, Site, answered, basic, bootstrap, wait_for

CORE = "urn:ietf:params:jmap:core"
BLOB = "urn:ietf:params:jmap:blob"
# The run's Redis, or without one (the SQLite run) the live tests' own (tests/workers.py).
REDIS = os.environ.get("REDIS_URL") or os.environ["LIVE_REDIS_URL"]


@contextmanager
def _site(**env):
    with live_server(workers=2, extra_env={"REDIS_URL": REDIS, **env}) as server:
        creds = bootstrap(server)
        assert creds
        try:
            yield Site(server, *creds)
        finally:
            log = (server.var_dir / "gunicorn.log").read_text()
            assert "Traceback" not in log and "database is locked" not in log, log[-4000:]
            import redis

            client = redis.Redis.from_url(REDIS)
            for key in client.scan_iter(match=server.env["CACHE_KEY_PREFIX"] + ":*"):
                client.delete(key)


@pytest.fixture(scope="module")
def site():
    # The sync workers: there a view runs while its body is still arriving, which lets a test
    # hold an upload in flight (the event-loop worker reads the whole body first).
    with _site(SERVER_MODEL="sync") as site:
        yield site


class User:
    def __init__(self, site: Site, prefix: str):
        self.id, self.login = site.create_user(prefix)
        self.auth = basic(self.login, STRONG)
        self.url = site.url

    def upload(self, data: bytes, content_type: str = "application/octet-stream", account: str | None = None):
        return requests.post(f"{self.url}/jmap/upload/{account or self.id}/", data=data, timeout=60,
                             headers={"Authorization": self.auth, "Content-Type": content_type})

    def download(self, blob_id: str, name: str = "f", account: str | None = None, **headers):
        return requests.get(f"{self.url}/jmap/download/{account or self.id}/{blob_id}/{name}", timeout=60,
                            headers={"Authorization": self.auth, **headers})

    def call(self, name: str, args: dict):
        got = Jmap(self.url, self.auth).post({"using": [CORE, BLOB], "methodCalls": [
            [name, {"accountId": self.id, **args}, "c"]]})
        assert got.status_code == 200, got.text
        return got.json()["methodResponses"][0]


def test_jmapc_uploads_and_downloads(site, tmp_path):
    import jmapc
    from jmapc.models import EmailBodyPart

    user = User(site, "jmapc")
    host = urlsplit(site.url).netloc
    client = jmapc.Client.create_with_password(host, user.login, STRONG)
    client.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
    source = tmp_path / "photo.png"
    data = os.urandom(300_000)
    source.write_bytes(data)
    blob = client.upload_blob(source)
    assert (blob.type, blob.size) == ("image/png", len(data))
    target = tmp_path / "back.png"
    client.download_attachment(EmailBodyPart(blob_id=blob.id, name="back.png", type="image/png"), target)
    assert target.read_bytes() == data
    # And read back through the API: Blob/get's digest is the bytes'.
    _, got, _ = user.call("Blob/get", {"ids": [blob.id], "properties": ["digest:sha-256", "size"]})
    assert got["list"][0]["size"] == len(data)
    import base64

    assert base64.b64decode(got["list"][0]["digest:sha-256"]) == hashlib.sha256(data).digest()


def test_ranges_and_attackers_over_the_wire(site):
    alice, mallory = User(site, "alice"), User(site, "mallory")
    blob_id = alice.upload(b"0123456789").json()["blobId"]
    part = alice.download(blob_id, Range="bytes=2-4")
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (206, b"234", "bytes 2-4/10")
    assert alice.download(blob_id, Range="bytes=50-").status_code == 416
    assert mallory.download(blob_id).status_code == 404
    assert mallory.download(blob_id, account=alice.id).status_code == 404
    assert mallory.upload(b"planted", account=alice.id).status_code == 404
    assert mallory.call("Blob/get", {"ids": [blob_id]})[1]["notFound"] == [blob_id]


def test_uploads_beyond_the_limit_and_without_a_length(site):
    user = User(site, "big")
    site.admin.ok("x:Jmap/set", {"update": {"singleton": {"maxUploadSize": 100_000}}})
    try:
        got = user.upload(b"x" * 100_001)
        assert got.status_code == 400 and got.json()["limit"] == "maxSizeUpload"
        assert user.upload(b"y" * 100_000).json()["size"] == 100_000

        def chunks():
            yield b"x" * 10

        # Chunked (no Content-Length): refused, not stored as an empty blob.
        got = requests.post(f"{site.url}/jmap/upload/{user.id}/", data=chunks(), timeout=60,
                            headers={"Authorization": user.auth})
        assert got.status_code == 411 and got.headers["Content-Type"] == "application/problem+json"
    finally:
        site.admin.ok("x:Jmap/set", {"update": {"singleton": {"maxUploadSize": 50_000_000}}})


@contextmanager
def upload_waiting_for_its_body(url: str, account_id: str, authorization: str):
    """An upload announcing 1000 bytes and sending 10: its view has taken its slot and waits in
    the body read until the connection closes."""
    import socket

    sock = socket.create_connection(host_port(url), timeout=30)
    try:
        sock.sendall(f"POST /jmap/upload/{account_id}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: {authorization}\r\nContent-Length: 1000\r\n\r\n0123456789".encode())
        yield sock
    finally:
        sock.close()


def test_max_concurrent_upload_across_workers(site):
    site.admin.ok("x:Jmap/set", {"update": {"singleton": {"maxConcurrentUploads": 1}}})
    try:
        user, other = User(site, "dave"), User(site, "erin")
        with ExitStack() as stack:
            # Should a probe reach the server before the held upload has taken its slot, the
            # held one is refused (it gets an answer): then hold another.
            held = stack.enter_context(upload_waiting_for_its_body(site.url, user.id, user.auth))
            deadline = time.monotonic() + 30
            while (refused := user.upload(b"second")).status_code != 400:
                assert refused.status_code == 201 and time.monotonic() < deadline, "never refused"
                if answered(held):
                    held.close()
                    held = stack.enter_context(upload_waiting_for_its_body(site.url, user.id, user.auth))
                time.sleep(0.05)
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["type"] == "urn:ietf:params:jmap:error:limit"
            assert refused.json()["limit"] == "maxConcurrentUpload"
            assert other.upload(b"per user").status_code == 201
            assert not answered(held)
        assert wait_for(lambda: user.upload(b"again").status_code == 201), "the slot was never released"
    finally:
        site.admin.ok("x:Jmap/set", {"update": {"singleton": {"maxConcurrentUploads": 4}}})


# --- garbage collection racing a new reference (two processes, the run's database) ----------
class Shell:
    """`manage.py shell` running `code` against the server's database, in its own process; the
    code prints READY and then waits for a line on its standard input."""

    def __init__(self, site: Site, code: str):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=site.server.env,
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)

    def wait_ready(self) -> str:
        lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("READY"):
                return line.strip()

    def go(self) -> str:
        out, _ = self.proc.communicate("go\n", timeout=120)
        assert self.proc.returncode == 0, out
        return out


def collect_process(site: Site) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "collect_blobs", "--no-orphans"],
                            env=site.server.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def expire_uploads(site: Site) -> None:
    site.server.shell("from blobs.models import Hold\nHold.objects.filter(owner_kind='upload')"
                      ".update(expires_at='2000-01-01T00:00:00Z')")


def test_a_reference_in_flight_survives_a_collection(site):
    """A new reference is being added (its transaction open) when the collector finds the
    content unreferenced: the collector waits for it, sees it, and keeps the content."""
    user = User(site, "race1")
    data = os.urandom(5000)
    first = user.upload(data).json()["blobId"]
    expire_uploads(site)
    assert user.download(first).status_code == 404  # expired: gone for the client already
    holder = Shell(site, f"""
import sys
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from blobs import services
from registry import ids
with transaction.atomic():
    view = services.put(ids.decode({user.id!r}), {data!r}, "upload", "race", timezone.now() + timedelta(hours=1))
    print("READY", view.jmap_id, flush=True)
    sys.stdin.readline()
""")
    blob_id = holder.wait_ready().split()[1]
    collector = collect_process(site)
    try:
        # The collector cannot finish while the reference's transaction is open: it waits on
        # the row lock (PostgreSQL) or the write lock (SQLite).
        time.sleep(1.5)
        assert collector.poll() is None, collector.communicate()[0]
    finally:
        holder.go()
    out, _ = collector.communicate(timeout=120)
    assert collector.returncode == 0, out
    got = user.download(blob_id)
    assert got.status_code == 200 and got.content == data


def test_a_collection_in_flight_does_not_take_a_new_upload_with_it(site):
    """The collector has deleted the content's row (its transaction open) when the same bytes
    are uploaded again: the upload waits, then files a new row and file of its own; the
    collector's file deletion, after its commit, removes only the old file."""
    user = User(site, "race2")
    data = os.urandom(7000)
    user.upload(data).json()["blobId"]
    expire_uploads(site)
    collector = Shell(site, """
import sys
from django.db import transaction
from blobs import services
with transaction.atomic():
    done = services.collect(orphans=False)
    print("READY", done.blobs, flush=True)
    sys.stdin.readline()
""")
    assert int(collector.wait_ready().split()[1]) >= 1  # ours among them (other tests may leave some)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(user.upload, data)
        try:
            time.sleep(1.5)
            assert not pending.done(), "the upload did not wait for the collector's transaction"
        finally:
            collector.go()
        got = pending.result(timeout=120)
    assert got.status_code == 201, got.text
    back = user.download(got.json()["blobId"])
    assert back.status_code == 200 and back.content == data
    # And it stays: a collection now finds it referenced.
    again = collect_process(site)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert user.download(got.json()["blobId"]).content == data


# --- S3 --------------------------------------------------------------------------------------
@contextmanager
def moto_server():
    port = free_port()
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/moto-api/", timeout=2), proc, lambda: "moto_server did not start")
        yield url
    finally:
        stop_process(proc)


def test_s3_backend_against_moto_server():
    import boto3

    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
        s3.create_bucket(Bucket="mail-blobs")
        env = {"BLOB_STORE": "s3", "BLOB_S3_BUCKET": "mail-blobs", "BLOB_S3_ENDPOINT_URL": endpoint,
               "BLOB_S3_REGION": "us-east-1", "BLOB_S3_ACCESS_KEY_ID": "test", "BLOB_S3_SECRET_ACCESS_KEY": "test",
               "BLOB_S3_PREFIX": "blobs"}
        with _site(**env) as s3site:
            alice, bob = User(s3site, "s3a"), User(s3site, "s3b")
            data = os.urandom(2_000_000)
            a = alice.upload(data).json()
            b = bob.upload(data).json()
            assert a["size"] == b["size"] == len(data)
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mail-blobs").get("Contents", [])]
            digest = hashlib.sha256(data).hexdigest()
            assert len(keys) == 1 and keys[0].startswith(f"blobs/{digest[:2]}/{digest[2:4]}/{digest}."), keys
            assert alice.download(a["blobId"]).content == data
            part = bob.download(b["blobId"], Range="bytes=1000000-1000009")
            assert part.status_code == 206 and part.content == data[1_000_000:1_000_010]
            assert bob.download(a["blobId"]).status_code == 404
            _, got, _ = alice.call("Blob/get", {"ids": [a["blobId"]], "properties": ["data:asBase64"],
                                                "offset": 5, "length": 3})
            import base64

            assert base64.b64decode(got["list"][0]["data:asBase64"]) == data[5:8]
            expire_uploads(s3site)
            out = s3site.server.manage("collect_blobs").stdout
            assert "blobs: 1" in out, out
            assert s3.list_objects_v2(Bucket="mail-blobs").get("Contents", []) == []


def test_concurrent_uploads_cannot_overrun_the_disk_quota(site):
    user = User(site, "quota")
    got = site.admin.ok("x:Account/set", {"update": {user.id: {"quotas": {"maxDiskQuota": 1000}}}})
    assert got["notUpdated"] is None, got
    payloads = [os.urandom(400) for _ in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(user.upload, payloads))
    codes = sorted(a.status_code for a in answers)
    # Two fit (800 bytes), a third would pass 1000: the account's row lock serialises the checks.
    assert codes == [201, 201, 403, 403, 403, 403], [a.text for a in answers]
    assert all(a.json()["title"] == "Quota exceeded" for a in answers if a.status_code == 403)
