"""x:T/get, /set, /query, /changes on the management objects, over HTTP."""
import pytest

from accounts.models import Account, Authentication, Credential, Domain, Role
from conftest import STRONG_PASSWORD
from registry import ids
from registry.models import AuditEvent

from tests.clients import USING, Jmap, basic

pytestmark = pytest.mark.django_db


def auth_doc():
    return Authentication._declaration.to_json(Authentication.objects.get(pk=1))


# --- singletons -----------------------------------------------------------------------------
def test_get_singleton_with_id_null_and_properties(jmap):
    got = jmap.ok("x:Authentication/get", {"ids": None, "properties": ["passwordMinLength"]})
    assert got["list"] == [{"id": "singleton", "passwordMinLength": 8}]
    assert got["notFound"] == [] and got["state"].isdigit()
    got = jmap.ok("x:Authentication/get", {"ids": ["singleton", "other"]})
    assert got["list"][0]["passwordHashAlgorithm"] == "argon2id"
    assert got["notFound"] == ["other"]


def test_unknown_property_in_get_is_invalid_arguments(jmap):
    assert jmap.error("x:Authentication/get", {"properties": ["nope"]})["type"] == "invalidArguments"
    assert jmap.error("x:Authentication/get", {"ids": "singleton"})["type"] == "invalidArguments"
    assert jmap.error("x:Authentication/get", {"ids": [1]})["type"] == "invalidArguments"


def test_update_singleton_and_state_moves(jmap):
    before = jmap.ok("x:Authentication/get", {})["state"]
    got = jmap.ok("x:Authentication/set", {"update": {"singleton": {"passwordMinLength": 12,
                                                                     "passwordDefaultExpiry": 7776000000}}})
    assert got["updated"] == {"singleton": None}
    assert got["oldState"] == before and got["newState"] != before
    doc = auth_doc()
    assert doc["passwordMinLength"] == 12 and doc["passwordDefaultExpiry"] == 7776000000
    assert AuditEvent.objects.filter(object_type="Authentication", field="passwordMinLength",
                                     actor="admin@example.org").exists()


@pytest.mark.parametrize("patch, kind, prop", [
    ({"passwordMinLength": 0}, "validationFailed", "passwordMinLength"),
    ({"passwordMinLength": 101}, "validationFailed", "passwordMinLength"),
    ({"passwordMinLength": "12"}, "invalidPatch", "passwordMinLength"),
    ({"passwordMinLength": 12.5}, "invalidPatch", "passwordMinLength"),
    ({"passwordMinLength": True}, "invalidPatch", "passwordMinLength"),
    ({"passwordMinLength": None}, "invalidPatch", "passwordMinLength"),
    ({"passwordHashAlgorithm": "md5"}, "validationFailed", "passwordHashAlgorithm"),
    ({"passwordHashAlgorithm": 3}, "invalidPatch", "passwordHashAlgorithm"),
    ({"passwordDefaultExpiry": "90d"}, "invalidPatch", "passwordDefaultExpiry"),
    ({"passwordDefaultExpiry": -1}, "invalidPatch", "passwordDefaultExpiry"),
    ({"maxApiKeys": 0}, "validationFailed", "maxApiKeys"),
    ({"defaultUserRoleIds": ["b"]}, "invalidPatch", "defaultUserRoleIds"),
    ({"defaultUserRoleIds": {"b": False}}, "invalidPatch", "defaultUserRoleIds"),
    ({"defaultUserRoleIds": {"!!": True}}, "invalidPatch", "defaultUserRoleIds"),
    ({"defaultUserRoleIds": {"zzzz": True}}, "invalidForeignKey", "defaultUserRoleIds"),
    ({"directoryId": "zzzz"}, "invalidForeignKey", "directoryId"),
    ({"directoryId": 5}, "invalidPatch", "directoryId"),
    ({"nope": 1}, "invalidProperties", "nope"),
    ({"passwordMinLength": 60, "passwordMaxLength": 50}, "invalidProperties", "passwordMinLength"),
    ({"id": "other"}, "invalidPatch", "id"),
    ({"defaultUserRoleIds/x/y": True}, "invalidPatch", "defaultUserRoleIds/x/y"),
])
def test_bad_updates_are_set_errors_and_write_nothing(jmap, patch, kind, prop):
    before = auth_doc()
    got = jmap.ok("x:Authentication/set", {"update": {"singleton": patch}})
    err = got["notUpdated"]["singleton"]
    assert err["type"] == kind, err
    named = err.get("properties") or [e["property"] for e in err.get("validationErrors", [])]
    assert prop in named, err
    assert got["updated"] is None
    assert auth_doc() == before


