"""RFC 8620 envelope, errors, limits, result references, over HTTP."""
import json

import pytest

from jmapapi.models import Jmap as JmapSettings
from registry import services as registry

from tests.clients import USING, basic

pytestmark = pytest.mark.django_db


def test_well_known_redirects_to_the_session(client):
    resp = client.get("/.well-known/jmap")
    assert resp.status_code == 307 and resp["Location"] == "/jmap/session"


@pytest.mark.parametrize("path", ["/jmap", "/jmap/", "/api", "/jmap/session"])
def test_unauthenticated_calls_get_401_problem_with_both_challenges(client, path):
    resp = client.post(path, data="{}", content_type="application/json") if path != "/jmap/session" else client.get(path)
    assert resp.status_code == 401
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json() == {"type": "about:blank", "status": 401, "title": "Unauthorized",
                           "detail": "You have to authenticate first."}
    challenge = resp["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'Basic realm="Stalwart Server"' in challenge


def test_wrong_password_unknown_scheme_and_garbage_are_401(client, admin_account):
    for header in (basic("admin@example.org", "wrong"), "Digest abc", "Basic !!!notbase64", "Bearer nope",
                   basic("nobody@example.org")):
        resp = client.post("/jmap/", data="{}", content_type="application/json", HTTP_AUTHORIZATION=header)
        assert resp.status_code == 401, header


def test_session_document(jmap, admin_account):
    resp = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth)
    assert resp.status_code == 200
    doc = resp.json()
    core = doc["capabilities"]["urn:ietf:params:jmap:core"]
    assert core == {"maxSizeUpload": 50000000, "maxConcurrentUpload": 4, "maxSizeRequest": 10000000,
                    "maxConcurrentRequests": 4, "maxCallsInRequest": 16, "maxObjectsInGet": 500,
                    "maxObjectsInSet": 500,
                    "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"]}
    assert "urn:stalwart:jmap" in doc["capabilities"]
    from registry import ids

    account_id = ids.encode(admin_account.pk)
    assert doc["accounts"][account_id]["name"] == "admin@example.org"
    assert doc["accounts"][account_id]["isPersonal"] is True
    assert doc["primaryAccounts"]["urn:stalwart:jmap"] == account_id
    assert doc["username"] == "admin@example.org"
    assert doc["apiUrl"].startswith("http") and doc["apiUrl"].endswith("/jmap/")
    assert "{accountId}" in doc["downloadUrl"] and "{blobId}" in doc["downloadUrl"]
    assert isinstance(doc["state"], str) and doc["state"]


@pytest.mark.parametrize("model, served", [("asgi", True), ("sync", False)])
def test_the_websocket_is_advertised_only_by_the_model_that_serves_it(jmap, settings, model, served):
    settings.SERVER_MODEL = model
    doc = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()
    websocket = doc["capabilities"].get("urn:ietf:params:jmap:websocket")
    if served:
        assert websocket == {"url": doc["apiUrl"].replace("http", "ws", 1).removesuffix("/jmap/") + "/jmap/ws",
                             "supportsPush": True}
    else:
        assert websocket is None
    # Everything else is the same under both.
    assert doc["eventSourceUrl"].endswith("/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}")


def test_limits_come_from_the_jmap_settings(jmap):
    registry.update(JmapSettings._declaration, None, {"max_method_calls": 3, "get_max_results": 2}, "t")
    doc = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()
    assert doc["capabilities"]["urn:ietf:params:jmap:core"]["maxCallsInRequest"] == 3
    resp = jmap.post({"using": USING, "methodCalls": [["Core/echo", {}, str(i)] for i in range(4)]})
    assert resp.status_code == 400
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:limit"
    assert resp.json()["limit"] == "maxCallsInRequest"
    err = jmap.error("x:Role/get", {"ids": ["b", "c", "d"]})
    assert err["type"] == "requestTooLarge"


def test_core_echo_on_every_endpoint(jmap):
    for path in ("/jmap", "/jmap/", "/api"):
        resp = jmap.post({"using": ["urn:ietf:params:jmap:core"],
                          "methodCalls": [["Core/echo", {"hello": [1, {"a": None}]}, "e1"]]}, path=path)
        assert resp.status_code == 200
        body = resp.json()
        assert body["methodResponses"] == [["Core/echo", {"hello": [1, {"a": None}]}, "e1"]]
        assert "sessionState" in body and "createdIds" not in body


