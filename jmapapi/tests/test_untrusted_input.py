"""Bad input at the JMAP face answers the documented error, never a 5xx nor serverFail:
the advertised request size, lone surrogates, NUL, deep nesting (issue 10, items 10 and 11)."""
import json

import pytest

from accounts.models import Account

from tests.clients import USING

pytestmark = pytest.mark.django_db

CORE = "urn:ietf:params:jmap:core"
LIMIT = 10_000_000


def _echo_of_size(size: int) -> bytes:
    head, tail = b'{"using":["' + CORE.encode() + b'"],"methodCalls":[["Core/echo",{"p":"', b'"},"c"]]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_session_advertises_the_size_the_endpoint_accepts(jmap):
    core = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()["capabilities"][CORE]
    assert core["maxSizeRequest"] == LIMIT


def test_a_request_of_exactly_max_size_request_is_accepted(jmap):
    body = _echo_of_size(LIMIT)
    assert len(body) == LIMIT
    resp = jmap.post(body)
    assert resp.status_code == 200, resp.content[:300]
    assert len(resp.json()["methodResponses"][0][1]["p"]) > 9_000_000


@pytest.mark.parametrize("size", [LIMIT + 1, 3_000_000 + LIMIT])
def test_a_request_above_max_size_request_is_the_jmap_limit_problem(jmap, size):
    resp = jmap.post(_echo_of_size(size))
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:limit"
    assert resp.json()["limit"] == "maxSizeRequest"


def test_a_3mb_request_is_not_djangos_html_400(jmap):
    # 3 MB is over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) and under the advertised limit.
    resp = jmap.post(_echo_of_size(3_000_000))
    assert resp.status_code == 200


def _raw(jmap, calls: str) -> bytes:
    return jmap.post(f'{{"using":{json.dumps(USING)},"methodCalls":{calls}}}'.encode())


@pytest.mark.parametrize("calls", [
    '[["Core/echo",{"\\ud800":"x"},"c"]]',
    '[["Core/echo",{"a":["\\udfff"]},"c"]]',
    '[["x:Account/set",{"create":{"k":{"@type":"User","name":"\\ud800","domainId":"b"}}},"c"]]',
    '[["x:Account/query",{"filter":{"name":"\\ud800"}},"c"]]',
    '[["x:Account/query",{"filter":{"text":"a\\udc00b"}},"c"]]',
    '[["x:Role/set",{"create":{"k":{"name":"r","description":"\\ud83d"}}},"c"]]',
])
def test_lone_surrogates_are_not_i_json(jmap, calls):
    resp = _raw(jmap, calls)
    assert resp.status_code == 400, resp.content
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    assert "surrogate" in resp.json()["detail"]


def test_a_surrogate_pair_is_a_character(jmap):
    resp = _raw(jmap, '[["Core/echo",{"a":"\\ud83d\\ude00"},"c"]]')
    assert resp.status_code == 200
    assert resp.json()["methodResponses"][0][1] == {"a": "\U0001F600"}


def test_utf8_encoded_surrogates_are_not_utf8(jmap):
    resp = jmap.post(b'{"using":["' + CORE.encode() + b'"],"methodCalls":[["Core/echo",{"a":"\xed\xa0\x80"},"c"]]}')
    assert resp.status_code == 400
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON"


@pytest.mark.parametrize("call", [
    ["x:Account/set", {"create": {"k": {"@type": "User", "name": "a\u0000b", "domainId": "b"}}}],
    ["x:Account/query", {"filter": {"name": "\u0000"}}],
    ["x:Account/query", {"filter": {"text": "\u0000"}}],
    ["x:Role/set", {"create": {"k": {"name": "r", "description": "x\u0000"}}}],
    ["x:Account/get", {"ids": ["\u0000"]}],
    ["x:Authentication/set", {"update": {"singleton": {"passwordHashAlgorithm": "\u0000"}}}],
    ["x:Account/set", {"update": {"b": {"\u0000": 1}}}],
])
def test_nul_is_refused_with_invalid_arguments_before_any_query(jmap, call):
    before = Account.objects.count()
    got = jmap.call(call[0], call[1])
    assert got[0] == "error"
    assert got[1]["type"] == "invalidArguments"
    assert "NUL" in got[1]["description"]
    assert Account.objects.count() == before


def test_nul_fails_only_its_own_call(jmap):
    resp = jmap.post({"using": USING, "methodCalls": [["Core/echo", {"a": "\u0000"}, "a"],
                                                      ["Core/echo", {"a": "fine"}, "b"]]})
    assert resp.status_code == 200
    first, second = resp.json()["methodResponses"]
    assert first[0] == "error" and first[1]["type"] == "invalidArguments"
    assert second == ["Core/echo", {"a": "fine"}, "b"]


@pytest.mark.parametrize("depth", [129, 1000, 5000])
def test_deep_nesting_is_not_json(jmap, depth):
    resp = _raw(jmap, f'[["Core/echo",{{"a":{"[" * depth + "]" * depth}}},"c"]]')
    assert resp.status_code == 400
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    assert "nested" in resp.json()["detail"]


