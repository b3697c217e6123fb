"""The file store through WebDAV: folders, files, properties, copies and moves, quota."""
from __future__ import annotations

from .helpers import body, NS, hrefs, prop, statuses, xml


def test_mkcol_put_get_head_and_listing(alice):
    assert alice.mkcol(alice.home + "Docs/").status_code == 201
    assert alice.mkcol(alice.home + "Docs/").status_code == 405
    assert alice.mkcol(alice.home + "No/Parent/").status_code == 409
    created = alice.put(alice.home + "Docs/report.txt", b"hello world", "text/plain")
    assert created.status_code == 201 and created["ETag"].startswith('"')
    got = alice.request("GET", alice.home + "Docs/report.txt")
    assert got.status_code == 200
    assert body(got) == b"hello world"
    assert got["Content-Type"] == "text/plain" and got["ETag"] == created["ETag"]
    assert got["Accept-Ranges"] == "bytes"
    head = alice.request("HEAD", alice.home + "Docs/report.txt")
    assert head.status_code == 200 and head["Content-Length"] == "11" and head.content == b""
    updated = alice.put(alice.home + "Docs/report.txt", b"hello again", "text/plain")
    assert updated.status_code == 204 and updated["ETag"] != created["ETag"]
    listing = alice.propfind(alice.home, ["D:getetag", "D:resourcetype"], depth="1")
    assert listing.status_code == 207
    assert hrefs(listing) == [alice.home, alice.home + "Docs/"]
    inner = alice.propfind(alice.home + "Docs/", ["D:getcontentlength"], depth="1")
    assert prop(inner, alice.home + "Docs/report.txt", "D:getcontentlength").text == "11"
    assert alice.put(alice.home + "Missing/x.txt", b"x").status_code == 409
    assert alice.request("GET", alice.home + "Docs/").status_code == 405
    assert alice.put(alice.home + "Docs", b"x").status_code == 405


def test_range_and_conditional_get(alice):
    alice.put(alice.home + "f.bin", bytes(range(100)))
    part = alice.request("GET", alice.home + "f.bin", Range="bytes=10-19")
    assert part.status_code == 206
    assert body(part) == bytes(range(10, 20))
    assert part["Content-Range"] == "bytes 10-19/100"
    tail = alice.request("GET", alice.home + "f.bin", Range="bytes=-5")
    assert body(tail) == bytes(range(95, 100))
    beyond = alice.request("GET", alice.home + "f.bin", Range="bytes=200-")
    assert beyond.status_code == 416 and beyond["Content-Range"] == "bytes */100"
    etag = alice.request("HEAD", alice.home + "f.bin")["ETag"]
    assert alice.request("GET", alice.home + "f.bin", If_None_Match=etag).status_code == 304
    stale = alice.request("GET", alice.home + "f.bin", Range="bytes=0-1", If_Range='"other"')
    assert stale.status_code == 200


def test_put_preconditions(alice):
    assert alice.put(alice.home + "a.txt", b"1", If_None_Match="*").status_code == 201
    assert alice.put(alice.home + "a.txt", b"2", If_None_Match="*").status_code == 412
    assert alice.put(alice.home + "a.txt", b"2", If_Match='"nope"').status_code == 412
    etag = alice.request("HEAD", alice.home + "a.txt")["ETag"]
    assert alice.put(alice.home + "a.txt", b"2", If_Match=etag).status_code == 204
    assert alice.put(alice.home + "new.txt", b"2", If_Match="*").status_code == 412
    assert alice.request("DELETE", alice.home + "a.txt", If_Match='"nope"').status_code == 412


def test_propfind_modes_and_depth_limits(alice):
    alice.mkcol(alice.home + "D/")
    alice.put(alice.home + "D/x.txt", b"x")
    names = alice.request("PROPFIND", alice.home + "D/", '<D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
                          Depth="0")
    assert names.status_code == 207
    assert xml(names).find(".//D:prop/D:getetag", NS) is not None
    allprop = alice.request("PROPFIND", alice.home + "D/x.txt", "", Depth="0")
    assert prop(allprop, alice.home + "D/x.txt", "D:getcontentlength").text == "1"
    assert alice.propfind(alice.home, ["D:getetag"], depth="infinity").status_code == 403
    assert xml(alice.propfind(alice.home, ["D:getetag"], depth="infinity")).find("D:propfind-finite-depth", NS) is not None
    missing = alice.propfind(alice.home + "D/x.txt", ["D:getetag", "D:nosuchprop"], depth="0")
    assert statuses(missing, alice.home + "D/x.txt")["{DAV:}nosuchprop"] == "HTTP/1.1 404 Not Found"
    minimal = alice.propfind(alice.home + "D/x.txt", ["D:getetag", "D:nosuchprop"], depth="0", Prefer="return=minimal")
    assert "{DAV:}nosuchprop" not in statuses(minimal, alice.home + "D/x.txt")
    assert minimal["Preference-Applied"] == "return=minimal"
    noroot = alice.propfind(alice.home + "D/", ["D:getetag"], depth="1", Prefer="depth-noroot")
    assert hrefs(noroot) == [alice.home + "D/x.txt"]
    assert alice.propfind(alice.home + "nothing", ["D:getetag"], depth="0").status_code == 404