def test_patch_paths_add_and_remove_set_members(jmap):
    roles = {r.description: ids.encode(r.pk) for r in Role.objects.all()}
    got = jmap.ok("x:Authentication/set", {"update": {"singleton": {
        f"defaultUserRoleIds/{roles['Group']}": True, f"defaultAdminRoleIds/{roles['User']}": None}}})
    assert got["updated"] == {"singleton": None}
    doc = auth_doc()
    assert doc["defaultUserRoleIds"] == {roles["User"]: True, roles["Group"]: True}
    assert doc["defaultAdminRoleIds"] == {roles["System Administrator"]: True}


def test_create_and_destroy_on_a_singleton_are_refused(jmap):
    got = jmap.ok("x:Authentication/set", {"create": {"k": {"passwordMinLength": 9}}, "destroy": ["singleton"],
                                           "update": {"other": {"passwordMinLength": 9}}})
    assert got["notCreated"]["k"]["type"] == "singleton"
    assert got["notDestroyed"]["singleton"]["type"] == "singleton"
    assert got["notUpdated"]["other"]["type"] == "notFound"
    assert auth_doc()["passwordMinLength"] == 8


def test_set_argument_types(jmap):
    for args in ({"update": []}, {"create": "x"}, {"destroy": "singleton"}, {"destroy": [1]}, {"ifInState": 3}):
        assert jmap.error("x:Role/set", args)["type"] == "invalidArguments", args


def test_if_in_state(jmap):
    state = jmap.ok("x:Role/get", {"ids": []})["state"]
    assert jmap.error("x:Role/set", {"ifInState": state + "9", "create": {}})["type"] == "stateMismatch"
    assert jmap.ok("x:Role/set", {"ifInState": state, "create": {"r": {"description": "X"}}})["created"]


# --- collections ----------------------------------------------------------------------------
def test_one_bad_object_does_not_stop_the_others(jmap):
    got = jmap.ok("x:Role/set", {"create": {
        "good": {"description": "Helpdesk", "enabledPermissions": {"sysAccountGet": True}},
        "bad": {"description": "Bad", "enabledPermissions": {"notAPermission": True}},
        "worse": {"description": 7},
        "server": {"description": "S", "id": "b"},
    }})
    assert set(got["created"]) == {"good"}
    assert got["notCreated"]["bad"]["type"] == "validationFailed"
    assert got["notCreated"]["worse"]["type"] == "invalidPatch"
    assert got["notCreated"]["server"]["type"] == "invalidProperties"
    assert Role.objects.filter(description="Helpdesk").exists()
    assert not Role.objects.filter(description__in=["Bad", "S"]).exists()


def test_creation_ids_reference_each_other_and_appear_in_created_ids(jmap):
    resp = jmap.post({"using": USING, "createdIds": {}, "methodCalls": [
        ["x:Role/set", {"create": {"base": {"description": "Base", "enabledPermissions": {"sysDomainGet": True}},
                                   "child": {"description": "Child", "roleIds": {"#base": True}}}}, "s"],
        ["x:Role/get", {"ids": ["#child"], "properties": ["roleIds"]}, "g"],
        ["x:Role/set", {"destroy": ["#child"]}, "d"],
    ]}).json()
    created = resp["createdIds"]
    assert set(created) == {"base", "child"}
    child = resp["methodResponses"][1][1]["list"][0]
    assert child == {"id": created["child"], "roleIds": {created["base"]: True}}
    assert resp["methodResponses"][2][1]["destroyed"] == ["#child"]


def test_unresolved_creation_reference(jmap):
    got = jmap.ok("x:Role/set", {"create": {"c": {"description": "C", "roleIds": {"#nope": True}}}})
    assert got["notCreated"]["c"]["type"] == "notFound"


