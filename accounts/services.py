"""Every change to accounts and credentials, and every login, goes through here.

Views, admin pages, JMAP handlers and commands call these functions and nothing else, so the
password policy, quotas, audit events, fail-to-ban and cache invalidation apply whoever asks.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from registry import errors, ids
from registry import services as registry
from security import services as security
from telemetry.metrics import counts_logins

from . import hashing, tokens
from .authz import RECOVERY_ID, credential_permissions, recovery_credentials
from .models import Account, Authentication, Credential, Domain, SystemSettings
from .policy import PolicyViolation, check_password
from .signals import password_changed

log = logging.getLogger(__name__)
UNSET = object()


# --- helpers --------------------------------------------------------------------------------
def user_inputs(account: Account) -> list[str]:
    """What zxcvbn should treat as guessable for this account."""
    items = [account.name, account.email_address, account.description]
    if account.pk:
        items += [str(alias) for alias in account.aliases.select_related("domain")]
    return [i for i in items if i]


def public_url(states: dict[str, int] | None = None) -> str:
    """The URL clients reach this server at: SystemSettings.publicUrl if set, else PUBLIC_URL."""
    from django.conf import settings

    return (registry.current(SystemSettings, states).public_url or settings.PUBLIC_URL).rstrip("/")


def default_domain_name() -> str:
    from django.conf import settings

    system = SystemSettings.load()
    if system.default_domain_id:
        return system.default_domain.name
    return settings.STALWART_DEFAULT_DOMAIN


def policy_error(exc: PolicyViolation) -> errors.InvalidProperties:
    return errors.InvalidProperties(exc.message, properties=["secret"], rule=exc.rule)


# --- who may administer whom ---------------------------------------------------------------
# What makes an account usable by whoever changes it: changing any of these on an account that
# holds more than the actor is a takeover (set its password and log in as it, or lock it out).
PROTECTED_FIELDS = frozenset({
    "credentials", "is_active", "roles_mode", "roles", "permissions_mode", "enabled_permissions",
    "disabled_permissions", "tenant", "max_app_passwords", "max_api_keys", "destroy",
})
_WHAT = {"credentials": "credentials", "is_active": "enabled state", "tenant": "tenant", "destroy": "existence",
         "max_app_passwords": "quotas", "max_api_keys": "quotas"}


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
    from .authz import compute_account_permissions
    from .objects import actor_permissions

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


# --- passwords ------------------------------------------------------------------------------
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
    from .models import CredentialCounter

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


def create_account(values: dict, actor, *, password: str | None = None) -> Account:
    """Create an account through the registry, with its password in the same transaction."""
    decl = Account._declaration
    if password is not None:
        probe = Account(name=values.get("name", ""), description=values.get("description", ""))
        domain = values.get("domain")
        if domain is not None:
            domain_name = Domain.objects.filter(pk=getattr(domain, "pk", domain)).values_list("name", flat=True).first()
            probe.email_address = f"{probe.name}@{domain_name}"
        if not hashing.is_password_hash(password):
            try:
                validate_new_password(probe, password)
            except PolicyViolation as exc:
                raise policy_error(exc) from None

    def with_password(account):
        if password is not None:
            set_password(account, password, actor, new_account=True)

    return registry.create(decl, values, actor, extra_save=with_password)


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


def grant_message(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"You are not authorized to grant permissions: {shown}{more}"


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


# --- logins ---------------------------------------------------------------------------------
class AuthError(Exception):
    status = 401
    reason = "failed"
    counts_towards_ban = True

    def __init__(self, message: str = "Authentication failed."):
        super().__init__(message)


class AuthFailed(AuthError):
    pass


class CredentialExpired(AuthError):
    reason = "expired"
    counts_towards_ban = False


class AuthInternalError(AuthError):
    """A stored secret that cannot be verified (the reference's AuthEvent Error): not a guess."""

    reason = "error"
    counts_towards_ban = False


class Unauthorized(AuthError):
    status = 403
    reason = "unauthorized"
    counts_towards_ban = False


class IpUnauthorized(AuthError):
    status = 403
    reason = "ipUnauthorized"


class MfaRequired(AuthError):
    """The password was right, and the account also needs a one-time code (HTTP 402)."""

    status = 402
    reason = "mfaRequired"
    counts_towards_ban = False

    def __init__(self, message: str = "MFA code required"):
        super().__init__(message)


class Banned(AuthError):
    status = 429
    reason = "banned"
    counts_towards_ban = False

    def __init__(self, message: str = "Too Many Authentication Attempts"):
        super().__init__(message)


class RateLimited(AuthError):
    """The account made more requests than the authenticated rate limit allows (HTTP 429)."""

    status = 429
    reason = "rateLimited"
    counts_towards_ban = False

    def __init__(self, verdict):
        super().__init__("Too Many Requests")
        self.verdict = verdict


def count_failure(exc: AuthError, remote_ip: str | None, login: str | None = None) -> AuthError:
    """Count `exc` toward fail-to-ban once (security.record_auth_failure), whichever layer sees
    it first; return the error to raise: Banned when this failure bans the address."""
    if not exc.counts_towards_ban or getattr(exc, "counted", False):
        return exc
    exc.counted = True
    if security.record_auth_failure(remote_ip, login):
        log.warning("banned %s after repeated authentication failures", remote_ip)
        return Banned()
    return exc


@dataclass
class AuthResult:
    account: Account
    credential: Credential | None
    permissions: frozenset[str]

    @property
    def password_expired(self) -> bool:
        c = self.credential
        return bool(c and c.kind == Credential.Kind.PASSWORD and c.expires_at and c.expires_at <= timezone.now())


def recovery_admin(name: str) -> Account:
    """The administrator of STALWART_RECOVERY_ADMIN: not stored, holds every permission."""
    account = Account(id=RECOVERY_ID, name=name, kind=Account.Kind.USER, description="Recovery administrator",
                      roles_mode=Account.RolesMode.ADMIN)
    account.email_address = name
    account._recovery = True
    return account


def _ip_allowed(cred: Credential, remote_ip: str | None) -> bool:
    if not cred.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(remote_ip or "")
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in cred.allowed_ips)


