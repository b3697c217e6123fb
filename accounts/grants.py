"""Who may change whom: the takeover rule for accounts, and the refusal of a grant beyond the
actor's own permissions."""
from __future__ import annotations

from registry import errors, ids
from registry import services as registry

from .authz import compute_account_permissions
from .models import Account


def actor_permissions(actor):
    """What the actor of a change may grant, or None for the system itself (bootstrap, tests)."""
    if getattr(actor, "is_recovery_admin", False) or getattr(actor, "recovery", False):
        return None
    if hasattr(actor, "permission_set"):
        return actor.permission_set
    if hasattr(actor, "permissions") and isinstance(actor.permissions, frozenset):
        return actor.permissions
    return None


# --- who may administer whom ---------------------------------------------------------------
# What makes an account usable by whoever changes it: changing any of these on an account that
# holds more than the actor is a takeover (set its password and log in as it, or lock it out).
PROTECTED_FIELDS = frozenset({
    "credentials", "is_active", "roles_mode", "roles", "permissions_mode", "enabled_permissions",
    "disabled_permissions", "tenant", "max_app_passwords", "max_api_keys", "max_disk_quota", "destroy",
})
_WHAT = {"credentials": "credentials", "is_active": "enabled state", "tenant": "tenant", "destroy": "existence",
         "max_app_passwords": "quotas", "max_api_keys": "quotas",
         "max_disk_quota": "quotas"}


def _actor_account_id(actor):
    if hasattr(actor, "account_id"):
        return actor.account_id
    return getattr(actor, "pk", None)


def authorize_account_admin(actor, target: Account, changed) -> None:
    """Refuse `actor` changing `changed` (field names, "credentials" or "destroy") of `target`.

    An account's own changes are governed elsewhere (self-service, grant checks). Another
    account's credentials, enabled state, roles, permissions, tenant and quotas may be changed,
    and the account destroyed, only by an actor holding every permission the target holds now;
    otherwise a limited administrator could set a system administrator's password and log in as
    it. A tenant-confined actor does not see accounts of other tenants at all.
    """
    if target.pk is None:
        return
    tenant = registry.actor_tenant(actor)
    if tenant is not None and target.tenant_id != tenant:
        raise errors.NotFound(f"Account {ids.encode(target.pk)} not found.")
    touched = set(changed) & PROTECTED_FIELDS
    held = actor_permissions(actor)
    if not touched or held is None or _actor_account_id(actor) == target.pk:
        return
    stored = Account.objects.filter(pk=target.pk).select_related("tenant").first()
    if stored is None:
        return
    excess = sorted(compute_account_permissions(stored) - held)
    if excess:
        what = sorted({_WHAT.get(name, "roles and permissions") for name in touched})
        shown = ", ".join(excess[:5]) + (f" and {len(excess) - 5} more" if len(excess) > 5 else "")
        raise errors.Forbidden(
            f"You may not change the {' or '.join(what)} of {stored.email_address or stored.name}: "
            f"it holds permissions you do not hold ({shown})."
        )


def grant_message(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"You are not authorized to grant permissions: {shown}{more}"
