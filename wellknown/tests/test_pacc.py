"""PACC: /.well-known/user-agent-configuration.json (draft-ietf-mailmaint-pacc)."""
import pytest

from stalwart_site.http import CORS


def test_document(client, system, settings):
    system(services={"jmap": {}, "imap": {"hostname": "imap.example.org"}, "smtp": {}, "caldav": {},
                     "managesieve": {}}, public_url="https://mail.example.org")
    resp = client.get("/.well-known/user-agent-configuration.json")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/json"
    assert {name: resp[name] for name in CORS} == CORS
    assert resp.json() == {
        "protocols": {
            "jmap": {"url": "https://mail.example.org/jmap/session"},
            "imap": {"host": "imap.example.org"},
            "smtp": {"host": "mail.example.org"},
            "caldav": {"url": "https://mail.example.org/dav/cal/"},
            "managesieve": {"host": "mail.example.org"},
        },
        "authentication": {"oauth-public": {"issuer": "https://mail.example.org"}, "password": True},
        "info": {"provider": {"name": "Stalwart"}},
    }


def test_defaults_list_every_protocol(client, system):
    body = client.get("/.well-known/user-agent-configuration.json").json()
    assert list(body["protocols"]) == ["jmap", "imap", "pop3", "smtp", "caldav", "carddav", "webdav", "managesieve"]
    assert body["protocols"]["webdav"] == {"url": "https://mail.example.org/dav/file/"}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_wrong_methods(client, system, method):
    resp = getattr(client, method)("/.well-known/user-agent-configuration.json")
    assert resp.status_code == 405 and resp["Allow"] == "GET, HEAD, OPTIONS"


def test_preflight(client, system):
    resp = client.options("/.well-known/user-agent-configuration.json")
    assert resp.status_code == 204 and resp["Access-Control-Allow-Origin"] == "*"
