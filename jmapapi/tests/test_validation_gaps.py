"""Values refused at set time through x:T/set (issue 10, item 12): each answers a SetError
naming the property, and nothing is written."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("url", ["javascript:alert(1)//", "not a url", "ftp://mail.example.org", "//mail.example.org"])
def test_public_url_must_be_an_absolute_http_url(jmap, url):
    got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"publicUrl": url}}})
    error = got["notUpdated"]["singleton"]
    assert error["type"] in ("invalidProperties", "validationFailed") and "publicUrl" in str(error), error
    assert jmap.ok("x:SystemSettings/get", {"ids": ["singleton"]})["list"][0]["publicUrl"] != url


def test_public_url_accepts_http_and_https(jmap):
    for url in ("https://mail.example.org", "http://127.0.0.1:8080/"):
        got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"publicUrl": url}}})
        assert "singleton" in got["updated"], got


@pytest.mark.parametrize("bind", [{}, {"": True}, {"0.0.0.0": True}, {"mail.example.org:25": True}])
def test_listener_bind_must_be_address_and_port(jmap, bind):
    got = jmap.ok("x:NetworkListener/set", {"create": {"l": {"name": "bad", "bind": bind}}})
    error = got["notCreated"]["l"]
    assert error["type"] in ("invalidProperties", "validationFailed") and "bind" in str(error), error


@pytest.mark.parametrize("props", [{"name": "ok", "description": "a\x1bb"}, {"name": "line\nbreak", "description": "x"}])
def test_role_names_refuse_control_characters(jmap, props):
    got = jmap.ok("x:Role/set", {"create": {"r": props}})
    error = got["notCreated"]["r"]
    assert error["type"] in ("invalidProperties", "validationFailed"), error
    assert set(props) & set(str(error).replace("'", " ").split()), error


@pytest.mark.parametrize("name", ["", "   "])
def test_role_names_refuse_empty(jmap, name):
    got = jmap.ok("x:Role/set", {"create": {"r": {"name": name, "description": "x"}}})
    error = got["notCreated"]["r"]
    assert error["type"] == "validationFailed" and error["validationErrors"][0]["property"] == "name", error


def test_role_names_are_optional(jmap):
    got = jmap.ok("x:Role/set", {"create": {"a": {"description": "no name"}, "b": {"name": None, "description": "null"},
                                            "c": {"name": "ops", "description": "named"}}})
    assert set(got["created"]) == {"a", "b", "c"}, got
    listed = jmap.ok("x:Role/get", {"ids": [got["created"][k]["id"] for k in "abc"], "properties": ["name"]})["list"]
    assert sorted(str(r["name"]) for r in listed) == ["None", "None", "ops"], listed


def test_role_names_refuse_nul(jmap):
    # NUL never reaches the declaration: every JMAP argument holding one is refused first.
    got = jmap.call("x:Role/set", {"create": {"r": {"name": "a\x00b", "description": "x"}}})
    assert got[0] == "error" and got[1]["type"] == "invalidArguments" and "/create/r/name" in got[1]["description"], got


@pytest.mark.parametrize("headers", [{"Set-Cookie": "sid=attacker"}, {"set-cookie2": "x=1"}, {"Connection": "close"},
                                     {"Keep-Alive": "timeout=5"}, {"Upgrade": "h2c"}, {"TE": "trailers"},
                                     {"Trailer": "X"}, {"Proxy-Authenticate": "Basic"}, {"X-A\n": "b"}])
def test_response_headers_refuse_cookies_and_hop_by_hop(jmap, headers):
    got = jmap.ok("x:Http/set", {"update": {"singleton": {"responseHeaders": headers}}})
    error = got["notUpdated"]["singleton"]
    assert error["type"] == "invalidProperties" and error["properties"] == ["responseHeaders"], error


@pytest.mark.parametrize("props", [{"logo": "javascript:alert(1)"}, {"logo": "vbscript:x"},
                                   {"description": "evil\x07bell"}, {"logo": "https://x.example/\nlogo.png"}])
def test_oauth_client_metadata_through_jmap(jmap, props):
    got = jmap.ok("x:OAuthClient/set", {"create": {"c": {"clientId": "meta-test", **props}}})
    error = (got.get("notCreated") or {}).get("c")
    assert error is not None and error["type"] in ("invalidProperties", "validationFailed"), got


@pytest.mark.parametrize("meta", [{"logo_uri": "javascript:alert(1)"}, {"client_uri": "data:text/html,x"},
                                  {"policy_uri": "file:///etc/passwd"}, {"tos_uri": "not a url"},
                                  {"client_name": "a\x00b"}, {"client_name": "line\nbreak"}])
def test_oauth_client_metadata_at_registration(client, db, meta):
    import json

    body = {"redirect_uris": ["https://app.example/cb"], **meta}
    resp = client.post("/auth/register", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 400, resp.content
    assert resp.json()["error"] == "invalid_client_metadata"


def test_oauth_registration_accepts_https_metadata(client, db):
    import json

    body = {"redirect_uris": ["https://app.example/cb"], "logo_uri": "https://app.example/logo.png",
            "client_uri": "https://app.example/", "tos_uri": "https://app.example/tos"}
    resp = client.post("/auth/register", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 201, resp.content
