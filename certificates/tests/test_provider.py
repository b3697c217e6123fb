"""x:AcmeProvider and x:Certificate over JMAP: validation, secrets, read-only certificates."""
import datetime as dt
import json

import pytest
from django.utils import timezone

from certificates.models import LETS_ENCRYPT, AcmeProvider, Certificate
from registry import ids
from registry.models import AuditEvent

pytestmark = pytest.mark.django_db

EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
GOOD = {"contact": {"hostmaster@example.org": True}, "domains": {"mail.example.org": True}}


def create(jmap, **body):
    return jmap.ok("x:AcmeProvider/set", {"create": {"p": {**GOOD, **body}}})


def refused(jmap, **body):
    got = create(jmap, **body)
    assert got["created"] is None, got
    return got["notCreated"]["p"]


def test_create_with_defaults(jmap):
    got = create(jmap)
    pid = got["created"]["p"]["id"]
    doc = jmap.ok("x:AcmeProvider/get", {"ids": [pid]})["list"][0]
    assert doc == {"id": pid, "directory": LETS_ENCRYPT, "challengeType": "Http01",
                   "contact": {"hostmaster@example.org": True}, "domains": {"mail.example.org": True},
                   "renewBefore": "R23", "maxRetries": 10, "eabKeyId": "", "eabHmacKey": "", "accountUri": ""}
    assert jmap.ok("x:AcmeProvider/query", {})["ids"] == [pid]


@pytest.mark.parametrize("body, prop", [
    ({"directory": "not a url"}, "directory"),
    ({"directory": "http://acme.example.org/directory"}, "directory"),
    ({"contact": {}}, "contact"),
    ({"contact": {"not-an-address": True}}, "contact"),
    ({"domains": {}}, "domains"),
    ({"domains": {"Mail.Example.org": True}}, "domains"),
    ({"domains": {"*.example.org": True}}, "domains"),
    ({"domains": {"under_score.example.org": True}}, "domains"),
    ({"domains": {"localhost": True}}, "domains"),
    ({"domains": {"../../etc": True}}, "domains"),
    ({"domains": {f"h{i}.example.org": True for i in range(101)}}, "domains"),
    ({"renewBefore": "R99"}, "renewBefore"),
    ({"challengeType": "Dns01"}, "challengeType"),
    ({"challengeType": "TlsAlpn01"}, "challengeType"),
    ({"eabKeyId": "kid"}, "eabHmacKey"),
    ({"eabHmacKey": EAB_KEY}, "eabKeyId"),
    ({"eabKeyId": "kid", "eabHmacKey": "not base64!"}, "eabHmacKey"),
    ({"accountUri": "https://ca.example/acct/1"}, "accountUri"),
])
def test_invalid_providers_are_refused(jmap, body, prop):
    error = refused(jmap, **body)
    assert error["type"] in ("invalidProperties", "validationFailed", "invalidPatch"), error
    named = set(error.get("properties", [])) | {e["property"] for e in error.get("validationErrors", [])}
    assert prop in named, error
    assert not AcmeProvider.objects.exists()


def test_unimplemented_challenge_types_say_so(jmap):
    error = refused(jmap, challengeType="Dns01")
    assert error["type"] == "invalidProperties"
    assert "Only Http01" in error["description"]


def test_eab_hmac_key_is_never_returned(jmap, client):
    pid = create(jmap, eabKeyId="kid-1", eabHmacKey=EAB_KEY)["created"]["p"]["id"]
    provider = AcmeProvider.objects.get(pk=ids.decode(pid))
    assert provider.eab_hmac_key == EAB_KEY  # kept usable: it signs the account binding
    raw = json.dumps(jmap.ok("x:AcmeProvider/get", {"ids": [pid]}))
    assert EAB_KEY not in raw and '"eabHmacKey": "****"' in raw
    # Nor through the audit log, a filter, or the schema's defaults.
    assert not AuditEvent.objects.filter(new_value__icontains=EAB_KEY).exists()
    assert AuditEvent.objects.filter(object_type="AcmeProvider", field="eabHmacKey", new_value="****").exists()
    assert jmap.error("x:AcmeProvider/query", {"filter": {"eabHmacKey": EAB_KEY}})["type"] == "unsupportedFilter"
    # Keeping "****" in an update keeps the key.
    got = jmap.ok("x:AcmeProvider/set", {"update": {pid: {"eabHmacKey": "****", "maxRetries": 3}}})
    assert got["updated"] == {pid: None}
    provider.refresh_from_db()
    assert provider.eab_hmac_key == EAB_KEY and provider.max_retries == 3


