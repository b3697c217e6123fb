"""JMAP over WebSocket (RFC 8887, docs/push.md#websocket) against gunicorn with the project's
event-loop worker, driven by a real client (`websockets`, PyPI). Two worker processes: a change
committed through HTTP by one reaches the connections the other holds (on SQLite the workers
read the journal; with DATABASE_URL and REDIS_URL set they hear it on the Redis channel).
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from contextlib import ExitStack

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .live import live_server, on_two_workers

CORE = "urn:ietf:params:jmap:core"
MAIL = [CORE, "urn:ietf:params:jmap:mail"]
STALWART = "urn:stalwart:jmap"
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
DOMAIN = "ws.example"
# Read timeout of the server's HTTP requests: a WebSocket idle for longer must live on.
READ_TIMEOUT = 2


def basic(login: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def server():
    with live_server(workers=2, extra_env={"HTTP_READ_TIMEOUT": str(READ_TIMEOUT), "ACCESS_LOG": "-"}) as live:
        names = [f"ws{secrets.token_hex(3)}" for _ in range(3)]
        live.users = [tuple(pair) for pair in live.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import ids, services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "ws tests"}}, "test")
result = []
for name in {names!r}:
    acct = services.create_account({{"name": name, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                                   "test", password={PASSWORD!r})
    result.append([ids.encode(acct.pk), acct.email_address])
""")]
        yield live


def ws_url(server, query: str = "") -> str:
    return "ws" + server.url.removeprefix("http") + "/jmap/ws" + query


def open_ws(server, authorization: str | None = None, query: str = "", subprotocols=("jmap",)):
    headers = {"Authorization": authorization} if authorization else {}
    return connect(ws_url(server, query), subprotocols=list(subprotocols) if subprotocols else None,
                   additional_headers=headers, open_timeout=20, max_size=None, compression=None)


def refused(server, **kwargs) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        open_ws(server, **kwargs).close()
    return caught.value


def ask(ws, message: dict | str | bytes, timeout: float = 30) -> dict:
    ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))
    return json.loads(ws.recv(timeout=timeout))


def jmap(server, authorization: str, calls: list, using=MAIL) -> list:
    resp = requests.post(server.url + "/jmap/", json={"using": using, "methodCalls": calls},
                         headers={"Authorization": authorization}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["methodResponses"]


def create_mailbox(server, login: str, account: str) -> str:
    [[name, result, _]] = jmap(server, basic(login), [["Mailbox/set", {
        "accountId": account, "create": {"m": {"name": f"box-{secrets.token_hex(3)}"}}}, "0"]])
    assert name == "Mailbox/set" and result["created"], result
    return result["newState"]


def api_key(server, login: str) -> tuple[str, str]:
    [[_, got, _]] = jmap(server, basic(login), [["x:ApiKey/set", {"create": {"k": {"description": "ws"}}}, "0"]],
                         using=[CORE, STALWART])
    return got["created"]["k"]["id"], got["created"]["k"]["secret"]


def token(server, authorization: str, kind: str) -> str:
    resp = requests.get(f"{server.url}/api/token/{kind}", headers={"Authorization": authorization}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.text


def echo(request_id: str = "r1", **args) -> dict:
    return {"@type": "Request", "id": request_id, "using": [CORE], "methodCalls": [["Core/echo", args, "c0"]]}


def quiet(ws, seconds: float) -> bool:
    """Nothing arrives on `ws` for `seconds`."""
    try:
        ws.recv(timeout=seconds)
    except TimeoutError:
        return True
    return False


# --- the session and the handshake -----------------------------------------------------------------
def test_the_session_advertises_the_websocket_where_the_client_connected(server):
    _, login = server.users[0]
    session = requests.get(server.url + "/jmap/session", headers={"Authorization": basic(login)}, timeout=30).json()
    assert session["capabilities"]["urn:ietf:params:jmap:websocket"] == {"url": ws_url(server), "supportsPush": True}


def test_the_sync_serving_model_advertises_no_websocket_and_serves_none():
    with live_server(workers=1, extra_env={"SERVER_MODEL": "sync"}) as sync:
        name = f"ws{secrets.token_hex(3)}"
        login = sync.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "ws tests"}}, "test")
result = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                                 "test", password={PASSWORD!r}).email_address
""")
        session = requests.get(sync.url + "/jmap/session", headers={"Authorization": basic(login)}, timeout=30)
        assert session.status_code == 200
        assert "urn:ietf:params:jmap:websocket" not in session.json()["capabilities"]
        assert session.json()["eventSourceUrl"].startswith(sync.url + "/jmap/eventsource/")
        # What a client that tried anyway gets: the upgrade is refused.
        assert refused(sync, authorization=basic(login)).response.status_code == 400


def test_requests_and_responses_over_basic_auth(server):
    account, login = server.users[0]
    with open_ws(server, basic(login)) as ws:
        assert ws.subprotocol == "jmap"
        answer = ask(ws, echo("first", hello=[1, "two"]))
        assert answer["@type"] == "Response" and answer["requestId"] == "first"
        assert answer["methodResponses"] == [["Core/echo", {"hello": [1, "two"]}, "c0"]]
        assert answer["sessionState"]
        # Mailbox/get, through the same engine as HTTP: the same answer.
        get = {"using": MAIL, "methodCalls": [["Mailbox/get", {"accountId": account, "ids": None}, "g"]]}
        answer = ask(ws, {"@type": "Request", **get})
        assert "requestId" not in answer  # none was given
        [[name, result, call_id]] = answer["methodResponses"]
        assert (name, call_id) == ("Mailbox/get", "g")
        assert "inbox" in {box["role"] for box in result["list"]}
        [[_, over_http, _]] = jmap(server, basic(login), get["methodCalls"])
        assert result == over_http
        # Creation ids and createdIds work as over HTTP.
        answer = ask(ws, {"@type": "Request", "id": "c", "using": MAIL, "createdIds": {}, "methodCalls": [
            ["Mailbox/set", {"accountId": account, "create": {"n": {"name": "over-ws"}}}, "s"],
            ["Mailbox/get", {"accountId": account, "ids": ["#n"]}, "g"]]})
        assert answer["requestId"] == "c" and "n" in answer["createdIds"]
        assert answer["methodResponses"][1][1]["list"][0]["name"] == "over-ws"


def test_bearer_api_key_and_a_revoked_key_ends_the_connection(server):
    _, login = server.users[1]
    key_id, secret = api_key(server, login)
    with open_ws(server, f"Bearer {secret}") as ws:
        assert ask(ws, echo("b"))["methodResponses"] == [["Core/echo", {}, "c0"]]
        # The key is destroyed over HTTP: its next request over the socket ends the connection.
        [[_, destroyed, _]] = jmap(server, basic(login), [["x:ApiKey/set", {"destroy": [key_id]}, "0"]],
                                   using=[CORE, STALWART])
        assert destroyed["destroyed"] == [key_id]
        ws.send(json.dumps(echo("after")))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert refused(server, authorization=f"Bearer {secret}").response.status_code == 401


def test_a_token_in_the_query_for_browsers_and_tokens_of_another_kind(server):
    account, login = server.users[0]
    ws_token = token(server, basic(login), "websocket")
    with open_ws(server, query=f"?token={requests.utils.quote(ws_token)}") as ws:
        answer = ask(ws, {"@type": "Request", "id": "t", "using": MAIL,
                          "methodCalls": [["Mailbox/get", {"accountId": account, "ids": []}, "g"]]})
        assert answer["methodResponses"][0][0] == "Mailbox/get", answer
    # An EventSource token opens no WebSocket, a WebSocket token no EventSource.
    es_token = token(server, basic(login), "eventsource")
    assert refused(server, query=f"?token={requests.utils.quote(es_token)}").response.status_code == 401
    resp = requests.get(f"{server.url}/jmap/eventsource/?types=*&token={requests.utils.quote(ws_token)}", timeout=30)
    assert resp.status_code == 401
    # A tampered token, and a token with another account's credentials.
    assert refused(server, query="?token=" + requests.utils.quote(ws_token[:-2] + "xx")).response.status_code == 401
    _, other = server.users[1]
    assert refused(server, authorization=basic(other),
                   query=f"?token={requests.utils.quote(ws_token)}").response.status_code == 403
    # The token is not logged (nor is any query string).
    assert ws_token not in (server.var_dir / "gunicorn.log").read_text()


def test_refusals_of_the_upgrade(server):
    _, login = server.users[0]
    no_auth = refused(server)
    assert no_auth.response.status_code == 401
    assert "Basic" in no_auth.response.headers["WWW-Authenticate"]
    assert json.loads(no_auth.response.body)["status"] == 401
    assert refused(server, authorization=basic(login, "wrong-password")).response.status_code == 401
    assert refused(server, authorization="Digest abc").response.status_code == 401
    no_protocol = refused(server, authorization=basic(login), subprotocols=())
    assert no_protocol.response.status_code == 400
    assert refused(server, authorization=basic(login), subprotocols=("chat",)).response.status_code == 400
    # A plain GET (no upgrade) is told what the endpoint is.
    plain = requests.get(server.url + "/jmap/ws", headers={"Authorization": basic(login)}, timeout=30)
    assert plain.status_code == 400 and plain.headers["Content-Type"] == "application/problem+json"
    # No other path opens a WebSocket.
    with pytest.raises(InvalidStatus) as caught:
        connect("ws" + server.url.removeprefix("http") + "/jmap/eventsource", subprotocols=["jmap"],
                additional_headers={"Authorization": basic(login)}, open_timeout=20).close()
    assert caught.value.response.status_code == 404
    assert "Traceback" not in (server.var_dir / "gunicorn.log").read_text()


def test_bad_messages_get_request_errors_and_the_connection_stays_usable(server):
    _, login = server.users[0]
    session = requests.get(server.url + "/jmap/session", headers={"Authorization": basic(login)}, timeout=30).json()
    core = session["capabilities"][CORE]
    with open_ws(server, basic(login)) as ws:
        def error(message) -> dict:
            got = ask(ws, message)
            assert got["@type"] == "RequestError", got
            return got

        assert error(b'{"@type":"Request"}')["type"] == "urn:ietf:params:jmap:error:notJSON"  # a binary frame
        assert error("{not json")["type"] == "urn:ietf:params:jmap:error:notJSON"
        assert error("[1, 2]")["type"] == "urn:ietf:params:jmap:error:notRequest"
        unknown = error({"@type": "Nonsense", "id": "u1"})
        assert unknown["type"] == "urn:ietf:params:jmap:error:notRequest" and unknown["requestId"] == "u1"
        assert unknown["status"] == 400 and unknown["detail"]
        missing = error({"@type": "Request", "id": "m1", "methodCalls": []})
        assert missing["type"] == "urn:ietf:params:jmap:error:notRequest" and missing["requestId"] == "m1"
        assert error({"@type": "Request", "id": 5, "using": [CORE], "methodCalls": []})["type"].endswith("notRequest")
        assert error({"@type": "Request", "using": ["urn:x"], "methodCalls": []})["type"].endswith("unknownCapability")
        too_many = error({"@type": "Request", "id": "tm", "using": [CORE],
                          "methodCalls": [["Core/echo", {}, str(i)] for i in range(core["maxCallsInRequest"] + 1)]})
        assert too_many["type"] == "urn:ietf:params:jmap:error:limit" and too_many["limit"] == "maxCallsInRequest"
        assert error({"@type": "WebSocketPushEnable", "dataTypes": ["Nope"]})["type"].endswith("notRequest")
        assert error({"@type": "WebSocketPushEnable", "pushState": "x:y"})["type"].endswith("notRequest")
        deep = "[" * 200 + "]" * 200
        assert error('{"@type":"Request","using":[],"methodCalls":[],"x":' + deep + "}")["type"].endswith("notJSON")
        # One byte over maxSizeRequest: the limit error, not a closed connection nor a 5xx.
        padding = core["maxSizeRequest"] - len(json.dumps(echo("big", pad="")))
        big = json.dumps(echo("big", pad="x" * (padding + 1)))
        assert len(big) == core["maxSizeRequest"] + 1
        over = error(big)
        assert over["type"] == "urn:ietf:params:jmap:error:limit" and over["limit"] == "maxSizeRequest"
        # Exactly the limit is served.
        fits = json.dumps(echo("fit", pad="x" * padding))
        assert len(fits) == core["maxSizeRequest"]
        answer = ask(ws, fits)
        assert answer.get("methodResponses", [[0, {}]])[0][1].get("pad") == "x" * padding, str(answer)[:300]
        # Idle for longer than the HTTP read timeout: the connection is not an HTTP request.
        time.sleep(READ_TIMEOUT + 1)
        assert ask(ws, echo("still"))["requestId"] == "still"
    assert "Traceback" not in (server.var_dir / "gunicorn.log").read_text()


# --- push ------------------------------------------------------------------------------------------
def next_change(ws, timeout: float = 10) -> dict:
    got = json.loads(ws.recv(timeout=timeout))
    assert got["@type"] == "StateChange", got
    return got


def test_push_after_a_change_over_http_then_disable_and_resume_from_the_push_state(server):
    account, login = server.users[0]
    with open_ws(server, basic(login)) as ws:
        assert quiet(ws, 0.3)  # nothing before WebSocketPushEnable
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
        # Messages are handled in order: once this is answered, push is on. Nothing was pushed
        # when it was enabled (only changes from then on).
        assert ask(ws, echo("on"))["requestId"] == "on"
        state = create_mailbox(server, login, account)
        change = next_change(ws)
        assert change["changed"] == {account: {"Mailbox": state}}
        push_state = change["pushState"]
        assert isinstance(push_state, str) and push_state
        # Requests still answer while push is on.
        assert ask(ws, echo("during"))["requestId"] == "during"

        ws.send(json.dumps({"@type": "WebSocketPushDisable"}))
        assert ask(ws, echo("sync"))["requestId"] == "sync"  # the disable was handled before this
        later = create_mailbox(server, login, account)
        assert quiet(ws, 1.5)
        # Resuming from the pushState: what changed since is pushed at once (RFC 8887 §4.3.5).
        ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": push_state}))
        resumed = next_change(ws)
        assert resumed["changed"][account]["Mailbox"] == later
        assert resumed["pushState"] != push_state


def test_an_account_never_hears_of_another_accounts_changes(server):
    (account_a, login_a), (_, login_b) = server.users[0], server.users[2]
    with open_ws(server, basic(login_a)) as ws_a, open_ws(server, basic(login_b)) as ws_b:
        for ws in (ws_a, ws_b):
            ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": None}))
            assert ask(ws, echo("ready"))["requestId"] == "ready"
        state = create_mailbox(server, login_a, account_a)
        assert next_change(ws_a)["changed"] == {account_a: {"Mailbox": state}}
        assert quiet(ws_b, 1.5)


def test_a_change_reaches_connections_on_both_workers(server):
    account, login = server.users[1]
    with ExitStack() as stack:
        # The second opens while the first one's worker is paused: held by the other worker.
        opened = on_two_workers(server.url, lambda: stack.enter_context(open_ws(server, basic(login))),
                                lambda ws: ws.socket.getsockname()[1])
        for ws in opened:
            ws.send(json.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
            assert ask(ws, echo("ready"))["requestId"] == "ready"
        state = create_mailbox(server, login, account)
        for ws in opened:
            assert next_change(ws)["changed"] == {account: {"Mailbox": state}}