@pytest.mark.parametrize("body, kind", [
    (b"not json", "notJSON"),
    (b'{"using": [], "methodCalls": [', "notJSON"),
    (b"[]", "notRequest"),
    (b'{"methodCalls": []}', "notRequest"),
    (b'{"using": ["urn:ietf:params:jmap:core"]}', "notRequest"),
    (b'{"using": "urn:ietf:params:jmap:core", "methodCalls": []}', "notRequest"),
    (b'{"using": [1], "methodCalls": []}', "notRequest"),
    (b'{"using": [], "methodCalls": {"a": 1}}', "notRequest"),
    (b'{"using": [], "methodCalls": [["Core/echo", {}]]}', "notRequest"),
    (b'{"using": [], "methodCalls": [["Core/echo", [], "a"]]}', "notRequest"),
    (b'{"using": [], "methodCalls": [[1, {}, "a"]]}', "notRequest"),
    (b'{"using": [], "methodCalls": [["Core/echo", {}, 7]]}', "notRequest"),
    (b'{"using": [], "methodCalls": [], "createdIds": []}', "notRequest"),
    (b'{"using": ["urn:example:nope"], "methodCalls": []}', "unknownCapability"),
])
def test_request_level_errors_are_problem_json(jmap, body, kind):
    resp = jmap.post(body)
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/problem+json"
    problem = resp.json()
    assert problem["type"] == f"urn:ietf:params:jmap:error:{kind}"
    assert problem["status"] == 400 and problem["detail"]
    assert "not json" not in problem["detail"]  # the parse error, not the echoed body


def test_wrong_content_type_is_not_json(jmap):
    resp = jmap.post({"using": [], "methodCalls": []}, content_type="text/plain")
    assert resp.status_code == 400 and resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON"


def test_oversized_request_is_a_limit_error(jmap):
    registry.update(JmapSettings._declaration, None, {"max_request_size": 2048}, "t")
    resp = jmap.post({"using": USING, "methodCalls": [["Core/echo", {"pad": "x" * 4096}, "a"]]})
    assert resp.status_code == 400
    assert resp.json()["limit"] == "maxSizeRequest"


def test_get_is_not_allowed(jmap):
    resp = jmap.client.get("/jmap/", HTTP_AUTHORIZATION=jmap.auth)
    assert resp.status_code == 405 and resp.json()["status"] == 405


def test_unknown_method_and_missing_capability(jmap):
    assert jmap.error("Nope/get", {})["type"] == "unknownMethod"
    assert jmap.error("x:authentication/get", {})["type"] == "unknownMethod"  # case-sensitive
    assert jmap.error("x:Authentication/query", {})["type"] == "unknownMethod"  # singleton has no query
    err = jmap.error("Core/echo", {}, using=["urn:stalwart:jmap"])
    assert err["type"] == "unknownMethod" and "urn:ietf:params:jmap:core" in err["description"]
    # management objects never require urn:stalwart:jmap in `using`
    assert jmap.ok("x:Authentication/get", {"ids": None}, using=[])["list"][0]["id"] == "singleton"


def test_calls_run_in_order_and_continue_after_an_error(jmap):
    resp = jmap.post({"using": USING, "methodCalls": [
        ["Core/echo", {"n": 1}, "a"], ["Nope/nope", {}, "b"], ["Core/echo", {"n": 3}, "c"]]})
    names = [(r[0], r[2]) for r in resp.json()["methodResponses"]]
    assert names == [("Core/echo", "a"), ("error", "b"), ("Core/echo", "c")]


def test_account_id_checks(jmap, admin_account):
    from registry import ids

    own = ids.encode(admin_account.pk)
    assert jmap.ok("x:Authentication/get", {"accountId": own})["accountId"] == own
    assert jmap.error("x:Authentication/get", {"accountId": 42})["type"] == "accountNotFound"
    assert jmap.error("x:Authentication/get", {"accountId": "!!"})["type"] == "accountNotFound"


