"""URLs of the contactform app (included at the root)."""
from django.urls import path

from . import views

urlpatterns = [
    path("form", views.form),
]
