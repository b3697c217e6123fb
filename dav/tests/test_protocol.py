"""The /dav tree's frame: OPTIONS, authentication, URL resolution, principals, discovery."""
from __future__ import annotations

from .helpers import NS, hrefs, prop, xml


def test_options_needs_no_authentication_and_names_the_classes(client, db):
    response = client.options("/dav/file/")
    assert response.status_code == 200
    assert response["DAV"].startswith("1, 2, 3, access-control, extended-mkcol")
    assert "PROPFIND" in response["Allow"] and "LOCK" in response["Allow"]


def test_unauthenticated_propfind_gets_both_challenges(client, alice):
    response = client.generic("PROPFIND", alice.home, b"", HTTP_DEPTH="0")
    assert response.status_code == 401
    challenges = response["WWW-Authenticate"]
    assert "Basic" in challenges and "Bearer" in challenges


def test_wrong_password_is_401(client, alice):
    alice.auth = "Basic " + __import__("base64").b64encode(b"alice@example.org:nope").decode()
    assert alice.propfind(alice.home, depth="0").status_code == 401


def test_unknown_method_and_service(alice):
    assert alice.request("BREW", alice.home).status_code == 405
    assert alice.propfind("/dav/nope/", depth="0").status_code == 404
    assert alice.propfind("/dav/file/nobody%40example.org/", depth="0").status_code == 404


def test_account_by_id_and_alias_resolve_to_the_same_home(alice, make_account):
    from accounts.models import Account, Alias

    account = Account.objects.get(email_address="alice@example.org")
    Alias.objects.create(account=account, name="al", domain=account.domain)
    for path in (f"/dav/file/_{account.pk}/", "/dav/file/al%40example.org/"):
        response = alice.propfind(path, ["D:resourcetype"], depth="0")
        assert response.status_code == 207
        # hrefs are always the account's own address
        assert hrefs(response) == ["/dav/file/alice%40example.org/"]


def test_dot_segments_and_control_characters_are_refused(alice):
    assert alice.propfind(alice.home + "../bob%40example.org/", depth="0").status_code in (400, 404)
    assert alice.propfind(alice.home + "a/%2e%2e/b", depth="0").status_code == 400
    assert alice.put(alice.home + "bad%0aname", b"x").status_code == 400
    assert alice.put(alice.home + "nul%00", b"x").status_code == 400


def test_current_user_principal_and_home_sets(alice):
    response = alice.propfind("/dav/cal/", ["D:current-user-principal", "A:calendar-home-set"], depth="0")
    assert response.status_code == 207
    principal = prop(response, "/dav/cal/", "D:current-user-principal")
    assert principal.findtext("D:href", namespaces=NS) == "/dav/pal/alice%40example.org/"
    home_set = prop(response, "/dav/cal/", "A:calendar-home-set")
    assert home_set.findtext("D:href", namespaces=NS) == "/dav/cal/alice%40example.org/"
    response = alice.propfind("/dav/pal/alice%40example.org/",
                              ["D:displayname", "A:calendar-home-set", "B:addressbook-home-set",
                               "A:calendar-user-address-set", "D:principal-URL", "D:resourcetype"], depth="0")
    href = "/dav/pal/alice%40example.org/"
    assert prop(response, href, "D:displayname").text == "Alice Example"
    assert prop(response, href, "A:calendar-home-set").findtext("D:href", namespaces=NS) == "/dav/cal/alice%40example.org/"
    assert prop(response, href, "B:addressbook-home-set").findtext("D:href", namespaces=NS) == "/dav/card/alice%40example.org/"
    assert prop(response, href, "A:calendar-user-address-set").findtext("D:href", namespaces=NS) == "mailto:alice@example.org"
    assert prop(response, href, "D:resourcetype").find("D:principal", NS) is not None


