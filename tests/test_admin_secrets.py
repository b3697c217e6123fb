"""No admin page renders a stored secret (issue 10, items 19 and 20).

Every declared secret field's change page is read by a full administrator and by a delegated
one who may only look; neither sees the stored value, clear or hashed. A list's query string
cannot filter on a secret, so it cannot be used to read one back a prefix at a time.
"""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.hashers import check_password

from accounts.models import Directory, Role
from certificates.models import AcmeProvider
from conftest import STRONG_PASSWORD
from oauth.models import OAuthClient, OidcProvider
from registry import declaration
from registry import services as registry
from submission.models import MtaRoute
from telemetry.models import Metrics

EAB_KEY = "c2VjcmV0LWVhYi1obWFjLWtleS12YWx1ZS0xMjM0NTY3ODkw"
CLIENT_SECRET = "Client-Secret-Value-1"


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _oidc():
    row = OidcProvider.load()
    row.signature_algorithm = "es256"
    row.signature_key = _pem()
    row.save()
    return row, "/admin/oauth/oidcprovider/1/change/", row.signature_key


def _client():
    row = OAuthClient.objects.create(client_id="secretive", client_secret=CLIENT_SECRET,
                                     redirect_uris="https://app.example.net/cb")
    row.refresh_from_db()
    return row, f"/admin/oauth/oauthclient/{row.pk}/change/", row.client_secret


def _acme():
    row = AcmeProvider.objects.create(contact=["a@example.org"], domains=["mail.example.org"],
                                      eab_key_id="kid-1", eab_hmac_key=EAB_KEY)
    return row, f"/admin/certificates/acmeprovider/{row.pk}/change/", EAB_KEY


def _metrics():
    row = Metrics.load()
    row.prometheus_enabled = True
    row.prometheus_auth_username = "scraper"
    row.prometheus_auth_secret_kind = Metrics.SecretKind.VALUE
    row.prometheus_auth_secret = "Scraper-Secret-1"
    row.save()
    row.refresh_from_db()
    return row, "/admin/telemetry/metrics/1/change/", row.prometheus_auth_secret


def _directory_ldap():
    row = registry.create(Directory._declaration, {
        "description": "People", "kind": "ldap", "base_dn": "dc=example,dc=org", "bind_secret_kind": "value",
        "bind_secret": "Bind-Secret-Value-1"}, "test")
    return row, f"/admin/accounts/directory/{row.pk}/change/", row.bind_secret


def _directory_sql():
    row = registry.create(Directory._declaration, {
        "description": "Accounts", "kind": "sql", "sql_store": "postgresql", "sql_host": "db.example.org",
        "sql_auth_secret_kind": "value", "sql_auth_secret": "Database-Secret-Value-1"}, "test")
    return row, f"/admin/accounts/directory/{row.pk}/change/", row.sql_auth_secret


def _mta_route():
    row = registry.create(MtaRoute._declaration, {
        "name": "relay", "address": "smtp.example.net", "auth_username": "bob", "auth_secret_kind": "value",
        "auth_secret": "Relay-Secret-Value-1"}, "test")
    return row, f"/admin/submission/mtaroute/{row.pk}/change/", row.auth_secret


# (declared type, model field) -> maker of (object, change page, stored value as written in the row)
PAGES = {
    ("OidcProvider", "signature_key"): _oidc,
    ("OAuthClient", "client_secret"): _client,
    ("AcmeProvider", "eab_hmac_key"): _acme,
    ("Metrics", "prometheus_auth_secret"): _metrics,
    ("Directory", "bind_secret"): _directory_ldap,
    ("Directory", "sql_auth_secret"): _directory_sql,
    ("MtaRoute", "auth_secret"): _mta_route,
}


def test_every_declared_secret_with_a_page_is_covered():
    declared = {(d.name, p.attname) for d in declaration.declarations().values() if d.admin
                for p in d.props if p.secret}
    assert declared == set(PAGES)


def _fragments(stored: str) -> list[str]:
    """Pieces of the stored value that would betray it: the whole, and its longest lines."""
    lines = sorted((line for line in stored.splitlines() if len(line) > 16), key=len, reverse=True)
    return [stored, *lines[:3], stored[-24:]]


def _viewer(client, make_account, type_name):
    role = registry.create(Role._declaration, {
        "description": f"{type_name} viewer", "enabled_permissions": ["authenticate", f"sys{type_name}Get"],
        "disabled_permissions": [], "parents": []}, "test")
    make_account("viewer", roles_mode="custom", roles=[role.pk])
    assert client.login(username="viewer@example.org", password=STRONG_PASSWORD)
    return client


@pytest.mark.parametrize("key", sorted(PAGES))
def test_the_change_page_never_renders_the_secret(admin_client, key):
    _obj, url, stored = PAGES[key]()
    assert stored
    page = admin_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    for piece in _fragments(stored):
        assert piece not in text, (key, piece)
    assert f'name="{key[1]}"' in text  # still an input, to type a new value into


