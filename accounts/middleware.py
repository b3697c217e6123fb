from django.shortcuts import redirect
from django.urls import reverse

from .authz import password_expired


class ExpiredPasswordMiddleware:
    """A session opened with an expired password may only change the password."""

    ALLOWED = ("/account/password/", "/admin/logout/", "/account/logout/", "/static/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not request.path.startswith(self.ALLOWED)
            and password_expired(user)
        ):
            return redirect(reverse("account-password"))
        return self.get_response(request)