@counts_logins
def authenticate(login: str, secret: str, remote_ip: str | None, *, otp: str | None = None) -> AuthResult:
    """Verify a login name and a password or app password (and a TOTP code where the account
    has enrolled one). Raises AuthError."""
    login = (login or "").strip().lower()
    if security.is_blocked(remote_ip):
        raise Banned()
    try:
        return _authenticate(login, secret or "", remote_ip, otp)
    except AuthError as exc:
        raise count_failure(exc, remote_ip, login) from None


def _authenticate(login: str, secret: str, remote_ip: str | None, otp: str | None = None) -> AuthResult:
    recovery = recovery_credentials()
    if recovery and login == recovery[0]:
        ok = _verify_plain_or_hash(secret, recovery[1])
        if not recovery[1].startswith(("$", "{")):
            # A plain recovery secret compares in microseconds; without a hash's worth of work the
            # recovery administrator's name would stand out from every other login.
            hashing.dummy_verify(secret, Authentication.load().password_hash_algorithm)
        if ok:
            account = recovery_admin(login)
            return AuthResult(account, None, credential_permissions(account, None))
        raise AuthFailed()
    if not login or not secret:
        raise AuthFailed()
    if "@" not in login:
        login = f"{login}@{default_domain_name()}"
    algorithm = Authentication.load().password_hash_algorithm
    account = _find_account(login)
    if account is None:
        # Every miss below costs one verification of the configured algorithm, as a hit does:
        # otherwise timing tells which accounts and credentials exist.
        hashing.dummy_verify(secret, algorithm)
        raise AuthFailed()
    app = tokens.parse_app_password(secret)
    if app is not None:
        credential_id, raw = app
        cred = account.credentials.filter(kind=Credential.Kind.APP_PASSWORD, credential_id=credential_id).first()
        if cred is None:
            hashing.dummy_verify(raw, algorithm)
            raise AuthFailed()
        if not _verify_stored(raw, cred):
            raise AuthFailed()
        return _finish(account, cred, remote_ip)
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    if cred is None:
        hashing.dummy_verify(secret, algorithm)
        raise AuthFailed()
    try:
        ok = hashing.verify_secret(secret, cred.secret_hash)
    except hashing.UnknownHashFormat:
        log.error("account %s has a password hash of an unknown format", account.pk)
        raise AuthInternalError("Authentication error.") from None
    if not ok:
        raise AuthFailed()
    if cred.otp_url:
        # Only a correct password learns that a code is needed (reference behaviour).
        if not otp:
            raise MfaRequired()
        if not verify_totp(cred.otp_url, otp):
            raise AuthFailed("The one-time code is wrong.")
    if hashing.needs_rehash(cred.secret_hash, algorithm):
        # Upgrade to the configured algorithm while the plain text is at hand.
        new_hash = hashing.hash_secret(secret, algorithm)
        Credential.objects.filter(pk=cred.pk, secret_hash=cred.secret_hash).update(secret_hash=new_hash)
        cred.secret_hash = new_hash
    return _finish(account, cred, remote_ip)


