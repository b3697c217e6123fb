"""Two-factor login with TOTP: a fresh secret, enrolment after a first valid code, checking a
code, and removal."""
from __future__ import annotations

import logging

import pyotp
from django.db import transaction

from registry import errors, ids
from registry import services as registry

from .credentials import refuse_if_mirrored
from .grants import authorize_account_admin
from .models import Account, Credential

log = logging.getLogger(__name__)


# --- two-factor login (TOTP) ----------------------------------------------------------------
def verify_totp(otp_url: str, code: str) -> bool:
    try:
        totp = pyotp.parse_uri(otp_url)
    except ValueError:
        log.error("an account has an unreadable TOTP URL")
        return False
    return bool(code) and totp.verify(code.strip(), valid_window=1)


def new_totp_url(account: Account) -> str:
    """A fresh TOTP secret for `account`, as an otpauth:// URL (not stored until confirmed)."""
    return pyotp.TOTP(pyotp.random_base32(32)).provisioning_uri(name=account.email_address, issuer_name="Stalwart")


def enable_totp(account: Account, otp_url: str, code: str, actor) -> None:
    """Enrol TOTP once the user proves their authenticator works with a first valid code."""
    authorize_account_admin(actor, account, {"credentials"})
    refuse_if_mirrored(account, "otpAuth")
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
    refuse_if_mirrored(account, "otpAuth")
    with transaction.atomic():
        Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(otp_url="")
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "otpAuth", "****", None)
        registry.bump_state("Credential")
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)
