"""x:MtaRoute, the relay settings, through its declaration's faces: JMAP with the reference's
property names, the secret masked on every face and encrypted at rest, bounds, and tenant
confinement (a system-wide object: a tenant's administrator cannot reach it, even when granted
the permissions)."""
from __future__ import annotations

import pytest
from django.db import connection

from accounts import services
from accounts.models import Domain, Tenant
from registry import ids
from registry import services as registry
from registry.models import AuditEvent
from submission.models import MtaRoute
from tests.clients import Jmap, basic

pytestmark = pytest.mark.django_db

SECRET = "Rel4y-S3cret-value"
ROUTE = {"name": "relay", "description": "Our smarthost", "address": "smtp.example.net", "port": 587,
         "startTls": "require", "implicitTls": False, "allowInvalidCerts": False, "authUsername": "bob",
         "authSecret": {"@type": "Value", "secret": SECRET}, "timeout": 30000}


def test_create_read_and_the_masked_secret(jmap, admin_client):
    got = jmap.ok("x:MtaRoute/set", {"create": {"r": ROUTE}})
    assert got["notCreated"] is None, got
    route_id = got["created"]["r"]["id"]
    [doc] = jmap.ok("x:MtaRoute/get", {"ids": [route_id]})["list"]
    assert {k: doc[k] for k in ("name", "address", "port", "startTls", "implicitTls", "allowInvalidCerts",
                                "authUsername", "timeout")} == {
        "name": "relay", "address": "smtp.example.net", "port": 587, "startTls": "require", "implicitTls": False,
        "allowInvalidCerts": False, "authUsername": "bob", "timeout": 30000}
    assert doc["authSecret"] == {"@type": "Value", "secret": "****"}
    route = MtaRoute.objects.get(pk=ids.decode(route_id))
    assert route.auth_secret == SECRET
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_secret FROM submission_mtaroute WHERE id = %s", [route.pk])
        assert SECRET not in cursor.fetchone()[0]
    assert SECRET not in str(list(AuditEvent.objects.filter(object_type="MtaRoute").values()))
    page = admin_client.get(f"/admin/submission/mtaroute/{route.pk}/change/")
    assert page.status_code == 200 and SECRET.encode() not in page.content
    # the name is the route's identity: it cannot change
    refused = jmap.ok("x:MtaRoute/set", {"update": {route_id: {"name": "other"}}})["notUpdated"][route_id]
    assert refused["type"] == "invalidProperties"


@pytest.mark.parametrize("patch, prop", [
    ({"port": 0}, "port"), ({"port": 70000}, "port"), ({"address": "not a host!"}, "address"),
    ({"startTls": "sometimes"}, "startTls"), ({"timeout": 0}, "timeout"), ({"timeout": 3_600_000}, "timeout"),
    ({"name": "Bad Name"}, "name"),
])
def test_bad_values_are_refused(jmap, patch, prop):
    got = jmap.ok("x:MtaRoute/set", {"create": {"r": {**ROUTE, **patch}}})
    assert got["created"] is None
    error = got["notCreated"]["r"]
    assert error["type"] in ("invalidProperties", "validationFailed"), error
    assert prop in str(error)
    assert not MtaRoute.objects.exists()


def test_a_tenant_admin_cannot_reach_the_relay(jmap, client, make_account, domain):
    route_id = jmap.ok("x:MtaRoute/set", {"create": {"r": ROUTE}})["created"]["r"]["id"]
    grant = {"permissions_mode": "merge",
             "enabled_permissions": [f"sysMtaRoute{op}" for op in ("Get", "Create", "Update", "Destroy", "Query")]}
    tenant = registry.create(Tenant._declaration, {"name": "t1", **grant}, "test")
    tenant_domain = registry.create(Domain._declaration, {"name": "one.test", "tenant": tenant.pk}, "test")
    services.create_account({"name": "boss", "domain": tenant_domain.pk, "tenant": tenant.pk, "roles_mode": "admin",
                             "kind": "user", **grant}, "test", password="Tr0ubador-Quartz-Lantern-91")
    boss = Jmap(client, basic("boss@one.test"))
    for name, args in (("x:MtaRoute/get", {"ids": [route_id]}), ("x:MtaRoute/query", {}),
                       ("x:MtaRoute/set", {"update": {route_id: {"address": "evil.example.com"}}}),
                       ("x:MtaRoute/set", {"create": {"r": {**ROUTE, "name": "mine"}}})):
        got = boss.call(name, args)
        assert got[0] == "error" and got[1]["type"] == "forbidden", got
    assert MtaRoute.objects.get().address == "smtp.example.net"
