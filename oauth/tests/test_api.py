"""x:OAuthClient (JMAP, admin, schema), GET /api/discover/{email} and /api/account."""
import base64
import hashlib
import json

import pytest
from django.contrib.auth.hashers import check_password
from oauth2_provider.models import AccessToken

from accounts import hashing
from conftest import STRONG_PASSWORD
from tests.clients import Jmap, basic
from oauth import services
from oauth.models import OAuthClient

pytestmark = pytest.mark.django_db

VERIFIER = "w" * 60
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")


def create(jmap, body, cid="c1"):
    return jmap.ok("x:OAuthClient/set", {"create": {cid: body}})


def get_one(jmap, object_id):
    got = jmap.ok("x:OAuthClient/get", {"ids": [object_id]})
    assert got["notFound"] == []
    return got["list"][0]


def code_for(client, client_id, redirect, *, pkce=True, user="admin@example.org"):
    body = {"type": "authCode", "accountName": user, "accountSecret": STRONG_PASSWORD,
            "clientId": client_id, "redirectUri": redirect, "scope": "openid"}
    if pkce:
        body.update({"codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"})
    resp = client.post("/api/auth", json.dumps(body), content_type="application/json")
    return resp


# --- x:OAuthClient ----------------------------------------------------------------------------
def test_create_with_a_plaintext_secret_stores_its_hash_and_get_masks_it(jmap):
    got = create(jmap, {"clientId": "webmail", "description": "Webmail", "secret": "s3cret-Value-123",
                        "redirectUris": {"https://mail.example.org/cb": True, "com.example.app:/cb": True},
                        "contacts": {"ops@example.org": True}, "logo": "https://example.org/logo.png"})
    assert got["notCreated"] is None, got
    created = got["created"]["c1"]
    assert created["createdAt"] and created["ephemeral"] is False
    stored = OAuthClient.objects.get(client_id="webmail")
    assert stored.client_secret.startswith("argon2$argon2id$") and "s3cret-Value-123" not in stored.client_secret
    assert check_password("s3cret-Value-123", stored.client_secret)
    assert stored.client_type == OAuthClient.CLIENT_CONFIDENTIAL
    assert stored.redirect_uris.split() == ["https://mail.example.org/cb", "com.example.app:/cb"]
    doc = get_one(jmap, created["id"])
    assert doc["secret"] == "****"
    assert doc["clientId"] == "webmail" and doc["description"] == "Webmail"
    assert doc["redirectUris"] == {"https://mail.example.org/cb": True, "com.example.app:/cb": True}
    assert doc["contacts"] == {"ops@example.org": True}
    assert doc["createdAt"].endswith("Z") and doc["expiresAt"] is None and doc["memberTenantId"] is None
    assert doc["ephemeral"] is False
    # the secret never reaches the audit log
    from registry.models import AuditEvent

    for event in AuditEvent.objects.filter(object_type="OAuthClient"):
        assert "s3cret" not in json.dumps([event.old_value, event.new_value])


def test_client_created_through_jmap_authenticates_with_its_secret(jmap, client):
    # Acceptance §14 item 16: a plaintext secret set by an administrator is stored hashed;
    # a wrong secret gives invalid_client, the right one tokens.
    create(jmap, {"clientId": "backend", "secret": "Correct-Secret-42",
                  "redirectUris": {"https://app.example.net/cb": True}})
    redirect = "https://app.example.net/cb"

    def exchange(secret):
        code = code_for(client, "backend", redirect, pkce=False).json()["client_code"]
        return client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                                           "client_id": "backend", "client_secret": secret})

    assert exchange("wrong").json()["error"] == "invalid_client"
    ok = exchange("Correct-Secret-42")
    assert ok.status_code == 200 and ok.json()["access_token"]


def test_secret_can_be_replaced_and_removed(jmap):
    oid = create(jmap, {"clientId": "app", "secret": "First-Secret-1"})["created"]["c1"]["id"]
    # sending back what get returned keeps the secret
    got = jmap.ok("x:OAuthClient/set", {"update": {oid: {"secret": "****", "description": "same secret"}}})
    assert got["notUpdated"] is None, got
    assert check_password("First-Secret-1", OAuthClient.objects.get(client_id="app").client_secret)
    jmap.ok("x:OAuthClient/set", {"update": {oid: {"secret": "Second-Secret-2"}}})
    stored = OAuthClient.objects.get(client_id="app")
    assert check_password("Second-Secret-2", stored.client_secret)
    assert not check_password("First-Secret-1", stored.client_secret)
    jmap.ok("x:OAuthClient/set", {"update": {oid: {"secret": None}}})
    stored = OAuthClient.objects.get(client_id="app")
    assert stored.client_secret == "" and stored.client_type == OAuthClient.CLIENT_PUBLIC
    assert get_one(jmap, oid)["secret"] is None