@pytest.mark.parametrize("key", sorted(PAGES))
def test_a_viewer_who_may_only_look_does_not_see_it_either(client, make_account, key):
    _obj, url, stored = PAGES[key]()
    _viewer(client, make_account, key[0])
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    for piece in _fragments(stored):
        assert piece not in text, (key, piece)
    assert "****" in text  # it says that a value is stored, not which


def test_oidc_key_left_blank_is_kept_and_a_new_one_replaces_it(admin_client):
    row, url, stored = _oidc()
    form = {"access_token_expiry": "1:00:00", "refresh_token_expiry": "30 00:00:00",
            "refresh_token_renewal": "4 00:00:00", "auth_code_expiry": "0:10:00", "user_code_expiry": "0:30:00",
            "id_token_expiry": "0:15:00", "anonymous_client_registration": "on", "signature_algorithm": "es256",
            "signature_key": ""}
    resp = admin_client.post(url, form)
    assert resp.status_code == 302, resp.content.decode()[-3000:]
    assert OidcProvider.load().signature_key == stored
    fresh = _pem()
    assert admin_client.post(url, {**form, "signature_key": fresh}).status_code == 302
    assert OidcProvider.load().signature_key.strip() == fresh.strip()


def test_client_secret_blank_keeps_typed_replaces_remove_empties(admin_client):
    row, url, stored = _client()

    def post(secret, **extra):
        data = {"client_id": "secretive", "description": "", "contacts": "", "logo": "", "tenant": "",
                "redirect_uris": "https://app.example.net/cb", "client_secret": secret, "expires_at_0": "",
                "expires_at_1": "", **extra}
        return admin_client.post(url, data)

    resp = post("", description="kept")
    assert resp.status_code == 302, resp.content.decode()[-3000:]
    row.refresh_from_db()
    assert row.description == "kept" and row.client_secret == stored
    assert post("****").status_code == 302
    assert check_password(CLIENT_SECRET, OAuthClient.objects.get(pk=row.pk).client_secret)
    assert post("Client-Secret-Value-2").status_code == 302
    assert check_password("Client-Secret-Value-2", OAuthClient.objects.get(pk=row.pk).client_secret)
    # A refused change redisplays the form without the stored hash either.
    bad = post("", redirect_uris="not a uri")
    assert bad.status_code == 200
    assert OAuthClient.objects.get(pk=row.pk).client_secret not in bad.content.decode()
    assert post("", client_secret__clear="on").status_code == 302
    row.refresh_from_db()
    assert row.client_secret == "" and row.client_type == OAuthClient.CLIENT_PUBLIC


def test_eab_key_blank_keeps_it(admin_client):
    row, url, _stored = _acme()
    data = {"directory": row.directory, "challenge_type": "Http01", "contact": "a@example.org",
            "domains": "mail.example.org", "renew_before": "R23", "max_retries": "7", "eab_key_id": "kid-1",
            "eab_hmac_key": ""}
    resp = admin_client.post(url, data)
    assert resp.status_code == 302, resp.content.decode()[-3000:]
    row.refresh_from_db()
    assert row.max_retries == 7 and row.eab_hmac_key == EAB_KEY
    assert admin_client.post(url, {**data, "eab_key_id": "", "eab_hmac_key__clear": "on"}).status_code == 302
    row.refresh_from_db()
    assert (row.eab_key_id, row.eab_hmac_key) == ("", "")


# --- item 20: list filters --------------------------------------------------------------------
def _refusal(client, url):
    resp = client.get(url)
    return resp.status_code, resp.get("Location"), resp.content


def test_client_list_refuses_a_filter_on_the_secret_whether_or_not_it_matches(admin_client):
    _row, _url, stored = _client()
    base = "/admin/oauth/oauthclient/"
    matching = _refusal(admin_client, f"{base}?client_secret__startswith={stored[:12]}")
    other = _refusal(admin_client, f"{base}?client_secret__startswith=zz-no-such-prefix")
    assert matching == other
    assert matching[0] == 400
    # The declared, public fields still filter.
    listed = admin_client.get(f"{base}?client_id__startswith=secr")
    assert listed.status_code == 200 and "secretive" in listed.content.decode()
    assert admin_client.get(f"{base}?client_type=confidential").status_code == 200


def test_acme_list_refuses_a_filter_on_the_eab_key_or_the_account_key(admin_client):
    _acme()
    base = "/admin/certificates/acmeprovider/"
    matching = _refusal(admin_client, f"{base}?eab_hmac_key__startswith={EAB_KEY[:6]}")
    other = _refusal(admin_client, f"{base}?eab_hmac_key__startswith=zzzzzz")
    assert matching == other and matching[0] == 400
    # Nor on a column that is not public at all, nor through a relation from the certificates.
    assert admin_client.get(f"{base}?account_key__startswith=-----").status_code == 400
    assert admin_client.get("/admin/certificates/certificate/?provider__eab_hmac_key__startswith=c2").status_code == 400
    assert admin_client.get("/admin/certificates/certificate/?private_key__startswith=-----").status_code == 400
    assert admin_client.get(f"{base}?max_retries=10").status_code == 200