def test_destroy_linked_and_missing(jmap):
    user = ids.encode(Role.objects.get(description="User").pk)
    got = jmap.ok("x:Role/set", {"destroy": [user, "zzzzz", "!!"]})
    assert got["notDestroyed"][user]["type"] == "objectIsLinked"
    assert {"object": "Authentication", "id": "singleton"} in got["notDestroyed"][user]["linkedObjects"]
    assert got["notDestroyed"]["zzzzz"]["type"] == "notFound"
    assert got["notDestroyed"]["!!"]["type"] == "notFound"


def test_update_of_destroyed_object_is_will_destroy(jmap):
    role = jmap.ok("x:Role/set", {"create": {"r": {"description": "Temp"}}})["created"]["r"]["id"]
    got = jmap.ok("x:Role/set", {"update": {role: {"description": "New"}}, "destroy": [role]})
    assert got["notUpdated"][role]["type"] == "willDestroy"
    assert got["destroyed"] == [role]


def test_duplicate_is_primary_key_violation(jmap):
    got = jmap.ok("x:Domain/set", {"create": {"a": {"name": "dup.test"}, "b": {"name": "dup.test"}}})
    assert got["notCreated"]["b"]["type"] == "primaryKeyViolation"
    assert got["notCreated"]["b"]["objectId"] == {"object": "Domain", "id": got["created"]["a"]["id"]}


def test_max_objects_in_set(jmap):
    from jmapapi.models import Jmap as Limits
    from registry import services

    services.update(Limits._declaration, None, {"set_max_objects": 2}, "t")
    err = jmap.error("x:Role/set", {"create": {str(i): {"description": str(i)} for i in range(3)}})
    assert err["type"] == "requestTooLarge"
    assert not Role.objects.filter(description="0").exists()


def test_query_filter_sort_position_anchor_limit_total(jmap):
    for name in ("b.test", "a.test", "c.test", "d.example"):
        jmap.ok("x:Domain/set", {"create": {"x": {"name": name}}})
    by_name = {d.name: ids.encode(d.pk) for d in Domain.objects.all()}
    got = jmap.ok("x:Domain/query", {"filter": {"text": ".test"}, "sort": [{"property": "name"}],
                                     "calculateTotal": True})
    assert got["ids"] == [by_name["a.test"], by_name["b.test"], by_name["c.test"]] and got["total"] == 3
    got = jmap.ok("x:Domain/query", {"filter": {"text": ".test"}, "sort": [{"property": "name", "isAscending": False}],
                                     "position": 1, "limit": 1})
    assert got["ids"] == [by_name["b.test"]] and got["position"] == 1
    got = jmap.ok("x:Domain/query", {"sort": [{"property": "name"}], "anchor": by_name["b.test"], "anchorOffset": 1,
                                     "limit": 2})
    assert got["ids"] == [by_name["c.test"], by_name["d.example"]]
    got = jmap.ok("x:Domain/query", {"filter": {"operator": "OR", "conditions": [{"name": "a.test"},
                                                                                   {"name": "d.example"}]}})
    assert sorted(got["ids"]) == sorted([by_name["a.test"], by_name["d.example"]])
    got = jmap.ok("x:Domain/query", {"filter": {"operator": "NOT", "conditions": [{"text": "test"}]}})
    assert by_name["a.test"] not in got["ids"] and by_name["d.example"] in got["ids"]


@pytest.mark.parametrize("args, kind", [
    ({"filter": {"nope": 1}}, "unsupportedFilter"),
    ({"filter": {"name": 5}}, "unsupportedFilter"),
    ({"filter": {"operator": "XOR", "conditions": []}}, "unsupportedFilter"),
    ({"filter": []}, "unsupportedFilter"),
    ({"sort": [{"property": "nope"}]}, "unsupportedSort"),
    ({"sort": [{"property": "name", "isAscending": "yes"}]}, "invalidArguments"),
    ({"sort": "name"}, "invalidArguments"),
    ({"anchor": "zzzzz"}, "anchorNotFound"),
    ({"limit": -1}, "invalidArguments"),
    ({"position": "0"}, "invalidArguments"),
    ({"calculateTotal": 1}, "invalidArguments"),
    # Final pass (issue 10): past the JMAP Int range, once answered as given (not I-JSON).
    ({"position": 2**53}, "invalidArguments"),
    ({"position": -2**70}, "invalidArguments"),
    ({"anchorOffset": 2**70}, "invalidArguments"),
    ({"limit": 2**53}, "invalidArguments"),
])
def test_bad_queries(jmap, args, kind):
    assert jmap.error("x:Domain/query", args)["type"] == kind


