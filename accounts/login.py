"""Every login goes through here: passwords, app passwords and API keys (ban check, dummy hash,
hash upgrade, credential scope), the recovery administrator, and self-service password change.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from django.utils import timezone

from registry import errors
from security import services as security
from telemetry.metrics import counts_logins

from directories.base import DirectoryError, DirectoryUnavailable

from . import external, hashing, tokens
from .authz import RECOVERY_ID, credential_permissions, recovery_credentials
from .credentials import refuse_if_mirrored, set_password
from .models import Account, Authentication, Credential
from .services import default_domain_name
from .totp import verify_totp

log = logging.getLogger(__name__)


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


class DirectoryDown(AuthError):
    """The external directory could not be asked (HTTP 503, OAuth temporarily_unavailable). Not
    the client's fault: it never counts toward fail-to-ban."""

    status = 503
    reason = "unavailable"
    counts_towards_ban = False
    retry_after = 30

    def __init__(self, message: str = "The directory service is temporarily unavailable; try again later."):
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
    default_domain = default_domain_name()
    if "@" not in login:
        login = f"{login}@{default_domain}"
    algorithm = Authentication.load().password_hash_algorithm
    account = _find_account(login)
    app = tokens.parse_app_password(secret)
    directory = external.active_directory()
    if directory is not None and app is None:
        # App passwords are checked here, before the directory: they keep working when it is down.
        return _authenticate_external(directory, login, secret, remote_ip, default_domain, algorithm)
    if account is None:
        # Every miss below costs one verification of the configured algorithm, as a hit does:
        # otherwise timing tells which accounts and credentials exist.
        hashing.dummy_verify(secret, algorithm)
        raise AuthFailed()
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


def _authenticate_external(directory, login: str, secret: str, remote_ip: str | None, default_domain: str,
                           algorithm: str) -> AuthResult:
    """The login order's directory step (spec auth §7.2 step 6): the directory checks the
    password (LDAP bind) or hands back its hash, verified here; the entry is then mirrored."""
    principal = _ask(directory, "authenticate", login, secret)
    if principal is None or principal.kind != "user":
        hashing.dummy_verify(secret, algorithm)
        raise AuthFailed()
    if not principal.verified:
        try:
            ok = hashing.verify_secret(secret, principal.secret_hash or "")
        except hashing.UnknownHashFormat:
            log.error("directory %s holds a password hash of an unknown format", directory.pk)
            raise AuthInternalError("Authentication error.") from None
        if not ok:
            raise AuthFailed()
    return _mirrored(directory, principal, default_domain, remote_ip)


def _ask(directory, method: str, *args):
    """One question to the directory's backend, its failures as login errors."""
    try:
        return external.call(directory, method, *args)
    except DirectoryUnavailable:
        raise DirectoryDown() from None
    except DirectoryError as exc:
        log.error("directory %s answered unusably: %s", directory.pk, exc)
        raise AuthInternalError("Authentication error.") from None


def _mirrored(directory, principal, default_domain: str, remote_ip: str | None) -> AuthResult:
    """The local account of an entry the directory vouched for, brought in line, then the
    checks every login ends with."""
    if principal.kind != "user":
        raise AuthFailed()
    try:
        account = external.mirror(directory, principal, default_domain)
    except external.NotServed:
        raise AuthFailed() from None
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
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


@counts_logins
def authenticate_directory_bearer(token: str, remote_ip: str | None) -> AuthResult | None:
    """A Bearer token of the active directory's identity provider (spec auth §7.3 step 2): the
    OIDC backend validates it, the entry is mirrored. None when no OIDC directory is active or
    the token is not the provider's, so that the internal access tokens are tried next."""
    directory = external.active_directory()
    if directory is None or directory.kind != directory.Kind.OIDC:
        return None
    if security.is_blocked(remote_ip):
        raise Banned()
    try:
        principal = _ask(directory, "authenticate_bearer", token)
        if principal is None:
            return None
        return _mirrored(directory, principal, default_domain_name(), remote_ip)
    except AuthError as exc:
        raise count_failure(exc, remote_ip) from None


def change_own_password(account: Account, current: str, new: str, remote_ip: str | None) -> Credential:
    """Self-service change: the current password must be given; failures count towards bans."""
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    if cred is None:
        raise errors.Forbidden("Your account does not support password changes.")
    refuse_if_mirrored(account)
    if security.is_blocked(remote_ip):
        raise Banned()
    try:
        ok = hashing.verify_secret(current or "", cred.secret_hash)
    except hashing.UnknownHashFormat:
        ok = False
    if not ok:
        raise count_failure(AuthFailed("Current secret is incorrect."), remote_ip, account.email_address)
    return set_password(account, new, account, self_service=True)
