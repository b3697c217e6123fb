"""Thunderbird autoconfig (clientConfig 1.1) at its three addresses."""
import pytest

from stalwart_site.http import CORS

from .helpers import parse_xml, problem_of

PATHS = ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml", "/.well-known/mail-v1.xml"]


def servers(doc, kind):
    """(type, hostname, port, socketType, username, authentication) of each server entry."""
    return [(el.get("type"), el.findtext("hostname"), int(el.findtext("port")), el.findtext("socketType"),
             el.findtext("username"), el.findtext("authentication"))
            for el in doc.find("emailProvider").findall(kind)]


@pytest.mark.parametrize("path", PATHS)
def test_document_from_the_settings(client, system, path):
    system(services={"imap": {"cleartext": True}, "pop3": {}, "smtp": {"hostname": "smtp.example.org"},
                     "caldav": {}, "carddav": {"hostname": "dav.example.org"}, "webdav": {}, "jmap": {}})
    resp = client.get(path, {"emailaddress": "Jane@Example.ORG"})
    assert resp.status_code == 200
    doc = parse_xml(resp)
    assert doc.tag == "clientConfig" and doc.get("version") == "1.1"
    provider = doc.find("emailProvider")
    assert provider.get("id") == "example.org"
    assert provider.findtext("domain") == "example.org"
    assert provider.findtext("displayName") == "jane@example.org"
    assert provider.findtext("displayShortName") == "example.org"
    user = "jane@example.org"
    assert servers(doc, "incomingServer") == [
        ("imap", "mail.example.org", 143, "STARTTLS", user, "password-cleartext"),
        ("imap", "mail.example.org", 993, "SSL", user, "password-cleartext"),
        ("pop3", "mail.example.org", 995, "SSL", user, "password-cleartext"),
    ]
    assert servers(doc, "outgoingServer") == [("smtp", "smtp.example.org", 465, "SSL", user, "password-cleartext")]
    dav = [(el.tag, el.get("type"), el.findtext("username"), el.findtext("authentication"), el.findtext("serverURL"))
           for el in doc if el.tag in ("calendar", "addressBook", "fileShare")]
    assert dav == [
        ("calendar", "caldav", user, "http-basic", "https://mail.example.org/dav/cal"),
        ("addressBook", "carddav", user, "http-basic", "https://dav.example.org/dav/card"),
        ("fileShare", "webdav", user, "http-basic", "https://mail.example.org/dav/file"),
    ]
    assert doc.find("clientConfigUpdate").get("url") == "https://autoconfig.example.org/mail/config-v1.1.xml"
    # The reference advertises no JMAP (nor ManageSieve) in this document, even when configured.
    assert "jmap" not in resp.content.decode().lower()


def test_cors_only_on_the_well_known_autoconfig(client, system):
    for path in PATHS:
        resp = client.get(path, {"emailaddress": "jane@example.org"})
        has = {name: resp.get(name) for name in CORS}
        if path.startswith("/.well-known/autoconfig/"):
            assert has == CORS
        else:
            assert not any(has.values()), path


def test_without_an_address_placeholders_and_the_default_host(client, system):
    doc = parse_xml(client.get("/mail/config-v1.1.xml"))
    provider = doc.find("emailProvider")
    assert provider.get("id") == "mail.example.org"
    assert provider.findtext("displayName") == "%EMAILADDRESS%"
    assert {s[4] for s in servers(doc, "incomingServer") + servers(doc, "outgoingServer")} == {"%EMAILADDRESS%"}
    # The defaults: every protocol, no cleartext ports.
    assert [(s[0], s[2]) for s in servers(doc, "incomingServer")] == [("imap", 993), ("pop3", 995)]
    assert [(s[0], s[2]) for s in servers(doc, "outgoingServer")] == [("smtp", 465)]


def test_unadvertised_protocols_are_left_out(client, system):
    system(services={"smtp": {}})
    doc = parse_xml(client.get("/mail/config-v1.1.xml", {"emailaddress": "a@example.org"}))
    assert servers(doc, "incomingServer") == []
    assert [s[0] for s in servers(doc, "outgoingServer")] == ["smtp"]
    assert [el.tag for el in doc] == ["emailProvider", "clientConfigUpdate"]


def test_settings_changes_show_at_once(client, system):
    client.get("/mail/config-v1.1.xml")  # cached under the current state
    system(hostname="mx.example.net")
    doc = parse_xml(client.get("/mail/config-v1.1.xml"))
    assert servers(doc, "incomingServer")[0][1] == "mx.example.net"


def test_untrusted_text_is_escaped(client, system):
    """A quoted local part may hold < & and ": it comes back escaped and parses to the same text."""
    address = '"a<b&c\\"d>\'e"@example.org'
    resp = client.get("/.well-known/mail-v1.xml", {"emailaddress": address})
    assert resp.status_code == 200
    raw = resp.content.decode()
    assert "<b&c" not in raw and "&lt;b&amp;c" in raw
    doc = parse_xml(resp)
    assert doc.find("emailProvider").findtext("displayName") == address
    assert {s[4] for s in servers(doc, "incomingServer")} == {address}


def test_internationalised_domain(client, system):
    doc = parse_xml(client.get("/mail/config-v1.1.xml", {"emailaddress": "jäne@Bücher.example"}))
    provider = doc.find("emailProvider")
    assert provider.findtext("domain") == "xn--bcher-kva.example"
    assert provider.findtext("displayName") == "jäne@xn--bcher-kva.example"


@pytest.mark.parametrize("address", [
    "", "jane", "jane.example.org", "@example.org", "jane@", "jane@-bad-.org", "jane@exa_mple.org",
    "ja ne@example.org", "jane\x00@example.org", "ja\r\nne@example.org", "jane@example.org\x1b",
    "a." + "@example.org", "x" * 65 + "@example.org", "a@" + ".".join(["b" * 60] * 5),
    '"unterminated@example.org', "jane@exa mple.org",
])
@pytest.mark.parametrize("path", PATHS)
def test_malformed_addresses_are_refused(client, system, path, address):
    body = problem_of(client.get(path, {"emailaddress": address}), 400)
    assert body["title"] == "Bad Request" and body["detail"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_wrong_methods(client, system, path, method):
    resp = getattr(client, method)(path)
    problem_of(resp, 405)
    assert "GET" in resp["Allow"] and "HEAD" in resp["Allow"]


@pytest.mark.parametrize("path", PATHS)
def test_head_and_options(client, system, path):
    head = client.head(path)
    assert head.status_code == 200 and head["Content-Type"] == "application/xml; charset=utf-8"
    assert head.content == b""
    options = client.options(path)
    if path.startswith("/.well-known/"):
        assert options.status_code == 204 and options["Access-Control-Allow-Origin"] == "*"
    else:
        problem_of(options, 405)