def test_changes(jmap):
    start = jmap.ok("x:Domain/get", {"ids": []})["state"]
    a = jmap.ok("x:Domain/set", {"create": {"a": {"name": "one.test"}}})["created"]["a"]["id"]
    b = jmap.ok("x:Domain/set", {"create": {"b": {"name": "two.test"}}})["created"]["b"]["id"]
    mid = jmap.ok("x:Domain/get", {"ids": []})["state"]
    jmap.ok("x:Domain/set", {"update": {a: {"description": "First"}}, "destroy": [b]})
    got = jmap.ok("x:Domain/changes", {"sinceState": start})
    assert got["created"] == [a] and got["updated"] == [] and got["destroyed"] == []
    got = jmap.ok("x:Domain/changes", {"sinceState": mid})
    assert got["updated"] == [a] and got["destroyed"] == [b] and not got["hasMoreChanges"]
    got = jmap.ok("x:Domain/changes", {"sinceState": start, "maxChanges": 1})
    assert got["hasMoreChanges"] is True and got["created"] == [a]
    following = jmap.ok("x:Domain/changes", {"sinceState": got["newState"]})
    assert following["created"] == [] and following["destroyed"] == [] and following["updated"] == [a]
    assert jmap.error("x:Domain/changes", {"sinceState": "999999"})["type"] == "cannotCalculateChanges"
    assert jmap.error("x:Domain/changes", {"sinceState": "x"})["type"] == "cannotCalculateChanges"
    assert jmap.error("x:Domain/changes", {})["type"] == "invalidArguments"


# --- permissions ----------------------------------------------------------------------------
def _role(description, perms):
    from registry import services

    return services.create(Role._declaration, {"description": description, "enabled_permissions": perms}, "t")


def test_permissions_are_enforced_per_method(client, make_account):
    role = _role("Reader", ["authenticate", "sysAuthenticationGet", "sysRoleGet", "sysRoleCreate"])
    make_account("reader", roles_mode="custom", roles=[role.pk])
    j = Jmap(client, basic("reader@example.org"))
    assert j.ok("x:Authentication/get", {})["list"]
    assert j.error("x:Authentication/set", {"update": {"singleton": {"passwordMinLength": 9}}})["type"] == "forbidden"
    assert j.error("x:Role/query", {})["type"] == "forbidden"
    assert j.error("x:Role/set", {"destroy": ["b"]})["type"] == "forbidden"
    assert j.error("x:Account/get", {})["type"] == "forbidden"
    assert j.ok("x:Role/set", {"create": {"x": {"description": "Mine"}}})["created"]
    assert auth_doc()["passwordMinLength"] == 8


def test_user_sees_no_settings(user_jmap):
    assert user_jmap.error("x:Authentication/get", {})["type"] == "forbidden"
    assert user_jmap.error("x:Authentication/set", {"update": {"singleton": {}}})["type"] == "forbidden"


def test_expired_password_session_may_only_touch_its_password(client, make_account):
    import datetime as dt

    from accounts import credentials

    admin = make_account("boss", roles_mode="admin")
    credentials.set_password_expiry(admin, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), "t")
    j = Jmap(client, basic("boss@example.org"))
    assert j.error("x:Authentication/get", {})["type"] == "forbidden"
    assert j.error("Core/echo", {})["type"] == "forbidden"