def test_result_references(jmap):
    resp = jmap.post({"using": USING, "methodCalls": [
        ["x:Role/query", {"filter": {"description": "User"}}, "q"],
        ["x:Role/get", {"#ids": {"resultOf": "q", "name": "x:Role/query", "path": "/ids"},
                        "properties": ["description"]}, "g"],
        ["x:Role/get", {"#ids": {"resultOf": "g", "name": "x:Role/get", "path": "/list/*/id"}}, "g2"],
    ]})
    out = resp.json()["methodResponses"]
    assert [d["description"] for d in out[1][1]["list"]] == ["User"]
    assert out[2][1]["list"][0]["id"] == out[1][1]["list"][0]["id"]


@pytest.mark.parametrize("ref", [
    {"resultOf": "missing", "name": "x:Role/query", "path": "/ids"},
    {"resultOf": "q", "name": "x:Role/get", "path": "/ids"},
    {"resultOf": "q", "name": "x:Role/query", "path": "/nothing/here"},
    {"resultOf": "q", "name": "x:Role/query", "path": "ids"},
    {"resultOf": "q", "name": "x:Role/query"},
    "q",
    {"resultOf": "self", "name": "x:Role/get", "path": "/ids"},
])
def test_bad_result_references(jmap, ref):
    resp = jmap.post({"using": USING, "methodCalls": [
        ["x:Role/query", {}, "q"], ["x:Role/get", {"#ids": ref}, "self"]]})
    err = resp.json()["methodResponses"][1]
    assert err[0] == "error" and err[1]["type"] == "invalidResultReference"


def test_long_reference_chain(jmap):
    calls = [["Core/echo", {"v": [1, 2, 3]}, "c0"]]
    for i in range(1, 16):
        calls.append(["Core/echo", {"#v": {"resultOf": f"c{i - 1}", "name": "Core/echo", "path": "/v"}}, f"c{i}"])
    out = jmap.post({"using": USING, "methodCalls": calls}).json()["methodResponses"]
    assert out[-1] == ["Core/echo", {"v": [1, 2, 3]}, "c15"]


def test_both_plain_and_referenced_argument_is_invalid(jmap):
    resp = jmap.post({"using": USING, "methodCalls": [
        ["x:Role/query", {}, "q"],
        ["x:Role/get", {"ids": [], "#ids": {"resultOf": "q", "name": "x:Role/query", "path": "/ids"}}, "g"]]})
    assert resp.json()["methodResponses"][1][1]["type"] == "invalidArguments"


def test_echo_needs_its_permission(client, make_account):
    from accounts.models import Role
    from registry import services

    role = services.create(Role._declaration, {"description": "Login only", "enabled_permissions": ["authenticate"]},
                           "t")
    make_account("limited", roles_mode="custom", roles=[role.pk])
    from tests.clients import Jmap

    err = Jmap(client, basic("limited@example.org")).error("Core/echo", {})
    assert err["type"] == "forbidden"




def test_json_body_is_compact_utf8(jmap):
    resp = jmap.post({"using": USING, "methodCalls": [["Core/echo", {"ü": "✓"}, "a"]]})
    assert resp["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(resp.content)["methodResponses"][0][1] == {"ü": "✓"}


def test_a_failing_method_costs_one_call_and_rolls_back(jmap):
    """A bug in a method gives serverFail for that call only, and its writes are undone."""
    from accounts.models import Role
    from jmapapi import engine

    def broken(ctx, args):
        Role.objects.create(description="half-written")
        raise RuntimeError("boom")

    engine.METHODS["Test/broken"] = engine.Method("Test/broken", broken, engine.CORE)
    try:
        resp = jmap.post({"using": USING, "methodCalls": [["Test/broken", {}, "a"], ["Core/echo", {"ok": 1}, "b"]]})
    finally:
        del engine.METHODS["Test/broken"]
    out = resp.json()["methodResponses"]
    assert out[0] == ["error", {"type": "serverFail", "description": "The server failed to process this call."}, "a"]
    assert out[1] == ["Core/echo", {"ok": 1}, "b"]
    assert not Role.objects.filter(description="half-written").exists()