def test_client_without_secret_is_public(jmap):
    create(jmap, {"clientId": "spa", "redirectUris": {"https://spa.example.net/cb": True}})
    stored = OAuthClient.objects.get(client_id="spa")
    assert stored.client_secret == "" and stored.client_type == OAuthClient.CLIENT_PUBLIC


def test_prehashed_secrets(jmap):
    reference_hash = hashing.hash_secret("Imported-Secret-7", "argon2id")  # "$argon2id$…", as the reference stores
    create(jmap, {"clientId": "imported", "secret": reference_hash})
    stored = OAuthClient.objects.get(client_id="imported").client_secret
    assert stored == "argon2" + reference_hash and check_password("Imported-Secret-7", stored)
    # a scheme the token endpoint could not verify is refused rather than taken for a plaintext secret
    got = create(jmap, {"clientId": "bcrypt", "secret": hashing.hash_secret("x", "bcrypt")})
    assert got["notCreated"]["c1"]["properties"] == ["secret"]
    got = create(jmap, {"clientId": "masked", "secret": "****"})
    assert got["notCreated"]["c1"]["properties"] == ["secret"]


@pytest.mark.parametrize("uri", ["http://example.com/cb", "https://a.example.net/cb#x", "http://127.0.0.1/../cb",
                                 "myapp:/cb"])
def test_invalid_redirect_uris_are_refused(jmap, uri):
    got = create(jmap, {"clientId": "bad", "redirectUris": {uri: True}})
    err = got["notCreated"]["c1"]
    assert err["type"] == "invalidProperties" and err["properties"] == ["redirectUris"], err
    assert not OAuthClient.objects.filter(client_id="bad").exists()


@pytest.mark.parametrize("value", [["https://a.example.net/cb"], "https://a.example.net/cb",
                                   {"https://a.example.net/cb": False}, {"https://a.example.net/a b": True}])
def test_redirect_uris_encoding_is_a_set(jmap, value):
    got = create(jmap, {"clientId": "bad", "redirectUris": value})
    assert got["notCreated"]["c1"]["type"] in ("invalidPatch", "invalidProperties")


def test_redirect_uris_patch_by_pointer(jmap):
    oid = create(jmap, {"clientId": "app", "redirectUris": {"https://a.example.net/cb": True}})["created"]["c1"]["id"]
    got = jmap.ok("x:OAuthClient/set", {"update": {oid: {"redirectUris/com.example.app:~1cb": True,
                                                         "redirectUris/https:~1~1a.example.net~1cb": None}}})
    assert got["notUpdated"] is None, got
    assert get_one(jmap, oid)["redirectUris"] == {"com.example.app:/cb": True}
    got = jmap.ok("x:OAuthClient/set", {"update": {oid: {"redirectUris/http:~1~1example.com~1cb": True}}})
    assert got["notUpdated"][oid]["properties"] == ["redirectUris"]


def test_client_id_is_required_and_unique(jmap):
    got = create(jmap, {"description": "no id"})
    assert got["notCreated"]["c1"]["type"] in ("validationFailed", "invalidProperties")
    create(jmap, {"clientId": "dup"})
    got = create(jmap, {"clientId": "dup"})
    assert got["notCreated"]["c1"]["type"] == "primaryKeyViolation"


def test_server_set_properties(jmap):
    got = create(jmap, {"clientId": "x", "createdAt": "2020-01-01T00:00:00Z"})
    assert got["notCreated"]["c1"]["properties"] == ["createdAt"]
    got = create(jmap, {"clientId": "x", "ephemeral": True})
    assert got["notCreated"]["c1"]["properties"] == ["ephemeral"]


