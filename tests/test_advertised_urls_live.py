"""The addresses the server advertises lead back to it (issue 11 §5).

A gunicorn on a random port (never 8080) without PUBLIC_URL and without SystemSettings.publicUrl:
every URL in the JMAP session, both discovery documents (OAuth and OpenID Connect), the device
flow's verification URIs and the PACC document is built from the request (scheme of the
listener, Host checked against ALLOWED_HOSTS), and each one is followed to this server. Then
jmapc connects with what it reads; and once publicUrl is set, it is what every document says.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import jmapc
import pytest
import requests
from jmapc.methods import CoreEcho, CoreEchoResponse

from tests.live import live_server
from tests.test_jmap_live import PlainHttpAdapter, basic, bootstrap

CORE = "urn:ietf:params:jmap:core"


@pytest.fixture(scope="module")
def server():
    # PUBLIC_URL empty: as if it were unset (tests/live.py sets it for every other server).
    with live_server(workers=1, extra_env={"PUBLIC_URL": ""}) as live:
        creds = bootstrap(live)
        assert creds, "bootstrap printed no password"
        live.auth = basic(*creds)
        live.creds = creds
        yield live


def base_of(server, host: str) -> str:
    return f"http://{host}:{urlsplit(server.url).port}"


def urls_in(document) -> list[str]:
    if isinstance(document, dict):
        return [u for value in document.values() for u in urls_in(value)]
    if isinstance(document, list):
        return [u for value in document for u in urls_in(value)]
    return [document] if isinstance(document, str) and re.match(r"https?://", document) else []


def follow(url: str, **kw) -> requests.Response:
    """Request `url` as advertised; a connection refused or a 5xx fails the test."""
    resp = requests.request(kw.pop("method", "GET"), url, timeout=30, allow_redirects=False, **kw)
    assert resp.status_code < 500, (url, resp.status_code, resp.text[:300])
    return resp


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_session_urls_are_where_the_client_connected(server, host):
    base = base_of(server, host)
    session = follow(base + "/jmap/session", headers={"Authorization": server.auth}).json()
    assert session["apiUrl"] == base + "/jmap/"
    for name in ("downloadUrl", "uploadUrl", "eventSourceUrl"):
        assert session[name].startswith(base + "/jmap/"), session[name]
    echo = follow(session["apiUrl"], method="POST", headers={"Authorization": server.auth},
                  json={"using": [CORE], "methodCalls": [["Core/echo", {"n": 1}, "e"]]})
    assert echo.status_code == 200 and echo.json()["methodResponses"][0][1] == {"n": 1}
    # Upload, download and push answer at the advertised addresses.
    account = session["primaryAccounts"][CORE]
    upload = session["uploadUrl"].replace("{accountId}", account)
    assert urlsplit(upload).netloc == urlsplit(base).netloc
    blob = follow(upload, method="POST", data=b"advertised", headers={"Authorization": server.auth,
                                                                      "Content-Type": "text/plain"})
    assert blob.status_code == 201, blob.text
    download = session["downloadUrl"].format(accountId=account, blobId=blob.json()["blobId"], name="n",
                                             type="text/plain")
    assert urlsplit(download).netloc == urlsplit(base).netloc
    got = follow(download, headers={"Authorization": server.auth})
    assert got.status_code == 200 and got.content == b"advertised"
    event_source = session["eventSourceUrl"].format(types="*", closeafter="no", ping="0")
    assert urlsplit(event_source).netloc == urlsplit(base).netloc
    with requests.get(event_source, headers={"Authorization": server.auth}, stream=True, timeout=30) as stream:
        assert stream.status_code == 200, stream.status_code
        assert stream.headers["Content-Type"].startswith("text/event-stream")


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration",
                                  "/.well-known/oauth-protected-resource", "/api/discover/user@example.org"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_discovery_documents_point_back_here(server, path, host):
    base = base_of(server, host)
    doc = follow(base + path).json()
    urls = urls_in(doc)
    assert urls and all(u == base or u.startswith(base + "/") for u in urls), urls
    for url in set(urls):
        follow(url)  # GET: a POST-only endpoint answers 405, which is still this server


def test_device_verification_uri_leads_to_the_device_page(server):
    base = base_of(server, "localhost")
    start = follow(base + "/auth/device", method="POST", data={"client_id": "advertised-test"}).json()
    assert start["verification_uri"] == base + "/device"
    page = follow(start["verification_uri_complete"])
    assert page.status_code == 200 and start["user_code"] in page.text


def test_pacc_issuer_is_the_request_address(server):
    base = base_of(server, "localhost")
    doc = follow(base + "/.well-known/user-agent-configuration.json").json()
    assert doc["authentication"]["oauth-public"]["issuer"] == base


def test_autodiscover_v2_points_to_v1_here(server):
    base = base_of(server, "localhost")
    pointer = follow(base + "/autodiscover/autodiscover.json?Email=jane@example.org&Protocol=AutodiscoverV1").json()
    assert pointer["Url"] == base + "/autodiscover/autodiscover.xml"
    request = ('<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
               "<Request><EMailAddress>jane@example.org</EMailAddress></Request></Autodiscover>")
    answer = follow(pointer["Url"], method="POST", data=request, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200 and "jane@example.org" in answer.text


def test_scheme_is_the_listeners_as_the_trusted_proxy_says(server):
    # gunicorn believes X-Forwarded-Proto from loopback (FORWARDED_ALLOW_IPS): a TLS proxy in front.
    doc = follow(server.url + "/.well-known/openid-configuration", headers={"X-Forwarded-Proto": "https"}).json()
    assert doc["issuer"] == "https://" + urlsplit(server.url).netloc


def test_a_host_outside_allowed_hosts_is_refused_not_echoed(server):
    for path in ("/.well-known/openid-configuration", "/jmap/session"):
        resp = follow(server.url + path, headers={"Host": "evil.example", "Authorization": server.auth})
        assert resp.status_code == 400 and "evil.example" not in resp.text


def test_jmapc_connects_with_the_advertised_urls(server):
    host = f"localhost:{urlsplit(server.url).port}"
    client = jmapc.Client.create_with_password(host, *server.creds)
    client.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
    assert client.jmap_session.api_url == f"http://{host}/jmap/"
    echo = client.request(CoreEcho(data={"port": urlsplit(server.url).port}))
    assert isinstance(echo, CoreEchoResponse) and echo.data == {"port": urlsplit(server.url).port}


def test_a_configured_public_url_wins(server):
    def set_public_url(value):
        resp = follow(server.url + "/jmap/", method="POST", headers={"Authorization": server.auth}, json={
            "using": [CORE, "urn:stalwart:jmap"],
            "methodCalls": [["x:SystemSettings/set", {"update": {"singleton": {"publicUrl": value}}}, "s"]]})
        assert resp.json()["methodResponses"][0][1]["updated"] is not None, resp.text

    set_public_url("https://mail.example.org")
    try:
        session = follow(server.url + "/jmap/session", headers={"Authorization": server.auth}).json()
        assert session["apiUrl"] == "https://mail.example.org/jmap/"
        doc = follow(server.url + "/.well-known/openid-configuration").json()
        assert doc["issuer"] == "https://mail.example.org"
        assert doc["token_endpoint"] == "https://mail.example.org/auth/token"
    finally:
        set_public_url("")
    doc = follow(server.url + "/.well-known/openid-configuration").json()
    assert doc["issuer"] == server.url
