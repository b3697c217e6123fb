"""Django authentication backend: web logins go through accounts.services like every other."""
from django.utils import timezone

from . import services
from .authz import RECOVERY_ID, recovery_credentials
from .models import Account


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


class StalwartBackend:
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        try:
            result = services.authenticate(username, password, client_ip(request))
        except services.AuthError as exc:
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
            return services.recovery_admin(creds[0]) if creds else None
        try:
            account = Account.objects.select_related("domain").get(pk=user_id)
        except (Account.DoesNotExist, ValueError):
            return None
        return account if account.is_active and account.kind == Account.Kind.USER else None