def _verify_stored(secret, cred: Credential) -> bool:
    try:
        return hashing.verify_secret(secret, cred.secret_hash)
    except hashing.UnknownHashFormat:
        log.error("credential %s of account %s has a hash of an unknown format", cred.credential_id, cred.account_id)
        raise AuthInternalError("Authentication error.") from None


def _verify_plain_or_hash(secret: str, expected: str) -> bool:
    if expected.startswith(("$", "{")):
        try:
            return hashing.verify_secret(secret, expected)
        except hashing.UnknownHashFormat:
            return False
    return hashing.verify_secret(secret, expected) if expected else False


def _find_account(address: str) -> Account | None:
    account = Account.objects.filter(email_address=address, kind=Account.Kind.USER).first()
    if account is None and "@" in address:
        local, domain = address.rsplit("@", 1)
        account = Account.objects.filter(
            aliases__name=local, aliases__domain__name=domain, aliases__enabled=True, kind=Account.Kind.USER
        ).first()
        if account is not None:
            account._via_alias = True
    return account


def _finish(account: Account, cred: Credential, remote_ip: str | None) -> AuthResult:
    if not account.is_active:
        raise AuthFailed()
    if cred.kind != Credential.Kind.PASSWORD and cred.is_expired(timezone.now()):
        raise CredentialExpired("The credential has expired.")
    if not _ip_allowed(cred, remote_ip):
        raise IpUnauthorized("This credential may not be used from this address.")
    perms = credential_permissions(account, cred)
    if "authenticate" not in perms:
        raise Unauthorized("This account may not log in.")
    if getattr(account, "_via_alias", False) and "authenticateWithAlias" not in perms:
        raise Unauthorized("This account may not log in with an alias.")
    return AuthResult(account, cred, perms)


@counts_logins
def authenticate_bearer(token: str, remote_ip: str | None) -> AuthResult:
    """Verify an API key presented as a Bearer token. Raises AuthError."""
    if security.is_blocked(remote_ip):
        raise Banned()
    try:
        parsed = tokens.parse_api_key(token or "")
        if parsed is None:
            raise AuthFailed()
        account_id, credential_id, raw = parsed
        cred = (Credential.objects.select_related("account")
                .filter(account_id=account_id, credential_id=credential_id, kind=Credential.Kind.API_KEY).first())
        if cred is None:
            # Cost what a real key costs, so that timing does not tell which keys exist.
            hashing.dummy_verify(raw, Authentication.load().password_hash_algorithm)
            raise AuthFailed()
        if not _verify_stored(raw, cred):
            raise AuthFailed()
        return _finish(cred.account, cred, remote_ip)
    except AuthError as exc:
        raise count_failure(exc, remote_ip) from None


