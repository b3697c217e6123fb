"""Self-service pages: an account's own password, two-factor login, app passwords and API keys."""
import logging

import pyotp
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from registry import crypto
from registry.errors import InvalidProperties, SetError

from . import credentials, login, totp as account_totp
from .backends import client_ip
from .forms import PasswordChangeForm, SecondaryCredentialForm, TotpConfirmForm, TotpRemoveForm
from .models import Credential
from .policy import PolicyViolation


def _seal(secret: str) -> str:
    """A once-shown secret as the session keeps it between two requests: encrypted, so that the
    session table (a dump, a backup) never holds it in clear."""
    return crypto.encrypt(secret)


def _unseal(value) -> str | None:
    if not crypto.is_encrypted(value):
        return None  # not ours, or left in clear by an earlier version: not shown
    try:
        return crypto.decrypt(value)
    except ImproperlyConfigured:
        return None  # the key changed since: the user starts again


def _new_secret(request) -> dict | None:
    shown = request.session.pop("new_secret", None)
    if not isinstance(shown, dict):
        return None
    secret = _unseal(shown.get("secret"))
    return {"kind": shown.get("kind", ""), "secret": secret} if secret else None


def _own_account(request):
    user = request.user
    return None if user.is_recovery_admin else user


@login_required
def home(request):
    if request.user.is_staff:
        return redirect("admin:index")
    return redirect("account")


@login_required
@never_cache
@require_http_methods(["GET"])
def account(request):
    return _account_page(request)


def _account_page(request, *, totp_form=None):
    """The account page; `totp_form` is a bound two-factor form to show with its errors."""
    me = _own_account(request)
    creds = me.credentials.exclude(kind=Credential.Kind.PASSWORD) if me else []
    password = me.credentials.filter(kind=Credential.Kind.PASSWORD).first() if me else None
    pending = _pending_totp(request, me)
    totp_enabled = bool(password and password.otp_url)
    if totp_form is None:
        totp_form = TotpRemoveForm(auto_id="totp_%s") if totp_enabled else TotpConfirmForm(auto_id="totp_%s")
    return render(request, "accounts/account.html", {
        "me": me, "credentials": creds, "credential_form": SecondaryCredentialForm(),
        "new_secret": _new_secret(request),
        "can_create": bool(me) and (request.user.has_stalwart_perm("sysAppPasswordCreate")
                                    or request.user.has_stalwart_perm("sysApiKeyCreate")),
        "has_password": password is not None,
        "totp_enabled": totp_enabled,
        "totp_pending": _enrolment(pending) if pending and not totp_enabled else None,
        "totp_form": totp_form,
    })


@login_required
@require_http_methods(["GET", "POST"])
def password(request):
    me = _own_account(request)
    if me is None:
        messages.error(request, "The recovery administrator has no password to change here.")
        return redirect("admin:index")
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            login.change_own_password(
                me, form.cleaned_data["current_password"], form.cleaned_data["new_password"], client_ip(request)
            )
        except login.AuthError as exc:
            form.add_error("current_password", "The current password is incorrect." if exc.status == 401 else str(exc))
        except PolicyViolation as exc:
            form.add_error("new_password", exc.message)
        except SetError as exc:
            # A mirrored account: its password belongs to the external directory.
            form.add_error(None, exc.description or exc.type)
        else:
            update_session_auth_hash(request, me)
            messages.success(request, "Your password was changed.")
            return redirect("account")
    return render(request, "accounts/password.html", {"form": form, "expired": credentials.password_is_expired(me)})


@login_required
@require_POST
def create_credential(request):
    me = _own_account(request)
    form = SecondaryCredentialForm(request.POST)
    if me is None or not form.is_valid():
        messages.error(request, "Please give a description (and a valid expiry, if any).")
        return redirect("account")
    kind = form.cleaned_data["kind"]
    perm = "sysAppPasswordCreate" if kind == Credential.Kind.APP_PASSWORD else "sysApiKeyCreate"
    if not request.user.has_stalwart_perm(perm):
        messages.error(request, "You are not allowed to create this kind of credential.")
        return redirect("account")
    try:
        _cred, secret = credentials.create_secondary_credential(
            me, kind, me, description=form.cleaned_data["description"], expires_at=form.cleaned_data["expires_at"],
            grantor_permissions=request.user.permission_set,
        )
    except SetError as exc:
        messages.error(request, exc.description or exc.type)
        return redirect("account")
    # Shown once on the next page; until then the session holds it encrypted only.
    request.session["new_secret"] = {"kind": dict(Credential.Kind.choices)[kind], "secret": _seal(secret)}
    return redirect("account")


@login_required
@require_POST
def revoke_credential(request, credential_id: int):
    me = _own_account(request)
    if me is not None:
        try:
            credentials.revoke_credential(me, credential_id, me)
            messages.success(request, "The credential was revoked.")
        except SetError as exc:
            messages.error(request, exc.description)
    return redirect("account")


