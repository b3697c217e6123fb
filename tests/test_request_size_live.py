"""The advertised maxSizeRequest through a real gunicorn server (issue 10, item 11): a 3 MB
JMAP request (over Django's 2.5 MB DATA_UPLOAD_MAX_MEMORY_SIZE) is served, one byte past the
advertised limit is the JMAP limit problem, whatever the serving model in front."""
import base64
import re

import requests

from .live import live_server, raw_http

CORE = "urn:ietf:params:jmap:core"


def _echo_of_size(size: int) -> bytes:
    head, tail = b'{"using":["' + CORE.encode() + b'"],"methodCalls":[["Core/echo",{"p":"', b'"},"c"]]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_request_size_limit_over_a_real_server():
    with live_server(workers=1) as server:
        out = server.manage("bootstrap").stdout
        login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M).group(1)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M).group(1)
        auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        limit = requests.get(server.url + "/jmap/session", headers=headers, timeout=30).json()[
            "capabilities"][CORE]["maxSizeRequest"]
        assert limit == 10_000_000

        resp = requests.post(server.url + "/jmap/", data=_echo_of_size(3_000_000), headers=headers, timeout=60)
        assert resp.status_code == 200, resp.text[:300]
        assert len(resp.json()["methodResponses"][0][1]["p"]) > 2_900_000

        resp = requests.post(server.url + "/jmap/", data=_echo_of_size(limit), headers=headers, timeout=60)
        assert resp.status_code == 200, resp.text[:300]

        resp = requests.post(server.url + "/jmap/", data=_echo_of_size(limit + 1), headers=headers, timeout=60)
        assert resp.status_code == 400
        assert resp.headers["Content-Type"] == "application/problem+json"
        assert resp.json()["type"] == "urn:ietf:params:jmap:error:limit"
        assert resp.json()["limit"] == "maxSizeRequest"

        # A Content-Length past the server's largest body (HTTP_MAX_BODY, above every endpoint's
        # own limit) is refused by the worker before any of the body is read. Between the two
        # limits the event-loop worker reads the body and the JMAP view refuses it, as above.
        status, body = raw_http(server.url, (
            f"POST /jmap/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {16 * 1024 * 1024 + 1}\r\nConnection: close\r\n\r\n").encode(), b"{", timeout=30)
        assert status == 413, body