# --- accounts -------------------------------------------------------------------------------
def test_account_create_get_and_password_policy(jmap, domain):
    dom = ids.encode(domain.pk)
    got = jmap.ok("x:Account/set", {"create": {
        "u": {"@type": "User", "name": "alice", "domainId": dom, "description": "Alice",
              "credentials": {"0": {"@type": "Password", "secret": STRONG_PASSWORD}},
              "roles": {"@type": "User"}, "quotas": {"maxAppPasswords": 2},
              "aliases": {"0": {"name": "ally", "domainId": dom}}},
        "weak": {"@type": "User", "name": "wendy", "domainId": dom,
                 "credentials": {"0": {"@type": "Password", "secret": "wendy123"}}},
        "two": {"@type": "User", "name": "tom", "domainId": dom,
                "credentials": {"0": {"@type": "Password", "secret": STRONG_PASSWORD},
                                "1": {"@type": "Password", "secret": STRONG_PASSWORD}}},
        "key": {"@type": "User", "name": "kim", "domainId": dom,
                "credentials": {"0": {"@type": "ApiKey", "description": "x"}}},
        "grp": {"@type": "Group", "name": "team", "domainId": dom, "roles": {"@type": "Default"}},
    }})
    assert set(got["created"]) == {"u", "grp"}
    assert got["created"]["u"]["emailAddress"] == "alice@example.org"
    assert got["notCreated"]["weak"] == {"type": "invalidProperties", "properties": ["secret"],
                                         "description": got["notCreated"]["weak"]["description"], "rule": "strength"}
    assert got["notCreated"]["weak"]["description"].startswith("Password is too weak.")
    assert got["notCreated"]["two"]["type"] == "invalidProperties"
    assert got["notCreated"]["key"]["description"] == "Secondary credentials cannot be set directly."
    assert not Account.objects.filter(name__in=["wendy", "tom", "kim"]).exists()
    uid = got["created"]["u"]["id"]
    doc = jmap.ok("x:Account/get", {"ids": [uid]})["list"][0]
    assert doc["@type"] == "User" and doc["roles"] == {"@type": "User"}
    assert doc["permissions"] == {"@type": "Inherit"} and doc["quotas"] == {"maxAppPasswords": 2}
    assert doc["credentials"]["0"]["@type"] == "Password" and doc["credentials"]["0"]["secret"] == "****"
    assert doc["aliases"] == {"0": {"name": "ally", "domainId": dom, "enabled": True, "description": None}}
    from django.test import Client

    assert Client().login(username="ally@example.org", password=STRONG_PASSWORD)


def test_account_password_change_and_revocation_through_patches(jmap, make_account):
    from accounts import credentials, login

    bob = make_account("bob")
    _cred, _token = credentials.create_secondary_credential(bob, "app_password", "t", description="phone")
    bid = ids.encode(bob.pk)
    got = jmap.ok("x:Account/set", {"update": {bid: {"credentials/0/secret": "bob"}}})
    assert got["notUpdated"][bid]["properties"] == ["secret"]
    got = jmap.ok("x:Account/set", {"update": {bid: {"credentials/1/secret": "x" * 20}}})
    assert got["notUpdated"][bid]["type"] == "forbidden"
    new = "Granite-Walrus-Harmonica-77"
    got = jmap.ok("x:Account/set", {"update": {bid: {"credentials/0/secret": new, "credentials/1": None,
                                                     "description": "Robert"}}})
    assert got["updated"] == {bid: None}
    bob.refresh_from_db()
    assert bob.description == "Robert"
    assert list(bob.credentials.values_list("kind", flat=True)) == ["password"]
    assert login.authenticate("bob@example.org", new, "127.0.0.1").account.pk == bob.pk


def test_account_type_and_roles_encodings(jmap, make_account):
    bob = make_account("bob")
    bid = ids.encode(bob.pk)
    role = ids.encode(Role.objects.get(description="Group").pk)
    got = jmap.ok("x:Account/set", {"update": {bid: {"roles": {"@type": "Custom", "roleIds": {role: True}},
                                                     "permissions": {"@type": "Merge",
                                                                     "enabledPermissions": {"emailSend": True},
                                                                     "disabledPermissions": {}}}}})
    assert got["updated"] == {bid: None}
    bob.refresh_from_db()
    assert bob.roles_mode == "custom" and list(bob.roles.values_list("pk", flat=True)) == [ids.decode(role)]
    got = jmap.ok("x:Account/set", {"update": {bid: {"roles": {"@type": "Default"}}}})
    assert got["notUpdated"][bid]["type"] == "invalidProperties"
    got = jmap.ok("x:Account/set", {"update": {bid: {"roles": {"@type": "Boss"}}}})
    assert got["notUpdated"][bid]["type"] == "invalidPatch"
    got = jmap.ok("x:Account/query", {"filter": {"@type": "User"}})
    assert bid in got["ids"]
    assert jmap.ok("x:Account/query", {"filter": {"@type": "Group"}})["ids"] == []