# --- two-factor login (TOTP) ----------------------------------------------------------------
# The otpauth URL of an enrolment in progress lives in the session (server-side, encrypted) until
# a first code confirms it. It is a secret: it is never logged, and pages showing it are not cached.
TOTP_SESSION_KEY = "_stalwart_totp_pending"
log = logging.getLogger(__name__)


def _pending_totp(request, me) -> str | None:
    pending = request.session.get(TOTP_SESSION_KEY)
    if not me or not isinstance(pending, dict) or pending.get("account") != me.pk:
        return None
    return _unseal(pending.get("url"))


@sensitive_variables("otp_url")
def _enrolment(otp_url: str) -> dict:
    """What the page shows of a pending enrolment: the base32 secret, the URL, a QR code."""
    totp = pyotp.parse_uri(otp_url)
    return {"secret": totp.secret, "url": otp_url, "qr_svg": _qr_svg(otp_url)}


@sensitive_variables("otp_url")
def _qr_svg(otp_url: str):
    # Imported here because qrcode is optional: without it the page shows the secret and URL.
    try:
        import qrcode
        import qrcode.image.svg
    except ImportError:  # optional: the secret and the URL are shown anyway
        return None
    image = qrcode.make(otp_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    # Markup made by the library from our own URL, whose characters it encodes as modules only.
    return mark_safe(image.to_string(encoding="unicode"))


def _totp_on(me) -> bool:
    return me.credentials.filter(kind=Credential.Kind.PASSWORD).exclude(otp_url="").exists()


def _two_factor_redirect():
    return redirect("/account/#two-factor")


def _verify_password(request, me, form, *, otp: str | None = None) -> bool:
    """Check the current password (and the current code, when given) through the login path, so
    that wrong guesses count towards fail-to-ban. App passwords are not accepted here."""
    try:
        result = login.authenticate(me.email_address, form.cleaned_data["current_password"], client_ip(request),
                                       otp=otp)
    except login.Banned as exc:
        form.add_error(None, str(exc))
        return False
    except login.AuthError as exc:
        if otp is not None and exc.status == 401:
            form.add_error(None, "The current password or the code is incorrect.")
        elif exc.status in (401, 402):
            form.add_error("current_password", "The current password is incorrect.")
        else:
            form.add_error(None, str(exc))
        return False
    if result.account.pk != me.pk or result.credential is None or result.credential.kind != Credential.Kind.PASSWORD:
        form.add_error("current_password", "The current password is incorrect.")
        return False
    return True


@login_required
@require_POST
def totp_start(request):
    me = _own_account(request)
    if me is None or not me.credentials.filter(kind=Credential.Kind.PASSWORD).exists():
        messages.error(request, "This account has no password, so it has no two-factor login either.")
        return redirect("account")
    if _totp_on(me):
        messages.error(request, "Two-factor login is already on; remove it first to enrol a new authenticator.")
        return _two_factor_redirect()
    request.session[TOTP_SESSION_KEY] = {"account": me.pk, "url": _seal(account_totp.new_totp_url(me))}
    return _two_factor_redirect()


@login_required
@require_POST
def totp_cancel(request):
    request.session.pop(TOTP_SESSION_KEY, None)
    return _two_factor_redirect()


@login_required
@never_cache
@sensitive_post_parameters("current_password", "code")
@require_POST
def totp_confirm(request):
    me = _own_account(request)
    otp_url = _pending_totp(request, me)
    if otp_url is None:
        messages.error(request, "Start the enrolment first: no two-factor secret is waiting for confirmation.")
        return _two_factor_redirect()
    if _totp_on(me):
        request.session.pop(TOTP_SESSION_KEY, None)
        messages.error(request, "Two-factor login is already on; remove it first to enrol a new authenticator.")
        return _two_factor_redirect()
    form = TotpConfirmForm(request.POST, auto_id="totp_%s")
    if form.is_valid() and _verify_password(request, me, form):
        try:
            account_totp.enable_totp(me, otp_url, form.cleaned_data["code"], me)
        except SetError as exc:
            if isinstance(exc, InvalidProperties):
                form.add_error("code", "The code does not match. Check the authenticator's clock, or wait for the "
                                       "next code.")
            else:
                form.add_error(None, exc.description or exc.type)
        else:
            request.session.pop(TOTP_SESSION_KEY, None)
            log.info("account %s enabled two-factor login", me.pk)
            messages.success(request, "Two-factor login is on. Mail clients that log in with your password "
                                      "will now be refused: give them app passwords instead.")
            return _two_factor_redirect()
    return _account_page(request, totp_form=form)


@login_required
@never_cache
@sensitive_post_parameters("current_password", "code")
@require_POST
def totp_remove(request):
    me = _own_account(request)
    if me is None:
        return redirect("account")
    form = TotpRemoveForm(request.POST, auto_id="totp_%s")
    if not _totp_on(me):
        messages.error(request, "Two-factor login is not on.")
        return _two_factor_redirect()
    if form.is_valid() and _verify_password(request, me, form, otp=form.cleaned_data["code"]):
        account_totp.disable_totp(me, me)
        log.info("account %s removed two-factor login", me.pk)
        messages.success(request, "Two-factor login is off.")
        return _two_factor_redirect()
    return _account_page(request, totp_form=form)
