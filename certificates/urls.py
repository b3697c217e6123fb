"""URLs of the certificates app (included at the root, before wellknown's /.well-known/ catch-all)."""
from django.urls import re_path

from . import views

urlpatterns = [
    # Only the first segment after acme-challenge/ is the token (the reference ignores the rest).
    re_path(r"^\.well-known/acme-challenge/(?P<token>[^/]*)(?:/.*)?$", views.acme_challenge),
]
