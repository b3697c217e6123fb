"""Django authentication backend: web logins go through accounts.login like every other."""
from django.utils import timezone

from . import login
from .authz import RECOVERY_ID, recovery_credentials
from .models import Account


# The session remembers which app password opened it, so that its scope, expiry, address
# restrictions and revocation keep applying after the login request (see the middleware).
SESSION_CREDENTIAL_KEY = "_stalwart_credential"


def remember_session_credential(sender, request, user, **kwargs):
    """user_logged_in receiver: note the secondary credential a web session was opened with."""
    if request is None or not hasattr(request, "session"):
        return
    cred = getattr(user, "_session_credential", None)
    if cred is not None and cred.kind != cred.Kind.PASSWORD:
        request.session[SESSION_CREDENTIAL_KEY] = cred.pk
    else:
        request.session.pop(SESSION_CREDENTIAL_KEY, None)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


class StalwartBackend:
    def authenticate(self, request, username=None, password=None, otp=None, **kwargs):
        """`otp` is the one-time code of accounts with two-factor login (None when not given)."""
        if username is None or password is None:
            return None
        try:
            result = login.authenticate(username, password, client_ip(request), otp=otp or None)
        except login.AuthError as exc:
            if request is not None:
                request.auth_error = exc
            return None
        account = result.account
        account._session_credential = result.credential
        if not account.is_recovery_admin:
            Account.objects.filter(pk=account.pk).update(last_login=timezone.now())
        return account

    def get_user(self, user_id):
        if str(user_id) == str(RECOVERY_ID):
            creds = recovery_credentials()
            return login.recovery_admin(creds[0]) if creds else None
        try:
            account = Account.objects.select_related("domain").get(pk=user_id)
        except (Account.DoesNotExist, ValueError):
            return None
        return account if account.is_active and account.kind == Account.Kind.USER else None