# --- app passwords and API keys -------------------------------------------------------------
def test_own_app_passwords_and_api_keys(client, make_account):
    make_account("bob")
    j = Jmap(client, basic("bob@example.org"))
    got = j.ok("x:AppPassword/set", {"create": {"k": {"description": "Thunderbird"}},
                                     })
    created = got["created"]["k"]
    assert created["secret"].startswith("app_") and len(created["secret"]) == 40
    listed = j.ok("x:AppPassword/get", {})["list"]
    assert listed == [{"id": created["id"], "description": "Thunderbird", "secret": "****",
                       "createdAt": created["createdAt"], "expiresAt": None, "permissions": {"@type": "Inherit"},
                       "allowedIps": {}}]
    key = j.ok("x:ApiKey/set", {"create": {"a": {"description": "script",
                                                  "permissions": {"@type": "Replace",
                                                                  "permissions": {"authenticate": True, "sysApiKeyGet": True}}}}})
    token = key["created"]["a"]["secret"]
    assert token.startswith("API_") and len(token) == 42
    # the API key authenticates as a Bearer token, with its narrowed scope
    k = Jmap(client, f"Bearer {token}")
    assert k.ok("x:ApiKey/get", {})["list"][0]["description"] == "script"
    assert k.error("x:AppPassword/get", {})["type"] == "forbidden"
    # the app password works as a password
    assert Jmap(client, basic("bob@example.org", created["secret"])).ok("Core/echo", {"x": 1}) == {"x": 1}
    # app passwords and API keys are separate views; the password is in neither
    assert [c["id"] for c in j.ok("x:ApiKey/get", {})["list"]] == [key["created"]["a"]["id"]]
    assert j.ok("x:AppPassword/get", {"ids": ["a"]})["notFound"] == ["a"]
    got = j.ok("x:AppPassword/set", {"update": {created["id"]: {"description": "TB laptop"}, "a": {"description": "x"}}})
    assert got["updated"] == {created["id"]: None} and got["notUpdated"]["a"]["type"] == "notFound"
    got = j.ok("x:AppPassword/set", {"update": {created["id"]: {"secret": "app_x"}}})
    assert got["notUpdated"][created["id"]]["type"] == "invalidPatch"
    got = j.ok("x:AppPassword/set", {"destroy": [created["id"]]})
    assert got["destroyed"] == [created["id"]]
    resp = client.post("/jmap/", data="{}", content_type="application/json",
                       HTTP_AUTHORIZATION=basic("bob@example.org", created["secret"]))
    assert resp.status_code == 401


def test_over_quota_is_reported(client, make_account):
    make_account("bob", max_api_keys=1)
    j = Jmap(client, basic("bob@example.org"))
    got = j.ok("x:ApiKey/set", {"create": {"a": {"description": "one"}, "b": {"description": "two"}}})
    assert set(got["created"]) == {"a"}
    assert got["notCreated"]["b"] == {"type": "overQuota", "description": "You have exceeded your quota of 1 API keys."}
    assert Credential.objects.filter(kind="api_key").count() == 1


