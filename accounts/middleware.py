from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from . import login
from .authz import password_expired
from .backends import SESSION_CREDENTIAL_KEY, client_ip
from .models import Credential


class ExpiredPasswordMiddleware:
    """A session opened with an expired password may only change the password."""

    ALLOWED = ("/account/password/", "/admin/logout/", "/static/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self._restore_session_credential(request)
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(self.ALLOWED)
            and password_expired(user)
        ):
            return redirect(reverse("account-password"))
        return self.get_response(request)

    @staticmethod
    def _restore_session_credential(request):
        """A session opened with an app password keeps that credential's scope; it ends when the
        credential is revoked, expires or is used from an address it does not allow."""
        session = getattr(request, "session", None)
        user = getattr(request, "user", None)
        if session is None or user is None or SESSION_CREDENTIAL_KEY not in session:
            return
        if not user.is_authenticated:
            return
        cred = Credential.objects.filter(pk=session[SESSION_CREDENTIAL_KEY], account_id=user.pk).first()
        if (cred is None or cred.kind == Credential.Kind.PASSWORD or cred.is_expired(timezone.now())
                or not login._ip_allowed(cred, client_ip(request))):
            logout(request)
            return
        user._session_credential = cred
