"""URLs of the rsvp app (included at the root)."""
from django.urls import path

from . import views

urlpatterns = [
    path("calendar/rsvp", views.rsvp),
]
