"""Self-service pages: an account's own password, app passwords and API keys."""
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from registry.errors import SetError

from . import services
from .backends import client_ip
from .forms import PasswordChangeForm, SecondaryCredentialForm
from .models import Credential
from .policy import PolicyViolation


def _own_account(request):
    user = request.user
    return None if user.is_recovery_admin else user


@login_required
def home(request):
    if request.user.is_staff:
        return redirect("admin:index")
    return redirect("account")


@login_required
@require_http_methods(["GET"])
def account(request):
    me = _own_account(request)
    creds = me.credentials.exclude(kind=Credential.Kind.PASSWORD) if me else []
    return render(request, "accounts/account.html", {
        "me": me, "credentials": creds, "credential_form": SecondaryCredentialForm(),
        "new_secret": request.session.pop("new_secret", None),
        "can_create": bool(me) and (request.user.has_stalwart_perm("sysAppPasswordCreate")
                                    or request.user.has_stalwart_perm("sysApiKeyCreate")),
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
            services.change_own_password(
                me, form.cleaned_data["current_password"], form.cleaned_data["new_password"], client_ip(request)
            )
        except services.AuthError as exc:
            form.add_error("current_password", "The current password is incorrect." if exc.status == 401 else str(exc))
        except PolicyViolation as exc:
            form.add_error("new_password", exc.message)
        else:
            update_session_auth_hash(request, me)
            messages.success(request, "Your password was changed.")
            return redirect("account")
    return render(request, "accounts/password.html", {"form": form, "expired": services.password_is_expired(me)})


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
        _cred, secret = services.create_secondary_credential(
            me, kind, me, description=form.cleaned_data["description"], expires_at=form.cleaned_data["expires_at"],
            grantor_permissions=request.user.permission_set,
        )
    except SetError as exc:
        messages.error(request, exc.description or exc.type)
        return redirect("account")
    # Shown once on the next page, never stored in clear anywhere else.
    request.session["new_secret"] = {"kind": dict(Credential.Kind.choices)[kind], "secret": secret}
    return redirect("account")


@login_required
@require_POST
def revoke_credential(request, credential_id: int):
    me = _own_account(request)
    if me is not None:
        try:
            services.revoke_credential(me, credential_id, me)
            messages.success(request, "The credential was revoked.")
        except SetError as exc:
            messages.error(request, exc.description)
    return redirect("account")
