"""Write locks (RFC 4918 §6-7, §9.10-9.11) and the If header (§10.4)."""
from __future__ import annotations

from .helpers import body, NS, xml

LOCKINFO = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype>'
            '<D:owner><D:href>mailto:alice@example.org</D:href></D:owner></D:lockinfo>')


def lock(dav, path, scope="exclusive", **headers):
    return dav.request("LOCK", path, LOCKINFO.format(scope=scope), **headers)


def test_exclusive_lock_guards_writes(alice):
    alice.put(alice.home + "f.txt", b"1")
    locked = lock(alice, alice.home + "f.txt", Timeout="Second-60")
    assert locked.status_code == 200
    token = locked["Lock-Token"].strip("<>")
    assert token.startswith("urn:stalwart:davlock:")
    body = xml(locked)
    assert body.findtext(".//D:locktoken/D:href", namespaces=NS) == token
    assert body.findtext(".//D:timeout", namespaces=NS) == "Second-60"
    refused = alice.put(alice.home + "f.txt", b"2")
    assert refused.status_code == 423
    assert xml(refused).find("D:lock-token-submitted", NS) is not None
    assert alice.request("DELETE", alice.home + "f.txt").status_code == 423
    assert alice.put(alice.home + "f.txt", b"2", If=f"(<{token}>)").status_code == 204
    assert lock(alice, alice.home + "f.txt").status_code == 423
    assert lock(alice, alice.home + "f.txt", scope="shared").status_code == 423
    discovery = alice.propfind(alice.home + "f.txt", ["D:lockdiscovery"], depth="0")
    assert xml(discovery).findtext(".//D:activelock/D:locktoken/D:href", namespaces=NS) == token
    refresh = alice.request("LOCK", alice.home + "f.txt", "", If=f"(<{token}>)", Timeout="Second-30")
    assert refresh.status_code == 200
    assert alice.request("UNLOCK", alice.home + "f.txt", Lock_Token="<urn:stalwart:davlock:00>").status_code == 409
    assert alice.request("UNLOCK", alice.home + "f.txt").status_code == 400
    assert alice.request("UNLOCK", alice.home + "f.txt", Lock_Token=f"<{token}>").status_code == 204
    assert alice.put(alice.home + "f.txt", b"3").status_code == 204


def test_shared_locks_coexist(alice):
    alice.put(alice.home + "s.txt", b"1")
    first = lock(alice, alice.home + "s.txt", scope="shared")
    second = lock(alice, alice.home + "s.txt", scope="shared")
    assert first.status_code == second.status_code == 200
    assert first["Lock-Token"] != second["Lock-Token"]


def test_depth_infinity_lock_covers_members_and_if_tags(alice):
    alice.mkcol(alice.home + "coll/")
    alice.put(alice.home + "coll/m.txt", b"1")
    locked = lock(alice, alice.home + "coll/", Depth="infinity")
    token = locked["Lock-Token"].strip("<>")
    assert alice.put(alice.home + "coll/m.txt", b"2").status_code == 423
    assert alice.put(alice.home + "coll/new.txt", b"2").status_code == 423
    assert alice.mkcol(alice.home + "coll/sub/").status_code == 423
    tagged = f"<http://testserver{alice.home}coll/> (<{token}>)"
    assert alice.put(alice.home + "coll/m.txt", b"2", If=tagged).status_code == 204
    # a refresh through a member (litmus: indirect_refresh)
    assert alice.request("LOCK", alice.home + "coll/m.txt", "", If=f"(<{token}>)").status_code == 200
    assert alice.request("MOVE", alice.home + "coll/m.txt", Destination=alice.home + "out.txt").status_code == 423


def test_if_header_conditions(alice):
    alice.put(alice.home + "c.txt", b"1")
    etag = alice.request("HEAD", alice.home + "c.txt")["ETag"]
    assert alice.put(alice.home + "c.txt", b"2", If="(<DAV:no-lock>)").status_code == 412
    assert alice.put(alice.home + "c.txt", b"2", If="(Not <DAV:no-lock>)").status_code == 204
    etag = alice.request("HEAD", alice.home + "c.txt")["ETag"]
    assert alice.put(alice.home + "c.txt", b"3", If=f'(["wrong"])').status_code == 412
    assert alice.put(alice.home + "c.txt", b"3", If=f"([{etag}])").status_code == 204
    assert alice.put(alice.home + "c.txt", b"4", If="(<unclosed").status_code == 400


def test_lock_on_unmapped_url_makes_an_empty_file(alice):
    made = lock(alice, alice.home + "null.txt")
    assert made.status_code == 201
    got = alice.request("GET", alice.home + "null.txt")
    assert got.status_code == 200 and body(got) == b""
    assert lock(alice, alice.home + "nowhere/x.txt").status_code == 409


def test_locks_per_user_are_limited(alice, settings):
    settings.DAV_MAX_LOCKS = 2
    for n in range(2):
        alice.put(alice.home + f"l{n}", b"x")
        assert lock(alice, alice.home + f"l{n}").status_code == 200
    alice.put(alice.home + "l2", b"x")
    assert lock(alice, alice.home + "l2").status_code == 429


def test_another_user_cannot_lock_or_unlock(alice, bob):
    alice.put(alice.home + "o.txt", b"1")
    token = lock(alice, alice.home + "o.txt")["Lock-Token"]
    assert lock(bob, alice.home + "o.txt").status_code == 403
    assert bob.request("UNLOCK", alice.home + "o.txt", Lock_Token=token).status_code in (403, 409)