def set_password_expiry(account: Account, expires_at, actor) -> None:
    authorize_account_admin(actor, account, {"credentials"})
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


def change_own_password(account: Account, current: str, new: str, remote_ip: str | None) -> Credential:
    """Self-service change: the current password must be given; failures count towards bans."""
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    if cred is None:
        raise errors.Forbidden("Your account does not support password changes.")
    if security.is_blocked(remote_ip):
        raise Banned()
    try:
        ok = hashing.verify_secret(current or "", cred.secret_hash)
    except hashing.UnknownHashFormat:
        ok = False
    if not ok:
        raise count_failure(AuthFailed("Current secret is incorrect."), remote_ip, account.email_address)
    return set_password(account, new, account, self_service=True)


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


def set_aliases(account: Account, aliases: list[dict], actor) -> None:
    """Replace the aliases of `account` with `aliases` ({name, domain_id, enabled, description})."""
    from .models import Alias

    # Aliases are not a takeover path, but another tenant's account is not there to change.
    authorize_account_admin(actor, account, set())
    seen = set()
    for item in aliases:
        key = (item["name"].strip().lower(), item["domain_id"])
        if key in seen:
            raise errors.InvalidProperties("The same alias is listed twice.", properties=["aliases"])
        seen.add(key)
    with transaction.atomic():
        account.aliases.all().delete()
        for item in aliases:
            alias = Alias(account=account, name=item["name"], domain_id=item["domain_id"],
                          enabled=item.get("enabled", True), description=item.get("description") or "")
            try:
                alias.full_clean(validate_constraints=False)
            except Exception as exc:  # noqa: BLE001
                message = " ".join(getattr(exc, "messages", [str(exc)]))
                raise errors.InvalidProperties(message or "Invalid alias.", properties=["aliases"]) from None
            if Alias.objects.filter(name=alias.name.lower(), domain_id=alias.domain_id).exists():
                raise errors.PrimaryKeyViolation("This alias belongs to another account.", properties=["aliases"])
            alias.save()
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "aliases", None,
                             [f"{a['name']}@{a['domain_id']}" for a in aliases])
        # The aliases are part of x:Account: its state moves like for any other property.
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)


# --- two-factor login (TOTP) ----------------------------------------------------------------
def verify_totp(otp_url: str, code: str) -> bool:
    import pyotp

    try:
        totp = pyotp.parse_uri(otp_url)
    except ValueError:
        log.error("an account has an unreadable TOTP URL")
        return False
    return bool(code) and totp.verify(code.strip(), valid_window=1)


def new_totp_url(account: Account) -> str:
    """A fresh TOTP secret for `account`, as an otpauth:// URL (not stored until confirmed)."""
    import pyotp

    return pyotp.TOTP(pyotp.random_base32(32)).provisioning_uri(name=account.email_address, issuer_name="Stalwart")


def enable_totp(account: Account, otp_url: str, code: str, actor) -> None:
    """Enrol TOTP once the user proves their authenticator works with a first valid code."""
    authorize_account_admin(actor, account, {"credentials"})
    if not verify_totp(otp_url, code):
        raise errors.InvalidProperties("The code does not match; check the authenticator's clock.",
                                       properties=["otpAuth"])
    with transaction.atomic():
        updated = Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(otp_url=otp_url)
        if not updated:
            raise errors.Forbidden("Your account does not support password changes.")
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "otpAuth", None, "****")
        registry.bump_state("Credential")
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)


def disable_totp(account: Account, actor) -> None:
    authorize_account_admin(actor, account, {"credentials"})
    with transaction.atomic():
        Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(otp_url="")
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "otpAuth", "****", None)
        registry.bump_state("Credential")
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)