def test_account_key_is_never_exposed(jmap):
    pid = create(jmap)["created"]["p"]["id"]
    AcmeProvider.objects.filter(pk=ids.decode(pid)).update(
        account_key="-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    raw = json.dumps(jmap.ok("x:AcmeProvider/get", {"ids": [pid]}))
    assert "PRIVATE KEY" not in raw and "accountKey" not in raw
    assert jmap.error("x:AcmeProvider/get", {"properties": ["accountKey"]})["type"] == "invalidArguments"


def test_changing_the_directory_forgets_the_account_and_the_failures(jmap):
    pid = create(jmap)["created"]["p"]["id"]
    AcmeProvider.objects.filter(pk=ids.decode(pid)).update(
        account_uri="https://ca.example/acct/1", account_directory=LETS_ENCRYPT, failures=12, last_error="boom")
    got = jmap.ok("x:AcmeProvider/set", {"update": {pid: {"directory": "https://ca.example/dir"}}})
    assert got["updated"] == {pid: None}
    p = AcmeProvider.objects.get(pk=ids.decode(pid))
    assert (p.account_uri, p.account_directory, p.failures, p.last_error) == ("", "", 0, "")
    error = jmap.ok("x:AcmeProvider/set", {"update": {pid: {"accountUri": "https://x"}}})["notUpdated"][pid]
    assert error["type"] == "invalidPatch"


@pytest.fixture
def certificate(db):
    provider = AcmeProvider.objects.create(contact=["a@example.org"], domains=["mail.example.org"])
    now = timezone.now()
    return Certificate.objects.create(
        provider=provider, names=["mail.example.org"], issuer="CN=Test CA", serial_number="1f",
        not_before=now, not_after=now + dt.timedelta(days=90), chain="-----BEGIN CERTIFICATE-----\n…",
        private_key="-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n")


def test_certificates_are_read_only_and_keep_their_key(jmap, certificate):
    cid = ids.encode(certificate.pk)
    doc = jmap.ok("x:Certificate/get", {"ids": [cid]})["list"][0]
    assert doc["names"] == {"mail.example.org": True}
    assert doc["acmeProviderId"] == ids.encode(certificate.provider_id)
    assert doc["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in json.dumps(doc) and "privateKey" not in doc
    assert jmap.ok("x:Certificate/query", {})["ids"] == [cid]
    got = jmap.ok("x:Certificate/set", {"create": {"c": {}}, "update": {cid: {"names": {"x.example.org": True}}}})
    assert got["notCreated"]["c"]["type"] in ("validationFailed", "forbidden")
    assert got["notUpdated"][cid]["type"] == "invalidPatch"
    assert Certificate.objects.count() == 1
    # Whatever face asks, the service layer refuses a certificate that the ACME client did not issue.
    from registry import services as registry
    from registry.errors import Forbidden

    values = {f: getattr(certificate, f) for f in ("names", "issuer", "serial_number", "not_before", "not_after",
                                                   "chain")}
    with pytest.raises(Forbidden, match="issued by the ACME client"):
        registry.create(Certificate._declaration, {**values, "provider": certificate.provider_id}, "test",
                        instance=Certificate(private_key=certificate.private_key))
    with pytest.raises(Forbidden):
        registry.update(Certificate._declaration, certificate.pk, {"issuer": "CN=Other"}, "test")
    got = jmap.ok("x:Certificate/set", {"destroy": [cid]})
    assert got["destroyed"] == [cid] and not Certificate.objects.exists()


def test_schema_lists_the_objects(client, admin_account):
    from registry import schema

    doc = schema.build()
    assert doc["objects"]["x:Certificate"]["operations"] == ["Get", "Destroy", "Query"]
    assert doc["objects"]["x:AcmeProvider"]["operations"] == ["Get", "Create", "Update", "Destroy", "Query"]
    assert [v["name"] for v in doc["enums"]["AcmeRenewBefore"]] == ["R12", "R23", "R34", "R45"]
    assert [v["name"] for v in doc["enums"]["AcmeChallengeType"]] == ["TlsAlpn01", "Http01", "Dns01", "DnsPersist01"]
    assert doc["fields"]["x:AcmeProvider"]["properties"]["accountUri"]["update"] == "serverSet"


def test_admin_pages(admin_client, certificate):
    resp = admin_client.get("/admin/certificates/acmeprovider/add/")
    assert resp.status_code == 200
    resp = admin_client.post("/admin/certificates/acmeprovider/add/", {
        "directory": "https://ca.example/dir", "challenge_type": "Http01", "contact": "a@example.org",
        "domains": "mail.example.org\nimap.example.org", "renew_before": "R23", "max_retries": "10",
        "eab_key_id": "kid", "eab_hmac_key": EAB_KEY})
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    provider = AcmeProvider.objects.get(directory="https://ca.example/dir")
    assert provider.domains == ["imap.example.org", "mail.example.org"]
    page = admin_client.get(f"/admin/certificates/acmeprovider/{provider.pk}/change/").content.decode()
    assert EAB_KEY not in page and "A value is stored; it is never shown." in page
    page = admin_client.get(f"/admin/certificates/certificate/{certificate.pk}/change/").content.decode()
    assert "secret-key-material" not in page and "PRIVATE KEY" not in page and "mail.example.org" in page
    assert admin_client.get("/admin/certificates/certificate/add/").status_code == 403
