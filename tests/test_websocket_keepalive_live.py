"""The JMAP WebSocket's keep-alive and idle timeout (docs/push.md#lifetime-and-limits) against
gunicorn with the project's worker, with short intervals set by the settings: the server pings,
drops a client that stops answering, and closes a connection that neither asks nor listens.

Two clients: `websockets` (PyPI), a real one that answers pings as every client does, and a
bare socket that speaks RFC 6455 frame by frame, so the test chooses whether a ping is answered.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import struct

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .live import host_port, live_server

CORE = "urn:ietf:params:jmap:core"
MAIL = [CORE, "urn:ietf:params:jmap:mail"]
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
DOMAIN = "keepalive.example"
PING_INTERVAL, PING_TIMEOUT, IDLE_TIMEOUT = 0.5, 3, 2
# RFC 6455 opcodes.
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def basic(login: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def server():
    env = {"WEBSOCKET_PING_INTERVAL": str(PING_INTERVAL), "WEBSOCKET_PING_TIMEOUT": str(PING_TIMEOUT),
           "WEBSOCKET_IDLE_TIMEOUT": str(IDLE_TIMEOUT), "ACCESS_LOG": "-"}
    with live_server(workers=1, extra_env=env) as live:
        name = f"ka{secrets.token_hex(3)}"
        live.account, live.login = live.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import ids, services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "keep-alive tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                               "test", password={PASSWORD!r})
result = [ids.encode(acct.pk), acct.email_address]
""")
        yield live


def echo(request_id: str) -> dict:
    return {"@type": "Request", "id": request_id, "using": [CORE], "methodCalls": [["Core/echo", {}, "c0"]]}


def create_mailbox(server) -> str:
    resp = requests.post(server.url + "/jmap/", headers={"Authorization": basic(server.login)}, timeout=30, json={
        "using": MAIL, "methodCalls": [["Mailbox/set", {"accountId": server.account, "create": {
            "m": {"name": f"box-{secrets.token_hex(3)}"}}}, "0"]]})
    assert resp.status_code == 200, resp.text
    [[_, result, _]] = resp.json()["methodResponses"]
    assert result["created"], result
    return result["newState"]


# --- a client that decides whether to answer ------------------------------------------------------
class BareClient:
    """RFC 6455 by hand: the upgrade, masked frames out, unmasked frames in."""

    def __init__(self, server):
        self.sock = socket.create_connection(host_port(server.url), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /jmap/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: jmap\r\nAuthorization: {basic(server.login)}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._exact(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        return first & 0x0F, self._exact(length)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def ask(self, message: dict) -> dict:
        self.send(TEXT, json.dumps(message, separators=(",", ":")).encode())
        while True:
            opcode, payload = self.frame()
            if opcode == TEXT:
                return json.loads(payload)
            assert opcode == PING, (opcode, payload)
            self.send(PONG, payload)

    def close(self) -> None:
        self.sock.close()


def test_the_server_pings_and_drops_a_client_that_stops_answering(server):
    client = BareClient(server)
    try:
        # Subscribed to push: the idle timeout does not apply, only the keep-alive does.
        client.send(TEXT, b'{"@type":"WebSocketPushEnable","dataTypes":null}')
        assert client.ask(echo("on"))["requestId"] == "on"
        # Answered pings keep it open: a few more pings than the timeout spans.
        for _ in range(int(PING_TIMEOUT / PING_INTERVAL) + 2):
            opcode, payload = client.frame()
            assert opcode == PING, (opcode, payload)
            client.send(PONG, payload)
        assert client.ask(echo("alive"))["requestId"] == "alive"
        # The next ping is left unanswered: the close (1011) follows, then the end of the socket.
        while (frame := client.frame())[0] != CLOSE:
            assert frame[0] == PING, frame
        code = struct.unpack("!H", frame[1][:2])[0]
        assert code == 1011, frame
        with pytest.raises((EOFError, ConnectionError)):
            while True:
                client.frame()
    finally:
        client.close()
    assert "Traceback" not in (server.var_dir / "gunicorn.log").read_text()


# --- a real client ------------------------------------------------------------------------------
def open_ws(server):
    # The client's own pings are off: only the server's keep the connection alive here.
    return connect("ws" + server.url.removeprefix("http") + "/jmap/ws", subprotocols=["jmap"],
                   additional_headers={"Authorization": basic(server.login)}, open_timeout=20, ping_interval=None)


def test_a_client_that_answers_pings_and_listens_for_pushes_stays_open(server):
    with open_ws(server) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
        ws.send(json.dumps(echo("on")))
        assert json.loads(ws.recv(timeout=30))["requestId"] == "on"
        # Longer than the idle timeout and than a ping's timeout, without a message either way.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=IDLE_TIMEOUT + PING_TIMEOUT + 1)
        state = create_mailbox(server)
        change = json.loads(ws.recv(timeout=30))
        assert change["@type"] == "StateChange" and change["changed"] == {server.account: {"Mailbox": state}}
        ws.send(json.dumps(echo("still")))
        assert json.loads(ws.recv(timeout=30))["requestId"] == "still"


def test_a_connection_with_no_request_and_no_push_subscription_is_closed(server):
    with open_ws(server) as ws:
        ws.send(json.dumps(echo("once")))
        assert json.loads(ws.recv(timeout=30))["requestId"] == "once"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1000
        assert closed.value.rcvd.reason == f"Idle for {IDLE_TIMEOUT} s: no request and no push subscription."


def test_disabling_push_starts_the_idle_clock(server):
    with open_ws(server) as ws:
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}))
        ws.send(json.dumps({"@type": "WebSocketPushDisable"}))
        ws.send(json.dumps(echo("off")))
        assert json.loads(ws.recv(timeout=30))["requestId"] == "off"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd.code == 1000
