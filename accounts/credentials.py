"""Passwords, app passwords and API keys: setting, expiring, creating, changing and revoking
them, with the password policy, quotas, grant checks and audit events."""
from __future__ import annotations

import ipaddress
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from registry import errors, ids
from registry import services as registry

from . import hashing, tokens
from .authz import credential_permissions
from .grants import authorize_account_admin, grant_message
from .models import Account, Authentication, Credential, CredentialCounter
from .policy import PolicyViolation, check_password
from .signals import password_changed

UNSET = object()


def user_inputs(account: Account) -> list[str]:
    """What zxcvbn should treat as guessable for this account."""
    items = [account.name, account.email_address, account.description]
    if account.pk:
        items += [str(alias) for alias in account.aliases.select_related("domain")]
    return [i for i in items if i]


def policy_error(exc: PolicyViolation) -> errors.InvalidProperties:
    return errors.InvalidProperties(exc.message, properties=["secret"], rule=exc.rule)


# --- passwords ------------------------------------------------------------------------------
# The reference's refusal of a password or second-factor change on an account whose password
# lives in an external directory.
DIRECTORY_OWNED = "Operation not allowed."


def refuse_if_mirrored(account: Account, prop: str = "secret") -> None:
    """Raise Forbidden when `account` is mirrored from an external directory: its password and
    second factor belong to the directory (app passwords and API keys stay local)."""
    if account.directory_id is not None:
        raise errors.Forbidden(DIRECTORY_OWNED, properties=[prop])


def validate_new_password(account: Account, raw: str, settings: Authentication | None = None) -> None:
    """Raise PolicyViolation if `raw` may not become the password of `account`."""
    check_password(raw, settings, user_inputs(account))


def set_password(account: Account, raw: str, actor, *, expires_at=UNSET, allow_prehashed: bool = True,
                 self_service: bool = False, skip_policy: bool = False, new_account: bool = False) -> Credential:
    """Set the password of `account`: policy (or a recognised pre-hashed value), hash, expiry.

    Raises PolicyViolation; writes nothing then.
    """
    if not new_account:
        # A new account's grant check (registry authorize) covers its creation with a password.
        authorize_account_admin(actor, account, {"credentials"})
    refuse_if_mirrored(account)
    if account.kind != Account.Kind.USER:
        raise errors.Forbidden("Groups cannot log in and have no password.", properties=["secret"])
    settings = Authentication.load()
    if allow_prehashed and not self_service and hashing.is_password_hash(raw):
        stored = raw
    else:
        if not skip_policy:
            validate_new_password(account, raw, settings)
        stored = hashing.hash_secret(raw, settings.password_hash_algorithm)
    now = timezone.now()
    default_expiry = now + settings.password_default_expiry if settings.password_default_expiry else None
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()
        cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
        if expires_at is UNSET:
            expires_at = _new_expiry(cred, default_expiry, now, self_service)
        if cred is None:
            cred = Credential(account=account, credential_id=_next_credential_id(account), kind=Credential.Kind.PASSWORD)
        cred.secret_hash = stored
        cred.secret_changed_at = now
        cred.expires_at = expires_at
        cred.save()
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "password",
                             "****", {"secret": "****", "expiresAt": _iso(expires_at)})
        registry.bump_state("Credential")
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)
        password_changed.send(sender=Account, account=account)
    return cred


def _new_expiry(cred, default_expiry, now, self_service):
    """The expiry of a newly set password (reference rules, auth spec §2.5)."""
    if cred is None:
        return default_expiry
    old = cred.expires_at
    lapsed = old is not None and old <= now
    if self_service:
        if default_expiry is not None:
            return default_expiry
        return None if lapsed else old
    # An administrator's explicit expiry stands unless it has already passed.
    return default_expiry if (lapsed and default_expiry is not None) else old