# --- filter limits --------------------------------------------------------------------------
def test_session_advertises_the_filter_limits(jmap):
    doc = jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=jmap.auth).json()
    assert doc["capabilities"]["urn:stalwart:jmap"] == {"maxFilterConditions": 100, "maxFilterDepth": 16}


@pytest.mark.parametrize("method", ["x:ApiKey/query", "x:Account/query", "x:Role/query"])
def test_an_or_of_1001_conditions_is_refused_naming_the_limit(jmap, method):
    err = jmap.error(method, {"filter": {"operator": "OR", "conditions": [{"name": f"n{i}"} for i in range(1001)]}})
    assert err["type"] == "unsupportedFilter"
    assert "maxFilterConditions" in err["description"]


def test_the_largest_advertised_filter_runs(jmap):
    conditions = [{"text": f"t{i}"} for i in range(99)]
    got = jmap.ok("x:Account/query", {"filter": {"operator": "OR", "conditions": conditions}})
    assert got["ids"] == []


def test_filters_deeper_than_advertised_are_refused(jmap):
    filt = {"name": "x"}
    for _ in range(17):
        filt = {"operator": "NOT", "conditions": [filt]}
    err = jmap.error("x:Account/query", {"filter": filt})
    assert err["type"] == "unsupportedFilter" and "maxFilterDepth" in err["description"]


# --- "@type" of the wrong JSON type ---------------------------------------------------------
WRONG_TYPES = [["User"], {"User": True}, []]


@pytest.mark.parametrize("wrong", WRONG_TYPES)
@pytest.mark.parametrize("name", ["x:Account", "x:Tenant", "x:Directory"])
def test_type_of_the_wrong_json_type_is_an_error_not_server_fail(jmap, name, wrong):
    resp = jmap.post({"using": USING, "methodCalls": [
        [f"{name}/set", {"create": {"k": {"@type": wrong, "name": "z"}}}, "s"],
        [f"{name}/query", {"filter": {"@type": wrong}}, "q"]]})
    assert resp.status_code == 200
    set_resp, query_resp = resp.json()["methodResponses"]
    assert set_resp[0] == f"{name}/set", set_resp
    assert set_resp[1]["created"] is None
    assert set_resp[1]["notCreated"]["k"]["type"] in ("invalidProperties", "invalidPatch", "validationFailed")
    assert query_resp[0] == "error" and query_resp[1]["type"] in ("unsupportedFilter", "invalidArguments")


@pytest.mark.parametrize("wrong", WRONG_TYPES)
def test_composite_type_of_the_wrong_json_type_is_invalid_properties(jmap, admin_account, wrong):
    from registry import ids

    got = jmap.ok("x:Account/set", {"update": {ids.encode(admin_account.pk): {"roles": {"@type": wrong}}}})
    assert got["notUpdated"][ids.encode(admin_account.pk)]["type"] in ("invalidProperties", "invalidPatch")


# --- NUL in Basic credentials (PostgreSQL refuses NUL in text) -------------------------------
@pytest.mark.parametrize("name, secret", [("admin\u0000@example.org", "x"), ("\u0000", ""),
                                          ("admin@example.org", "a\u0000b")])
def test_nul_in_basic_credentials_is_a_401(client, admin_account, name, secret):
    import base64

    header = "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()
    for path in ("/jmap/", "/jmap/session"):
        resp = (client.post(path, data="{}", content_type="application/json", HTTP_AUTHORIZATION=header)
                if path == "/jmap/" else client.get(path, HTTP_AUTHORIZATION=header))
        assert resp.status_code == 401
        assert resp["Content-Type"] == "application/problem+json"


# --- final pass (issue 10): inputs the items above do not name -------------------------------
@pytest.mark.parametrize("body", [
    # Two envelopes in one: a filter in front that reads the first "methodCalls" sees an echo.
    '{"using":%s,"methodCalls":[["Core/echo",{},"c"]],"methodCalls":[["x:Role/set",{"destroy":["b"]},"c"]]}',
    '{"using":%s,"methodCalls":[["Core/echo",{"a":1,"a":2},"c"]]}',
    '{"using":%s,"methodCalls":[["x:Role/set",{"create":{"k":{"name":"r","description":"x","description":"y"}}},"c"]]}',
])
def test_duplicate_member_names_are_not_i_json(jmap, body):
    resp = jmap.post((body % json.dumps(USING)).encode())
    assert resp.status_code == 400, resp.content
    assert resp.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    assert "twice" in resp.json()["detail"]


def test_equal_member_names_in_different_objects_are_fine(jmap):
    resp = _raw(jmap, '[["Core/echo",{"a":{"a":1},"b":[{"a":2},{"a":3}]},"c"]]')
    assert resp.status_code == 200, resp.content
    assert resp.json()["methodResponses"][0][1] == {"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}
