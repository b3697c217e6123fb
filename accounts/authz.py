"""Effective permissions, computed as the reference does and cached.

Default roles are symbolic: an account whose roles are "User" takes whatever
Authentication.defaultUserRoleIds says at the time of the check, so changing the settings
re-scopes existing accounts at once. Results are cached under the states of every type that
affects them, so any change to a role, an account, a tenant or the settings is seen by every
worker on its next request.
"""
from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from registry.services import state_token

from . import permissions as catalogue
from .models import Authentication, Role

DEPENDENCIES = ("Account", "Role", "Tenant", "Authentication")
RECOVERY_ID = 2**32 - 1
_CACHE_TTL = 3600


def recovery_credentials() -> tuple[str, str] | None:
    raw = settings.STALWART_RECOVERY_ADMIN
    if not raw or ":" not in raw:
        return None
    name, secret = raw.split(":", 1)
    name, secret = name.strip().lower(), secret.strip()
    if not name or not secret:
        return None
    return name, secret


def recovery_secret() -> str:
    creds = recovery_credentials()
    return creds[1] if creds else ""


def _role_graph():
    graph = {}
    for role in Role.objects.prefetch_related("parents"):
        graph[role.pk] = (set(role.enabled_permissions), set(role.disabled_permissions), [p.pk for p in role.parents.all()])
    return graph


def _closure(graph, role_ids) -> tuple[set, set]:
    enabled, disabled, seen, stack = set(), set(), set(), list(role_ids)
    while stack:
        rid = stack.pop()
        if rid in seen or rid not in graph:
            continue
        seen.add(rid)
        en, dis, parents = graph[rid]
        enabled |= en
        disabled |= dis
        stack.extend(parents)
    return enabled, disabled


def _default_roles(kind: str) -> list[int]:
    auth = Authentication.load()
    field = {"user": "default_user_roles", "admin": "default_admin_roles", "group": "default_group_roles",
             "tenant": "default_tenant_roles"}[kind]
    return list(getattr(auth, field).values_list("pk", flat=True))


def _own(principal, role_ids, graph) -> tuple[set, set]:
    mode = principal.permissions_mode
    enabled, disabled = set(), set()
    if mode in ("merge", "replace"):
        enabled, disabled = set(principal.enabled_permissions), set(principal.disabled_permissions)
    if mode != "replace":
        en, dis = _closure(graph, role_ids)
        enabled |= en
        disabled |= dis
    return enabled, disabled


def resolve_role_ids(account) -> list[int]:
    if account.roles_mode == "custom":
        return list(account.roles.values_list("pk", flat=True))
    if account.kind == "group":
        return _default_roles("group")
    if account.roles_mode == "admin":
        return _default_roles("tenant" if account.tenant_id else "admin")
    return _default_roles("user")


def compute_account_permissions(account) -> frozenset[str]:
    graph = _role_graph()
    enabled, disabled = _own(account, resolve_role_ids(account), graph)
    if account.tenant_id:
        tenant = account.tenant
        t_roles = (list(tenant.roles.values_list("pk", flat=True)) if tenant.roles_mode == "custom"
                   else _default_roles("tenant"))
        t_en, t_dis = _own(tenant, t_roles, graph)
        enabled &= t_en
        disabled |= t_dis
    return frozenset(enabled - disabled)


def account_permissions(account) -> frozenset[str]:
    """Effective permissions of the account itself (no credential scope)."""
    if getattr(account, "is_recovery_admin", False):
        return catalogue.all_permissions()
    key = f"perm:{state_token(*DEPENDENCIES)}:{account.pk}"
    value = cache.get(key)
    if value is None:
        value = compute_account_permissions(account)
        cache.set(key, value, _CACHE_TTL)
    return value


def credential_permissions(account, credential) -> frozenset[str]:
    """Permissions of a session opened with `credential` (its scope within the account's)."""
    base = account_permissions(account)
    if credential is None:
        return base
    if credential.kind == "password":
        if credential.expires_at is not None and credential.expires_at <= timezone.now():
            return base & catalogue.EXPIRED_PASSWORD_PERMISSIONS
        return base
    listed = set(credential.permissions)
    if credential.permissions_mode == "disable":
        return frozenset(base - listed)
    if credential.permissions_mode == "replace":
        return frozenset(base & listed)
    return base


def session_permissions(account) -> frozenset[str]:
    """Permissions of a web session (opened with the account's password)."""
    if getattr(account, "is_recovery_admin", False):
        return catalogue.all_permissions()
    credential = getattr(account, "_session_credential", None)
    if credential is None and account.pk:
        credential = account.credentials.filter(kind="password").first()
    return credential_permissions(account, credential)


def password_expired(account) -> bool:
    if getattr(account, "is_recovery_admin", False) or not account.pk:
        return False
    cred = account.credentials.filter(kind="password").only("expires_at").first()
    return bool(cred and cred.expires_at and cred.expires_at <= timezone.now())