def _iso(value: datetime | None):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _next_credential_id(account: Account) -> int:
    """A number no credential of `account` has had, destroyed ones included.

    Call it with the account's row locked; the high-water mark moves in the caller's transaction.
    """
    last = account.credentials.order_by("-credential_id").values_list("credential_id", flat=True).first()
    mark = CredentialCounter.objects.filter(account_id=account.pk).values_list("last_id", flat=True).first()
    highest = max(-1 if last is None else last, -1 if mark is None else mark)
    CredentialCounter.objects.update_or_create(account_id=account.pk, defaults={"last_id": highest + 1})
    return highest + 1


def _credential_changed(account: Account, cred: Credential, kind: str) -> None:
    """Move the states an app password or API key change shows in, and log it for /changes.

    The owner's x:AppPassword or x:ApiKey (its change log keyed by account, since their ids are
    numbers within the account), the account's credential list (x:Account), and the credential
    verdicts cached under "Credential".
    """
    label = "AppPassword" if cred.kind == Credential.Kind.APP_PASSWORD else "ApiKey"
    registry.bump_state("Credential")
    registry.touch(label, credential_log_id(account.pk, cred.credential_id), kind, tenant_id=account.tenant_id)
    registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)


def credential_log_id(account_pk: int, credential_id: int) -> str:
    """The change-log id of an app password or API key (registry.ChangeLog.object_id)."""
    return f"{ids.encode(account_pk)}/{ids.encode(credential_id)}"


# --- app passwords and API keys -------------------------------------------------------------
_KINDS = {
    Credential.Kind.APP_PASSWORD: ("max_app_passwords", "app passwords"),
    Credential.Kind.API_KEY: ("max_api_keys", "API keys"),
}


def credential_limit(account: Account, kind: str) -> int | None:
    field, _ = _KINDS[kind]
    override = getattr(account, field)
    if override is not None:
        return override
    return getattr(Authentication.load(), field)


def _validate_ips(allowed_ips) -> list[str]:
    out = []
    for item in allowed_ips or []:
        try:
            out.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise errors.InvalidProperties(f"{item!r} is not an IP address or network.", properties=["allowedIps"]) from None
    return out


def create_secondary_credential(account: Account, kind: str, actor, *, description: str, expires_at=None,
                                permissions_mode: str = "inherit", permissions=(), allowed_ips=(),
                                grantor_permissions: frozenset[str] | None = None) -> tuple[Credential, str]:
    """Create an app password or API key; return it with its secret, shown this once."""
    if kind not in _KINDS:
        raise ValueError(kind)
    description = (description or "").strip()
    if not description:
        raise errors.ValidationFailed("A description is required.",
                                      validation_errors=[{"type": "Required", "property": "description"}])
    if permissions_mode not in Credential.Scope.values:
        raise errors.InvalidProperties("Unknown permissions mode.", properties=["permissions"])
    ips = _validate_ips(allowed_ips)
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.InvalidProperties("The expiry must be in the future.", properties=["expiresAt"])
    _, label = _KINDS[kind]
    authorize_account_admin(actor, account, {"credentials"})
    with transaction.atomic():
        # The row lock serialises concurrent creations, so the quota cannot be overrun.
        account = Account.objects.select_for_update().get(pk=account.pk)
        limit = credential_limit(account, kind)
        count = account.credentials.filter(kind=kind).count()
        if limit is not None and count >= limit:
            raise errors.OverQuota(f"You have exceeded your quota of {limit} {label}.")
        cred = Credential(account=account, kind=kind, credential_id=_next_credential_id(account),
                          description=description, expires_at=expires_at, permissions_mode=permissions_mode,
                          permissions=sorted(set(permissions)), allowed_ips=ips)
        try:
            cred.full_clean(exclude=["secret_hash", "account", "credential_id"], validate_unique=False,
                            validate_constraints=False)
        except Exception as exc:  # noqa: BLE001 - re-shaped as a SetError
            raise errors.from_validation_error(exc, lambda f: {"permissions": "permissions"}.get(f, f)) from None
        if grantor_permissions is not None:
            wanted = credential_permissions(account, cred)
            excess = sorted(wanted - grantor_permissions)
            if excess:
                raise errors.Forbidden(grant_message(excess))
        if kind == Credential.Kind.APP_PASSWORD:
            token, secret = tokens.new_app_password(cred.credential_id)
        else:
            token, secret = tokens.new_api_key(account.pk, cred.credential_id)
        cred.secret_hash = hashing.hash_secret(secret, Authentication.load().password_hash_algorithm)
        cred.save()
        _credential_changed(account, cred, "created")
        registry.audit_event(actor, "AppPassword" if kind == Credential.Kind.APP_PASSWORD else "ApiKey",
                             f"{ids.encode(account.pk)}/{ids.encode(cred.credential_id)}", "create", "description", None, description)
    return cred, token