def test_query_filters(jmap):
    create(jmap, {"clientId": "alpha-app", "description": "Alpha mail", "secret": "alpha-secret-value"}, "a")
    create(jmap, {"clientId": "beta-app", "description": "Beta"}, "b")
    ids = jmap.ok("x:OAuthClient/query", {"filter": {"text": "alpha"}})["ids"]
    assert len(ids) == 1
    assert len(jmap.ok("x:OAuthClient/query", {"filter": {"clientId": "BETA-APP"}})["ids"]) == 1
    # the stored hash is not searchable
    assert jmap.ok("x:OAuthClient/query", {"filter": {"text": "argon2"}})["ids"] == []
    err = jmap.error("x:OAuthClient/query", {"filter": {"secret": "alpha-secret-value"}})
    assert err["type"] == "unsupportedFilter"


def test_ephemeral_clients_are_visible_and_marked(jmap):
    ephemeral = services.client_for_flow("thunderbird", None, None)
    assert ephemeral.ephemeral and ephemeral.client_secret == "" and ephemeral.client_type == "public"
    from registry import ids

    doc = get_one(jmap, ids.encode(ephemeral.pk))
    assert doc["ephemeral"] is True and doc["clientId"] == "thunderbird" and doc["secret"] is None
    # saving it registers it: from then on its redirect URIs are checked
    got = jmap.ok("x:OAuthClient/set", {"update": {doc["id"]: {"redirectUris": {"https://tb.example.net/cb": True}}}})
    assert got["notUpdated"] is None, got
    assert get_one(jmap, doc["id"])["ephemeral"] is False
    with pytest.raises(services.OAuthError):
        services.client_for_flow("thunderbird", "https://other.example.net/cb", None)


def test_destroy_revokes_the_clients_tokens(jmap, client, django_capture_on_commit_callbacks):
    oid = create(jmap, {"clientId": "gone", "redirectUris": {"http://127.0.0.1/cb": True}})["created"]["c1"]["id"]
    code = code_for(client, "gone", "http://127.0.0.1/cb").json()["client_code"]
    tokens = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "client_id": "gone",
                                         "redirect_uri": "http://127.0.0.1/cb", "code_verifier": VERIFIER}).json()
    bearer = f"Bearer {tokens['access_token']}"
    assert client.get("/jmap/session", HTTP_AUTHORIZATION=bearer).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        got = jmap.ok("x:OAuthClient/set", {"destroy": [oid]})
    assert got["destroyed"] == [oid], got
    assert not AccessToken.objects.filter(application__client_id="gone").exists()
    assert client.get("/jmap/session", HTTP_AUTHORIZATION=bearer).status_code == 401


def test_permissions(client, make_account):
    make_account("bob")
    bob = Jmap(client, basic("bob@example.org"))
    assert bob.error("x:OAuthClient/get", {})["type"] == "forbidden"
    assert bob.error("x:OAuthClient/set", {"create": {"c": {"clientId": "x"}}})["type"] == "forbidden"
    assert bob.error("x:OAuthClient/query", {})["type"] == "forbidden"


def test_schema_describes_the_client(jmap):
    from registry import schema

    # no generated default (a random client id would make the document differ between workers)
    assert schema.build() == schema.build()
    doc = schema.build()
    props = doc["fields"]["x:OAuthClient"]["properties"]
    assert props["secret"]["type"]["format"] == "secret"
    assert props["createdAt"]["update"] == "serverSet" and props["ephemeral"]["update"] == "serverSet"
    assert props["redirectUris"]["type"] == {"type": "set", "class": {"type": "string", "format": "uri"}}
    assert props["memberTenantId"]["type"]["objectName"] == "x:Tenant"
    assert doc["objects"]["x:OAuthClient"]["permissionPrefix"] == "sysOAuthClient"
    assert doc["fields"]["x:OAuthClient"]["defaults"].get("clientId", "") == ""


