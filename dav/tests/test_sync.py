"""sync-collection (RFC 6578) from the change journal: initial listing, changes, tombstones,
paging with nresults, and the valid-sync-token precondition."""
from __future__ import annotations

from .helpers import NS, xml


def sync(dav, path, token="", level="1", limit=None, props="<D:getetag/>"):
    limit_el = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
            f"<D:sync-level>{level}</D:sync-level>{limit_el}<D:prop>{props}</D:prop></D:sync-collection>")
    return dav.report(path, body)


def parse(response):
    root = xml(response)
    entries = {}
    for resp in root.findall("D:response", NS):
        status = resp.findtext("D:status", namespaces=NS) or resp.findtext("D:propstat/D:status", namespaces=NS)
        entries[resp.findtext("D:href", namespaces=NS)] = status
    return entries, root.findtext("D:sync-token", namespaces=NS)


def test_initial_then_incremental_with_tombstones(alice):
    alice.mkcol(alice.home + "S/")
    alice.put(alice.home + "S/a.txt", b"a")
    alice.put(alice.home + "S/b.txt", b"b")
    response = sync(alice, alice.home + "S/")
    assert response.status_code == 207
    entries, token = parse(response)
    assert set(entries) == {alice.home + "S/a.txt", alice.home + "S/b.txt"}
    assert token.startswith("urn:stalwart:davsync:")
    entries, same = parse(sync(alice, alice.home + "S/", token))
    assert entries == {} and same == token
    alice.put(alice.home + "S/a.txt", b"a2")
    alice.request("DELETE", alice.home + "S/b.txt")
    alice.put(alice.home + "S/c.txt", b"c")
    alice.put(alice.home + "elsewhere.txt", b"x")
    entries, token2 = parse(sync(alice, alice.home + "S/", token))
    assert entries == {alice.home + "S/a.txt": "HTTP/1.1 200 OK", alice.home + "S/b.txt": "HTTP/1.1 404 Not Found",
                       alice.home + "S/c.txt": "HTTP/1.1 200 OK"}
    assert token2 != token


def test_move_reports_old_href_gone_and_new_one(alice):
    alice.mkcol(alice.home + "M/")
    alice.put(alice.home + "M/x.txt", b"x")
    _, token = parse(sync(alice, alice.home, level="infinite"))
    alice.request("MOVE", alice.home + "M/x.txt", Destination=alice.home + "M/y.txt")
    entries, _ = parse(sync(alice, alice.home, token, level="infinite"))
    assert entries == {alice.home + "M/x.txt": "HTTP/1.1 404 Not Found", alice.home + "M/y.txt": "HTTP/1.1 200 OK"}


def test_paging_with_nresults(alice):
    alice.mkcol(alice.home + "P/")
    for n in range(5):
        alice.put(alice.home + f"P/{n}.txt", b"x")
    seen = set()
    response = sync(alice, alice.home + "P/", limit=2)
    pages = 0
    while True:
        pages += 1
        entries, token = parse(response)
        truncated = entries.pop(alice.home + "P/", None)
        seen |= set(entries)
        if truncated is None:
            break
        assert truncated == "HTTP/1.1 507 Insufficient Storage"
        response = sync(alice, alice.home + "P/", token, limit=2)
    assert pages == 3 and seen == {alice.home + f"P/{n}.txt" for n in range(5)}
    # incremental paging as well
    for n in range(5):
        alice.put(alice.home + f"P/{n}.txt", b"y")
    changed = set()
    response = sync(alice, alice.home + "P/", token, limit=2)
    for _ in range(10):
        entries, token = parse(response)
        truncated = entries.pop(alice.home + "P/", None)
        changed |= set(entries)
        if truncated is None:
            break
        response = sync(alice, alice.home + "P/", token, limit=2)
    assert changed == seen


def test_unknown_foreign_and_pruned_tokens_are_valid_sync_token_errors(alice):
    from journal import services as journal

    alice.put(alice.home + "a.txt", b"a")
    for token in ("garbage", "urn:stalwart:davsync:zz", "urn:stalwart:davsync:ffffff", "http://x/"):
        response = sync(alice, alice.home, token)
        assert response.status_code == 403, token
        assert xml(response).find("D:valid-sync-token", NS) is not None
    _, token = parse(sync(alice, alice.home))
    alice.put(alice.home + "b.txt", b"b")
    alice.put(alice.home + "c.txt", b"c")
    journal.prune(max_changes=1)
    response = sync(alice, alice.home, token)
    assert response.status_code == 403
    assert xml(response).find("D:valid-sync-token", NS) is not None


def test_sync_token_and_ctag_properties_follow_changes(alice):
    before = xml(alice.propfind(alice.home, ["D:sync-token", "C:getctag"], depth="0"))
    alice.put(alice.home + "t.txt", b"t")
    after = xml(alice.propfind(alice.home, ["D:sync-token", "C:getctag"], depth="0"))
    assert before.findtext(".//D:sync-token", namespaces=NS) != after.findtext(".//D:sync-token", namespaces=NS)
    assert after.findtext(".//C:getctag", namespaces=NS) != before.findtext(".//C:getctag", namespaces=NS)


def test_sync_token_in_if_header(alice):
    alice.put(alice.home + "i.txt", b"1")
    token = xml(alice.propfind(alice.home + "", ["D:sync-token"], depth="0")).findtext(".//D:sync-token", namespaces=NS)
    home_tagged = f"<{alice.home}> (<{token}>)"
    assert alice.put(alice.home + "i.txt", b"2", If=home_tagged).status_code == 204
    assert alice.put(alice.home + "i.txt", b"3", If=home_tagged).status_code == 412


def test_other_accounts_collection_cannot_be_synced(alice, bob):
    alice.mkcol(alice.home + "S/")
    assert sync(bob, alice.home + "S/").status_code == 403
