"""The advertised maxSizeUpload through a real gunicorn server with the event-loop worker: an
upload between HTTP_MAX_BODY (16 MiB, every other endpoint's cap) and maxSizeUpload (50 MB) is
stored, one octet past maxSizeUpload is JMAP's limit problem, and past HTTP_MAX_UPLOAD_BODY the
worker refuses it before reading. A WebDAV file PUT shares the upload cap; other endpoints
keep the small cap."""
import hashlib

import requests

from .live import live_server, raw_http
from .test_jmap_live import STRONG, Site, basic, bootstrap

CORE = "urn:ietf:params:jmap:core"


def test_uploads_up_to_the_advertised_size_over_a_real_server():
    with live_server(workers=1) as server:
        site = Site(server, *bootstrap(server))
        # An ordinary user: the administrator's unlimitedUploads would lift the limit.
        _, login = site.create_user("big")
        # Room for the three uploads below within one upload window (uploadQuota, 50 MB by default).
        got = site.admin.ok("x:Jmap/set", {"update": {"singleton": {"uploadQuota": 200_000_000}}})
        assert got["notUpdated"] is None, got
        auth = basic(login, STRONG)
        session = requests.get(server.url + "/jmap/session", headers={"Authorization": auth}, timeout=30).json()
        limit = session["capabilities"][CORE]["maxSizeUpload"]
        assert limit == 50_000_000
        account = next(iter(session["accounts"]))
        url = session["uploadUrl"].replace("{accountId}", account)
        headers = {"Authorization": auth, "Content-Type": "application/octet-stream"}

        data = bytes(range(256)) * (20 * 1024 * 1024 // 256)  # 20 MiB: past HTTP_MAX_BODY
        resp = requests.post(url, data=data, headers=headers, timeout=120)
        assert resp.status_code == 201, resp.text[:300]
        assert resp.json()["size"] == len(data)
        blob_id = resp.json()["blobId"]
        download = session["downloadUrl"].replace("{accountId}", account).replace("{blobId}", blob_id)
        download = download.replace("{name}", "big.bin").replace("{type}", "application/octet-stream")
        got = requests.get(download, headers={"Authorization": auth}, timeout=120)
        assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()

        resp = requests.post(url, data=b"\0" * limit, headers=headers, timeout=120)
        assert resp.status_code == 201, resp.text[:300]
        resp = requests.post(url, data=b"\1" * (limit + 1), headers=headers, timeout=120)
        assert resp.status_code == 400, resp.text[:300]
        assert resp.json()["type"] == "urn:ietf:params:jmap:error:limit" and resp.json()["limit"] == "maxSizeUpload"

        # Past HTTP_MAX_UPLOAD_BODY (64 MiB) the worker answers before reading the body.
        status, body = raw_http(server.url, (
            f"POST /jmap/upload/{account}/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {64 * 1024 * 1024 + 1}\r\nConnection: close\r\n\r\n").encode(), b"x", timeout=30)
        assert status == 413, body
        # A file PUT into the WebDAV store is an upload too: the same 20 MiB (under
        # DAV_MAX_FILE_SIZE, 25 MiB) is stored and reads back.
        file_url = f"{server.url}/dav/file/{login}/big.bin"
        resp = requests.put(file_url, data=data, headers=headers, timeout=120)
        assert resp.status_code == 201, resp.text[:300]
        got = requests.get(file_url, headers={"Authorization": auth}, timeout=120)
        assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
        # Any other endpoint keeps HTTP_MAX_BODY: the same 20 MiB to /jmap/ is refused unread.
        status, body = raw_http(server.url, (
            f"POST /jmap/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode(), b"{", timeout=30)
        assert status == 413, body