def test_admin_pages(admin_client):
    OAuthClient.objects.create(client_id="listed", client_secret="Admin-Page-Secret-1", description="Listed")
    services.client_for_flow("auto-created", None, None)
    page = admin_client.get("/admin/oauth/oauthclient/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "listed" in text and "auto-created" in text
    stored = OAuthClient.objects.get(client_id="listed")
    change = admin_client.get(f"/admin/oauth/oauthclient/{stored.pk}/change/")
    assert change.status_code == 200
    assert stored.client_secret not in change.content.decode()
    assert admin_client.get("/admin/oauth/oidcprovider/").status_code in (200, 302)


def test_admin_form_keeps_replaces_and_removes_the_secret(admin_client):
    stored = OAuthClient.objects.create(client_id="formed", client_secret="Form-Secret-1",
                                        redirect_uris="https://f.example.net/cb")
    url = f"/admin/oauth/oauthclient/{stored.pk}/change/"

    def post(secret, **extra):
        data = {"client_id": "formed", "description": "", "contacts": "", "logo": "", "tenant": "",
                "redirect_uris": "https://f.example.net/cb", "client_secret": secret, "expires_at_0": "",
                "expires_at_1": "", **extra}
        return admin_client.post(url, data)

    resp = post("", description="kept")
    assert resp.status_code == 302, resp.content.decode()[:3000]
    assert check_password("Form-Secret-1", OAuthClient.objects.get(pk=stored.pk).client_secret)
    assert post("Form-Secret-2").status_code == 302
    assert check_password("Form-Secret-2", OAuthClient.objects.get(pk=stored.pk).client_secret)
    bad = post("", redirect_uris="http://example.com/cb")
    assert bad.status_code == 200  # the form again, with the error
    assert post("", client_secret__clear="on").status_code == 302
    assert OAuthClient.objects.get(pk=stored.pk).client_type == OAuthClient.CLIENT_PUBLIC


# --- /api/discover ----------------------------------------------------------------------------
def test_discover_serves_our_openid_configuration(client):
    expected = client.get("/.well-known/openid-configuration").json()
    for path in ("/api/discover/jane@example.org", "/api/discover/Jane%40Example.org", "/api/discover/%20jane@x.org"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.json() == expected
        assert resp["Access-Control-Allow-Origin"] == "*"
    assert expected["registration_endpoint"].endswith("/auth/register")
    # any method
    assert client.post("/api/discover/jane@example.org").json() == expected


def test_discover_without_an_address_is_404(client):
    for path in ("/api/discover", "/api/discover/", "/api/discover/%20"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert resp["Content-Type"] == "application/problem+json"


# --- /api/account -----------------------------------------------------------------------------
def test_account_needs_authentication(client):
    resp = client.get("/api/account")
    assert resp.status_code == 401 and "Basic" in resp["WWW-Authenticate"]


def test_account_of_a_user(client, make_account):
    make_account("bob", locale="fr_FR")
    resp = client.get("/api/account", HTTP_AUTHORIZATION=basic("bob@example.org"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["edition"] == "oss" and body["locale"] == "fr_FR"
    assert "authenticate" in body["permissions"] and "sysAccountPasswordUpdate" in body["permissions"]
    assert "sysOAuthClientGet" not in body["permissions"]
    # any method
    assert client.post("/api/account", HTTP_AUTHORIZATION=basic("bob@example.org")).json() == body


def test_account_of_an_administrator_hides_what_the_ui_does_not_use(client, admin_account):
    body = client.get("/api/account", HTTP_AUTHORIZATION=basic("admin@example.org")).json()
    perms = set(body["permissions"])
    assert {"sysOAuthClientGet", "sysLogGet", "sysAccountCreate"} <= perms
    hidden = {"sysLogCreate", "sysLogUpdate", "sysLogDestroy", "sysClusterNodeCreate", "sysQueuedMessageCreate",
              "sysBootstrapGet", "sysBootstrapUpdate", "sysDmarcInternalReportCreate", "sysTlsExternalReportUpdate",
              "sysArfExternalReportCreate"}
    assert not perms & hidden
    assert body["locale"] == "en_US"
    from accounts.permissions import ordered

    assert body["permissions"] == ordered(body["permissions"])


def test_account_with_a_bearer_token_and_an_api_key_scope(client, make_account):
    make_account("alice")
    code = code_for(client, "some-app", "http://127.0.0.1/cb", user="alice@example.org").json()["client_code"]
    token = client.post("/auth/token", {"grant_type": "authorization_code", "code": code, "client_id": "some-app",
                                        "redirect_uri": "http://127.0.0.1/cb", "code_verifier": VERIFIER}).json()
    resp = client.get("/api/account", HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert resp.status_code == 200 and "authenticate" in resp.json()["permissions"]


def test_account_shows_the_current_credentials_scope(client, make_account):
    from accounts import credentials as account_credentials

    alice = make_account("alice")
    _cred, key = account_credentials.create_secondary_credential(
        alice, "api_key", "test", description="narrow", permissions_mode="replace",
        permissions=["authenticate", "jmapEmailGet"])
    resp = client.get("/api/account", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert resp.status_code == 200, resp.content
    assert resp.json()["permissions"] == ["authenticate", "jmapEmailGet"]