def test_well_known_caldav_leads_to_a_root_that_answers_propfind(client, alice):
    redirect = client.generic("PROPFIND", "/.well-known/caldav", b"")
    assert redirect.status_code == 307
    target = redirect["Location"]
    response = alice.propfind(target, ["D:current-user-principal"], depth="1")
    assert response.status_code == 207
    assert hrefs(response) == ["/dav/cal/", "/dav/cal/alice%40example.org/"]
    home = alice.propfind("/dav/card/alice%40example.org/", ["D:resourcetype", "D:current-user-principal"], depth="0")
    assert home.status_code == 207


def test_another_principal_is_a_403_entry(alice, bob):
    response = alice.propfind("/dav/pal/bob%40example.org/", ["D:displayname"], depth="0")
    assert response.status_code == 207
    assert "403" in xml(response).findtext("D:response/D:status", namespaces=NS)


def test_principal_property_search_and_search_set(alice):
    body = ('<D:principal-property-search xmlns:D="DAV:"><D:property-search><D:prop><D:displayname/></D:prop>'
            '<D:match>alice</D:match></D:property-search><D:prop><D:displayname/></D:prop>'
            '</D:principal-property-search>')
    response = alice.report("/dav/pal/", body)
    assert response.status_code == 207
    assert hrefs(response) == ["/dav/pal/alice%40example.org/"]
    body = body.replace(">alice<", ">nobody<")
    assert hrefs(alice.report("/dav/pal/", body)) == []
    response = alice.report("/dav/pal/", '<D:principal-search-property-set xmlns:D="DAV:"/>')
    assert response.status_code == 200
    assert xml(response).find("D:principal-search-property/D:prop/D:displayname", NS) is not None


def test_expand_property_follows_hrefs(alice):
    body = ('<D:expand-property xmlns:D="DAV:"><D:property name="current-user-principal">'
            '<D:property name="displayname"/></D:property></D:expand-property>')
    response = alice.report(alice.home, body)
    assert response.status_code == 207
    inner = xml(response).find(".//D:current-user-principal/D:response", NS)
    assert inner.findtext("D:href", namespaces=NS) == "/dav/pal/alice%40example.org/"
    assert inner.findtext(".//D:displayname", namespaces=NS) == "Alice Example"


def test_unknown_report_is_supported_report_error(alice):
    response = alice.report(alice.home, '<D:nonsense-report xmlns:D="DAV:"/>')
    assert response.status_code == 403
    assert xml(response).find("D:supported-report", NS) is not None


def test_missing_permission_is_403(alice):
    from accounts.models import Account

    account = Account.objects.get(email_address="alice@example.org")
    account.permissions_mode = "merge"
    account.disabled_permissions = ["davFilePut"]
    account.save()
    response = alice.put(alice.home + "x.txt", b"hello")
    assert response.status_code == 403


def test_app_passwords_and_api_keys_authenticate_like_jmap(client, alice):
    import base64

    from accounts import credentials
    from accounts.models import Account

    account = Account.objects.get(email_address="alice@example.org")
    _, app_password = credentials.create_secondary_credential(account, "app_password", "test", description="phone")
    basic = "Basic " + base64.b64encode(f"alice@example.org:{app_password}".encode()).decode()
    response = client.generic("PROPFIND", alice.home, b"", HTTP_DEPTH="0", HTTP_AUTHORIZATION=basic)
    assert response.status_code == 207
    _, key = credentials.create_secondary_credential(account, "api_key", "test", description="sync")
    response = client.generic("PROPFIND", alice.home, b"", HTTP_DEPTH="0", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 207
    # a key scoped to mail only may not touch files: the operation's permission is checked
    _, narrow = credentials.create_secondary_credential(account, "api_key", "test", description="mail only",
                                                        permissions_mode="replace",
                                                        permissions=["authenticate", "jmapEmailGet"])
    refused = client.generic("PUT", alice.home + "x.txt", b"x", HTTP_AUTHORIZATION=f"Bearer {narrow}")
    assert refused.status_code == 403