def test_proppatch_is_atomic_and_dead_properties_round_trip(alice):
    alice.mkcol(alice.home + "P/")
    body = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://example.com/z"><D:set><D:prop>'
            '<Z:color>#ff0000</Z:color><D:displayname>Pics</D:displayname></D:prop></D:set></D:propertyupdate>')
    done = alice.request("PROPPATCH", alice.home + "P/", body)
    assert done.status_code == 207
    assert set(statuses(done, alice.home + "P/").values()) == {"HTTP/1.1 200 OK"}
    got = alice.propfind(alice.home + "P/", ["Z:color xmlns:Z=\"http://example.com/z\"", "D:displayname"], depth="0")
    assert prop(got, alice.home + "P/", "D:displayname").text == "Pics"
    assert xml(got).find(".//{http://example.com/z}color").text == "#ff0000"
    bad = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://example.com/z"><D:set><D:prop>'
           '<Z:color>#00ff00</Z:color><D:getetag>"x"</D:getetag></D:prop></D:set></D:propertyupdate>')
    refused = alice.request("PROPPATCH", alice.home + "P/", bad)
    result = statuses(refused, alice.home + "P/")
    assert result["{DAV:}getetag"].startswith("HTTP/1.1 403")
    assert result["{http://example.com/z}color"].startswith("HTTP/1.1 424")
    again = alice.propfind(alice.home + "P/", ["Z:color xmlns:Z=\"http://example.com/z\""], depth="0")
    assert xml(again).find(".//{http://example.com/z}color").text == "#ff0000"
    remove = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://example.com/z"><D:remove><D:prop><Z:color/>'
              '</D:prop></D:remove></D:propertyupdate>')
    assert alice.request("PROPPATCH", alice.home + "P/", remove, Prefer="return=minimal").status_code == 204
    gone = alice.propfind(alice.home + "P/", ["Z:color xmlns:Z=\"http://example.com/z\""], depth="0")
    assert statuses(gone, alice.home + "P/")["{http://example.com/z}color"].endswith("404 Not Found")


def test_dead_property_size_limit(alice, settings):
    settings.DAV_DEAD_PROPERTY_MAX_SIZE = 200
    alice.mkcol(alice.home + "S/")
    body = ('<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:big>' + "x" * 500
            + '</Z:big></D:prop></D:set></D:propertyupdate>')
    response = alice.request("PROPPATCH", alice.home + "S/", body)
    assert statuses(response, alice.home + "S/")["{urn:z}big"].startswith("HTTP/1.1 507")


def test_extended_mkcol(alice):
    body = ('<D:mkcol xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><D:resourcetype><D:collection/>'
            '</D:resourcetype><D:displayname>Ext</D:displayname><Z:note>n</Z:note></D:prop></D:set></D:mkcol>')
    assert alice.request("MKCOL", alice.home + "E/", body).status_code == 201
    got = alice.propfind(alice.home + "E/", ["D:displayname"], depth="0")
    assert prop(got, alice.home + "E/", "D:displayname").text == "Ext"
    wrong = body.replace("<D:collection/>", "<D:collection/><D:principal/>")
    refused = alice.request("MKCOL", alice.home + "E2/", wrong)
    assert refused.status_code == 403
    assert alice.propfind(alice.home + "E2/", ["D:displayname"], depth="0").status_code == 404
    assert alice.request("MKCOL", alice.home + "E3/", "not xml at all", content_type="text/plain").status_code == 415