def revoke_credential(account: Account, credential_id: int, actor, *, kinds=tuple(_KINDS)) -> None:
    authorize_account_admin(actor, account, {"credentials"})
    with transaction.atomic():
        cred = account.credentials.select_for_update().filter(credential_id=credential_id).first()
        if cred is None or cred.kind not in kinds:
            raise errors.NotFound(f"Credential {credential_id} not found.")
        cred.delete()
        _credential_changed(account, cred, "destroyed")
        registry.audit_event(actor, "AppPassword" if cred.kind == Credential.Kind.APP_PASSWORD else "ApiKey",
                             f"{ids.encode(account.pk)}/{ids.encode(credential_id)}", "destroy", "description", cred.description, None)


def set_password_expiry(account: Account, expires_at, actor) -> None:
    authorize_account_admin(actor, account, {"credentials"})
    refuse_if_mirrored(account, "expiresAt")
    with transaction.atomic():
        updated = Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(expires_at=expires_at)
        if updated:
            registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "passwordExpiresAt", None,
                                 _iso(expires_at))
            registry.bump_state("Credential")
            registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)


def password_is_expired(account: Account) -> bool:
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    return bool(cred and cred.expires_at and cred.expires_at <= timezone.now())


def update_secondary_credential(account: Account, credential_id: int, kind: str, values: dict, actor, *,
                                grantor_permissions: frozenset[str] | None = None) -> Credential:
    """Change the description, expiry, scope or addresses of an app password or API key."""
    allowed = {"description", "expires_at", "permissions_mode", "permissions", "allowed_ips"}
    unknown = set(values) - allowed
    if unknown:
        raise errors.Forbidden("The secret of a credential cannot be changed; create a new one.", properties=["secret"])
    authorize_account_admin(actor, account, {"credentials"})
    with transaction.atomic():
        cred = account.credentials.select_for_update().filter(credential_id=credential_id, kind=kind).first()
        if cred is None:
            raise errors.NotFound(f"Credential {credential_id} not found.")
        before = {k: getattr(cred, k) for k in values}
        if "description" in values:
            values["description"] = (values["description"] or "").strip()
            if not values["description"]:
                raise errors.ValidationFailed("A description is required.",
                                              validation_errors=[{"type": "Required", "property": "description"}])
        if "allowed_ips" in values:
            values["allowed_ips"] = _validate_ips(values["allowed_ips"])
        for key, value in values.items():
            setattr(cred, key, value)
        if cred.permissions_mode not in Credential.Scope.values:
            raise errors.InvalidProperties("Unknown permissions mode.", properties=["permissions"])
        if grantor_permissions is not None and {"permissions_mode", "permissions"} & set(values):
            excess = sorted(credential_permissions(account, cred) - grantor_permissions)
            if excess:
                raise errors.Forbidden(grant_message(excess))
        cred.save()
        _credential_changed(account, cred, "updated")
        label = "AppPassword" if kind == Credential.Kind.APP_PASSWORD else "ApiKey"
        for key, value in values.items():
            old = before[key]
            registry.audit_event(actor, label, f"{ids.encode(account.pk)}/{ids.encode(credential_id)}", "update", key,
                                 _iso(old) if hasattr(old, "strftime") else old,
                                 _iso(value) if hasattr(value, "strftime") else value)
    return cred
