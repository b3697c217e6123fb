"""A small WebDAV client over Django's test client, and XML helpers for the assertions."""
from __future__ import annotations

from lxml import etree

from tests.clients import basic

NS = {"D": "DAV:", "A": "urn:ietf:params:xml:ns:caldav", "B": "urn:ietf:params:xml:ns:carddav",
      "C": "http://calendarserver.org/ns/"}


class Dav:
    def __init__(self, client, login: str):
        self.client = client
        self.auth = basic(login)
        self.home = "/dav/file/" + login.replace("@", "%40") + "/"

    def request(self, method: str, path: str, body: bytes | str = b"", content_type: str = "application/xml",
                **headers):
        extra = {"HTTP_AUTHORIZATION": self.auth}
        for name, value in headers.items():
            extra["HTTP_" + name.upper()] = value
        if isinstance(body, str):
            body = body.encode()
        return self.client.generic(method, path, body, content_type=content_type, **extra)

    def propfind(self, path: str, props: list[str] | None = None, depth: str = "1", **headers):
        if props is None:
            body = b""
        else:
            body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="http://calendarserver.org/ns/" '
                    'xmlns:A="urn:ietf:params:xml:ns:caldav" xmlns:B="urn:ietf:params:xml:ns:carddav"><D:prop>'
                    + "".join(f"<{p}/>" for p in props) + "</D:prop></D:propfind>")
        return self.request("PROPFIND", path, body, Depth=depth, **headers)

    def put(self, path: str, data: bytes, content_type: str = "application/octet-stream", **headers):
        return self.request("PUT", path, data, content_type=content_type, **headers)

    def mkcol(self, path: str, **headers):
        return self.request("MKCOL", path, b"", **headers)

    def report(self, path: str, body: str, **headers):
        return self.request("REPORT", path, body, **headers)


def xml(response):
    return etree.fromstring(b"".join(response.streaming_content) if response.streaming else response.content)


def hrefs(response) -> list[str]:
    return [h.text for h in xml(response).findall("D:response/D:href", NS)]


def prop(response, href: str, name: str):
    """The element of property `name` ("D:getetag") in the 200 propstat of `href`'s response."""
    for resp in xml(response).findall("D:response", NS):
        if resp.findtext("D:href", namespaces=NS) == href:
            for ps in resp.findall("D:propstat", NS):
                if "200" in ps.findtext("D:status", namespaces=NS):
                    found = ps.find(f"D:prop/{name}", NS)
                    if found is not None:
                        return found
    return None


def statuses(response, href: str) -> dict[str, str]:
    """property (Clark name) -> status line, for `href`'s response."""
    out = {}
    for resp in xml(response).findall("D:response", NS):
        if resp.findtext("D:href", namespaces=NS) == href:
            for ps in resp.findall("D:propstat", NS):
                for p in ps.find("D:prop", NS):
                    out[p.tag] = ps.findtext("D:status", namespaces=NS)
    return out


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content