def test_copy_and_move(alice):
    alice.mkcol(alice.home + "src/")
    alice.put(alice.home + "src/a.txt", b"A")
    alice.mkcol(alice.home + "src/sub/")
    alice.put(alice.home + "src/sub/b.txt", b"B")
    dest = "http://testserver" + alice.home + "copy/"
    assert alice.request("COPY", alice.home + "src/", Destination=dest).status_code == 201
    got = alice.request("GET", alice.home + "copy/sub/b.txt")
    assert body(got) == b"B"
    assert alice.request("COPY", alice.home + "src/", Destination=dest, Overwrite="F").status_code == 412
    assert alice.request("COPY", alice.home + "src/", Destination=dest, Overwrite="T").status_code == 204
    shallow = alice.request("COPY", alice.home + "src/", Destination=alice.home + "shallow/", Depth="0")
    assert shallow.status_code == 201
    assert hrefs(alice.propfind(alice.home + "shallow/", ["D:getetag"], depth="1")) == [alice.home + "shallow/"]
    moved = alice.request("MOVE", alice.home + "src/", Destination=alice.home + "moved/")
    assert moved.status_code == 201
    assert alice.request("GET", alice.home + "src/a.txt").status_code == 404
    moved_b = alice.request("GET", alice.home + "moved/sub/b.txt")
    assert moved_b.status_code == 200, (moved_b.status_code, moved_b.content)
    assert body(moved_b) == b"B"
    assert alice.request("MOVE", alice.home + "moved/", Destination=alice.home + "moved/sub/x/").status_code == 403
    assert alice.request("MOVE", alice.home + "moved/sub/", Destination=alice.home + "moved/").status_code == 403
    assert alice.request("COPY", alice.home + "moved/a.txt", Destination=alice.home).status_code == 403
    assert alice.request("MOVE", alice.home + "moved/", Destination=alice.home + "moved/").status_code == 403
    assert alice.request("COPY", alice.home + "moved/a.txt", Destination=alice.home + "none/a.txt").status_code == 409
    assert alice.request("COPY", alice.home + "moved/a.txt").status_code == 400
    assert alice.request("COPY", alice.home + "moved/a.txt", Destination="/dav/cal/x/").status_code in (409, 502)
    assert alice.request("COPY", alice.home + "moved/a.txt",
                         Destination="http://elsewhere.example" + alice.home + "z").status_code == 502


def test_copy_to_another_account_is_refused(alice, bob):
    alice.put(alice.home + "mine.txt", b"mine")
    response = alice.request("COPY", alice.home + "mine.txt", Destination=bob.home + "stolen.txt")
    assert response.status_code == 403
    assert bob.request("GET", bob.home + "stolen.txt").status_code == 404


def test_other_accounts_tree_is_closed(alice, bob):
    alice.put(alice.home + "secret.txt", b"s")
    assert bob.request("GET", alice.home + "secret.txt").status_code == 403
    assert bob.propfind(alice.home, ["D:getetag"], depth="1").status_code == 403
    assert bob.put(alice.home + "planted.txt", b"x").status_code == 403
    assert bob.request("DELETE", alice.home + "secret.txt").status_code == 403
    assert bob.mkcol(alice.home + "dir/").status_code == 403
    assert alice.request("GET", alice.home + "secret.txt").status_code == 200


def test_delete_is_recursive_and_releases_blobs(alice):
    from blobs.models import Hold

    alice.mkcol(alice.home + "T/")
    alice.put(alice.home + "T/a", b"a" * 10)
    alice.put(alice.home + "T/b", b"b" * 10)
    assert Hold.objects.filter(owner_kind="davfile").count() == 2
    assert alice.request("DELETE", alice.home + "T/").status_code == 204
    assert alice.request("GET", alice.home + "T/a").status_code == 404
    assert Hold.objects.filter(owner_kind="davfile").count() == 0
    assert alice.request("DELETE", alice.home + "T/").status_code == 404
    assert alice.request("DELETE", alice.home).status_code == 403


def test_quota_is_the_blob_store_quota(alice):
    from accounts.models import Account

    Account.objects.filter(email_address="alice@example.org").update(max_disk_quota=100)
    assert alice.put(alice.home + "a", b"a" * 60).status_code == 201
    over = alice.put(alice.home + "b", b"b" * 60)
    assert over.status_code == 507
    assert xml(over).find("D:quota-not-exceeded", NS) is not None
    assert alice.request("GET", alice.home + "b").status_code == 404
    quota = alice.propfind(alice.home, ["D:quota-used-bytes", "D:quota-available-bytes"], depth="0")
    assert prop(quota, alice.home, "D:quota-used-bytes").text == "60"
    assert prop(quota, alice.home, "D:quota-available-bytes").text == "40"


def test_file_size_limit(alice, settings):
    settings.DAV_MAX_FILE_SIZE = 10
    assert alice.put(alice.home + "big", b"x" * 11).status_code == 413
    assert alice.request("GET", alice.home + "big").status_code == 404


def test_propfind_depth_one_costs_the_same_for_5_or_25_members(alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    alice.mkcol(alice.home + "Q/")

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = alice.request("PROPFIND", alice.home + "Q/", "", Depth="1")
        assert response.status_code == 207
        return len(ctx.captured_queries)

    for n in range(5):
        alice.put(alice.home + f"Q/{n}", b"x")
    few = count()
    for n in range(5, 25):
        alice.put(alice.home + f"Q/{n}", b"x")
    assert count() == few
