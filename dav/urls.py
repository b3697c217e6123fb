"""/dav: one view for the whole tree (dav/views.py resolves the rest of the path)."""
from django.urls import re_path

from . import views

urlpatterns = [
    # The rest may hold anything a client percent-encoded, newlines included: the view refuses
    # control characters and dot segments itself (400).
    re_path(r"^dav(?:/(?P<rest>[\s\S]*))?$", views.dav),
]
