"""The generic mutation layer: validation shapes, refusals, audit and states."""
from datetime import timedelta

import pytest

from accounts.models import Account, Authentication, Domain, Role
from registry import ids, services
from registry.errors import (
    InvalidForeignKey,
    InvalidProperties,
    NotFound,
    ObjectIsLinked,
    PrimaryKeyViolation,
    SingletonError,
    ValidationFailed,
)
from registry.models import AuditEvent

AUTH = Authentication._declaration
ROLE = Role._declaration
DOMAIN = Domain._declaration

pytestmark = pytest.mark.django_db


def current():
    return Authentication.objects.get(pk=1)


def test_singleton_defaults_match_the_seed_page():
    doc = AUTH.to_json(current())
    assert doc["id"] == "singleton"
    assert doc["directoryId"] is None
    assert doc["passwordHashAlgorithm"] == "argon2id"
    assert doc["passwordMinLength"] == 8
    assert doc["passwordMaxLength"] == 128
    assert doc["passwordMinStrength"] == "three"
    assert doc["passwordDefaultExpiry"] is None
    assert doc["maxAppPasswords"] == 5
    assert doc["maxApiKeys"] == 5
    roles = {r.description: ids.encode(r.pk) for r in Role.objects.all()}
    assert doc["defaultUserRoleIds"] == {roles["User"]: True}
    assert doc["defaultAdminRoleIds"] == {roles["System Administrator"]: True, roles["User"]: True}


def test_update_records_one_audit_event_per_changed_field_and_bumps_state():
    before = services.states("Authentication")["Authentication"]
    services.update(AUTH, None, {"password_min_length": 12, "password_default_expiry": timedelta(days=90),
                                 "password_max_length": 128}, "tester")
    assert current().password_min_length == 12
    events = AuditEvent.objects.filter(object_type="Authentication").order_by("field")
    assert [(e.field, e.old_value, e.new_value, e.actor) for e in events] == [
        ("passwordDefaultExpiry", None, 90 * 86400 * 1000, "tester"),
        ("passwordMinLength", 8, 12, "tester"),
    ]
    assert services.states("Authentication")["Authentication"] == before + 1


@pytest.mark.parametrize("values, kind, prop, required", [
    ({"password_min_length": 0}, "MinValue", "passwordMinLength", 1),
    ({"password_min_length": 101}, "MaxValue", "passwordMinLength", 100),
    ({"password_max_length": 1001}, "MaxValue", "passwordMaxLength", 1000),
    ({"max_app_passwords": 0}, "MinValue", "maxAppPasswords", 1),
    ({"max_api_keys": 0}, "MinValue", "maxApiKeys", 1),
])
def test_out_of_range_values_are_validation_failures(values, kind, prop, required):
    with pytest.raises(ValidationFailed) as info:
        services.update(AUTH, None, values, "tester")
    assert info.value.to_json()["validationErrors"] == [{"type": kind, "property": prop, "required": required}]
    assert current().password_min_length == 8
    assert not AuditEvent.objects.filter(object_type="Authentication").exists()


def test_unknown_enum_value_is_invalid():
    with pytest.raises(ValidationFailed) as info:
        services.update(AUTH, None, {"password_hash_algorithm": "md5"}, "tester")
    err = info.value.to_json()["validationErrors"][0]
    assert err["type"] == "Invalid" and err["property"] == "passwordHashAlgorithm" and err["value"] == "md5"
    assert current().password_hash_algorithm == "argon2id"


def test_minimum_above_maximum_is_refused_with_both_properties_named():
    with pytest.raises(InvalidProperties) as info:
        services.update(AUTH, None, {"password_min_length": 50, "password_max_length": 20}, "tester")
    body = info.value.to_json()
    assert body["type"] == "invalidProperties"
    assert body["properties"] == ["passwordMinLength", "passwordMaxLength"]
    assert "may not exceed" in body["description"]
    assert (current().password_min_length, current().password_max_length) == (8, 128)


def test_unlimited_credentials_is_null():
    services.update(AUTH, None, {"max_app_passwords": None, "max_api_keys": None}, "tester")
    assert AUTH.to_json(current())["maxAppPasswords"] is None


def test_default_roles_must_exist_and_nothing_is_written_otherwise():
    before = AUTH.to_json(current())
    with pytest.raises(InvalidForeignKey) as info:
        services.update(AUTH, None, {"default_user_roles": [999999], "password_min_length": 10}, "tester")
    assert info.value.to_json()["properties"] == ["defaultUserRoleIds"]
    assert info.value.to_json()["objectId"] == {"object": "Role", "id": ids.encode(999999)}
    assert AUTH.to_json(current()) == before


def test_directory_must_exist():
    with pytest.raises(InvalidForeignKey):
        services.update(AUTH, None, {"directory": 4242}, "tester")
    assert current().directory_id is None


def test_singletons_cannot_be_created_or_destroyed():
    with pytest.raises(SingletonError):
        services.create(AUTH, {"password_min_length": 9}, "tester")
    with pytest.raises(SingletonError):
        services.destroy(AUTH, None, "tester")
    assert Authentication.objects.count() == 1


def test_role_referenced_by_the_settings_is_linked():
    user_role = Role.objects.get(description="User")
    with pytest.raises(ObjectIsLinked) as info:
        services.destroy(ROLE, user_role.pk, "tester")
    linked = info.value.to_json()["linkedObjects"]
    assert {"object": "Authentication", "id": "singleton"} in linked
    assert Role.objects.filter(pk=user_role.pk).exists()


def test_unreferenced_role_is_destroyed_and_audited():
    role = services.create(ROLE, {"description": "Helpdesk", "enabled_permissions": ["sysAccountGet"]}, "tester")
    services.destroy(ROLE, role.pk, "tester")
    assert not Role.objects.filter(pk=role.pk).exists()
    assert AuditEvent.objects.filter(object_type="Role", object_id=ids.encode(role.pk), action="destroy").exists()


def test_unknown_permission_names_are_refused():
    with pytest.raises(ValidationFailed) as info:
        services.create(ROLE, {"description": "Bad", "enabled_permissions": ["sysAccountGet", "notAPermission"]}, "t")
    assert info.value.to_json()["validationErrors"][0]["property"] == "enabledPermissions"
    assert not Role.objects.filter(description="Bad").exists()


def test_duplicate_domain_is_a_primary_key_violation():
    first = services.create(DOMAIN, {"name": "dup.example"}, "tester")
    with pytest.raises(PrimaryKeyViolation) as info:
        services.create(DOMAIN, {"name": "dup.example"}, "tester")
    body = info.value.to_json()
    assert body["properties"] == ["name"]
    assert body["objectId"] == {"object": "Domain", "id": ids.encode(first.pk)}


def test_missing_object_is_not_found():
    with pytest.raises(NotFound):
        services.update(ROLE, 987654, {"description": "x"}, "tester")


def test_domain_with_accounts_is_linked(make_account, domain):
    make_account("carol")
    with pytest.raises(ObjectIsLinked) as info:
        services.destroy(DOMAIN, domain.pk, "tester")
    assert any(link["object"] == "Account" for link in info.value.to_json()["linkedObjects"])


def test_group_cannot_take_user_roles(domain):
    with pytest.raises(InvalidProperties):
        services.create(Account._declaration, {"name": "team", "domain": domain.pk, "kind": "group",
                                               "roles_mode": "user"}, "tester")
