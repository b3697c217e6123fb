"""Sharing between accounts with the ACL method (RFC 3744 subset) and what the sharee sees."""
from __future__ import annotations

from .helpers import body, NS, hrefs, prop, xml


def acl_body(principal: str, *privileges: str, deny: bool = False) -> str:
    privs = "".join(f"<D:privilege><D:{p}/></D:privilege>" for p in privileges)
    kind = "deny" if deny else "grant"
    return (f'<D:acl xmlns:D="DAV:"><D:ace><D:principal><D:href>{principal}</D:href></D:principal>'
            f"<D:{kind}>{privs}</D:{kind}></D:ace></D:acl>")


BOB = "/dav/pal/bob%40example.org/"


def test_read_share(alice, bob):
    alice.mkcol(alice.home + "Shared/")
    alice.put(alice.home + "Shared/doc.txt", b"doc")
    alice.mkcol(alice.home + "Private/")
    assert alice.request("ACL", alice.home + "Shared/", acl_body(BOB, "read")).status_code == 200
    got = bob.request("GET", alice.home + "Shared/doc.txt")
    assert got.status_code == 200 and body(got) == b"doc"
    assert bob.put(alice.home + "Shared/doc.txt", b"changed").status_code == 403
    assert bob.request("DELETE", alice.home + "Shared/doc.txt").status_code == 403
    assert bob.request("GET", alice.home + "Private/").status_code == 403
    listing = bob.propfind(alice.home, ["D:current-user-privilege-set"], depth="1")
    assert listing.status_code == 207
    assert hrefs(listing) == [alice.home, alice.home + "Shared/"]
    privs = prop(listing, alice.home + "Shared/", "D:current-user-privilege-set")
    names = {p[0].tag for p in privs.findall("D:privilege", NS)}
    assert "{DAV:}read" in names and "{DAV:}write-content" not in names
    roots = bob.propfind("/dav/file/", ["D:resourcetype"], depth="1")
    assert hrefs(roots) == ["/dav/file/", bob.home, alice.home]
    acl_prop = alice.propfind(alice.home + "Shared/", ["D:acl"], depth="0")
    principals = [h.text for h in xml(acl_prop).findall(".//D:ace/D:principal/D:href", NS)]
    assert BOB in principals
    # the sharee may not read the ACL nor change it
    assert bob.request("ACL", alice.home + "Shared/", acl_body(BOB, "read", "write")).status_code == 403


def test_write_content_share(alice, bob):
    alice.mkcol(alice.home + "Drop/")
    alice.request("ACL", alice.home + "Drop/", acl_body(BOB, "read", "write-content"))
    assert bob.put(alice.home + "Drop/from-bob.txt", b"hi").status_code == 201
    assert bob.request("DELETE", alice.home + "Drop/from-bob.txt").status_code == 403
    assert alice.request("GET", alice.home + "Drop/from-bob.txt").status_code == 200
    # revoking: an empty ACL
    alice.request("ACL", alice.home + "Drop/", '<D:acl xmlns:D="DAV:"/>')
    assert bob.request("GET", alice.home + "Drop/from-bob.txt").status_code == 403


def test_acl_refusals(alice, bob):
    alice.mkcol(alice.home + "R/")
    cases = [
        (acl_body(BOB, "read", deny=True), "grant-only"),
        (acl_body(BOB, "all"), "no-abstract"),
        (acl_body(BOB, "unknown-privilege"), "not-supported-privilege"),
        (acl_body("/dav/pal/nobody%40example.org/", "read"), "allowed-principal"),
        ('<D:acl xmlns:D="DAV:"><D:ace><D:invert><D:principal><D:href>x</D:href></D:principal></D:invert>'
         '<D:grant><D:privilege><D:read/></D:privilege></D:grant></D:ace></D:acl>', "no-invert"),
    ]
    for body, condition in cases:
        response = alice.request("ACL", alice.home + "R/", body)
        assert response.status_code == 403, condition
        assert xml(response).find(f"D:{condition}", NS) is not None, condition
    assert bob.request("ACL", alice.home + "R/", acl_body(BOB, "read")).status_code == 403