# --- privilege escalation -------------------------------------------------------------------
def test_nobody_grants_more_than_they_hold(client, make_account):
    held = ["authenticate", "sysRoleGet", "sysRoleCreate", "sysRoleUpdate", "sysAccountGet", "sysAccountUpdate"]
    role = _role("Role manager", held)
    me = make_account("manager", roles_mode="custom", roles=[role.pk])
    j = Jmap(client, basic("manager@example.org"))
    admin_role = ids.encode(Role.objects.get(description="System Administrator").pk)
    got = j.ok("x:Role/set", {"create": {
        "ok": {"description": "Subset", "enabledPermissions": {"sysRoleGet": True}},
        "more": {"description": "More", "enabledPermissions": {"sysAuthenticationUpdate": True}},
        "inherit": {"description": "Inherits admin", "roleIds": {admin_role: True}},
    }})
    assert set(got["created"]) == {"ok"}
    assert got["notCreated"]["more"]["type"] == "forbidden"
    assert "sysAuthenticationUpdate" in got["notCreated"]["more"]["description"]
    assert got["notCreated"]["inherit"]["type"] == "forbidden"  # the closure counts, not just the role's own list
    assert not Role.objects.filter(description__in=["More", "Inherits admin"]).exists()
    # nor through an existing role, nor by promoting oneself
    own = ids.encode(role.pk)
    got = j.ok("x:Role/set", {"update": {own: {"enabledPermissions/impersonate": True}}})
    assert got["notUpdated"][own]["type"] == "forbidden"
    got = j.ok("x:Account/set", {"update": {ids.encode(me.pk): {"roles": {"@type": "Admin"}}}})
    assert got["notUpdated"][ids.encode(me.pk)]["type"] == "forbidden"
    me.refresh_from_db()
    assert me.roles_mode == "custom"
    assert "impersonate" not in Role.objects.get(pk=role.pk).enabled_permissions


def test_administrator_may_grant(jmap):
    admin_role = ids.encode(Role.objects.get(description="System Administrator").pk)
    got = jmap.ok("x:Role/set", {"create": {"r": {"description": "Deputy", "roleIds": {admin_role: True}}}})
    assert got["created"]


def test_an_id_destroyed_twice_in_one_call_is_answered_once(jmap):
    # Final pass (issue 10): the same id twice gave it in both destroyed and notDestroyed.
    resp = jmap.post({"using": USING, "methodCalls": [
        ["x:Role/set", {"create": {"k": {"description": "Twice"}}}, "s"],
        ["x:Role/set", {"destroy": ["#k", "#k"]}, "d"],
    ]}).json()
    got = resp["methodResponses"][1][1]
    assert got["destroyed"] == ["#k"] and got["notDestroyed"] is None, got


def test_not_found_names_the_public_id_not_the_row_number(jmap):
    created = jmap.ok("x:Role/set", {"create": {"k": {"description": "Gone"}}})["created"]["k"]["id"]
    pk = Role.objects.get(description="Gone").pk
    # The same object under its creation id and its id: the second destroy finds nothing.
    resp = jmap.post({"using": USING, "createdIds": {"k": created}, "methodCalls": [
        ["x:Role/set", {"destroy": ["#k", created]}, "d"]]}).json()
    got = resp["methodResponses"][0][1]
    assert got["destroyed"] == ["#k"], got
    error = got["notDestroyed"][created]
    assert error["type"] == "notFound" and created in error["description"], error
    assert str(pk) not in error["description"].split(), error


def test_query_position_at_the_int_limit_is_an_empty_page(jmap):
    got = jmap.ok("x:Domain/query", {"position": 2**53 - 1, "limit": 2**53 - 1})
    assert got["ids"] == [] and got["position"] == 2**53 - 1


def test_member_group_ids_take_groups_only(jmap, make_account):
    # Final pass (issue 10): a user (even the caller itself) was accepted as a "group" over
    # JMAP, while the admin page only offers groups (the field's limit_choices_to).
    bob = make_account("bob")
    team = make_account("team", kind="group", roles_mode=Account.RolesMode.DEFAULT)
    bob_id, team_id = ids.encode(bob.pk), ids.encode(team.pk)
    for wrong in (bob_id, ids.encode(Account.objects.get(name="admin").pk)):
        got = jmap.ok("x:Account/set", {"update": {bob_id: {"memberGroupIds": {team_id: True, wrong: True}}}})
        error = got["notUpdated"][bob_id]
        assert error["type"] == "invalidForeignKey" and error["properties"] == ["memberGroupIds"], error
        assert error["objectId"]["id"] == wrong, error
    assert list(Account.objects.get(pk=bob.pk).member_groups.all()) == []
    got = jmap.ok("x:Account/set", {"update": {bob_id: {"memberGroupIds": {team_id: True}}}})
    assert bob_id in got["updated"], got
    assert list(Account.objects.get(pk=bob.pk).member_groups.all()) == [team]
