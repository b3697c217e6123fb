"""Hostile input: XML bombs, external entities, oversize bodies, deep nesting, big trees."""
from __future__ import annotations

from .helpers import NS, hrefs, xml

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol3;</D:displayname></D:prop></D:propfind>"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&ext;</D:displayname></D:prop></D:set>
</D:propertyupdate>"""


def test_entity_bombs_and_external_entities_are_400(alice):
    alice.mkcol(alice.home + "X/")
    assert alice.request("PROPFIND", alice.home, BILLION_LAUGHS, Depth="0").status_code == 400
    assert alice.request("PROPPATCH", alice.home + "X/", EXTERNAL).status_code == 400
    names = alice.propfind(alice.home + "X/", ["D:displayname"], depth="0")
    assert "root:" not in names.content.decode()


def test_malformed_and_oversize_xml(alice, settings):
    assert alice.request("PROPFIND", alice.home, "<D:propfind xmlns:D='DAV:'><D:prop>", Depth="0").status_code == 400
    assert alice.request("REPORT", alice.home, "", content_type="text/plain").status_code == 415
    settings.DAV_MAX_XML_SIZE = 1000
    big = '<D:propfind xmlns:D="DAV:"><D:prop>' + "<D:displayname/>" * 200 + "</D:prop></D:propfind>"
    assert alice.request("PROPFIND", alice.home, big, Depth="0").status_code == 413
    deep = "<a>" * 100 + "</a>" * 100
    assert alice.request("PROPFIND", alice.home, deep, Depth="0").status_code == 400


def test_propfind_result_cap_on_a_big_folder(alice, settings):
    settings.DAV_MAX_RESULTS = 5
    alice.mkcol(alice.home + "Big/")
    for n in range(8):
        alice.put(alice.home + f"Big/{n}", b"x")
    response = alice.propfind(alice.home + "Big/", ["D:getetag"], depth="1")
    assert response.status_code == 207
    listed = hrefs(response)
    assert len(listed) == 1 + 5 + 1 and listed[-1] == alice.home + "Big/"
    assert xml(response).find("D:response/D:error/D:number-of-matches-within-limits", NS) is not None
    assert alice.propfind(alice.home + "Big/", ["D:getetag"], depth="infinity").status_code == 403


def test_node_limit(alice, settings):
    settings.DAV_MAX_NODES = 2
    assert alice.mkcol(alice.home + "a/").status_code == 201
    assert alice.put(alice.home + "a/b", b"x").status_code == 201
    assert alice.put(alice.home + "a/c", b"x").status_code == 507
    assert alice.request("COPY", alice.home + "a/", Destination=alice.home + "z/").status_code == 507


def test_long_names_and_paths(alice):
    assert alice.put(alice.home + "n" * 300, b"x").status_code in (400, 413)
    assert alice.propfind(alice.home + "/".join(["d"] * 600), ["D:getetag"], depth="0").status_code in (400, 404)


def test_bad_headers(alice):
    alice.put(alice.home + "h.txt", b"x")
    assert alice.propfind(alice.home, ["D:getetag"], depth="2").status_code == 400
    assert alice.request("COPY", alice.home + "h.txt", Destination=alice.home + "h2.txt", Overwrite="maybe").status_code == 400
    assert alice.put(alice.home + "h.txt", b"x", If="garbage").status_code == 400
    assert alice.request("LOCK", alice.home + "h.txt", "<x/>").status_code == 400


def test_malformed_urls_and_numbers_in_headers(alice):
    alice.put(alice.home + "u.txt", b"x")
    assert alice.request("COPY", alice.home + "u.txt", Destination="http://[::1/broken").status_code == 400
    assert alice.put(alice.home + "u.txt", b"y", If="<http://[::1/broken> (<urn:x>)").status_code == 400
    whole = alice.request("GET", alice.home + "u.txt", Range="bytes=" + "9" * 5000 + "-")
    assert whole.status_code == 200
    assert alice.request("LOCK", alice.home + "u.txt", '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
                         '</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>',
                         Timeout="Second-" + "9" * 5000).status_code == 200
